//! Anchors: a value a subject must have for a condition to hold, so that a
//! [`PolicyIndex`](crate::policy::index::PolicyIndex) can skip, without
//! evaluating it, every policy whose anchor the subject lacks.
//!
//! An anchor is only ever a *necessary* condition: a policy found through it
//! is still evaluated in full, so an anchor that lets too much through costs
//! time, never correctness. What the subject "has" for a key is its
//! [strings](crate::policy::matching::for_each_string): the string elements of
//! a list attribute, or a string scalar. Negations (`not_equal`, `not_in`)
//! hold for subjects that lack a value, so they have no anchor; nor do
//! conditions on numbers or booleans, which would need `1` = `1.0` (numeric
//! equality) in the lookup.

use serde_json::Value;

use crate::policy::rules::{Condition, ConditionKey, Operator};

/// What a condition requires of the subject's strings for its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Anchor<'c> {
    /// One of the subject's strings equals one of these.
    Equals(Vec<&'c str>),
    /// One of the subject's strings contains every byte of this (non-empty)
    /// needle: the anchor of `contains` on a key that can be a single string,
    /// which holds for a substring.
    Bytes(&'c str),
}

/// The anchor of `condition`, if it has one.
///
/// * `in` with only strings: the attribute (or an element) equals one of them;
///   numbers and booleans never equal a string.
/// * `equal` with a string: a list must be non-empty with every element equal
///   to it, a scalar equal to it. With an array: a list must hold every value
///   of the array, so in particular its first string; a scalar never equals
///   an array.
/// * `contains` with a string: on a list key, an element equals it; on
///   `client.name` or a claim (a string or a list), a substring or an element
///   equal to it, either way a string holding all of its bytes.
pub(crate) fn anchor(condition: &Condition) -> Option<Anchor<'_>> {
    match (condition.operator, &condition.value) {
        (Operator::In, Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<_>>>()
            .map(Anchor::Equals),
        (Operator::Equal, Value::String(s)) => Some(Anchor::Equals(vec![s])),
        (Operator::Equal, Value::Array(items)) => items
            .iter()
            .find_map(Value::as_str)
            .map(|s| Anchor::Equals(vec![s])),
        (Operator::Contains, Value::String(s)) if always_a_list(&condition.key) => {
            Some(Anchor::Equals(vec![s]))
        }
        (Operator::Contains, Value::String(s)) if !s.is_empty() => Some(Anchor::Bytes(s)),
        _ => None,
    }
}

/// Keys whose attribute is a list of strings for every subject.
fn always_a_list(key: &ConditionKey) -> bool {
    matches!(
        key,
        ConditionKey::UserRoles
            | ConditionKey::UserTenantIds
            | ConditionKey::UserPermissions
            | ConditionKey::ClientTags
    )
}
