//! A minimal protected MCP endpoint for the demo MCP servers: it validates
//! bearer tokens as a resource server must (RFC 9068 §4, RFC 6750 §3) and
//! answers a small JSON-RPC subset (`initialize`, `tools/list`, `tools/call`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::audit::{AuditEvent, Outcome};
use crate::error::OAuthError;
use crate::fault::Fault;
use crate::metadata::resource_metadata_url;
use crate::model::McpServer;
use crate::state::Hub;

/// A `WWW-Authenticate: Bearer …` challenge (RFC 6750 §3, RFC 9728 §5.1).
fn challenge(
    hub: &Hub,
    server: &McpServer,
    status: StatusCode,
    error: Option<(&str, &str)>,
    scope: &str,
) -> Response {
    let mut params = Vec::new();
    if let Some((code, description)) = error {
        params.push(format!("error=\"{code}\""));
        params.push(format!("error_description=\"{description}\""));
    }
    if !hub.faults.on(Fault::NoResourceMetadataInChallenge) {
        params.push(format!(
            "resource_metadata=\"{}\"",
            resource_metadata_url(hub, &server.path)
        ));
    }
    if !scope.is_empty() {
        params.push(format!("scope=\"{scope}\""));
    }
    let value = format!("Bearer {}", params.join(", "));
    let body = match error {
        Some((code, description)) => json!({"error": code, "error_description": description}),
        None => json!({"error": "unauthorized", "error_description": "a bearer token is required"}),
    };
    let mut response = (status, Json(body)).into_response();
    if hub.faults.on(Fault::NoChallengeHeader) {
        return response;
    }
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

pub async fn mcp_endpoint(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let Some(server) = hub.store.mcp_server_by_path(uri.path()).await? else {
        return Ok((StatusCode::NOT_FOUND, Json(json!({"error": "not_found"}))).into_response());
    };
    let all_scopes = server.scopes.join(" ");
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let Some(token) = token else {
        return Ok(challenge(
            &hub,
            &server,
            StatusCode::UNAUTHORIZED,
            None,
            &all_scopes,
        ));
    };
    let own_url = hub.resource_url(&server);
    let audience = (!hub.faults.on(Fault::RsSkipAudCheck)).then_some(own_url.as_str());
    let claims = match hub.validate_access_token(token.trim(), audience).await {
        Ok(claims) => claims,
        Err(err) => {
            return Ok(challenge(
                &hub,
                &server,
                StatusCode::UNAUTHORIZED,
                Some(("invalid_token", err.description())),
                &all_scopes,
            ))
        }
    };

    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return Ok(rpc_error(Value::Null, -32700, "parse error")),
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let result = match method {
        "initialize" => json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": server.name, "version": env!("CARGO_PKG_VERSION")},
        }),
        "tools/list" => json!({
            "tools": server.tools.iter().map(|t| json!({
                "name": t.name,
                "description": t.description,
                "inputSchema": {"type": "object"},
            })).collect::<Vec<_>>()
        }),
        "tools/call" => {
            let name = request
                .pointer("/params/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some(tool) = server.tools.iter().find(|t| t.name == name) else {
                return Ok(rpc_error(id, -32602, "unknown tool"));
            };
            let has_scope = claims.scopes().any(|s| s == tool.scope);
            if !has_scope && !hub.faults.on(Fault::SkipToolScopeCheck) {
                return Ok(challenge(
                    &hub,
                    &server,
                    StatusCode::FORBIDDEN,
                    Some((
                        "insufficient_scope",
                        "the token lacks the scope this tool needs",
                    )),
                    &tool.scope,
                ));
            }
            hub.audit(
                AuditEvent::new("tool.executed", Outcome::Success)
                    .actor("client", claims.client_id.clone())
                    .user((claims.sub != claims.client_id).then(|| claims.sub.clone()))
                    .tenant(claims.tenant.clone())
                    .client(claims.client_id.clone())
                    .resource(own_url.clone())
                    .reason(format!("tool {}", tool.name))
                    .source_ip(peer.ip().to_string()),
            )
            .await?;
            json!({"content": [{"type": "text", "text": format!("{} ran for {}", tool.name, claims.sub)}]})
        }
        _ => return Ok(rpc_error(id, -32601, "method not found")),
    };
    Ok(Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response())
}

fn rpc_error(id: Value, code: i64, message: &str) -> Response {
    Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
        .into_response()
}
