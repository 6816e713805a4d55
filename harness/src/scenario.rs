//! Scenario files: one requirement each, with its spec references, level,
//! the steps that exercise it and the expectations that decide it.
//! The format is documented in `scenarios/README.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::HarnessError;
pub use crate::provider::TokenMode;
use crate::verdict::Level;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Stable id, `<group>.<name>`; the file lives at `scenarios/<group>/<name>.toml`.
    pub id: String,
    pub title: String,
    pub level: Level,
    /// Where the requirement comes from, quoted.
    pub refs: Vec<SpecRef>,
    /// Capabilities the target must have (see the profile's `[capabilities]`).
    #[serde(default)]
    pub requires: Vec<String>,
    /// Reference-hub faults this scenario must catch (the sensitivity test proves it).
    pub catches: Vec<String>,
    pub steps: Vec<Step>,
    /// Where the file was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

impl Scenario {
    /// Scenarios that move the target's clock, rotate its keys or change its
    /// policies must not share a target with others.
    /// A policy that only grants connections this scenario created affects
    /// nothing else, so it may run alongside others.
    pub fn exclusive(&self) -> bool {
        let global_policy = |name: &str| {
            self.steps
                .iter()
                .find_map(|s| match &s.action {
                    Action::CreatePolicy { name: n, policy } if n == name => Some(policy),
                    _ => None,
                })
                .is_none_or(|policy| !grants_only_connections(policy))
        };
        self.steps.iter().any(|s| match &s.action {
            Action::AdvanceClock { .. }
            | Action::SetClock { .. }
            | Action::AuditFailure { .. }
            | Action::RotateKeys => true,
            Action::CreatePolicy { name, .. } | Action::DeletePolicy { name } => {
                global_policy(name)
            }
            Action::CreateConnection { agenda, .. } => *agenda,
            _ => false,
        })
    }
}

/// Whether every grant of a policy names a connection this scenario created
/// (`${conn.…}`), never an MCP server or a connection others use.
fn grants_only_connections(policy: &toml::Value) -> bool {
    policy
        .get("grants")
        .and_then(toml::Value::as_array)
        .is_some_and(|grants| {
            !grants.is_empty()
                && grants.iter().all(|g| {
                    g.get("mcp_server").is_none()
                        && g.get("connection")
                            .and_then(toml::Value::as_str)
                            .is_some_and(|c| c.starts_with("${conn."))
                })
        })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecRef {
    /// e.g. `RFC 7636 §4.6`.
    pub id: String,
    pub url: String,
    /// The requirement, one line, verbatim.
    pub quote: String,
}

/// One action by one of the parties the harness plays, and what must follow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    #[serde(flatten)]
    pub action: Action,
    /// A setup step only prepares the check: its failure is an `error`, not a `fail`.
    #[serde(default)]
    pub setup: bool,
    /// Run the step only when these profile values hold (e.g. `{ "policy.partial" = "block" }`),
    /// so one scenario checks whichever behaviour the target declares.
    #[serde(default)]
    pub when: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub expect: Expect,
}

