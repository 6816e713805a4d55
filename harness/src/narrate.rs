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

/// Who acts in a step, what the step shows, and where that comes from.
#[derive(Debug, Clone, Copy)]
pub struct ActionInfo {
    /// The party the harness plays (a lane of the sequence diagrams).
    pub actor: &'static str,
    pub shows: &'static str,
    /// The spec section (or the hub's contract) the step's behaviour comes from.
    pub spec: &'static str,
    /// Its address: a URL, or a path in this repository (`docs/…`).
    pub url: &'static str,
}

const MCP_AUTH: &str =
    "https://modelcontextprotocol.io/specification/2025-11-25/basic/authorization";

/// The explanation table: one entry per scenario action.
pub fn action_info(action: &str) -> ActionInfo {
    let info = |actor, shows, spec, url| ActionInfo {
        actor,
        shows,
        spec,
        url,
    };
    match action {
        "fetch_as_metadata" => info(
            "MCP client",
            "The MCP client discovers the authorization server: it inserts /.well-known/oauth-authorization-server into the issuer URL and reads the metadata (endpoints, grant types, PKCE methods). The issuer in the document must be exactly the one it was fetched for.",
            "RFC 8414 §3",
            "https://www.rfc-editor.org/rfc/rfc8414#section-3",
        ),
        "fetch_resource_metadata" => info(
            "MCP client",
            "The MCP client asks the MCP server which authorization server protects it: the Protected Resource Metadata names the resource exactly and lists its authorization_servers and scopes.",
            "RFC 9728 §3",
            "https://www.rfc-editor.org/rfc/rfc9728#section-3",
        ),
        "call_resource" => info(
            "MCP client",
            "The MCP client calls the protected MCP server. Without a valid token the answer is 401 with a WWW-Authenticate Bearer challenge whose resource_metadata points at the Protected Resource Metadata; a token for another server, or without the tool's scope, is refused too (403 insufficient_scope).",
            "RFC 6750 §3, RFC 9728 §5.1",
            "https://www.rfc-editor.org/rfc/rfc6750#section-3",
        ),
        "register" => info(
            "MCP client",
            "The MCP client registers itself by Dynamic Client Registration: it posts its metadata (name, redirect URIs) and gets a client_id back. A public client gets no secret: PKCE protects its codes instead.",
            "RFC 7591 §3",
            "https://www.rfc-editor.org/rfc/rfc7591#section-3",
        ),
        "register_burst" => info(
            "MCP client",
            "Registrations in a row from one source address: open registration is budgeted per source, and beyond the budget the hub answers 429 Too Many Requests with Retry-After.",
            "RFC 6585 §4",
            "https://www.rfc-editor.org/rfc/rfc6585#section-4",
        ),
        "authorize" => info(
            "user (browser)",
            "The user's browser follows the MCP client's authorization request (response_type=code, a PKCE S256 code_challenge, state, and the resource the token is for), signs in and answers the per-scope consent page. Only scopes the user's policies allow are offered; the hub redirects back with a code, the state and its iss.",
            "draft-ietf-oauth-v2-1-13 §4.1.1",
            "https://datatracker.ietf.org/doc/html/draft-ietf-oauth-v2-1-13#section-4.1.1",
        ),
        "token" => info(
            "MCP client",
            "The MCP client redeems the code at the token endpoint with its PKCE code_verifier and the resource it wants a token for. The access token is a JWT whose aud is that resource and whose scope is what the user granted and policy allows.",
            "RFC 6749 §4.1.3, RFC 7636 §4.5",
            "https://www.rfc-editor.org/rfc/rfc6749#section-4.1.3",
        ),
        "validate_token" => info(
            "resource server",
            "The resource server validates the access token as an RFC 9068 JWT: the signature against the hub's JWKS, typ at+jwt, iss, aud equal to its own URL, and exp.",
            "RFC 9068 §4",
            "https://www.rfc-editor.org/rfc/rfc9068#section-4",
        ),
        "refresh" => info(
            "MCP client",
            "The MCP client trades its refresh token for a new access token. A public client's refresh token is rotated, a reused one revokes the family, and the scope can only shrink.",
            "RFC 6749 §6",
            "https://www.rfc-editor.org/rfc/rfc6749#section-6",
        ),
        "revoke" => info(
            "MCP client",
            "The client revokes one of its tokens; from then on it must not work.",
            "RFC 7009 §2.1",
            "https://www.rfc-editor.org/rfc/rfc7009#section-2.1",
        ),
        "introspect" => info(
            "resource server",
            "A resource server asks the hub whether a token is still active, and for whom.",
            "RFC 7662 §2",
            "https://www.rfc-editor.org/rfc/rfc7662#section-2",
        ),
        "host_client_metadata" | "cimd_fetch_count" | "listen_for_ssrf" | "ssrf_connections" => info(
            "CIMD host",
            "The client's identity is an https URL serving its metadata document (a Client ID Metadata Document): the hub fetches it, with SSRF guards, instead of a registration. The harness hosts the document and counts what the hub fetched.",
            "draft-ietf-oauth-client-id-metadata-document-01 §4",
            "https://datatracker.ietf.org/doc/html/draft-ietf-oauth-client-id-metadata-document-01#section-4",
        ),
        "revoke_consent" => info(
            "admin",
            "The administrator revokes a user's consent to a client through the hub's admin API; its refresh tokens go with it, and the next authorization asks the user again.",
            "the hub's admin API",
            "docs/admin-api.md",
        ),
        "jwt_bearer" => info(
            "agent",
            "An autonomous agent presents a JWT it signed with its registered key as the authorization grant, and gets a token for itself with no user.",
            "RFC 7523 §2.1",
            "https://www.rfc-editor.org/rfc/rfc7523#section-2.1",
        ),
        "rotate_keys" | "advance_clock" | "set_clock" | "audit_failure" => info(
            "test driver",
            "The test driver changes the hub through its control API (test mode only): it rotates the signing key, moves the hub's clock, or makes the audit store fail, so that time and failure can be checked without waiting.",
            "the hub's control API",
            "docs/control-api.md",
        ),
        "client_credentials" => info(
            "agent",
            "An autonomous agent authenticates with its own credentials (a client secret or a private_key_jwt assertion) and gets a token for itself, with no user. Its configuration decides the resource and scopes; its conditions (source address ranges, UTC time windows) decide whether it gets one at all.",
            "RFC 6749 §4.4",
            "https://www.rfc-editor.org/rfc/rfc6749#section-4.4",
        ),
        "create_policy" | "delete_policy" => info(
            "admin",
            "The administrator creates or deletes a policy: conditions on the user and client, and the MCP servers (or connections) and scopes it grants. Policies apply from the very next request, and with no matching policy there is no scope.",
            "Product model: MCP Server Policies",
            "docs/product-model.md#mcp-server-policies",
        ),
        "create_agent" | "decommission_agent" | "list_agents" => info(
            "admin",
            "The administrator manages autonomous agents: created just in time with tags, an owner, allowed resources and scopes, and conditions; decommissioning one revokes its tokens at once.",
            "Product model: Autonomous agents",
            "docs/product-model.md#autonomous-agents",
        ),
        "token_exchange" => info(
            "agent",
            "An agent exchanges the user's access token (the subject_token) for one of its own: the user stays the sub, the agent is named in the act claim, and the scope can only narrow.",
            "RFC 8693 §2.1, §4.1",
            "https://www.rfc-editor.org/rfc/rfc8693#section-2.1",
        ),
        "audit_events" => info(
            "audit reader",
            "The audit trail is read back: every registration, consent, policy decision, token and tool call is an event with the user, client and resource, correlated per flow, and never a secret.",
            "Product model: Audit",
            "docs/product-model.md#audit",
        ),
        "create_connection" | "get_connection" => info(
            "admin",
            "The administrator defines (or inspects) a Connection: a third-party provider, its OAuth endpoints, client and scopes, and who may retrieve its tokens. The admin API shows the status of the stored tokens, never their values.",
            "Connections contract",
            "docs/connections.md",
        ),
        "store_connection_token" => info(
            "admin",
            "A provider token is stored in the vault for an owner (a user, a tenant or an agent), sealed with AES-256-GCM.",
            "Connections contract",
            "docs/connections.md",
        ),
        "connection_token" => info(
            "MCP server / agent",
            "An MCP server (or an agent) asks the hub's vault for a connection's token by token exchange: the subject token says for whom, resource=urn:hub:connection:<id> names the connection. Connections Policies decide for users, allowed_clients for agents; an expired token is refreshed at the provider first.",
            "RFC 8693 §2.1; Connections contract: Retrieval",
            "docs/connections.md#retrieval-token-exchange-rfc-8693",
        ),
        "provider_mode" | "provider_log" => info(
            "provider",
            "The harness plays the third-party provider: here it is told how to answer, or says what it saw (the refresh tokens presented and the bearer tokens its API received).",
            "Connections contract: Refresh",
            "docs/connections.md#refresh",
        ),
        "connect" => info(
            "user (browser)",
            "The user connects the provider in the browser: the hub acts as the provider's OAuth client (authorization code with PKCE S256 and a single-use state) and seals the tokens it gets.",
            "Connections contract: Connecting a user in a browser",
            "docs/connections.md#connecting-a-user-in-a-browser",
        ),
        "mcp_tool" => info(
            "MCP client",
            "The MCP client calls a tool over Streamable HTTP (initialize, then tools/call) with its access token. The MCP server checks the token's audience and the tool's scope, takes the user's provider token from the hub's vault, and never passes the client's token upstream.",
            "MCP 2025-11-25 authorization §Access Token Privilege Restriction",
            "https://modelcontextprotocol.io/specification/2025-11-25/basic/authorization#access-token-privilege-restriction",
        ),
        _ => info(
            "harness",
            "A step of the scenario.",
            "MCP 2025-11-25 authorization",
            MCP_AUTH,
        ),
    }
}

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

