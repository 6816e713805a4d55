//! MCP Server Policies: which scopes on which MCP server a user and client may
//! be issued, as decided by the administrator's *allow* policies.
//!
//! Pure logic, no I/O. The scopes finally issued are
//! client configuration ∩ policy-permitted ∩ user-consented; this module
//! computes only the policy-permitted part ([`evaluate`]) and explains it
//! ([`Decision::explanation`]).
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
//! | `user.roles`        | [`User::roles`]                   | list   |
//! | `user.tenantIds`    | [`User::tenants`]                 | list   |
//! | `user.permissions`  | [`User::permissions`]             | list   |
//! | `client.tags`       | [`Client::tags`]                  | list   |
//! | `client.name`       | [`Client::name`]                  | scalar |
//! | `jwtClaims.<path>`  | [`User::claims`] at `<path>`      | scalar, or list if the claim is a JSON array |
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
//! [`validate`] turns an administrator's JSON draft into a [`PolicySpec`],
//! refusing unknown fields, unknown keys, operators, servers and scopes, and
//! values of the wrong type for their operator, with a [`PolicyError`] that
//! names the offending item and its index.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::{Client, McpServer, User};

/// The most conditions a single policy may have.
pub const MAX_CONDITIONS: usize = 64;

/// How many non-matching (or matching) policies a dropped-scope reason names
/// before summarising the rest as "and N more".
const MAX_POLICIES_IN_REASON: usize = 5;

/// How many matched policies [`Decision::explanation`] names.
const MAX_MATCHED_IN_EXPLANATION: usize = 10;

/// Longest rendering (in characters) of a JSON value or name inside a reason.
const MAX_RENDERED: usize = 120;

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

