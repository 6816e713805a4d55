//! "Demo IdP": a small OpenID Provider (OpenID Connect Core 1.0 and
//! Discovery 1.0, authorization code flow only) for the demo tenant
//! "Initech", so the hub can show enterprise single sign-on as an OIDC
//! relying party without a cloud account. Everything lives in memory and is
//! gone when the process stops.
//!
//! | route | what |
//! |---|---|
//! | `GET /.well-known/openid-configuration` | Discovery 1.0 §3 metadata; every URL starts with the issuer |
//! | `GET /jwks` | the ID token signing key (EC P-256, `ES256`, `kid` = its RFC 7638 thumbprint) as a JWK Set |
//! | `GET /authorize` | Core §3.1.2.1 with PKCE (RFC 7636, `S256` required): the sign-in page |
//! | `POST /authorize` | the page's form: `302` to `redirect_uri` with `code`, `state` and `iss` (RFC 9207), or `401` and the page again |
//! | `POST /token` | `authorization_code` (Core §3.1.3): an access token and an ES256 ID token |
//! | `GET`, `POST /userinfo` | Core §5.3: the user's claims for the access token's scopes |
//!
//! The issuer is the URL the router is served at (no trailing slash), so
//! discovery lives at `<issuer>/.well-known/openid-configuration`.
//!
//! It is a demo, not a model provider: one configured client (authenticated
//! by `client_secret_basic` or `client_secret_post`), any absolute `http(s)`
//! `redirect_uri` accepted, a handful of configured accounts, and no session
//! at the IdP (every authorization request asks for the password, so
//! `prompt=none` answers `login_required`). The signing key is generated at
//! start and never persisted. Claims follow the scopes (`email`, `profile`,
//! `groups`); `sub`, `auth_time` and `amr` are always in the ID token.
//! Authorization codes are single-use and live 60 s; redeeming one twice
//! revokes the access token it issued. Tickets, codes and access tokens are
//! kept as SHA-256 digests in bounded maps and never logged.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
use serde_json::{json, Map, Value};
use url::Url;

use crate::util::{
    alert, bearer, digest, escape, no_store, quotable, random_token, redirect_error,
    redirect_target, redirect_with, s256_challenge, token_request, CodeGrant, OAuthError, Params,
    TokenClient,
};

/// How long an authorization code may be redeemed (RFC 6749 §4.1.2: short).
const CODE_TTL: Duration = Duration::from_secs(60);
/// How long a sign-in page stays answerable.
const TICKET_TTL: Duration = Duration::from_secs(600);
/// ID token lifetime (`exp` - `iat`), in seconds.
const ID_TOKEN_TTL: u64 = 300;
/// Access token lifetime (for `/userinfo` only), in seconds.
const ACCESS_TOKEN_TTL: u64 = 300;
/// At most this many sign-in pages, codes and access tokens are kept each.
const MAX_PENDING: usize = 1000;
/// Wrong passwords one sign-in page accepts before it is withdrawn.
const MAX_ATTEMPTS: u32 = 5;
/// Longest accepted `/authorize` query string.
const MAX_QUERY: usize = 8 * 1024;
/// Longest accepted form or token request body.
const MAX_BODY: usize = 16 * 1024;
const REALM: &str = "Demo IdP";
/// The scopes the IdP knows; others are ignored (Core §3.1.2.1).
const SCOPES: [&str; 4] = ["openid", "email", "profile", "groups"];

/// The one relying party the IdP knows (the hub) and the tenant's accounts.
#[derive(Clone)]
pub struct IdpConfig {
    pub client_id: String,
    pub client_secret: String,
    /// The tenant's name on the sign-in page: "<organization> sign-in (Demo IdP)".
    pub organization: String,
    pub users: Vec<IdpUser>,
}

/// One account of the tenant.
#[derive(Clone)]
pub struct IdpUser {
    /// The stable `sub` claim.
    pub subject: String,
    /// What the user types to sign in (the e-mail address; case-insensitive).
    pub username: String,
    pub password: String,
    pub name: String,
    pub email: String,
    pub groups: Vec<String>,
    /// The `amr` claim (RFC 8176 values): how this user authenticates here.
    pub amr: Vec<String>,
}

