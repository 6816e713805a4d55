//! Facts, variables and expectations.
//!
//! Every action records its observations as a JSON object (the *facts*).
//! Expectations from the scenario file are predicates over dotted paths into
//! those facts; their string values may use `${…}` variables drawn from the
//! target profile and the scenario's state.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Predicates over the facts a step recorded. Paths are dotted (`body.issuer`,
/// `www_authenticate.params.scope`); string values may use `${…}` variables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The HTTP status: one code, or a list of the codes a standard allows
    /// (`status = [400, 401]`; the step reports which one it saw).
    #[serde(default)]
    pub status: Option<OneOf<u16>>,
    /// For operations through the profile's recipes (admin, test mode):
    /// whether the answer was one the recipe calls success. Which status
    /// that is, is the target's own choice.
    #[serde(default)]
    pub ok: Option<bool>,
    /// The OAuth `error` code, wherever the action found it: one code, or a
    /// list of the codes a standard allows (the step reports which one it saw).
    #[serde(default)]
    pub error: Option<OneOf<String>>,
    /// For `authorize`: `code`, `error` (redirected with an error) or `not_redirected`.
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    pub present: Vec<String>,
    #[serde(default)]
    pub absent: Vec<String>,
    #[serde(default)]
    pub equals: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub not_equals: BTreeMap<String, toml::Value>,
    /// The array at the path contains the value, or the string contains the substring.
    #[serde(default)]
    pub contains: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub not_contains: BTreeMap<String, toml::Value>,
    /// Where a standard allows several answers: named alternatives, at least
    /// one of which must hold besides everything above (e.g. `narrowed` and
    /// `refused` for a scope beyond the client's, RFC 6749 §3.3 and §5.2).
    /// The step reports which one the server gave: the first, in the file's
    /// order, that holds.
    #[serde(default)]
    pub any_of: IndexMap<String, Expect>,
}

impl Expect {
    /// Whether the expectation allows several answers (`any_of`, or a status
    /// or error list): such an expectation needs a variant proof.
    pub fn offers_choice(&self) -> bool {
        !self.any_of.is_empty()
            || self.status.as_ref().is_some_and(OneOf::is_choice)
            || self.error.as_ref().is_some_and(OneOf::is_choice)
    }
}

/// One expected value, or a list of the values a standard allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOf<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: PartialEq + std::fmt::Display> OneOf<T> {
    fn values(&self) -> &[T] {
        match self {
            OneOf::One(v) => std::slice::from_ref(v),
            OneOf::Many(vs) => vs,
        }
    }

    /// Whether `got` is one of the allowed values.
    pub fn allows(&self, got: &T) -> bool {
        self.values().contains(got)
    }

    /// Whether the scenario gave a choice (more than one value).
    pub fn is_choice(&self) -> bool {
        self.values().len() > 1
    }

    /// `400`, or `one of 400, 401`, with `quote` around each value.
    fn describe(&self, quote: &str) -> String {
        let each = self
            .values()
            .iter()
            .map(|v| format!("{quote}{v}{quote}"))
            .collect::<Vec<_>>();
        if each.len() == 1 {
            each[0].clone()
        } else {
            format!("one of {}", each.join(", "))
        }
    }
}

impl<T> From<T> for OneOf<T> {
    fn from(value: T) -> Self {
        OneOf::One(value)
    }
}

