//! The policy index, built once per set of policies so that a decision tests
//! only the conditions it has to, instead of every condition of every policy
//! on every authorization.
//!
//! * By target: per MCP server and per Connection, the policies with a grant
//!   there, in policy order. A policy without one never applies there.
//! * By condition key: each such policy is filed under its *anchor*, a value
//!   one of its conditions requires the subject to have for that key
//!   (`user.roles contains "admin"` requires the role `admin`). A decision
//!   looks up the subject's own values and tests only the policies found, and
//!   those without an anchor (negations, numbers, no conditions).
//! * By condition: equal conditions get one id, and a decision tests each
//!   distinct condition at most once.
//! * By scope: per target, the policies allowing each scope, which say what
//!   the matched policies permit and which policies a dropped scope's reason
//!   names.
//!
//! The index only narrows which policies are tested: every candidate is
//! still tested in full, so the decision is the one a scan of every policy
//! makes (the unit tests compare the two).

use std::collections::HashMap;
use std::ops::Deref;

use crate::policy::anchors::{anchor, Anchor};
use crate::policy::bits::{ones, Bits};
use crate::policy::matching::{for_each_string, holds, Subject};
use crate::policy::rules::{ConditionKey, Grant, Operator, Policy};

/// Policies and their index, built together so that they cannot disagree.
/// Build it once per change of the policies, not per request: building
/// costs more than a decision without an index.
#[derive(Debug, Clone)]
pub struct PolicySet {
    policies: Vec<Policy>,
    index: PolicyIndex,
}

impl PolicySet {
    /// Indexes `policies`, keeping their order: decisions list matched
    /// policies in it.
    pub fn new(policies: Vec<Policy>) -> Self {
        let index = PolicyIndex::build(&policies);
        PolicySet { policies, index }
    }

    /// The index of the policies with a grant on MCP server `id`.
    pub(crate) fn server_index(&self, id: &str) -> Option<&TargetIndex> {
        self.index.servers.get(id)
    }

    /// The index of the policies with a grant on Connection `id`.
    pub(crate) fn connection_index(&self, id: &str) -> Option<&TargetIndex> {
        self.index.connections.get(id)
    }
}

impl Deref for PolicySet {
    type Target = [Policy];

    fn deref(&self) -> &[Policy] {
        &self.policies
    }
}

/// Per MCP server id and per Connection id, the index of the policies with a
/// grant there.
#[derive(Debug, Clone, Default)]
pub(crate) struct PolicyIndex {
    servers: HashMap<String, TargetIndex>,
    connections: HashMap<String, TargetIndex>,
}

