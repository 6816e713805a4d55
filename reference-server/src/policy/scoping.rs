//! Which scopes a user-delegated request may get:
//! client configuration ∩ policy-permitted ∩ user-consented.
//!
//! The consent page, the consent decision, and every token issuance in the
//! authorization code flow (the code's redemption and each refresh) ask here,
//! so a policy created or deleted takes effect on the very next request.
//! client_credentials and the jwt-bearer grant never come here: for an agent
//! acting as itself the client's own configuration is the whole rule.
//!
//! A partially permitted request is *filtered*: the permitted scopes are
//! offered, the others are shown as unavailable with the reason, and the flow
//! ends in `access_denied` only when nothing at all is permitted.

use std::sync::Arc;

use crate::error::HubError;
use crate::fault::Fault;
use crate::hub::Hub;
use crate::model::{Client, McpServer, User};
use crate::policy::evaluation::{self, Decision};
use crate::policy::index::PolicySet;
use crate::policy::matching::Subject;
use crate::policy::rules::{Operator, Policy};

/// A requested scope that cannot be granted, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unavailable {
    pub scope: String,
    pub reason: String,
    /// Dropped by the client's own configuration rather than by policy.
    #[serde(skip)]
    pub by_configuration: bool,
}

/// The outcome for one request.
#[derive(Debug, Clone)]
pub struct Scoping {
    /// Requested scopes that may be granted, in request order.
    pub permitted: Vec<String>,
    /// Requested scopes that may not, each with the reason, for the consent page and the audit trail.
    pub unavailable: Vec<Unavailable>,
    /// The policy decision, when policies were evaluated.
    pub decision: Option<Decision>,
}

impl Scoping {
    /// One paragraph for the audit trail: what matched, what was dropped and why.
    pub fn explanation(&self) -> String {
        let mut text = match &self.decision {
            Some(d) => d.explanation(),
            None => "policies were not evaluated".to_owned(),
        };
        for u in self.unavailable.iter().filter(|u| u.by_configuration) {
            text.push_str(&format!("; dropped {}: {}", u.scope, u.reason));
        }
        text
    }

    /// Ids of the policies that matched.
    pub fn matched_ids(&self) -> Vec<String> {
        self.decision
            .as_ref()
            .map(|d| d.matched.iter().map(|p| p.id.clone()).collect())
            .unwrap_or_default()
    }
}

/// The scopes a client's own configuration allows on a server for delegated
/// access: the `scope` it registered, else its configured scopes, else all.
pub fn configured_scopes(client: &Client, server: &McpServer) -> Vec<String> {
    let registered: Option<Vec<String>> = client
        .metadata
        .get("scope")
        .and_then(serde_json::Value::as_str)
        .map(|s| s.split_ascii_whitespace().map(str::to_owned).collect());
    match registered {
        Some(scopes) => scopes,
        None if !client.allowed_scopes.is_empty() => client.allowed_scopes.clone(),
        None => server.scopes.clone(),
    }
}

impl Hub {
    /// Every policy, indexed, from the cache or the store: the index is
    /// built here, once per change of the policies, never per request.
    pub async fn policies(&self) -> Result<Arc<PolicySet>, HubError> {
        if let Some(cached) = self.policy_cache.read().await.clone() {
            return Ok(cached);
        }
        let loaded = Arc::new(PolicySet::new(self.store.policies().await?));
        *self.policy_cache.write().await = Some(loaded.clone());
        Ok(loaded)
    }

    /// Forgets cached policies after a change, so the next request sees it.
    pub async fn policies_changed(&self) {
        if !self.faults.on(Fault::StalePolicyCache) {
            *self.policy_cache.write().await = None;
        }
    }

    /// Client configuration ∩ policies for `requested` on `server` (consent is the caller's part).
    pub async fn scoping(
        &self,
        user: &User,
        client: &Client,
        server: &McpServer,
        requested: &[String],
    ) -> Result<Scoping, HubError> {
        let configured = if self.faults.on(Fault::IgnoreClientScopeConfig) {
            server.scopes.clone()
        } else {
            configured_scopes(client, server)
        };
        let decision = if self.faults.on(Fault::SkipPolicyFilter) {
            None
        } else {
            let policies = self.policies().await?;
            Some(self.evaluate_policies(&policies, user, client, server, requested))
        };
        let mut permitted = Vec::new();
        let mut unavailable = Vec::new();
        for scope in requested {
            if !configured.contains(scope) {
                unavailable.push(Unavailable {
                    scope: scope.clone(),
                    reason: format!("not in this client's configuration for {}", server.id),
                    by_configuration: true,
                });
                continue;
            }
            match &decision {
                Some(d) if !d.permitted.contains(scope) => {
                    let reason = d
                        .dropped
                        .iter()
                        .find(|dropped| &dropped.scope == scope)
                        .map(|dropped| dropped.reason.clone())
                        .unwrap_or_else(|| "no policy allows it".into());
                    unavailable.push(Unavailable {
                        scope: scope.clone(),
                        reason,
                        by_configuration: false,
                    });
                }
                _ => permitted.push(scope.clone()),
            }
        }
        Ok(Scoping {
            permitted,
            unavailable,
            decision,
        })
    }

    /// The policy engine, with the faults that break its combination rules.
    fn evaluate_policies(
        &self,
        policies: &PolicySet,
        user: &User,
        client: &Client,
        server: &McpServer,
        requested: &[String],
    ) -> Decision {
        let subject = Subject { user, client };
        let mut adjusted: Option<Vec<Policy>> = None;
        if self.faults.on(Fault::PolicyIgnoreNotIn) {
            let mut copy = policies.to_vec();
            for p in &mut copy {
                p.conditions.retain(|c| c.operator != Operator::NotIn);
            }
            adjusted = Some(copy);
        }
        if self.faults.on(Fault::PolicyContainsAsEqual) {
            let mut copy = adjusted.take().unwrap_or_else(|| policies.to_vec());
            for p in &mut copy {
                for c in &mut p.conditions {
                    if c.operator == Operator::Contains {
                        c.operator = Operator::Equal;
                    }
                }
            }
            adjusted = Some(copy);
        }
        if self.faults.on(Fault::PolicyConditionsOred) {
            let source = adjusted.take().unwrap_or_else(|| policies.to_vec());
            let mut split = Vec::new();
            for p in source {
                if p.conditions.len() <= 1 {
                    split.push(p);
                    continue;
                }
                for c in &p.conditions {
                    split.push(Policy {
                        conditions: vec![c.clone()],
                        ..p.clone()
                    });
                }
            }
            adjusted = Some(split);
        }
        let mut decision = match &adjusted {
            // The faults' copies serve one decision: not worth an index.
            Some(copy) => evaluation::evaluate(copy, &subject, server, requested),
            None => policies.decide(&subject, server, requested).explain(),
        };
        let policies: &[Policy] = adjusted.as_deref().unwrap_or(policies);
        if self.faults.on(Fault::PolicyUnionAsIntersection) && decision.matched.len() > 1 {
            for matched in decision.matched.clone() {
                if let Some(p) = policies.iter().find(|p| p.id == matched.id) {
                    let alone =
                        evaluation::decide(std::slice::from_ref(p), &subject, server, requested);
                    decision
                        .permitted
                        .retain(|s| alone.permitted().contains(&s.as_str()));
                }
            }
        }
        decision
    }
}
