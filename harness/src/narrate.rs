//! `conform --narrate`: one scenario, or a named walkthrough of several, run
//! step by step against a target and told as it happens. For every HTTP
//! exchange: the method, URL and key parameters, the status, the decoded
//! claims of the tokens it carried (secrets redacted, never a token); for
//! every step, what it shows and which spec section it comes from.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde_json::Value;

use crate::engine::{run_step, teardown_and_check_audit, violation_status};
use crate::error::HarnessError;
use crate::profile::Profile;
use crate::scenario::Scenario;
use crate::steps::Run;
use crate::transcript::{mask_jwts, Recorded};
use crate::verdict::Status;
use crate::{RunConfig, Target};

/// How long one step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Width paragraphs are wrapped to.
const WIDTH: usize = 84;

pub use crate::steps::ActionInfo;

/// A named walkthrough: scenarios in order, each with why it is there.
#[derive(Debug, Clone, Copy)]
pub struct Walkthrough {
    pub name: &'static str,
    pub summary: &'static str,
    pub parts: &'static [(&'static str, &'static str)],
}

pub const WALKTHROUGHS: &[Walkthrough] = &[
    Walkthrough {
        name: "delegated-agent",
        summary: "An MCP client acting for a user: discovery, dynamic registration, consent, a policy-filtered token, an agent acting on the user's behalf, and a tool call through the vault.",
        parts: &[
            ("prm.document", "Discovery: from the MCP server's 401 challenge to its Protected Resource Metadata to the authorization server's metadata."),
            ("dcr.register-public-client", "Dynamic Client Registration: the MCP client gets a client_id, no secret."),
            ("consent.user-declines-one", "Consent: the user unticks a scope on the consent page, and the token leaves it out."),
            ("policy.partial-request", "Policy: a request policies permit only in part is filtered to what they allow."),
            ("exchange.act-present", "Delegation: an agent exchanges the user's token for one that names it in act."),
            ("connection.agenda-vault-token", "A tool call through the vault: the Agenda MCP server uses the user's provider token from the hub, never the client's token."),
        ],
    },
    Walkthrough {
        name: "autonomous-agent",
        summary: "An agent acting as itself: client_credentials, the conditions it runs under (source address and time of day), a connection token from the vault, and the audit trail.",
        parts: &[
            ("cc.token-bound", "client_credentials: a token for the agent itself, bound to its resource."),
            ("agent.source-range", "Conditions: an agent allowed only from 127.0.0.1 is refused from 127.0.0.2."),
            ("agent.time-window", "Conditions: an agent allowed on weekdays 09:00-17:00 UTC is refused at 18:00."),
            ("connection.agent-allowed-without-policy", "A connection token: the agent listed in allowed_clients retrieves its own provider token."),
            ("connection.audit-token-issued", "Audit: handing out the connection token is in the trail, with the connection as resource and no token value."),
        ],
    },
];

/// The scenarios a name stands for: a walkthrough, a scenario id, or a glob of ids.
pub fn resolve(
    all: Vec<Scenario>,
    name: &str,
) -> Result<(Option<&'static Walkthrough>, Vec<Scenario>), HarnessError> {
    if let Some(w) = WALKTHROUGHS.iter().find(|w| w.name == name) {
        let mut chosen = Vec::new();
        for (id, _) in w.parts {
            let s = all
                .iter()
                .find(|s| s.id == *id)
                .ok_or_else(|| HarnessError::NoMatch(format!("{id} (walkthrough {name})")))?;
            chosen.push(s.clone());
        }
        return Ok((Some(w), chosen));
    }
    if let Some(s) = all.iter().find(|s| s.id == name) {
        return Ok((None, vec![s.clone()]));
    }
    crate::scenario::filter(all, name).map(|s| (None, s))
}

