//! Operations no standard defines, as HTTP recipes the target profile writes.
//!
//! The hub-model scenarios need things no RFC says how to do: create a
//! policy, decommission an agent, store a connection token, read the audit
//! trail, move the clock. Every hub has its own admin API for them, so the
//! harness never names one: it knows each operation by a domain word
//! ([`Operation`]) with fixed inputs and the outputs it relies on, and the
//! profile's `[operations.<name>]` says how the target does it ([`Recipe`]:
//! method, URL, headers, query, body, success statuses, JSON pointers to
//! read). A vendor with another admin API runs the same suite by writing
//! other recipes.
//!
//! This module is the format only: the table of operations, rendering a
//! recipe into a request, reading an answer, and the load-time checks. The
//! call itself is `operation.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How one target performs one operation: `[operations.<name>]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// URL template.
    pub url: String,
    /// Header templates by name; a header that renders empty is not sent.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Query parameter templates; a pair whose value renders empty is dropped.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// JSON body template, written as TOML.
    #[serde(default)]
    pub body: Option<toml::Value>,
    /// The statuses that mean success; any 2xx when empty.
    #[serde(default)]
    pub ok: Vec<u16>,
    /// Outputs by name: JSON pointers (RFC 6901) into the answer's body.
    #[serde(default)]
    pub read: BTreeMap<String, String>,
    /// Outputs of each item of the operation's list, by name: JSON pointers into the item.
    #[serde(default)]
    pub each: BTreeMap<String, String>,
}

/// What the harness knows of one operation: its inputs, and the outputs it reads.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    /// What it does, for documentation and errors.
    pub does: &'static str,
    /// The variables its recipe may use besides the profile's.
    pub inputs: &'static [&'static str],
    /// Outputs the harness needs: the recipe must `read` them.
    pub needs: &'static [&'static str],
    /// Outputs the harness uses when the recipe reads them.
    pub may_read: &'static [&'static str],
    /// The output that is a list, whose items `each` reads.
    pub list: Option<&'static str>,
    /// Outputs of each item the harness needs (`each`).
    pub each: &'static [&'static str],
}

macro_rules! operations {
    ($($variant:ident = $name:literal {
        does: $does:literal,
        inputs: [$($input:literal),*],
        needs: [$($need:literal),*],
        may_read: [$($may:literal),*],
        list: $list:expr,
        each: [$($each:literal),*],
    })*) => {
        /// Every operation the harness can ask of a target through a recipe.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Operation {
            $($variant,)*
        }

        impl Operation {
            /// Every operation, in documentation order.
            pub const ALL: &'static [Operation] = &[$(Operation::$variant,)*];

            /// Its inputs and outputs.
            pub fn spec(self) -> Spec {
                match self {
                    $(Operation::$variant => Spec {
                        name: $name,
                        does: $does,
                        inputs: &[$($input),*],
                        needs: &[$($need),*],
                        may_read: &[$($may),*],
                        list: $list,
                        each: &[$($each),*],
                    },)*
                }
            }
        }
    };
}