/// What the harness does. Each action records facts (a JSON object) that
/// expectations are evaluated against; the facts are listed in scenarios/README.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Action {
    /// MCP client: fetch Authorization Server Metadata by path insertion (RFC 8414 §3.1),
    /// for the profile's issuer or, with `from_prm`, for the first authorization
    /// server the last Protected Resource Metadata named (MCP discovery).
    FetchAsMetadata {
        #[serde(default)]
        from_prm: bool,
    },
    /// MCP client: call a protected resource, with no token or with the last token.
    CallResource {
        #[serde(default = "primary")]
        resource: String,
        #[serde(default)]
        with_token: bool,
        /// Call this tool (JSON-RPC `tools/call`) instead of `initialize`.
        #[serde(default)]
        tool: Option<String>,
    },
    /// MCP client: fetch Protected Resource Metadata, from the last challenge's
    /// `resource_metadata` or by path insertion (RFC 9728 §3.1).
    FetchResourceMetadata {
        #[serde(default = "primary")]
        resource: String,
    },
    /// MCP client: register through DCR (RFC 7591). Extra fields are sent as metadata.
    Register {
        /// Name under which later steps refer to this client.
        #[serde(default = "self_name", rename = "as")]
        name: String,
        #[serde(default)]
        redirect_uris: Option<Vec<String>>,
        /// Instead of `redirect_uris`: this many distinct loopback callback URIs (a hostile registration).
        #[serde(default)]
        redirect_uri_count: Option<u32>,
        #[serde(default)]
        metadata: BTreeMap<String, toml::Value>,
    },
    /// MCP client: register up to `count` times in a row, stopping at the first
    /// refusal. From 127.0.0.2 when the target is on loopback, so the budget of
    /// the harness's ordinary address is untouched.
    RegisterBurst { count: u32 },
    /// MCP client and user: authorization request, login and consent.
    Authorize {
        #[serde(default = "self_name")]
        client: String,
        #[serde(default)]
        pkce: Pkce,
        /// Redirect URI to present; the registered one by default.
        #[serde(default)]
        redirect_uri: Option<String>,
        /// Resource to request: a role name, a URL, or `omit`.
        #[serde(default = "primary")]
        resource: String,
        #[serde(default)]
        scope: Option<String>,
        #[serde(default)]
        deny: bool,
        /// Log in as this user of the profile's `[users]` instead of `[user]`.
        #[serde(default)]
        user: Option<String>,
        /// Untick these scopes on the consent page (the user declines them).
        #[serde(default)]
        uncheck: Vec<String>,
        /// Build the request with the oauth2 crate (the happy path) instead of by hand.
        #[serde(default)]
        oauth2_crate: bool,
    },
    /// MCP client: redeem the last authorization code.
    Token {
        #[serde(default = "self_name")]
        client: String,
        #[serde(default)]
        verifier: Verifier,
        #[serde(default)]
        redirect_uri: Option<String>,
        /// Resource to name in the token request: a role, a URL, or `omit`.
        #[serde(default = "primary")]
        resource: String,
        #[serde(default)]
        oauth2_crate: bool,
        /// How the client authenticates: `none` (a public client) or
        /// `private_key_jwt` (with the key of its hosted metadata document).
        #[serde(default)]
        auth: ClientAuth,
    },
    /// Resource server: validate the last access token as an RFC 9068 JWT.
    ValidateToken {
        #[serde(default = "primary")]
        resource: String,
    },
    /// MCP client: use a refresh token (RFC 6749 §6).
    Refresh {
        #[serde(default = "self_name")]
        client: String,
        /// `latest` (the newest refresh token) or `previous` (the one before it).
        #[serde(default)]
        token: RefreshPick,
        #[serde(default)]
        scope: Option<String>,
        /// Resource to name: a role, a URL, or `omit`.
        #[serde(default = "primary")]
        resource: String,
    },
    /// MCP client: revoke its latest access or refresh token (RFC 7009).
    Revoke {
        #[serde(default = "self_name")]
        client: String,
        token: TokenKind,
    },
    /// Resource server: introspect the latest access or refresh token (RFC 7662),
    /// authenticating as a pre-registered client of the profile.
    Introspect {
        #[serde(default = "introspector")]
        client: String,
        token: TokenKind,
    },
    /// CIMD host: serve a Client ID Metadata Document on loopback, tell the target
    /// (through its control API) to trust that origin, and use the document's URL
    /// as the client_id of the client named `as`.
    HostClientMetadata {
        #[serde(default = "self_name", rename = "as")]
        name: String,
        #[serde(default)]
        variant: CimdVariant,
        /// Serve with `Cache-Control: max-age=N`.
        #[serde(default)]
        max_age: Option<u32>,
        /// Answer the first fetch with HTTP 500.
        #[serde(default)]
        fail_first: bool,
    },
    /// CIMD host: how many times the target fetched the document of client `as`.
    CimdFetchCount {
        #[serde(default = "self_name", rename = "as")]
        name: String,
    },
    /// SSRF probe: listen on an untrusted loopback address (127.0.0.2) and make
    /// client `as` an https client_id URL pointing there. Nothing should connect.
    ListenForSsrf {
        #[serde(default = "self_name", rename = "as")]
        name: String,
    },
    /// SSRF probe: how many connections the probe listener accepted.
    SsrfConnections,
    /// Admin: revoke the profile user's consent to client `client` (the profile's `[admin]` API).
    RevokeConsent {
        #[serde(default = "self_name")]
        client: String,
    },
    /// Autonomous agent: the JWT bearer authorization grant (RFC 7523 §2.1),
    /// signed with the key of a pre-registered `private_key_jwt` client.
    JwtBearer {
        #[serde(default = "keyed_agent")]
        client: String,
        #[serde(default)]
        scope: Option<String>,
        #[serde(default)]
        assertion: AssertionVariant,
    },
    /// Test driver: rotate the target's signing key through its control API.
    RotateKeys,
    /// Test driver: move the target's clock forward through its control API.
    AdvanceClock { seconds: u32 },
    /// Test driver: make the target's audit store fail (or work again) through
    /// its control API; makes the scenario exclusive, and teardown restores it.
    AuditFailure { fail: bool },
    /// Test driver: set the target's clock to a moment (seconds since the epoch), for a known weekday and hour.
    SetClock { at: i64 },
    /// Autonomous agent: client_credentials with a pre-registered client.
    ClientCredentials {
        #[serde(default = "agent")]
        client: String,
        #[serde(default)]
        scope: Option<String>,
        /// Send this secret instead of the configured one.
        #[serde(default)]
        wrong_secret: bool,
        /// For a private_key_jwt client: what is wrong with the assertion, if anything.
        #[serde(default)]
        assertion: AssertionVariant,
        /// Send from this local address (e.g. `127.0.0.2`) when the target is on loopback.
        #[serde(default)]
        source: Option<String>,
        /// Ask for this resource (a role or URL) instead of the client's configured one.
        #[serde(default)]
        resource: Option<String>,
    },
    /// Admin: create a policy (the admin API's JSON shape, written as TOML) and
    /// remember its id under `as`. Makes the scenario exclusive; teardown deletes it.
    CreatePolicy {
        #[serde(default = "self_name", rename = "as")]
        name: String,
        policy: toml::Value,
    },
    /// Admin: delete a policy created earlier in the scenario.
    DeletePolicy {
        #[serde(default = "self_name")]
        name: String,
    },
    /// Admin: create an agent (the admin API's JSON shape); later steps use it as
    /// a client role named `as` (its generated secret is kept by the harness).
    CreateAgent {
        #[serde(rename = "as")]
        name: String,
        agent: toml::Value,
    },
    /// Admin: decommission an agent created earlier in the scenario.
    DecommissionAgent { name: String },
    /// Admin: list agents, optionally with one tag.
    ListAgents {
        #[serde(default)]
        tag: Option<String>,
    },
    /// Agent: exchange the latest access token (RFC 8693) for one of its own.
    TokenExchange {
        #[serde(default = "agent")]
        client: String,
        #[serde(default)]
        scope: Option<String>,
        /// A role or URL; the subject token's audience when absent.
        #[serde(default)]
        resource: Option<String>,
    },
    /// Audit collector: events of one type through the control API, newest last.
    AuditEvents {
        #[serde(rename = "type")]
        event_type: String,
        /// Only events about this client (a registered name or a profile role).
        #[serde(default)]
        client: Option<String>,
        /// Read through the `[admin]` API (the product's) instead of `[control]`.
        #[serde(default)]
        via_admin: bool,
        /// Only events whose `resource` is this (e.g. `urn:hub:connection:${conn.self.id}`).
        #[serde(default)]
        resource: Option<String>,
    },
    /// Admin: create (or replace) a Connection through the admin API, pointing
    /// at this scenario's third-party provider (started on first use). Its id
    /// is fresh (`conform-<as>-<random>`) unless `agenda`, which replaces the
    /// profile's `connections.agenda_connection` and makes the scenario exclusive.
    CreateConnection {
        #[serde(default = "self_name", rename = "as")]
        name: String,
        #[serde(default)]
        kind: ConnectionKind,
        #[serde(default = "calendar_scopes")]
        scopes: Vec<String>,
        /// Client ids (`${clients.agent.client_id}`) of the agents that may retrieve its tokens.
        #[serde(default)]
        allowed_clients: Vec<String>,
        #[serde(default)]
        agenda: bool,
        /// Fields sent instead of the generated ones (e.g. a malformed `token_endpoint`).
        #[serde(default)]
        set: BTreeMap<String, toml::Value>,
    },
    /// Admin: store a token for an owner (`user:<name>`, `tenant:<id>`,
    /// `agent:<client_id>`) through the admin API: one the provider issued
    /// (with a refresh token unless `refresh_token = false`), or a fresh API key.
    StoreConnectionToken {
        #[serde(default = "self_name")]
        connection: String,
        owner: String,
        /// Seconds until it expires (`0`: already expired).
        #[serde(default = "hour")]
        expires_in: u64,
        /// Send no expiry at all (the target cannot know when it expires).
        #[serde(default)]
        no_expiry: bool,
        /// The scopes the provider grants and the target is told (the connection's by default).
        #[serde(default)]
        scopes: Option<Vec<String>>,
        #[serde(default = "yes")]
        refresh_token: bool,
    },
    /// Agent or MCP server: retrieve a connection's token by token exchange
    /// (RFC 8693) with the latest access token as the subject, authenticated
    /// as `client`; `concurrent` identical requests at once.
    ConnectionToken {
        #[serde(default = "self_name")]
        connection: String,
        #[serde(default = "agenda_rs")]
        client: String,
        #[serde(default)]
        scope: Option<String>,
        #[serde(default = "one")]
        concurrent: u32,
    },
    /// Third-party provider: how its token endpoint answers from now on, and
    /// the lifetime of the tokens it issues there.
    ProviderMode {
        #[serde(default)]
        token: TokenMode,
        #[serde(default = "hour")]
        expires_in: u64,
    },
    /// Third-party provider: what it has seen (token requests, refresh tokens
    /// presented, API calls and the bearer tokens they carried).
    ProviderLog,
    /// Admin: a connection as the admin API shows it, with its tokens' status.
    GetConnection {
        #[serde(default = "self_name")]
        connection: String,
        /// The owner (`agent:<client_id>`, `tenant:<id>`, `user:<id>`, as the
        /// admin API names it) whose token view becomes the `token` fact.
        #[serde(default)]
        owner: Option<String>,
    },
    /// User: connect a connection in a browser (log in at the target, approve
    /// at the provider, come back to the target's callback); with
    /// `forge_state`, come back with a state the target never issued.
    Connect {
        #[serde(default = "self_name")]
        connection: String,
        #[serde(default)]
        user: Option<String>,
        #[serde(default)]
        forge_state: bool,
    },
    /// MCP client: call a tool of a protected MCP server through Streamable
    /// HTTP (initialize, notifications/initialized, tools/call) with the latest access token.
    McpTool {
        #[serde(default = "agenda")]
        resource: String,
        tool: String,
        #[serde(default)]
        arguments: BTreeMap<String, toml::Value>,
    },
}

