//! Whether a policy's conditions hold for a subject, and the first that does not.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::model::{Client, User};
use crate::policy::render::{Cut, Json};
use crate::policy::rules::{Condition, ConditionKey, Operator, Policy};

// Matching

/// Who is asking: the user and the client acting for them.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub user: &'a User,
    pub client: &'a Client,
}

/// The first condition of a policy that did not hold, and what the subject
/// actually had.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedCondition {
    /// Position of the condition in the policy.
    pub index: usize,
    pub condition: Condition,
    /// The subject's value for the condition's key; JSON null when missing.
    pub actual: Value,
}

impl fmt::Display for FailedCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is false (", self.condition)?;
        if self.actual.is_null() {
            write!(f, "{} is missing)", self.condition.key)
        } else {
            write!(f, "{} = {})", self.condition.key, Cut(&self.actual))
        }
    }
}

/// The condition at `index` of `policy` and what the subject has for its
/// key, displayed as [`FailedCondition`] displays them but borrowed, not
/// copied: what a dropped scope's reason writes for each policy it names.
pub(crate) struct Failure<'a> {
    condition: &'a Condition,
    actual: Attr<'a>,
}

pub(crate) fn failure<'a>(policy: &'a Policy, index: usize, subject: &Subject<'a>) -> Failure<'a> {
    let condition = &policy.conditions[index];
    Failure {
        condition,
        actual: resolve(&condition.key, subject),
    }
}

impl fmt::Display for Failure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is false (", self.condition)?;
        match &self.actual {
            Attr::Missing => write!(f, "{} is missing)", self.condition.key),
            actual => write!(f, "{} = {})", self.condition.key, Cut(Json(actual))),
        }
    }
}

/// Whether every condition of `policy` holds for `subject`; if not, the first
/// that does not.
pub fn matches(policy: &Policy, subject: &Subject) -> Result<(), FailedCondition> {
    match first_failure(policy, subject) {
        None => Ok(()),
        Some(index) => Err(failed_condition(policy, index, subject)),
    }
}

pub(crate) fn failed_condition(
    policy: &Policy,
    index: usize,
    subject: &Subject,
) -> FailedCondition {
    let condition = &policy.conditions[index];
    FailedCondition {
        index,
        condition: condition.clone(),
        actual: resolve(&condition.key, subject).to_json(),
    }
}

/// The index of the first condition that does not hold, without allocating.
pub(crate) fn first_failure(policy: &Policy, subject: &Subject) -> Option<usize> {
    policy
        .conditions
        .iter()
        .position(|condition| !holds(condition, subject))
}

/// Calls `f` with each string the subject has for `key`: every string element
/// of a list attribute, or a string scalar (what [anchors](crate::policy::anchors)
/// are looked up by). Numbers, booleans and objects are left out.
pub(crate) fn for_each_string<'a>(
    key: &ConditionKey,
    subject: &Subject<'a>,
    mut f: impl FnMut(&'a str),
) {
    match resolve(key, subject) {
        Attr::Strings(list) => list.iter().for_each(|s| f(s)),
        Attr::Values(list) => list.iter().filter_map(Value::as_str).for_each(f),
        Attr::Str(s) => f(s),
        Attr::Scalar(_) | Attr::Missing => {}
    }
}

/// A subject attribute, borrowed.
enum Attr<'a> {
    Strings(&'a [String]),
    Values(&'a [Value]),
    Str(&'a str),
    Scalar(&'a Value),
    Missing,
}

/// The attribute as JSON, exactly as its [`to_json`](Attr::to_json) copy serializes.
impl Serialize for Attr<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Attr::Strings(items) => items.serialize(serializer),
            Attr::Values(items) => items.serialize(serializer),
            Attr::Str(s) => s.serialize(serializer),
            Attr::Scalar(v) => v.serialize(serializer),
            Attr::Missing => serializer.serialize_unit(),
        }
    }
}

impl Attr<'_> {
    fn to_json(&self) -> Value {
        match self {
            Attr::Strings(items) => {
                Value::Array(items.iter().cloned().map(Value::String).collect())
            }
            Attr::Values(items) => Value::Array(items.to_vec()),
            Attr::Str(s) => Value::String((*s).to_owned()),
            Attr::Scalar(v) => (*v).clone(),
            Attr::Missing => Value::Null,
        }
    }
}