operations! {
    RotateKeys = "rotate_keys" {
        does: "Start signing with a new key, keeping the old one published.",
        inputs: [], needs: [], may_read: [], list: None, each: [],
    }
    AdvanceClock = "advance_clock" {
        does: "Move the target's clock forward by `seconds`.",
        inputs: ["seconds"], needs: [], may_read: [], list: None, each: [],
    }
    SetClock = "set_clock" {
        does: "Set the target's clock to `at` (seconds since the epoch).",
        inputs: ["at"], needs: [], may_read: [], list: None, each: [],
    }
    ResetClock = "reset_clock" {
        does: "Put the target's clock back to wall time (teardown).",
        inputs: [], needs: [], may_read: [], list: None, each: [],
    }
    AuditFailure = "audit_failure" {
        does: "Make every audit write fail (`fail` true) or work again (false).",
        inputs: ["fail"], needs: [], may_read: [], list: None, each: [],
    }
    TrustCimdOrigin = "trust_cimd_origin" {
        does: "Let the target fetch Client ID Metadata Documents from `origin` (the harness's loopback host).",
        inputs: ["origin"], needs: [], may_read: [], list: None, each: [],
    }
    DecidePending = "decide_pending" {
        does: "Sign `username` in and decide the pending authorization `request` (`decision` is approve or deny; `approve` the same as a boolean); `[user] mode = \"control\"`.",
        inputs: ["request", "username", "decision", "approve"], needs: ["redirect_to"], may_read: [], list: None, each: [],
    }
    AuditPosition = "audit_position" {
        does: "Where the audit trail stands now (a cursor for `read_audit`'s `after`).",
        inputs: [], needs: ["position"], may_read: [], list: None, each: [],
    }
    ReadAudit = "read_audit" {
        does: "Audit events, oldest first: after the cursor `after`, of one `type`, about one `client_id` (each empty when not filtered); `next` is the cursor of the next page.",
        inputs: ["after", "type", "client_id"], needs: ["events"], may_read: ["next"], list: None, each: [],
    }
    QueryAudit = "query_audit" {
        does: "The product's own audit query (an administrator's): events of one `type` about one `client_id`.",
        inputs: ["type", "client_id"], needs: ["events"], may_read: [], list: None, each: [],
    }
    RevokeConsent = "revoke_consent" {
        does: "Revoke `user`'s consent to the client `client_id`.",
        inputs: ["user", "client_id"], needs: [], may_read: [], list: None, each: [],
    }
    EnrolSecondFactor = "enrol_second_factor" {
        does: "Enrol a fresh TOTP authenticator (RFC 6238) for `user` (a username), replacing any earlier one: its base32 `secret`, and its `recovery_codes` (a list) when the product has them.",
        inputs: ["user"], needs: ["secret"], may_read: ["recovery_codes"], list: None, each: [],
    }
    ConfigureSso = "configure_sso" {
        does: "Have `tenant`'s users sign in through the OpenID Provider `issuer` (enterprise single sign-on) as client `client_id` with `client_secret`: users of the `email_domains` (a list) are sent there, and the ID token claim `groups_claim` maps through `role_mappings` (a list of `{group, roles}`) to their roles.",
        inputs: ["tenant", "issuer", "client_id", "client_secret", "email_domains", "groups_claim", "role_mappings"],
        needs: [], may_read: [], list: None, each: [],
    }
    CreatePolicy = "create_policy" {
        does: "Create the `policy` a scenario writes (the product model's policy, a JSON object); `id` names it for deletion.",
        inputs: ["policy"], needs: ["id"], may_read: [], list: None, each: [],
    }
    DeletePolicy = "delete_policy" {
        does: "Delete the policy `id`.",
        inputs: ["id"], needs: [], may_read: [], list: None, each: [],
    }
    CreateAgent = "create_agent" {
        does: "Create the `agent` a scenario writes (a JSON object); its `client_id` and generated `client_secret` let it act.",
        inputs: ["agent"], needs: ["client_id"], may_read: ["client_secret"], list: None, each: [],
    }
    DecommissionAgent = "decommission_agent" {
        does: "Decommission the agent `client_id`.",
        inputs: ["client_id"], needs: [], may_read: [], list: None, each: [],
    }
    ListAgents = "list_agents" {
        does: "The agents with the tag `tag` (every agent when empty); each with its `client_id`.",
        inputs: ["tag"], needs: ["agents"], may_read: [], list: Some("agents"), each: ["client_id"],
    }
    PutConnection = "put_connection" {
        does: "Create or replace the Connection `id` (`kind` is oauth2 or api_key); inputs without a value are null.",
        inputs: ["id", "name", "kind", "authorization_endpoint", "token_endpoint", "api_base_url", "client_id", "client_secret", "scopes", "allowed_clients"],
        needs: [], may_read: [], list: None, each: [],
    }
    GetConnection = "get_connection" {
        does: "The Connection `id`: its stored `tokens` (each with its `owner`) and its definition, read back to restore a replaced connection (the inputs of put_connection of the same names).",
        inputs: ["id"], needs: ["tokens"],
        may_read: ["name", "kind", "authorization_endpoint", "token_endpoint", "api_base_url", "client_id", "scopes", "allowed_clients"],
        list: Some("tokens"), each: ["owner"],
    }
    DeleteConnection = "delete_connection" {
        does: "Delete the Connection `id` and its tokens.",
        inputs: ["id"], needs: [], may_read: [], list: None, each: [],
    }
    StoreConnectionToken = "store_connection_token" {
        does: "Store a token of the Connection `id` for `owner` (`kind:id`, also split into `owner_kind` and `owner_id`): an OAuth token (`access_token`, `refresh_token`, `expires_in`, `scopes`) or an `api_key`; inputs without a value are null.",
        inputs: ["id", "owner", "owner_kind", "owner_id", "access_token", "refresh_token", "expires_in", "scopes", "api_key"],
        needs: [], may_read: [], list: None, each: [],
    }
    DeleteConnectionToken = "delete_connection_token" {
        does: "Delete the token of the Connection `id` stored for `owner` (`kind:id`, also `owner_kind` and `owner_id`).",
        inputs: ["id", "owner", "owner_kind", "owner_id"], needs: [], may_read: [], list: None, each: [],
    }
}

