//! The Agenda MCP server: real MCP over Streamable HTTP (the official `rmcp`
//! SDK), protected by the hub, with two tools over the user's Demo Calendar.
//! It never holds a calendar credential: on every tool call it asks the
//! hub's vault for the user's `demo-calendar` token by RFC 8693 token
//! exchange, and it never forwards the caller's token upstream.
//!
//! # Protection (MCP authorization 2025-11-25, RFC 6750, RFC 9068, RFC 9728)
//!
//! In front of rmcp, on every method:
//!
//! * no bearer token → `401`, `WWW-Authenticate: Bearer resource_metadata="<resource_metadata>",
//!   scope="agenda.read agenda.write"`, body `{"error": "unauthorized", …}`;
//! * a token that is not the hub's JWT access token for this resource (ES256
//!   signature under a key of the hub's JWKS, `typ` `at+jwt`, `iss` = issuer,
//!   `aud` = resource as a string or in an array, unexpired `exp`, and the
//!   claims `sub`, `client_id`, `iat`, `jti`) → `401` with
//!   `error="invalid_token", error_description="…"` added;
//! * a `tools/call` (alone or anywhere in a batch array) whose tool needs a
//!   scope the token lacks (`calendar_read` → `agenda.read`, `calendar_write`
//!   → `agenda.write`) → `403`, `WWW-Authenticate: Bearer error="insufficient_scope",
//!   scope="<the scopes the request needs>", resource_metadata="…", error_description="…"`.
//!
//! The JWKS is fetched from `jwks_uri` on first use, cached, and fetched
//! again once when a token names an unknown `kid`; when it cannot be fetched
//! the answer is `503`. Expiry is checked on this machine's clock (not the
//! hub's test clock) and revocation is not checked here: the hub refuses a
//! revoked token at the token exchange every tool call makes.
//!
//! # The exchange a client makes
//!
//! rmcp runs **stateless** with **JSON responses**: no session, no
//! `Mcp-Session-Id`, no `initialize` needed before `tools/list` or
//! `tools/call` (an `initialize` is answered too, for clients that send one,
//! and `notifications/initialized` gets `202`). Every request is one `POST`
//! to the mount point (e.g. `/mcp/agenda`) with:
//!
//! * `Authorization: Bearer <hub access token>`;
//! * `Accept: application/json, text/event-stream` (both, or rmcp answers `406`);
//! * `Content-Type: application/json` (else `415`);
//! * `MCP-Protocol-Version: 2025-11-25` (optional; absent means 2025-03-26,
//!   an unknown value is `400`; `2026-07-28` switches rmcp to that revision's
//!   per-request `_meta` and `Mcp-Method` header rules, so don't send it
//!   unless you follow them);
//! * a `Host` of `localhost`, `127.0.0.1`, `::1` or the host of `resource`
//!   (rmcp's DNS-rebinding guard answers `403` otherwise).
//!
//! A JSON-RPC response comes back as `200` with `Content-Type: application/json`
//! (one JSON-RPC message, not SSE). `GET` and `DELETE` are `405`.
//!
//! ```text
//! POST /mcp/agenda HTTP/1.1
//! Host: 127.0.0.1:8080
//! Authorization: Bearer eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6…
//! Accept: application/json, text/event-stream
//! Content-Type: application/json
//! MCP-Protocol-Version: 2025-11-25
//!
//! {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"calendar_read","arguments":{}}}
//!
//! HTTP/1.1 200 OK
//! content-type: application/json
//!
//! {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"[\n  {\n    \"id\": \"evt-1\", …"}],"isError":false}}
//! ```
//!
//! `calendar_write` takes `{"title": "…", "start": "…"}` and returns the
//! created event. A tool that ran but failed (the hub would not release the
//! token, the calendar refused) is a result with `"isError": true` and a text
//! saying why, including the hub's `connect_uri` when it sent one; an unknown
//! tool is a JSON-RPC error (`-32602`).
//!
//! # Per call
//!
//! 1. Token exchange at `token_endpoint` (HTTP Basic with this server's own
//!    credentials): `subject_token` = the caller's token, `resource` =
//!    `urn:hub:connection:<connection>`, `scope` = `calendar.read` or
//!    `calendar.write`.
//! 2. `GET` or `POST {api_base_url}/calendar/events` with the vault token.
//! 3. `POST audit_endpoint` (HTTP Basic, JSON `{"tool", "resource", "client_id",
//!    "user", "tenant", "outcome", "reason", "act"}`); a failed report is
//!    logged, not fatal.
//!
//! # Mounting
//!
//! [`router`] answers on every path, so the hub may mount it with
//! `Router::nest_service("/mcp/agenda", agenda::router(config))` (or `nest`):
//! both `/mcp/agenda` and `/mcp/agenda/` reach it. It needs no state and no
//! `ConnectInfo`.
//!
//! # Faults
//!
//! [`AgendaFaults`] break one requirement each, for the sensitivity matrix:
//! `token_passthrough` skips the exchange and sends the caller's hub token
//! to the calendar API (at [`AgendaConfig::api_base_url`], else the base URL
//! of the last successful exchange); `skip_tool_scope` drops the per-tool
//! scope check (both the 403 and the handler's own check).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::util::{bearer, quotable};