/// The target a grant names, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum TargetId<'a> {
    Server(&'a str),
    Connection(&'a str),
}

impl<'a> TargetId<'a> {
    /// Exactly the target [`Grant::targets`] matches.
    fn of(grant: &'a Grant) -> Self {
        match &grant.connection {
            Some(connection) => TargetId::Connection(connection),
            None => TargetId::Server(&grant.mcp_server),
        }
    }
}

impl PolicyIndex {
    pub(crate) fn build(policies: &[Policy]) -> Self {
        let mut on: HashMap<TargetId, Vec<usize>> = HashMap::new();
        for (position, policy) in policies.iter().enumerate() {
            for grant in &policy.grants {
                let list = on.entry(TargetId::of(grant)).or_default();
                if list.last() != Some(&position) {
                    list.push(position);
                }
            }
        }
        let mut index = PolicyIndex::default();
        for (target, positions) in on {
            let built = TargetIndex::build(policies, target, positions);
            match target {
                TargetId::Server(id) => index.servers.insert(id.to_owned(), built),
                TargetId::Connection(id) => index.connections.insert(id.to_owned(), built),
            };
        }
        index
    }
}

/// The policies with a grant on one target. Policies are named by their
/// *slot*, their place in `positions`, so that sets of them are small bitsets.
#[derive(Debug, Clone, Default)]
pub(crate) struct TargetIndex {
    /// Positions in the policy list, ascending (policy order).
    positions: Vec<usize>,
    /// Slots of the policies without an anchor: candidates for everyone.
    unanchored: Bits,
    /// Per key, per value: slots of the policies anchored on it.
    equals: Vec<(ConditionKey, HashMap<String, Vec<u32>>)>,
    /// Per key, per byte (256 lists): slots of the policies anchored on it.
    bytes: Vec<(ConditionKey, Vec<Vec<u32>>)>,
    /// Per scope: slots of the policies with a grant here that allows it.
    allowing: HashMap<String, Vec<u32>>,
    /// Per slot, its policy's conditions as ids: equal conditions share an
    /// id, so a decision tests each distinct condition at most once.
    conditions: Vec<Vec<u32>>,
    /// Per condition id, where one such condition is: (slot, index in the policy).
    distinct: Vec<(u32, u32)>,
}

/// Where a policy is filed: under each of these values, or under one byte.
enum Filed<'c> {
    Values(Vec<&'c str>),
    Byte(u8),
}

impl TargetIndex {
    fn build(policies: &[Policy], target: TargetId, positions: Vec<usize>) -> Self {
        let mut index = TargetIndex {
            unanchored: Bits::new(positions.len()),
            ..TargetIndex::default()
        };
        let of_slots = || positions.iter().map(|&p| &policies[p]).zip(0u32..);
        index.file_anchors(of_slots());
        for (policy, slot) in of_slots() {
            let grants = policy.grants.iter().filter(|g| TargetId::of(g) == target);
            for scope in grants.flat_map(|g| &g.scopes) {
                let list = index.allowing.entry(scope.clone()).or_default();
                if list.last() != Some(&slot) {
                    list.push(slot);
                }
            }
        }
        let mut ids: HashMap<(&ConditionKey, Operator, String), u32> = HashMap::new();
        for (policy, slot) in of_slots() {
            let mut own = Vec::with_capacity(policy.conditions.len());
            for (at, c) in policy.conditions.iter().enumerate() {
                let next = index.distinct.len() as u32;
                let id = *ids
                    .entry((&c.key, c.operator, c.value.to_string()))
                    .or_insert(next);
                if id == next {
                    index.distinct.push((slot, at as u32));
                }
                own.push(id);
            }
            index.conditions.push(own);
        }
        index.positions = positions;
        index
    }

    /// Files each policy under the anchor (of any of its conditions) that
    /// fewest of these policies share, the best guess at what fewest subjects
    /// have; the earliest such condition on a tie. A policy without an
    /// anchor is a candidate for everyone.
    fn file_anchors<'p>(&mut self, policies: impl Iterator<Item = (&'p Policy, u32)> + Clone) {
        let anchors = |policy: &'p Policy| {
            let conditions = policy.conditions.iter();
            conditions.filter_map(|c| Some((&c.key, anchor(c)?)))
        };
        let mut value_count: HashMap<(&ConditionKey, &str), usize> = HashMap::new();
        let mut byte_count: HashMap<(&ConditionKey, u8), usize> = HashMap::new();
        for (key, found) in policies.clone().flat_map(|(p, _)| anchors(p)) {
            match found {
                Anchor::Equals(values) => {
                    for value in distinct(&values) {
                        *value_count.entry((key, value)).or_default() += 1;
                    }
                }
                Anchor::Bytes(needle) => {
                    for byte in distinct(needle.as_bytes()) {
                        *byte_count.entry((key, byte)).or_default() += 1;
                    }
                }
            }
        }

        for (policy, slot) in policies {
            let filed = anchors(policy)
                .map(|(key, found)| match found {
                    Anchor::Equals(values) => {
                        let cost = distinct(&values).map(|v| value_count[&(key, v)]).sum();
                        (cost, key, Filed::Values(values))
                    }
                    Anchor::Bytes(needle) => {
                        let bytes = distinct(needle.as_bytes()).map(|b| (byte_count[&(key, b)], b));
                        let (cost, byte) = bytes.min_by_key(|(cost, _)| *cost).unwrap_or_default();
                        (cost, key, Filed::Byte(byte))
                    }
                })
                .min_by_key(|(cost, _, _)| *cost);
            match filed {
                None => self.unanchored.set(slot),
                Some((_, key, Filed::Values(values))) => {
                    let by_value = entry(&mut self.equals, key, HashMap::new);
                    for value in distinct(&values) {
                        by_value.entry(value.to_owned()).or_default().push(slot);
                    }
                }
                Some((_, key, Filed::Byte(byte))) => {
                    let by_byte = entry(&mut self.bytes, key, || vec![Vec::new(); 256]);
                    by_byte[usize::from(byte)].push(slot);
                }
            }
        }
    }

    /// Whether every condition of the policy at `slot` holds, each distinct
    /// condition tested at most once per `memo` (one per decision).
    pub(crate) fn all_hold(
        &self,
        policies: &[Policy],
        slot: u32,
        subject: &Subject,
        memo: &mut Memo,
    ) -> bool {
        self.conditions[slot as usize].iter().all(|&id| {
            let known = &mut memo.0[id as usize];
            if *known == Memo::UNKNOWN {
                let (at_slot, at) = self.distinct[id as usize];
                let policy = &policies[self.position(at_slot)];
                *known = if holds(&policy.conditions[at as usize], subject) {
                    Memo::HOLDS
                } else {
                    Memo::FAILS
                };
            }
            *known == Memo::HOLDS
        })
    }

    /// A memo for one decision's condition results.
    pub(crate) fn memo(&self) -> Memo {
        Memo(vec![Memo::UNKNOWN; self.distinct.len()])
    }

    /// The policy at `slot`'s position in the policy list.
    pub(crate) fn position(&self, slot: u32) -> usize {
        self.positions[slot as usize]
    }

    /// Slots of the policies that `subject` could match: the unanchored ones
    /// and those whose anchor the subject has.
    pub(crate) fn candidates(&self, subject: &Subject) -> Bits {
        let mut found = self.unanchored.clone();
        for (key, by_value) in &self.equals {
            for_each_string(key, subject, |s| {
                for &slot in by_value.get(s).into_iter().flatten() {
                    found.set(slot);
                }
            });
        }
        for (key, by_byte) in &self.bytes {
            let mut present = [0u64; 4];
            for_each_string(key, subject, |s| {
                for b in s.bytes() {
                    present[usize::from(b >> 6)] |= 1 << (b & 63);
                }
            });
            for byte in ones(&present) {
                for &slot in &by_byte[byte] {
                    found.set(slot);
                }
            }
        }
        found
    }

    /// Slots of the policies that allow `scope` here, in policy order.
    pub(crate) fn allowing(&self, scope: &str) -> &[u32] {
        self.allowing.get(scope).map_or(&[], Vec::as_slice)
    }
}

/// The entry for `key` in a small per-key list, made when absent.
fn entry<'l, T>(
    list: &'l mut Vec<(ConditionKey, T)>,
    key: &ConditionKey,
    make: impl FnOnce() -> T,
) -> &'l mut T {
    let at = match list.iter().position(|(k, _)| k == key) {
        Some(at) => at,
        None => {
            list.push((key.clone(), make()));
            list.len() - 1
        }
    };
    &mut list[at].1
}

/// `items` without repeats, in order (anchors are short).
fn distinct<T: PartialEq + Copy>(items: &[T]) -> impl Iterator<Item = T> + '_ {
    items
        .iter()
        .enumerate()
        .filter(|(i, item)| !items[..*i].contains(item))
        .map(|(_, item)| *item)
}

/// What a decision learnt about each distinct condition.
pub(crate) struct Memo(Vec<u8>);

impl Memo {
    const UNKNOWN: u8 = 0;
    const HOLDS: u8 = 1;
    const FAILS: u8 = 2;
}
