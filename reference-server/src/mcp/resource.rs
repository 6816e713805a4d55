//! A minimal protected MCP endpoint for the demo MCP servers: it validates
//! bearer tokens as a resource server must (RFC 9068 §4, RFC 6750 §3),
//! refuses requests from a foreign `Origin`, and answers a small JSON-RPC
//! subset in either era ([`super::protocol`]): `server/discover`,
//! `tools/list` and `tools/call` statelessly for MCP 2026-07-28, and
//! `initialize`, `ping`, `tools/list` and `tools/call` for earlier clients.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::audit::event::{AuditEvent, Outcome};
use crate::error::OAuthError;
use crate::fault::Fault;
use crate::hub::Hub;
use crate::model::McpServer;

use super::protocol::{self, Era, Incoming};

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
            hub.resource_metadata_url(&server.path)
        ));
    }
    if hub.faults.on(Fault::OfflineAccessAdvertised) && status == StatusCode::UNAUTHORIZED {
        params.push(format!("scope=\"{scope} offline_access\""));
    } else if !scope.is_empty() {
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

/// A POST to `server`'s path (the router found the server: one lookup).
pub async fn mcp_endpoint(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    server: McpServer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    // MCP transports (Streamable HTTP, Security Warning): a page of another
    // origin must not reach this server through a rebound DNS name.
    if crate::web_guard::foreign_origin(&hub, &headers) && !hub.faults.on(Fault::McpIgnoresOrigin) {
        let body = json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": "the request's Origin is not allowed"}});
        return Ok((StatusCode::FORBIDDEN, Json(body)).into_response());
    }
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
    let validated = match hub.validate_access_token(token.trim(), audience).await {
        // The fault: a revoked token is taken on its signature alone.
        Err(OAuthError::InvalidToken(why))
            if why.contains("revoked") && hub.faults.on(Fault::RsAcceptsRevokedToken) =>
        {
            hub.verify_access_token(token.trim()).await
        }
        other => other,
    };
    let claims = match validated {
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

    let incoming = match protocol::read(&headers, &body, &hub.faults) {
        Ok(incoming) => incoming,
        Err(refusal) => return Ok(*refusal),
    };
    // A notification (legacy `notifications/initialized`) is accepted with
    // 202 and no body (transports, Sending Messages).
    if incoming.notification {
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    let Incoming {
        id,
        method,
        params,
        era,
        ..
    } = incoming;
    let modern = era == Era::Modern;
    let result = match method.as_str() {
        "server/discover" if modern && !hub.faults.on(Fault::NoServerDiscover) => {
            return Ok(answer(id, protocol::discover_result(&server.name)));
        }
        // MCP ping (until 2025-11-25): the receiver MUST respond promptly with an empty response.
        "ping" if !modern && !hub.faults.on(Fault::McpPingUnanswered) => json!({}),
        "initialize" if !modern => protocol::initialize_result(&params, &server.name),
        "tools/list" => json!({
            "tools": server.tools.iter().map(|t| json!({
                "name": t.name,
                "description": t.description,
                "inputSchema": {"type": "object"},
            })).collect::<Vec<_>>()
        }),
        "tools/call" => {
            let name = params
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some(tool) = server.tools.iter().find(|t| t.name == name) else {
                return Ok(protocol::rpc_error(
                    StatusCode::OK,
                    id,
                    protocol::INVALID_PARAMS,
                    "unknown tool",
                    None,
                ));
            };
            let has_scope = claims.scopes().any(|s| s == tool.scope);
            if !has_scope && !hub.faults.on(Fault::SkipToolScopeCheck) {
                // The tool's scope plus what the token already holds at this
                // server: a client asking for exactly these keeps its other
                // tools (the spec lets a server include them).
                let mut scopes = vec![tool.scope.as_str()];
                if !hub.faults.on(Fault::ChallengeDropsHeldScopes) {
                    scopes.extend(
                        server
                            .scopes
                            .iter()
                            .map(String::as_str)
                            .filter(|s| claims.scopes().any(|held| held == *s) && *s != tool.scope),
                    );
                }
                return Ok(challenge(
                    &hub,
                    &server,
                    StatusCode::FORBIDDEN,
                    Some((
                        "insufficient_scope",
                        "the token lacks the scope this tool needs",
                    )),
                    &scopes.join(" "),
                ));
            }
            if !hub.faults.on(Fault::DropToolAudit) {
                let scopes: Vec<String> = claims.scopes().map(str::to_owned).collect();
                hub.audit(
                    AuditEvent::new("tool.executed", Outcome::Success)
                        .actor("client", claims.client_id.clone())
                        .user((claims.sub != claims.client_id).then(|| claims.sub.clone()))
                        .tenant(claims.tenant.clone())
                        .client(claims.client_id.clone())
                        .resource(own_url.clone())
                        .scopes(std::slice::from_ref(&tool.scope), &scopes)
                        .act(claims.act.clone())
                        .reason(format!("tool {}", tool.name))
                        .source_ip(peer.ip().to_string()),
                )
                .await?;
            }
            json!({"content": [{"type": "text", "text": format!("{} ran for {}", tool.name, claims.sub)}]})
        }
        // A method this era lacks: 404 for a modern request (transports,
        // Protocol Version Header); a legacy one keeps HTTP 200.
        _ => {
            let status = if modern && !hub.faults.on(Fault::UnknownMethodAnswered200) {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            };
            return Ok(protocol::rpc_error(
                status,
                id,
                protocol::METHOD_NOT_FOUND,
                "method not found",
                None,
            ));
        }
    };
    let result = if modern {
        protocol::modern_result(result, &method, &server.name, &hub.faults)
    } else {
        result
    };
    Ok(answer(id, result))
}

fn answer(id: Value, result: Value) -> Response {
    Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolExecution {
    tool: String,
    /// The canonical URL of the reporting MCP server; it must be one the hub protects.
    resource: String,
    client_id: String,
    /// The user the tool ran for, if any.
    user: Option<String>,
    tenant: Option<String>,
    /// `success` (default) or `failure`.
    outcome: Option<String>,
    reason: Option<String>,
    /// The delegation chain of the token the tool ran under.
    act: Option<Value>,
    /// The access token the tool ran under. When given, the client, user,
    /// tenant and delegation chain are taken from it (it must be valid for
    /// the reported resource), not from the report's own fields.
    token: Option<String>,
}

/// `POST /oauth/audit/tool-executions`: an MCP server reports a tool it ran,
/// authenticating as a resource-server client (tag `resource_server`).
pub async fn report_tool_execution(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let params = crate::params::Params::parse(b"").unwrap_or_default();
    let caller = crate::oauth::client_auth::authenticate(&hub, &headers, &params).await?;
    if !caller.authenticated || !caller.client.tags.iter().any(|t| t == "resource_server") {
        return Err(OAuthError::InvalidClient(
            "only resource servers may report tool executions".into(),
        ));
    }
    let report: ToolExecution = serde_json::from_slice(&body)
        .map_err(|e| OAuthError::InvalidRequest(format!("invalid JSON body: {e}")))?;
    let server = hub
        .server_for_resource(&report.resource)
        .await?
        .ok_or_else(|| {
            OAuthError::InvalidTarget("the resource is not an MCP server this hub protects".into())
        })?;
    // A resource server reports for itself only: another server's tools,
    // clients and users are not its to speak for.
    if !caller.client.allowed_resources.contains(&server.id)
        && !hub.faults.on(crate::fault::Fault::ToolReportForAnyServer)
    {
        return Err(OAuthError::InvalidTarget(
            "a resource server may report tool executions for its own MCP server only".into(),
        ));
    }
    let mut report = report;
    if let Some(token) = report.token.take() {
        let claims = hub
            .validate_access_token(token.trim(), Some(&report.resource))
            .await
            .map_err(|e| {
                OAuthError::InvalidRequest(format!(
                    "the token the tool ran under is not valid for this resource: {}",
                    e.description()
                ))
            })?;
        report.user = (claims.sub != claims.client_id).then(|| claims.sub.clone());
        report.client_id = claims.client_id;
        report.tenant = claims.tenant;
        report.act = claims.act;
    }
    let outcome = match report.outcome.as_deref() {
        None | Some("success") => Outcome::Success,
        Some("failure") => Outcome::Failure,
        Some(other) => {
            return Err(OAuthError::InvalidRequest(format!(
                "outcome must be success or failure, not `{other}`"
            )))
        }
    };
    hub.audit(
        AuditEvent::new("tool.executed", outcome)
            .actor("mcp_server", caller.client.client_id.clone())
            .user(report.user)
            .tenant(report.tenant)
            .client(report.client_id)
            .resource(report.resource)
            .act(report.act)
            .reason(
                report
                    .reason
                    .map(|r| format!("tool {}: {r}", report.tool))
                    .unwrap_or_else(|| format!("tool {}", report.tool)),
            )
            .source_ip(peer.ip().to_string()),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
