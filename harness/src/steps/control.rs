//! The test driver at the hub's control API (the profile's `[control]`,
//! test mode only): keys, clock and audit-store failure, which every other
//! scenario would notice, so these make a scenario run alone; and the
//! audit reader.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use url::Url;

use super::act::{Act, ActionInfo, InScenario};
use super::failure::{precondition, StepError};
use super::run::Run;

const DRIVER: ActionInfo = ActionInfo::new(
    "test driver",
    "The test driver changes the hub through its control API (test mode only): it rotates the signing key, moves the hub's clock, or makes the audit store fail, so that time and failure can be checked without waiting.",
    "the hub's control API",
    "docs/control-api.md",
);

/// Test driver: rotate the target's signing key through its control API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotateKeys {}

impl Act for RotateKeys {
    const INFO: ActionInfo = DRIVER;

    fn exclusive(&self, _scenario: &InScenario<'_>) -> bool {
        true
    }

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.control_post("/keys/rotate", json!({})).await
    }
}

/// Test driver: move the target's clock forward through its control API.
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
        run.control_post("/clock", json!({"advance_seconds": self.seconds}))
            .await
    }
}

/// Test driver: set the target's clock to a moment (seconds since the epoch), for a known weekday and hour.
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
        run.control_post("/clock", json!({"set": self.at})).await
    }
}

/// Test driver: make the target's audit store fail (or work again) through
/// its control API; makes the scenario exclusive, and teardown restores it.
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
        run.control_post("/audit/failure", json!({"fail": self.fail}))
            .await
    }
}

/// Audit collector: events of one type through the control API, newest last.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEvents {
    #[serde(rename = "type")]
    pub event_type: String,
    /// Only events about this client (a registered name or a profile role).
    #[serde(default)]
    pub client: Option<String>,
    /// Read through the `[admin]` API (the product's) instead of `[control]`.
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
    /// A call to the target's control API (the profile's `[control]`).
    pub(super) async fn control_post(
        &mut self,
        path: &str,
        body: Value,
    ) -> Result<Value, StepError> {
        let control = self
            .profile
            .control
            .clone()
            .ok_or_else(|| precondition("this step needs the profile's [control] section"))?;
        let url = format!("{}{path}", control.url.trim_end_matches('/'));
        let response = self
            .http
            .send(self.http.post(&url).bearer_auth(&control.token).json(&body))
            .await?;
        Ok(json!({"status": response.status, "body": response.json()}))
    }

    /// The audit trail through the control API, for checks on what was recorded.
    async fn audit_events(
        &mut self,
        event_type: &str,
        client: Option<&str>,
        via_admin: bool,
        resource: Option<&str>,
    ) -> Result<Value, StepError> {
        let section = if via_admin { "admin" } else { "control" };
        let control = if via_admin {
            self.profile.admin.clone()
        } else {
            self.profile.control.clone()
        }
        .ok_or_else(|| {
            precondition(format!("this step needs the profile's [{section}] section"))
        })?;
        let mut url = Url::parse(&format!("{}/audit", control.url.trim_end_matches('/')))
            .map_err(|e| precondition(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("type", event_type)
            .append_pair("limit", "1000");
        if let Some(name) = client {
            let id = match self.client.registered.get(name) {
                Some(r) => r.client_id.clone(),
                None => self.confidential(name)?.client_id,
            };
            url.query_pairs_mut().append_pair("client_id", &id);
        }
        let response = self
            .http
            .send(self.http.get(url.as_str()).bearer_auth(&control.token))
            .await?;
        let body = response.json();
        let mut events = body
            .as_ref()
            .and_then(|b| b.get("events"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
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
        Ok(json!({
            "status": response.status,
            "count": events.len(),
            "last": events.last().cloned(),
            "events": events,
            "mentions_secret": mentions_secret,
        }))
    }
}