fn wrap(text: &str, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > WIDTH {
            out.push_str(indent);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(indent);
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Parameter names whose values are always secrets, whatever the run saw.
fn secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "code" | "token" | "password" | "assertion" | "api_key" | "csrf" | "csrf_token"
    ) || n.ends_with("_token") && n != "token_type"
        || n.contains("secret")
        || n.contains("password")
        || n.contains("verifier")
        || n.contains("assertion")
}

fn shown_value(name: &str, value: &str) -> String {
    let plain = matches!(value, "true" | "false" | "null" | "[redacted]" | "");
    if secret_name(name) && !plain {
        return "[redacted]".into();
    }
    let value = mask_jwts(value);
    let chars: Vec<char> = value.chars().collect();
    if chars.len() > 72 {
        format!("{}…", chars[..71].iter().collect::<String>())
    } else {
        value
    }
}

fn pairs_line(label: &str, pairs: impl Iterator<Item = (String, String)>) -> Option<String> {
    let shown: Vec<(String, String)> = pairs
        .map(|(k, v)| (k.clone(), shown_value(&k, &v)))
        .collect();
    if shown.is_empty() {
        return None;
    }
    let inline: Vec<String> = shown.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let inline = inline.join("  ");
    if label.len() + inline.chars().count() + 8 <= WIDTH {
        return Some(format!("      {label}: {inline}\n"));
    }
    // Too long for a line: one parameter per line, aligned.
    let width = shown.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = format!("      {label}:\n");
    for (k, v) in shown {
        out.push_str(&format!("        {k:<width$}  {v}\n"));
    }
    Some(out)
}

/// A JSON body's top-level fields, short values only.
fn json_line(label: &str, body: &Value) -> Option<String> {
    let map = body.as_object()?;
    let pairs = map.iter().map(|(k, v)| {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Array(items) if items.iter().all(|i| !i.is_object()) => {
                let list: Vec<String> = items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned).unwrap_or(i.to_string()))
                    .collect();
                format!("[{}]", list.join(" "))
            }
            Value::Array(_) | Value::Object(_) => v.to_string(),
            other => other.to_string(),
        };
        (k.clone(), text)
    });
    pairs_line(label, pairs)
}

/// The events of an audit query, one line each (newest last, at most five).
fn audit_events(body: &Value) -> String {
    let Some(events) = body.get("events").and_then(Value::as_array) else {
        return String::new();
    };
    let mut out = String::new();
    let skip = events.len().saturating_sub(5);
    if skip > 0 {
        out.push_str(&format!("      … {skip} earlier event(s)\n"));
    }
    for e in &events[skip..] {
        let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
        let line = format!(
            "event {} · {} · client {} · resource {} · {}",
            field("type"),
            field("outcome"),
            field("client_id"),
            field("resource"),
            field("reason")
        );
        out.push_str(&wrap(&mask_jwts(&line), "      "));
    }
    out
}

fn html_title(body: &str) -> Option<String> {
    let start = body.find("<title>")? + "<title>".len();
    let end = body[start..].find("</title>")? + start;
    Some(body[start..end].trim().to_owned())
}

fn header<'e>(headers: &'e [(String, String)], name: &str) -> Option<&'e str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn url_and_query(raw: &str) -> (String, Vec<(String, String)>) {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            let query: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            u.set_query(None);
            (u.to_string(), query)
        }
        Err(_) => (raw.to_owned(), Vec::new()),
    }
}

/// Responses already shown in full (URL and body), so repeats are one line.
pub type Seen = std::collections::HashSet<(String, String)>;