const READ_SCOPE: &str = "agenda.read";
const WRITE_SCOPE: &str = "agenda.write";
const ALL_SCOPES: &str = "agenda.read agenda.write";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Hub and calendar calls must not hang a tool call forever.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// JSON-RPC bodies are small; the scope check must read them whole.
const MAX_BODY: usize = 1024 * 1024;

/// Where the Agenda server lives and how it reaches the hub.
#[derive(Clone)]
pub struct AgendaConfig {
    /// Its canonical URL (the `aud` its tokens must carry), e.g. `http://127.0.0.1:8080/mcp/agenda`.
    pub resource: String,
    /// The URL of its RFC 9728 metadata, served by the hub; named in every challenge.
    pub resource_metadata: String,
    /// The hub's issuer, e.g. `http://127.0.0.1:8080/oauth`.
    pub issuer: String,
    pub jwks_uri: String,
    /// Where it exchanges the caller's token for the vault's (RFC 8693).
    pub token_endpoint: String,
    /// Where it reports tool executions (`POST`, HTTP Basic, JSON).
    pub audit_endpoint: String,
    /// Where it asks whether a token is still active (RFC 7662, HTTP Basic
    /// with its own credentials); `None` trusts a valid signature alone, so
    /// a revoked token would work until it expires.
    pub introspection_endpoint: Option<String>,
    /// Origins whose pages may call it besides its own (MCP transports:
    /// servers MUST validate `Origin`); requests without `Origin` (no
    /// browser) are not affected.
    pub allowed_origins: Vec<String>,
    /// Its own credentials at the hub (a `resource_server` client).
    pub client_id: String,
    pub client_secret: String,
    /// The hub connection whose token it fetches, e.g. `demo-calendar`.
    pub connection: String,
    /// The calendar API base URL for the `token_passthrough` fault, which
    /// skips the exchange that normally tells it; `None` falls back to the
    /// base URL of the last successful exchange. Unused otherwise.
    pub api_base_url: Option<String>,
    pub faults: AgendaFaults,
}

impl std::fmt::Debug for AgendaConfig {
    /// Never prints the client secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgendaConfig")
            .field("resource", &self.resource)
            .field("resource_metadata", &self.resource_metadata)
            .field("issuer", &self.issuer)
            .field("jwks_uri", &self.jwks_uri)
            .field("token_endpoint", &self.token_endpoint)
            .field("audit_endpoint", &self.audit_endpoint)
            .field("introspection_endpoint", &self.introspection_endpoint)
            .field("allowed_origins", &self.allowed_origins)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("connection", &self.connection)
            .field("api_base_url", &self.api_base_url)
            .field("faults", &self.faults)
            .finish()
    }
}