impl Operation {
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn by_name(name: &str) -> Option<Operation> {
        Operation::ALL.iter().copied().find(|op| op.name() == name)
    }

    /// Whether it exists for testing only (the clock, keys, audit-store
    /// failure, the harness's own reading of the trail) rather than being
    /// something the product's administrator does.
    pub fn is_test_mode(self) -> bool {
        matches!(
            self,
            Operation::RotateKeys
                | Operation::AdvanceClock
                | Operation::SetClock
                | Operation::ResetClock
                | Operation::AuditFailure
                | Operation::TrustCimdOrigin
                | Operation::DecidePending
                | Operation::AuditPosition
                | Operation::ReadAudit
        )
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The methods a recipe may use.
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

/// A recipe rendered for given inputs: the request to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: reqwest::Method,
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

/// What resolves `${name}`: the operation's inputs first, then the profile.
struct Scope<'a> {
    inputs: &'a Map<String, Value>,
    names: &'a [&'static str],
    profile: &'a Value,
}

impl Scope<'_> {
    /// The value of a variable; an input not given is null.
    fn get(&self, name: &str) -> Result<Value, String> {
        if self.names.contains(&name) {
            return Ok(self.inputs.get(name).cloned().unwrap_or(Value::Null));
        }
        match crate::expect::lookup(self.profile, name) {
            Some(value) if !value.is_null() => Ok(value.clone()),
            _ => Err(format!("unknown variable `${{{name}}}`")),
        }
    }

    fn is_input(&self, name: &str) -> bool {
        self.names.contains(&name)
    }
}

/// A value as text in a string: a string as is, null empty, a list
/// space-separated (as `${…}` renders everywhere in a profile), others as JSON.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items.iter().map(text_of).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

/// The `${…}` names in a template, in order.
pub fn variables(template: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed variable in `{template}`"))?;
        names.push(&after[..end]);
        rest = &after[end + 1..];
    }
    Ok(names)
}

