//! Connections: third-party services whose credentials the hub keeps so that
//! agents and MCP servers never hold them (docs/connections.md).
//!
//! The admin API that manages the definitions and the stored tokens. The
//! types are in `connection.rs`, validation of a definition in
//! `definition.rs`, sealing on the way to the store in `stored.rs`, retrieval
//! and refresh in `retrieval.rs`, the browser connect flow in `connect.rs`.
//! No function here logs or audits a secret.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::audit::event::{AuditEvent, Outcome};
use crate::error::OAuthError;
use crate::hub::Hub;
use crate::params::json_body;
use crate::vault::connection::{Connection, ConnectionKind, Credential, Owner, RESOURCE_PREFIX};
use crate::vault::definition::{bad, optional_string, parse_connection, string_list};

async fn audit_admin(
    hub: &Hub,
    peer: std::net::SocketAddr,
    event_type: &str,
    connection_id: &str,
    reason: String,
    user: Option<String>,
    tenant: Option<String>,
) -> Result<(), OAuthError> {
    hub.audit(
        AuditEvent::new(event_type, Outcome::Success)
            .actor("admin", None)
            .resource(format!("{RESOURCE_PREFIX}{connection_id}"))
            .user(user)
            .tenant(tenant)
            .source_ip(peer.ip().to_string())
            .reason(reason),
    )
    .await?;
    Ok(())
}

/// `PUT /admin/connections/{id}`: create or replace a definition.
pub async fn put_connection(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let draft: Value = json_body(&body)?;
    if draft
        .get("id")
        .is_some_and(|v| v.as_str() != Some(id.as_str()))
    {
        return Err(bad("the body's `id` differs from the URL's"));
    }
    store_definition(&hub, peer, &id, &draft, true).await
}

/// `POST /admin/connections`: create; 409 when the id is taken.
pub async fn create_connection(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let draft: Value = json_body(&body)?;
    let id = draft
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("a new connection needs an `id`"))?
        .to_owned();
    store_definition(&hub, peer, &id, &draft, false).await
}

async fn store_definition(
    hub: &Hub,
    peer: std::net::SocketAddr,
    id: &str,
    draft: &Value,
    replace: bool,
) -> Result<Response, OAuthError> {
    let mut connection = parse_connection(hub, id, draft).await?;
    if let Some(existing) = hub.connection(id).await? {
        // The secret is never shown, so a definition put back without one keeps it.
        if connection.client_secret.is_none()
            && connection.kind == ConnectionKind::Oauth2
            && draft.get("client_secret").is_none()
        {
            connection.client_secret = existing.client_secret.clone();
        }
        if !replace {
            return Ok((
                StatusCode::CONFLICT,
                Json(json!({"error": "invalid_request", "error_description": format!("connection `{id}` already exists")})),
            )
                .into_response());
        }
        connection.created_at = existing.created_at;
    }
    let created = hub.put_connection(&connection).await?;
    let event = if created {
        "connection.created"
    } else {
        "connection.updated"
    };
    audit_admin(
        hub,
        peer,
        event,
        id,
        format!(
            "connection \"{}\" ({})",
            connection.name,
            connection.kind.as_str()
        ),
        None,
        None,
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(connection.view())).into_response())
}

/// `GET /admin/connections`.
pub async fn list_connections(State(hub): State<Arc<Hub>>) -> Result<Response, OAuthError> {
    let connections: Vec<Value> = hub
        .connections()
        .await?
        .iter()
        .map(Connection::view)
        .collect();
    Ok(Json(json!({ "connections": connections })).into_response())
}

fn not_found(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "not_found", "error_description": format!("no connection `{id}`")})),
    )
        .into_response()
}

/// `GET /admin/connections/{id}`: the definition and every owner's token status.
pub async fn get_connection(
    State(hub): State<Arc<Hub>>,
    Path(id): Path<String>,
) -> Result<Response, OAuthError> {
    let Some(connection) = hub.connection(&id).await? else {
        return Ok(not_found(&id));
    };
    let now = hub.clock.now();
    let mut view = connection.view();
    view["tokens"] = hub
        .connection_tokens(&id, None)
        .await?
        .iter()
        .map(|t| t.view(now))
        .collect();
    Ok(Json(view).into_response())
}