/// What one exchange said, for people: already redacted by the transcript.
/// A response body already in `seen` for the same URL is not repeated.
pub fn describe(recorded: &Recorded, seen: &mut Seen) -> String {
    let e = &recorded.exchange;
    let mut out = String::new();
    let (url, query) = url_and_query(&e.url);
    out.push_str(&format!("  → {} {}\n", e.method, url));
    out.extend(pairs_line("query", query.into_iter()));
    if let Some(auth) = header(&e.request_headers, "authorization") {
        let scheme = auth.split(' ').next().unwrap_or_default();
        out.push_str(&format!("      authorization: {scheme} [redacted]\n"));
    }
    if let Some(body) = &e.request_body {
        let content_type = header(&e.request_headers, "content-type").unwrap_or_default();
        if let Ok(json) = serde_json::from_str::<Value>(body) {
            out.extend(json_line("json", &json));
        } else if content_type.contains("x-www-form-urlencoded") || body.contains('=') {
            out.extend(pairs_line(
                "form",
                url::form_urlencoded::parse(body.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned())),
            ));
        } else {
            out.push_str(&format!("      body: {} bytes\n", body.len()));
        }
    }
    match e.status {
        None => out.push_str(&format!(
            "  ← no response: {}\n",
            e.transport_error.as_deref().unwrap_or("transport error")
        )),
        Some(status) => {
            let reason = reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or_default();
            out.push_str(&format!("  ← {status} {reason}\n"));
            if let Some(location) = header(&e.response_headers, "location") {
                let (to, query) = url_and_query(location);
                out.push_str(&format!("      location: {to}\n"));
                out.extend(pairs_line("location query", query.into_iter()));
            }
            if let Some(challenge) = header(&e.response_headers, "www-authenticate") {
                out.push_str(&format!(
                    "      www-authenticate: {}\n",
                    mask_jwts(challenge)
                ));
            }
            if let Some(cache) = header(&e.response_headers, "cache-control") {
                out.push_str(&format!("      cache-control: {cache}\n"));
            }
            if let Some(body) = &e.response_body {
                // Documents fetched again (metadata, JWKS) are shown once.
                let again = e.method == "GET" && !seen.insert((e.url.clone(), body.clone()));
                if again {
                    out.push_str("      body: the same as the last time it was shown\n");
                } else if let Ok(json) = serde_json::from_str::<Value>(body) {
                    match json_line("json", &json) {
                        Some(line) => out.push_str(&line),
                        None => out.push_str(&format!(
                            "      json: {}\n",
                            shown_value("json", &json.to_string())
                        )),
                    }
                    out.push_str(&audit_events(&json));
                } else if let Some(title) = html_title(body) {
                    out.push_str(&format!("      html page: “{}”\n", mask_jwts(&title)));
                } else {
                    out.push_str(&format!("      body: {} bytes\n", body.len()));
                }
            }
        }
    }
    for token in &recorded.tokens {
        out.push_str(&format!(
            "      token in {} (decoded, unverified; the token itself is never shown):\n",
            token.place
        ));
        out.push_str(&claims_block(&token.claims, "        "));
    }
    out
}

fn claims_block(claims: &Value, indent: &str) -> String {
    let Some(map) = claims.as_object() else {
        return format!("{indent}{claims}\n");
    };
    let width = map.keys().map(String::len).max().unwrap_or(0);
    let iat = map.get("iat").and_then(Value::as_i64);
    let mut out = String::new();
    for (k, v) in map {
        let mut text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if let (Some(iat), "exp", Some(exp)) = (iat, k.as_str(), v.as_i64()) {
            text.push_str(&format!("  (iat + {} s)", exp - iat));
        }
        out.push_str(&format!("{indent}{k:<width$}  {}\n", mask_jwts(&text)));
    }
    out
}

fn spec_line(spec: &str, url: &str) -> String {
    if url.starts_with("http") {
        format!("{spec} <{url}>")
    } else {
        format!("{spec} ({url} in this repository)")
    }
}