/// A template with every `${…}` replaced; `encode` turns an input's text
/// into what the place takes (a URL path percent-encodes it).
fn fill(template: &str, scope: &Scope<'_>, encode: fn(&str) -> String) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    for name in variables(template)? {
        let marker = format!("${{{name}}}");
        let at = rest.find(&marker).unwrap_or(rest.len());
        out.push_str(&rest[..at]);
        let text = text_of(&scope.get(name)?);
        if scope.is_input(name) {
            out.push_str(&encode(&text));
        } else {
            out.push_str(&text);
        }
        rest = &rest[(at + marker.len()).min(rest.len())..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so an
/// input is one path segment whatever it holds.
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn as_is(text: &str) -> String {
    text.to_owned()
}

/// The body template with its variables: a string that is exactly
/// `${name}` becomes the variable's JSON value (a field or item whose value
/// is null is left out); other strings, and keys, get text.
fn body(template: &Value, scope: &Scope<'_>) -> Result<Option<Value>, String> {
    Ok(match template {
        Value::String(s) => match s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            Some(name) if !name.contains("${") && !name.contains('}') => {
                Some(scope.get(name)?).filter(|v| !v.is_null())
            }
            _ => Some(Value::String(fill(s, scope, as_is)?)),
        },
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.extend(body(item, scope)?);
            }
            Some(Value::Array(out))
        }
        Value::Object(fields) => {
            let mut out = Map::new();
            for (key, value) in fields {
                if let Some(value) = body(value, scope)? {
                    out.insert(fill(key, scope, as_is)?, value);
                }
            }
            Some(Value::Object(out))
        }
        other => Some(other.clone()),
    })
}

impl Recipe {
    /// The request for these inputs; `profile` is the profile as JSON, for
    /// `${…}` names that are not inputs.
    pub fn render(
        &self,
        operation: Operation,
        inputs: &Map<String, Value>,
        profile: &Value,
    ) -> Result<Request, String> {
        let spec = operation.spec();
        if let Some(unknown) = inputs.keys().find(|k| !spec.inputs.contains(&k.as_str())) {
            return Err(format!("`{unknown}` is not an input of {operation}"));
        }
        let scope = Scope {
            inputs,
            names: spec.inputs,
            profile,
        };
        let method = reqwest::Method::from_bytes(self.method.as_bytes())
            .map_err(|e| format!("method `{}`: {e}", self.method))?;
        let rendered = fill(&self.url, &scope, path_segment)?;
        let mut url = url::Url::parse(&rendered).map_err(|e| format!("url `{rendered}`: {e}"))?;
        let mut pairs = Vec::new();
        for (name, template) in &self.query {
            let value = fill(template, &scope, as_is)?;
            if !value.is_empty() {
                pairs.push((name, value));
            }
        }
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        let mut headers = Vec::new();
        for (name, template) in &self.headers {
            let value = fill(template, &scope, as_is)?;
            if !value.is_empty() {
                headers.push((name.clone(), value));
            }
        }
        let body = match &self.body {
            Some(template) => {
                let template = serde_json::to_value(template).map_err(|e| e.to_string())?;
                body(&template, &scope)?
            }
            None => None,
        };
        Ok(Request {
            method,
            url,
            headers,
            body,
        })
    }

    /// Whether `status` means success.
    pub fn succeeded(&self, status: u16) -> bool {
        if self.ok.is_empty() {
            (200..300).contains(&status)
        } else {
            self.ok.contains(&status)
        }
    }

    /// The outputs `read` names, from the answer's body (absent ones left out).
    pub fn outputs(&self, body: Option<&Value>) -> Map<String, Value> {
        pointed(&self.read, body)
    }