impl Default for IdpConfig {
    /// Client `hub-sso` and the two accounts of the demo tenant "Initech".
    fn default() -> Self {
        let strings = |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect();
        Self {
            client_id: "hub-sso".into(),
            client_secret: "hub-sso-demo-secret".into(),
            organization: "Initech".into(),
            users: vec![
                IdpUser {
                    subject: "initech-erin".into(),
                    username: "erin@initech.example".into(),
                    password: "erin-password".into(),
                    name: "Erin Hannon".into(),
                    email: "erin@initech.example".into(),
                    groups: strings(&["engineering", "mcp-admins"]),
                    // She used a second factor at the IdP.
                    amr: strings(&["pwd", "otp"]),
                },
                IdpUser {
                    subject: "initech-frank".into(),
                    username: "frank@initech.example".into(),
                    password: "frank-password".into(),
                    name: "Frank Grimes".into(),
                    email: "frank@initech.example".into(),
                    groups: strings(&["sales"]),
                    amr: strings(&["pwd"]),
                },
            ],
        }
    }
}

impl std::fmt::Debug for IdpConfig {
    /// Never prints the client secret (nor, through [`IdpUser`], passwords).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("organization", &self.organization)
            .field("users", &self.users)
            .finish()
    }
}

impl std::fmt::Debug for IdpUser {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpUser")
            .field("subject", &self.subject)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("name", &self.name)
            .field("email", &self.email)
            .field("groups", &self.groups)
            .field("amr", &self.amr)
            .finish()
    }
}

/// The IdP's routes for `issuer`, the absolute URL they are served at (a
/// trailing `/` is dropped). A fresh signing key is generated on every call.
pub fn router(config: IdpConfig, issuer: String) -> Router {
    let idp = Arc::new(Idp::new(config, issuer));
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize_page).post(sign_in))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo).post(userinfo))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(idp)
}

/// Serves the IdP on `bind` (port 0 picks a free port); returns its issuer,
/// `http://<bound address>`, and the serving task.
pub async fn spawn(
    bind: SocketAddr,
    config: IdpConfig,
) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let issuer = format!("http://{}", listener.local_addr()?);
    let app = router(config, issuer.clone());
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "demo idp stopped");
        }
    });
    Ok((issuer, task))
}

struct Idp {
    config: IdpConfig,
    issuer: String,
    signing: SigningKey,
    store: Mutex<Store>,
}

impl Idp {
    fn new(config: IdpConfig, issuer: String) -> Self {
        Self {
            config,
            issuer: issuer.trim_end_matches('/').to_owned(),
            signing: SigningKey::generate(),
            store: Mutex::default(),
        }
    }

    /// The store; a panic elsewhere cannot leave it half-updated in a way that
    /// matters for a demo, so a poisoned lock is simply taken over.
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn user(&self, subject: &str) -> Option<&IdpUser> {
        self.config.users.iter().find(|u| u.subject == subject)
    }
}

/// The ES256 key ID tokens are signed with, and its public half as a JWK.
struct SigningKey {
    kid: String,
    key: EncodingKey,
    jwk: Jwk,
}

impl SigningKey {
    fn generate() -> Self {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a fresh P-256 key encodes as PKCS#8");
        let key = EncodingKey::from_ec_pem(pem.as_bytes()).expect("a PKCS#8 P-256 key loads");
        let mut jwk =
            Jwk::from_encoding_key(&key, Algorithm::ES256).expect("a P-256 key has a public JWK");
        let kid = jwk.thumbprint(ThumbprintHash::SHA256);
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Self { kid, key, jwk }
    }

    fn sign(&self, claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &self.key)
    }
}

/// Everything in memory; every secret is keyed by its digest.
#[derive(Default)]
struct Store {
    /// Sign-in pages waiting for an answer, by ticket digest.
    tickets: HashMap<String, Pending>,
    codes: HashMap<String, Code>,
    access: HashMap<String, AccessToken>,
}

impl Store {
    fn purge(&mut self) {
        let now = Instant::now();
        self.tickets.retain(|_, p| p.expires > now);
        self.codes.retain(|_, c| c.expires > now);
        self.access.retain(|_, a| a.expires > now);
    }
}

