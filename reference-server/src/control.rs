//! The control API: what no standard endpoint covers, for test harnesses and
//! demos. Mounted only with `--test-mode`, and every call needs the control
//! token as a bearer credential. Documented in `docs/control-api.md`.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::audit::event::{AuditEvent, Outcome};
use crate::error::OAuthError;
use crate::hub::Hub;
use crate::model::{AuthMethod, Client, TrustLevel, User};
use crate::params::json_body;

/// Refuses any call without the control token.
pub async fn require_control_token(
    State(hub): State<Arc<Hub>>,
    request: Request,
    next: Next,
) -> Response {
    if crate::credentials::bearer_matches(request.headers(), hub.config.control_token.as_deref()) {
        next.run(request).await
    } else {
        OAuthError::InvalidToken("the control API needs the control token".into()).into_response()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFailure {
    fail: bool,
}

/// `POST /control/audit/failure {"fail": true}`: every audit write fails from
/// now on (until `false`), so a test can prove that no action succeeds unaudited.
pub async fn audit_failure(
    State(hub): State<Arc<Hub>>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let req: AuditFailure = json_body(&body)?;
    hub.audit_failing
        .store(req.fail, std::sync::atomic::Ordering::Relaxed);
    Ok(Json(json!({"audit_failing": req.fail})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockAdvance {
    advance_seconds: Option<u32>,
    /// Return to wall time (test teardown).
    #[serde(default)]
    reset: bool,
    /// Jump to this moment (seconds since the epoch), for a known weekday and hour.
    set: Option<i64>,
}

pub async fn clock(State(hub): State<Arc<Hub>>) -> Response {
    Json(json!({"now": hub.clock.now(), "offset_seconds": hub.clock.offset()})).into_response()
}

/// `POST /control/clock`: moves the hub's clock forward.
pub async fn advance_clock(
    State(hub): State<Arc<Hub>>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let req: ClockAdvance = json_body(&body)?;
    // Expiries are computed as now + a TTL: a clock near i64::MAX would
    // overflow them, and one before 2000 or after 9999 means nothing.
    let target = match (req.advance_seconds, req.set) {
        (Some(seconds), None) => Some(hub.clock.now().saturating_add(i64::from(seconds))),
        (None, Some(at)) => Some(at),
        _ => None,
    };
    if let Some(target) = target {
        if !(crate::clock::EARLIEST..=crate::clock::LATEST).contains(&target)
            && !hub.faults.on(crate::fault::Fault::UnboundedTestClock)
        {
            return Err(OAuthError::InvalidRequest(format!(
                "the clock stays between {} and {} (2000-01-01 and 9999-12-31 UTC)",
                crate::clock::EARLIEST,
                crate::clock::LATEST
            )));
        }
    }
    let now = match (req.advance_seconds, req.reset, req.set) {
        (Some(seconds), false, None) => hub.clock.advance(seconds),
        (None, true, None) => hub.clock.reset(),
        (None, false, Some(at)) => hub.clock.set(at),
        _ => {
            return Err(OAuthError::InvalidRequest(
                "give exactly one of advance_seconds, set or reset: true".into(),
            ))
        }
    };
    Ok(Json(json!({"now": now, "offset_seconds": hub.clock.offset()})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    username: String,
    /// `approve` or `deny`.
    decision: String,
    /// Scopes to approve; all requested scopes when absent.
    scopes: Option<Vec<String>>,
}

/// `POST /control/authorizations/{request}/decision`: logs a user in and decides
/// consent for a pending request, answering with where the browser would go.
pub async fn decide(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(request_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let decision: Decision = json_body(&body)?;
    let request = hub
        .store
        .authorization_request(&request_id)
        .await?
        .filter(|r| !r.completed && r.expires_at > hub.clock.now())
        .ok_or_else(|| {
            OAuthError::InvalidRequest("no open authorization request with that id".into())
        })?;
    let client = hub
        .store
        .client(&request.client_id)
        .await?
        .ok_or_else(|| OAuthError::InvalidRequest("the client no longer exists".into()))?;
    let user = hub
        .store
        .user_by_username(&decision.username)
        .await?
        .ok_or_else(|| OAuthError::InvalidRequest("unknown username".into()))?;
    hub.audit(
        AuditEvent::new("user.login", Outcome::Success)
            .actor("user", user.id.clone())
            .user(user.id.clone())
            .tenant(user.primary_tenant().map(str::to_owned))
            .client(client.client_id.clone())
            .correlation(request.correlation_id.clone())
            .reason("signed in through the control API")
            .source_ip(peer.ip().to_string()),
    )
    .await?;
    hub.store
        .set_request_user(&request.id, &user.id, None)
        .await?;
    let granted: Vec<String> = match decision.decision.as_str() {
        "approve" => match &decision.scopes {
            Some(approved) => request
                .scopes
                .iter()
                .filter(|s| approved.contains(s))
                .cloned()
                .collect(),
            None => request.scopes.clone(),
        },
        "deny" => {
            let response =
                crate::oauth::authorize::deny(&hub, &request, &client, &user.id, &peer).await?;
            return Ok(redirect_json(&response));
        }
        _ => {
            return Err(OAuthError::InvalidRequest(
                "decision must be approve or deny".into(),
            ))
        }
    };
    let response =
        crate::oauth::authorize::decide(&hub, &request, &client, &user.id, &granted, &peer).await?;
    Ok(redirect_json(&response))
}

/// Where the browser would have been sent.
fn redirect_json(response: &Response) -> Response {
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Json(json!({"redirect_to": location})).into_response()
}

/// `POST /control/keys/rotate`: a new signing key signs from now on; the
/// previous ones stay published so tokens they signed still verify.
pub async fn rotate_keys(State(hub): State<Arc<Hub>>) -> Result<Response, OAuthError> {
    let now = hub.clock.now();
    let mut keys = hub.keys.write().await;
    let kid = crate::keys::SigningKeys::generate(&hub.store, now).await?;
    if hub.faults.on(crate::fault::Fault::DropOldKeyOnRotation) {
        hub.store.retire_signing_keys_except(&kid, now).await?;
    }
    *keys = crate::keys::SigningKeys::load_or_create(&hub.store, now).await?;
    let published: Vec<_> = keys
        .jwks()
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    drop(keys);
    hub.audit(
        AuditEvent::new("signing_key.rotated", Outcome::Success)
            .actor("admin", None)
            .reason(format!(
                "new signing key {kid}; published: {}",
                published.join(", ")
            )),
    )
    .await?;
    Ok(Json(json!({"signing_kid": kid, "published": published})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustOrigin {
    origin: String,
}

/// `POST /control/cimd/trust`: lets the hub fetch client metadata documents
/// from this origin over http and on loopback (a test's CIMD host).
pub async fn trust_cimd_origin(
    State(hub): State<Arc<Hub>>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let req: TrustOrigin = json_body(&body)?;
    let url = url::Url::parse(&req.origin)
        .map_err(|e| OAuthError::InvalidRequest(format!("origin: {e}")))?;
    let origin = url.origin().ascii_serialization();
    hub.cimd.trust_origin(&origin).await;
    hub.audit(
        AuditEvent::new("cimd.origin_trusted", Outcome::Success)
            .actor("admin", None)
            .reason(format!(
                "client metadata documents from {origin} may be fetched over http and loopback"
            )),
    )
    .await?;
    Ok(Json(json!({"trusted": origin})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    client_id: Option<String>,
    name: String,
    secret: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    allowed_resources: Vec<String>,
    #[serde(default)]
    allowed_scopes: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    tenant: Option<String>,
}

/// `POST /control/clients`: provisions a client (confidential when a secret is given).
pub async fn create_client(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let _ = headers;
    let new: NewClient = json_body(&body)?;
    let secret_hash = match new.secret.as_deref() {
        Some(secret) => Some(crate::credentials::hash_secret_bounded(secret).await?),
        None => None,
    };
    let method = if secret_hash.is_some() {
        AuthMethod::ClientSecretBasic
    } else {
        AuthMethod::None
    };
    let client = Client {
        client_id: new.client_id.unwrap_or_else(|| crate::random::id("client")),
        metadata: json!({"client_name": new.name, "redirect_uris": new.redirect_uris, "grant_types": new.grant_types}),
        name: new.name,
        trust_level: TrustLevel::Manual,
        secret_hash,
        token_endpoint_auth_method: method,
        redirect_uris: new.redirect_uris,
        grant_types: new.grant_types,
        allowed_resources: new.allowed_resources,
        allowed_scopes: new.allowed_scopes,
        tags: new.tags,
        tenant: new.tenant,
        jwks: None,
        created_at: hub.clock.now(),
    };
    hub.store.upsert_client(&client).await?;
    hub.audit(
        AuditEvent::new("client.registered", Outcome::Success)
            .actor("admin", None)
            .client(client.client_id.clone())
            .tenant(client.tenant.clone())
            .reason("provisioned through the control API"),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"client_id": client.client_id})),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    username: String,
    password: String,
    name: Option<String>,
    #[serde(default)]
    tenants: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    permissions: Vec<String>,
}

/// `POST /control/users`: provisions a user.
pub async fn create_user(
    State(hub): State<Arc<Hub>>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let new: NewUser = json_body(&body)?;
    let user = User {
        id: crate::random::id("user"),
        name: new.name.unwrap_or_else(|| new.username.clone()),
        username: new.username,
        email: None,
        password_hash: crate::credentials::hash_secret_bounded(&new.password).await?,
        tenants: new.tenants,
        roles: new.roles,
        permissions: new.permissions,
        claims: Default::default(),
    };
    hub.store.upsert_user(&user).await?;
    hub.audit(
        AuditEvent::new("user.created", Outcome::Success)
            .actor("admin", None)
            .user(user.id.clone())
            .reason("provisioned through the control API"),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({"id": user.id}))).into_response())
}
