//! Evaluation: which policies match and which requested scopes they permit
//! (a [`Verdict`]), and, only when asked, why every other scope was dropped
//! (the [`Decision`] its [`explain`](Verdict::explain) builds, in
//! [`explanation`](crate::policy::explanation)).
//!
//! The two are split because the reasons cost far more than the decision:
//! they name the policies that would have allowed a dropped scope and
//! render the condition each failed. A caller that only needs the scopes
//! never pays for them; one that needs them gets them from the same verdict.

use serde::{Deserialize, Serialize};

use crate::model::McpServer;
use crate::policy::index::{PolicySet, TargetIndex};
use crate::policy::matching::{first_failure, Subject};
use crate::policy::rules::{KnownConnection, Policy, Target};

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

/// Decides which of the `requested` scopes on `server` the `policies` permit
/// for `subject`, explaining every scope it drops.
pub fn evaluate(
    policies: &[Policy],
    subject: &Subject,
    server: &McpServer,
    requested: &[String],
) -> Decision {
    decide(policies, subject, server, requested).explain()
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
    decide_connection(policies, subject, connection, requested).explain()
}

/// Decides which of the `requested` scopes on `server` the `policies` permit
/// for `subject`, without reasons. Every policy is looked at: for repeated
/// decisions over the same policies, a [`PolicySet`](crate::policy::index::PolicySet)
/// decides the same through its index.
pub fn decide<'a>(
    policies: &'a [Policy],
    subject: &Subject<'a>,
    server: &'a McpServer,
    requested: &'a [String],
) -> Verdict<'a> {
    Verdict::scan(policies, subject, Target::Server(server), requested)
}

/// [`decide`] for a Connection's token.
pub fn decide_connection<'a>(
    policies: &'a [Policy],
    subject: &Subject<'a>,
    connection: &'a KnownConnection,
    requested: &'a [String],
) -> Verdict<'a> {
    Verdict::scan(policies, subject, Target::Connection(connection), requested)
}

/// How a verdict found its policies, which is how its explanation finds the
/// policies that allow a dropped scope.
#[derive(Debug, Clone, Copy)]
enum Lookup<'a> {
    /// Every policy was looked at.
    Scan,
    /// Through an index; `None` when no policy has a grant on the target.
    Index(Option<&'a TargetIndex>),
}

/// A decision without its reasons: the matched policies and the permitted
/// and dropped scopes, borrowed from the policies and the request.
#[derive(Debug, Clone)]
pub struct Verdict<'a> {
    pub(crate) policies: &'a [Policy],
    pub(crate) subject: Subject<'a>,
    pub(crate) target: Target<'a>,
    lookup: Lookup<'a>,
    /// Positions in `policies`, ascending.
    matched: Vec<usize>,
    permitted: Vec<&'a str>,
    dropped: Vec<&'a str>,
}

impl<'a> Verdict<'a> {
    fn scan(
        policies: &'a [Policy],
        subject: &Subject<'a>,
        target: Target<'a>,
        requested: &'a [String],
    ) -> Self {
        // A policy that grants nothing on this target does not apply to it,
        // even when its conditions hold (a Connections Policy for an MCP
        // server, say).
        let matched: Vec<usize> = policies
            .iter()
            .enumerate()
            .filter(|(_, p)| p.grants.iter().any(|g| g.targets(&target)))
            .filter(|(_, p)| first_failure(p, subject).is_none())
            .map(|(position, _)| position)
            .collect();
        let (permitted, dropped) = split(requested, |scope| {
            matched
                .iter()
                .any(|&position| policies[position].allows_on(&target, scope))
        });
        Verdict {
            policies,
            subject: *subject,
            target,
            lookup: Lookup::Scan,
            matched,
            permitted,
            dropped,
        }
    }

