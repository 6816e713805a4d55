//! MCP Server Policies: which scopes on which MCP server a user and client may
//! be issued, as decided by the administrator's *allow* policies.
//!
//! Pure logic, no I/O. The scopes finally issued are
//! client configuration ∩ policy-permitted ∩ user-consented; this module
//! computes only the policy-permitted part ([`decide`](crate::policy::evaluation::decide),
//! or [`PolicySet::decide`](crate::policy::index::PolicySet::decide) through an
//! index built once per change of the policies) and, when asked, explains it
//! ([`Verdict::explain`](crate::policy::evaluation::Verdict::explain),
//! [`Decision::explanation`](crate::policy::evaluation::Decision::explanation)).
//!
//! # Model
//!
//! * A [`Policy`] has [`Condition`]s and [`Grant`]s. A grant names one MCP
//!   server (by id) and the scopes the policy allows on it.
//! * All conditions of a policy are ANDed; a policy without conditions
//!   matches everyone.
//! * Several matching policies give the union of their grants.
//! * No matching policy gives no scopes (least privilege).
//!
//! # Condition keys
//!
//! | key                 | attribute                         | kind   |
//! |---------------------|-----------------------------------|--------|
//! | `user.roles`        | [`User::roles`](crate::model::User::roles)                   | list   |
//! | `user.tenantIds`    | [`User::tenants`](crate::model::User::tenants)                 | list   |
//! | `user.permissions`  | [`User::permissions`](crate::model::User::permissions)             | list   |
//! | `client.tags`       | [`Client::tags`](crate::model::Client::tags)                  | list   |
//! | `client.name`       | [`Client::name`](crate::model::Client::name)                  | scalar |
//! | `jwtClaims.<path>`  | [`User::claims`](crate::model::User::claims) at `<path>`      | scalar, or list if the claim is a JSON array |
//!
//! A claim path is dotted for nested objects: `jwtClaims.org.unit` is
//! `claims["org"]["unit"]`. At each level a key equal to the whole remaining
//! path is preferred, so namespaced claims such as
//! `jwtClaims.https://example.com/roles` are found too. A claim is *missing*
//! when the path is absent, traverses a non-object, or ends at JSON `null`.
//! List attributes are never missing (an empty list is a list).
//!
//! # Operators
//!
//! Values are compared with JSON equality, except that numbers compare by
//! numeric value (`1` equals `1.0`). Strings compare exactly (case-sensitive).
//!
//! * `equal`
//!   * scalar: the attribute equals the value; a string value compares with a
//!     string attribute. A scalar never equals an array value.
//!   * list: the list equals the value *as a set*: with an array value, every
//!     element of the list is in the value and every element of the value is
//!     in the list (order and duplicates ignored; `[]` equals only an empty
//!     list); with a single value `v`, the list is exactly `[v]` (non-empty,
//!     every element equal to `v`).
//! * `not_equal`: the negation of `equal`.
//! * `in` (value: non-empty array of scalars)
//!   * scalar: the attribute is one of the values.
//!   * list: at least one element of the list is among the values.
//! * `not_in`: the negation of `in`.
//! * `contains` (value: string)
//!   * scalar string: the value is a substring of the attribute; a non-string
//!     scalar never contains anything.
//!   * list: the value is an element of the list.
//! * Missing attribute: `equal`, `in` and `contains` are false; `not_equal`
//!   and `not_in` are true.
//!
//! # Validation
//!
//! [`validate`](crate::policy::validation::validate) turns an administrator's JSON draft into a [`PolicySpec`],
//! refusing unknown fields, unknown keys, operators, servers and scopes, and
//! values of the wrong type for their operator, with a [`PolicyError`](crate::policy::validation::PolicyError) that
//! names the offending item and its index.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::McpServer;
use crate::policy::render::Cut;

/// The most conditions a single policy may have.
pub const MAX_CONDITIONS: usize = 64;

pub(crate) use crate::policy::render::MAX_RENDERED;

// ---------------------------------------------------------------------------
// Condition keys and operators
// ---------------------------------------------------------------------------

/// The subject attribute a condition looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ConditionKey {
    /// `user.roles`
    UserRoles,
    /// `user.tenantIds`
    UserTenantIds,
    /// `user.permissions`
    UserPermissions,
    /// `jwtClaims.<path>`: a (possibly nested, dotted) claim of the user.
    JwtClaim(String),
    /// `client.tags`
    ClientTags,
    /// `client.name`
    ClientName,
}

pub(crate) const KNOWN_KEYS: &str =
    "user.roles, user.tenantIds, user.permissions, jwtClaims.<path>, client.tags, client.name";

/// A condition key string that is not one of the known keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown condition key {0:?}; expected one of {KNOWN_KEYS}")]
pub struct ParseKeyError(pub String);

impl FromStr for ConditionKey {
    type Err = ParseKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user.roles" => Ok(ConditionKey::UserRoles),
            "user.tenantIds" => Ok(ConditionKey::UserTenantIds),
            "user.permissions" => Ok(ConditionKey::UserPermissions),
            "client.tags" => Ok(ConditionKey::ClientTags),
            "client.name" => Ok(ConditionKey::ClientName),
            _ => match s.strip_prefix("jwtClaims.") {
                // No empty path, and no empty segment ("a..b", ".a", "a.").
                Some(path) if !path.is_empty() && path.split('.').all(|seg| !seg.is_empty()) => {
                    Ok(ConditionKey::JwtClaim(path.to_owned()))
                }
                _ => Err(ParseKeyError(s.to_owned())),
            },
        }
    }
}

