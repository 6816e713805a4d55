//! The third-party provider role: the OAuth 2.0 provider (and its API) behind
//! a hub's Connection, on a loopback wiremock server of its own.
//!
//! * `/authorize` (RFC 6749 §4.1.1) records what the hub sent (PKCE, state,
//!   scope, redirect URI) and redirects straight back with a code and the
//!   received state, as a provider whose user approved would;
//! * `/token` serves `authorization_code` (verifying the S256 PKCE challenge
//!   it recorded, RFC 7636 §4.6) and `refresh_token` (RFC 6749 §6: rotation,
//!   an optional narrower `scope`, `invalid_grant` for a retired or unknown
//!   refresh token), and on demand misbehaves: `invalid_grant`, garbage,
//!   HTML, HTTP 500, no `expires_in`, or a slow answer;
//! * `/api/calendar/events` records the bearer tokens it is shown.
//!
//! Every token and code it issues gets a label (`at1`, `rt1`, `code1`, …) and
//! the owner it was issued for, so scenarios can say *whose* token came back,
//! and is reported as a secret, so no trail or report may contain it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// How the token endpoint answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenMode {
    /// Like a real provider.
    #[default]
    Normal,
    /// Every refresh is refused with `invalid_grant` (RFC 6749 §5.2).
    InvalidGrant,
    /// HTTP 200 with a body that is not JSON.
    Garbage,
    /// HTTP 200 with an HTML page (a login wall, a proxy's error page).
    Html,
    /// HTTP 500.
    ServerError,
    /// A correct token response without `expires_in`.
    NoExpiresIn,
    /// A correct answer (without rotating the refresh token), after `slow_secs`.
    Slow,
}

/// What the provider knows about a token it issued.
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    /// `at1`, `rt2`, … in issuance order.
    pub label: String,
    /// Whom it was issued for: the owner written by the scenario (`user:alice`),
    /// inherited through refreshes, or `connect` for a code the connect flow redeemed.
    pub owner: String,
    /// `stored` (minted for the harness to store in the vault), `refresh_token` or `authorization_code`.
    pub source: &'static str,
    pub scopes: Vec<String>,
}

/// One request to the token endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct TokenRequest {
    pub grant_type: String,
    /// The label of the refresh token presented (`unknown` if not one the provider issued).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client_id the hub authenticated with (Basic or form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// HTTP status the provider answered with.
    pub status: u16,
    /// For `authorization_code`: the verifier matched the recorded S256 challenge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verifier_matched: Option<bool>,
    /// For `authorization_code`: the code the grant presented.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// A code issued by the authorization endpoint.
#[derive(Debug, Clone)]
struct PendingCode {
    label: String,
    challenge: Option<String>,
    method: Option<String>,
    redirect_uri: String,
    scopes: Vec<String>,
    used: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Issued so far, per label prefix.
    counters: BTreeMap<&'static str, usize>,
    access: BTreeMap<String, Issued>,
    refresh: BTreeMap<String, Issued>,
    /// Refresh tokens replaced by rotation (they answer invalid_grant).
    retired: BTreeMap<String, String>,
    codes: BTreeMap<String, PendingCode>,
    authorize_requests: Vec<BTreeMap<String, String>>,
    token_requests: Vec<TokenRequest>,
    /// Bearer tokens the API saw, in order.
    api_bearers: Vec<Option<String>>,
    mode: TokenMode,
    slow_secs: u64,
    /// How long every other token answer waits, so that concurrent callers
    /// overlap at the provider however busy the machine is.
    delay_ms: u64,
    /// `expires_in` of tokens issued at the token endpoint (0: already expired).
    expires_in: u64,
    /// Every token and code issued, for redaction and the audit check.
    secrets: Vec<String>,
}

impl State {
    fn next(&mut self, prefix: &'static str) -> String {
        let count = self.counters.entry(prefix).or_default();
        *count += 1;
        format!("{prefix}{count}")
    }

    fn mint(
        &mut self,
        owner: &str,
        source: &'static str,
        scopes: &[String],
        with_refresh: bool,
    ) -> (String, Option<String>) {
        let access = format!("prov-at-{}", crate::random_token());
        let label = self.next("at");
        self.access.insert(
            access.clone(),
            Issued {
                label,
                owner: owner.to_owned(),
                source,
                scopes: scopes.to_vec(),
            },
        );
        self.secrets.push(access.clone());
        let refresh = with_refresh.then(|| {
            let refresh = format!("prov-rt-{}", crate::random_token());
            let label = self.next("rt");
            self.refresh.insert(
                refresh.clone(),
                Issued {
                    label,
                    owner: owner.to_owned(),
                    source,
                    scopes: scopes.to_vec(),
                },
            );
            self.secrets.push(refresh.clone());
            refresh
        });
        (access, refresh)
    }