/// Looks up a dotted path (`body.issuer`, `params.0`) in a JSON value.
pub fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(value, |v, segment| match v {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Replaces `${path}` with the variable's value; arrays become space-separated lists.
pub fn interpolate(text: &str, vars: &Value) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed variable in `{text}`"))?;
        let name = &after[..end];
        let value = lookup(vars, name).ok_or_else(|| format!("unknown variable `${{{name}}}`"))?;
        out.push_str(&render(value));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(render).collect::<Vec<_>>().join(" "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An expected value from the scenario file, with variables substituted at any depth.
fn expected(value: &toml::Value, vars: &Value) -> Result<Value, String> {
    match value {
        toml::Value::String(s) => Ok(Value::String(interpolate(s, vars)?)),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| expected(v, vars))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        toml::Value::Table(table) => table
            .iter()
            .map(|(k, v)| Ok((k.clone(), expected(v, vars)?)))
            .collect::<Result<_, String>>()
            .map(Value::Object),
        other => serde_json::to_value(other).map_err(|e| e.to_string()),
    }
}

fn show(value: Option<&Value>) -> String {
    match value {
        None => "nothing".into(),
        Some(v) => {
            let s = v.to_string();
            if s.len() > 200 {
                format!(
                    "{}…",
                    &s[..s.char_indices().nth(200).map(|(i, _)| i).unwrap_or(s.len())]
                )
            } else {
                s
            }
        }
    }
}

fn contains(haystack: Option<&Value>, needle: &Value) -> bool {
    match (haystack, needle) {
        (Some(Value::Array(items)), n) => items.contains(n),
        (Some(Value::String(s)), Value::String(n)) => s.contains(n.as_str()),
        _ => false,
    }
}

/// Evaluates every expectation; returns one message per unmet expectation.
pub fn evaluate(expect: &Expect, facts: &Value, vars: &Value) -> Result<Vec<String>, String> {
    let mut failures = Vec::new();
    if let Some(status) = &expect.status {
        let got = lookup(facts, "status");
        let seen = got
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok());
        if !seen.is_some_and(|s| status.allows(&s)) {
            failures.push(format!(
                "expected HTTP status {}, got {}",
                status.describe(""),
                show(got)
            ));
        }
    }
    if let Some(ok) = expect.ok {
        let got = lookup(facts, "ok");
        if got.and_then(Value::as_bool) != Some(ok) {
            let what = if ok { "success" } else { "a refusal" };
            failures.push(format!(
                "expected {what} (ok = {ok}), got ok = {} (HTTP status {})",
                show(got),
                show(lookup(facts, "status"))
            ));
        }
    }
    if let Some(error) = &expect.error {
        let got = lookup(facts, "error");
        if !got
            .and_then(Value::as_str)
            .is_some_and(|e| error.allows(&e.to_owned()))
        {
            failures.push(format!(
                "expected error {}, got {}",
                error.describe("`"),
                show(got)
            ));
        }
    }
    if let Some(outcome) = &expect.outcome {
        let got = lookup(facts, "outcome");
        if got.and_then(Value::as_str) != Some(outcome.as_str()) {
            failures.push(format!("expected outcome `{outcome}`, got {}", show(got)));
        }
    }
    for path in &expect.present {
        if lookup(facts, path).is_none_or(Value::is_null) {
            failures.push(format!("expected `{path}` to be present"));
        }
    }
    for path in &expect.absent {
        if let Some(v) = lookup(facts, path).filter(|v| !v.is_null()) {
            failures.push(format!(
                "expected `{path}` to be absent, got {}",
                show(Some(v))
            ));
        }
    }
    for (path, value) in &expect.equals {
        let want = expected(value, vars)?;
        let got = lookup(facts, path);
        if got != Some(&want) {
            failures.push(format!("expected `{path}` = {want}, got {}", show(got)));
        }
    }
    for (path, value) in &expect.not_equals {
        let want = expected(value, vars)?;
        let got = lookup(facts, path);
        if got == Some(&want) {
            failures.push(format!("expected `{path}` to differ from {want}"));
        }
    }
    for (path, value) in &expect.contains {
        let want = expected(value, vars)?;
        let got = lookup(facts, path);
        if !contains(got, &want) {
            failures.push(format!(
                "expected `{path}` to contain {want}, got {}",
                show(got)
            ));
        }
    }
    for (path, value) in &expect.not_contains {
        let want = expected(value, vars)?;
        let got = lookup(facts, path);
        if contains(got, &want) {
            failures.push(format!(
                "expected `{path}` not to contain {want}, got {}",
                show(got)
            ));
        }
    }
    if !expect.any_of.is_empty() && allowed_answer(expect, facts, vars)?.is_none() {
        let each = expect
            .any_of
            .iter()
            .map(|(name, alternative)| {
                evaluate(alternative, facts, vars)
                    .map(|unmet| format!("{name}: {}", unmet.join(", ")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        failures.push(format!(
            "expected one of the allowed answers, got none ({})",
            each.join("; ")
        ));
    }
    Ok(failures)
}

/// Which of the allowed answers the facts are, where the expectation allows
/// several: the first of `any_of`'s alternatives they meet (in the file's
/// order, by name), and the
/// status and error seen where `status` or `error` is a list (`status 400`,
/// `error invalid_client`), inside the alternative too (`refused: status 400`).
/// `None` when the expectation offers no choice or nothing allowed was seen.
pub fn allowed_answer(
    expect: &Expect,
    facts: &Value,
    vars: &Value,
) -> Result<Option<String>, String> {
    let mut parts = Vec::new();
    if !expect.any_of.is_empty() {
        let mut chosen = None;
        for (name, alternative) in &expect.any_of {
            if evaluate(alternative, facts, vars)?.is_empty() {
                chosen = Some(match allowed_answer(alternative, facts, vars)? {
                    Some(inner) => format!("{name}: {inner}"),
                    None => name.clone(),
                });
                break;
            }
        }
        match chosen {
            Some(chosen) => parts.push(chosen),
            None => return Ok(None),
        }
    }
    if let Some(status) = expect.status.as_ref().filter(|s| s.is_choice()) {
        match lookup(facts, "status").and_then(Value::as_u64) {
            Some(seen) if u16::try_from(seen).is_ok_and(|s| status.allows(&s)) => {
                parts.push(format!("status {seen}"))
            }
            _ => return Ok(None),
        }
    }
    if let Some(error) = expect.error.as_ref().filter(|e| e.is_choice()) {
        match lookup(facts, "error").and_then(Value::as_str) {
            Some(seen) if error.allows(&seen.to_owned()) => parts.push(format!("error {seen}")),
            _ => return Ok(None),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn interpolates_nested_paths_and_lists() {
        let vars = json!({"a": {"b": "x", "list": ["p", "q"]}});
        assert_eq!(interpolate("${a.b}/${a.list}", &vars).unwrap(), "x/p q");
        assert!(interpolate("${nope}", &vars).is_err());
    }

    #[test]
    fn reports_each_unmet_expectation() {
        let expect: Expect = toml::from_str(
            "status = 400\nerror = \"invalid_grant\"\ncontains = { \"body.list\" = \"S256\" }",
        )
        .unwrap();
        let ok = json!({"status": 400, "error": "invalid_grant", "body": {"list": ["S256"]}});
        assert!(evaluate(&expect, &ok, &json!({})).unwrap().is_empty());
        let bad = json!({"status": 200, "body": {"list": ["plain"]}});
        assert_eq!(evaluate(&expect, &bad, &json!({})).unwrap().len(), 3);
    }

    #[test]
    fn any_of_reports_the_first_alternative_in_the_files_order() {
        // Both hold; the file lists `too_many_requests` first, so it is the answer.
        let expect: Expect = toml::from_str(
            "[any_of.too_many_requests]\nstatus = 429\n[any_of.oauth_error]\npresent = [\"error\"]",
        )
        .unwrap();
        let facts = json!({ "status": 429, "error": "temporarily_unavailable" });
        assert_eq!(
            allowed_answer(&expect, &facts, &json!({}))
                .unwrap()
                .as_deref(),
            Some("too_many_requests")
        );
    }

    #[test]
    fn any_of_accepts_each_allowed_answer_and_names_it() {
        let expect: Expect = toml::from_str(
            "[any_of.refused]\nstatus = 400\nerror = \"invalid_scope\"\n[any_of.narrowed]\nstatus = 200\nnot_contains = { scope = \"w\" }",
        )
        .unwrap();
        let vars = json!({});
        let refused = json!({"status": 400, "error": "invalid_scope"});
        let narrowed = json!({"status": 200, "scope": "r"});
        let widened = json!({"status": 200, "scope": "r w"});
        for (facts, answer) in [(&refused, "refused"), (&narrowed, "narrowed")] {
            assert!(evaluate(&expect, facts, &vars).unwrap().is_empty());
            assert_eq!(
                allowed_answer(&expect, facts, &vars).unwrap().as_deref(),
                Some(answer)
            );
        }
        let unmet = evaluate(&expect, &widened, &vars).unwrap();
        assert_eq!(unmet.len(), 1, "{unmet:?}");
        assert!(unmet[0].contains("narrowed:") && unmet[0].contains("refused:"));
    }

    #[test]
    fn status_and_error_lists_accept_each_listed_value_and_name_it() {
        let expect: Expect =
            toml::from_str("status = [400, 401]\nerror = \"invalid_client\"").unwrap();
        let vars = json!({});
        for status in [400, 401] {
            let facts = json!({"status": status, "error": "invalid_client"});
            assert!(evaluate(&expect, &facts, &vars).unwrap().is_empty());
            assert_eq!(
                allowed_answer(&expect, &facts, &vars).unwrap(),
                Some(format!("status {status}"))
            );
        }
        let bad = json!({"status": 403, "error": "invalid_client"});
        let unmet = evaluate(&expect, &bad, &vars).unwrap();
        assert_eq!(unmet, ["expected HTTP status one of 400, 401, got 403"]);
        assert_eq!(allowed_answer(&expect, &bad, &vars).unwrap(), None);

        let errors: Expect =
            toml::from_str("error = [\"invalid_grant\", \"invalid_client\"]").unwrap();
        let facts = json!({"error": "invalid_client"});
        assert!(evaluate(&errors, &facts, &vars).unwrap().is_empty());
        assert_eq!(
            allowed_answer(&errors, &facts, &vars).unwrap().as_deref(),
            Some("error invalid_client")
        );
        let other = json!({"error": "invalid_request"});
        assert_eq!(
            evaluate(&errors, &other, &vars).unwrap(),
            ["expected error one of `invalid_grant`, `invalid_client`, got \"invalid_request\""]
        );
    }

    #[test]
    fn a_single_value_offers_no_choice_to_report() {
        let expect: Expect = toml::from_str("status = 401\nerror = \"invalid_client\"").unwrap();
        let facts = json!({"status": 401, "error": "invalid_client"});
        assert!(evaluate(&expect, &facts, &json!({})).unwrap().is_empty());
        assert_eq!(allowed_answer(&expect, &facts, &json!({})).unwrap(), None);
    }

    #[test]
    fn a_list_inside_an_alternative_is_reported_with_its_name() {
        let expect: Expect =
            toml::from_str("[any_of.refused]\nstatus = [400, 401]\n[any_of.issued]\nstatus = 200")
                .unwrap();
        let facts = json!({"status": 401});
        assert_eq!(
            allowed_answer(&expect, &facts, &json!({}))
                .unwrap()
                .as_deref(),
            Some("refused: status 401")
        );
    }
}
