//! Policies: the list, deletion with a confirmation, creation in three steps
//! (conditions; MCP servers or connections and scopes; name and description)
//! and the what-if evaluator.
//!
//! The draft travels between steps in hidden fields, as the admin API's JSON
//! (`conditions`, `grants`), and is validated by [`crate::policy::validation::validate_with`]
//! at every step: whatever a form sends, only a valid policy is stored.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use minijinja::{context, Value};
use serde_json::{json, Value as Json};

use crate::console::common::{message, registration, segment, view, Admin, Page, Session, PREFIX};
use crate::hub::Hub;
use crate::model::TrustLevel;
use crate::params::Params;
use crate::policy::matching::Subject;
use crate::policy::rules::Policy;
use crate::policy::validation::PolicyError;

/// Condition keys offered as suggestions (a `jwtClaims.` key takes a path).
const KEYS: &[&str] = &[
    "user.roles",
    "user.tenantIds",
    "user.permissions",
    "jwtClaims.",
    "client.tags",
    "client.name",
];

const OPERATORS: &[&str] = &["equal", "not_equal", "in", "not_in", "contains"];

/// Most condition rows the form shows (the policy limit is higher, and enforced).
const MAX_ROWS: usize = 20;

fn policy_view(policy: &Policy) -> Json {
    json!({
        "id": policy.id,
        "name": policy.name,
        "description": policy.description,
        "created_at": policy.created_at,
        "conditions": policy.conditions.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "grants": policy.grants.iter().map(|g| json!({
            "target": match &g.connection {
                Some(c) => format!("connection {c}"),
                None => format!("MCP server {}", g.mcp_server),
            },
            "href": match &g.connection {
                Some(c) => format!("{PREFIX}/connections#connection-{c}"),
                None => format!("{PREFIX}/servers#server-{}", g.mcp_server),
            },
            "scopes": g.scopes,
        })).collect::<Vec<_>>(),
        "delete_href": format!("{PREFIX}/policies/{}/delete", segment(&policy.id)),
    })
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct Notice {
    created: Option<String>,
    deleted: Option<String>,
}

/// `GET /console/policies`.
pub(crate) async fn list(
    State(hub): State<Arc<Hub>>,
    Admin(admin): Admin,
    Query(notice): Query<Notice>,
) -> Page {
    let policies: Vec<_> = hub.policies().await?.iter().map(policy_view).collect();
    view(
        &hub,
        &admin,
        "policies",
        "console/policies.html",
        context! {
            policies => Value::from_serialize(&policies),
            created => notice.created,
            deleted => notice.deleted,
        },
    )
}

async fn find(hub: &Hub, id: &str) -> Result<Option<Policy>, crate::error::HubError> {
    Ok(hub.policies().await?.iter().find(|p| p.id == id).cloned())
}

/// `GET /console/policies/{id}/delete`: the policy, what deleting it means, a button.
pub(crate) async fn confirm_delete(
    State(hub): State<Arc<Hub>>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Page {
    let Some(policy) = find(&hub, &id).await? else {
        return Ok(message(
            &hub,
            Some(&admin),
            StatusCode::NOT_FOUND,
            "No such policy",
            &format!("There is no policy {id}."),
        ));
    };
    let mut consequences = vec![format!(
        "\"{}\" ({}) stops applying on the very next request: tokens issued or refreshed afterwards no longer get the scopes only it allowed.",
        policy.name, policy.id
    )];
    consequences.extend(
        policy_view(&policy)["grants"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| {
                format!(
                    "It allows {} on {}.",
                    g["scopes"]
                        .as_array()
                        .map(|s| s
                            .iter()
                            .filter_map(Json::as_str)
                            .collect::<Vec<_>>()
                            .join(", "))
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "access".into()),
                    g["target"].as_str().unwrap_or_default()
                )
            }),
    );
    consequences.push("There is no disabled state: to restore it, create it again.".into());
    view(
        &hub,
        &admin,
        "policies",
        "console/confirm.html",
        context! {
            title => format!("Delete the policy \"{}\"?", policy.name),
            consequences => consequences,
            action => format!("{PREFIX}/policies/{}/delete", segment(&policy.id)),
            button => "Delete policy",
            cancel => format!("{PREFIX}/policies"),
        },
    )
}

/// `POST /console/policies/{id}/delete`.
pub(crate) async fn delete(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Page {
    let source = hub.source_address(peer.ip(), &headers).to_string();
    if crate::policy::changes::remove_policy(&hub, &id, Some(admin.username.clone()), &source)
        .await?
    {
        Ok(Redirect::to(&format!(
            "{PREFIX}/policies?{}",
            crate::console::common::query(&[("deleted", &id)])
        ))
        .into_response())
    } else {
        Ok(message(
            &hub,
            Some(&admin),
            StatusCode::NOT_FOUND,
            "No such policy",
            &format!("There is no policy {id}; nothing was changed."),
        ))
    }
}

// ---- creation in three steps ----------------------------------------------------

/// One row of the conditions step, as typed.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct Row {
    key: String,
    operator: String,
    value: String,
}

/// The draft so far, as it travels between the steps.
#[derive(Debug, Default)]
struct Draft {
    conditions: Vec<Json>,
    grants: Vec<Json>,
    name: String,
    description: String,
}

impl Draft {
    fn json(&self, name: Option<&str>) -> Json {
        json!({
            "name": name.unwrap_or(&self.name),
            "description": self.description,
            "conditions": self.conditions,
            "grants": self.grants,
        })
    }
}

/// A typed value: for `in`/`not_in`, a JSON array or a comma-separated list;
/// otherwise a JSON number, boolean, array or quoted string, or else the text
/// as it is. Empty is absent (the policy then says a value is needed).
fn parse_value(operator: &str, text: &str) -> Json {
    let text = text.trim();
    if text.is_empty() {
        return Json::Null;
    }
    let typed = serde_json::from_str::<Json>(text)
        .ok()
        .filter(|v| !v.is_object() && !v.is_null());
    match (operator, typed) {
        ("in" | "not_in", Some(Json::Array(items))) => Json::Array(items),
        ("in" | "not_in", _) => Json::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Json::String(s.to_owned()))
                .collect(),
        ),
        ("contains", Some(Json::String(s))) => Json::String(s),
        ("contains", _) => Json::String(text.to_owned()),
        (_, Some(v)) => v,
        (_, None) => Json::String(text.to_owned()),
    }
}