    /// The outputs of each item of `list` that `each` names.
    pub fn item_outputs(&self, list: Option<&Value>) -> Vec<Map<String, Value>> {
        list.and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .map(|item| pointed(&self.each, Some(item)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What is wrong with this recipe for `operation`, as (key, message)
    /// pairs; the key is relative to `[operations.<name>]`. `profile` is the
    /// profile as JSON, for `${…}` names that are not inputs.
    pub fn problems(&self, operation: Operation, profile: &Value) -> Vec<(String, String)> {
        let spec = operation.spec();
        let mut problems = Vec::new();
        if !METHODS.contains(&self.method.as_str()) {
            problems.push((
                "method".to_owned(),
                format!(
                    "`{}` is not a method a recipe can use ({})",
                    self.method,
                    METHODS.join(", ")
                ),
            ));
        }
        let mut templates: Vec<(String, String)> = vec![("url".into(), self.url.clone())];
        templates.extend(
            self.headers
                .iter()
                .map(|(k, v)| (format!("headers.{k}"), v.clone())),
        );
        templates.extend(
            self.query
                .iter()
                .map(|(k, v)| (format!("query.{k}"), v.clone())),
        );
        if let Some(template) = &self.body {
            body_strings(template, "body", &mut templates);
        }
        for (key, template) in &templates {
            let names = match variables(template) {
                Ok(names) => names,
                Err(e) => {
                    problems.push((key.clone(), e));
                    continue;
                }
            };
            for name in names {
                let known = spec.inputs.contains(&name)
                    || crate::expect::lookup(profile, name).is_some_and(|v| !v.is_null());
                if !known {
                    problems.push((
                        key.clone(),
                        format!(
                            "`${{{name}}}` is neither an input of {operation} ({}) nor a profile value",
                            list_or_none(spec.inputs)
                        ),
                    ));
                }
            }
        }
        if !self.url.contains("${") {
            if let Err(e) = url::Url::parse(&self.url) {
                problems.push(("url".into(), format!("`{}` is not a URL: {e}", self.url)));
            }
        }
        if let Some(bad) = self.ok.iter().find(|s| !(100..=599).contains(*s)) {
            problems.push(("ok".into(), format!("{bad} is not an HTTP status")));
        }
        let outputs: Vec<&str> = spec.needs.iter().chain(spec.may_read).copied().collect();
        for (section, names, known, needed) in [
            ("read", &self.read, outputs.as_slice(), spec.needs),
            ("each", &self.each, spec.each, spec.each),
        ] {
            for (name, pointer) in names {
                if !known.contains(&name.as_str()) {
                    problems.push((
                        format!("{section}.{name}"),
                        format!(
                            "{operation} has no output `{name}` (its {section} outputs: {})",
                            list_or_none(known)
                        ),
                    ));
                }
                if !is_pointer(pointer) {
                    problems.push((
                        format!("{section}.{name}"),
                        format!("`{pointer}` is not a JSON pointer (RFC 6901: empty, or `/` then segments, `~0` and `~1` escapes)"),
                    ));
                }
            }
            for name in needed.iter().filter(|n| !names.contains_key(**n)) {
                problems.push((
                    section.to_owned(),
                    format!("{operation} needs `{section}.{name}`: the harness reads it from the answer"),
                ));
            }
        }
        problems
    }
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Every string (and key) of a body template, with its key path.
fn body_strings(value: &toml::Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        toml::Value::String(s) => out.push((path.to_owned(), s.clone())),
        toml::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                body_strings(item, &format!("{path}[{i}]"), out);
            }
        }
        toml::Value::Table(table) => {
            for (key, item) in table {
                let path = format!("{path}.{key}");
                out.push((path.clone(), key.clone()));
                body_strings(item, &path, out);
            }
        }
        _ => {}
    }
}

/// An RFC 6901 JSON pointer: empty (the whole body), or `/`-separated
/// segments where `~` only starts `~0` or `~1`.
pub fn is_pointer(pointer: &str) -> bool {
    (pointer.is_empty() || pointer.starts_with('/'))
        && pointer
            .split('~')
            .skip(1)
            .all(|after| after.starts_with('0') || after.starts_with('1'))
}

fn pointed(pointers: &BTreeMap<String, String>, value: Option<&Value>) -> Map<String, Value> {
    pointers
        .iter()
        .filter_map(|(name, pointer)| {
            let found = value?.pointer(pointer)?;
            Some((name.clone(), found.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A recipe of another shape than the reference hub's: a PATCH with the
    /// id percent-encoded in the path, a query pair and a header that render
    /// empty (dropped), a key from inputs, fields that are the inputs' JSON
    /// values (left out when null), and pointers into a nested answer.
    #[test]
    fn renders_any_shape_and_reads_by_pointer() {
        let recipe: Recipe = toml::from_str(
            r#"
method = "PATCH"
url = "${api}/v2/tenants/${tenant}/vault/${id}"
headers = { x-api-key = "${secrets.key}", x-owner = "${owner}" }
query = { dry_run = "false", owner = "${owner}" }
body = { "${owner_kind}" = "${owner_id}", token = { value = "${access_token}", scopes = "${scopes}", ttl = "${expires_in}" }, refresh = "${refresh_token}", note = "for ${owner_id}: ${scopes}", list = ["${api_key}", "${owner_id}"] }
ok = [202]
"#,
        )
        .expect("a recipe");
        let profile = json!({"api": "https://api.example", "tenant": "acme corp", "secrets": {"key": "k-123"}});
        let op = Operation::StoreConnectionToken;
        assert!(recipe.problems(op, &profile).is_empty());
        let inputs = json!({"id": "conn/1", "owner": null, "owner_kind": "user", "owner_id": "alice",
            "access_token": "at-1", "scopes": ["a", "b"], "expires_in": 3600, "refresh_token": null});
        let inputs = inputs.as_object().cloned().unwrap_or_default();
        let request = recipe.render(op, &inputs, &profile).expect("renders");
        assert_eq!(request.method, reqwest::Method::PATCH);
        assert_eq!(
            request.url.as_str(),
            "https://api.example/v2/tenants/acme%20corp/vault/conn%2F1?dry_run=false"
        );
        assert_eq!(
            request.headers,
            [("x-api-key".to_owned(), "k-123".to_owned())]
        );
        assert_eq!(
            request.body,
            Some(json!({
                "user": "alice",
                "token": {"value": "at-1", "scopes": ["a", "b"], "ttl": 3600},
                "note": "for alice: a b",
                "list": ["alice"],
            }))
        );
        assert!(recipe.succeeded(202) && !recipe.succeeded(200));
        // An input the operation does not have is refused by name.
        let mut extra = inputs.clone();
        extra.insert("policy".into(), json!({}));
        assert!(recipe
            .render(op, &extra, &profile)
            .is_err_and(|e| e.contains("`policy` is not an input")));
        // For another operation the same names are neither inputs nor profile values.
        let problems = recipe.problems(Operation::CreatePolicy, &profile);
        assert!(problems
            .iter()
            .any(|(k, m)| k == "url" && m.contains("${id}")));

        let lister: Recipe = toml::from_str(
            "method = \"GET\"\nurl = \"https://h/q\"\nread = { agents = \"/data/0/the list\" }\neach = { client_id = \"/who/id\" }\n",
        )
        .expect("a recipe");
        assert!(lister.problems(Operation::ListAgents, &profile).is_empty());
        let answer = json!({"data": [{"the list": [{"who": {"id": "u1"}}, {}]}]});
        let outputs = lister.outputs(Some(&answer));
        let items = lister.item_outputs(outputs.get("agents"));
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].get("client_id"), Some(&json!("u1")));
        assert!(items[1].is_empty(), "absent, not null");
        assert!(lister.outputs(Some(&json!({}))).is_empty());
    }

    #[test]
    fn checks_methods_pointers_and_needed_outputs() {
        let recipe: Recipe = toml::from_str(
            "method = \"FETCH\"\nurl = \"${base}/p\"\nread = { id = \"data/id\" }\n",
        )
        .expect("a recipe");
        let problems = recipe.problems(Operation::CreatePolicy, &json!({"base": "http://h"}));
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["method", "read.id"]);
        let problems = recipe.problems(Operation::CreateAgent, &json!({}));
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["method", "url", "read.id", "read.id", "read"]);
        assert!(is_pointer("") && is_pointer("/a~0b/~1c/0") && !is_pointer("/a~2"));
    }

    #[test]
    fn every_operation_is_named_once() {
        let mut names: Vec<&str> = Operation::ALL.iter().map(|op| op.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Operation::ALL.len());
        for op in Operation::ALL {
            assert_eq!(Operation::by_name(op.name()), Some(*op));
            let spec = op.spec();
            assert_eq!(spec.list.is_some(), !spec.each.is_empty(), "{op}");
        }
    }
}
