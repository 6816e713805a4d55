//! Agentic identities: the list (filtered by tag, tenant and trust level),
//! one agent's attributes, and decommissioning with a confirmation.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use minijinja::{context, Value};
use serde_json::json;

use crate::agents::AgentQuery;
use crate::console::common::{message, registration, segment, view, Admin, Page, PREFIX};
use crate::hub::Hub;
use crate::model::{Client, TrustLevel};

fn href(client_id: &str) -> String {
    format!("{PREFIX}/agents/{}", segment(client_id))
}

/// The agent's associated user, as `(id, "username (name)")` when known.
async fn associated_user(
    hub: &Hub,
    client: &Client,
) -> Result<Option<serde_json::Value>, crate::error::HubError> {
    let Some(id) = client
        .metadata
        .get("user_id")
        .and_then(serde_json::Value::as_str)
    else {
        return Ok(None);
    };
    let user = hub.store.user_by_id(id).await?;
    Ok(Some(json!({
        "id": id,
        "username": user.as_ref().map(|u| u.username.clone()),
        "name": user.as_ref().map(|u| u.name.clone()),
    })))
}

async fn summary(
    hub: &Hub,
    client: &Client,
    decommissioned_at: Option<i64>,
) -> Result<serde_json::Value, crate::error::HubError> {
    Ok(json!({
        "client_id": client.client_id,
        "href": href(&client.client_id),
        "name": client.name,
        "trust_level": client.trust_level.as_str(),
        "registration": registration(client.trust_level),
        "tags": client.tags,
        "tenant": client.tenant,
        "user": associated_user(hub, client).await?,
        "mcp_servers": client.allowed_resources,
        "scopes": client.allowed_scopes,
        "status": if decommissioned_at.is_some() { "decommissioned" } else { "active" },
        "decommissioned_at": decommissioned_at,
    }))
}

/// `GET /console/agents?tag=…&tenant=…&trust_level=…`.
pub(crate) async fn list(
    State(hub): State<Arc<Hub>>,
    Admin(admin): Admin,
    Query(query): Query<AgentQuery>,
) -> Page {
    let everyone = crate::agents::find_agents(&hub, &AgentQuery::default()).await?;
    let mut tags: Vec<&String> = everyone.iter().flat_map(|(c, _)| &c.tags).collect();
    tags.sort();
    tags.dedup();
    let mut tenants: Vec<&String> = everyone
        .iter()
        .filter_map(|(c, _)| c.tenant.as_ref())
        .collect();
    tenants.sort();
    tenants.dedup();
    let mut agents = Vec::new();
    for (client, at) in crate::agents::find_agents(&hub, &query).await? {
        agents.push(summary(&hub, &client, at).await?);
    }
    view(
        &hub,
        &admin,
        "agents",
        "console/agents.html",
        context! {
            agents => Value::from_serialize(&agents),
            tags => Value::from_serialize(&tags),
            tenants => Value::from_serialize(&tenants),
            trust_levels => vec![TrustLevel::Manual.as_str(), TrustLevel::Verified.as_str()],
            filter => context! {
                tag => query.tag.unwrap_or_default(),
                tenant => query.tenant.unwrap_or_default(),
                trust_level => query.trust_level.unwrap_or_default(),
            },
            total => everyone.len(),
        },
    )
}

