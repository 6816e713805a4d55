//! The vault's retrieval (docs/connections.md, Retrieval): an agent or MCP
//! server exchanges the latest access token (RFC 8693) for a connection's
//! provider token, and the hub refreshes it at the provider when needed.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::act::{Act, ActionInfo};
use super::credentials::AssertionVariant;
use super::defaults::{agenda_rs, one, self_name};
use super::evidence::Evidence;
use super::failure::{precondition, StepError};
use super::run::Run;
use crate::provider::TokenMode;

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Agent or MCP server: retrieve a connection's token by token exchange
/// (RFC 8693) with the latest access token as the subject, authenticated
/// as `client`; `concurrent` identical requests at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionToken {
    #[serde(default = "self_name")]
    pub connection: String,
    #[serde(default = "agenda_rs")]
    pub client: String,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default = "one")]
    pub concurrent: u32,
}

impl Act for ConnectionToken {
    const INFO: ActionInfo = ActionInfo::new(
        "MCP server / agent",
        "An MCP server (or an agent) asks the hub's vault for a connection's token by token exchange: the subject token says for whom, resource=urn:hub:connection:<id> names the connection. Connections Policies decide for users, allowed_clients for agents; an expired token is refreshed at the provider first.",
        "RFC 8693 §2.1; Connections contract: Retrieval",
        "docs/connections.md#retrieval-token-exchange-rfc-8693",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.connection_token(
            &self.connection,
            &self.client,
            self.scope.as_deref(),
            self.concurrent,
        )
        .await
    }

    /// Each request's token handed out or refused, and each refresh the hub
    /// made at the provider meanwhile (docs/connections.md, Audit events).
    fn oblige(&self, facts: &Value, _run: &Run<'_>, evidence: &mut Evidence) {
        let client = &self.client;
        // Events about a delegated token name the client the subject token was issued to.
        let subject_client = evidence.latest_token_client();
        for (i, s) in facts["statuses"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            if s == &json!(200) {
                evidence.oblige(
                    format!(
                        "the connection token handed to `{client}` (request {})",
                        i + 1
                    ),
                    vec!["connection.token.issued"],
                    subject_client.clone(),
                    "success",
                );
            } else {
                evidence.oblige(
                    format!(
                        "the connection token refused to `{client}` (request {})",
                        i + 1
                    ),
                    vec!["connection.token.denied"],
                    None,
                    "failure",
                );
            }
        }
        for outcome in facts["refresh_outcomes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            match outcome.as_str() {
                Some("refreshed") => evidence.oblige(
                    "a refresh at the provider".into(),
                    vec!["connection.refreshed"],
                    None,
                    "success",
                ),
                _ => evidence.oblige(
                    "a refresh the provider failed".into(),
                    vec!["connection.refresh_failed"],
                    None,
                    "failure",
                ),
            };
        }
    }
}