/// What kind of credential a Connection holds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionKind {
    #[default]
    Oauth2,
    ApiKey,
}

fn calendar_scopes() -> Vec<String> {
    vec!["calendar.read".into(), "calendar.write".into()]
}
fn hour() -> u64 {
    3600
}
fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn agenda_rs() -> String {
    "agenda_rs".into()
}
fn agenda() -> String {
    "agenda".into()
}

/// How a private_key_jwt assertion (RFC 7523 §2.2) is built.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AssertionVariant {
    /// Fresh, for the token endpoint, valid for a minute.
    #[default]
    Valid,
    /// Sent again, exactly as the previous one.
    Replay,
    /// Addressed to another server.
    WrongAudience,
    /// Expired two minutes ago.
    Expired,
    /// Signed, then one signature byte changed.
    BadSignature,
}

/// How a `token` step authenticates the client.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    #[default]
    None,
    PrivateKeyJwt,
}

fn primary() -> String {
    "primary".into()
}
fn self_name() -> String {
    "self".into()
}
fn introspector() -> String {
    "introspector".into()
}
fn agent() -> String {
    "agent".into()
}
fn keyed_agent() -> String {
    "keyed_agent".into()
}

/// How the authorization request carries PKCE.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Pkce {
    #[default]
    S256,
    Plain,
    None,
}

