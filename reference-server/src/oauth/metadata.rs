//! Discovery documents: Authorization Server Metadata (RFC 8414), its OpenID
//! Connect discovery aliases, the JWKS, and Protected Resource Metadata (RFC 9728).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::OAuthError;
use crate::fault::Fault;
use crate::hub::Hub;

/// RFC 8414 §2. Served at every discovery URL an MCP client may try for an
/// issuer with a path (MCP authorization, "Authorization Server Metadata Discovery").
pub async fn authorization_server_metadata(
    State(hub): State<Arc<Hub>>,
) -> Result<Response, OAuthError> {
    let servers = hub.store.mcp_servers().await?;
    let mut scopes: Vec<&str> = servers
        .iter()
        .flat_map(|s| s.scopes.iter().map(String::as_str))
        .collect();
    scopes.sort_unstable();
    scopes.dedup();
    let issuer = if hub.faults.on(Fault::WrongIssuerInMetadata) {
        format!("{}/", hub.issuer)
    } else {
        hub.issuer.clone()
    };
    let mut doc = json!({
        "issuer": issuer,
        "authorization_endpoint": hub.endpoint("/authorize"),
        "token_endpoint": hub.endpoint("/token"),
        "registration_endpoint": hub.endpoint("/register"),
        "jwks_uri": hub.endpoint("/jwks.json"),
        "revocation_endpoint": hub.endpoint("/revoke"),
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "introspection_endpoint": hub.endpoint("/introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            crate::oauth::grants::JWT_BEARER_GRANT,
            crate::oauth::grants::TOKEN_EXCHANGE_GRANT,
        ],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "ES384", "RS256", "PS256", "EdDSA"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": true,
    });
    if hub.faults.on(Fault::OmitPkceMethodsInMetadata) {
        doc.as_object_mut()
            .map(|o| o.remove("code_challenge_methods_supported"));
    }
    if hub.faults.on(Fault::IssSupportNotAdvertised) {
        doc.as_object_mut()
            .map(|o| o.remove("authorization_response_iss_parameter_supported"));
    }
    Ok(([(header::CACHE_CONTROL, "max-age=300")], Json(doc)).into_response())
}

pub async fn jwks(State(hub): State<Arc<Hub>>) -> Response {
    let keys = hub.keys.read().await;
    (
        [(header::CACHE_CONTROL, "max-age=300")],
        Json(keys.jwks().clone()),
    )
        .into_response()
}

/// RFC 9728 §3: metadata for the MCP server whose path follows the well-known prefix.
pub async fn protected_resource_metadata(
    State(hub): State<Arc<Hub>>,
    Path(path): Path<String>,
) -> Result<Response, OAuthError> {
    let Some(server) = hub.store.mcp_server_by_path(&format!("/{path}")).await? else {
        return Ok((StatusCode::NOT_FOUND, Json(json!({"error": "not_found"}))).into_response());
    };
    let resource = if hub.faults.on(Fault::WrongResourceInPrm) {
        hub.base_url.clone()
    } else {
        hub.resource_url(&server)
    };
    let mut scopes = server.scopes.clone();
    if hub.faults.on(Fault::OfflineAccessAdvertised) {
        scopes.push("offline_access".into());
    }
    Ok(Json(json!({
        "resource": resource,
        "resource_name": server.name,
        "authorization_servers": [hub.issuer],
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
    }))
    .into_response())
}