impl fmt::Display for ConditionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConditionKey::UserRoles => f.write_str("user.roles"),
            ConditionKey::UserTenantIds => f.write_str("user.tenantIds"),
            ConditionKey::UserPermissions => f.write_str("user.permissions"),
            ConditionKey::JwtClaim(path) => write!(f, "jwtClaims.{path}"),
            ConditionKey::ClientTags => f.write_str("client.tags"),
            ConditionKey::ClientName => f.write_str("client.name"),
        }
    }
}

impl TryFrom<String> for ConditionKey {
    type Error = ParseKeyError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ConditionKey> for String {
    fn from(key: ConditionKey) -> Self {
        key.to_string()
    }
}

/// How a condition compares the attribute with its value (see the module
/// documentation for the exact semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    Equal,
    NotEqual,
    In,
    NotIn,
    Contains,
}

/// An operator string that is not one of the known operators.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown operator {0:?}; expected one of equal, not_equal, in, not_in, contains")]
pub struct ParseOperatorError(pub String);

impl Operator {
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Equal => "equal",
            Operator::NotEqual => "not_equal",
            Operator::In => "in",
            Operator::NotIn => "not_in",
            Operator::Contains => "contains",
        }
    }

    /// What the condition's value must be for this operator.
    pub(crate) fn expected_value(self) -> &'static str {
        match self {
            Operator::Equal | Operator::NotEqual => "a string, number, boolean or array of strings",
            Operator::In | Operator::NotIn => "a non-empty array of strings, numbers or booleans",
            Operator::Contains => "a string",
        }
    }

    pub(crate) fn accepts(self, value: &Value) -> bool {
        match self {
            Operator::Equal | Operator::NotEqual => match value {
                Value::String(_) | Value::Number(_) | Value::Bool(_) => true,
                Value::Array(items) => items.iter().all(Value::is_string),
                Value::Null | Value::Object(_) => false,
            },
            Operator::In | Operator::NotIn => match value {
                Value::Array(items) => !items.is_empty() && items.iter().all(is_scalar),
                _ => false,
            },
            Operator::Contains => value.is_string(),
        }
    }
}

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

impl FromStr for Operator {
    type Err = ParseOperatorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "equal" => Ok(Operator::Equal),
            "not_equal" => Ok(Operator::NotEqual),
            "in" => Ok(Operator::In),
            "not_in" => Ok(Operator::NotIn),
            "contains" => Ok(Operator::Contains),
            _ => Err(ParseOperatorError(s.to_owned())),
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------
// Policies
// ---------------------------------------------------------------------------

/// One test on the subject: `key operator value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub key: ConditionKey,
    pub operator: Operator,
    pub value: Value,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.key, self.operator, Cut(&self.value))
    }
}

/// The scopes a policy allows on one MCP server (an MCP Server Policy grant)
/// or on one Connection's tokens (a Connections Policy grant): exactly one
/// of `mcp_server` and `connection` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The MCP server's id; empty in a connection grant.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mcp_server: String,
    /// The Connection's id, in a Connections Policy grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// The scopes allowed; empty for an API-key connection, which has none.
    pub scopes: Vec<String>,
}

impl Grant {
    fn allows(&self, server_id: &str, scope: &str) -> bool {
        self.connection.is_none()
            && self.mcp_server == server_id
            && self.scopes.iter().any(|s| s == scope)
    }

    pub(crate) fn targets(&self, target: &Target) -> bool {
        match target {
            Target::Server(server) => self.connection.is_none() && self.mcp_server == server.id,
            Target::Connection(connection) => {
                self.connection.as_deref() == Some(connection.id.as_str())
            }
        }
    }

    pub(crate) fn allows_on(&self, target: &Target, scope: &str) -> bool {
        match target {
            Target::Server(server) => self.allows(&server.id, scope),
            Target::Connection(connection) => {
                self.connection.as_deref() == Some(connection.id.as_str())
                    && self.scopes.iter().any(|s| s == scope)
            }
        }
    }
}

/// A Connection as the policy engine sees it: its id and the scopes its
/// tokens can carry (none for an API-key connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownConnection {
    pub id: String,
    pub scopes: Vec<String>,
}

/// What a decision is about: an MCP server or a Connection.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    Server(&'a McpServer),
    Connection(&'a KnownConnection),
}

impl Target<'_> {
    pub(crate) fn scopes(&self) -> &[String] {
        match self {
            Target::Server(s) => &s.scopes,
            Target::Connection(c) => &c.scopes,
        }
    }
    /// `MCP server calendar` / `connection demo-calendar`, for explanations.
    pub(crate) fn label(&self) -> String {
        match self {
            Target::Server(s) => s.id.clone(),
            Target::Connection(c) => format!("connection {}", c.id),
        }
    }
}

/// An administrator's allow policy, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    pub grants: Vec<Grant>,
    pub created_at: i64,
}

impl Policy {
    /// Whether one of this policy's grants allows `scope` on the server with id `server_id`.
    pub fn allows(&self, server_id: &str, scope: &str) -> bool {
        self.grants.iter().any(|g| g.allows(server_id, scope))
    }

    pub(crate) fn allows_on(&self, target: &Target, scope: &str) -> bool {
        self.grants.iter().any(|g| g.allows_on(target, scope))
    }
}

/// A validated policy draft, before it gets an id and a creation time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicySpec {
    pub name: String,
    pub description: String,
    pub conditions: Vec<Condition>,
    pub grants: Vec<Grant>,
}

impl PolicySpec {
    pub fn into_policy(self, id: String, created_at: i64) -> Policy {
        Policy {
            id,
            name: self.name,
            description: self.description,
            conditions: self.conditions,
            grants: self.grants,
            created_at,
        }
    }
}

/// `s`, cut to at most `max` characters with a trailing ellipsis; borrowed
/// when it is short enough already.
pub(crate) fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((cut, _)) => Cow::Owned(format!("{}…", &s[..cut])),
    }
}
