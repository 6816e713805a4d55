//! Evaluation: the scopes the matching policies permit, every dropped scope
//! with why, and the explanation of a decision.

use serde::{Deserialize, Serialize};

use crate::model::McpServer;
use crate::policy::matching::{failed_condition, first_failure, Subject};
use crate::policy::rules::{truncate, KnownConnection, Policy, Target, MAX_RENDERED};

/// How many non-matching (or matching) policies a dropped-scope reason names
/// before summarising the rest as "and N more".
const MAX_POLICIES_IN_REASON: usize = 5;

/// How many matched policies [`Decision::explanation`] names.
const MAX_MATCHED_IN_EXPLANATION: usize = 10;

// Evaluation

/// A policy named in a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    pub id: String,
    pub name: String,
}

/// A requested scope the policies do not permit, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedScope {
    pub scope: String,
    /// A human-readable, bounded explanation.
    pub reason: String,
}

/// What the policies permit for one subject on one MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Requested scopes (in request order, duplicates removed) that the union
    /// of the matching policies' grants allows on this server.
    pub permitted: Vec<String>,
    /// Every policy with a grant on this target whose conditions all held, in policy order.
    pub matched: Vec<PolicyRef>,
    /// Requested scopes (in request order, duplicates removed) not permitted.
    pub dropped: Vec<DroppedScope>,
    /// How many policies were evaluated.
    pub considered: usize,
}

impl Decision {
    /// One paragraph, e.g.
    /// `matched: "Engineers" (pol_1); permitted: calendar.read; dropped: calendar.write (…)`.
    pub fn explanation(&self) -> String {
        let mut out = String::from("matched: ");
        if self.matched.is_empty() {
            out.push_str("none");
        } else {
            let shown = self.matched.len().min(MAX_MATCHED_IN_EXPLANATION);
            for (i, policy) in self.matched[..shown].iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&policy_label(&policy.name, &policy.id));
            }
            if self.matched.len() > shown {
                out.push_str(&format!(" and {} more", self.matched.len() - shown));
            }
        }

        out.push_str("; permitted: ");
        if self.permitted.is_empty() {
            out.push_str("none");
        } else {
            out.push_str(&self.permitted.join(", "));
        }

        out.push_str("; dropped: ");
        if self.dropped.is_empty() {
            out.push_str("none");
        } else {
            for (i, dropped) in self.dropped.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&format!("{} ({})", dropped.scope, dropped.reason));
            }
        }
        out
    }
}

/// Decides which of the `requested` scopes on `server` the `policies` permit
/// for `subject`, explaining every scope it drops.
pub fn evaluate(
    policies: &[Policy],
    subject: &Subject,
    server: &McpServer,
    requested: &[String],
) -> Decision {
    evaluate_target(policies, subject, Target::Server(server), requested)
}

/// Decides which of the `requested` scopes of a Connection's token the
/// Connections Policies permit for `subject` (same conditions, same union,
/// same least privilege as for MCP servers).
pub fn evaluate_connection(
    policies: &[Policy],
    subject: &Subject,
    connection: &KnownConnection,
    requested: &[String],
) -> Decision {
    evaluate_target(policies, subject, Target::Connection(connection), requested)
}

fn evaluate_target(
    policies: &[Policy],
    subject: &Subject,
    server: Target,
    requested: &[String],
) -> Decision {
    // A policy that grants nothing on this target does not apply to it, even
    // when its conditions hold (a Connections Policy for an MCP server, say).
    let matched: Vec<&Policy> = policies
        .iter()
        .filter(|p| p.grants.iter().any(|g| g.targets(&server)))
        .filter(|p| first_failure(p, subject).is_none())
        .collect();

    let mut permitted: Vec<String> = Vec::new();
    let mut dropped: Vec<DroppedScope> = Vec::new();
    for (position, scope) in requested.iter().enumerate() {
        if requested[..position].contains(scope) {
            continue;
        }
        if matched.iter().any(|p| p.allows_on(&server, scope)) {
            permitted.push(scope.clone());
        } else {
            dropped.push(DroppedScope {
                scope: scope.clone(),
                reason: drop_reason(policies, &matched, subject, &server, scope),
            });
        }
    }

    Decision {
        permitted,
        matched: matched
            .iter()
            .map(|p| PolicyRef {
                id: p.id.clone(),
                name: p.name.clone(),
            })
            .collect(),
        dropped,
        considered: policies.len(),
    }
}

fn drop_reason(
    policies: &[Policy],
    matched: &[&Policy],
    subject: &Subject,
    server: &Target,
    scope: &str,
) -> String {
    // Non-matching policies that would have allowed this scope, and why each
    // did not match (bounded).
    let mut why_not = String::new();
    let mut would_allow = 0usize;
    for policy in policies.iter().filter(|p| p.allows_on(server, scope)) {
        // Only the policies named in the reason pay for a FailedCondition.
        let Some(index) = first_failure(policy, subject) else {
            continue; // a matching policy; cannot happen for a dropped scope
        };
        would_allow += 1;
        if would_allow <= MAX_POLICIES_IN_REASON {
            if would_allow > 1 {
                why_not.push_str("; ");
            }
            why_not.push_str(&format!(
                "policy {}: {}",
                policy_label(&policy.name, &policy.id),
                failed_condition(policy, index, subject)
            ));
        }
    }
    if would_allow > MAX_POLICIES_IN_REASON {
        why_not.push_str(&format!(
            "; and {} more",
            would_allow - MAX_POLICIES_IN_REASON
        ));
    }

    let unknown_scope = if server.scopes().iter().any(|s| s == scope) {
        String::new()
    } else {
        match server {
            Target::Server(s) => format!(
                " ({} is not a scope of MCP server {})",
                truncate(scope, MAX_RENDERED),
                s.id
            ),
            Target::Connection(c) => format!(
                " ({} is not a scope of connection {})",
                truncate(scope, MAX_RENDERED),
                c.id
            ),
        }
    };

    if matched.is_empty() {
        if policies.is_empty() {
            return format!("no policy matched: no policies are defined{unknown_scope}");
        }
        if would_allow == 0 {
            return format!(
                "no policy matched: none of the {} policies allows {} on {}{unknown_scope}",
                policies.len(),
                truncate(scope, MAX_RENDERED),
                server.label()
            );
        }
        return format!("no policy matched: {why_not}{unknown_scope}");
    }

    let shown = matched.len().min(MAX_POLICIES_IN_REASON);
    let mut names = matched[..shown]
        .iter()
        .map(|p| format!("{:?}", truncate(&p.name, MAX_RENDERED)))
        .collect::<Vec<_>>()
        .join(", ");
    if matched.len() > shown {
        names.push_str(&format!(" and {} more", matched.len() - shown));
    }
    let mut reason = format!(
        "matching policies ({names}) do not allow {} on {}{unknown_scope}",
        truncate(scope, MAX_RENDERED),
        server.label()
    );
    if would_allow > 0 {
        reason.push_str("; policies that would allow it did not match: ");
        reason.push_str(&why_not);
    }
    reason
}

fn policy_label(name: &str, id: &str) -> String {
    format!("{:?} ({id})", truncate(name, MAX_RENDERED))
}