/// Named deviations, off by default; each breaks one requirement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgendaFaults {
    /// Sends the caller's hub token to the calendar API instead of the vault's token.
    pub token_passthrough: bool,
    /// Runs any tool whatever the token's scopes.
    pub skip_tool_scope: bool,
    /// Answers requests from any `Origin`.
    pub ignore_origin: bool,
    /// Never asks the hub whether a valid-looking token was revoked.
    pub accept_revoked: bool,
    /// An insufficient_scope challenge names only the scopes the call needs,
    /// not those the token already holds.
    pub challenge_drops_held_scopes: bool,
}

/// The Agenda MCP server, answering on every path (see the module docs).
pub fn router(config: AgendaConfig) -> Router {
    let mut allowed_hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(host) = url::Url::parse(&config.resource)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
    {
        allowed_hosts.push(host);
    }
    let inner = Arc::new(Inner {
        http: http_client(),
        keys: tokio::sync::Mutex::default(),
        last_api_base: Mutex::default(),
        config,
    });
    let server = Agenda {
        inner: inner.clone(),
    };
    let mcp = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_allowed_hosts(allowed_hosts),
    );
    Router::new()
        .fallback_service(mcp)
        .layer(middleware::from_fn_with_state(inner, guard))
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        // Idle connections go before a hub's header-read timeout closes
        // them (2 s in the embedded hub), so none is reused as it closes.
        .pool_idle_timeout(std::time::Duration::from_secs(1))
        .build()
        // Only a TLS backend that cannot initialise fails here; rustls with
        // bundled roots always does.
        .expect("an HTTP client with rustls")
}

struct Inner {
    config: AgendaConfig,
    http: reqwest::Client,
    /// The hub's verification keys by `kid`; the lock also makes concurrent
    /// refetches one.
    keys: tokio::sync::Mutex<HashMap<String, DecodingKey>>,
    last_api_base: Mutex<Option<String>>,
}

/// The hub access token's claims (RFC 9068 §2.2, plus the hub's `tenant` and
/// RFC 8693 `act`); `aud`, `iss` and `exp` are checked while decoding.
#[derive(Clone, Deserialize)]
struct Claims {
    sub: String,
    client_id: String,
    #[serde(default)]
    scope: String,
    #[allow(dead_code)]
    iat: i64,
    #[allow(dead_code)]
    jti: String,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    act: Option<Value>,
}

impl Claims {
    fn has_scope(&self, scope: &str) -> bool {
        self.scope.split_ascii_whitespace().any(|s| s == scope)
    }
}

/// The validated caller, handed to the tool handlers through the request's
/// extensions (rmcp puts the HTTP `Parts` into the request context).
#[derive(Clone)]
struct Caller {
    token: String,
    claims: Claims,
}