    fn refresh_label(&self, token: &str) -> String {
        self.refresh
            .get(token)
            .map(|i| i.label.clone())
            .or_else(|| self.retired.get(token).cloned())
            .unwrap_or_else(|| "unknown".to_owned())
    }
}

/// An answer of the token endpoint and its status (templates do not expose theirs).
type Answer = (u16, ResponseTemplate);

fn oauth_error(status: u16, error: &str, description: &str) -> Answer {
    (
        status,
        ResponseTemplate::new(status)
            .insert_header("cache-control", "no-store")
            .set_body_json(json!({"error": error, "error_description": description})),
    )
}

/// A form body's fields (the last of a repeated one wins).
pub(crate) fn form(body: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn split_scopes(scope: &str) -> Vec<String> {
    scope.split_ascii_whitespace().map(str::to_owned).collect()
}

/// The client_id and secret of HTTP Basic client authentication (RFC 6749
/// §2.3.1), each form-decoded; the secret empty when there is no `:`.
pub(crate) fn basic_credentials(request: &Request) -> Option<(String, String)> {
    let header = request.headers.get("authorization")?.to_str().ok()?;
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':').unwrap_or((decoded.as_str(), ""));
    let decode = |part: &str| {
        url::form_urlencoded::parse(format!("x={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((decode(id)?, decode(secret)?))
}

struct TokenEndpoint(Arc<Mutex<State>>);

impl Respond for TokenEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = lock(&self.0);
        let params = form(&request.body);
        let grant_type = params.get("grant_type").cloned().unwrap_or_default();
        let mut record = TokenRequest {
            grant_type: grant_type.clone(),
            refresh_token: params
                .get("refresh_token")
                .map(|rt| state.refresh_label(rt)),
            scope: params.get("scope").cloned(),
            client_id: basic_credentials(request)
                .map(|(id, _)| id)
                .or_else(|| params.get("client_id").cloned()),
            status: 200,
            verifier_matched: None,
            code: None,
        };
        let mode = state.mode;
        let (status, answer) = match mode {
            TokenMode::Garbage => (
                200,
                ResponseTemplate::new(200)
                    .set_body_raw("{\"access_token\": <<not json", "application/json"),
            ),
            TokenMode::Html => (
                200,
                ResponseTemplate::new(200).set_body_raw(
                    "<!doctype html><html><body><h1>Sign in to continue</h1></body></html>",
                    "text/html; charset=utf-8",
                ),
            ),
            TokenMode::ServerError => (
                500,
                ResponseTemplate::new(500).set_body_raw("upstream exploded", "text/plain"),
            ),
            _ => match grant_type.as_str() {
                "refresh_token" => refresh_grant(&mut state, &params),
                "authorization_code" => code_grant(&mut state, &params, &mut record),
                _ => oauth_error(
                    400,
                    "unsupported_grant_type",
                    "this provider serves authorization_code and refresh_token",
                ),
            },
        };
        record.status = status;
        state.token_requests.push(record);
        if mode == TokenMode::Slow {
            let delay = Duration::from_secs(state.slow_secs);
            return answer.set_delay(delay);
        }
        if state.delay_ms > 0 {
            return answer.set_delay(Duration::from_millis(state.delay_ms));
        }
        answer
    }
}

fn token_response(state: &State, access: &str, refresh: Option<&str>, scopes: &[String]) -> Answer {
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "scope": scopes.join(" "),
    });
    if state.mode != TokenMode::NoExpiresIn {
        body["expires_in"] = json!(state.expires_in);
    }
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    (
        200,
        ResponseTemplate::new(200)
            .insert_header("cache-control", "no-store")
            .set_body_json(body),
    )
}

