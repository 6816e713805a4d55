//! The agents an operator manages (manual and verified clients): finding
//! them by their attributes and taking them out of service, audited. The
//! admin API and the console both act on agents through here.

use serde::Deserialize;

use crate::audit::event::{AuditEvent, Outcome};
use crate::error::OAuthError;
use crate::hub::Hub;
use crate::model::{Client, TrustLevel};

/// Filters of the agent list; each narrows, empty ones are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct AgentQuery {
    pub tag: Option<String>,
    pub tenant: Option<String>,
    pub trust_level: Option<String>,
}

/// Manual and verified clients (agents), newest first, with when they were
/// decommissioned, narrowed by `query`.
pub async fn find_agents(
    hub: &Hub,
    query: &AgentQuery,
) -> Result<Vec<(Client, Option<i64>)>, OAuthError> {
    let wanted = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    let (tag, tenant, trust_level) = (
        wanted(&query.tag),
        wanted(&query.tenant),
        wanted(&query.trust_level),
    );
    let clients = hub
        .store
        .clients_with_trust(&[TrustLevel::Manual, TrustLevel::Verified])
        .await?;
    Ok(clients
        .into_iter()
        .filter(|(c, _)| tag.as_ref().is_none_or(|t| c.tags.contains(t)))
        .filter(|(c, _)| tenant.as_ref().is_none_or(|t| c.tenant.as_ref() == Some(t)))
        .filter(|(c, _)| {
            trust_level
                .as_ref()
                .is_none_or(|t| c.trust_level.as_str() == t)
        })
        .collect())
}

/// Takes an agent out of service and audits it (`agent.decommissioned`):
/// it can no longer authenticate, its refresh tokens are revoked and its
/// access tokens stop validating. Returns how many refresh tokens were
/// revoked, or None when no such agent is in service. `admin` names the
/// console's administrator.
pub async fn decommission(
    hub: &Hub,
    id: &str,
    admin: Option<String>,
    source_ip: &str,
) -> Result<Option<u64>, OAuthError> {
    let now = hub.clock.now();
    let Some(refresh_tokens) = hub.store.decommission_client(id, now).await? else {
        return Ok(None);
    };
    hub.audit(
        AuditEvent::new("agent.decommissioned", Outcome::Success)
            .actor("admin", admin)
            .client(id.to_owned())
            .source_ip(source_ip.to_owned())
            .reason(format!(
                "decommissioned; {refresh_tokens} refresh token(s) revoked, access tokens invalid"
            )),
    )
    .await?;
    Ok(Some(refresh_tokens))
}
