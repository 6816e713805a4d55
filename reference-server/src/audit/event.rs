//! The audit trail: one [`AuditEvent`] per security-relevant action.
//!
//! Events never carry secrets: no token, code, verifier, password or client
//! secret is ever passed to [`AuditEvent`]. Writing is part of the action: a
//! failed audit write fails the request (no token is issued unaudited).

use serde::{Deserialize, Serialize};

/// Version of the event schema below; bump it with any field change.
pub const AUDIT_SCHEMA_VERSION: &str = "3";

/// A requested scope that was not granted, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DroppedScope {
    pub scope: String,
    pub reason: String,
}

/// Who performed the action.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Actor {
    /// `user`, `client`, `agent`, `admin` or `anonymous`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
}

/// One audited action and its outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: String,
    /// Seconds since the Unix epoch, on the hub's clock.
    pub time: i64,
    /// e.g. `client.registered`, `user.login`, `consent.granted`, `token.issued`, `token.refused`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `success` or `failure`.
    pub outcome: String,
    pub actor: Actor,
    /// The user acted for, if any.
    pub user: Option<String>,
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    pub resource: Option<String>,
    pub scopes_requested: Vec<String>,
    pub scopes_granted: Vec<String>,
    /// Why a refusal happened, in words an operator can act on.
    pub reason: Option<String>,
    /// Ties the events of one flow together (one authorization request, one token request).
    pub correlation_id: Option<String>,
    pub source_ip: Option<String>,
    /// The client as it was at the time: name, trust level and tags (filled in on write).
    #[serde(default)]
    pub client_name: Option<String>,
    #[serde(default)]
    pub client_trust_level: Option<String>,
    #[serde(default)]
    pub client_tags: Vec<String>,
    /// Requested scopes that were not granted, each with why.
    #[serde(default)]
    pub scopes_dropped: Vec<DroppedScope>,
    /// Ids of the policies that matched a decision (`policy.evaluated`).
    #[serde(default)]
    pub policies: Vec<String>,
    /// The delegation chain of an exchanged token (RFC 8693 §4.1 `act`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<serde_json::Value>,
}

impl AuditEvent {
    pub fn new(event_type: &str, outcome: Outcome) -> Self {
        AuditEvent {
            id: crate::random::ordered_id("evt"),
            time: 0,
            event_type: event_type.to_owned(),
            outcome: outcome.as_str().to_owned(),
            actor: Actor {
                kind: "anonymous".to_owned(),
                id: None,
            },
            user: None,
            tenant: None,
            client_id: None,
            resource: None,
            scopes_requested: Vec::new(),
            scopes_granted: Vec::new(),
            reason: None,
            correlation_id: None,
            source_ip: None,
            client_name: None,
            client_trust_level: None,
            client_tags: Vec::new(),
            scopes_dropped: Vec::new(),
            policies: Vec::new(),
            act: None,
        }
    }

    pub fn dropped(mut self, dropped: Vec<DroppedScope>) -> Self {
        self.scopes_dropped = dropped;
        self
    }

    pub fn policies(mut self, ids: Vec<String>) -> Self {
        self.policies = ids;
        self
    }

    pub fn act(mut self, act: Option<serde_json::Value>) -> Self {
        self.act = act;
        self
    }

    pub fn actor(mut self, kind: &str, id: impl Into<Option<String>>) -> Self {
        self.actor = Actor {
            kind: kind.to_owned(),
            id: id.into(),
        };
        self
    }

    pub fn user(mut self, user: impl Into<Option<String>>) -> Self {
        self.user = user.into();
        self
    }

    pub fn tenant(mut self, tenant: impl Into<Option<String>>) -> Self {
        self.tenant = tenant.into();
        self
    }

    pub fn client(mut self, client_id: impl Into<Option<String>>) -> Self {
        self.client_id = client_id.into();
        self
    }

    pub fn resource(mut self, resource: impl Into<Option<String>>) -> Self {
        self.resource = resource.into();
        self
    }

    pub fn scopes(mut self, requested: &[String], granted: &[String]) -> Self {
        self.scopes_requested = requested.to_vec();
        self.scopes_granted = granted.to_vec();
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn correlation(mut self, correlation_id: impl Into<Option<String>>) -> Self {
        self.correlation_id = correlation_id.into();
        self
    }

    pub fn source_ip(mut self, ip: impl Into<Option<String>>) -> Self {
        self.source_ip = ip.into();
        self
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// The event in a CloudEvents 1.0 envelope (JSON format), as SIEMs take it:
/// `id` is the event id, `source` the hub's issuer, `type` the event type
/// under `dev.agentic-identity-hub.audit.`, `time` RFC 3339, `subject` the
/// client, `sequence` the position in the trail, `data` the event itself
/// (schema version in `dataschema`).
pub fn cloud_event(event: &AuditEvent, seq: i64, issuer: &str) -> serde_json::Value {
    let time = chrono::DateTime::from_timestamp(event.time, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    serde_json::json!({
        "specversion": "1.0",
        "id": event.id,
        "source": issuer,
        "type": format!("dev.agentic-identity-hub.audit.{}", event.event_type),
        "time": time,
        "subject": event.client_id,
        "sequence": seq,
        "datacontenttype": "application/json",
        "dataschema": format!("urn:agentic-identity-hub:audit:v{AUDIT_SCHEMA_VERSION}"),
        "data": event,
    })
}