/// Any client by id, decommissioned or not (agents, and the clients audit
/// events and the what-if page link to).
async fn find(
    hub: &Hub,
    id: &str,
) -> Result<Option<(Client, Option<i64>)>, crate::error::HubError> {
    hub.store.client_any(id).await
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct Done {
    refresh_tokens_revoked: Option<u64>,
}

/// `GET /console/agents/{id}`: every attribute, never a secret.
pub(crate) async fn show(
    State(hub): State<Arc<Hub>>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Page {
    let Some((client, at)) = find(&hub, &id).await? else {
        return Ok(message(
            &hub,
            Some(&admin),
            StatusCode::NOT_FOUND,
            "No such agent",
            &format!("No client has the id {id}."),
        ));
    };
    let mut agent = summary(&hub, &client, at).await?;
    let servers = hub.store.mcp_servers().await?;
    agent["servers"] = client
        .allowed_resources
        .iter()
        .map(|r| {
            let server = servers.iter().find(|s| &s.id == r);
            json!({
                "id": r,
                "name": server.map(|s| s.name.clone()),
                "resource": server.map(|s| hub.resource_url(s)),
                "href": format!("{PREFIX}/servers#server-{r}"),
            })
        })
        .collect();
    agent["grant_types"] = json!(client.grant_types);
    agent["auth_method"] = json!(client.token_endpoint_auth_method.as_str());
    agent["redirect_uris"] = json!(client.redirect_uris);
    agent["created_at"] = json!(client.created_at);
    agent["has_secret"] = json!(client.secret_hash.is_some());
    agent["has_keys"] = json!(client.jwks.is_some() || client.jwks_uri().is_some());
    let conditions = client.metadata.get("conditions").cloned();
    agent["source_ranges"] = conditions
        .as_ref()
        .and_then(|c| c.get("source_ranges"))
        .cloned()
        .unwrap_or_else(|| json!([]));
    agent["time_windows"] = conditions
        .as_ref()
        .and_then(|c| c.get("time_windows"))
        .and_then(serde_json::Value::as_array)
        .map(|windows| {
            windows
                .iter()
                .map(|w| {
                    let days = w
                        .get("days")
                        .and_then(serde_json::Value::as_array)
                        .filter(|d| !d.is_empty())
                        .map(|d| {
                            d.iter()
                                .filter_map(serde_json::Value::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_else(|| "every day".into());
                    json!(format!(
                        "{days}, {}:00–{}:00 UTC",
                        w.get("from_hour").cloned().unwrap_or_default(),
                        w.get("to_hour").cloned().unwrap_or_default()
                    ))
                })
                .collect::<Vec<_>>()
        })
        .map(serde_json::Value::from)
        .unwrap_or_else(|| json!([]));
    agent["connections"] = hub
        .connections()
        .await?
        .iter()
        .filter(|c| c.allowed_clients.contains(&client.client_id))
        .map(|c| json!({"id": c.id, "name": c.name}))
        .collect();
    agent["decommission_href"] = json!(format!("{}/decommission", href(&client.client_id)));
    agent["audit_href"] = json!(format!(
        "{PREFIX}/audit?{}",
        crate::console::common::query(&[("client_id", &client.client_id)])
    ));
    view(
        &hub,
        &admin,
        "agents",
        "console/agent.html",
        context! {
            agent => Value::from_serialize(&agent),
            refresh_tokens_revoked => done.refresh_tokens_revoked,
        },
    )
}

/// `GET /console/agents/{id}/decommission`: what will happen, and a button.
pub(crate) async fn confirm(
    State(hub): State<Arc<Hub>>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Page {
    let Some((client, None)) = find(&hub, &id).await? else {
        return Ok(message(
            &hub,
            Some(&admin),
            StatusCode::NOT_FOUND,
            "No such agent in service",
            &format!("No client with the id {id} is in service."),
        ));
    };
    view(
        &hub,
        &admin,
        "agents",
        "console/confirm.html",
        context! {
            title => format!("Decommission {}?", client.name),
            consequences => vec![
                format!("{} ({}) can no longer authenticate or get tokens.", client.name, client.client_id),
                "Its refresh tokens are revoked now.".to_owned(),
                "Every access token issued to it stops validating at once (introspection says inactive, MCP servers answer 401).".to_owned(),
                "This cannot be undone; the event is written to the audit trail.".to_owned(),
            ],
            action => format!("{}/decommission", href(&client.client_id)),
            button => "Decommission",
            cancel => href(&client.client_id),
        },
    )
}

/// `POST /console/agents/{id}/decommission` (after the guard's CSRF check).
pub(crate) async fn decommission(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Page {
    let source = hub.source_address(peer.ip(), &headers).to_string();
    match crate::agents::decommission(&hub, &id, Some(admin.username.clone()), &source).await? {
        Some(revoked) => Ok(Redirect::to(&format!(
            "{}?refresh_tokens_revoked={revoked}",
            href(&id)
        ))
        .into_response()),
        None => Ok(message(
            &hub,
            Some(&admin),
            StatusCode::NOT_FOUND,
            "No such agent in service",
            &format!("No client with the id {id} is in service; nothing was changed."),
        )),
    }
}
