//! The third-party provider behind this scenario's connections
//! (`crate::provider`), played by the harness: told how to answer, asked
//! what it saw. Everything it issues is a secret the scenario saw.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::act::{Act, ActionInfo};
use super::credentials::unverified_claims;
use super::defaults::hour;
use super::failure::{precondition, StepError};
use super::run::Run;
use crate::provider::{Provider, TokenMode};

const PROVIDER: ActionInfo = ActionInfo::new(
    "provider",
    "The harness plays the third-party provider: here it is told how to answer, or says what it saw (the refresh tokens presented and the bearer tokens its API received).",
    "Connections contract: Refresh",
    "docs/connections.md#refresh",
);

/// Third-party provider: how its token endpoint answers from now on, and
/// the lifetime of the tokens it issues there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderMode {
    #[serde(default)]
    pub token: TokenMode,
    #[serde(default = "hour")]
    pub expires_in: u64,
    /// Milliseconds every token answer waits (0): concurrent callers then
    /// overlap at the provider however loaded the machine is.
    #[serde(default)]
    pub delay_ms: u64,
}

impl Act for ProviderMode {
    const INFO: ActionInfo = PROVIDER;

    /// A slow provider makes the next retrieval wait out the target's provider timeout.
    fn waits(&self) -> bool {
        self.token == TokenMode::Slow
    }

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.set_provider_mode(self.token, self.expires_in, self.delay_ms)
            .await
    }
}

/// Third-party provider: what it has seen (token requests, refresh tokens
/// presented, API calls and the bearer tokens they carried).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderLog {}

impl Act for ProviderLog {
    const INFO: ActionInfo = PROVIDER;

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.provider_log()
    }
}

impl Run<'_> {
    /// The scenario's provider, started on first use.
    pub(super) async fn provider(&mut self) -> &Provider {
        if self.third_party.server.is_none() {
            self.third_party.server = Some(Provider::start().await);
        }
        self.sync_provider_secrets();
        self.third_party.server.as_ref().expect("started above")
    }

    pub(super) fn started_provider(&self) -> Result<&Provider, StepError> {
        self.third_party
            .server
            .as_ref()
            .ok_or_else(|| precondition("no provider has been started in this scenario"))
    }

    /// Everything the provider issued counts as a secret the scenario saw.
    pub(super) fn sync_provider_secrets(&mut self) {
        let issued = self
            .third_party
            .server
            .as_ref()
            .map(Provider::secrets)
            .unwrap_or_default();
        for secret in issued {
            self.evidence.keep_secret(&secret);
        }
    }

    /// Which token a connection token is, as far as this scenario knows.
    pub(super) fn describe_token(&self, token: &str) -> Value {
        if let Some(issued) = self
            .third_party
            .server
            .as_ref()
            .and_then(|p| p.issued(token))
        {
            return serde_json::to_value(issued).unwrap_or_default();
        }
        if let Some(owner) = self.created.api_keys.get(token) {
            return json!({"label": "api_key", "owner": owner, "source": "stored"});
        }
        if self.is_hub_token(token) {
            return json!({"label": "hub"});
        }
        json!({"label": "foreign"})
    }

    /// A token the target issued: one the scenario received, or a JWT of its issuer.
    pub(super) fn is_hub_token(&self, token: &str) -> bool {
        self.client.last_token.as_deref() == Some(token)
            || unverified_claims(token)
                .is_some_and(|c| c["iss"].as_str() == Some(self.profile.issuer.as_str()))
    }

    pub(super) fn provider_mode_now(&self) -> TokenMode {
        self.third_party.mode.unwrap_or_default()
    }

    async fn set_provider_mode(
        &mut self,
        mode: TokenMode,
        expires_in: u64,
        delay_ms: u64,
    ) -> Result<Value, StepError> {
        let settings = &self.profile.connections;
        // Slow enough that only a target without a bound still waits for it.
        let slow = settings.provider_timeout_secs + settings.timeout_margin_secs + 5;
        self.provider()
            .await
            .set_mode(mode, expires_in, slow, delay_ms);
        self.third_party.mode = Some(mode);
        Ok(json!({"mode": mode, "expires_in": expires_in, "slow_secs": slow, "delay_ms": delay_ms}))
    }

    fn provider_log(&self) -> Result<Value, StepError> {
        let provider = self.started_provider()?;
        let requests = provider.token_requests();
        let refreshes: Vec<_> = requests
            .iter()
            .filter(|r| r.grant_type == "refresh_token")
            .collect();
        let api = provider.api_log();
        let api_tokens: Vec<Value> = api
            .iter()
            .map(|(bearer, described)| match bearer {
                Some(b) if described["label"] == "foreign" && self.is_hub_token(b) => {
                    json!({"label": "hub"})
                }
                _ => described.clone(),
            })
            .collect();
        Ok(json!({
            "token_requests": requests.len(),
            "refresh_grants": refreshes.len(),
            "refresh_presented": refreshes.iter().map(|r| r.refresh_token.clone()).collect::<Vec<_>>(),
            "code_grants": requests.iter().filter(|r| r.grant_type == "authorization_code").count(),
            "authorize_requests": provider.authorize_count(),
            "api_calls": api.len(),
            "api_tokens": api_tokens,
            "api_saw_hub_token": api_tokens.iter().any(|t| t["label"] == "hub"),
            "api_saw_vault_token": api_tokens.iter().any(|t| t["source"].is_string()),
        }))
    }
}