/// RFC 6749 §6, with rotation: the presented refresh token is retired and a new one issued.
fn refresh_grant(state: &mut State, params: &BTreeMap<String, String>) -> Answer {
    if state.mode == TokenMode::InvalidGrant {
        return oauth_error(
            400,
            "invalid_grant",
            "the refresh token was revoked by the user",
        );
    }
    let presented = params.get("refresh_token").cloned().unwrap_or_default();
    let Some(grant) = state.refresh.get(&presented).cloned() else {
        return oauth_error(
            400,
            "invalid_grant",
            "unknown, expired or already rotated refresh token",
        );
    };
    let scopes = match params.get("scope") {
        None => grant.scopes.clone(),
        Some(requested) => {
            let requested = split_scopes(requested);
            if requested.is_empty() || requested.iter().any(|s| !grant.scopes.contains(s)) {
                return oauth_error(
                    400,
                    "invalid_scope",
                    "the requested scope exceeds the grant",
                );
            }
            requested
        }
    };
    if state.mode == TokenMode::Slow {
        // An answer the client gave up on must not cost it its refresh token: no rotation.
        let (access, _) = state.mint(&grant.owner, "refresh_token", &scopes, false);
        return token_response(state, &access, None, &scopes);
    }
    state.refresh.remove(&presented);
    state.retired.insert(presented, grant.label.clone());
    // The new refresh token keeps the original grant's scope (RFC 6749 §6).
    let (access, _) = state.mint(&grant.owner, "refresh_token", &scopes, false);
    let refresh = format!("prov-rt-{}", crate::random_token());
    let label = state.next("rt");
    state.refresh.insert(
        refresh.clone(),
        Issued {
            label,
            owner: grant.owner.clone(),
            source: "refresh_token",
            scopes: grant.scopes.clone(),
        },
    );
    state.secrets.push(refresh.clone());
    token_response(state, &access, Some(&refresh), &scopes)
}

/// RFC 6749 §4.1.3 with RFC 7636 §4.6: the code, its redirect URI and the S256 verifier.
fn code_grant(
    state: &mut State,
    params: &BTreeMap<String, String>,
    record: &mut TokenRequest,
) -> Answer {
    let code = params.get("code").cloned().unwrap_or_default();
    let Some(pending) = state.codes.get(&code).cloned() else {
        return oauth_error(400, "invalid_grant", "unknown authorization code");
    };
    record.code = Some(pending.label.clone());
    if pending.used {
        return oauth_error(400, "invalid_grant", "authorization code already used");
    }
    let matched = match (&pending.challenge, params.get("code_verifier")) {
        (Some(challenge), Some(verifier)) => {
            pending.method.as_deref() == Some("S256")
                && URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == *challenge
        }
        // A provider that did not get a challenge cannot check a verifier.
        (None, _) => false,
        (Some(_), None) => false,
    };
    record.verifier_matched = Some(matched);
    if pending.challenge.is_some() && !matched {
        return oauth_error(400, "invalid_grant", "PKCE verification failed");
    }
    if params.get("redirect_uri") != Some(&pending.redirect_uri) {
        return oauth_error(
            400,
            "invalid_grant",
            "redirect_uri differs from the authorization request",
        );
    }
    if let Some(p) = state.codes.get_mut(&code) {
        p.used = true;
    }
    let (access, refresh) = state.mint("connect", "authorization_code", &pending.scopes, true);
    token_response(state, &access, refresh.as_deref(), &pending.scopes)
}

struct AuthorizeEndpoint(Arc<Mutex<State>>);

impl Respond for AuthorizeEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = lock(&self.0);
        let query: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        state.authorize_requests.push(query.clone());
        let Some(redirect_uri) = query.get("redirect_uri").cloned() else {
            return ResponseTemplate::new(400).set_body_string("missing redirect_uri");
        };
        let Ok(mut back) = url::Url::parse(&redirect_uri) else {
            return ResponseTemplate::new(400).set_body_string("invalid redirect_uri");
        };
        let code = format!("prov-code-{}", crate::random_token());
        let label = state.next("code");
        state.codes.insert(
            code.clone(),
            PendingCode {
                label,
                challenge: query.get("code_challenge").cloned(),
                method: query.get("code_challenge_method").cloned(),
                redirect_uri,
                scopes: query
                    .get("scope")
                    .map(|s| split_scopes(s))
                    .unwrap_or_default(),
                used: false,
            },
        );
        state.secrets.push(code.clone());
        {
            let mut pairs = back.query_pairs_mut();
            pairs.append_pair("code", &code);
            if let Some(s) = query.get("state") {
                pairs.append_pair("state", s);
            }
        }
        ResponseTemplate::new(302).insert_header("location", back.as_str())
    }
}