/// Narrates one scenario against `profile`, judged by `revision` (whose
/// words it quotes and whose wire its MCP client speaks); true when it
/// passed.
async fn narrate_scenario(
    profile: &Profile,
    scenario: &Scenario,
    revision: crate::revision::Revision,
    strict: bool,
    pause: bool,
    seen: &mut Seen,
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    let rule = "━".repeat(WIDTH.min(72));
    writeln!(out, "{rule}")?;
    let scenario = &match scenario.under(revision) {
        Ok(resolved) => resolved,
        Err(why) => {
            writeln!(
                out,
                "{} [{}]\n\nSKIP: {why}",
                scenario.id,
                scenario.level.as_str()
            )?;
            return Ok(true);
        }
    };
    writeln!(
        out,
        "{} [{}]\n{}",
        scenario.id,
        scenario.level.as_str(),
        wrap(&scenario.title, "").trim_end()
    )?;
    writeln!(out, "\nThe requirement:")?;
    for r in &scenario.refs {
        writeln!(out, "  {}", spec_line(&r.id, &r.url))?;
        write!(out, "{}", wrap(&format!("“{}”", r.quote), "    "))?;
    }
    for capability in &scenario.requires {
        if profile.capabilities.has(capability) != Some(true) {
            writeln!(
                out,
                "\nSKIP: the target does not declare the `{capability}` capability."
            )?;
            return Ok(true);
        }
    }
    writeln!(out)?;

    let mut run = Run::new(profile);
    run.revision = revision;
    let mark = crate::audit::mark(&run.http, profile).await;
    let _ = run.http.take_transcript();
    let violation = violation_status(scenario.level, strict);
    let total = scenario.steps.len();
    let mut verdict = Status::Pass;
    let mut reason = None;
    for (i, step) in scenario.steps.iter().enumerate() {
        let action = step.action.name();
        let info = step.action.info();
        writeln!(
            out,
            "── step {}/{total} · {action} · {}{}",
            i + 1,
            info.actor,
            if step.setup { " · setup" } else { "" }
        )?;
        write!(out, "{}", wrap(info.shows, "  "))?;
        writeln!(out, "  Spec: {}", spec_line(info.spec, info.url))?;
        if !step.setup {
            let refs: Vec<&str> = scenario.refs.iter().map(|r| r.id.as_str()).collect();
            writeln!(
                out,
                "  This step checks the requirement: {}",
                refs.join("; ")
            )?;
        }
        out.flush()?;
        let result =
            match tokio::time::timeout(STEP_TIMEOUT, run_step(&mut run, i + 1, step, violation))
                .await
            {
                Ok(result) => result,
                Err(_) => {
                    writeln!(
                        out,
                        "  ✗ ERROR: the step did not finish within {}s",
                        STEP_TIMEOUT.as_secs()
                    )?;
                    verdict = Status::Error;
                    break;
                }
            };
        let mut transcript = result.transcript.clone();
        transcript.redact(&run.evidence.secrets);
        for recorded in &transcript.exchanges {
            write!(out, "{}", describe(recorded, seen))?;
        }
        if transcript.omitted > 0 {
            writeln!(out, "  … and {} more exchanges", transcript.omitted)?;
        }
        if transcript.exchanges.is_empty() && result.status != Status::Skip {
            writeln!(out, "  (no HTTP exchange: the harness's own party acted)")?;
        }
        let mut messages = result.messages.clone();
        messages
            .iter_mut()
            .for_each(|m| crate::http::scrub(m, &run.evidence.secrets));
        match result.status {
            Status::Pass => writeln!(out, "  ✓ as required")?,
            Status::Skip if result.undeclared => {
                writeln!(out, "  – skipped: {}", messages.join("; "))?;
                verdict = Status::Skip;
                reason = Some(format!("step {} ({action})", i + 1));
                break;
            }
            Status::Skip => writeln!(out, "  – skipped: {}", messages.join("; "))?,
            other => {
                writeln!(
                    out,
                    "  ✗ {}: {}",
                    other.as_str().to_uppercase(),
                    mask_jwts(&messages.join("; "))
                )?;
                verdict = other;
                reason = Some(format!("step {} ({action})", i + 1));
                break;
            }
        }
        writeln!(out)?;
        if pause && i + 1 < total {
            wait_for_enter(out).await?;
        }
    }
    let audit = teardown_and_check_audit(&mut run, profile, mark).await;
    writeln!(
        out,
        "Audit trail: {} ({} events read, {} expected from what the scenario did)",
        audit.status.as_str().to_uppercase(),
        audit.events_read,
        audit.events_expected
    )?;
    for m in &audit.messages {
        let mut m = m.clone();
        crate::http::scrub(&mut m, &run.evidence.secrets);
        write!(out, "{}", wrap(&mask_jwts(&m), "  · "))?;
    }
    if audit.status == Status::Fail && verdict == Status::Pass {
        verdict = Status::Fail;
        reason = Some("the audit trail".into());
    }
    writeln!(
        out,
        "Verdict: {}{}\n",
        verdict.as_str().to_uppercase(),
        reason.map(|r| format!(" at {r}")).unwrap_or_default()
    )?;
    Ok(matches!(
        verdict,
        Status::Pass | Status::Warn | Status::Info
    ))
}