/// An authorization request the user has not signed in to yet.
struct Pending {
    redirect_uri: Url,
    /// As the client sent it: the token request must repeat it exactly (RFC 6749 §4.1.3).
    redirect_uri_raw: String,
    scopes: Vec<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
    /// Wrong passwords so far.
    attempts: u32,
    expires: Instant,
}

struct Code {
    redirect_uri: String,
    code_challenge: String,
    subject: String,
    scopes: Vec<String>,
    nonce: Option<String>,
    /// When the user entered the password (seconds since the epoch).
    auth_time: u64,
    expires: Instant,
}

struct AccessToken {
    subject: String,
    scopes: Vec<String>,
    /// The digest of the code that issued it, to revoke it if the code is replayed.
    code: String,
    expires: Instant,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- metadata

/// `GET /.well-known/openid-configuration` (Discovery 1.0 §3).
async fn discovery(State(idp): State<Arc<Idp>>) -> Json<Value> {
    let issuer = &idp.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "scopes_supported": SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr",
            "email", "email_verified", "name", "groups",
        ],
        "authorization_response_iss_parameter_supported": true,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    }))
}

/// `GET /jwks`: the public signing key (RFC 7517 §5).
async fn jwks(State(idp): State<Arc<Idp>>) -> Json<Value> {
    Json(json!({ "keys": [idp.signing.jwk] }))
}

// ---------------------------------------------------------------- authorize

/// `GET /authorize`: checks the request (Core §3.1.2.1, RFC 7636 §4.3) and
/// shows the sign-in page. An unknown client or unusable `redirect_uri`
/// gets an error page; every other error goes back to the client
/// (RFC 6749 §4.1.2.1, with `iss` per RFC 9207).
async fn authorize_page(State(idp): State<Arc<Idp>>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    if query.len() > MAX_QUERY {
        return error_page(StatusCode::BAD_REQUEST, "The request is too long.");
    }
    let params = match Params::parse(query.as_bytes()) {
        Ok(params) => params,
        Err(name) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                &format!("The parameter {name} is repeated."),
            )
        }
    };
    let unregistered = "This application is not registered with the Demo IdP.";
    let (redirect_uri, redirect_uri_raw) =
        match redirect_target(&params, &idp.config.client_id, unregistered) {
            Ok(target) => target,
            Err(message) => return error_page(StatusCode::BAD_REQUEST, message),
        };
    let state = params.get("state").map(str::to_owned);
    let back = |error: &str, description: &str| {
        redirect_error(
            &redirect_uri,
            error,
            description,
            state.as_deref(),
            Some(&idp.issuer),
        )
    };
    match params.get("response_type") {
        None => return back("invalid_request", "response_type is missing"),
        Some("code") => {}
        Some(_) => {
            return back(
                "unsupported_response_type",
                "only response_type=code is supported",
            )
        }
    }
    if params.get("response_mode").is_some_and(|m| m != "query") {
        return back("invalid_request", "only response_mode=query is supported");
    }
    if params.get("request").is_some() {
        return back("request_not_supported", "request objects are not supported");
    }
    if params.get("request_uri").is_some() {
        return back("request_uri_not_supported", "request_uri is not supported");
    }
    let requested = params.get("scope").unwrap_or_default();
    if !requested.split_ascii_whitespace().any(|s| s == "openid") {
        return back("invalid_scope", "the scope must include openid");
    }
    let code_challenge = match s256_challenge(&params) {
        Ok(challenge) => challenge,
        Err(description) => return back("invalid_request", description),
    };
    if params
        .get("prompt")
        .is_some_and(|p| p.split_ascii_whitespace().any(|v| v == "none"))
    {
        return back(
            "login_required",
            "the Demo IdP keeps no session: the user must sign in",
        );
    }
    let ticket = random_token("");
    // Core §3.1.2.1 `login_hint` prefills the e-mail field.
    let login_hint = params.get("login_hint").unwrap_or_default();
    let page = signin_page(&idp.config, &ticket, login_hint, None);
    let mut store = idp.store();
    store.purge();
    if store.tickets.len() >= MAX_PENDING {
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many sign-ins are in progress. Try again in a few minutes.",
        );
    }
    store.tickets.insert(
        digest(&ticket),
        Pending {
            redirect_uri,
            redirect_uri_raw,
            scopes: known_scopes(requested),
            state,
            nonce: params.get("nonce").map(str::to_owned),
            code_challenge: code_challenge.to_owned(),
            attempts: 0,
            expires: Instant::now() + TICKET_TTL,
        },
    );
    page.into_response()
}

