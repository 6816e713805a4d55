//! The administrator manages autonomous agents through the profile's
//! recipes: created just in time, listed by tag, decommissioned.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::act::{Act, ActionInfo};
use super::evidence::{succeeded, Evidence};
use super::failure::{precondition, StepError};
use super::parties::Registered;
use super::run::Run;
use crate::profile::PreRegisteredClient;
use crate::recipe::Operation;

const AGENTS: ActionInfo = ActionInfo::new(
    "admin",
    "The administrator manages autonomous agents: created just in time with tags, an owner, allowed resources and scopes, and conditions; decommissioning one revokes its tokens at once.",
    "Product model: Autonomous agents",
    "docs/product-model.md#autonomous-agents",
);

/// Admin: create an agent (as the scenario writes it; operation
/// `create_agent`); later steps use it as a client role named `as` (its
/// generated secret is kept by the harness).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateAgent {
    #[serde(rename = "as")]
    pub name: String,
    pub agent: toml::Value,
}

impl Act for CreateAgent {
    const INFO: ActionInfo = AGENTS;

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.create_agent(&self.name, &self.agent).await
    }

    fn oblige(&self, facts: &Value, _run: &Run<'_>, evidence: &mut Evidence) {
        if !succeeded(facts) {
            return;
        }
        let id = facts["client_id"].as_str().map(str::to_owned);
        if let Some(id) = &id {
            evidence.own_clients.insert(id.clone());
        }
        evidence.oblige(
            format!("creating agent `{}`", self.name),
            vec!["agent.created"],
            id,
            "success",
        );
    }
}

/// Admin: decommission an agent created earlier in the scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecommissionAgent {
    pub name: String,
}

impl Act for DecommissionAgent {
    const INFO: ActionInfo = AGENTS;

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.decommission_agent(&self.name).await
    }

    fn oblige(&self, facts: &Value, run: &Run<'_>, evidence: &mut Evidence) {
        if succeeded(facts) {
            let id = run
                .created
                .agents
                .get(&self.name)
                .map(|a| a.client_id.clone());
            evidence.oblige(
                format!("decommissioning agent `{}`", self.name),
                vec!["agent.decommissioned"],
                id,
                "success",
            );
        }
    }
}

/// Admin: list agents, optionally with one tag.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListAgents {
    #[serde(default)]
    pub tag: Option<String>,
}

impl Act for ListAgents {
    const INFO: ActionInfo = AGENTS;

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.list_agents(self.tag.as_deref()).await
    }
}

impl Run<'_> {
    async fn create_agent(&mut self, name: &str, agent: &toml::Value) -> Result<Value, StepError> {
        let spec = self.scenario_json(agent)?;
        let answer = self
            .operation(Operation::CreateAgent, json!({"agent": spec.clone()}))
            .await?;
        let mut facts = answer.facts();
        if !answer.ok {
            return Ok(facts);
        }
        let id = answer.need("client_id")?;
        let id = id.as_str().map_or_else(|| id.to_string(), str::to_owned);
        facts["client_id"] = json!(id);
        if let Some(redirect) = spec["redirect_uris"][0].as_str() {
            // An agent with a redirect URI can also run the authorization code flow.
            self.client.registered.insert(
                name.to_owned(),
                Registered {
                    client_id: id.clone(),
                    redirect_uri: redirect.to_owned(),
                },
            );
        }
        // Its generated secret, when the recipe reads one, lets it authenticate.
        let secret = answer
            .output("client_secret")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        self.evidence.keep_secret(&secret);
        // The resource role of the agent's first configured server (by its id).
        let server = spec["allowed_resources"][0].as_str().unwrap_or_default();
        let resource = self
            .profile
            .resources
            .iter()
            .find(|(_, r)| r.id.as_deref() == Some(server))
            .map(|(role, _)| role.clone())
            .unwrap_or_else(|| "primary".to_owned());
        self.created.agents.insert(
            name.to_owned(),
            PreRegisteredClient {
                client_id: id,
                client_secret: secret,
                auth_method: "client_secret_basic".to_owned(),
                private_key_pem: None,
                key_id: None,
                resource,
                allowed_scopes: Vec::new(),
                disallowed_scopes: Vec::new(),
            },
        );
        Ok(facts)
    }

    async fn decommission_agent(&mut self, name: &str) -> Result<Value, StepError> {
        let id = self
            .created
            .agents
            .get(name)
            .map(|a| a.client_id.clone())
            .ok_or_else(|| precondition(format!("no agent `{name}` was created")))?;
        self.operation_facts(Operation::DecommissionAgent, json!({"client_id": id}))
            .await
    }

    async fn list_agents(&mut self, tag: Option<&str>) -> Result<Value, StepError> {
        let answer = self
            .operation(Operation::ListAgents, json!({"tag": tag}))
            .await?;
        let mut facts = answer.facts();
        if !answer.ok {
            return Ok(facts);
        }
        let listed = answer
            .need("agents")?
            .as_array()
            .ok_or_else(|| answer.unexpected("`agents` is not a list"))?;
        // Agents of this scenario by name, for expectations.
        let mine: Map<String, Value> = self
            .created
            .agents
            .iter()
            .filter_map(|(name, a)| {
                let at = answer
                    .items
                    .iter()
                    .position(|item| item.get("client_id") == Some(&json!(a.client_id)))?;
                Some((name.clone(), listed.get(at)?.clone()))
            })
            .collect();
        facts["created"] = Value::Object(mine);
        Ok(facts)
    }
}