/// `DELETE /admin/connections/{id}`: the definition and every stored token.
pub async fn delete_connection(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
) -> Result<Response, OAuthError> {
    if !hub.delete_connection(&id).await? {
        return Ok(not_found(&id));
    }
    audit_admin(
        &hub,
        peer,
        "connection.deleted",
        &id,
        "connection and its tokens deleted".into(),
        None,
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Resolves an owner given as `{"user": …}` / `{"tenant": …}` / `{"agent": …}`.
async fn resolve_owner(hub: &Hub, kind: &str, id: &str) -> Result<Owner, OAuthError> {
    match kind {
        "user" => {
            let user = match hub.store.user_by_id(id).await? {
                Some(u) => Some(u),
                None => hub.store.user_by_username(id).await?,
            };
            user.map(|u| Owner::User(u.id))
                .ok_or_else(|| bad(format!("owner: unknown user `{id}`")))
        }
        "tenant" => {
            if hub.store.tenant_exists(id).await? {
                Ok(Owner::Tenant(id.to_owned()))
            } else {
                Err(bad(format!("owner: unknown tenant `{id}`")))
            }
        }
        "agent" => {
            if hub.store.client(id).await?.is_some() {
                Ok(Owner::Agent(id.to_owned()))
            } else {
                Err(bad(format!("owner: unknown agent `{id}`")))
            }
        }
        _ => Err(bad("owner is one of user, tenant, agent")),
    }
}

async fn owner_from_json(hub: &Hub, raw: Option<&Value>) -> Result<Owner, OAuthError> {
    let obj = raw
        .and_then(Value::as_object)
        .filter(|o| o.len() == 1)
        .ok_or_else(|| {
            bad(r#"`owner` must be exactly one of {"user": …}, {"tenant": …}, {"agent": …}"#)
        })?;
    let (kind, id) = obj.iter().next().expect("one entry");
    let id = id
        .as_str()
        .ok_or_else(|| bad(format!("owner.{kind} must be a string")))?;
    resolve_owner(hub, kind, id).await
}

/// The user id and tenant an owner stands for, for audit events.
fn owner_subjects(owner: &Owner) -> (Option<String>, Option<String>) {
    match owner {
        Owner::User(id) => (Some(id.clone()), None),
        Owner::Tenant(id) => (None, Some(id.clone())),
        Owner::Agent(_) => (None, None),
    }
}

/// `PUT /admin/connections/{id}/tokens`: store a credential directly.
pub async fn put_token(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let Some(connection) = hub.connection(&id).await? else {
        return Ok(not_found(&id));
    };
    let draft: Value = json_body(&body)?;
    let obj = draft
        .as_object()
        .ok_or_else(|| bad("a token must be a JSON object"))?;
    let owner = owner_from_json(&hub, obj.get("owner")).await?;
    let now = hub.clock.now();
    let credential = match connection.kind {
        ConnectionKind::ApiKey => {
            const FIELDS: &[&str] = &["owner", "api_key", "metadata"];
            if let Some(field) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
                return Err(bad(format!(
                    "unknown field `{field}` for an api_key connection; expected {}",
                    FIELDS.join(", ")
                )));
            }
            Credential {
                api_key: Some(
                    optional_string(obj, "api_key")?
                        .ok_or_else(|| bad("an api_key connection stores an `api_key`"))?,
                ),
                metadata: obj.get("metadata").cloned().unwrap_or(Value::Null),
                ..Credential::default()
            }
        }
        ConnectionKind::Oauth2 => {
            const FIELDS: &[&str] = &[
                "owner",
                "access_token",
                "refresh_token",
                "expires_in",
                "expires_at",
                "scopes",
                "metadata",
            ];
            if let Some(field) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
                return Err(bad(format!(
                    "unknown field `{field}`; expected {}",
                    FIELDS.join(", ")
                )));
            }
            let expires_at = match (obj.get("expires_in"), obj.get("expires_at")) {
                (Some(_), Some(_)) => {
                    return Err(bad("give `expires_in` or `expires_at`, not both"))
                }
                (Some(v), None) => Some(
                    now + v
                        .as_i64()
                        .filter(|s| *s >= 0)
                        .ok_or_else(|| bad("`expires_in` must be a non-negative integer"))?,
                ),
                (None, Some(v)) => Some(
                    v.as_i64()
                        .ok_or_else(|| bad("`expires_at` must be an integer (unix seconds)"))?,
                ),
                (None, None) => None,
            };
            let scopes = match obj.get("scopes") {
                Some(_) => string_list(obj, "scopes")?,
                None => connection.scopes.clone(),
            };
            if let Some(unknown) = scopes.iter().find(|s| !connection.scopes.contains(s)) {
                return Err(bad(format!(
                    "scope `{unknown}` is not one of the connection's scopes"
                )));
            }
            Credential {
                access_token: Some(
                    optional_string(obj, "access_token")?
                        .ok_or_else(|| bad("an oauth2 token needs `access_token`"))?,
                ),
                refresh_token: optional_string(obj, "refresh_token")?,
                api_key: None,
                expires_at,
                scopes,
                metadata: obj.get("metadata").cloned().unwrap_or(Value::Null),
            }
        }
    };
    hub.put_connection_token(&id, &owner, "", &credential, None)
        .await?;
    let (user, tenant) = owner_subjects(&owner);
    audit_admin(
        &hub,
        peer,
        "connection.token.stored",
        &id,
        format!("token stored for {owner}"),
        user,
        tenant,
    )
    .await?;
    let row = hub
        .connection_token(&id, &owner, "")
        .await?
        .ok_or(OAuthError::ServerError)?;
    Ok(Json(row.view(now)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct OwnerQuery {
    owner: String,
}

/// `DELETE /admin/connections/{id}/tokens?owner=user:alice`.
pub async fn delete_token(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
    Query(query): Query<OwnerQuery>,
) -> Result<Response, OAuthError> {
    let (kind, owner_id) = query
        .owner
        .split_once(':')
        .ok_or_else(|| bad("owner is user:<id>, tenant:<id> or agent:<client_id>"))?;
    let owner = resolve_owner(&hub, kind, owner_id).await?;
    if !hub.delete_connection_token(&id, &owner).await? {
        return Ok((
            StatusCode::NOT_FOUND,
            Json(json!({"error": "not_found", "error_description": format!("connection `{id}` holds no token for {owner}")})),
        )
            .into_response());
    }
    let (user, tenant) = owner_subjects(&owner);
    audit_admin(
        &hub,
        peer,
        "connection.token.deleted",
        &id,
        format!("token deleted for {owner}"),
        user,
        tenant,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