impl std::fmt::Debug for Caller {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("sub", &self.claims.sub)
            .field("client_id", &self.claims.client_id)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused, or why it could not be checked.
#[derive(Debug, thiserror::Error)]
enum TokenError {
    #[error("{0}")]
    Invalid(&'static str),
    #[error("the hub's signing keys cannot be fetched: {0}")]
    KeysUnavailable(String),
}

// ---------------------------------------------------------------- protection

/// Authentication and per-tool scopes in front of rmcp.
async fn guard(State(inner): State<Arc<Inner>>, request: Request, next: Next) -> Response {
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        if !inner.config.faults.ignore_origin && !inner.origin_allowed(origin) {
            // MCP transports: an invalid Origin MUST get 403; the body may be
            // a JSON-RPC error without an id.
            let body = json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": "the request's Origin is not allowed"}});
            return (StatusCode::FORBIDDEN, Json(body)).into_response();
        }
    }
    let Some(token) = bearer(request.headers()).map(str::to_owned) else {
        return inner.challenge(StatusCode::UNAUTHORIZED, None, ALL_SCOPES);
    };
    let claims = match inner.verify(&token).await {
        Ok(claims) => claims,
        Err(TokenError::Invalid(why)) => {
            return inner.challenge(
                StatusCode::UNAUTHORIZED,
                Some(("invalid_token", why)),
                ALL_SCOPES,
            )
        }
        Err(error @ TokenError::KeysUnavailable(_)) => {
            tracing::warn!(%error, "agenda: cannot validate a token");
            let body = json!({"error": "temporarily_unavailable",
                "error_description": "the hub's signing keys cannot be fetched"});
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
    };
    // A valid signature does not say the token was not revoked since.
    if !inner.config.faults.accept_revoked {
        match inner.still_active(&token).await {
            Ok(true) => {}
            Ok(false) => {
                return inner.challenge(
                    StatusCode::UNAUTHORIZED,
                    Some(("invalid_token", "the token has been revoked")),
                    ALL_SCOPES,
                )
            }
            Err(error) => {
                tracing::warn!(%error, "agenda: cannot introspect a token");
                let body = json!({"error": "temporarily_unavailable",
                    "error_description": "the hub cannot say whether the token is still active"});
                return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            }
        }
    }
    let mut request = request;
    if request.method() == Method::POST && !inner.config.faults.skip_tool_scope {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
            let body = json!({"error": "invalid_request", "error_description": "the request body is too large"});
            return (StatusCode::PAYLOAD_TOO_LARGE, Json(body)).into_response();
        };
        let needed = scopes_needed(&bytes);
        if needed.iter().any(|scope| !claims.has_scope(scope)) {
            // What the call needs plus what the token already holds here, so
            // a client that asks for exactly these keeps its other tools
            // (step-up without losing scopes; the MCP authorization spec lets
            // a server include them).
            let mut scopes: BTreeSet<&str> = needed;
            if !inner.config.faults.challenge_drops_held_scopes {
                scopes.extend(
                    ALL_SCOPES
                        .split_ascii_whitespace()
                        .filter(|s| claims.has_scope(s)),
                );
            }
            let scope = scopes.into_iter().collect::<Vec<_>>().join(" ");
            return inner.challenge(
                StatusCode::FORBIDDEN,
                Some((
                    "insufficient_scope",
                    "the token lacks the scope this tool needs",
                )),
                &scope,
            );
        }
        request = Request::from_parts(parts, Body::from(bytes));
    }
    request.extensions_mut().insert(Caller { token, claims });
    next.run(request).await
}

/// The scope a tool needs, for the tools this server has.
fn tool_scope(name: &str) -> Option<&'static str> {
    match name {
        "calendar_read" => Some(READ_SCOPE),
        "calendar_write" => Some(WRITE_SCOPE),
        _ => None,
    }
}

/// Every scope the `tools/call` messages of a JSON-RPC body (one message or
/// a batch) need. Anything else, including unparsable bodies, needs none here:
/// rmcp answers those.
fn scopes_needed(body: &[u8]) -> BTreeSet<&'static str> {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return BTreeSet::new();
    };
    let messages = match &value {
        Value::Array(batch) => batch.iter().collect(),
        single => vec![single],
    };
    messages
        .into_iter()
        .filter(|m| m.get("method").and_then(Value::as_str) == Some("tools/call"))
        .filter_map(|m| m.pointer("/params/name").and_then(Value::as_str))
        .filter_map(tool_scope)
        .collect()
}

impl Inner {
    /// A `WWW-Authenticate: Bearer` challenge (RFC 6750 §3, RFC 9728 §5.1).
    fn challenge(&self, status: StatusCode, error: Option<(&str, &str)>, scope: &str) -> Response {
        let mut params = Vec::new();
        if let Some((code, _)) = error {
            params.push(format!("error=\"{code}\""));
        }
        params.push(format!("scope=\"{scope}\""));
        params.push(format!(
            "resource_metadata=\"{}\"",
            quotable(&self.config.resource_metadata)
        ));
        if let Some((_, description)) = error {
            params.push(format!("error_description=\"{}\"", quotable(description)));
        }
        let body = match error {
            Some((code, description)) => json!({"error": code, "error_description": description}),
            None => {
                json!({"error": "unauthorized", "error_description": "a bearer token is required"})
            }
        };
        let mut response = (status, Json(body)).into_response();
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", params.join(", "))) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }

    /// Whether `origin` is this server's own or one the configuration allows.
    fn origin_allowed(&self, origin: &axum::http::HeaderValue) -> bool {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let own = url::Url::parse(&self.config.resource)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        origin.eq_ignore_ascii_case(&own)
            || self
                .config
                .allowed_origins
                .iter()
                .any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// RFC 7662: whether the hub still calls the token active (true when no
    /// introspection endpoint is configured).
    async fn still_active(&self, token: &str) -> Result<bool, String> {
        let Some(endpoint) = &self.config.introspection_endpoint else {
            return Ok(true);
        };
        let response = self
            .http
            .post(endpoint)
            .header(header::AUTHORIZATION, self.basic_credentials())
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("introspection answered {}", response.status()));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|e| e.without_url().to_string())?;
        Ok(body["active"] == json!(true))
    }