const KNOWN_KEYS: &str =
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
    fn expected_value(self) -> &'static str {
        match self {
            Operator::Equal | Operator::NotEqual => "a string, number, boolean or array of strings",
            Operator::In | Operator::NotIn => "a non-empty array of strings, numbers or booleans",
            Operator::Contains => "a string",
        }
    }

    fn accepts(self, value: &Value) -> bool {
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
        write!(
            f,
            "{} {} {}",
            self.key,
            self.operator,
            render_json(&self.value)
        )
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

    fn targets(&self, target: &Target) -> bool {
        match target {
            Target::Server(server) => self.connection.is_none() && self.mcp_server == server.id,
            Target::Connection(connection) => {
                self.connection.as_deref() == Some(connection.id.as_str())
            }
        }
    }

    fn allows_on(&self, target: &Target, scope: &str) -> bool {
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
enum Target<'a> {
    Server(&'a McpServer),
    Connection(&'a KnownConnection),
}

impl Target<'_> {
    fn scopes(&self) -> &[String] {
        match self {
            Target::Server(s) => &s.scopes,
            Target::Connection(c) => &c.scopes,
        }
    }
    /// `MCP server calendar` / `connection demo-calendar`, for explanations.
    fn label(&self) -> String {
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

    fn allows_on(&self, target: &Target, scope: &str) -> bool {
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

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/// Why a policy draft was refused. Every message is safe to show to the
/// administrator who wrote the draft; indices are 0-based positions in the
/// draft's `conditions` or `grants` array.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// The draft is not a JSON object, a field has the wrong JSON type, a
    /// required structural field is absent, or an object has a field the
    /// policy format does not know.
    #[error("malformed policy: {0}")]
    Malformed(String),
    /// The name is absent, null, or only whitespace: administrators need a
    /// name to recognise the policy in lists and explanations.
    #[error("the policy needs a name")]
    EmptyName,
    /// A condition's key is not one of the attributes policies can test.
    #[error("conditions[{index}]: unknown condition key {key:?}; expected one of {KNOWN_KEYS}")]
    UnknownConditionKey { index: usize, key: String },
    /// A condition's operator is not one of the supported comparisons.
    #[error("conditions[{index}]: unknown operator {operator:?}; expected one of equal, not_equal, in, not_in, contains")]
    UnknownOperator { index: usize, operator: String },
    /// A condition has no value (or a null one); every operator compares
    /// against a value, so the condition would be meaningless.
    #[error("conditions[{index}]: `{key} {operator}` needs a value")]
    MissingValue {
        index: usize,
        key: ConditionKey,
        operator: Operator,
    },
    /// A condition's value has a type its operator cannot use: `in`/`not_in`
    /// need a non-empty array of scalars, `contains` a string, and
    /// `equal`/`not_equal` a string, number, boolean or array of strings.
    #[error("conditions[{index}]: operator `{operator}` needs {expected} as its value")]
    WrongValueType {
        index: usize,
        operator: Operator,
        expected: &'static str,
    },
    /// The policy has more conditions than allowed, which bounds the cost of
    /// evaluating it on every authorization.
    #[error("a policy may have at most {max} conditions")]
    TooManyConditions { max: usize },
    /// The policy grants nothing: an allow policy without grants has no effect.
    #[error("the policy needs at least one grant (an MCP server and the scopes it allows)")]
    NoGrants,
    /// A grant names an MCP server id the hub does not know.
    #[error("grants[{index}]: unknown MCP server {mcp_server:?}")]
    UnknownMcpServer { index: usize, mcp_server: String },
    /// A grant names a Connection id the hub does not know.
    #[error("grants[{index}]: unknown connection {connection:?}")]
    UnknownConnection { index: usize, connection: String },
    /// A grant names both an MCP server and a connection, or neither.
    #[error("grants[{index}]: a grant names exactly one of `mcp_server` and `connection`")]
    AmbiguousGrant { index: usize },
    /// A grant names a scope the MCP server does not define.
    #[error("grants[{index}]: MCP server {mcp_server:?} has no scope {scope:?}")]
    UnknownScope {
        index: usize,
        mcp_server: String,
        scope: String,
    },
    /// A grant lists no scopes: it would allow nothing on its server.
    #[error("grants[{index}]: no scopes listed for MCP server {mcp_server:?}")]
    NoScopes { index: usize, mcp_server: String },
}

const POLICY_FIELDS: &[&str] = &["name", "description", "conditions", "grants"];
const CONDITION_FIELDS: &[&str] = &["key", "operator", "value"];
const GRANT_FIELDS: &[&str] = &["mcp_server", "connection", "scopes"];

/// Validates an administrator's policy draft against the known MCP servers.
///
/// The draft is
/// `{"name": "...", "description": "...", "conditions": [{"key", "operator", "value"}], "grants": [{"mcp_server", "scopes"}]}`;
/// `description` and `conditions` are optional. The name and description are
/// trimmed; duplicate scopes within a grant are dropped.
pub fn validate(draft: &Value, servers: &[McpServer]) -> Result<PolicySpec, PolicyError> {
    validate_with(draft, servers, &[])
}

/// [`validate`], also knowing the hub's Connections, so that grants may name
/// a connection (`{"connection": "…", "scopes": […]}`): a Connections Policy.
pub fn validate_with(
    draft: &Value,
    servers: &[McpServer],
    connections: &[KnownConnection],
) -> Result<PolicySpec, PolicyError> {
    let obj = draft.as_object().ok_or_else(|| {
        malformed(format!(
            "a policy must be a JSON object, not {}",
            type_name(draft)
        ))
    })?;
    refuse_unknown_fields(obj, POLICY_FIELDS, "the policy")?;

    let name = optional_str(obj, "name", "`name`", "a string")?
        .unwrap_or_default()
        .trim();
    if name.is_empty() {
        return Err(PolicyError::EmptyName);
    }
    let description = optional_str(obj, "description", "`description`", "a string")?
        .unwrap_or_default()
        .trim();

    let raw_conditions = optional_array(obj, "conditions", "`conditions`", "an array")?;
    if raw_conditions.len() > MAX_CONDITIONS {
        return Err(PolicyError::TooManyConditions {
            max: MAX_CONDITIONS,
        });
    }
    let conditions = raw_conditions
        .iter()
        .enumerate()
        .map(|(index, raw)| validate_condition(index, raw))
        .collect::<Result<Vec<_>, _>>()?;

    let raw_grants = optional_array(obj, "grants", "`grants`", "an array")?;
    if raw_grants.is_empty() {
        return Err(PolicyError::NoGrants);
    }
    let grants = raw_grants
        .iter()
        .enumerate()
        .map(|(index, raw)| validate_grant(index, raw, servers, connections))
        .collect::<Result<Vec<_>, _>>()?;

    Ok(PolicySpec {
        name: name.to_owned(),
        description: description.to_owned(),
        conditions,
        grants,
    })
}

fn validate_condition(index: usize, raw: &Value) -> Result<Condition, PolicyError> {
    let obj = raw.as_object().ok_or_else(|| {
        malformed(format!(
            "conditions[{index}] must be a JSON object, not {}",
            type_name(raw)
        ))
    })?;
    refuse_unknown_fields(obj, CONDITION_FIELDS, &format!("conditions[{index}]"))?;

    let key = required_str(obj, "key", &format!("conditions[{index}]"), "a string")?;
    let key = key
        .parse::<ConditionKey>()
        .map_err(|_| PolicyError::UnknownConditionKey {
            index,
            key: key.to_owned(),
        })?;

    let operator = required_str(obj, "operator", &format!("conditions[{index}]"), "a string")?;
    let operator = operator
        .parse::<Operator>()
        .map_err(|_| PolicyError::UnknownOperator {
            index,
            operator: operator.to_owned(),
        })?;

    let value = match obj.get("value") {
        None | Some(Value::Null) => {
            return Err(PolicyError::MissingValue {
                index,
                key,
                operator,
            })
        }
        Some(value) => value,
    };
    if !operator.accepts(value) {
        return Err(PolicyError::WrongValueType {
            index,
            operator,
            expected: operator.expected_value(),
        });
    }

    Ok(Condition {
        key,
        operator,
        value: value.clone(),
    })
}

fn validate_grant(
    index: usize,
    raw: &Value,
    servers: &[McpServer],
    connections: &[KnownConnection],
) -> Result<Grant, PolicyError> {
    let obj = raw.as_object().ok_or_else(|| {
        malformed(format!(
            "grants[{index}] must be a JSON object, not {}",
            type_name(raw)
        ))
    })?;
    refuse_unknown_fields(obj, GRANT_FIELDS, &format!("grants[{index}]"))?;
    if let Some(connection) = optional_str(
        obj,
        "connection",
        &format!("grants[{index}].connection"),
        "a string (a connection id)",
    )? {
        if obj.get("mcp_server").is_some_and(|v| !v.is_null()) {
            return Err(PolicyError::AmbiguousGrant { index });
        }
        return validate_connection_grant(index, obj, connection, connections);
    }

    let mcp_server = required_str(
        obj,
        "mcp_server",
        &format!("grants[{index}]"),
        "a string (an MCP server id)",
    )?
    .to_owned();
    let server = servers.iter().find(|s| s.id == mcp_server).ok_or_else(|| {
        PolicyError::UnknownMcpServer {
            index,
            mcp_server: mcp_server.clone(),
        }
    })?;

    let raw_scopes = optional_array(
        obj,
        "scopes",
        &format!("grants[{index}].scopes"),
        "an array of strings",
    )?;
    if raw_scopes.is_empty() {
        return Err(PolicyError::NoScopes {
            index,
            mcp_server: mcp_server.clone(),
        });
    }
    let scopes = grant_scopes(index, raw_scopes, &server.scopes, &mcp_server)?;

    Ok(Grant {
        mcp_server,
        connection: None,
        scopes,
    })
}

/// A grant's scopes: strings its target defines, duplicates dropped.
/// `target` names the target in errors (`lab`, `connection demo-calendar`).
fn grant_scopes(
    index: usize,
    raw_scopes: &[Value],
    defined: &[String],
    target: &str,
) -> Result<Vec<String>, PolicyError> {
    let mut scopes: Vec<String> = Vec::with_capacity(raw_scopes.len());
    for (position, raw_scope) in raw_scopes.iter().enumerate() {
        let scope = raw_scope.as_str().ok_or_else(|| {
            malformed(format!(
                "grants[{index}].scopes[{position}] must be a string, not {}",
                type_name(raw_scope)
            ))
        })?;
        if !defined.iter().any(|s| s == scope) {
            return Err(PolicyError::UnknownScope {
                index,
                mcp_server: target.to_owned(),
                scope: scope.to_owned(),
            });
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    Ok(scopes)
}

fn validate_connection_grant(
    index: usize,
    obj: &Map<String, Value>,
    connection: &str,
    connections: &[KnownConnection],
) -> Result<Grant, PolicyError> {
    let known = connections
        .iter()
        .find(|c| c.id == connection)
        .ok_or_else(|| PolicyError::UnknownConnection {
            index,
            connection: connection.to_owned(),
        })?;
    let raw_scopes = optional_array(
        obj,
        "scopes",
        &format!("grants[{index}].scopes"),
        "an array of strings",
    )?;
    // An API-key connection has no scopes: naming it is the whole grant.
    if raw_scopes.is_empty() && !known.scopes.is_empty() {
        return Err(PolicyError::NoScopes {
            index,
            mcp_server: format!("connection {connection}"),
        });
    }
    let scopes = grant_scopes(
        index,
        raw_scopes,
        &known.scopes,
        &format!("connection {connection}"),
    )?;
    Ok(Grant {
        mcp_server: String::new(),
        connection: Some(connection.to_owned()),
        scopes,
    })
}

fn refuse_unknown_fields(
    obj: &Map<String, Value>,
    allowed: &[&str],
    what: &str,
) -> Result<(), PolicyError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(field) => Err(malformed(format!(
            "unknown field {:?} in {what}; expected {}",
            truncate(field, MAX_RENDERED),
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// A field that must be a string when present; `None` when absent or null.
/// `label` names it in the error (`` `name` ``, `conditions[0].key`).
fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    label: &str,
    expected: &str,
) -> Result<Option<&'a str>, PolicyError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(malformed(format!(
            "{label} must be {expected}, not {}",
            type_name(other)
        ))),
    }
}

/// A string field of the object at `parent` that must be present.
fn required_str<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    parent: &str,
    expected: &str,
) -> Result<&'a str, PolicyError> {
    optional_str(obj, field, &format!("{parent}.{field}"), expected)?
        .ok_or_else(|| malformed(format!("{parent} has no `{field}`")))
}

/// A field that must be an array when present; empty when absent or null.
fn optional_array<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    label: &str,
    expected: &str,
) -> Result<&'a [Value], PolicyError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(malformed(format!(
            "{label} must be {expected}, not {}",
            type_name(other)
        ))),
    }
}