impl Run<'_> {
    async fn connection_token(
        &mut self,
        connection: &str,
        role: &str,
        scope: Option<&str>,
        concurrent: u32,
    ) -> Result<Value, StepError> {
        let created = self.connection(connection)?;
        let client = self.confidential(role)?;
        let subject = self
            .client
            .last_token
            .clone()
            .ok_or_else(|| precondition("no access token has been received to exchange"))?;
        let endpoint = self.endpoint("token_endpoint").await?;
        let settings = &self.profile.connections;
        let bound =
            Duration::from_secs(settings.provider_timeout_secs + settings.timeout_margin_secs);
        let resource = format!("{}{}", settings.resource_prefix, created.id);
        let scope = scope.map(|s| self.text(s)).transpose()?;
        let seen_before = self
            .third_party
            .server
            .as_ref()
            .map(|p| p.token_requests().len())
            .unwrap_or_default();
        let mut requests = Vec::new();
        for _ in 0..concurrent.max(1) {
            let secret = if client.auth_method == "private_key_jwt" {
                self.assertion(&client, &endpoint, AssertionVariant::Valid)?
            } else {
                client.client_secret.clone()
            };
            let mut form = vec![
                ("grant_type", TOKEN_EXCHANGE.to_owned()),
                ("subject_token", subject.clone()),
                ("subject_token_type", ACCESS_TOKEN_TYPE.to_owned()),
                ("resource", resource.clone()),
            ];
            if let Some(scope) = &scope {
                form.push(("scope", scope.clone()));
            }
            let request = self
                .confidential_post(&self.http, &endpoint, &client, &secret, form)
                .timeout(bound);
            requests.push(request);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (i, request) in requests.into_iter().enumerate() {
            let http = self.http.clone();
            tasks.spawn(async move {
                let started = Instant::now();
                let result = http.send(request).await;
                (i, result, started.elapsed())
            });
        }
        let mut answers = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            answers.push(joined.map_err(|e| precondition(format!("a request task failed: {e}")))?);
        }
        answers.sort_by_key(|(i, _, _)| *i);

        let mut each = Vec::new();
        for (_, result, elapsed) in answers {
            let mut facts = match result {
                Ok(response) => {
                    let body = response.json();
                    if let Some(token) = body.as_ref().and_then(|b| b["access_token"].as_str()) {
                        self.evidence.keep_secret(token);
                    }
                    let token = body
                        .as_ref()
                        .and_then(|b| b["access_token"].as_str())
                        .map(|t| self.describe_token(t));
                    json!({
                        "status": response.status,
                        "error": body.as_ref().and_then(|b| b.get("error")).cloned(),
                        "body": body,
                        "headers": {"cache_control": response.header("cache-control")},
                        "token": token,
                        "timed_out": false,
                    })
                }
                Err(e) if e.message.starts_with("timed out") => {
                    json!({"status": null, "error": null, "timed_out": true})
                }
                Err(e) => return Err(StepError::Transport(e)),
            };
            facts["elapsed_ms"] = json!(elapsed.as_millis() as u64);
            facts["within_bound"] = json!(elapsed <= bound);
            each.push(facts);
        }

        // What the provider was asked meanwhile.
        let mode = self.provider_mode_now();
        let refreshes: Vec<crate::provider::TokenRequest> = self
            .third_party
            .server
            .as_ref()
            .map(|p| p.token_requests())
            .unwrap_or_default()
            .into_iter()
            .skip(seen_before)
            .filter(|r| r.grant_type == "refresh_token")
            .collect();
        let usable = matches!(mode, TokenMode::Normal | TokenMode::NoExpiresIn);
        let refresh_outcomes: Vec<&str> = refreshes
            .iter()
            .map(|r| {
                if r.status == 200 && usable {
                    "refreshed"
                } else {
                    "failed"
                }
            })
            .collect();
        self.sync_provider_secrets();

        let statuses: Vec<Value> = each.iter().map(|f| f["status"].clone()).collect();
        let mut facts = if each.len() == 1 {
            each.remove(0)
        } else {
            let first_bad = each.iter().find(|f| f["status"] != json!(200));
            let mut distinct: Vec<String> = each
                .iter()
                .filter_map(|f| f["body"]["access_token"].as_str().map(str::to_owned))
                .collect();
            distinct.sort();
            distinct.dedup();
            let mut owners: Vec<Value> = each.iter().map(|f| f["token"]["owner"].clone()).collect();
            owners.dedup();
            json!({
                "status": first_bad.map_or(json!(200), |f| f["status"].clone()),
                "error": first_bad.map_or(Value::Null, |f| f["error"].clone()),
                "ok_count": each.iter().filter(|f| f["status"] == json!(200)).count(),
                "distinct_tokens": distinct.len(),
                "owners": owners,
                "tokens": each.iter().map(|f| f["token"].clone()).collect::<Vec<_>>(),
                "timed_out": each.iter().any(|f| f["timed_out"] == json!(true)),
            })
        };
        facts["statuses"] = json!(statuses);
        facts["refreshes"] = json!(refreshes.len());
        facts["refresh_presented"] = json!(refreshes
            .iter()
            .map(|r| r.refresh_token.clone())
            .collect::<Vec<_>>());
        facts["refresh_scopes"] = json!(refreshes
            .iter()
            .map(|r| r.scope.clone())
            .collect::<Vec<_>>());
        facts["refresh_outcomes"] = json!(refresh_outcomes);
        Ok(facts)
    }
}
