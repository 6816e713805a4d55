//! Token revocation (RFC 7009) and introspection (RFC 7662).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::audit::event::{AuditEvent, Outcome};
use crate::error::OAuthError;
use crate::fault::Fault;
use crate::hub::Hub;
use crate::oauth::client_auth::authenticate;
use crate::params::Params;

/// Tag that marks a confidential client as a resource server allowed to introspect.
pub const RESOURCE_SERVER_TAG: &str = "resource_server";

/// `POST /revoke` (RFC 7009 §2.1). Answers 200 for unknown or foreign tokens
/// too (§2.2), so the endpoint reveals nothing about tokens it did not issue
/// to the caller.
pub async fn revoke(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let params = Params::parse(&body)?;
    let caller = authenticate(&hub, &headers, &params).await?;
    let token = params.require("token")?;
    let now = hub.clock.now();
    let event = AuditEvent::new("token.revoked", Outcome::Success)
        .actor("client", caller.client.client_id.clone())
        .client(caller.client.client_id.clone())
        .source_ip(peer.ip().to_string());
    if hub.faults.on(Fault::RevocationIgnored) {
        return Ok(no_store(Json(json!({}))));
    }
    // Refresh token first: its digest is a cheap exact lookup.
    let hash = crate::random::sha256_b64url(token);
    if let Some(stored) = hub.store.refresh_token(&hash).await? {
        if stored.client_id == caller.client.client_id
            && hub.store.revoke_refresh_token(&hash, now).await?
        {
            hub.audit(
                event
                    .user(stored.user_id)
                    .tenant(stored.tenant)
                    .resource(stored.resource)
                    .reason("refresh token revoked by its client"),
            )
            .await?;
        }
        return Ok(no_store(Json(json!({}))));
    }
    if let Ok(claims) = hub.verify_access_token(token).await {
        if claims.client_id == caller.client.client_id {
            hub.store
                .revoke_access_token(&claims.jti, claims.exp, now)
                .await?;
            hub.audit(
                event
                    .user((claims.sub != claims.client_id).then(|| claims.sub.clone()))
                    .tenant(claims.tenant.clone())
                    .resource(match &claims.aud {
                        crate::oauth::access_token::Audience::One(a) => Some(a.clone()),
                        crate::oauth::access_token::Audience::Many(_) => None,
                    })
                    .reason("access token revoked by its client"),
            )
            .await?;
        }
    }
    Ok(no_store(Json(json!({}))))
}

/// `POST /introspect` (RFC 7662 §2), for authenticated resource servers only.
pub async fn introspect(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let params = Params::parse(&body)?;
    // RFC 7662 §2.1: the endpoint requires authorization, so a request with
    // no client authentication at all is invalid_client (RFC 6749 §5.2, "no
    // client authentication included"), answered before reading the token.
    let credentials = headers.contains_key(header::AUTHORIZATION)
        || params.get("client_secret")?.is_some()
        || params.get("client_assertion")?.is_some();
    if credentials {
        let caller = authenticate(&hub, &headers, &params).await?;
        if !caller.authenticated || !caller.client.tags.iter().any(|t| t == RESOURCE_SERVER_TAG) {
            return Err(OAuthError::InvalidClient(
                "only authenticated resource servers may introspect".into(),
            ));
        }
    } else if !hub.faults.on(Fault::IntrospectionOpen) {
        return Err(OAuthError::InvalidClient(
            "introspection requires client authentication".into(),
        ));
    }
    let token = params.require("token")?;
    let inactive = || no_store(Json(json!({"active": false})));
    static INTROSPECTION_TICKS: AtomicU64 = AtomicU64::new(0);
    if hub.faults.on(Fault::IntrospectionForgetsLiveTokens)
        && crate::fault::one_in(64, &INTROSPECTION_TICKS)
    {
        return Ok(inactive());
    }
    let now = hub.clock.now();
    // Refresh tokens are opaque (no dots); a JWS is never one, so it skips
    // the lookup.
    let refresh = if token.contains('.') {
        None
    } else {
        hub.store
            .refresh_token(&crate::random::sha256_b64url(token))
            .await?
    };
    if let Some(stored) = refresh {
        if stored.revoked || stored.rotated || stored.expires_at <= now {
            return Ok(inactive());
        }
        return Ok(no_store(Json(json!({
            "active": true,
            "token_type": "refresh_token",
            "client_id": stored.client_id,
            "sub": stored.user_id,
            "aud": stored.resource,
            "scope": stored.scopes.join(" "),
            "exp": stored.expires_at,
            "iss": hub.issuer,
        }))));
    }
    let Ok(claims) = hub.verify_access_token(token).await else {
        if hub.faults.on(Fault::IntrospectionUnknownTokenError) {
            return Err(OAuthError::InvalidRequest(
                "the token is not one this server issued".into(),
            ));
        }
        return Ok(inactive());
    };
    if hub.store.is_access_token_revoked(&claims.jti).await?
        && !hub.faults.on(Fault::IntrospectionIgnoresRevocation)
    {
        return Ok(inactive());
    }
    if hub.store.is_decommissioned(&claims.client_id).await?
        && !hub.faults.on(Fault::DecommissionKeepsTokens)
    {
        return Ok(inactive());
    }
    let mut body = serde_json::to_value(&claims).map_err(crate::error::HubError::from)?;
    body["active"] = json!(true);
    body["token_type"] = json!("Bearer");
    Ok(no_store(Json(body)))
}

fn no_store(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}