/// `POST /authorize`: the sign-in form. The request itself stays on the
/// server under an unguessable ticket, so the form cannot alter it.
async fn sign_in(State(idp): State<Arc<Idp>>, body: Bytes) -> Response {
    let Ok(form) = Params::parse(&body) else {
        return error_page(StatusCode::BAD_REQUEST, "The form is malformed.");
    };
    let ticket = form.get("ticket").unwrap_or_default();
    let key = digest(ticket);
    let mut store = idp.store();
    store.purge();
    let Some(pending) = store.tickets.get_mut(&key) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in has expired or was already answered. Start again from the application.",
        );
    };
    if form.get("decision") == Some("cancel") {
        let pending = store.tickets.remove(&key).expect("looked up above");
        tracing::info!("demo idp: the user cancelled the sign-in");
        return redirect_error(
            &pending.redirect_uri,
            "access_denied",
            "the user cancelled the sign-in",
            pending.state.as_deref(),
            Some(&idp.issuer),
        );
    }
    let username = form.get("username").unwrap_or_default().trim();
    let password = form.get("password").unwrap_or_default();
    let Some(user) = check_password(&idp.config, username, password) else {
        pending.attempts += 1;
        tracing::info!(attempt = pending.attempts, "demo idp: sign-in refused");
        if pending.attempts >= MAX_ATTEMPTS {
            store.tickets.remove(&key);
            return error_page(
                StatusCode::UNAUTHORIZED,
                "Too many failed attempts. Start again from the application.",
            );
        }
        let page = signin_page(
            &idp.config,
            ticket,
            username,
            Some("The e-mail address or password is incorrect."),
        );
        return (StatusCode::UNAUTHORIZED, page).into_response();
    };
    if store.codes.len() >= MAX_PENDING {
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many sign-ins are in progress. Try again in a minute.",
        );
    }
    let pending = store.tickets.remove(&key).expect("looked up above");
    let code = random_token("idp_code_");
    store.codes.insert(
        digest(&code),
        Code {
            redirect_uri: pending.redirect_uri_raw,
            code_challenge: pending.code_challenge,
            subject: user.subject.clone(),
            scopes: pending.scopes,
            nonce: pending.nonce,
            auth_time: unix_now(),
            expires: Instant::now() + CODE_TTL,
        },
    );
    tracing::info!(sub = %user.subject, "demo idp: the user signed in");
    redirect_with(
        &pending.redirect_uri,
        &[("code", &code)],
        pending.state.as_deref(),
        Some(&idp.issuer),
    )
}

/// The account `username` names, if `password` is its password. Both sides
/// are compared as digests, so the comparison leaks nothing useful, and an
/// unknown account costs the same work as a wrong password.
fn check_password<'a>(
    config: &'a IdpConfig,
    username: &str,
    password: &str,
) -> Option<&'a IdpUser> {
    let user = config
        .users
        .iter()
        .find(|u| u.username.eq_ignore_ascii_case(username));
    let expected = digest(user.map_or("", |u| u.password.as_str()));
    let matches = digest(password) == expected;
    user.filter(|_| matches)
}