/// What is wrong with a hosted client metadata document, if anything.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CimdVariant {
    #[default]
    Valid,
    /// `client_id` differs from the document's URL.
    ClientIdMismatch,
    /// Over 5 KiB.
    Oversize,
    /// Declares `client_secret_basic`.
    SharedSecret,
    /// The URL answers 302 to another URL that serves a valid document.
    Redirect,
    /// Declares `private_key_jwt` with a `jwks_uri` the host also serves (CIMD §6.2).
    PrivateKeyJwt,
}

/// Which of the run's tokens an action uses.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Access,
    Refresh,
}

/// Which refresh token a `refresh` step presents.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RefreshPick {
    #[default]
    Latest,
    Previous,
}

/// Which code_verifier the token request sends.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verifier {
    #[default]
    Correct,
    Wrong,
    Omit,
}

/// Predicates over the facts a step recorded. Paths are dotted (`body.issuer`,
/// `www_authenticate.params.scope`); string values may use `${…}` variables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub status: Option<u16>,
    /// The OAuth `error` code, wherever the action found it.
    #[serde(default)]
    pub error: Option<String>,
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
}

impl Scenario {
    pub fn group(&self) -> &str {
        self.id.split('.').next().unwrap_or(&self.id)
    }
}

/// Reads every `*.toml` under `dir/<group>/`, sorted by id.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, HarnessError> {
    let mut scenarios = Vec::new();
    let groups = std::fs::read_dir(dir).map_err(|source| HarnessError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for group in groups.filter_map(Result::ok).filter(|e| e.path().is_dir()) {
        let files = std::fs::read_dir(group.path()).map_err(|source| HarnessError::Read {
            path: group.path(),
            source,
        })?;
        for file in files.filter_map(Result::ok).map(|e| e.path()) {
            if file.extension().is_some_and(|e| e == "toml") {
                scenarios.push(load_file(&file)?);
            }
        }
    }
    scenarios.sort_by(|a, b| a.id.cmp(&b.id));
    for pair in scenarios.windows(2) {
        if pair[0].id == pair[1].id {
            return Err(HarnessError::Scenario {
                path: pair[1].path.clone(),
                message: format!("duplicate scenario id `{}`", pair[1].id),
            });
        }
    }
    Ok(scenarios)
}

