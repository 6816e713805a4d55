//! The administrator manages autonomous agents through the admin API:
//! created just in time, listed by tag, decommissioned.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::act::{Act, ActionInfo};
use super::evidence::{succeeded, Evidence};
use super::failure::{precondition, StepError};
use super::parties::Registered;
use super::run::Run;
use crate::profile::PreRegisteredClient;

const AGENTS: ActionInfo = ActionInfo::new(
    "admin",
    "The administrator manages autonomous agents: created just in time with tags, an owner, allowed resources and scopes, and conditions; decommissioning one revokes its tokens at once.",
    "Product model: Autonomous agents",
    "docs/product-model.md#autonomous-agents",
);

/// Admin: create an agent (the admin API's JSON shape); later steps use it as
/// a client role named `as` (its generated secret is kept by the harness).
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
        let id = facts["body"]["client_id"].as_str().map(str::to_owned);
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
        let spec = self.admin_json(agent)?;
        let response = self
            .admin(reqwest::Method::POST, "/agents", Some(spec.clone()))
            .await?;
        let facts = Self::admin_facts(&response);
        if let (Some(id), Some(redirect)) = (
            facts["body"]["client_id"].as_str(),
            spec["redirect_uris"][0].as_str(),
        ) {
            // An agent with a redirect URI can also run the authorization code flow.
            self.client.registered.insert(
                name.to_owned(),
                Registered {
                    client_id: id.to_owned(),
                    redirect_uri: redirect.to_owned(),
                },
            );
        }
        if let (Some(id), Some(secret)) = (
            facts["body"]["client_id"].as_str(),
            facts["body"]["client_secret"].as_str(),
        ) {
            self.evidence.keep_secret(secret);
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
                    client_id: id.to_owned(),
                    client_secret: secret.to_owned(),
                    auth_method: "client_secret_basic".to_owned(),
                    private_key_pem: None,
                    key_id: None,
                    resource,
                    allowed_scopes: Vec::new(),
                    disallowed_scopes: Vec::new(),
                },
            );
        }
        Ok(facts)
    }

    async fn decommission_agent(&mut self, name: &str) -> Result<Value, StepError> {
        let id = self
            .created
            .agents
            .get(name)
            .map(|a| a.client_id.clone())
            .ok_or_else(|| precondition(format!("no agent `{name}` was created")))?;
        let response = self
            .admin(
                reqwest::Method::POST,
                &format!("/agents/{id}/decommission"),
                None,
            )
            .await?;
        Ok(Self::admin_facts(&response))
    }

    async fn list_agents(&mut self, tag: Option<&str>) -> Result<Value, StepError> {
        let path = match tag {
            Some(tag) => format!(
                "/agents?tag={}",
                url::form_urlencoded::byte_serialize(tag.as_bytes()).collect::<String>()
            ),
            None => "/agents".to_owned(),
        };
        let response = self.admin(reqwest::Method::GET, &path, None).await?;
        let mut facts = Self::admin_facts(&response);
        // Agents of this scenario by name, for expectations.
        let mine: Map<String, Value> = self
            .created
            .agents
            .iter()
            .filter_map(|(name, a)| {
                facts["body"]["agents"]
                    .as_array()?
                    .iter()
                    .find(|x| x["client_id"] == a.client_id.as_str())
                    .map(|x| (name.clone(), x.clone()))
            })
            .collect();
        facts["created"] = Value::Object(mine);
        Ok(facts)
    }
}
