//! Connections (docs/connections.md), as the admin sees them through the
//! profile's recipes: defining a connection to the scenario's third-party
//! provider, storing tokens in the vault for an owner, and inspecting what
//! the target shows of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::act::{Act, ActionInfo, InScenario};
use super::defaults::{calendar_scopes, hour, self_name, yes};
use super::evidence::{succeeded, Evidence};
use super::failure::{precondition, StepError};
use super::parties::{ConnectionKind, CreatedConnection};
use super::run::Run;
use crate::recipe::Operation;

const DEFINITIONS: ActionInfo = ActionInfo::new(
    "admin",
    "The administrator defines (or inspects) a Connection: a third-party provider, its OAuth endpoints, client and scopes, and who may retrieve its tokens. The admin API shows the status of the stored tokens, never their values.",
    "Connections contract",
    "docs/connections.md",
);

/// Admin: create (or replace) a Connection (operation `put_connection`),
/// pointing at this scenario's third-party provider (started on first use). Its id
/// is fresh (`conform-<as>-<random>`) unless `agenda`, which replaces the
/// profile's `connections.agenda_connection` and makes the scenario exclusive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateConnection {
    #[serde(default = "self_name", rename = "as")]
    pub name: String,
    #[serde(default)]
    pub kind: ConnectionKind,
    #[serde(default = "calendar_scopes")]
    pub scopes: Vec<String>,
    /// Client ids (`${clients.agent.client_id}`) of the agents that may retrieve its tokens.
    #[serde(default)]
    pub allowed_clients: Vec<String>,
    #[serde(default)]
    pub agenda: bool,
    /// Inputs of `put_connection` given instead of the generated ones (e.g.
    /// a malformed `token_endpoint`).
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
}

impl Act for CreateConnection {
    const INFO: ActionInfo = DEFINITIONS;

    /// The Agenda connection is shared with the Agenda MCP server.
    fn exclusive(&self, _scenario: &InScenario<'_>) -> bool {
        self.agenda
    }

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.create_connection(
            &self.name,
            self.kind,
            &self.scopes,
            &self.allowed_clients,
            self.agenda,
            &self.set,
        )
        .await
    }

    fn oblige(&self, facts: &Value, _run: &Run<'_>, evidence: &mut Evidence) {
        if succeeded(facts) {
            let kind = if facts["replaced"] == true {
                "connection.updated"
            } else {
                "connection.created"
            };
            evidence.oblige(
                format!("putting connection `{}`", self.name),
                vec![kind],
                None,
                "success",
            );
        }
    }
}

/// Admin: store a token for an owner (`user:<name>`, `tenant:<id>`,
/// `agent:<client_id>`), operation `store_connection_token`: one the provider issued
/// (with a refresh token unless `refresh_token = false`), or a fresh API key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreConnectionToken {
    #[serde(default = "self_name")]
    pub connection: String,
    pub owner: String,
    /// Seconds until it expires (`0`: already expired).
    #[serde(default = "hour")]
    pub expires_in: u64,
    /// Send no expiry at all (the target cannot know when it expires).
    #[serde(default)]
    pub no_expiry: bool,
    /// The scopes the provider grants and the target is told (the connection's by default).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default = "yes")]
    pub refresh_token: bool,
}

impl Act for StoreConnectionToken {
    const INFO: ActionInfo = ActionInfo::new(
        "admin",
        "A provider token is stored in the vault for an owner (a user, a tenant or an agent), sealed with AES-256-GCM.",
        "Connections contract",
        "docs/connections.md",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.store_connection_token(self).await
    }

    fn oblige(&self, facts: &Value, _run: &Run<'_>, evidence: &mut Evidence) {
        if succeeded(facts) {
            evidence.oblige(
                format!("storing a token for `{}`", self.owner),
                vec!["connection.token.stored"],
                None,
                "success",
            );
        }
    }
}

/// Admin: a connection as the target shows it (operation `get_connection`),
/// with its tokens' status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetConnection {
    #[serde(default = "self_name")]
    pub connection: String,
    /// The owner (`agent:<client_id>`, `tenant:<id>`, `user:<id>`, as the
    /// target names it) whose token view becomes the `token` fact.
    #[serde(default)]
    pub owner: Option<String>,
}

