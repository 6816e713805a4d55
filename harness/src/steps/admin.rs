//! The administrator, through the profile's recipes: revoking a consent and
//! managing policies; and turning what a scenario writes into an input.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::act::{Act, ActionInfo, InScenario};
use super::defaults::self_name;
use super::evidence::{succeeded, Evidence};
use super::failure::{precondition, StepError};
use super::run::Run;
use crate::recipe::Operation;

/// Admin: revoke the profile user's consent to client `client` (operation `revoke_consent`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokeConsent {
    #[serde(default = "self_name")]
    pub client: String,
}

impl Act for RevokeConsent {
    const INFO: ActionInfo = ActionInfo::new(
        "admin",
        "The administrator revokes a user's consent to a client through the hub's admin API; its refresh tokens go with it, and the next authorization asks the user again.",
        "the hub's admin API",
        "docs/admin-api.md",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.revoke_consent(&self.client).await
    }

    fn oblige(&self, facts: &Value, run: &Run<'_>, evidence: &mut Evidence) {
        if succeeded(facts) {
            evidence.oblige(
                format!("revoking the consent to `{}`", self.client),
                vec!["consent.revoked"],
                run.registered_id(&self.client),
                "success",
            );
        }
    }
}

const POLICIES: ActionInfo = ActionInfo::new(
    "admin",
    "The administrator creates or deletes a policy: conditions on the user and client, and the MCP servers (or connections) and scopes it grants. Policies apply from the very next request, and with no matching policy there is no scope.",
    "Product model: MCP Server Policies",
    "docs/product-model.md#mcp-server-policies",
);

/// Admin: create a policy (the product model's, written as TOML; operation
/// `create_policy`) and remember its id under `as`. Makes the scenario
/// exclusive; teardown deletes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatePolicy {
    #[serde(default = "self_name", rename = "as")]
    pub name: String,
    pub policy: toml::Value,
}

impl Act for CreatePolicy {
    const INFO: ActionInfo = POLICIES;

    fn exclusive(&self, scenario: &InScenario<'_>) -> bool {
        changes_others(scenario, &self.name)
    }

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.create_policy(&self.name, &self.policy).await
    }

    fn oblige(&self, facts: &Value, _run: &Run<'_>, evidence: &mut Evidence) {
        if succeeded(facts) {
            evidence.oblige(
                format!("creating policy `{}`", self.name),
                vec!["policy.created"],
                None,
                "success",
            );
        }
    }
}

/// Admin: delete a policy created earlier in the scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeletePolicy {
    #[serde(default = "self_name")]
    pub name: String,
}

impl Act for DeletePolicy {
    const INFO: ActionInfo = POLICIES;

    fn exclusive(&self, scenario: &InScenario<'_>) -> bool {
        changes_others(scenario, &self.name)
    }

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.delete_policy(&self.name).await
    }

    fn oblige(&self, facts: &Value, _run: &Run<'_>, evidence: &mut Evidence) {
        if succeeded(facts) {
            evidence.oblige(
                format!("deleting policy `{}`", self.name),
                vec!["policy.deleted"],
                None,
                "success",
            );
        }
    }
}

/// Whether the policy the scenario creates under `name` (or one it never
/// created) can change what other scenarios get. A policy that only grants
/// connections this scenario created affects nothing else.
fn changes_others(scenario: &InScenario<'_>, name: &str) -> bool {
    scenario
        .policies
        .get(name)
        .is_none_or(|policy| !grants_only_connections(policy))
}

/// The resource roles a policy grants on, when every grant names an MCP
/// server as `${resources.<role>.id}`: such a policy changes decisions on
/// those servers only (a policy grants nothing elsewhere).
pub(super) fn granted_resource_roles(policy: &toml::Value) -> Option<Vec<String>> {
    let grants = policy.get("grants")?.as_array()?;
    if grants.is_empty() {
        return None;
    }
    grants
        .iter()
        .map(|g| {
            let server = g.get("mcp_server")?.as_str()?;
            let role = server.strip_prefix("${resources.")?.strip_suffix(".id}")?;
            (g.get("connection").is_none() && !role.contains(['$', '{', '}']))
                .then(|| role.to_owned())
        })
        .collect()
}

/// Whether every grant of a policy names a connection this scenario created
/// (`${conn.…}`), never an MCP server or a connection others use.
fn grants_only_connections(policy: &toml::Value) -> bool {
    policy
        .get("grants")
        .and_then(toml::Value::as_array)
        .is_some_and(|grants| {
            !grants.is_empty()
                && grants.iter().all(|g| {
                    g.get("mcp_server").is_none()
                        && g.get("connection")
                            .and_then(toml::Value::as_str)
                            .is_some_and(|c| c.starts_with("${conn."))
                })
        })
}

impl Run<'_> {
    /// TOML written in a scenario, as JSON, with `${…}` resolved.
    pub(super) fn scenario_json(&self, value: &toml::Value) -> Result<Value, StepError> {
        let json = serde_json::to_value(value).map_err(|e| precondition(e.to_string()))?;
        let text = self.text(&json.to_string())?;
        serde_json::from_str(&text).map_err(|e| precondition(e.to_string()))
    }

    /// The admin revokes the profile user's consent to a client.
    async fn revoke_consent(&mut self, name: &str) -> Result<Value, StepError> {
        let client = self.registered(name)?;
        let inputs = json!({"user": self.profile.user.username, "client_id": client.client_id});
        self.operation_facts(Operation::RevokeConsent, inputs).await
    }

    async fn create_policy(
        &mut self,
        name: &str,
        policy: &toml::Value,
    ) -> Result<Value, StepError> {
        let draft = self.scenario_json(policy)?;
        let answer = self
            .operation(Operation::CreatePolicy, json!({"policy": draft}))
            .await?;
        if answer.ok {
            let id = answer.need("id")?;
            let id = id.as_str().map_or_else(|| id.to_string(), str::to_owned);
            self.created.policies.insert(name.to_owned(), id);
        }
        Ok(answer.facts())
    }

    async fn delete_policy(&mut self, name: &str) -> Result<Value, StepError> {
        let id = self
            .created
            .policies
            .remove(name)
            .ok_or_else(|| precondition(format!("no policy `{name}` was created")))?;
        self.operation_facts(Operation::DeletePolicy, json!({"id": id}))
            .await
    }
}