struct Api(Arc<Mutex<State>>, &'static str);

impl Respond for Api {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = lock(&self.0);
        let bearer = request
            .headers
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::to_owned);
        state.api_bearers.push(bearer.clone());
        let Some(issued) = bearer.as_deref().and_then(|b| state.access.get(b)) else {
            return ResponseTemplate::new(401)
                .insert_header("www-authenticate", "Bearer error=\"invalid_token\"")
                .set_body_json(json!({"error": "invalid_token"}));
        };
        if !issued.scopes.iter().any(|s| s == self.1) {
            return ResponseTemplate::new(403)
                .insert_header(
                    "www-authenticate",
                    format!("Bearer error=\"insufficient_scope\", scope=\"{}\"", self.1).as_str(),
                )
                .set_body_json(json!({"error": "insufficient_scope"}));
        }
        ResponseTemplate::new(200).set_body_json(json!({
            "events": [{"id": "evt-1", "title": "Conformance review", "start": "2030-01-07T10:00:00Z"}],
        }))
    }
}

fn lock(state: &Arc<Mutex<State>>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running provider.
pub struct Provider {
    server: MockServer,
    state: Arc<Mutex<State>>,
    /// The client credentials the hub is given for this provider.
    pub client_id: String,
    pub client_secret: String,
}

impl Provider {
    pub async fn start() -> Provider {
        let server = MockServer::builder().start().await;
        let state = Arc::new(Mutex::new(State {
            expires_in: 3600,
            ..State::default()
        }));
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(TokenEndpoint(state.clone()))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/authorize"))
            .respond_with(AuthorizeEndpoint(state.clone()))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/calendar/events"))
            .respond_with(Api(state.clone(), "calendar.read"))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/calendar/events"))
            .respond_with(Api(state.clone(), "calendar.write"))
            .mount(&server)
            .await;
        let client_secret = format!("prov-secret-{}", crate::random_token());
        lock(&state).secrets.push(client_secret.clone());
        Provider {
            server,
            state,
            client_id: "conform-hub".to_owned(),
            client_secret,
        }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    pub fn authorization_endpoint(&self) -> String {
        format!("{}/authorize", self.uri())
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.uri())
    }

    pub fn api_base_url(&self) -> String {
        format!("{}/api", self.uri())
    }

    /// Sets how the token endpoint answers from now on, the lifetime of
    /// the tokens it issues (`0`: already expired), and how long its answers
    /// wait (`delay_ms`; `slow_secs` in `Slow` mode).
    pub fn set_mode(&self, mode: TokenMode, expires_in: u64, slow_secs: u64, delay_ms: u64) {
        let mut state = lock(&self.state);
        state.mode = mode;
        state.expires_in = expires_in;
        state.slow_secs = slow_secs;
        state.delay_ms = delay_ms;
    }

    /// Issues a token (and optionally a refresh token) for the harness to store
    /// in the hub's vault on behalf of `owner`.
    pub fn mint(
        &self,
        owner: &str,
        scopes: &[String],
        with_refresh: bool,
    ) -> (String, Option<String>) {
        lock(&self.state).mint(owner, "stored", scopes, with_refresh)
    }

    /// What the provider knows about an access token it issued.
    pub fn issued(&self, access_token: &str) -> Option<Issued> {
        lock(&self.state).access.get(access_token).cloned()
    }

    /// Every token, code and secret the provider issued so far.
    pub fn secrets(&self) -> Vec<String> {
        lock(&self.state).secrets.clone()
    }

    /// Requests the token endpoint received, oldest first.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        lock(&self.state).token_requests.clone()
    }

    /// The query of the last authorization request.
    pub fn last_authorize(&self) -> Option<BTreeMap<String, String>> {
        lock(&self.state).authorize_requests.last().cloned()
    }

    /// The authorization requests received.
    pub fn authorize_count(&self) -> usize {
        lock(&self.state).authorize_requests.len()
    }

    /// The bearer tokens the API saw, each described: the provider's token
    /// (its label, owner, scopes) or `{"label": "foreign"}` for anything else.
    pub fn api_log(&self) -> Vec<(Option<String>, Value)> {
        let state = lock(&self.state);
        state
            .api_bearers
            .iter()
            .map(|b| {
                let described = match b.as_deref().and_then(|b| state.access.get(b)) {
                    Some(issued) => serde_json::to_value(issued).unwrap_or_default(),
                    None if b.is_none() => json!({"label": "none"}),
                    None => json!({"label": "foreign"}),
                };
                (b.clone(), described)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    async fn post_form(url: &str, form: &[(&str, &str)]) -> (u16, Value, String) {
        let response = reqwest::Client::new()
            .post(url)
            .basic_auth("conform-hub", Some("x"))
            .form(form)
            .send()
            .await
            .expect("provider answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or_default(),
            text,
        )
    }

    #[tokio::test]
    async fn refresh_rotates_and_the_old_token_is_then_refused() {
        let provider = Provider::start().await;
        let (_, rt) = provider.mint(
            "user:alice",
            &scopes(&["calendar.read", "calendar.write"]),
            true,
        );
        let rt = rt.expect("refresh token");
        let token = provider.token_endpoint();
        let (status, body, _) = post_form(
            &token,
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["expires_in"], 3600);
        let new_rt = body["refresh_token"].as_str().expect("rotated").to_owned();
        assert_ne!(new_rt, rt);
        let issued = provider
            .issued(body["access_token"].as_str().unwrap_or_default())
            .expect("known");
        assert_eq!(
            (issued.owner.as_str(), issued.source),
            ("user:alice", "refresh_token")
        );
        let (status, body, _) = post_form(
            &token,
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        let (status, _, _) = post_form(
            &token,
            &[("grant_type", "refresh_token"), ("refresh_token", &new_rt)],
        )
        .await;
        assert_eq!(status, 200);
        let presented: Vec<_> = provider
            .token_requests()
            .iter()
            .map(|r| (r.refresh_token.clone().unwrap_or_default(), r.status))
            .collect();
        assert_eq!(
            presented,
            vec![
                ("rt1".to_owned(), 200),
                ("rt1".to_owned(), 400),
                ("rt2".to_owned(), 200)
            ]
        );
        assert_eq!(
            provider.token_requests()[0].client_id.as_deref(),
            Some("conform-hub")
        );
    }

    #[tokio::test]
    async fn refresh_narrows_to_the_requested_scope_and_refuses_wider() {
        let provider = Provider::start().await;
        let (_, rt) = provider.mint(
            "tenant:acme",
            &scopes(&["calendar.read", "calendar.write"]),
            true,
        );
        let token = provider.token_endpoint();
        let (status, body, _) = post_form(
            &token,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_deref().unwrap_or_default()),
                ("scope", "calendar.read"),
            ],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["scope"], "calendar.read");
        let access = body["access_token"].as_str().unwrap_or_default();
        assert_eq!(
            provider.issued(access).map(|i| i.scopes),
            Some(scopes(&["calendar.read"]))
        );
        // The rotated refresh token keeps the whole grant; asking beyond it is refused.
        let rt2 = body["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (status, body, _) = post_form(
            &token,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt2),
                ("scope", "calendar.admin"),
            ],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_scope"))
        );
    }

    #[tokio::test]
    async fn misbehaves_on_demand() {
        let provider = Provider::start().await;
        let token = provider.token_endpoint();
        let form = |rt: &str| {
            vec![
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", rt.to_owned()),
            ]
        };
        let mint = || {
            provider
                .mint("user:alice", &scopes(&["calendar.read"]), true)
                .1
                .unwrap_or_default()
        };

        provider.set_mode(TokenMode::Garbage, 3600, 0, 0);
        let rt = mint();
        let f = form(&rt);
        let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body, text) = post_form(&token, &pairs).await;
        assert_eq!((status, body.is_null()), (200, true), "{text}");

        provider.set_mode(TokenMode::Html, 3600, 0, 0);
        let (status, _, text) = post_form(&token, &pairs).await;
        assert!(status == 200 && text.contains("<html>"));

        provider.set_mode(TokenMode::ServerError, 3600, 0, 0);
        assert_eq!(post_form(&token, &pairs).await.0, 500);

        provider.set_mode(TokenMode::InvalidGrant, 3600, 0, 0);
        let (status, body, _) = post_form(&token, &pairs).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );

        provider.set_mode(TokenMode::NoExpiresIn, 0, 0, 0);
        let (status, body, _) = post_form(&token, &pairs).await;
        assert_eq!(status, 200);
        assert!(body.get("expires_in").is_none() && body["access_token"].is_string());

        provider.set_mode(TokenMode::Normal, 0, 0, 0);
        let rt = body["refresh_token"].as_str().unwrap_or_default();
        let (status, body, _) = post_form(
            &token,
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        )
        .await;
        assert_eq!((status, body["expires_in"].as_u64()), (200, Some(0)));

        let statuses: Vec<u16> = provider.token_requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![200, 200, 500, 400, 200, 200]);
    }

    #[tokio::test]
    async fn a_slow_answer_outlasts_a_shorter_client_timeout() {
        let provider = Provider::start().await;
        provider.set_mode(TokenMode::Slow, 3600, 3, 0);
        let rt = provider
            .mint("user:alice", &scopes(&["calendar.read"]), true)
            .1
            .unwrap_or_default();
        let result = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .expect("client")
            .post(provider.token_endpoint())
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_str()),
            ])
            .send()
            .await;
        assert!(result.is_err_and(|e| e.is_timeout()));
    }

    #[tokio::test]
    async fn authorize_redirects_back_and_the_code_needs_the_s256_verifier() {
        let provider = Provider::start().await;
        let verifier = "a-verifier-of-sufficient-length-0123456789-abcdefgh";
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let callback = "http://127.0.0.1:9/connections/callback";
        let response = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .get(provider.authorization_endpoint())
            .query(&[
                ("response_type", "code"),
                ("client_id", "conform-hub"),
                ("redirect_uri", callback),
                ("scope", "calendar.read calendar.write"),
                ("state", "s-123"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status().as_u16(), 302);
        let location = url::Url::parse(response.headers()["location"].to_str().unwrap_or_default())
            .expect("a URL");
        assert!(location.as_str().starts_with(callback));
        let back: BTreeMap<String, String> = location.query_pairs().into_owned().collect();
        assert_eq!(back.get("state").map(String::as_str), Some("s-123"));
        let recorded = provider.last_authorize().unwrap_or_default();
        assert_eq!(
            recorded.get("code_challenge_method").map(String::as_str),
            Some("S256")
        );

        let code = back.get("code").cloned().unwrap_or_default();
        let token = provider.token_endpoint();
        let grant = |v: &'static str| {
            vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code.clone()),
                ("redirect_uri", callback.to_owned()),
                ("code_verifier", v.to_owned()),
            ]
        };
        let pairs = |f: &Vec<(&'static str, String)>| {
            f.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>()
        };
        let wrong = pairs(&grant("wrong-verifier-wrong-verifier-wrong-verifier-0000"));
        let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(post_form(&token, &wrong).await.0, 400);
        let right = pairs(&grant(verifier));
        let right: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body, _) = post_form(&token, &right).await;
        assert_eq!(status, 200);
        let issued = provider
            .issued(body["access_token"].as_str().unwrap_or_default())
            .expect("known");
        assert_eq!(
            (issued.owner.as_str(), issued.source),
            ("connect", "authorization_code")
        );
        assert_eq!(issued.scopes, scopes(&["calendar.read", "calendar.write"]));
        // Codes are single use.
        assert_eq!(post_form(&token, &right).await.0, 400);
        let matched: Vec<Option<bool>> = provider
            .token_requests()
            .iter()
            .map(|r| r.verifier_matched)
            .collect();
        assert_eq!(matched, vec![Some(false), Some(true), None]);
        assert!(provider.secrets().contains(&code));
    }

    #[tokio::test]
    async fn the_api_records_every_bearer_and_checks_scope() {
        let provider = Provider::start().await;
        let (read_only, _) = provider.mint("user:alice", &scopes(&["calendar.read"]), false);
        let client = reqwest::Client::new();
        let url = format!("{}/calendar/events", provider.api_base_url());
        let get = client
            .get(&url)
            .bearer_auth(&read_only)
            .send()
            .await
            .expect("answers");
        assert_eq!(get.status().as_u16(), 200);
        let post = client
            .post(&url)
            .bearer_auth(&read_only)
            .send()
            .await
            .expect("answers");
        assert_eq!(post.status().as_u16(), 403);
        let foreign = client
            .get(&url)
            .bearer_auth("eyJhub-token")
            .send()
            .await
            .expect("answers");
        assert_eq!(foreign.status().as_u16(), 401);
        let labels: Vec<Value> = provider
            .api_log()
            .into_iter()
            .map(|(_, d)| d["label"].clone())
            .collect();
        assert_eq!(labels, vec![json!("at1"), json!("at1"), json!("foreign")]);
    }
}