fn resolve<'a>(key: &ConditionKey, subject: &Subject<'a>) -> Attr<'a> {
    match key {
        ConditionKey::UserRoles => Attr::Strings(&subject.user.roles),
        ConditionKey::UserTenantIds => Attr::Strings(&subject.user.tenants),
        ConditionKey::UserPermissions => Attr::Strings(&subject.user.permissions),
        ConditionKey::ClientTags => Attr::Strings(&subject.client.tags),
        ConditionKey::ClientName => Attr::Str(&subject.client.name),
        ConditionKey::JwtClaim(path) => match lookup_claim(&subject.user.claims, path) {
            None | Some(Value::Null) => Attr::Missing,
            Some(Value::Array(items)) => Attr::Values(items),
            Some(Value::String(s)) => Attr::Str(s),
            Some(other) => Attr::Scalar(other),
        },
    }
}

/// Finds a dotted claim path, preferring at each level a key equal to the
/// whole remaining path (so claim names that contain dots still resolve).
fn lookup_claim<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    let (head, rest) = path.split_once('.')?;
    lookup_claim(claims.get(head)?.as_object()?, rest)
}

#[cfg(test)]
thread_local! {
    /// How many conditions this thread has tested: the index's tests check
    /// that a decision tests only the conditions it has to.
    pub(crate) static TESTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

pub(crate) fn holds(condition: &Condition, subject: &Subject) -> bool {
    #[cfg(test)]
    TESTED.with(|tested| tested.set(tested.get() + 1));
    let attr = resolve(&condition.key, subject);
    let value = &condition.value;
    match condition.operator {
        Operator::Equal => equal(&attr, value),
        Operator::NotEqual => !equal(&attr, value),
        Operator::In => is_in(&attr, value),
        Operator::NotIn => !is_in(&attr, value),
        Operator::Contains => contains(&attr, value),
    }
}

/// An element of a list attribute.
trait Element {
    fn eq_value(&self, value: &Value) -> bool;
}

impl Element for String {
    fn eq_value(&self, value: &Value) -> bool {
        value.as_str() == Some(self.as_str())
    }
}

impl Element for Value {
    fn eq_value(&self, value: &Value) -> bool {
        json_eq(self, value)
    }
}

/// JSON equality, except that numbers compare by numeric value.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(i), Some(j)) = (x.as_i64(), y.as_i64()) {
                i == j
            } else if let (Some(i), Some(j)) = (x.as_u64(), y.as_u64()) {
                i == j
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        _ => a == b,
    }
}

fn list_equal<E: Element>(list: &[E], value: &Value) -> bool {
    match value {
        Value::Array(wanted) => {
            list.iter().all(|e| wanted.iter().any(|w| e.eq_value(w)))
                && wanted.iter().all(|w| list.iter().any(|e| e.eq_value(w)))
        }
        single => !list.is_empty() && list.iter().all(|e| e.eq_value(single)),
    }
}

fn list_in<E: Element>(list: &[E], value: &Value) -> bool {
    match value {
        Value::Array(wanted) => list.iter().any(|e| wanted.iter().any(|w| e.eq_value(w))),
        _ => false,
    }
}

fn equal(attr: &Attr, value: &Value) -> bool {
    match attr {
        Attr::Strings(list) => list_equal(list, value),
        Attr::Values(list) => list_equal(list, value),
        Attr::Str(s) => value.as_str() == Some(*s),
        Attr::Scalar(v) => json_eq(v, value),
        Attr::Missing => false,
    }
}

fn is_in(attr: &Attr, value: &Value) -> bool {
    match attr {
        Attr::Strings(list) => list_in(list, value),
        Attr::Values(list) => list_in(list, value),
        Attr::Str(s) => match value {
            Value::Array(wanted) => wanted.iter().any(|w| w.as_str() == Some(*s)),
            _ => false,
        },
        Attr::Scalar(v) => match value {
            Value::Array(wanted) => wanted.iter().any(|w| json_eq(v, w)),
            _ => false,
        },
        Attr::Missing => false,
    }
}

fn contains(attr: &Attr, value: &Value) -> bool {
    match attr {
        Attr::Strings(list) => list.iter().any(|e| e.eq_value(value)),
        Attr::Values(list) => list.iter().any(|e| e.eq_value(value)),
        Attr::Str(s) => value.as_str().is_some_and(|needle| s.contains(needle)),
        Attr::Scalar(_) | Attr::Missing => false,
    }
}
