//! Putting back what a scenario changed on the target, so that the next
//! scenario finds it as it was: the admin's objects removed, a moved clock
//! back to wall time, a broken audit store working again. Best effort; its
//! exchanges are not part of the verdict.

use serde_json::{json, Map, Value};

use super::parties::CreatedConnection;
use super::run::Run;

/// The fields of a connection definition (docs/connections.md), for putting one back.
const DEFINITION_FIELDS: &[&str] = &[
    "name",
    "type",
    "authorization_endpoint",
    "token_endpoint",
    "api_base_url",
    "client_id",
    "scopes",
    "allowed_clients",
];

impl Run<'_> {
    /// Removes what the scenario created and restores what it changed.
    pub async fn teardown(&mut self) {
        if let Some((_, task)) = self.cimd.ssrf_probe.take() {
            task.abort();
        }
        self.connection_teardown().await;
        self.sync_provider_secrets();
        let created: Vec<String> = std::mem::take(&mut self.created.policies)
            .into_values()
            .collect();
        for id in created {
            let _ = self
                .admin(reqwest::Method::DELETE, &format!("/policies/{id}"), None)
                .await;
        }
        if self.driver.broke_audit && self.profile.control.is_some() {
            let _ = self
                .control_post("/audit/failure", json!({"fail": false}))
                .await;
        }
        if self.driver.moved_clock && self.profile.control.is_some() {
            let _ = self.control_post("/clock", json!({"reset": true})).await;
        }
    }

    /// Deletes the connections this scenario created; for the shared Agenda
    /// connection, deletes the tokens it stored and puts the definition back
    /// (without its client secret, which the admin API never shows).
    async fn connection_teardown(&mut self) {
        let created: Vec<CreatedConnection> = std::mem::take(&mut self.created.connections)
            .into_values()
            .collect();
        let stored = std::mem::take(&mut self.created.stored_owners);
        for connection in created {
            let path = format!("/connections/{}", connection.id);
            if !connection.agenda {
                let _ = self.admin(reqwest::Method::DELETE, &path, None).await;
                continue;
            }
            for (_, owner) in stored.iter().filter(|(id, _)| *id == connection.id) {
                let query: String =
                    url::form_urlencoded::byte_serialize(owner.as_bytes()).collect();
                let _ = self
                    .admin(
                        reqwest::Method::DELETE,
                        &format!("{path}/tokens?owner={query}"),
                        None,
                    )
                    .await;
            }
            if let Some(previous) = connection.previous.as_ref().and_then(Value::as_object) {
                let definition: Map<String, Value> = previous
                    .iter()
                    .filter(|(k, v)| DEFINITION_FIELDS.contains(&k.as_str()) && !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let _ = self
                    .admin(reqwest::Method::PUT, &path, Some(Value::Object(definition)))
                    .await;
            }
        }
    }
}
