//! Validation of an administrator's policy draft, with precise errors.

use serde_json::{Map, Value};

use crate::model::McpServer;
use crate::policy::rules::{
    truncate, Condition, ConditionKey, Grant, KnownConnection, Operator, PolicySpec, KNOWN_KEYS,
    MAX_CONDITIONS, MAX_RENDERED,
};

// Validation

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
