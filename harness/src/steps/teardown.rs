//! Putting back what a scenario changed on the target, so that the next
//! scenario finds it as it was: the admin's objects removed, a moved clock
//! back to wall time, a broken audit store working again. Best effort, through
//! the same recipes (an operation the profile has no recipe for is left
//! alone); its exchanges are not part of the verdict.

use serde_json::json;

use super::connections::owner_inputs;
use super::parties::CreatedConnection;
use super::run::Run;
use crate::recipe::Operation;

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
                .operation(Operation::DeletePolicy, json!({"id": id}))
                .await;
        }
        if self.driver.broke_audit {
            let _ = self
                .operation(Operation::AuditFailure, json!({"fail": false}))
                .await;
        }
        if self.driver.moved_clock {
            let _ = self.operation(Operation::ResetClock, json!({})).await;
        }
    }

    /// Deletes the connections this scenario created; for the shared Agenda
    /// connection, deletes the tokens it stored and puts the definition back
    /// (as `get_connection` read it: without a client secret, which a
    /// target never shows).
    async fn connection_teardown(&mut self) {
        let created: Vec<CreatedConnection> = std::mem::take(&mut self.created.connections)
            .into_values()
            .collect();
        let stored = std::mem::take(&mut self.created.stored_owners);
        for connection in created {
            if !connection.agenda {
                let _ = self
                    .operation(Operation::DeleteConnection, json!({"id": connection.id}))
                    .await;
                continue;
            }
            for (_, owner) in stored.iter().filter(|(id, _)| *id == connection.id) {
                let Ok(mut inputs) = owner_inputs(owner) else {
                    continue;
                };
                inputs["id"] = json!(connection.id);
                let _ = self
                    .operation(Operation::DeleteConnectionToken, inputs)
                    .await;
            }
            if let Some(previous) = connection.previous {
                let _ = self.operation(Operation::PutConnection, previous).await;
            }
        }
    }
}
