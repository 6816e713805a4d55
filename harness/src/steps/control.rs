//! The test driver: keys, clock and audit-store failure, through the
//! profile's recipes (test mode), which every other scenario would notice,
//! so these make a scenario run alone; and the audit reader.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::act::{Act, ActionInfo, InScenario};
use super::failure::StepError;
use super::run::Run;
use crate::recipe::Operation;

const DRIVER: ActionInfo = ActionInfo::new(
    "test driver",
    "The test driver changes the hub through its test-mode operations: it rotates the signing key, moves the hub's clock, or makes the audit store fail, so that time and failure can be checked without waiting.",
    "the hub's control API",
    "docs/control-api.md",
);

/// Test driver: rotate the target's signing key (operation `rotate_keys`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotateKeys {}

impl Act for RotateKeys {
    const INFO: ActionInfo = DRIVER;

    fn exclusive(&self, _scenario: &InScenario<'_>) -> bool {
        true
    }

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.operation_facts(Operation::RotateKeys, json!({})).await
    }
}

/// Test driver: move the target's clock forward (operation `advance_clock`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdvanceClock {
    pub seconds: u32,
}

impl Act for AdvanceClock {
    const INFO: ActionInfo = DRIVER;

    fn exclusive(&self, _scenario: &InScenario<'_>) -> bool {
        true
    }

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.driver.moved_clock = true;
        run.operation_facts(Operation::AdvanceClock, json!({"seconds": self.seconds}))
            .await
    }
}

/// Test driver: set the target's clock to a moment (seconds since the
/// epoch), for a known weekday and hour (operation `set_clock`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetClock {
    pub at: i64,
}

impl Act for SetClock {
    const INFO: ActionInfo = DRIVER;

    fn exclusive(&self, _scenario: &InScenario<'_>) -> bool {
        true
    }

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.driver.moved_clock = true;
        run.operation_facts(Operation::SetClock, json!({"at": self.at}))
            .await
    }
}

/// Test driver: make the target's audit store fail (or work again), operation
/// `audit_failure`; makes the scenario exclusive, and teardown restores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditFailure {
    pub fail: bool,
}

impl Act for AuditFailure {
    const INFO: ActionInfo = DRIVER;

    fn exclusive(&self, _scenario: &InScenario<'_>) -> bool {
        true
    }

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.driver.broke_audit = true;
        run.operation_facts(Operation::AuditFailure, json!({"fail": self.fail}))
            .await
    }
}

/// Audit collector: events of one type (operation `read_audit`, or the
/// product's `query_audit`), newest last.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEvents {
    #[serde(rename = "type")]
    pub event_type: String,
    /// Only events about this client (a registered name or a profile role).
    #[serde(default)]
    pub client: Option<String>,
    /// Read through the product's own audit query (`query_audit`) instead of `read_audit`.
    #[serde(default)]
    pub via_admin: bool,
    /// Only events whose `resource` is this (e.g. `urn:hub:connection:${conn.self.id}`).
    #[serde(default)]
    pub resource: Option<String>,
}

impl Act for AuditEvents {
    const INFO: ActionInfo = ActionInfo::new(
        "audit reader",
        "The audit trail is read back: every registration, consent, policy decision, token and tool call is an event with the user, client and resource, correlated per flow, and never a secret.",
        "Product model: Audit",
        "docs/product-model.md#audit",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.audit_events(
            &self.event_type,
            self.client.as_deref(),
            self.via_admin,
            self.resource.as_deref(),
        )
        .await
    }
}

impl Run<'_> {
    /// The audit trail, for checks on what was recorded.
    async fn audit_events(
        &mut self,
        event_type: &str,
        client: Option<&str>,
        via_admin: bool,
        resource: Option<&str>,
    ) -> Result<Value, StepError> {
        let client_id = match client {
            Some(name) => Some(match self.client.registered.get(name) {
                Some(r) => r.client_id.clone(),
                None => self.confidential(name)?.client_id,
            }),
            None => None,
        };
        let inputs = json!({"type": event_type, "client_id": client_id});
        let operation = if via_admin {
            Operation::QueryAudit
        } else {
            Operation::ReadAudit
        };
        let answer = self.operation(operation, inputs).await?;
        let mut events = if answer.ok {
            answer
                .need("events")?
                .as_array()
                .cloned()
                .ok_or_else(|| answer.unexpected("`events` is not a list"))?
        } else {
            Vec::new()
        };
        if let Some(resource) = resource {
            let resource = self.text(resource)?;
            events.retain(|e| e["resource"].as_str() == Some(resource.as_str()));
        }
        // Whether any of these events holds a secret the scenario saw.
        let text = Value::Array(events.clone()).to_string();
        let mentions_secret = self
            .evidence
            .secrets
            .iter()
            .filter(|s| s.len() >= 8)
            .any(|s| text.contains(s.as_str()));
        let mut facts = answer.facts();
        facts["count"] = json!(events.len());
        facts["last"] = json!(events.last());
        facts["events"] = Value::Array(events);
        facts["mentions_secret"] = json!(mentions_secret);
        Ok(facts)
    }
}
