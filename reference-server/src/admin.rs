//! The admin API: what an operator of the hub manages, over HTTP with JSON.
//! Every call needs the admin token as a bearer credential (`--admin-token`);
//! without one configured the API is not mounted. Documented in
//! `docs/admin-api.md`. Every change is audited with an `admin` actor.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::audit::{AuditEvent, Outcome};
use crate::error::OAuthError;
use crate::fault::Fault;
use crate::state::Hub;

/// Refuses any call without the admin token.
pub async fn require_admin_token(
    State(hub): State<Arc<Hub>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compare digests so the comparison time does not depend on the secret's bytes.
    let ok = match (presented, hub.config.admin_token.as_deref()) {
        (Some(p), Some(e)) => crate::random::sha256_b64url(p) == crate::random::sha256_b64url(e),
        _ => false,
    };
    if ok {
        next.run(request).await
    } else {
        OAuthError::InvalidToken("the admin API needs the admin token".into()).into_response()
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, OAuthError> {
    serde_json::from_slice(body)
        .map_err(|e| OAuthError::InvalidRequest(format!("invalid JSON body: {e}")))
}

/// Resolves a user given by id or username.
async fn user_id(hub: &Hub, user: &str) -> Result<String, OAuthError> {
    if let Some(u) = hub.store.user_by_id(user).await? {
        return Ok(u.id);
    }
    hub.store
        .user_by_username(user)
        .await?
        .map(|u| u.id)
        .ok_or_else(|| OAuthError::InvalidRequest(format!("unknown user `{user}`")))
}

#[derive(Debug, Deserialize)]
pub struct ConsentQuery {
    user: Option<String>,
    client_id: Option<String>,
}

/// `GET /admin/consents?user=…&client_id=…`: consent records, live or not.
pub async fn list_consents(
    State(hub): State<Arc<Hub>>,
    Query(query): Query<ConsentQuery>,
) -> Result<Response, OAuthError> {
    let user = match &query.user {
        Some(u) => Some(user_id(&hub, u).await?),
        None => None,
    };
    let now = hub.clock.now();
    let consents = hub
        .store
        .consents(user.as_deref(), query.client_id.as_deref())
        .await?;
    let items: Vec<_> = consents
        .iter()
        .map(|c| {
            let status = if c.revoked_at.is_some() {
                "revoked"
            } else if c.expires_at.is_some_and(|e| e <= now) {
                "expired"
            } else {
                "active"
            };
            json!({
                "user_id": c.user_id,
                "client_id": c.client_id,
                "resource": c.resource,
                "scopes": c.scopes,
                "granted_at": c.granted_at,
                "expires_at": c.expires_at,
                "revoked_at": c.revoked_at,
                "status": status,
            })
        })
        .collect();
    Ok(Json(json!({ "consents": items })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeConsent {
    /// User id or username.
    user: String,
    client_id: String,
    /// One resource; all of the client's resources when absent.
    resource: Option<String>,
}

/// `POST /admin/consents/revoke`: the user will be asked again, and refresh
/// tokens issued under the consent stop working at once.
pub async fn revoke_consent(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let revoke: RevokeConsent = parse_json(&body)?;
    let user = user_id(&hub, &revoke.user).await?;
    let now = hub.clock.now();
    let (consents, refresh_tokens) = if hub.faults.on(Fault::ConsentRevocationIgnored) {
        (1, 0)
    } else {
        hub.store
            .revoke_consent(&user, &revoke.client_id, revoke.resource.as_deref(), now)
            .await?
    };
    hub.audit(
        AuditEvent::new("consent.revoked", Outcome::Success)
            .actor("admin", None)
            .user(user.clone())
            .client(revoke.client_id.clone())
            .resource(revoke.resource.clone())
            .source_ip(peer.ip().to_string())
            .reason(format!(
                "revoked {consents} consent(s) and {refresh_tokens} refresh token(s)"
            )),
    )
    .await?;
    Ok(Json(json!({
        "consents_revoked": consents,
        "refresh_tokens_revoked": refresh_tokens,
    }))
    .into_response())
}