fn action_of(step: &crate::scenario::Step) -> String {
    serde_json::to_value(&step.action)
        .ok()
        .and_then(|v| v.get("do").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

fn spec_line(spec: &str, url: &str) -> String {
    if url.starts_with("http") {
        format!("{spec} <{url}>")
    } else {
        format!("{spec} ({url} in this repository)")
    }
}

/// Narrates one scenario against `profile`; true when it passed.
async fn narrate_scenario(
    profile: &Profile,
    scenario: &Scenario,
    strict: bool,
    pause: bool,
    seen: &mut Seen,
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    let rule = "━".repeat(WIDTH.min(72));
    writeln!(out, "{rule}")?;
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
    let mark = crate::audit::mark(&run.http, profile).await;
    let _ = run.http.take_transcript();
    let violation = violation_status(scenario.level, strict);
    let total = scenario.steps.len();
    let mut verdict = Status::Pass;
    let mut reason = None;
    for (i, step) in scenario.steps.iter().enumerate() {
        let action = action_of(step);
        let info = action_info(&action);
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
        transcript.redact(&run.secrets);
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
            .for_each(|m| crate::http::scrub(m, &run.secrets));
        match result.status {
            Status::Pass => writeln!(out, "  ✓ as required")?,
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
    let audit = teardown_and_check_audit(&mut run, profile, scenario, mark).await;
    writeln!(
        out,
        "Audit trail: {} ({} events read, {} expected from what the scenario did)",
        audit.status.as_str().to_uppercase(),
        audit.events_read,
        audit.events_expected
    )?;
    for m in &audit.messages {
        let mut m = m.clone();
        crate::http::scrub(&mut m, &run.secrets);
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
    Ok(matches!(verdict, Status::Pass | Status::Warn))
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
        Target::Embedded { faults } => {
            let target = crate::embedded::start(&config.fixtures_dir, faults).await?;
            (target.profile.clone(), Some(target))
        }
        Target::Profile(path) => (Profile::load(path, None)?, None),
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
            Target::Embedded { faults } if !faults.is_empty() =>
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
        let passed = narrate_scenario(&profile, scenario, config.strict, pause, &mut seen, out)
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