fn malformed(message: String) -> PolicyError {
    PolicyError::Malformed(message)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------

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
            write!(f, "{} = {})", self.condition.key, render_json(&self.actual))
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

fn failed_condition(policy: &Policy, index: usize, subject: &Subject) -> FailedCondition {
    let condition = &policy.conditions[index];
    FailedCondition {
        index,
        condition: condition.clone(),
        actual: resolve(&condition.key, subject).to_json(),
    }
}

/// The index of the first condition that does not hold, without allocating.
fn first_failure(policy: &Policy, subject: &Subject) -> Option<usize> {
    policy
        .conditions
        .iter()
        .position(|condition| !holds(condition, subject))
}

/// A subject attribute, borrowed.
enum Attr<'a> {
    Strings(&'a [String]),
    Values(&'a [Value]),
    Str(&'a str),
    Scalar(&'a Value),
    Missing,
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

fn holds(condition: &Condition, subject: &Subject) -> bool {
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

// ---------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------

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

/// Compact JSON, cut to a bounded length.
fn render_json(value: &Value) -> String {
    truncate(&value.to_string(), MAX_RENDERED)
}

/// `s`, cut to at most `max` characters with a trailing ellipsis.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((cut, _)) => format!("{}…", &s[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AuthMethod, Tool, TrustLevel};
    use serde_json::json;

    fn user() -> User {
        let claims = json!({
            "department": "engineering",
            "level": 3,
            "verified": true,
            "groups": ["alpha", "beta"],
            "org": {"unit": "platform", "cost_center": {"code": "CC-42"}},
            "https://example.com/region": "eu",
            "nothing": null
        });
        User {
            id: "usr_1".into(),
            username: "alice".into(),
            name: "Alice".into(),
            email: Some("alice@example.com".into()),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$x$y".into(),
            tenants: vec!["acme".into(), "globex".into()],
            roles: vec!["engineer".into(), "viewer".into()],
            permissions: vec!["calendar:read".into()],
            claims: claims.as_object().unwrap().clone(),
        }
    }

    fn client() -> Client {
        Client {
            client_id: "cli_1".into(),
            name: "Claude Desktop".into(),
            trust_level: TrustLevel::Verified,
            secret_hash: None,
            token_endpoint_auth_method: AuthMethod::None,
            redirect_uris: vec!["http://127.0.0.1/cb".into()],
            grant_types: vec!["authorization_code".into()],
            allowed_resources: vec![],
            allowed_scopes: vec![],
            tags: vec!["internal".into(), "desktop".into()],
            tenant: None,
            jwks: None,
            metadata: json!({}),
            created_at: 0,
        }
    }

    fn servers() -> Vec<McpServer> {
        vec![
            McpServer {
                id: "calendar".into(),
                name: "Calendar".into(),
                path: "/mcp/calendar".into(),
                scopes: vec![
                    "calendar.read".into(),
                    "calendar.write".into(),
                    "calendar.admin".into(),
                ],
                tools: vec![Tool {
                    name: "list_events".into(),
                    scope: "calendar.read".into(),
                    description: String::new(),
                }],
            },
            McpServer {
                id: "drive".into(),
                name: "Drive".into(),
                path: "/mcp/drive".into(),
                scopes: vec!["drive.read".into(), "drive.write".into()],
                tools: vec![],
            },
        ]
    }

    fn cond(key: &str, operator: &str, value: Value) -> Condition {
        Condition {
            key: key.parse().unwrap(),
            operator: operator.parse().unwrap(),
            value,
        }
    }

    fn policy(
        id: &str,
        name: &str,
        conditions: Vec<Condition>,
        grants: &[(&str, &[&str])],
    ) -> Policy {
        Policy {
            id: id.into(),
            name: name.into(),
            description: String::new(),
            conditions,
            grants: grants
                .iter()
                .map(|(server, scopes)| Grant {
                    mcp_server: (*server).into(),
                    connection: None,
                    scopes: scopes.iter().map(|s| (*s).into()).collect(),
                })
                .collect(),
            created_at: 0,
        }
    }

    /// Evaluates one condition against the default user and client.
    fn check(key: &str, operator: &str, value: Value) -> bool {
        let (u, c) = (user(), client());
        let subject = Subject {
            user: &u,
            client: &c,
        };
        holds(&cond(key, operator, value), &subject)
    }

    fn scopes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).into()).collect()
    }

    // --- keys and operators ------------------------------------------------

    #[test]
    fn keys_round_trip_as_strings() {
        for key in [
            "user.roles",
            "user.tenantIds",
            "user.permissions",
            "jwtClaims.org.unit",
            "client.tags",
            "client.name",
        ] {
            let parsed: ConditionKey = key.parse().unwrap();
            assert_eq!(parsed.to_string(), key);
            assert_eq!(serde_json::to_value(&parsed).unwrap(), json!(key));
            let back: ConditionKey = serde_json::from_value(json!(key)).unwrap();
            assert_eq!(back, parsed);
        }
        assert_eq!(
            "jwtClaims.org.unit".parse::<ConditionKey>().unwrap(),
            ConditionKey::JwtClaim("org.unit".into())
        );
        for bad in [
            "jwtClaims.",
            "jwtClaims",
            "jwtClaims.a..b",
            "user.role",
            "User.roles",
        ] {
            assert!(bad.parse::<ConditionKey>().is_err(), "{bad}");
        }
        assert!(serde_json::from_value::<ConditionKey>(json!("user.nope")).is_err());
    }

    #[test]
    fn operators_round_trip_as_strings() {
        for op in ["equal", "not_equal", "in", "not_in", "contains"] {
            let parsed: Operator = op.parse().unwrap();
            assert_eq!(parsed.to_string(), op);
            assert_eq!(serde_json::to_value(parsed).unwrap(), json!(op));
            assert_eq!(
                serde_json::from_value::<Operator>(json!(op)).unwrap(),
                parsed
            );
        }
        assert!("eq".parse::<Operator>().is_err());
    }

    #[test]
    fn policy_serializes_with_string_keys_and_operators() {
        let p = policy(
            "pol_1",
            "Engineers",
            vec![cond("jwtClaims.org.unit", "not_in", json!(["sales"]))],
            &[("calendar", &["calendar.read"])],
        );
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["conditions"][0]["key"], json!("jwtClaims.org.unit"));
        assert_eq!(v["conditions"][0]["operator"], json!("not_in"));
        let back: Policy = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn user_roles_all_operators() {
        // user.roles = ["engineer", "viewer"]
        assert!(check("user.roles", "equal", json!(["viewer", "engineer"])));
        assert!(check(
            "user.roles",
            "equal",
            json!(["viewer", "engineer", "viewer"])
        ));
        assert!(!check("user.roles", "equal", json!(["engineer"])));
        assert!(!check("user.roles", "equal", json!("engineer")));
        assert!(check("user.roles", "not_equal", json!(["engineer"])));
        assert!(!check(
            "user.roles",
            "not_equal",
            json!(["engineer", "viewer"])
        ));
        assert!(check("user.roles", "in", json!(["admin", "engineer"])));
        assert!(!check("user.roles", "in", json!(["admin"])));
        assert!(check("user.roles", "not_in", json!(["admin"])));
        assert!(!check("user.roles", "not_in", json!(["viewer"])));
        assert!(check("user.roles", "contains", json!("engineer")));
        assert!(!check("user.roles", "contains", json!("engine")));
    }

    #[test]
    fn user_tenant_ids_all_operators() {
        // user.tenants = ["acme", "globex"]
        assert!(check("user.tenantIds", "equal", json!(["globex", "acme"])));
        assert!(!check("user.tenantIds", "equal", json!(["acme"])));
        assert!(check("user.tenantIds", "not_equal", json!("acme")));
        assert!(!check(
            "user.tenantIds",
            "not_equal",
            json!(["acme", "globex"])
        ));
        assert!(check("user.tenantIds", "in", json!(["globex"])));
        assert!(!check("user.tenantIds", "in", json!(["initech"])));
        assert!(check("user.tenantIds", "not_in", json!(["initech"])));
        assert!(!check(
            "user.tenantIds",
            "not_in",
            json!(["acme", "initech"])
        ));
        assert!(check("user.tenantIds", "contains", json!("acme")));
        assert!(!check("user.tenantIds", "contains", json!("initech")));
    }

    #[test]
    fn user_permissions_all_operators_and_single_string_equal() {
        // user.permissions = ["calendar:read"]
        assert!(check("user.permissions", "equal", json!("calendar:read")));
        assert!(check("user.permissions", "equal", json!(["calendar:read"])));
        assert!(!check("user.permissions", "equal", json!("calendar:write")));
        assert!(check(
            "user.permissions",
            "not_equal",
            json!("calendar:write")
        ));
        assert!(!check(
            "user.permissions",
            "not_equal",
            json!("calendar:read")
        ));
        assert!(check(
            "user.permissions",
            "in",
            json!(["calendar:read", "x"])
        ));
        assert!(!check("user.permissions", "in", json!(["calendar:write"])));
        assert!(check(
            "user.permissions",
            "not_in",
            json!(["calendar:write"])
        ));
        assert!(!check(
            "user.permissions",
            "not_in",
            json!(["calendar:read"])
        ));
        assert!(check(
            "user.permissions",
            "contains",
            json!("calendar:read")
        ));
        assert!(!check("user.permissions", "contains", json!("calendar")));
    }

    #[test]
    fn empty_list_equals_only_empty_array() {
        let mut u = user();
        u.roles.clear();
        let c = client();
        let subject = Subject {
            user: &u,
            client: &c,
        };
        assert!(holds(&cond("user.roles", "equal", json!([])), &subject));
        assert!(!holds(
            &cond("user.roles", "equal", json!("viewer")),
            &subject
        ));
        assert!(!holds(
            &cond("user.roles", "in", json!(["viewer"])),
            &subject
        ));
        assert!(holds(
            &cond("user.roles", "not_in", json!(["viewer"])),
            &subject
        ));
        assert!(!holds(
            &cond("user.roles", "contains", json!("viewer")),
            &subject
        ));
    }

    #[test]
    fn client_tags_all_operators() {
        // client.tags = ["internal", "desktop"]
        assert!(check(
            "client.tags",
            "equal",
            json!(["desktop", "internal"])
        ));
        assert!(!check("client.tags", "equal", json!(["desktop"])));
        assert!(check("client.tags", "not_equal", json!(["desktop"])));
        assert!(!check(
            "client.tags",
            "not_equal",
            json!(["internal", "desktop"])
        ));
        assert!(check("client.tags", "in", json!(["internal"])));
        assert!(!check("client.tags", "in", json!(["external"])));
        assert!(check("client.tags", "not_in", json!(["external"])));
        assert!(!check("client.tags", "not_in", json!(["desktop"])));
        assert!(check("client.tags", "contains", json!("desktop")));
        assert!(!check("client.tags", "contains", json!("mobile")));
    }

    #[test]
    fn client_name_all_operators() {
        // client.name = "Claude Desktop"
        assert!(check("client.name", "equal", json!("Claude Desktop")));
        assert!(!check("client.name", "equal", json!("claude desktop")));
        assert!(!check("client.name", "equal", json!(["Claude Desktop"])));
        assert!(check("client.name", "not_equal", json!("Other")));
        assert!(!check("client.name", "not_equal", json!("Claude Desktop")));
        assert!(check(
            "client.name",
            "in",
            json!(["Claude Desktop", "Cursor"])
        ));
        assert!(!check("client.name", "in", json!(["Cursor"])));
        assert!(check("client.name", "not_in", json!(["Cursor"])));
        assert!(!check("client.name", "not_in", json!(["Claude Desktop"])));
        assert!(check("client.name", "contains", json!("Desktop")));
        assert!(!check("client.name", "contains", json!("Mobile")));
    }

    #[test]
    fn jwt_claims_scalar_all_operators() {
        assert!(check("jwtClaims.department", "equal", json!("engineering")));
        assert!(!check("jwtClaims.department", "equal", json!("sales")));
        assert!(check("jwtClaims.department", "not_equal", json!("sales")));
        assert!(!check(
            "jwtClaims.department",
            "not_equal",
            json!("engineering")
        ));
        assert!(check(
            "jwtClaims.department",
            "in",
            json!(["sales", "engineering"])
        ));
        assert!(!check("jwtClaims.department", "in", json!(["sales"])));
        assert!(check("jwtClaims.department", "not_in", json!(["sales"])));
        assert!(!check(
            "jwtClaims.department",
            "not_in",
            json!(["engineering"])
        ));
        assert!(check("jwtClaims.department", "contains", json!("engine")));
        assert!(!check("jwtClaims.department", "contains", json!("sales")));
        // Numbers and booleans compare by JSON value; numbers numerically.
        assert!(check("jwtClaims.level", "equal", json!(3)));
        assert!(check("jwtClaims.level", "equal", json!(3.0)));
        assert!(!check("jwtClaims.level", "equal", json!("3")));
        assert!(check("jwtClaims.level", "in", json!([1, 2, 3])));
        assert!(!check("jwtClaims.level", "contains", json!("3")));
        assert!(check("jwtClaims.verified", "equal", json!(true)));
        assert!(check("jwtClaims.verified", "not_equal", json!(false)));
    }

    #[test]
    fn jwt_claims_nested_paths() {
        assert!(check("jwtClaims.org.unit", "equal", json!("platform")));
        assert!(!check("jwtClaims.org.unit", "equal", json!("sales")));
        assert!(check(
            "jwtClaims.org.cost_center.code",
            "in",
            json!(["CC-42"])
        ));
        assert!(check(
            "jwtClaims.org.cost_center.code",
            "not_in",
            json!(["CC-1"])
        ));
        assert!(check("jwtClaims.org.unit", "contains", json!("plat")));
        // A namespaced claim whose name contains dots.
        assert!(check(
            "jwtClaims.https://example.com/region",
            "equal",
            json!("eu")
        ));
    }

    #[test]
    fn jwt_claims_array_is_a_list() {
        // claims.groups = ["alpha", "beta"]
        assert!(check("jwtClaims.groups", "equal", json!(["beta", "alpha"])));
        assert!(!check("jwtClaims.groups", "equal", json!("alpha")));
        assert!(check("jwtClaims.groups", "in", json!(["beta"])));
        assert!(check("jwtClaims.groups", "not_in", json!(["gamma"])));
        assert!(check("jwtClaims.groups", "contains", json!("alpha")));
        assert!(!check("jwtClaims.groups", "contains", json!("alp")));
    }

    #[test]
    fn jwt_claims_missing() {
        for key in [
            "jwtClaims.absent",
            "jwtClaims.org.absent",
            "jwtClaims.department.inner", // traverses a string
            "jwtClaims.nothing",          // JSON null
        ] {
            assert!(!check(key, "equal", json!("x")), "{key}");
            assert!(!check(key, "in", json!(["x"])), "{key}");
            assert!(!check(key, "contains", json!("x")), "{key}");
            assert!(check(key, "not_equal", json!("x")), "{key}");
            assert!(check(key, "not_in", json!(["x"])), "{key}");
        }
    }

    // --- matching -------------------------------------------------------------

    #[test]
    fn conditions_are_anded_and_first_failure_reported() {
        let (u, c) = (user(), client());
        let subject = Subject {
            user: &u,
            client: &c,
        };
        let both = policy(
            "pol_1",
            "Both",
            vec![
                cond("user.roles", "contains", json!("engineer")),
                cond("client.tags", "contains", json!("internal")),
            ],
            &[("calendar", &["calendar.read"])],
        );
        assert_eq!(matches(&both, &subject), Ok(()));

        let one_fails = policy(
            "pol_2",
            "One fails",
            vec![
                cond("user.roles", "contains", json!("engineer")),
                cond("client.tags", "contains", json!("external")),
                cond("user.roles", "contains", json!("nobody")),
            ],
            &[("calendar", &["calendar.read"])],
        );
        let failed = matches(&one_fails, &subject).unwrap_err();
        assert_eq!(failed.index, 1);
        assert_eq!(failed.actual, json!(["internal", "desktop"]));
        assert_eq!(
            failed.to_string(),
            r#"client.tags contains "external" is false (client.tags = ["internal","desktop"])"#
        );

        let missing = policy(
            "pol_3",
            "Missing",
            vec![cond("jwtClaims.org.team", "equal", json!("a"))],
            &[("calendar", &["calendar.read"])],
        );
        let failed = matches(&missing, &subject).unwrap_err();
        assert_eq!(failed.actual, Value::Null);
        assert!(failed.to_string().contains("jwtClaims.org.team is missing"));

        let everyone = policy(
            "pol_4",
            "Everyone",
            vec![],
            &[("calendar", &["calendar.read"])],
        );
        assert_eq!(matches(&everyone, &subject), Ok(()));
    }

    // --- evaluation -------------------------------------------------------------

    #[test]
    fn union_across_matching_policies() {
        let (u, c, s) = (user(), client(), servers());
        let subject = Subject {
            user: &u,
            client: &c,
        };
        let policies = vec![
            policy(
                "pol_1",
                "Readers",
                vec![cond("user.roles", "in", json!(["viewer"]))],
                &[("calendar", &["calendar.read"]), ("drive", &["drive.read"])],
            ),
            policy(
                "pol_2",
                "Writers",
                vec![cond("jwtClaims.org.unit", "equal", json!("platform"))],
                &[("calendar", &["calendar.write"])],
            ),
            policy(
                "pol_3",
                "Admins",
                vec![cond("user.roles", "contains", json!("admin"))],
                &[("calendar", &["calendar.admin"])],
            ),
        ];
        let requested = scopes(&[
            "calendar.write",
            "calendar.read",
            "calendar.admin",
            "calendar.read",
        ]);
        let decision = evaluate(&policies, &subject, &s[0], &requested);
        assert_eq!(
            decision.permitted,
            scopes(&["calendar.write", "calendar.read"])
        );
        assert_eq!(
            decision.matched,
            vec![
                PolicyRef {
                    id: "pol_1".into(),
                    name: "Readers".into()
                },
                PolicyRef {
                    id: "pol_2".into(),
                    name: "Writers".into()
                },
            ]
        );
        assert_eq!(decision.considered, 3);
        assert_eq!(decision.dropped.len(), 1);
        let dropped = &decision.dropped[0];
        assert_eq!(dropped.scope, "calendar.admin");
        assert!(
            dropped.reason.starts_with(
                r#"matching policies ("Readers", "Writers") do not allow calendar.admin on calendar"#
            ),
            "{}",
            dropped.reason
        );
        assert!(
            dropped.reason.contains(
                r#"policy "Admins" (pol_3): user.roles contains "admin" is false (user.roles = ["engineer","viewer"])"#
            ),
            "{}",
            dropped.reason
        );

        // Grants are per server: drive.read is granted on drive, not calendar.
        let on_drive = evaluate(
            &policies,
            &subject,
            &s[1],
            &scopes(&["drive.read", "drive.write"]),
        );
        assert_eq!(on_drive.permitted, scopes(&["drive.read"]));
        assert_eq!(on_drive.dropped[0].scope, "drive.write");
    }

    #[test]
    fn no_match_permits_nothing_with_reasons() {
        let (u, c, s) = (user(), client(), servers());
        let subject = Subject {
            user: &u,
            client: &c,
        };
        let policies = vec![
            policy(
                "pol_1",
                "Engineers",
                vec![cond("user.roles", "in", json!(["admin"]))],
                &[("calendar", &["calendar.read", "calendar.write"])],
            ),
            policy(
                "pol_2",
                "Partners",
                vec![
                    cond("client.name", "equal", json!("Claude Desktop")),
                    cond("user.tenantIds", "contains", json!("partner")),
                ],
                &[("calendar", &["calendar.read"])],
            ),
            policy(
                "pol_3",
                "Drive only",
                vec![cond("client.tags", "contains", json!("nope"))],
                &[("drive", &["drive.read"])],
            ),
        ];
        let decision = evaluate(
            &policies,
            &subject,
            &s[0],
            &scopes(&["calendar.read", "calendar.admin"]),
        );
        assert!(decision.permitted.is_empty());
        assert!(decision.matched.is_empty());
        assert_eq!(decision.dropped.len(), 2);

        let read = &decision.dropped[0];
        assert_eq!(read.scope, "calendar.read");
        assert_eq!(
            read.reason,
            concat!(
                r#"no policy matched: policy "Engineers" (pol_1): user.roles in ["admin"] is false (user.roles = ["engineer","viewer"]); "#,
                r#"policy "Partners" (pol_2): user.tenantIds contains "partner" is false (user.tenantIds = ["acme","globex"])"#
            )
        );
        let admin = &decision.dropped[1];
        assert_eq!(
            admin.reason,
            "no policy matched: none of the 3 policies allows calendar.admin on calendar"
        );

        let nothing = evaluate(&[], &subject, &s[0], &scopes(&["calendar.read"]));
        assert!(nothing.permitted.is_empty());
        assert_eq!(nothing.considered, 0);
        assert_eq!(
            nothing.dropped[0].reason,
            "no policy matched: no policies are defined"
        );
    }

    #[test]
    fn reasons_are_bounded() {
        let (u, c, s) = (user(), client(), servers());
        let subject = Subject {
            user: &u,
            client: &c,
        };
        let policies: Vec<Policy> = (0..8)
            .map(|i| {
                policy(
                    &format!("pol_{i}"),
                    &format!("P{i}"),
                    vec![cond("user.roles", "contains", json!(format!("role{i}")))],
                    &[("calendar", &["calendar.read"])],
                )
            })
            .collect();
        let decision = evaluate(&policies, &subject, &s[0], &scopes(&["calendar.read"]));
        let reason = &decision.dropped[0].reason;
        assert!(reason.contains("(pol_4)"), "{reason}");
        assert!(!reason.contains("(pol_5)"), "{reason}");
        assert!(reason.ends_with("; and 3 more"), "{reason}");

        // Long actual values are cut.
        let mut big = user();
        big.roles = (0..500).map(|i| format!("role-number-{i}")).collect();
        let subject = Subject {
            user: &big,
            client: &c,
        };
        let decision = evaluate(&policies[..1], &subject, &s[0], &scopes(&["calendar.read"]));
        let reason = &decision.dropped[0].reason;
        assert!(reason.len() < 600, "{reason}");
        assert!(reason.contains('…'), "{reason}");
    }

    #[test]
    fn unknown_requested_scope_is_dropped_and_explained() {
        let (u, c, s) = (user(), client(), servers());
        let subject = Subject {
            user: &u,
            client: &c,
        };
        let policies = vec![policy(
            "pol_1",
            "All",
            vec![],
            &[("calendar", &["calendar.read"])],
        )];
        let decision = evaluate(
            &policies,
            &subject,
            &s[0],
            &scopes(&["calendar.read", "bogus"]),
        );
        assert_eq!(decision.permitted, scopes(&["calendar.read"]));
        assert!(decision.dropped[0]
            .reason
            .contains("bogus is not a scope of MCP server calendar"));
    }

    #[test]
    fn explanation_mentions_matched_permitted_and_dropped() {
        let (u, c, s) = (user(), client(), servers());
        let subject = Subject {
            user: &u,
            client: &c,
        };
        let policies = vec![
            policy(
                "pol_1",
                "Engineers",
                vec![cond("user.roles", "contains", json!("engineer"))],
                &[("calendar", &["calendar.read"])],
            ),
            policy(
                "pol_2",
                "Admins",
                vec![cond("user.roles", "contains", json!("admin"))],
                &[("calendar", &["calendar.write"])],
            ),
        ];
        let decision = evaluate(
            &policies,
            &subject,
            &s[0],
            &scopes(&["calendar.read", "calendar.write"]),
        );
        let text = decision.explanation();
        assert!(
            text.starts_with(r#"matched: "Engineers" (pol_1); permitted: calendar.read; dropped: calendar.write ("#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"matching policies ("Engineers") do not allow calendar.write on calendar"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"policy "Admins" (pol_2)"#), "{text}");

        let empty = evaluate(&[], &subject, &s[0], &[]);
        assert_eq!(
            empty.explanation(),
            "matched: none; permitted: none; dropped: none"
        );
    }

    // --- validation ----------------------------------------------------------

    fn valid_draft() -> Value {
        json!({
            "name": "  Engineers  ",
            "description": "Engineers may read the calendar",
            "conditions": [
                {"key": "user.roles", "operator": "in", "value": ["engineer"]},
                {"key": "jwtClaims.org.unit", "operator": "equal", "value": "platform"}
            ],
            "grants": [
                {"mcp_server": "calendar", "scopes": ["calendar.read", "calendar.read", "calendar.write"]}
            ]
        })
    }

    /// `draft` with the value at `pointer` replaced, or added to its parent object.
    fn with(mut draft: Value, pointer: &str, value: Value) -> Value {
        if let Some(slot) = draft.pointer_mut(pointer) {
            *slot = value;
        } else {
            let (parent, field) = pointer.rsplit_once('/').unwrap();
            let parent = draft.pointer_mut(parent).unwrap().as_object_mut().unwrap();
            parent.insert(field.to_owned(), value);
        }
        draft
    }

    fn refused(draft: Value) -> PolicyError {
        validate(&draft, &servers()).unwrap_err()
    }

    #[test]
    fn validate_accepts_a_good_draft() {
        let spec = validate(&valid_draft(), &servers()).unwrap();
        assert_eq!(spec.name, "Engineers");
        assert_eq!(spec.description, "Engineers may read the calendar");
        assert_eq!(spec.conditions.len(), 2);
        assert_eq!(
            spec.conditions[1].key,
            ConditionKey::JwtClaim("org.unit".into())
        );
        assert_eq!(
            spec.grants,
            vec![Grant {
                mcp_server: "calendar".into(),
                connection: None,
                scopes: scopes(&["calendar.read", "calendar.write"]),
            }]
        );
        let policy = spec.clone().into_policy("pol_9".into(), 1234);
        assert_eq!(policy.id, "pol_9");
        assert_eq!(policy.created_at, 1234);
        assert_eq!(policy.name, spec.name);
        assert_eq!(policy.grants, spec.grants);

        // Conditions and description are optional: a policy for everyone.
        let minimal =
            json!({"name": "All", "grants": [{"mcp_server": "drive", "scopes": ["drive.read"]}]});
        let spec = validate(&minimal, &servers()).unwrap();
        assert!(spec.conditions.is_empty());
        assert_eq!(spec.description, "");
    }

    #[test]
    fn validate_refuses_malformed_drafts() {
        let cases = [
            (json!("not an object"), "must be a JSON object"),
            (
                with(valid_draft(), "/name", json!(7)),
                "`name` must be a string",
            ),
            (
                with(valid_draft(), "/conditions", json!({})),
                "`conditions` must be an array",
            ),
            (
                with(valid_draft(), "/conditions/0", json!("x")),
                "conditions[0] must be a JSON object",
            ),
            (
                with(valid_draft(), "/conditions/1/key", json!(1)),
                "conditions[1].key must be a string",
            ),
            (
                with(valid_draft(), "/grants/0/scopes", json!("calendar.read")),
                "grants[0].scopes must be an array",
            ),
            (
                with(valid_draft(), "/grants/0/scopes/1", json!(5)),
                "grants[0].scopes[1] must be a string",
            ),
            (
                with(valid_draft(), "/grants/0/mcp_server", json!(5)),
                "grants[0].mcp_server must be a string",
            ),
            (
                with(valid_draft(), "/extra", json!(1)),
                r#"unknown field "extra" in the policy"#,
            ),
            (
                with(valid_draft(), "/conditions/1/values", json!(1)),
                r#"unknown field "values" in conditions[1]"#,
            ),
            (
                with(valid_draft(), "/grants/0/scope", json!(1)),
                r#"unknown field "scope" in grants[0]"#,
            ),
        ];
        for (draft, expected) in cases {
            match refused(draft) {
                PolicyError::Malformed(message) => {
                    assert!(message.contains(expected), "{message:?} lacks {expected:?}")
                }
                other => panic!("expected Malformed({expected:?}), got {other:?}"),
            }
        }
    }

    #[test]
    fn validate_refuses_empty_names() {
        assert_eq!(
            refused(with(valid_draft(), "/name", json!("   "))),
            PolicyError::EmptyName
        );
        assert_eq!(
            refused(with(valid_draft(), "/name", Value::Null)),
            PolicyError::EmptyName
        );
        let mut draft = valid_draft();
        draft.as_object_mut().unwrap().remove("name");
        assert_eq!(refused(draft), PolicyError::EmptyName);
        assert_eq!(
            PolicyError::EmptyName.to_string(),
            "the policy needs a name"
        );
    }

    #[test]
    fn validate_refuses_unknown_keys_and_operators() {
        let err = refused(with(valid_draft(), "/conditions/1/key", json!("user.role")));
        assert_eq!(
            err,
            PolicyError::UnknownConditionKey {
                index: 1,
                key: "user.role".into()
            }
        );
        assert!(err
            .to_string()
            .starts_with(r#"conditions[1]: unknown condition key "user.role""#));
        assert_eq!(
            refused(with(
                valid_draft(),
                "/conditions/0/key",
                json!("jwtClaims.")
            )),
            PolicyError::UnknownConditionKey {
                index: 0,
                key: "jwtClaims.".into()
            }
        );

        let err = refused(with(
            valid_draft(),
            "/conditions/0/operator",
            json!("equals"),
        ));
        assert_eq!(
            err,
            PolicyError::UnknownOperator {
                index: 0,
                operator: "equals".into()
            }
        );
        assert!(err.to_string().contains(r#"unknown operator "equals""#));
    }

    #[test]
    fn validate_refuses_missing_and_mistyped_values() {
        let mut draft = valid_draft();
        draft["conditions"][0]
            .as_object_mut()
            .unwrap()
            .remove("value");
        let err = refused(draft);
        assert_eq!(
            err,
            PolicyError::MissingValue {
                index: 0,
                key: ConditionKey::UserRoles,
                operator: Operator::In
            }
        );
        assert_eq!(
            err.to_string(),
            "conditions[0]: `user.roles in` needs a value"
        );
        assert!(matches!(
            refused(with(valid_draft(), "/conditions/1/value", Value::Null)),
            PolicyError::MissingValue { index: 1, .. }
        ));

        let wrong = |operator: &str, value: Value| {
            let draft = with(valid_draft(), "/conditions/0/operator", json!(operator));
            refused(with(draft, "/conditions/0/value", value))
        };
        for (operator, value) in [
            ("in", json!("engineer")),
            ("in", json!([])),
            ("not_in", json!([{"a": 1}])),
            ("not_in", json!([null])),
            ("contains", json!(["engineer"])),
            ("contains", json!(3)),
            ("equal", json!({"a": 1})),
            ("not_equal", json!([1, 2])),
        ] {
            let op: Operator = operator.parse().unwrap();
            assert_eq!(
                wrong(operator, value.clone()),
                PolicyError::WrongValueType {
                    index: 0,
                    operator: op,
                    expected: op.expected_value()
                },
                "{operator} {value}"
            );
        }
        assert_eq!(
            wrong("in", json!("x")).to_string(),
            "conditions[0]: operator `in` needs a non-empty array of strings, numbers or booleans as its value"
        );
        // Accepted shapes.
        assert!(validate(
            &with(
                with(valid_draft(), "/conditions/0/operator", json!("not_in")),
                "/conditions/0/value",
                json!([1, true, "x"])
            ),
            &servers()
        )
        .is_ok());
        assert!(validate(
            &with(valid_draft(), "/conditions/1/value", json!(false)),
            &servers()
        )
        .is_ok());
    }

    #[test]
    fn validate_refuses_too_many_conditions() {
        let condition = json!({"key": "user.roles", "operator": "contains", "value": "x"});
        let ok = with(
            valid_draft(),
            "/conditions",
            Value::Array(vec![condition.clone(); MAX_CONDITIONS]),
        );
        assert!(validate(&ok, &servers()).is_ok());
        let too_many = with(
            valid_draft(),
            "/conditions",
            Value::Array(vec![condition; MAX_CONDITIONS + 1]),
        );
        let err = refused(too_many);
        assert_eq!(err, PolicyError::TooManyConditions { max: 64 });
        assert_eq!(err.to_string(), "a policy may have at most 64 conditions");
    }

    #[test]
    fn validate_refuses_bad_grants() {
        assert_eq!(
            refused(with(valid_draft(), "/grants", json!([]))),
            PolicyError::NoGrants
        );
        let mut draft = valid_draft();
        draft.as_object_mut().unwrap().remove("grants");
        assert_eq!(refused(draft), PolicyError::NoGrants);

        let two = with(
            valid_draft(),
            "/grants",
            json!([
                {"mcp_server": "calendar", "scopes": ["calendar.read"]},
                {"mcp_server": "mail", "scopes": ["mail.read"]}
            ]),
        );
        let err = refused(two);
        assert_eq!(
            err,
            PolicyError::UnknownMcpServer {
                index: 1,
                mcp_server: "mail".into()
            }
        );
        assert_eq!(err.to_string(), r#"grants[1]: unknown MCP server "mail""#);

        let err = refused(with(
            valid_draft(),
            "/grants/0/scopes/1",
            json!("drive.read"),
        ));
        assert_eq!(
            err,
            PolicyError::UnknownScope {
                index: 0,
                mcp_server: "calendar".into(),
                scope: "drive.read".into()
            }
        );
        assert_eq!(
            err.to_string(),
            r#"grants[0]: MCP server "calendar" has no scope "drive.read""#
        );

        let err = refused(with(valid_draft(), "/grants/0/scopes", json!([])));
        assert_eq!(
            err,
            PolicyError::NoScopes {
                index: 0,
                mcp_server: "calendar".into()
            }
        );
        assert_eq!(
            err.to_string(),
            r#"grants[0]: no scopes listed for MCP server "calendar""#
        );
    }

    #[test]
    fn validated_policy_evaluates() {
        let (u, c, s) = (user(), client(), servers());
        let subject = Subject {
            user: &u,
            client: &c,
        };
        let policy = validate(&valid_draft(), &s)
            .unwrap()
            .into_policy("pol_1".into(), 0);
        let decision = evaluate(
            std::slice::from_ref(&policy),
            &subject,
            &s[0],
            &scopes(&["calendar.write", "calendar.admin"]),
        );
        assert_eq!(decision.permitted, scopes(&["calendar.write"]));
        assert_eq!(decision.dropped[0].scope, "calendar.admin");
    }
}