/// Waits for Enter when stdin is a terminal; never blocks otherwise.
async fn wait_for_enter(out: &mut dyn Write) -> std::io::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Ok(());
    }
    write!(out, "  [Enter for the next step] ")?;
    out.flush()?;
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)
    })
    .await;
    Ok(())
}

/// Runs `name` (a walkthrough, a scenario id or a glob) step by step against
/// the configured target, narrating to `out`; true when everything passed.
pub async fn run(
    config: &RunConfig,
    name: &str,
    pause: bool,
    out: &mut dyn Write,
) -> Result<bool, HarnessError> {
    let all = crate::scenario::load_dir(&config.scenarios_dir)?;
    let (walkthrough, chosen) = resolve(all, name)?;
    let (mut profile, embedded) = match &config.target {
        Target::Embedded { faults, variants } => {
            let target = crate::embedded::start(&config.fixtures_dir, faults, variants).await?;
            (target.profile.clone(), Some(target))
        }
        Target::Profile(path) => (Profile::load(path, config.base.as_deref())?, None),
    };
    crate::audit::start_collector(&mut profile)
        .await
        .map_err(HarnessError::AuditCollector)?;
    let io = |e: std::io::Error| HarnessError::Report {
        path: "<stdout>".into(),
        message: e.to_string(),
    };
    writeln!(
        out,
        "Target: {} (issuer {}){}",
        profile.name,
        profile.issuer,
        match &config.target {
            Target::Embedded { faults, .. } if !faults.is_empty() =>
                format!(", with the fault(s) {}", faults.join(", ")),
            _ => String::new(),
        }
    )
    .map_err(io)?;
    if let Some(w) = walkthrough {
        writeln!(out, "\nWalkthrough `{}`", w.name).map_err(io)?;
        write!(out, "{}", wrap(w.summary, "")).map_err(io)?;
        for (i, (id, why)) in w.parts.iter().enumerate() {
            write!(out, "{}", wrap(&format!("{}. {id}: {why}", i + 1), "  ")).map_err(io)?;
        }
    }
    writeln!(out).map_err(io)?;
    let mut all_passed = true;
    let mut seen = Seen::new();
    let revision = match config.spec {
        Some(crate::revision::SpecChoice::One(revision)) => revision,
        _ => profile.spec.unwrap_or(crate::revision::Revision::LATEST),
    };
    for (i, scenario) in chosen.iter().enumerate() {
        if let Some(w) = walkthrough {
            let part = format!(
                "Part {}/{} of `{}`: {}",
                i + 1,
                chosen.len(),
                w.name,
                w.parts[i].1
            );
            write!(out, "{}", wrap(&part, "")).map_err(io)?;
        }
        let passed = narrate_scenario(
            &profile,
            scenario,
            revision,
            config.strict,
            pause,
            &mut seen,
            out,
        )
        .await
        .map_err(io)?;
        all_passed &= passed;
        if pause && i + 1 < chosen.len() {
            wait_for_enter(out).await.map_err(io)?;
        }
    }
    if let Some(target) = embedded {
        target.stop().await;
    }
    Ok(all_passed)
}
