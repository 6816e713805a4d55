//! The audit trail in the console: a filtered list (the admin API's query),
//! a live feed over Server-Sent Events with the same filters, and one flow
//! as a timeline (the correlation-id drill-down).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{context, Value};
use serde_json::{json, Value as Json};

use crate::audit::event::AuditEvent;
use crate::console::common::{message, query, segment, view, Admin, Page, PREFIX};
use crate::hub::Hub;
use crate::store::audit::AuditFilter;

/// Events per page of the list.
const PAGE: i64 = 100;
/// Most events the drill-down follows after a flow (tool calls, connection tokens).
const MAX_RELATED: usize = 50;

/// Filters of the list and the live feed; empty fields are ignored.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub(crate) struct Filters {
    #[serde(rename = "type", default)]
    event_type: String,
    #[serde(default)]
    client_id: String,
    /// A user id or a username.
    #[serde(default)]
    user: String,
    #[serde(default)]
    correlation_id: String,
    after: Option<i64>,
}

fn some(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl Filters {
    fn any(&self) -> bool {
        [
            &self.event_type,
            &self.client_id,
            &self.user,
            &self.correlation_id,
        ]
        .iter()
        .any(|f| !f.trim().is_empty())
    }

    /// The user filter as a user id: a username is resolved.
    async fn user_id(&self, hub: &Hub) -> Result<Option<String>, crate::error::HubError> {
        let Some(user) = some(&self.user) else {
            return Ok(None);
        };
        Ok(Some(match hub.store.user_by_username(&user).await? {
            Some(u) => u.id,
            None => user,
        }))
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("type", self.event_type.trim().to_owned()),
            ("client_id", self.client_id.trim().to_owned()),
            ("user", self.user.trim().to_owned()),
            ("correlation_id", self.correlation_id.trim().to_owned()),
        ]
    }

    fn query(&self, extra: &[(&'static str, String)]) -> String {
        let all: Vec<(&str, String)> = self
            .pairs()
            .into_iter()
            .chain(extra.iter().cloned())
            .collect();
        let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
        query(&refs)
    }
}

/// A stage of a flow, for people: what kind of step an event type is.
fn stage(event_type: &str) -> &'static str {
    match event_type {
        "client.registered" => "Registration",
        "user.login" | "user.session.reused" | "user.logout" => "Sign-in",
        "authorization.refused" => "Authorization",
        "policy.evaluated" => "Policy decision",
        t if t.starts_with("consent.") => "Consent",
        "tool.executed" => "Tool call",
        t if t.starts_with("connection.token.") || t.starts_with("connection.refresh") => {
            "Connection token"
        }
        t if t.starts_with("token.") => "Token",
        t if t.starts_with("policy.") => "Policy change",
        t if t.starts_with("agent.") => "Agent lifecycle",
        t if t.starts_with("admin.") => "Console",
        t if t.starts_with("connection.") => "Connection",
        _ => "Other",
    }
}

/// An event as a row or a timeline entry: never more than the event holds
/// (and the event never holds a secret).
fn row(seq: i64, e: &AuditEvent) -> Json {
    json!({
        "seq": seq,
        "id": e.id,
        "time": e.time,
        "type": e.event_type,
        "stage": stage(&e.event_type),
        "outcome": e.outcome,
        "actor": match &e.actor.id {
            Some(id) => format!("{} {id}", e.actor.kind),
            None => e.actor.kind.clone(),
        },
        "user": e.user,
        "tenant": e.tenant,
        "client_id": e.client_id,
        "client_name": e.client_name,
        "client_href": e.client_id.as_deref().map(|c| format!("{PREFIX}/agents/{}", segment(c))),
        "resource": e.resource,
        "scopes_requested": e.scopes_requested,
        "scopes_granted": e.scopes_granted,
        "scopes_dropped": e.scopes_dropped,
        "policies": e.policies,
        "act": e.act.as_ref().map(ToString::to_string),
        "reason": e.reason,
        "correlation_id": e.correlation_id,
        "flow_href": e.correlation_id.as_deref().map(|c| format!("{PREFIX}/audit/flow/{}", segment(c))),
        "source_ip": e.source_ip,
    })
}

/// Event types offered as suggestions in the filter form.
const TYPES: &[&str] = &[
    "client.registered",
    "user.login",
    "user.session.reused",
    "user.logout",
    "authorization.refused",
    "consent.granted",
    "consent.denied",
    "consent.revoked",
    "policy.evaluated",
    "policy.created",
    "policy.deleted",
    "token.issued",
    "token.refused",
    "token.refreshed",
    "token.revoked",
    "token.exchanged",
    "tool.executed",
    "agent.created",
    "agent.decommissioned",
    "connection.token.issued",
    "connection.token.denied",
    "connection.token.stored",
    "connection.refreshed",
    "connection.refresh_failed",
    "admin.login",
    "admin.logout",
    "admin.request_refused",
];

/// `GET /console/audit?type=…&client_id=…&user=…&correlation_id=…&after=…`:
/// events oldest first, a page at a time. Without filters or `after` it
/// shows the newest page of the trail.
pub(crate) async fn list(
    State(hub): State<Arc<Hub>>,
    Admin(admin): Admin,
    Query(filters): Query<Filters>,
) -> Page {
    let last_seq = hub.store.last_audit_seq().await?;
    let after = filters.after.unwrap_or(if filters.any() {
        0
    } else {
        (last_seq - PAGE).max(0)
    });
    let filter = AuditFilter {
        after,
        event_type: some(&filters.event_type),
        client_id: some(&filters.client_id),
        user: filters.user_id(&hub).await?,
        correlation_id: some(&filters.correlation_id),
        limit: PAGE,
        ..AuditFilter::default()
    };
    let (events, last_seq) = crate::audit::trail::query_audit(&hub, filter).await?;
    let shown_last = events.last().map(|(seq, _)| *seq);
    let rows: Vec<_> = events.iter().map(|(seq, e)| row(*seq, e)).collect();
    let later = shown_last
        .filter(|s| *s < last_seq && events.len() as i64 == PAGE)
        .map(|s| {
            format!(
                "{PREFIX}/audit?{}",
                filters.query(&[("after", s.to_string())])
            )
        });
    let earlier = (after > 0).then(|| {
        format!(
            "{PREFIX}/audit?{}",
            filters.query(&[("after", (after - PAGE).max(0).to_string())])
        )
    });
    let stream = format!("{PREFIX}/audit/stream?{}", filters.query(&[]));
    let reload = format!(
        "{PREFIX}/audit?{}",
        filters.query(&[("after", shown_last.unwrap_or(after).to_string())])
    );
    view(
        &hub,
        &admin,
        "audit",
        "console/audit.html",
        context! {
            events => Value::from_serialize(&rows),
            filter => context! {
                type => filters.event_type,
                client_id => filters.client_id,
                user => filters.user,
                correlation_id => filters.correlation_id,
            },
            types => TYPES,
            after => after,
            last_seq => last_seq,
            earlier => earlier,
            later => later,
            stream => stream,
            reload => reload,
        },
    )
}

/// `GET /console/audit/stream?…`: the live feed for a signed-in
/// administrator, with the list's filters, until the session expires.
pub(crate) async fn stream(
    State(hub): State<Arc<Hub>>,
    Admin(admin): Admin,
    Query(filters): Query<Filters>,
) -> Result<Response, crate::console::common::Fail> {
    let event_type = some(&filters.event_type);
    let client_id = some(&filters.client_id);
    let user = filters.user_id(&hub).await?;
    let correlation = some(&filters.correlation_id);
    let keep = move |e: &AuditEvent| {
        event_type.as_ref().is_none_or(|t| &e.event_type == t)
            && client_id
                .as_ref()
                .is_none_or(|c| e.client_id.as_ref() == Some(c))
            && user.as_ref().is_none_or(|u| e.user.as_ref() == Some(u))
            && correlation
                .as_ref()
                .is_none_or(|c| e.correlation_id.as_ref() == Some(c))
    };
    Ok(crate::audit::trail::audit_sse(
        &hub,
        keep,
        Some(admin.expires_at),
    ))
}

/// Events after a flow that belong to it in practice: the same client acting
/// for the same user (tool calls, connection tokens, refreshes), until that
/// client and user start another flow.
fn follows(e: &AuditEvent, correlation: &str) -> Option<bool> {
    if e.correlation_id.as_deref() == Some(correlation) {
        return Some(false);
    }
    let starts_another = matches!(
        e.event_type.as_str(),
        "user.login"
            | "user.session.reused"
            | "consent.granted"
            | "consent.denied"
            | "policy.evaluated"
    ) || (e.event_type == "token.issued"
        && e.correlation_id.as_deref() != Some(correlation)
        && e.user.is_some());
    if starts_another {
        return None;
    }
    Some(
        matches!(
            e.event_type.as_str(),
            "tool.executed"
                | "token.refreshed"
                | "token.exchanged"
                | "token.revoked"
                | "consent.revoked"
        ) || e.event_type.starts_with("connection.token.")
            || e.event_type.starts_with("connection.refresh"),
    )
}

/// `GET /console/audit/flow/{correlation}`: one flow as a timeline, oldest
/// first: the client's registration, sign-in, policy decision, consent,
/// token, and what the same client did for the same user afterwards (tool
/// calls, connection tokens).
pub(crate) async fn flow(
    State(hub): State<Arc<Hub>>,
    Admin(admin): Admin,
    Path(correlation): Path<String>,
) -> Page {
    let (core, _) = crate::audit::trail::query_audit(
        &hub,
        AuditFilter {
            correlation_id: Some(correlation.clone()),
            limit: 1000,
            ..AuditFilter::default()
        },
    )
    .await?;
    let Some((first_seq, _)) = core.first() else {
        return Ok(message(
            &hub,
            Some(&admin),
            StatusCode::NOT_FOUND,
            "No such flow",
            &format!("No audit event has the correlation id {correlation}."),
        ));
    };
    let first_seq = *first_seq;
    let client_id = core.iter().find_map(|(_, e)| e.client_id.clone());
    let user = core.iter().find_map(|(_, e)| e.user.clone());
    let mut entries: Vec<(i64, AuditEvent, &'static str)> =
        core.into_iter().map(|(s, e)| (s, e, "flow")).collect();
    if let Some(client_id) = &client_id {
        let (registered, _) = crate::audit::trail::query_audit(
            &hub,
            AuditFilter {
                event_type: Some("client.registered".into()),
                client_id: Some(client_id.clone()),
                limit: 10,
                ..AuditFilter::default()
            },
        )
        .await?;
        entries.extend(
            registered
                .into_iter()
                .filter(|(s, _)| *s < first_seq)
                .map(|(s, e)| (s, e, "registration")),
        );
        let (after, _) = crate::audit::trail::query_audit(
            &hub,
            AuditFilter {
                after: first_seq,
                client_id: Some(client_id.clone()),
                user: user.clone(),
                limit: 1000,
                ..AuditFilter::default()
            },
        )
        .await?;
        let mut related = 0;
        for (seq, e) in after {
            match follows(&e, &correlation) {
                None => break,
                Some(true) if related < MAX_RELATED => {
                    related += 1;
                    entries.push((seq, e, "related"));
                }
                _ => {}
            }
        }
    }
    entries.sort_by_key(|(seq, _, _)| *seq);
    let start = entries.first().map(|(_, e, _)| e.time).unwrap_or_default();
    let timeline: Vec<_> = entries
        .iter()
        .map(|(seq, e, link)| {
            let mut r = row(*seq, e);
            r["link"] = json!(link);
            r["offset"] = json!(e.time - start);
            r
        })
        .collect();
    view(
        &hub,
        &admin,
        "audit",
        "console/flow.html",
        context! {
            correlation => correlation,
            client_href => client_id.as_deref().map(|c| format!("{PREFIX}/agents/{}", segment(c))),
            client_id => client_id,
            user => user,
            events => Value::from_serialize(&timeline),
            list_href => format!("{PREFIX}/audit?{}", query(&[("correlation_id", &correlation)])),
        },
    )
}