impl Act for GetConnection {
    const INFO: ActionInfo = DEFINITIONS;

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.get_connection(&self.connection, self.owner.as_deref())
            .await
    }
}

/// A connection id of this run: lowercase, `conform-<name>-<8 hex>`.
fn fresh_id(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .take(24)
        .collect();
    format!("conform-{name}-{:08x}", rand::random::<u32>())
}

/// `user:alice` → (`user`, `alice`): the kinds of owner the Connections contract has.
fn owner_parts(owner: &str) -> Result<(&str, &str), StepError> {
    match owner.split_once(':') {
        Some((kind @ ("user" | "tenant" | "agent"), id)) if !id.is_empty() => Ok((kind, id)),
        _ => Err(precondition(format!(
            "owner `{owner}` is not user:<name>, tenant:<id> or agent:<client_id>"
        ))),
    }
}

/// The inputs that name an owner, for `store_connection_token` and `delete_connection_token`.
pub(super) fn owner_inputs(owner: &str) -> Result<Value, StepError> {
    let (kind, id) = owner_parts(owner)?;
    Ok(json!({"owner": owner, "owner_kind": kind, "owner_id": id}))
}

impl Run<'_> {
    /// A connection this scenario created, by name.
    pub(super) fn connection(&self, name: &str) -> Result<CreatedConnection, StepError> {
        self.created.connections.get(name).cloned().ok_or_else(|| {
            precondition(format!(
                "no connection `{name}` was created in this scenario"
            ))
        })
    }

    async fn create_connection(
        &mut self,
        name: &str,
        kind: ConnectionKind,
        scopes: &[String],
        allowed_clients: &[String],
        agenda: bool,
        set: &BTreeMap<String, toml::Value>,
    ) -> Result<Value, StepError> {
        let provider = self.provider().await;
        let (authorize, token, api, client_id, client_secret) = (
            provider.authorization_endpoint(),
            provider.token_endpoint(),
            provider.api_base_url(),
            provider.client_id.clone(),
            provider.client_secret.clone(),
        );
        let existed = self.created.connections.contains_key(name);
        let id = match self.created.connections.get(name) {
            Some(existing) => existing.id.clone(),
            None if agenda => self.profile.connections.agenda_connection.clone(),
            None => fresh_id(name),
        };
        let allowed: Vec<String> = allowed_clients
            .iter()
            .map(|c| self.text(c))
            .collect::<Result<_, _>>()?;
        let mut inputs = match kind {
            ConnectionKind::Oauth2 => json!({
                "id": id,
                "name": format!("conform {name}"),
                "kind": "oauth2",
                "authorization_endpoint": authorize,
                "token_endpoint": token,
                "api_base_url": api,
                "client_id": client_id,
                "client_secret": client_secret,
                "scopes": scopes,
                "allowed_clients": allowed,
            }),
            ConnectionKind::ApiKey => json!({
                "id": id,
                "name": format!("conform {name}"),
                "kind": "api_key",
                "api_base_url": api,
                "allowed_clients": allowed,
            }),
        };
        let names = Operation::PutConnection.spec().inputs;
        for (field, value) in set {
            if !names.contains(&field.as_str()) {
                return Err(precondition(format!(
                    "set.{field} is not an input of put_connection ({})",
                    names.join(", ")
                )));
            }
            inputs[field] = self.scenario_json(value)?;
        }
        // The Agenda connection is shared: remember it, to put it back at teardown.
        let shared_before = self.created.connections.values().any(|c| c.agenda);
        let previous = if agenda && !shared_before {
            self.definition(&id).await?
        } else {
            None
        };
        let answer = self.operation(Operation::PutConnection, inputs).await?;
        let mut facts = answer.facts();
        facts["id"] = json!(id);
        facts["replaced"] = json!(existed || previous.is_some() || (agenda && shared_before));
        if answer.ok {
            let previous = previous.or_else(|| {
                self.created
                    .connections
                    .values()
                    .find(|c| c.agenda)
                    .and_then(|c| c.previous.clone())
            });
            self.created.connections.insert(
                name.to_owned(),
                CreatedConnection {
                    id,
                    kind,
                    scopes: scopes.to_vec(),
                    agenda,
                    previous,
                },
            );
        }
        Ok(facts)
    }

    /// The definition of connection `id` as `put_connection` inputs, when
    /// the target has it (and the recipe reads it back).
    async fn definition(&mut self, id: &str) -> Result<Option<Value>, StepError> {
        let answer = self
            .operation(Operation::GetConnection, json!({"id": id}))
            .await?;
        if !answer.ok {
            return Ok(None);
        }
        let names = Operation::PutConnection.spec().inputs;
        let mut definition: Map<String, Value> = answer
            .outputs
            .iter()
            .filter(|(k, v)| names.contains(&k.as_str()) && !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        definition.insert("id".into(), json!(id));
        Ok(Some(Value::Object(definition)))
    }

    async fn store_connection_token(
        &mut self,
        request: &StoreConnectionToken,
    ) -> Result<Value, StepError> {
        let (expires_in, no_expiry) = (request.expires_in, request.no_expiry);
        let (scopes, refresh_token) = (request.scopes.as_deref(), request.refresh_token);
        let created = self.connection(&request.connection)?;
        let owner = self.text(&request.owner)?;
        let mut inputs = owner_inputs(&owner)?;
        inputs["id"] = json!(created.id);
        let label = match created.kind {
            ConnectionKind::ApiKey => {
                let key = format!("conform-key-{}", crate::random_token());
                self.evidence.keep_secret(&key);
                self.created.api_keys.insert(key.clone(), owner.clone());
                inputs["api_key"] = json!(key);
                "api_key".to_owned()
            }
            ConnectionKind::Oauth2 => {
                let scopes = scopes.map(<[String]>::to_vec).unwrap_or(created.scopes);
                let (access, refresh) = self.provider().await.mint(&owner, &scopes, refresh_token);
                let label = self
                    .started_provider()?
                    .issued(&access)
                    .map(|i| i.label)
                    .unwrap_or_default();
                inputs["access_token"] = json!(access);
                inputs["refresh_token"] = json!(refresh);
                inputs["scopes"] = json!(scopes);
                if !no_expiry {
                    inputs["expires_in"] = json!(expires_in);
                }
                label
            }
        };
        self.sync_provider_secrets();
        let answer = self
            .operation(Operation::StoreConnectionToken, inputs)
            .await?;
        let mut facts = answer.facts();
        facts["label"] = json!(label);
        if answer.ok {
            self.created.stored_owners.push((created.id, owner));
        }
        Ok(facts)
    }

    async fn get_connection(
        &mut self,
        connection: &str,
        owner: Option<&str>,
    ) -> Result<Value, StepError> {
        let created = self.connection(connection)?;
        let answer = self
            .operation(Operation::GetConnection, json!({"id": created.id}))
            .await?;
        let mut facts = answer.facts();
        let mut tokens = Map::new();
        if answer.ok {
            let listed = answer
                .need("tokens")?
                .as_array()
                .ok_or_else(|| answer.unexpected("`tokens` is not a list"))?;
            for (item, view) in answer.items.iter().zip(listed) {
                let owner = item
                    .get("owner")
                    .and_then(crate::operation::owner_name)
                    .ok_or_else(|| {
                        answer.unexpected(
                            "a token's `each.owner` is neither `kind:id` nor {kind: id}",
                        )
                    })?;
                tokens.insert(owner, view.clone());
            }
        }
        if let Some(owner) = owner {
            facts["token"] = tokens
                .get(&self.text(owner)?)
                .cloned()
                .unwrap_or(Value::Null);
        }
        facts["tokens"] = Value::Object(tokens);
        facts["mentions_secret"] = json!(self
            .evidence
            .secrets
            .iter()
            .filter(|s| s.len() >= 8)
            .any(|s| answer.text.contains(s.as_str())));
        Ok(facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_and_ids() {
        assert_eq!(
            owner_inputs("user:alice").ok(),
            Some(json!({"owner": "user:alice", "owner_kind": "user", "owner_id": "alice"}))
        );
        assert!(owner_inputs("group:x").is_err() && owner_inputs("user:").is_err());
        let id = fresh_id("My Cal_1");
        assert!(id.starts_with("conform-mycal1-") && id.len() == "conform-mycal1-".len() + 8);
    }
}
