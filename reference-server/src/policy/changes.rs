//! Adding and removing policies, each in force for the very next request and
//! audited with an `admin` actor. The admin API and the console both change
//! policies through here, so they cannot drift apart.

use crate::audit::event::{AuditEvent, Outcome};
use crate::error::OAuthError;
use crate::fault::Fault;
use crate::hub::Hub;
use crate::policy::rules::Policy;
use crate::policy::validation::{validate_with, PolicyError};

/// Validates a policy draft and stores it, in force for the very next
/// request; the outcome is audited either way, with an `admin` actor (`admin`
/// names the console's administrator; `None` for the admin API's token).
/// The inner error is the draft's
/// precise problem; the outer one an internal failure.
pub async fn add_policy(
    hub: &Hub,
    draft: &serde_json::Value,
    admin: Option<String>,
    source_ip: &str,
) -> Result<Result<Policy, PolicyError>, OAuthError> {
    let servers = hub.store.mcp_servers().await?;
    let connections = hub.known_connections().await?;
    let now = hub.clock.now();
    let id = crate::random::id("pol");
    let policy = match validate_with(draft, &servers, &connections) {
        Ok(spec) => spec.into_policy(id, now),
        Err(err) if hub.faults.on(Fault::AcceptInvalidPolicy) => Policy {
            id,
            name: draft
                .get("name")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("invalid")
                .to_owned(),
            description: format!("stored despite: {err}"),
            conditions: Vec::new(),
            grants: Vec::new(),
            created_at: now,
        },
        Err(err) => {
            hub.audit(
                AuditEvent::new("policy.created", Outcome::Failure)
                    .actor("admin", admin)
                    .source_ip(source_ip.to_owned())
                    .reason(format!("invalid policy: {err}")),
            )
            .await?;
            return Ok(Err(err));
        }
    };
    hub.store.insert_policy(&policy).await?;
    hub.policies_changed().await;
    hub.audit(
        AuditEvent::new("policy.created", Outcome::Success)
            .actor("admin", admin)
            .policies(vec![policy.id.clone()])
            .source_ip(source_ip.to_owned())
            .reason(format!("policy \"{}\" created", policy.name)),
    )
    .await?;
    Ok(Ok(policy))
}

/// Deletes a policy, in force for the very next request, and audits it;
/// false when there was none with that id.
pub async fn remove_policy(
    hub: &Hub,
    id: &str,
    admin: Option<String>,
    source_ip: &str,
) -> Result<bool, OAuthError> {
    if !hub.store.delete_policy(id).await? {
        return Ok(false);
    }
    hub.policies_changed().await;
    hub.audit(
        AuditEvent::new("policy.deleted", Outcome::Success)
            .actor("admin", admin)
            .policies(vec![id.to_owned()])
            .source_ip(source_ip.to_owned())
            .reason(format!("policy {id} deleted")),
    )
    .await?;
    Ok(true)
}
