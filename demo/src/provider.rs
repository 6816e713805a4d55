//! "Demo Calendar": a mock third-party OAuth 2.0 provider, so the hub's
//! credential vault can be shown without the internet. Everything lives in
//! memory and is gone when the process stops.
//!
//! | route | what |
//! |---|---|
//! | `GET /authorize` | RFC 6749 §4.1.1 with PKCE (RFC 7636, `S256` only): an approve page |
//! | `POST /authorize` | the page's form: `302` to `redirect_uri` with `code` and `state`, or `error=access_denied` |
//! | `POST /token` | `authorization_code` and `refresh_token` (rotating; `scope` may narrow), RFC 6749 §5 |
//! | `GET /api/calendar/events` | the account's events (`calendar.read` or `calendar.write`) |
//! | `POST /api/calendar/events` | `{"title", "start"}` appends one (`calendar.write`) |
//!
//! The API base URL to give the hub is `<url>/api`.
//!
//! It is a demo, not a model provider: any absolute `http(s)` `redirect_uri`
//! is accepted (there is no client registry beyond the one configured
//! client), refresh tokens do not expire, and reusing a rotated refresh token
//! is refused without revoking its family. Authorization codes are
//! single-use and live 60 s; redeeming one twice revokes what it issued
//! (RFC 6749 §4.1.2). Codes and tokens are kept as SHA-256 digests and never
//! logged.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use url::Url;

use crate::util::{
    alert, bearer, digest, escape, no_store, quotable, random_token, redirect_error,
    redirect_target, redirect_with, s256_challenge, token_request, CodeGrant, OAuthError, Params,
    TokenClient,
};

/// How long an authorization code may be redeemed (RFC 6749 §4.1.2: short).
const CODE_TTL: Duration = Duration::from_secs(60);
/// How long an approve page stays answerable.
const TICKET_TTL: Duration = Duration::from_secs(600);
const REALM: &str = "Demo Calendar";

/// The one OAuth client the provider knows (the hub) and what it may ask for.
#[derive(Clone)]
pub struct ProviderConfig {
    pub client_id: String,
    pub client_secret: String,
    /// The scopes a client may request; also the default when it names none.
    pub scopes: Vec<String>,
    /// Access token lifetime in seconds.
    pub access_token_ttl: u64,
}

impl Default for ProviderConfig {
    /// The seeded `demo-calendar` connection of the hub uses these.
    fn default() -> Self {
        Self {
            client_id: "hub-demo".into(),
            client_secret: "hub-demo-secret".into(),
            scopes: vec!["calendar.read".into(), "calendar.write".into()],
            access_token_ttl: 3600,
        }
    }
}

impl std::fmt::Debug for ProviderConfig {
    /// Never prints the client secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .field("access_token_ttl", &self.access_token_ttl)
            .finish()
    }
}

/// Starting the provider on its own listener failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What the provider has seen, for tests that must prove an upstream call
/// happened (or did not) without looking at token values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProviderStats {
    /// Authorization codes redeemed at `/token`.
    pub codes_redeemed: u64,
    /// Successful `refresh_token` grants.
    pub refreshes: u64,
    /// Token endpoint requests answered with an error.
    pub token_errors: u64,
    /// API requests that carried a valid token with a sufficient scope.
    pub api_authorized: u64,
    /// API requests refused with 401 or 403.
    pub api_refused: u64,
}

/// A provider serving on its own listener; dropping it stops it.
pub struct RunningProvider {
    /// Its base URL, e.g. `http://127.0.0.1:8090`.
    pub url: String,
    pub addr: SocketAddr,
    provider: Arc<Provider>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningProvider {
    /// `<url>/authorize`, for the hub's connection configuration.
    pub fn authorization_endpoint(&self) -> String {
        format!("{}/authorize", self.url)
    }

    /// `<url>/token`.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.url)
    }

    /// `<url>/api`: the connection's `api_base_url`.
    pub fn api_base_url(&self) -> String {
        format!("{}/api", self.url)
    }

    pub fn stats(&self) -> ProviderStats {
        self.provider.stats.snapshot()
    }

    /// Stops serving (the same as dropping it).
    pub fn stop(self) {}
}