/// The inverse of [`parse_value`], to show a stored condition in the form.
fn value_text(value: &Json) -> String {
    match value {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        Json::Array(items)
            if items
                .iter()
                .all(|i| i.as_str().is_some_and(|s| !s.contains(','))) =>
        {
            items
                .iter()
                .filter_map(Json::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        }
        other => other.to_string(),
    }
}

fn rows_of(conditions: &[Json]) -> Vec<Row> {
    conditions
        .iter()
        .map(|c| Row {
            key: c["key"].as_str().unwrap_or_default().to_owned(),
            operator: c["operator"].as_str().unwrap_or_default().to_owned(),
            value: value_text(&c["value"]),
        })
        .collect()
}

/// The draft carried in hidden fields; a tampered field is an error.
fn carried(params: &Params) -> Result<Draft, String> {
    let list = |name: &str| -> Result<Vec<Json>, String> {
        match params.get(name).map_err(|e| e.description().to_owned())? {
            None => Ok(Vec::new()),
            Some(raw) => serde_json::from_str::<Vec<Json>>(raw)
                .map_err(|_| format!("the form's `{name}` field is not a JSON array")),
        }
    };
    let text = |name: &str| {
        params
            .get(name)
            .ok()
            .flatten()
            .unwrap_or_default()
            .to_owned()
    };
    Ok(Draft {
        conditions: list("conditions")?,
        grants: list("grants")?,
        name: text("name"),
        description: text("description"),
    })
}

/// Which step a validation error belongs to.
fn step_of(err: &PolicyError) -> u8 {
    match err {
        PolicyError::UnknownConditionKey { .. }
        | PolicyError::UnknownOperator { .. }
        | PolicyError::MissingValue { .. }
        | PolicyError::WrongValueType { .. }
        | PolicyError::TooManyConditions { .. } => 1,
        PolicyError::NoGrants
        | PolicyError::UnknownMcpServer { .. }
        | PolicyError::UnknownConnection { .. }
        | PolicyError::AmbiguousGrant { .. }
        | PolicyError::UnknownScope { .. }
        | PolicyError::NoScopes { .. } => 2,
        PolicyError::EmptyName => 3,
        PolicyError::Malformed(m) if m.contains("conditions") => 1,
        PolicyError::Malformed(m) if m.contains("grants") => 2,
        PolicyError::Malformed(_) => 3,
    }
}

/// What step 2 offers: every MCP server's and connection's scopes as
/// checkboxes, `server <id> <scope>` / `connection <id> [<scope>]`.
async fn targets(hub: &Hub, grants: &[Json]) -> Result<Json, crate::error::HubError> {
    let chosen = |kind: &str, id: &str, scope: Option<&str>| {
        grants.iter().any(|g| {
            let target = match kind {
                "server" => g["mcp_server"].as_str(),
                _ => g["connection"].as_str(),
            };
            target == Some(id)
                && match scope {
                    Some(scope) => g["scopes"]
                        .as_array()
                        .is_some_and(|s| s.iter().any(|x| x.as_str() == Some(scope))),
                    None => true,
                }
        })
    };
    let servers: Vec<_> = hub
        .store
        .mcp_servers()
        .await?
        .iter()
        .map(|s| {
            json!({
                "kind": "server",
                "id": s.id,
                "label": format!("MCP server {} ({})", s.name, s.id),
                "options": s.scopes.iter().map(|scope| json!({
                    "value": format!("server {} {scope}", s.id),
                    "scope": scope,
                    "checked": chosen("server", &s.id, Some(scope)),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let connections: Vec<_> = hub
        .connections()
        .await?
        .iter()
        .map(|c| {
            let options: Vec<_> = if c.scopes.is_empty() {
                vec![json!({
                    "value": format!("connection {}", c.id),
                    "scope": "(API key: the whole credential)",
                    "checked": chosen("connection", &c.id, None),
                })]
            } else {
                c.scopes
                    .iter()
                    .map(|scope| {
                        json!({
                            "value": format!("connection {} {scope}", c.id),
                            "scope": scope,
                            "checked": chosen("connection", &c.id, Some(scope)),
                        })
                    })
                    .collect()
            };
            json!({
                "kind": "connection",
                "id": c.id,
                "label": format!("Connection {} ({})", c.name, c.id),
                "options": options,
            })
        })
        .collect();
    Ok(json!({"servers": servers, "connections": connections}))
}

/// Grants from step 2's checkboxes, in the order first named.
fn grants_of(params: &Params) -> Vec<Json> {
    let mut grants: Vec<(String, String, Vec<String>)> = Vec::new();
    for raw in params.all("grant") {
        let mut parts = raw.split_whitespace();
        let (Some(kind), Some(id)) = (parts.next(), parts.next()) else {
            continue;
        };
        let kind = if kind == "connection" {
            "connection"
        } else {
            "mcp_server"
        };
        let index = match grants.iter().position(|(k, i, _)| k == kind && i == id) {
            Some(index) => index,
            None => {
                grants.push((kind.to_owned(), id.to_owned(), Vec::new()));
                grants.len() - 1
            }
        };
        grants[index].2.extend(parts.map(str::to_owned));
    }
    grants
        .into_iter()
        .map(|(kind, id, scopes)| json!({ kind: id, "scopes": scopes }))
        .collect()
}

/// `user.roles contains "engineer"` for a well-formed condition, its JSON
/// otherwise: conditions read well before the draft has grants (step 2).
fn condition_text(raw: &Json) -> String {
    serde_json::from_value::<crate::policy::rules::Condition>(raw.clone())
        .map(|c| c.to_string())
        .unwrap_or_else(|_| raw.to_string())
}

/// Renders one step of the wizard.
async fn step_page(
    hub: &Hub,
    admin: &Session,
    step: u8,
    draft: &Draft,
    rows: Option<Vec<Row>>,
    error: Option<String>,
) -> Page {
    let mut rows = rows.unwrap_or_else(|| rows_of(&draft.conditions));
    if rows.len() < MAX_ROWS
        && (rows.is_empty() || step == 1 && rows.iter().all(|r| !r.key.is_empty()))
    {
        rows.push(Row {
            operator: "contains".into(),
            ..Row::default()
        });
    }
    let summary = crate::policy::validation::validate_with(
        &draft.json(Some("draft")),
        &hub.store.mcp_servers().await?,
        &hub.known_connections().await?,
    )
    .ok();
    let rendered = if step == 1 {
        Vec::new()
    } else {
        draft.conditions.clone()
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let mut response = view(
        hub,
        admin,
        "policies",
        "console/policy_new.html",
        context! {
            step => step,
            error => error,
            rows => Value::from_serialize(&rows),
            keys => KEYS,
            operators => OPERATORS,
            conditions_json => serde_json::to_string(&draft.conditions).unwrap_or_default(),
            grants_json => serde_json::to_string(&draft.grants).unwrap_or_default(),
            conditions_text => rendered.iter().map(condition_text).collect::<Vec<_>>(),
            grants_text => summary.as_ref().map(|s| s.grants.iter().map(|g| match &g.connection {
                Some(c) => format!("connection {c}: {}", if g.scopes.is_empty() { "the API key".to_owned() } else { g.scopes.join(", ") }),
                None => format!("MCP server {}: {}", g.mcp_server, g.scopes.join(", ")),
            }).collect::<Vec<_>>()).unwrap_or_default(),
            targets => Value::from_serialize(&targets(hub, &draft.grants).await?),
            name => draft.name,
            description => draft.description,
        },
    )?;
    *response.status_mut() = status;
    Ok(response)
}

/// `GET /console/policies/new`: step 1, conditions.
pub(crate) async fn new_form(State(hub): State<Arc<Hub>>, Admin(admin): Admin) -> Page {
    step_page(&hub, &admin, 1, &Draft::default(), None, None).await
}

/// `POST /console/policies/new`: moves the draft on a step (`action=next`),
/// back (`back`), adds a condition row (`add_row`), or creates the policy
/// (`create`, step 3). Each step is validated before the next is shown.
pub(crate) async fn new_step(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Admin(admin): Admin,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    let params = Params::parse(&body).unwrap_or_default();
    let field = |name: &str| params.text(name);
    let step: u8 = field("step").parse().unwrap_or(1).clamp(1, 3);
    let action = field("action");
    let mut draft = match carried(&params) {
        Ok(draft) => draft,
        Err(why) => {
            return step_page(&hub, &admin, 1, &Draft::default(), None, Some(why)).await;
        }
    };
    let servers = hub.store.mcp_servers().await?;
    let connections = hub.known_connections().await?;
    let check = |draft: &Draft, name: Option<&str>| {
        crate::policy::validation::validate_with(&draft.json(name), &servers, &connections)
    };
    match (step, action.as_str()) {
        (1, _) => {
            let rows: Vec<Row> = (0..MAX_ROWS)
                .map(|i| Row {
                    key: field(&format!("key_{i}")).trim().to_owned(),
                    operator: field(&format!("operator_{i}")),
                    value: field(&format!("value_{i}")),
                })
                .filter(|r| !r.key.is_empty() || !r.value.trim().is_empty())
                .collect();
            draft.conditions = rows
                .iter()
                .map(|r| {
                    json!({
                        "key": r.key,
                        "operator": r.operator,
                        "value": parse_value(&r.operator, &r.value),
                    })
                })
                .collect();
            if action == "add_row" {
                let mut rows = rows;
                rows.push(Row {
                    operator: "contains".into(),
                    ..Row::default()
                });
                return step_page(&hub, &admin, 1, &draft, Some(rows), None).await;
            }
            match check(&draft, Some("draft")) {
                Err(err) if step_of(&err) == 1 => {
                    step_page(&hub, &admin, 1, &draft, Some(rows), Some(err.to_string())).await
                }
                _ => step_page(&hub, &admin, 2, &draft, None, None).await,
            }
        }
        (2, "back") => {
            draft.grants = grants_of(&params);
            step_page(&hub, &admin, 1, &draft, None, None).await
        }
        (2, _) => {
            draft.grants = grants_of(&params);
            match check(&draft, Some("draft")) {
                Err(err) if step_of(&err) < 3 => {
                    let step = step_of(&err);
                    step_page(&hub, &admin, step, &draft, None, Some(err.to_string())).await
                }
                _ => step_page(&hub, &admin, 3, &draft, None, None).await,
            }
        }
        (_, "back") => step_page(&hub, &admin, 2, &draft, None, None).await,
        (_, _) => {
            // Checked here too, so an invalid draft never reaches the audit trail as a change.
            if let Err(err) = check(&draft, None) {
                let step = step_of(&err);
                return step_page(&hub, &admin, step, &draft, None, Some(err.to_string())).await;
            }
            let source = hub.source_address(peer.ip(), &headers).to_string();
            match crate::policy::changes::add_policy(
                &hub,
                &draft.json(None),
                Some(admin.username.clone()),
                &source,
            )
            .await?
            {
                Ok(policy) => Ok(Redirect::to(&format!(
                    "{PREFIX}/policies?{}#policy-{}",
                    crate::console::common::query(&[("created", &policy.id)]),
                    policy.id
                ))
                .into_response()),
                Err(err) => {
                    let step = step_of(&err);
                    step_page(&hub, &admin, step, &draft, None, Some(err.to_string())).await
                }
            }
        }
    }
}

// ---- what-if --------------------------------------------------------------------

#[derive(Debug, serde::Deserialize)]
pub(crate) struct WhatIf {
    user: Option<String>,
    client: Option<String>,
}

/// `GET /console/policies/what-if?user=…&client=…`: for every MCP server, the
/// scopes the user would get through this client (its configuration ∩ the
/// policies; consent comes on top), every dropped scope with why, and the
/// policy decision's explanation; the same for every Connection.
pub(crate) async fn what_if(
    State(hub): State<Arc<Hub>>,
    Admin(admin): Admin,
    Query(q): Query<WhatIf>,
) -> Page {
    let users: Vec<Json> = hub
        .store
        .user_labels()
        .await?
        .iter()
        .map(|u| json!({"id": u.id, "label": format!("{} ({})", u.username, u.name)}))
        .collect();
    let mut clients: Vec<_> = hub
        .store
        .clients_with_trust(&TrustLevel::ALL)
        .await?
        .into_iter()
        .filter(|(_, at)| at.is_none())
        .map(|(c, _)| c)
        .collect();
    clients.sort_by(|a, b| a.name.cmp(&b.name).then(a.client_id.cmp(&b.client_id)));
    let client_options: Vec<_> = clients
        .iter()
        .map(|c| {
            json!({
                "id": c.client_id,
                "label": format!("{} ({}; {})", c.name, c.client_id, registration(c.trust_level)),
            })
        })
        .collect();
    let user_id = q.user.clone().filter(|u| !u.is_empty());
    let client_id = q.client.clone().filter(|c| !c.is_empty());
    let mut error = None;
    let mut servers_out = Vec::new();
    let mut connections_out = Vec::new();
    let mut subject = None;
    if let (Some(user_id), Some(client_id)) = (&user_id, &client_id) {
        let user = match hub.store.user_by_id(user_id).await? {
            Some(u) => Some(u),
            None => hub.store.user_by_username(user_id).await?,
        };
        let client = clients.iter().find(|c| &c.client_id == client_id);
        match (user, client) {
            (None, _) => error = Some(format!("There is no user {user_id}.")),
            (_, None) => error = Some(format!("There is no client {client_id} in service.")),
            (Some(user), Some(client)) => {
                for server in hub.store.mcp_servers().await? {
                    let scoping = hub.scoping(&user, client, &server, &server.scopes).await?;
                    servers_out.push(json!({
                        "id": server.id,
                        "name": server.name,
                        "effective": scoping.permitted,
                        "dropped": scoping.unavailable.iter().map(|u| json!({
                            "scope": u.scope,
                            "reason": u.reason,
                            "by": if u.by_configuration { "client configuration" } else { "policies" },
                        })).collect::<Vec<_>>(),
                        "matched": scoping.decision.as_ref().map(|d| d.matched.clone()).unwrap_or_default(),
                        "explanation": scoping.decision.as_ref().map(|d| d.explanation())
                            .unwrap_or_else(|| "policies were not evaluated".into()),
                    }));
                }
                let policies = hub.policies().await?;
                let who = Subject {
                    user: &user,
                    client,
                };
                for connection in hub.connections().await? {
                    let known = connection.known();
                    let decision = policies
                        .decide_connection(&who, &known, &known.scopes)
                        .explain();
                    let allowed = !decision.matched.is_empty();
                    connections_out.push(json!({
                        "id": connection.id,
                        "name": connection.name,
                        "api_key": known.scopes.is_empty(),
                        "allowed": allowed,
                        "effective": decision.permitted,
                        "dropped": decision.dropped,
                        "matched": decision.matched,
                        "explanation": decision.explanation(),
                    }));
                }
                subject = Some(json!({
                    "user": user.username,
                    "user_name": user.name,
                    "client": client.name,
                    "client_id": client.client_id,
                    "client_href": format!("{PREFIX}/agents/{}", segment(&client.client_id)),
                    "trust_level": client.trust_level.as_str(),
                    "registration": registration(client.trust_level),
                }));
            }
        }
    }
    view(
        &hub,
        &admin,
        "policies",
        "console/what_if.html",
        context! {
            users => Value::from_serialize(&users),
            clients => Value::from_serialize(&client_options),
            selected_user => user_id,
            selected_client => client_id,
            subject => Value::from_serialize(&subject),
            servers => Value::from_serialize(&servers_out),
            connections => Value::from_serialize(&connections_out),
            error => error,
        },
    )
}