    /// Evaluates the conditions of the index's candidates only.
    pub(crate) fn indexed(
        policies: &'a [Policy],
        index: Option<&'a TargetIndex>,
        subject: &Subject<'a>,
        target: Target<'a>,
        requested: &'a [String],
    ) -> Self {
        let (matched, permitted, dropped) = match index {
            None => {
                let (permitted, dropped) = split(requested, |_| false);
                (Vec::new(), permitted, dropped)
            }
            Some(index) => {
                let mut found = index.candidates(subject);
                let mut memo = index.memo();
                found.retain(|slot| index.all_hold(policies, slot, subject, &mut memo));
                let slots: Vec<u32> = found.iter().collect();
                let (permitted, dropped) = split(requested, |scope| {
                    // Whichever of the two lists is shorter is walked.
                    let allowing = index.allowing(scope);
                    if slots.len() < allowing.len() {
                        slots
                            .iter()
                            .any(|slot| allowing.binary_search(slot).is_ok())
                    } else {
                        allowing.iter().any(|&slot| found.contains(slot))
                    }
                });
                let matched = slots.iter().map(|&slot| index.position(slot)).collect();
                (matched, permitted, dropped)
            }
        };
        Verdict {
            policies,
            subject: *subject,
            target,
            lookup: Lookup::Index(index),
            matched,
            permitted,
            dropped,
        }
    }

    /// Requested scopes (in request order, duplicates removed) that the
    /// union of the matched policies' grants allows.
    pub fn permitted(&self) -> &[&'a str] {
        &self.permitted
    }

    /// Requested scopes (in request order, duplicates removed) not permitted.
    pub fn dropped(&self) -> &[&'a str] {
        &self.dropped
    }

    /// Every policy with a grant on the target whose conditions all held, in policy order.
    pub fn matched(&self) -> impl ExactSizeIterator<Item = &'a Policy> + '_ {
        self.matched
            .iter()
            .map(|&position| &self.policies[position])
    }

    /// Whether the policy at `position` in the policy list matched.
    pub(crate) fn is_matched(&self, position: usize) -> bool {
        self.matched.binary_search(&position).is_ok()
    }

    /// How many policies there are (what a decision was made among).
    pub fn considered(&self) -> usize {
        self.policies.len()
    }

    /// Positions of the policies with a grant on the target allowing
    /// `scope`, in policy order, and how many there are.
    pub(crate) fn allowing<'s>(
        &'s self,
        scope: &'s str,
    ) -> (impl Iterator<Item = usize> + 's, usize) {
        let (scan, index) = match self.lookup {
            Lookup::Scan => (Some(self.policies), None),
            Lookup::Index(index) => (None, index),
        };
        let target = self.target;
        let allows =
            move |(position, p): (usize, &Policy)| p.allows_on(&target, scope).then_some(position);
        let count = scan.map_or(0, |all| all.iter().enumerate().filter_map(allows).count())
            + index.map_or(0, |index| index.allowing(scope).len());
        let scanned = scan
            .into_iter()
            .flat_map(move |all| all.iter().enumerate().filter_map(allows));
        let indexed = index.into_iter().flat_map(move |index| {
            index
                .allowing(scope)
                .iter()
                .map(|&slot| index.position(slot))
        });
        (scanned.chain(indexed), count)
    }
}

/// The requested scopes, duplicates removed, split by `permits`.
fn split(requested: &[String], mut permits: impl FnMut(&str) -> bool) -> (Vec<&str>, Vec<&str>) {
    let mut permitted = Vec::new();
    let mut dropped = Vec::new();
    for (position, scope) in requested.iter().enumerate() {
        if requested[..position].contains(scope) {
            continue;
        }
        if permits(scope) {
            permitted.push(scope.as_str());
        } else {
            dropped.push(scope.as_str());
        }
    }
    (permitted, dropped)
}

/// Decisions through the index (built once per change of the policies).
impl PolicySet {
    /// The decision for `requested` on `server`, as [`decide`](crate::policy::evaluation::decide)
    /// makes it, through the index.
    pub fn decide<'a>(
        &'a self,
        subject: &Subject<'a>,
        server: &'a McpServer,
        requested: &'a [String],
    ) -> Verdict<'a> {
        let target = Target::Server(server);
        let index = self.server_index(&server.id);
        Verdict::indexed(self, index, subject, target, requested)
    }

    /// The decision for `requested` of a Connection's token, through the index.
    pub fn decide_connection<'a>(
        &'a self,
        subject: &Subject<'a>,
        connection: &'a KnownConnection,
        requested: &'a [String],
    ) -> Verdict<'a> {
        let target = Target::Connection(connection);
        let index = self.connection_index(&connection.id);
        Verdict::indexed(self, index, subject, target, requested)
    }
}
