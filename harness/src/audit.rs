//! The audit collector: after every scenario, reads the target's audit trail
//! (through its control API) and checks that the scenario's actions were
//! recorded, with the required fields, reasons for refusals, the delegation
//! chain for exchanged tokens, one correlation id per flow, and no secret the
//! harness saw anywhere in it. Reported as its own check on every scenario.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::http::Http;
use crate::profile::Profile;
use crate::verdict::Status;

/// An event the target must have written because of something the harness did.
#[derive(Debug, Clone)]
pub struct AuditExpectation {
    /// What the harness did, for messages.
    pub because: String,
    /// Acceptable event types.
    pub types: Vec<&'static str>,
    /// The client the event must name, when the harness knows it.
    pub client_id: Option<String>,
    /// `success` or `failure`.
    pub outcome: &'static str,
    /// An exchanged token's event must carry `act`.
    pub needs_act: bool,
    /// Must share its correlation id with the event matched by this earlier expectation.
    pub same_flow_as: Option<usize>,
}

/// The audit-completeness verdict of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct AuditCheck {
    pub status: Status,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
    /// Events of the trail written while the scenario ran.
    pub events_read: usize,
    /// Events the scenario's actions required.
    pub events_expected: usize,
}

impl AuditCheck {
    pub fn skip(why: &str) -> AuditCheck {
        AuditCheck {
            status: Status::Skip,
            messages: vec![why.to_owned()],
            events_read: 0,
            events_expected: 0,
        }
    }
}

/// The newest sequence number in the trail, read before a scenario starts.
pub async fn mark(http: &Http, profile: &Profile) -> Option<i64> {
    let control = profile.control.as_ref()?;
    let url = format!("{}/audit?limit=0", control.url.trim_end_matches('/'));
    let response = http
        .send(http.get(&url).bearer_auth(&control.token))
        .await
        .ok()?;
    response.json()?.get("last_seq")?.as_i64()
}

/// Every event written after `after`.
async fn events_since(http: &Http, profile: &Profile, after: i64) -> Result<Vec<Value>, String> {
    let control = profile
        .control
        .as_ref()
        .ok_or("the profile has no [control] to read the audit trail from")?;
    let mut events = Vec::new();
    let mut cursor = after;
    for _ in 0..20 {
        let url = format!(
            "{}/audit?after={cursor}&limit=1000",
            control.url.trim_end_matches('/')
        );
        let response = http
            .send(http.get(&url).bearer_auth(&control.token))
            .await
            .map_err(|e| e.to_string())?;
        if response.status != 200 {
            return Err(format!("reading the audit trail: HTTP {}", response.status));
        }
        let body = response.json().unwrap_or_default();
        let page = body["events"].as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            break;
        }
        cursor = body["next_after"].as_i64().unwrap_or(cursor);
        events.extend(page);
    }
    Ok(events)
}

/// Names the kind of a secret without showing it.
fn secret_hint(secret: &str) -> String {
    let shown: String = secret.chars().take(4).collect();
    format!("`{shown}…` ({} characters)", secret.chars().count())
}

/// Checks the trail written since `after` against what the scenario did.
pub async fn check(
    http: &Http,
    profile: &Profile,
    after: i64,
    expectations: &[AuditExpectation],
    own_clients: &BTreeSet<String>,
    secrets: &[String],
) -> AuditCheck {
    let events = match events_since(http, profile, after).await {
        Ok(events) => events,
        Err(e) => {
            return AuditCheck {
                status: Status::Error,
                messages: vec![e],
                events_read: 0,
                events_expected: expectations.len(),
            }
        }
    };
    let mut messages = Vec::new();
    let text = |e: &Value| e.to_string();
    // No secret the scenario saw may appear anywhere in the trail.
    for event in &events {
        let serialized = text(event);
        if let Some(secret) = secrets
            .iter()
            .filter(|s| s.len() >= 8)
            .find(|s| serialized.contains(s.as_str()))
        {
            messages.push(format!(
                "event {} ({}) contains a secret the harness used: {}",
                event["id"].as_str().unwrap_or("?"),
                event["type"].as_str().unwrap_or("?"),
                secret_hint(secret)
            ));
        }
    }
    // The scenario's own events carry the required fields; refusals say why.
    for event in events.iter().filter(|e| {
        e["client_id"]
            .as_str()
            .is_some_and(|c| own_clients.contains(c))
    }) {
        let id = event["id"].as_str().unwrap_or_default();
        let missing: Vec<&str> = [
            ("id", !id.is_empty()),
            ("time", event["time"].as_i64().unwrap_or(0) > 0),
            (
                "type",
                event["type"].as_str().is_some_and(|t| !t.is_empty()),
            ),
            (
                "outcome",
                matches!(event["outcome"].as_str(), Some("success" | "failure")),
            ),
            (
                "actor.type",
                event["actor"]["type"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty()),
            ),
        ]
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| name)
        .collect();
        if !missing.is_empty() {
            messages.push(format!("event {id} lacks {}", missing.join(", ")));
        }
        if event["outcome"] == "failure"
            && event["reason"].as_str().is_none_or(|r| r.trim().is_empty())
        {
            messages.push(format!(
                "refusal {id} ({}) gives no reason",
                event["type"].as_str().unwrap_or("?")
            ));
        }
    }
    // Every action the harness performed produced its event.
    let mut used = vec![false; events.len()];
    let mut matched: Vec<Option<usize>> = Vec::new();
    for expectation in expectations {
        let found = events.iter().enumerate().position(|(i, e)| {
            !used[i]
                && expectation
                    .types
                    .iter()
                    .any(|t| e["type"].as_str() == Some(t))
                && e["outcome"].as_str() == Some(expectation.outcome)
                && expectation
                    .client_id
                    .as_deref()
                    .is_none_or(|c| e["client_id"].as_str() == Some(c))
        });
        match found {
            None => messages.push(format!(
                "no `{}` event ({}) for {}",
                expectation.types.join("` or `"),
                expectation.outcome,
                expectation.because
            )),
            Some(i) => {
                used[i] = true;
                let event = &events[i];
                if expectation.needs_act && !event["act"].is_object() {
                    messages.push(format!(
                        "the `{}` event for {} has no delegation chain (act)",
                        event["type"].as_str().unwrap_or("?"),
                        expectation.because
                    ));
                }
                if let Some(Some(j)) = expectation
                    .same_flow_as
                    .map(|k| matched.get(k).copied().flatten())
                {
                    let (a, b) = (&events[j]["correlation_id"], &event["correlation_id"]);
                    if a.is_null() || a != b {
                        messages.push(format!(
                            "{} is not tied to its flow: correlation id {b} differs from {a}",
                            expectation.because
                        ));
                    }
                }
            }
        }
        matched.push(found);
    }
    AuditCheck {
        status: if messages.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        },
        messages,
        events_read: events.len(),
        events_expected: expectations.len(),
    }
}
