//! Explanations: why each dropped scope was dropped, and the one-paragraph
//! account of a decision, for the consent page, the audit trail and the
//! console's what-if. Built from a [`Verdict`] only when a caller asks.

use std::fmt::{self, Write};

use crate::policy::evaluation::{Decision, DroppedScope, PolicyRef, Verdict};
use crate::policy::matching::{failure, first_failure};
use crate::policy::render::Cut;
use crate::policy::rules::{truncate, Policy, Target, MAX_RENDERED};

/// How many non-matching (or matching) policies a dropped-scope reason names
/// before summarising the rest as "and N more".
const MAX_POLICIES_IN_REASON: usize = 5;

/// How many matched policies [`Decision::explanation`] names.
const MAX_MATCHED_IN_EXPLANATION: usize = 10;

impl Verdict<'_> {
    /// The decision with a reason for every dropped scope.
    pub fn explain(&self) -> Decision {
        let matched: Vec<&Policy> = self.matched().collect();
        Decision {
            permitted: self.permitted().iter().map(|s| (*s).to_owned()).collect(),
            matched: matched
                .iter()
                .map(|p| PolicyRef {
                    id: p.id.clone(),
                    name: p.name.clone(),
                })
                .collect(),
            dropped: self
                .dropped()
                .iter()
                .map(|scope| DroppedScope {
                    scope: (*scope).to_owned(),
                    reason: self.drop_reason(&matched, scope),
                })
                .collect(),
            considered: self.considered(),
        }
    }

    /// Why `scope` was dropped: the policies that would have allowed it and
    /// the first condition each failed (bounded), or that the matching ones
    /// do not allow it.
    fn drop_reason(&self, matched: &[&Policy], scope: &str) -> String {
        let (policies, subject, server) = (self.policies, &self.subject, &self.target);
        // Non-matching policies that would have allowed this scope, and why
        // each did not match (bounded): only the ones named are tested again.
        // (A matching one cannot allow a dropped scope; it is left out all
        // the same, as it always was.)
        let (allowing, count) = self.allowing(scope);
        let would_allow = count
            - matched
                .iter()
                .filter(|p| p.allows_on(server, scope))
                .count();
        let mut why_not = String::new();
        let unmatched = allowing.filter(|&p| !self.is_matched(p));
        for (named, position) in unmatched.take(MAX_POLICIES_IN_REASON).enumerate() {
            let policy = &policies[position];
            let Some(index) = first_failure(policy, subject) else {
                continue; // it did not match, so a condition failed
            };
            if named > 0 {
                why_not.push_str("; ");
            }
            let _ = write!(
                why_not,
                "policy {}: {}",
                Label {
                    name: &policy.name,
                    id: &policy.id
                },
                failure(policy, index, subject)
            );
        }
        if would_allow > MAX_POLICIES_IN_REASON {
            let _ = write!(
                why_not,
                "; and {} more",
                would_allow - MAX_POLICIES_IN_REASON
            );
        }

        let unknown_scope = if server.scopes().iter().any(|s| s == scope) {
            String::new()
        } else {
            match server {
                Target::Server(s) => {
                    format!(" ({} is not a scope of MCP server {})", Cut(scope), s.id)
                }
                Target::Connection(c) => {
                    format!(" ({} is not a scope of connection {})", Cut(scope), c.id)
                }
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
                    Cut(scope),
                    server.label()
                );
            }
            return format!("no policy matched: {why_not}{unknown_scope}");
        }

        let mut reason = String::from("matching policies (");
        let shown = matched.len().min(MAX_POLICIES_IN_REASON);
        for (i, p) in matched[..shown].iter().enumerate() {
            if i > 0 {
                reason.push_str(", ");
            }
            let _ = write!(reason, "{:?}", truncate(&p.name, MAX_RENDERED));
        }
        if matched.len() > shown {
            let _ = write!(reason, " and {} more", matched.len() - shown);
        }
        let _ = write!(
            reason,
            ") do not allow {} on {}{unknown_scope}",
            Cut(scope),
            server.label()
        );
        if would_allow > 0 {
            reason.push_str("; policies that would allow it did not match: ");
            reason.push_str(&why_not);
        }
        reason
    }
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
                let label = Label {
                    name: &policy.name,
                    id: &policy.id,
                };
                let _ = write!(out, "{label}");
            }
            if self.matched.len() > shown {
                let _ = write!(out, " and {} more", self.matched.len() - shown);
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
                let _ = write!(out, "{} ({})", dropped.scope, dropped.reason);
            }
        }
        out
    }
}

/// `"Engineers" (pol_1)`: the name, cut and quoted, and the id.
struct Label<'a> {
    name: &'a str,
    id: &'a str,
}

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({})", truncate(self.name, MAX_RENDERED), self.id)
    }
}