impl Drop for RunningProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The provider's routes, to serve or nest anywhere (its links are relative).
pub fn router(config: ProviderConfig) -> Router {
    build(config).0
}

/// Serves the provider on `bind` (port 0 picks a free port) until the
/// returned handle is dropped.
pub async fn spawn(
    bind: SocketAddr,
    config: ProviderConfig,
) -> Result<RunningProvider, ProviderError> {
    let bind_error = |source| ProviderError::Bind { addr: bind, source };
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let (app, provider) = build(config);
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "demo provider stopped");
        }
    });
    Ok(RunningProvider {
        url: format!("http://{addr}"),
        addr,
        provider,
        task,
    })
}

fn build(config: ProviderConfig) -> (Router, Arc<Provider>) {
    let provider = Arc::new(Provider {
        config,
        store: Mutex::default(),
        stats: Counters::default(),
    });
    let app = Router::new()
        .route("/authorize", get(authorize_page).post(authorize_decision))
        .route("/token", post(token))
        .route("/api/calendar/events", get(list_events).post(create_event))
        .with_state(provider.clone());
    (app, provider)
}

struct Provider {
    config: ProviderConfig,
    store: Mutex<Store>,
    stats: Counters,
}

impl Provider {
    /// The store; a panic elsewhere cannot leave it half-updated in a way that
    /// matters for a demo, so a poisoned lock is simply taken over.
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Default)]
struct Counters {
    codes_redeemed: AtomicU64,
    refreshes: AtomicU64,
    token_errors: AtomicU64,
    api_authorized: AtomicU64,
    api_refused: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> ProviderStats {
        ProviderStats {
            codes_redeemed: self.codes_redeemed.load(Ordering::Relaxed),
            refreshes: self.refreshes.load(Ordering::Relaxed),
            token_errors: self.token_errors.load(Ordering::Relaxed),
            api_authorized: self.api_authorized.load(Ordering::Relaxed),
            api_refused: self.api_refused.load(Ordering::Relaxed),
        }
    }
}

/// Everything in memory; every secret is keyed by its digest.
#[derive(Default)]
struct Store {
    /// Approve pages waiting for a decision, by ticket.
    tickets: HashMap<String, Pending>,
    codes: HashMap<String, Code>,
    /// Redeemed codes and the grant each started, to revoke on reuse.
    used_codes: HashMap<String, u64>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    calendars: HashMap<String, Vec<Event>>,
    next_grant: u64,
    next_event: u64,
}

impl Store {
    fn purge(&mut self) {
        let now = Instant::now();
        self.tickets.retain(|_, p| p.expires > now);
        self.codes.retain(|_, c| c.expires > now);
        self.access.retain(|_, a| a.expires > now);
    }

    fn revoke_grant(&mut self, grant: u64) {
        self.access.retain(|_, a| a.grant != grant);
        self.refresh.retain(|_, r| r.grant.id != grant);
    }

    /// Issues an access token for `scopes` and a refresh token that keeps the
    /// whole grant (`granted`), so a later refresh may ask for any of it again.
    fn issue(
        &mut self,
        config: &ProviderConfig,
        grant: Grant,
        scopes: Vec<String>,
    ) -> Json<serde_json::Value> {
        let access = random_token("dcal_at_");
        let refresh = random_token("dcal_rt_");
        let scope = scopes.join(" ");
        self.access.insert(
            digest(&access),
            AccessToken {
                account: grant.account.clone(),
                scopes,
                grant: grant.id,
                expires: Instant::now() + Duration::from_secs(config.access_token_ttl),
            },
        );
        self.refresh
            .insert(digest(&refresh), RefreshToken { grant });
        Json(json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": config.access_token_ttl,
            "refresh_token": refresh,
            "scope": scope,
        }))
    }

    fn calendar(&mut self, account: &str) -> &mut Vec<Event> {
        if !self.calendars.contains_key(account) {
            let seeded = seed_events(&mut self.next_event);
            self.calendars.insert(account.to_owned(), seeded);
        }
        self.calendars.entry(account.to_owned()).or_default()
    }
}

/// An authorization request the user has not decided yet.
struct Pending {
    redirect_uri: Url,
    /// As the client sent it: the token request must repeat it exactly (RFC 6749 §4.1.3).
    redirect_uri_raw: String,
    scopes: Vec<String>,
    state: Option<String>,
    code_challenge: String,
    expires: Instant,
}

