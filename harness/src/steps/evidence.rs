//! What a scenario run has seen and owes the verdict: every secret (for
//! redaction), the claims of every access token (for reports), and the audit
//! events its actions oblige the target to write.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::audit::AuditExpectation;

#[derive(Debug, Default)]
pub struct Evidence {
    /// Every secret seen, for redaction of transcripts.
    pub secrets: Vec<String>,
    /// Decoded claims of every access token received, for reports and snapshots.
    pub token_claims: Vec<Value>,
    /// Events the target must have audited because of what this scenario did.
    pub obligations: Vec<AuditExpectation>,
    /// Client ids this scenario used (whose events it may inspect closely).
    pub own_clients: BTreeSet<String>,
    /// The obligation of the last consent, to tie its code's token to the same flow.
    pub last_consent: Option<usize>,
}

impl Evidence {
    pub fn keep_secret(&mut self, secret: &str) {
        if !secret.is_empty() && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_owned());
        }
    }

    /// An event the target owes, with no delegation or flow to check; its index.
    pub fn oblige(
        &mut self,
        because: String,
        types: Vec<&'static str>,
        client_id: Option<String>,
        outcome: &'static str,
    ) -> usize {
        self.oblige_exactly(AuditExpectation {
            because,
            types,
            client_id,
            outcome,
            needs_act: false,
            same_flow_as: None,
        })
    }

    /// An event the target owes, as given; its index.
    pub fn oblige_exactly(&mut self, expectation: AuditExpectation) -> usize {
        self.obligations.push(expectation);
        self.obligations.len() - 1
    }

    /// The client the latest access token was issued to: events about a
    /// delegated token name it.
    pub fn latest_token_client(&self) -> Option<String> {
        self.token_claims
            .last()
            .and_then(|c| c["client_id"].as_str())
            .map(str::to_owned)
    }
}

/// The HTTP status an action's facts recorded (0 when none).
pub fn status(facts: &Value) -> u64 {
    facts["status"].as_u64().unwrap_or(0)
}

/// Whether the facts record a success: what the recipe calls success for
/// an operation (`ok`), else a 2xx.
pub fn succeeded(facts: &Value) -> bool {
    facts["ok"]
        .as_bool()
        .unwrap_or_else(|| (200..300).contains(&status(facts)))
}