    /// RFC 9068 §4: the hub's JWT access token, for this resource.
    async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Invalid("the token is not a JWT"))?;
        if header.alg != Algorithm::ES256 {
            return Err(TokenError::Invalid("unexpected signing algorithm"));
        }
        let typ = header
            .typ
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if typ != "at+jwt" && typ != "application/at+jwt" {
            return Err(TokenError::Invalid(
                "the token is not an RFC 9068 access token",
            ));
        }
        let kid = header
            .kid
            .ok_or(TokenError::Invalid("the token has no kid"))?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.resource]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|error| {
            use jsonwebtoken::errors::ErrorKind;
            TokenError::Invalid(match error.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::InvalidAudience => "the token was not issued for this resource",
                ErrorKind::InvalidIssuer => "the token was not issued by the hub",
                ErrorKind::InvalidSignature => "the token signature is invalid",
                ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) => {
                    "the token lacks a required claim"
                }
                _ => "the token is invalid",
            })
        })?;
        Ok(data.claims)
    }

    /// The key for `kid`: cached, else the JWKS fetched again once.
    async fn key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        let mut keys = self.keys.lock().await;
        if let Some(key) = keys.get(kid) {
            return Ok(key.clone());
        }
        *keys = self.fetch_keys().await?;
        keys.get(kid).cloned().ok_or(TokenError::Invalid(
            "the token is signed with an unknown key",
        ))
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, DecodingKey>, TokenError> {
        let unavailable = |e: &dyn std::fmt::Display| TokenError::KeysUnavailable(e.to_string());
        let response = self
            .http
            .get(&self.config.jwks_uri)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        if !response.status().is_success() {
            return Err(unavailable(&format!(
                "the JWKS answered {}",
                response.status()
            )));
        }
        let set: Value = response.json().await.map_err(|e| unavailable(&e))?;
        let keys = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| unavailable(&"the JWKS has no keys array"))?;
        // A key this server cannot use is skipped, not fatal: the hub may
        // publish others.
        Ok(keys
            .iter()
            .filter_map(|k| serde_json::from_value::<jsonwebtoken::jwk::Jwk>(k.clone()).ok())
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                Some((kid, DecodingKey::from_jwk(&jwk).ok()?))
            })
            .collect())
    }
}

// ---------------------------------------------------------------- tools

#[derive(Clone)]
struct Agenda {
    inner: Arc<Inner>,
}

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}

fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "calendar_read",
            "List the events in your Demo Calendar. Needs agenda.read.",
            object(json!({"type": "object", "properties": {}, "additionalProperties": false})),
        )
        .with_annotations(ToolAnnotations::new().read_only(true)),
        Tool::new(
            "calendar_write",
            "Add an event to your Demo Calendar. Needs agenda.write.",
            object(json!({
                "type": "object",
                "properties": {
                    "title": {"type": "string", "description": "What the event is"},
                    "start": {"type": "string", "description": "When it starts, e.g. 2026-03-01T09:00:00Z"}
                },
                "required": ["title", "start"],
                "additionalProperties": false
            })),
        )
        .with_annotations(ToolAnnotations::new().read_only(false).destructive(false)),
    ]
}

/// A tool that ran and failed: what the user reads, and what the audit says.
struct Failure {
    message: String,
    reason: String,
}