pub fn load_file(path: &Path) -> Result<Scenario, HarnessError> {
    let err = |message: String| HarnessError::Scenario {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|source| HarnessError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut scenario: Scenario = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
    scenario.path = path.to_path_buf();
    if scenario.refs.is_empty() {
        return Err(err("a scenario needs at least one spec reference".into()));
    }
    if let Some(r) = scenario
        .refs
        .iter()
        .find(|r| r.quote.trim().is_empty() || r.quote.contains('\n'))
    {
        return Err(err(format!("reference `{}` needs a one-line quote", r.id)));
    }
    if scenario.steps.is_empty() {
        return Err(err("a scenario needs at least one step".into()));
    }
    if scenario.steps.iter().all(|s| s.setup) {
        return Err(err(
            "a scenario needs at least one step that is not setup".into()
        ));
    }
    if scenario.catches.is_empty() {
        return Err(err(
            "a scenario must name the reference-hub fault(s) it catches".into(),
        ));
    }
    // The fault names are known only where the hub is built in; a lean build
    // cannot run the sensitivity proof, so it has nothing to check them against.
    if crate::embedded::BUILT_IN {
        let known = crate::embedded::faults();
        if let Some(unknown) = scenario
            .catches
            .iter()
            .find(|c| !known.iter().any(|(name, _)| name == c))
        {
            return Err(err(format!(
                "`catches` names `{unknown}`, which is not a fault of the reference hub (`hub --list-faults`)"
            )));
        }
    }
    Ok(scenario)
}

/// Keeps the scenarios whose id matches the glob.
pub fn filter(scenarios: Vec<Scenario>, glob: &str) -> Result<Vec<Scenario>, HarnessError> {
    let pattern = glob::Pattern::new(glob).map_err(|e| HarnessError::Glob {
        glob: glob.to_owned(),
        message: e.to_string(),
    })?;
    let kept: Vec<_> = scenarios
        .into_iter()
        .filter(|s| pattern.matches(&s.id))
        .collect();
    if kept.is_empty() {
        return Err(HarnessError::NoMatch(glob.to_owned()));
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(steps: &str) -> Scenario {
        let text = format!(
            "id = \"t.t\"\ntitle = \"t\"\nlevel = \"MUST\"\ncatches = [\"x\"]\n\
             [[refs]]\nid = \"r\"\nurl = \"u\"\nquote = \"q\"\n{steps}"
        );
        toml::from_str(&text).expect("a scenario")
    }

    #[test]
    fn only_policies_on_this_scenarios_connections_run_alongside_others() {
        let own = scenario(
            "[[steps]]\ndo = \"create_connection\"\n\
             [[steps]]\ndo = \"create_policy\"\nas = \"p\"\n[steps.policy]\nname = \"p\"\n\
             grants = [{ connection = \"${conn.self.id}\", scopes = [\"calendar.read\"] }]\n\
             [[steps]]\ndo = \"delete_policy\"\nname = \"p\"\n",
        );
        assert!(!own.exclusive());
        let shared = scenario(
            "[[steps]]\ndo = \"create_policy\"\n[steps.policy]\nname = \"p\"\n\
             grants = [{ connection = \"demo-calendar\", scopes = [\"calendar.read\"] }]\n",
        );
        assert!(shared.exclusive());
        let server = scenario(
            "[[steps]]\ndo = \"create_policy\"\n[steps.policy]\nname = \"p\"\n\
             grants = [{ connection = \"${conn.self.id}\", scopes = [] }, { mcp_server = \"lab\", scopes = [\"lab.read\"] }]\n",
        );
        assert!(server.exclusive());
        let unknown_delete = scenario("[[steps]]\ndo = \"delete_policy\"\nname = \"elsewhere\"\n");
        assert!(unknown_delete.exclusive());
        let agenda = scenario("[[steps]]\ndo = \"create_connection\"\nagenda = true\n");
        assert!(agenda.exclusive());
    }
}