/// The known scopes among `requested`, once each, in the order asked.
fn known_scopes(requested: &str) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for s in requested.split_ascii_whitespace() {
        if SCOPES.contains(&s) && !scopes.iter().any(|have| have == s) {
            scopes.push(s.to_owned());
        }
    }
    scopes
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#1d2433}\
h1{font-size:1.4rem}label{display:block;margin:1rem 0 .3rem;font-weight:600}\
input[type=email],input[type=password]{width:100%;padding:.4rem;font-size:1rem;box-sizing:border-box}\
.actions{margin-top:1.5rem;display:flex;gap:.8rem}button{font-size:1rem;padding:.5rem 1.2rem}\
.error{color:#a00;font-weight:600}";

/// The sign-in page: plain HTML, every control labelled, no script.
fn signin_page(
    config: &IdpConfig,
    ticket: &str,
    username: &str,
    error: Option<&str>,
) -> Html<String> {
    let error = alert(error);
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{org} sign-in (Demo IdP)</title><style>{STYLE}</style></head><body>\
<main><h1>{org} sign-in (Demo IdP)</h1>\
<p>Sign in with your {org} account to continue to <strong>{client}</strong>.</p>{error}\
<form method=\"post\" action=\"authorize\">\
<input type=\"hidden\" name=\"ticket\" value=\"{ticket}\">\
<label for=\"username\">E-mail address</label>\
<input type=\"email\" id=\"username\" name=\"username\" value=\"{username}\" autocomplete=\"username\" maxlength=\"254\" required>\
<label for=\"password\">Password</label>\
<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" maxlength=\"128\" required>\
<div class=\"actions\">\
<button type=\"submit\" name=\"decision\" value=\"sign-in\">Sign in</button>\
<button type=\"submit\" name=\"decision\" value=\"cancel\" formnovalidate>Cancel</button>\
</div></form>\
<p><small>A demo identity provider: its accounts live in memory and nothing leaves this machine.</small></p>\
</main></body></html>\n",
        org = escape(&config.organization),
        client = escape(&config.client_id),
        ticket = escape(ticket),
        username = escape(username),
    ))
}

fn error_page(status: StatusCode, message: &str) -> Response {
    let page = Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Demo IdP: error</title><style>{STYLE}</style></head><body><main>\
<h1>The Demo IdP cannot continue</h1><p class=\"error\" role=\"alert\">{}</p></main></body></html>\n",
        escape(message)
    ));
    (status, page).into_response()
}

// ---------------------------------------------------------------- token

/// `POST /token`.
async fn token(State(idp): State<Arc<Idp>>, headers: HeaderMap, body: Bytes) -> Response {
    match grant(&idp, &headers, &body) {
        Ok(json) => (no_store(), json).into_response(),
        Err(error) => {
            tracing::info!(error = error.error, "demo idp: token request refused");
            error.into_response()
        }
    }
}

fn grant(idp: &Idp, headers: &HeaderMap, body: &[u8]) -> Result<Json<Value>, OAuthError> {
    let client = TokenClient {
        id: &idp.config.client_id,
        secret: &idp.config.client_secret,
        realm: REALM,
        // A 401 always carries a challenge (RFC 9110 §15.5.2).
        always_challenge: true,
    };
    let (grant_type, params) = token_request(&client, headers, body)?;
    match grant_type.as_str() {
        "authorization_code" => redeem_code(idp, &params),
        _ => Err(OAuthError::new(
            "unsupported_grant_type",
            "only authorization_code is supported",
        )),
    }
}

/// `grant_type=authorization_code` (Core §3.1.3, RFC 7636 §4.6).
fn redeem_code(idp: &Idp, params: &Params) -> Result<Json<Value>, OAuthError> {
    let request = CodeGrant::from_params(params)?;
    let key = digest(request.code);
    let mut store = idp.store();
    store.purge();
    // One attempt per code, right or wrong: a guessed verifier gets no second try.
    let Some(found) = store.codes.remove(&key) else {
        let before = store.access.len();
        store.access.retain(|_, a| a.code != key);
        if store.access.len() < before {
            return Err(OAuthError::new(
                "invalid_grant",
                "the code was already used; the access token it issued is revoked",
            ));
        }
        return Err(OAuthError::new(
            "invalid_grant",
            "unknown, used or expired code",
        ));
    };
    request.check(&found.redirect_uri, &found.code_challenge)?;
    let user = idp
        .user(&found.subject)
        .ok_or_else(|| OAuthError::new("invalid_grant", "the account no longer exists"))?;

    let iat = unix_now();
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(idp.issuer));
    claims.insert("sub".into(), json!(user.subject));
    claims.insert("aud".into(), json!(idp.config.client_id));
    claims.insert("iat".into(), json!(iat));
    claims.insert("exp".into(), json!(iat + ID_TOKEN_TTL));
    claims.insert("auth_time".into(), json!(found.auth_time));
    if let Some(nonce) = &found.nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    claims.insert("amr".into(), json!(user.amr));
    claims.extend(user_claims(user, &found.scopes));
    let id_token = idp.signing.sign(&Value::Object(claims)).map_err(|error| {
        tracing::error!(%error, "demo idp: cannot sign an ID token");
        OAuthError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            ..OAuthError::new("server_error", "the ID token could not be signed")
        }
    })?;

    if store.access.len() >= MAX_PENDING {
        // Access tokens only read /userinfo: drop the one closest to expiry.
        let oldest = store
            .access
            .iter()
            .min_by_key(|(_, a)| a.expires)
            .map(|(k, _)| k.clone());
        if let Some(oldest) = oldest {
            store.access.remove(&oldest);
        }
    }
    let access_token = random_token("idp_at_");
    store.access.insert(
        digest(&access_token),
        AccessToken {
            subject: user.subject.clone(),
            scopes: found.scopes.clone(),
            code: key,
            expires: Instant::now() + Duration::from_secs(ACCESS_TOKEN_TTL),
        },
    );
    tracing::info!(sub = %user.subject, "demo idp: ID token issued");
    Ok(Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_TTL,
        "id_token": id_token,
        "scope": found.scopes.join(" "),
    })))
}