impl Failure {
    fn new(message: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            reason: reason.into(),
        }
    }
}

/// What the vault released.
struct Upstream {
    token: String,
    api_base_url: String,
}

impl ServerHandler for Agenda {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("agenda", env!("CARGO_PKG_VERSION")).with_title("Agenda"))
            .with_instructions(
                "Reads and adds events in your Demo Calendar. The hub keeps the calendar \
                 credentials; if it says the calendar is not connected, connect it at the link given.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools().into_iter().find(|tool| tool.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.as_ref();
        let Some(scope) = tool_scope(name) else {
            return Err(ErrorData::invalid_params(
                format!("unknown tool {name}"),
                None,
            ));
        };
        let caller = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>())
            .cloned()
            .ok_or_else(|| {
                ErrorData::internal_error("the request reached the tool unauthenticated", None)
            })?;
        // The guard already answered 403; this holds if a body ever parses
        // differently there and here.
        if !self.inner.config.faults.skip_tool_scope && !caller.claims.has_scope(scope) {
            return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "This tool needs the scope {scope}, which your token lacks."
            ))])
            .into());
        }
        let arguments = request.arguments.unwrap_or_default();
        let outcome = self.inner.run(name, &arguments, &caller).await;
        self.inner
            .report(name, &caller, outcome.as_ref().err())
            .await;
        Ok(match outcome {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(failure) => CallToolResult::error(vec![ContentBlock::text(failure.message)]),
        }
        .into())
    }
}

impl Inner {
    async fn run(
        &self,
        tool: &str,
        arguments: &JsonObject,
        caller: &Caller,
    ) -> Result<String, Failure> {
        let write = tool == "calendar_write";
        let event = if write {
            let field = |key: &str| {
                arguments
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
            };
            match (field("title"), field("start")) {
                (Some(title), Some(start)) => Some(json!({"title": title, "start": start})),
                _ => {
                    return Err(Failure::new(
                        "calendar_write needs a non-empty title and start.",
                        "invalid arguments",
                    ))
                }
            }
        } else {
            None
        };
        let upstream = if self.config.faults.token_passthrough {
            self.passthrough(caller)?
        } else {
            self.exchange(
                &caller.token,
                if write {
                    "calendar.write"
                } else {
                    "calendar.read"
                },
            )
            .await?
        };
        self.call_calendar(&upstream, event).await
    }

    /// The `token_passthrough` fault: the caller's own token, unexchanged.
    fn passthrough(&self, caller: &Caller) -> Result<Upstream, Failure> {
        let api_base_url = self
            .config
            .api_base_url
            .clone()
            .or_else(|| self.last_api_base.lock().ok().and_then(|base| base.clone()))
            .ok_or_else(|| {
                Failure::new(
                    "The calendar's address is not known yet.",
                    "no api_base_url",
                )
            })?;
        Ok(Upstream {
            token: caller.token.clone(),
            api_base_url,
        })
    }