struct Code {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    grant: Grant,
    expires: Instant,
}

/// What the user approved, carried by the code and then by the refresh token.
#[derive(Clone)]
struct Grant {
    id: u64,
    client_id: String,
    account: String,
    scopes: Vec<String>,
}

struct AccessToken {
    account: String,
    scopes: Vec<String>,
    grant: u64,
    expires: Instant,
}

struct RefreshToken {
    grant: Grant,
}

#[derive(Debug, Clone, Serialize)]
struct Event {
    id: String,
    title: String,
    start: String,
}

/// A new account starts with a few events in the coming days, so the demo
/// has something to show.
fn seed_events(next_id: &mut u64) -> Vec<Event> {
    let today = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or_default();
    [
        (1, "09:00", "Team stand-up"),
        (2, "14:00", "Dentist"),
        (4, "18:30", "Book club: The Left Hand of Darkness"),
    ]
    .into_iter()
    .map(|(days, time, title)| {
        *next_id += 1;
        Event {
            id: format!("evt-{next_id}"),
            title: title.into(),
            start: format!("{}T{time}:00Z", civil_date(today + days)),
        }
    })
    .collect()
}

/// `YYYY-MM-DD` of a day count since 1970-01-01 (H. Hinnant's civil_from_days).
fn civil_date(days: u64) -> String {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

// ---------------------------------------------------------------- authorize

/// `GET /authorize`: checks the request (RFC 6749 §4.1.1, RFC 7636 §4.3) and
/// shows the approve page. An unknown client or unusable `redirect_uri` gets
/// an error page; every other error goes back to the client (§4.1.2.1).
async fn authorize_page(
    State(provider): State<Arc<Provider>>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match Params::parse(query.unwrap_or_default().as_bytes()) {
        Ok(params) => params,
        Err(name) => return error_page(&format!("The parameter {name} is repeated.")),
    };
    let config = &provider.config;
    let unregistered = "This client is not registered with Demo Calendar.";
    let (redirect_uri, redirect_uri_raw) =
        match redirect_target(&params, &config.client_id, unregistered) {
            Ok(target) => target,
            Err(message) => return error_page(message),
        };
    let state = params.get("state").map(str::to_owned);
    let back = |error: &str, description: &str| {
        redirect_error(&redirect_uri, error, description, state.as_deref(), None)
    };
    if params.get("response_type") != Some("code") {
        return back(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let code_challenge = match s256_challenge(&params) {
        Ok(challenge) => challenge,
        Err(description) => return back("invalid_request", description),
    };
    let scopes = match requested_scopes(params.get("scope"), &config.scopes) {
        Ok(scopes) => scopes,
        Err(unknown) => return back("invalid_scope", &format!("unknown scope {unknown}")),
    };
    let ticket = random_token("");
    let page = approve_page(&ticket, &config.client_id, &scopes, "demo-user", None);
    let mut store = provider.store();
    store.purge();
    store.tickets.insert(
        ticket,
        Pending {
            redirect_uri,
            redirect_uri_raw,
            scopes,
            state,
            code_challenge: code_challenge.to_owned(),
            expires: Instant::now() + TICKET_TTL,
        },
    );
    page.into_response()
}

/// `POST /authorize`: the approve page's form. The request itself stays on
/// the server under an unguessable ticket, so the form cannot alter it.
async fn authorize_decision(State(provider): State<Arc<Provider>>, body: Bytes) -> Response {
    let Ok(form) = Params::parse(&body) else {
        return error_page("The form is malformed.");
    };
    let ticket = form.get("ticket").unwrap_or_default();
    let mut store = provider.store();
    store.purge();
    let Some(pending) = store.tickets.get(ticket) else {
        return error_page(
            "This request has expired or was already answered. Start again from the application.",
        );
    };
    if form.get("decision") != Some("allow") {
        let pending = store.tickets.remove(ticket).expect("looked up above");
        tracing::info!("demo provider: the user denied access");
        return redirect_error(
            &pending.redirect_uri,
            "access_denied",
            "the user denied access",
            pending.state.as_deref(),
            None,
        );
    }
    let account = form.get("account").unwrap_or_default().trim();
    if account.is_empty() || account.chars().count() > 64 || account.chars().any(char::is_control) {
        let page = approve_page(
            ticket,
            &provider.config.client_id,
            &pending.scopes,
            account,
            Some("Enter an account name of 1 to 64 characters."),
        );
        return (StatusCode::BAD_REQUEST, page).into_response();
    }
    let pending = store.tickets.remove(ticket).expect("looked up above");
    store.next_grant += 1;
    let grant_id = store.next_grant;
    let code = random_token("dcal_code_");
    store.codes.insert(
        digest(&code),
        Code {
            client_id: provider.config.client_id.clone(),
            redirect_uri: pending.redirect_uri_raw,
            code_challenge: pending.code_challenge,
            grant: Grant {
                id: grant_id,
                client_id: provider.config.client_id.clone(),
                account: account.to_owned(),
                scopes: pending.scopes,
            },
            expires: Instant::now() + CODE_TTL,
        },
    );
    tracing::info!("demo provider: the user approved access");
    redirect_with(
        &pending.redirect_uri,
        &[("code", &code)],
        pending.state.as_deref(),
        None,
    )
}

/// The requested scopes, or every configured one when none is named;
/// `Err` carries the first unknown one.
fn requested_scopes(scope: Option<&str>, known: &[String]) -> Result<Vec<String>, String> {
    let Some(scope) = scope else {
        return Ok(known.to_vec());
    };
    let mut scopes: Vec<String> = Vec::new();
    for s in scope.split_ascii_whitespace() {
        if !known.iter().any(|k| k == s) {
            return Err(s.to_owned());
        }
        if !scopes.iter().any(|have| have == s) {
            scopes.push(s.to_owned());
        }
    }
    if scopes.is_empty() {
        return Ok(known.to_vec());
    }
    Ok(scopes)
}

fn scope_description(scope: &str) -> &'static str {
    match scope {
        "calendar.read" => "see the events in your calendar",
        "calendar.write" => "add events to your calendar",
        _ => "an unnamed permission",
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#1d2433}\
h1{font-size:1.4rem}code{background:#eef;padding:0 .2rem}label{display:block;margin:1rem 0 .3rem;font-weight:600}\
input[type=text]{width:100%;padding:.4rem;font-size:1rem;box-sizing:border-box}\
.actions{margin-top:1.5rem;display:flex;gap:.8rem}button{font-size:1rem;padding:.5rem 1.2rem}\
.error{color:#a00;font-weight:600}";

/// The approve page: plain HTML, every control labelled, no script.
fn approve_page(
    ticket: &str,
    client_id: &str,
    scopes: &[String],
    account: &str,
    error: Option<&str>,
) -> Html<String> {
    let items: String = scopes
        .iter()
        .map(|s| {
            format!(
                "<li><code>{}</code>: {}</li>",
                escape(s),
                scope_description(s)
            )
        })
        .collect();
    let error = alert(error);
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Demo Calendar: authorize {client}</title><style>{STYLE}</style></head><body>\
<main><h1>Demo Calendar: {client} wants {scope_list}</h1>\
<p>The application <strong>{client}</strong> asks to:</p><ul>{items}</ul>{error}\
<form method=\"post\" action=\"authorize\">\
<input type=\"hidden\" name=\"ticket\" value=\"{ticket}\">\
<label for=\"account\">Demo Calendar account</label>\
<input type=\"text\" id=\"account\" name=\"account\" value=\"{account}\" autocomplete=\"username\" maxlength=\"64\" required>\
<div class=\"actions\">\
<button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\" formnovalidate>Deny</button>\
</div></form>\
<p><small>This is a mock provider for demos; nothing leaves this machine.</small></p>\
</main></body></html>\n",
        client = escape(client_id),
        scope_list = escape(&scopes.join(" ")),
        ticket = escape(ticket),
        account = escape(account),
    ))
}

fn error_page(message: &str) -> Response {
    let page = Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Demo Calendar: error</title><style>{STYLE}</style></head><body><main>\
<h1>Demo Calendar cannot continue</h1><p class=\"error\" role=\"alert\">{}</p></main></body></html>\n",
        escape(message)
    ));
    (StatusCode::BAD_REQUEST, page).into_response()
}

// ---------------------------------------------------------------- token

/// `POST /token`.
async fn token(State(provider): State<Arc<Provider>>, headers: HeaderMap, body: Bytes) -> Response {
    match grant(&provider, &headers, &body) {
        Ok(json) => (no_store(), json).into_response(),
        Err(error) => {
            Counters::bump(&provider.stats.token_errors);
            tracing::info!(error = error.error, "demo provider: token request refused");
            error.into_response()
        }
    }
}

fn grant(
    provider: &Provider,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<serde_json::Value>, OAuthError> {
    let config = &provider.config;
    let client = TokenClient {
        id: &config.client_id,
        secret: &config.client_secret,
        realm: REALM,
        always_challenge: false,
    };
    let (grant_type, params) = token_request(&client, headers, body)?;
    match grant_type.as_str() {
        "authorization_code" => redeem_code(provider, &params),
        "refresh_token" => refresh(provider, &params),
        _ => Err(OAuthError::new(
            "unsupported_grant_type",
            "only authorization_code and refresh_token are supported",
        )),
    }
}

/// `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.6).
fn redeem_code(
    provider: &Provider,
    params: &Params,
) -> Result<Json<serde_json::Value>, OAuthError> {
    let request = CodeGrant::from_params(params)?;
    let key = digest(request.code);
    let mut store = provider.store();
    store.purge();
    // One attempt per code, right or wrong: a guessed verifier gets no second try.
    let Some(found) = store.codes.remove(&key) else {
        if let Some(grant) = store.used_codes.get(&key).copied() {
            store.revoke_grant(grant);
            return Err(OAuthError::new(
                "invalid_grant",
                "the code was already used; the tokens it issued are revoked",
            ));
        }
        return Err(OAuthError::new("invalid_grant", "unknown or expired code"));
    };
    store.used_codes.insert(key, found.grant.id);
    if found.client_id != provider.config.client_id {
        return Err(OAuthError::new(
            "invalid_grant",
            "the code was issued to another client",
        ));
    }
    request.check(&found.redirect_uri, &found.code_challenge)?;
    Counters::bump(&provider.stats.codes_redeemed);
    let scopes = found.grant.scopes.clone();
    Ok(store.issue(&provider.config, found.grant, scopes))
}

/// `grant_type=refresh_token` (RFC 6749 §6): the refresh token rotates; a
/// `scope` may narrow the new access token within the original grant.
fn refresh(provider: &Provider, params: &Params) -> Result<Json<serde_json::Value>, OAuthError> {
    let presented = params
        .get("refresh_token")
        .ok_or_else(|| OAuthError::new("invalid_request", "refresh_token is missing"))?;
    let key = digest(presented);
    let mut store = provider.store();
    let Some(found) = store.refresh.get(&key) else {
        return Err(OAuthError::new(
            "invalid_grant",
            "unknown, used or revoked refresh token",
        ));
    };
    if found.grant.client_id != provider.config.client_id {
        return Err(OAuthError::new(
            "invalid_grant",
            "the refresh token was issued to another client",
        ));
    }
    let granted = &found.grant.scopes;
    let scopes = match params.get("scope") {
        None => granted.clone(),
        Some(scope) => {
            let mut narrowed: Vec<String> = Vec::new();
            for s in scope.split_ascii_whitespace() {
                if !granted.iter().any(|g| g == s) {
                    return Err(OAuthError::new(
                        "invalid_scope",
                        format!("{s} was not granted by the resource owner"),
                    ));
                }
                if !narrowed.iter().any(|n| n == s) {
                    narrowed.push(s.to_owned());
                }
            }
            narrowed
        }
    };
    let grant = store.refresh.remove(&key).expect("looked up above").grant;
    Counters::bump(&provider.stats.refreshes);
    Ok(store.issue(&provider.config, grant, scopes))
}

// ---------------------------------------------------------------- API

/// An RFC 6750 §3 refusal by the API.
fn api_refusal(
    provider: &Provider,
    status: StatusCode,
    error: Option<(&str, &str)>,
    scope: Option<&str>,
) -> Box<Response> {
    Counters::bump(&provider.stats.api_refused);
    let mut params = vec![format!("realm=\"{REALM}\"")];
    if let Some((code, description)) = error {
        params.push(format!("error=\"{code}\""));
        params.push(format!("error_description=\"{}\"", quotable(description)));
    }
    if let Some(scope) = scope {
        params.push(format!("scope=\"{scope}\""));
    }
    let body = match error {
        Some((code, description)) => json!({"error": code, "error_description": description}),
        None => json!({"error": "unauthorized", "error_description": "a bearer token is required"}),
    };
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", params.join(", "))) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    Box::new(response)
}

/// The account behind the bearer token, if it carries one of `needed`.
fn authorize_api(
    provider: &Provider,
    headers: &HeaderMap,
    needed: &[&str],
) -> Result<String, Box<Response>> {
    let Some(token) = bearer(headers) else {
        return Err(api_refusal(provider, StatusCode::UNAUTHORIZED, None, None));
    };
    let mut store = provider.store();
    store.purge();
    let Some(access) = store.access.get(&digest(token)) else {
        return Err(api_refusal(
            provider,
            StatusCode::UNAUTHORIZED,
            Some((
                "invalid_token",
                "the access token is unknown, revoked or expired",
            )),
            None,
        ));
    };
    if !access.scopes.iter().any(|s| needed.contains(&s.as_str())) {
        return Err(api_refusal(
            provider,
            StatusCode::FORBIDDEN,
            Some((
                "insufficient_scope",
                "the access token lacks the scope this call needs",
            )),
            Some(&needed.join(" ")),
        ));
    }
    Counters::bump(&provider.stats.api_authorized);
    Ok(access.account.clone())
}

/// `GET /api/calendar/events`: a JSON array of `{"id", "title", "start"}`.
async fn list_events(State(provider): State<Arc<Provider>>, headers: HeaderMap) -> Response {
    let account = match authorize_api(&provider, &headers, &["calendar.read", "calendar.write"]) {
        Ok(account) => account,
        Err(refusal) => return *refusal,
    };
    let events = provider.store().calendar(&account).clone();
    Json(events).into_response()
}

#[derive(Deserialize)]
struct NewEvent {
    title: String,
    start: String,
}

/// `POST /api/calendar/events` with `{"title", "start"}`: `201` and the event.
async fn create_event(
    State(provider): State<Arc<Provider>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let account = match authorize_api(&provider, &headers, &["calendar.write"]) {
        Ok(account) => account,
        Err(refusal) => return *refusal,
    };
    let invalid = |description: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "error_description": description})),
        )
            .into_response()
    };
    let Ok(new) = serde_json::from_slice::<NewEvent>(&body) else {
        return invalid("expected a JSON object with string fields title and start");
    };
    let (title, start) = (new.title.trim(), new.start.trim());
    if title.is_empty() || title.chars().count() > 200 {
        return invalid("title must be 1 to 200 characters");
    }
    if start.is_empty() || start.chars().count() > 64 {
        return invalid("start must be 1 to 64 characters");
    }
    let mut store = provider.store();
    store.next_event += 1;
    let event = Event {
        id: format!("evt-{}", store.next_event),
        title: title.to_owned(),
        start: start.to_owned(),
    };
    store.calendar(&account).push(event.clone());
    (StatusCode::CREATED, Json(event)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_date_knows_leap_years() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(19_782), "2024-02-29");
        assert_eq!(civil_date(20_510), "2026-02-26");
    }

    #[test]
    fn requested_scopes_default_to_all_and_refuse_unknown() {
        let known = vec!["calendar.read".to_owned(), "calendar.write".to_owned()];
        assert_eq!(requested_scopes(None, &known).unwrap(), known);
        assert_eq!(
            requested_scopes(Some("calendar.read calendar.read"), &known).unwrap(),
            vec!["calendar.read".to_owned()]
        );
        assert_eq!(
            requested_scopes(Some("mail.read"), &known).unwrap_err(),
            "mail.read"
        );
    }

    #[test]
    fn approve_page_escapes_and_labels() {
        let page = approve_page("t", "<hub>", &["calendar.read".into()], "a\"b", None).0;
        assert!(page.contains("&lt;hub&gt;"));
        assert!(page.contains("value=\"a&quot;b\""));
        assert!(page.contains("<label for=\"account\">"));
        assert!(!page.contains("<script"));
    }
}
