//! Performing an operation: the profile's recipe for it, rendered, sent on
//! the back channel and read by its pointers.
//!
//! Every call the harness makes to a target's non-standard APIs (admin,
//! test mode, audit trail) goes through [`perform`], so none of them names a
//! path or a body field of any hub: those are the profile's (`recipe.rs`).

use serde_json::{json, Map, Value};

use crate::http::{Http, TransportError};
use crate::profile::Profile;
use crate::recipe::{Operation, Recipe};

/// Why an operation produced no answer to judge.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    /// The profile has no recipe for it: the step does not apply to this target.
    #[error("the profile has no recipe for operation {0} ([operations.{0}])")]
    Undeclared(Operation),
    #[error("{0}")]
    Transport(#[from] TransportError),
    /// The recipe cannot be rendered for these inputs.
    #[error("operation {operation}: {message}")]
    Recipe {
        operation: Operation,
        message: String,
    },
    /// The target answered with something the recipe does not describe.
    #[error("{0}")]
    Unexpected(String),
}

/// The target's answer to one operation.
#[derive(Debug, Clone)]
pub struct Answer {
    pub operation: Operation,
    pub method: String,
    /// The URL the request went to.
    pub url: String,
    pub status: u16,
    /// Whether the status is one the recipe calls success.
    pub ok: bool,
    pub body: Option<Value>,
    pub text: String,
    /// What the recipe's `read` pointers found.
    pub outputs: Map<String, Value>,
    /// What its `each` pointers found in every item of the operation's list.
    pub items: Vec<Map<String, Value>>,
}

/// How much of a body an error quotes.
const QUOTE: usize = 300;

impl Answer {
    /// The facts every operation step shows scenarios.
    pub fn facts(&self) -> Value {
        json!({"status": self.status, "ok": self.ok, "body": self.body, "text": self.text})
    }

    pub fn output(&self, name: &str) -> Option<&Value> {
        self.outputs.get(name).filter(|v| !v.is_null())
    }

    /// An output the harness cannot do without: its absence is an error
    /// quoting the exchange.
    pub fn need(&self, name: &str) -> Result<&Value, OperationError> {
        self.output(name)
            .ok_or_else(|| self.unexpected(&format!("nothing at its `read.{name}` pointer")))
    }

    /// The same for a success: an answer outside `ok` is an error too.
    pub fn need_ok(&self, name: &str) -> Result<&Value, OperationError> {
        if !self.ok {
            return Err(self.unexpected("a status its recipe's `ok` does not list"));
        }
        self.need(name)
    }

    /// An error that quotes the exchange: what was sent, what came back.
    pub fn unexpected(&self, what: &str) -> OperationError {
        let mut quoted: String = self.text.chars().take(QUOTE).collect();
        if self.text.chars().count() > QUOTE {
            quoted.push('…');
        }
        OperationError::Unexpected(format!(
            "operation {}: {} {} answered {} {quoted}: {what}",
            self.operation, self.method, self.url, self.status
        ))
    }
}

/// The recipe the profile has for `operation`.
pub fn recipe(profile: &Profile, operation: Operation) -> Result<&Recipe, OperationError> {
    profile
        .operations
        .get(operation.name())
        .ok_or(OperationError::Undeclared(operation))
}

/// Performs `operation` with `inputs` (a JSON object of its inputs; one not
/// given is null) on `http`, which records the exchange. `vars` is the
/// profile as variables ([`Profile::vars`]), which a caller performing many
/// operations works out once.
pub async fn perform(
    http: &Http,
    profile: &Profile,
    vars: &Value,
    operation: Operation,
    inputs: Value,
) -> Result<Answer, OperationError> {
    let recipe = recipe(profile, operation)?;
    let inputs = match inputs {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => {
            return Err(OperationError::Recipe {
                operation,
                message: format!("inputs must be an object, not {other}"),
            })
        }
    };
    let request = recipe
        .render(operation, &inputs, vars)
        .map_err(|message| OperationError::Recipe { operation, message })?;
    let mut builder = http.request(request.method.clone(), request.url.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    if let Some(body) = &request.body {
        builder = builder.json(body);
    }
    let response = http.send_operation(builder, operation.name()).await?;
    let body = response.json();
    let outputs = recipe.outputs(body.as_ref());
    let items = match operation.spec().list {
        Some(list) => recipe.item_outputs(outputs.get(list)),
        None => Vec::new(),
    };
    Ok(Answer {
        operation,
        method: request.method.to_string(),
        url: request.url.to_string(),
        status: response.status,
        ok: recipe.succeeded(response.status),
        text: response.text(),
        body,
        outputs,
        items,
    })
}

/// An owner as the harness names it (`kind:id`), from an output that is
/// that string already or an object of one field (`{"user": "alice"}`).
pub fn owner_name(owner: &Value) -> Option<String> {
    match owner {
        Value::String(s) => Some(s.clone()),
        Value::Object(fields) if fields.len() == 1 => {
            let (kind, id) = fields.iter().next()?;
            Some(format!("{kind}:{}", id.as_str()?))
        }
        _ => None,
    }
}