    /// RFC 8693 token exchange at the hub: the caller's token for the
    /// connection's token from the vault.
    async fn exchange(&self, subject_token: &str, scope: &str) -> Result<Upstream, Failure> {
        let config = &self.config;
        let resource = format!("urn:hub:connection:{}", config.connection);
        let form = [
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", subject_token),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("resource", resource.as_str()),
            ("scope", scope),
        ];
        let response = self
            .http
            .post(&config.token_endpoint)
            .header(header::AUTHORIZATION, self.basic_credentials())
            .form(&form)
            .send()
            .await
            .map_err(|error| {
                tracing::warn!(error = %error.without_url(), "agenda: token exchange failed");
                Failure::new(
                    "The hub did not answer the request for your calendar token. Try again later.",
                    "token exchange failed",
                )
            })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let error = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown_error");
            let description = body.get("error_description").and_then(Value::as_str);
            let mut message = format!(
                "The hub would not release your {} token ({status}, {error}{}).",
                config.connection,
                description.map(|d| format!(": {d}")).unwrap_or_default()
            );
            if let Some(connect_uri) = body.get("connect_uri").and_then(Value::as_str) {
                message.push_str(&format!(
                    " Connect your calendar at {connect_uri} and try again."
                ));
            }
            tracing::info!(%status, error, "agenda: the hub refused the token exchange");
            return Err(Failure::new(
                message,
                format!("token exchange refused: {error}"),
            ));
        }
        let field = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
        let (Some(token), Some(api_base_url)) = (field("access_token"), field("api_base_url"))
        else {
            return Err(Failure::new(
                "The hub's answer carried no usable calendar token.",
                "token exchange response unusable",
            ));
        };
        if let Ok(mut last) = self.last_api_base.lock() {
            *last = Some(api_base_url.clone());
        }
        Ok(Upstream {
            token,
            api_base_url,
        })
    }

    /// `GET` (read) or `POST` (write, with `event`) `{api_base_url}/calendar/events`.
    async fn call_calendar(
        &self,
        upstream: &Upstream,
        event: Option<Value>,
    ) -> Result<String, Failure> {
        let url = format!(
            "{}/calendar/events",
            upstream.api_base_url.trim_end_matches('/')
        );
        let request = match &event {
            Some(event) => self.http.post(&url).json(event),
            None => self.http.get(&url),
        };
        let response = request
            .bearer_auth(&upstream.token)
            .send()
            .await
            .map_err(|error| {
                tracing::warn!(error = %error.without_url(), "agenda: the calendar did not answer");
                Failure::new(
                    "Demo Calendar did not answer. Try again later.",
                    "calendar unreachable",
                )
            })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let error = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown_error");
            tracing::info!(%status, error, "agenda: the calendar refused");
            return Err(Failure::new(
                format!("Demo Calendar refused the request ({status}, {error})."),
                format!("calendar answered {}", status.as_u16()),
            ));
        }
        Ok(serde_json::to_string_pretty(&body).unwrap_or_else(|_| body.to_string()))
    }

    /// RFC 6749 §2.3.1: id and secret form-encoded inside Basic credentials.
    fn basic_credentials(&self) -> String {
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!(
            "{}:{}",
            encode(&self.config.client_id),
            encode(&self.config.client_secret)
        );
        format!("Basic {}", STANDARD.encode(pair))
    }

    /// Tells the hub the tool ran; a failed report is logged, not fatal.
    async fn report(&self, tool: &str, caller: &Caller, failure: Option<&Failure>) {
        let claims = &caller.claims;
        let mut event = json!({
            "tool": tool,
            "resource": self.config.resource,
            "client_id": claims.client_id,
            "outcome": if failure.is_some() { "failure" } else { "success" },
            // The hub takes who the tool ran for from this token, not from
            // the fields above; it is the hub's own token, going back to it.
            "token": caller.token,
        });
        if claims.sub != claims.client_id {
            event["user"] = json!(claims.sub);
        }
        if let Some(tenant) = &claims.tenant {
            event["tenant"] = json!(tenant);
        }
        if let Some(failure) = failure {
            event["reason"] = json!(failure.reason);
        }
        if let Some(act) = &claims.act {
            event["act"] = act.clone();
        }
        let sent = self
            .http
            .post(&self.config.audit_endpoint)
            .header(header::AUTHORIZATION, self.basic_credentials())
            .json(&event)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                tracing::warn!(status = %response.status(), tool, "agenda: the hub refused the tool report")
            }
            Err(error) => {
                tracing::warn!(error = %error.without_url(), tool, "agenda: the tool report failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_needed_reads_single_calls_and_batches() {
        let single =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"calendar_write"}}"#;
        assert_eq!(scopes_needed(single), BTreeSet::from([WRITE_SCOPE]));
        let batch =
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"calendar_read"}},
            {"jsonrpc":"2.0","id":2,"method":"tools/list"},
            {"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"calendar_write"}}]"#;
        assert_eq!(
            scopes_needed(batch),
            BTreeSet::from([READ_SCOPE, WRITE_SCOPE])
        );
        assert!(scopes_needed(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).is_empty());
        assert!(scopes_needed(b"not json").is_empty());
    }
}
