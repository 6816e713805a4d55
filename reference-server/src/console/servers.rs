//! MCP servers (scopes, discovery URLs, the policies that apply) and
//! Connections (providers, who holds tokens and in what state; never a
//! token value or a client secret).

use std::sync::Arc;

use axum::extract::State;
use minijinja::{context, Value};
use serde_json::json;

use crate::console::common::{segment, view, Admin, Page, PREFIX};
use crate::hub::{Hub, ISSUER_PATH};
use crate::policy::rules::{Grant, Policy};
use crate::vault::connection::{ConnectionKind, Owner};

/// How a policy reads in a list: its conditions in words and the scopes one
/// of its grants allows.
fn policy_line(policy: &Policy, grant: &Grant) -> serde_json::Value {
    json!({
        "id": policy.id,
        "name": policy.name,
        "href": format!("{PREFIX}/policies#policy-{}", policy.id),
        "conditions": policy.conditions.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "scopes": grant.scopes,
    })
}

/// `GET /console/servers`.
pub(crate) async fn servers(State(hub): State<Arc<Hub>>, Admin(admin): Admin) -> Page {
    let policies = hub.policies().await?;
    let agents = crate::agents::find_agents(&hub, &Default::default()).await?;
    let as_metadata = format!(
        "{}/.well-known/oauth-authorization-server{ISSUER_PATH}",
        hub.base_url
    );
    let servers: Vec<_> = hub
        .store
        .mcp_servers()
        .await?
        .iter()
        .map(|s| {
            let applying: Vec<_> = policies
                .iter()
                .flat_map(|p| {
                    p.grants
                        .iter()
                        .filter(|g| g.connection.is_none() && g.mcp_server == s.id)
                        .map(move |g| policy_line(p, g))
                })
                .collect();
            let configured: Vec<_> = agents
                .iter()
                .filter(|(c, at)| at.is_none() && c.allowed_resources.contains(&s.id))
                .map(|(c, _)| {
                    json!({
                        "client_id": c.client_id,
                        "name": c.name,
                        "href": format!("{PREFIX}/agents/{}", segment(&c.client_id)),
                        "scopes": c.allowed_scopes,
                    })
                })
                .collect();
            json!({
                "id": s.id,
                "name": s.name,
                "scopes": s.scopes.iter().map(|scope| json!({
                    "scope": scope,
                    "tools": s.tools.iter().filter(|t| &t.scope == scope).map(|t| t.name.clone()).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "resource": hub.resource_url(s),
                "resource_metadata": hub.resource_metadata_url(&s.path),
                "policies": applying,
                "agents": configured,
            })
        })
        .collect();
    view(
        &hub,
        &admin,
        "servers",
        "console/servers.html",
        context! {
            servers => Value::from_serialize(&servers),
            issuer => hub.issuer,
            as_metadata => as_metadata,
        },
    )
}

/// `needs_reauthorization` reads as words.
fn status_label(status: &str) -> &'static str {
    match status {
        "active" => "active",
        "expired" => "expired (refreshed on next use)",
        _ => "needs re-authorization",
    }
}

/// `GET /console/connections`: each Connection and, per owner, the status of
/// its stored token. Only status fields leave [`crate::vault::connection::TokenRow`].
pub(crate) async fn connections(State(hub): State<Arc<Hub>>, Admin(admin): Admin) -> Page {
    let now = hub.clock.now();
    let policies = hub.policies().await?;
    let mut out = Vec::new();
    for c in hub.connections().await? {
        let mut holders = Vec::new();
        for row in hub.connection_tokens(&c.id, None).await? {
            let label = match &row.owner {
                Owner::User(id) => match hub.store.user_by_id(id).await? {
                    Some(u) => format!("{} ({})", u.username, u.name),
                    None => id.clone(),
                },
                Owner::Tenant(id) | Owner::Agent(id) => id.clone(),
            };
            let status = row.status(now);
            holders.push(json!({
                "kind": row.owner.kind(),
                "id": row.owner.id(),
                "label": label,
                "href": match &row.owner {
                    Owner::Agent(id) => Some(format!("{PREFIX}/agents/{}", segment(id))),
                    _ => None,
                },
                "status": status,
                "status_label": status_label(status),
                "scopes": row.credential.scopes,
                "expires_at": row.credential.expires_at,
                "last_refreshed_at": row.last_refreshed_at,
                "key_id": row.key_id,
            }));
        }
        let applying: Vec<_> = policies
            .iter()
            .flat_map(|p| {
                p.grants
                    .iter()
                    .filter(|g| g.connection.as_deref() == Some(c.id.as_str()))
                    .map(move |g| policy_line(p, g))
            })
            .collect();
        out.push(json!({
            "id": c.id,
            "name": c.name,
            "kind": match c.kind {
                ConnectionKind::Oauth2 => "OAuth 2.0",
                ConnectionKind::ApiKey => "API key",
            },
            "authorization_endpoint": c.authorization_endpoint,
            "token_endpoint": c.token_endpoint,
            "api_base_url": c.api_base_url,
            "client_id": c.client_id,
            "has_client_secret": c.client_secret.is_some(),
            "scopes": c.scopes,
            "allowed_clients": c.allowed_clients.iter().map(|id| json!({
                "id": id,
                "href": format!("{PREFIX}/agents/{}", segment(id)),
            })).collect::<Vec<_>>(),
            "resource": c.resource(),
            "connect": (c.kind == ConnectionKind::Oauth2)
                .then(|| hub.endpoint(&format!("/connections/{}/connect", c.id))),
            "updated_at": c.updated_at,
            "policies": applying,
            "holders": holders,
        }));
    }
    view(
        &hub,
        &admin,
        "connections",
        "console/connections.html",
        context! { connections => Value::from_serialize(&out), now => now },
    )
}