/// The claims `scopes` release about `user` (Core §5.4), besides `sub`.
fn user_claims(user: &IdpUser, scopes: &[String]) -> Map<String, Value> {
    let mut claims = Map::new();
    let has = |scope: &str| scopes.iter().any(|s| s == scope);
    if has("email") {
        claims.insert("email".into(), json!(user.email));
        claims.insert("email_verified".into(), json!(true));
    }
    if has("profile") {
        claims.insert("name".into(), json!(user.name));
    }
    if has("groups") {
        claims.insert("groups".into(), json!(user.groups));
    }
    claims
}

// ---------------------------------------------------------------- userinfo

/// `GET` or `POST /userinfo` with `Authorization: Bearer` (Core §5.3).
async fn userinfo(State(idp): State<Arc<Idp>>, headers: HeaderMap) -> Response {
    let refuse = |error: Option<&str>| {
        let mut challenge = format!("Bearer realm=\"{REALM}\"");
        if let Some(description) = error {
            challenge.push_str(&format!(
                ", error=\"invalid_token\", error_description=\"{}\"",
                quotable(description)
            ));
        }
        let body = json!({
            "error": if error.is_some() { "invalid_token" } else { "invalid_request" },
            "error_description": error.unwrap_or("a bearer token is required"),
        });
        let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    };
    let Some(token) = bearer(&headers) else {
        return refuse(None);
    };
    let (subject, scopes) = {
        let mut store = idp.store();
        store.purge();
        match store.access.get(&digest(token)) {
            Some(access) => (access.subject.clone(), access.scopes.clone()),
            None => return refuse(Some("the access token is unknown, revoked or expired")),
        }
    };
    let Some(user) = idp.user(&subject) else {
        return refuse(Some("the account no longer exists"));
    };
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(user.subject));
    claims.extend(user_claims(user, &scopes));
    (no_store(), Json(Value::Object(claims))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_scopes_ignore_unknown_and_repeats() {
        assert_eq!(
            known_scopes("openid mail.read email openid  groups"),
            vec!["openid", "email", "groups"]
        );
    }

    #[test]
    fn signin_page_escapes_and_labels() {
        let config = IdpConfig {
            organization: "<Initech>".into(),
            ..IdpConfig::default()
        };
        let page = signin_page(&config, "t", "a\"b", Some("<bad>")).0;
        assert!(page.contains("<title>&lt;Initech&gt; sign-in (Demo IdP)</title>"));
        assert!(page.contains("value=\"a&quot;b\""));
        assert!(page.contains("&lt;bad&gt;"));
        assert!(page.contains("<label for=\"password\">"));
        assert!(!page.contains("<script"));
    }

    #[test]
    fn debug_redacts_secrets() {
        let shown = format!("{:?}", IdpConfig::default());
        assert!(!shown.contains("hub-sso-demo-secret") && !shown.contains("erin-password"));
    }

    #[test]
    fn passwords_match_case_insensitive_usernames_only() {
        let config = IdpConfig::default();
        assert!(check_password(&config, "ERIN@initech.example", "erin-password").is_some());
        assert!(check_password(&config, "erin@initech.example", "frank-password").is_none());
        assert!(check_password(&config, "nobody@initech.example", "").is_none());
    }
}
