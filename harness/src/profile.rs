//! Target profiles: how to reach and drive a hub under test.
//!
//! A profile is TOML. Every string may use `${base}`, replaced by the `base`
//! value (or by the embedded hub's origin), so one file describes both the
//! embedded hub and a separately started one. Every key is documented in
//! docs/profile.md (a test keeps it so); `fixtures/profiles/reference.toml`
//! is a complete example.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::HarnessError;
use crate::recipe::{Operation, Recipe};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// A human name for reports.
    pub name: String,
    /// Origin substituted for `${base}`.
    #[serde(default)]
    pub base: Option<String>,
    /// The authorization server's issuer identifier, byte-exact.
    pub issuer: String,
    /// The MCP revision the target implements, judged by when `conform
    /// --spec` is not given (else the latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<crate::revision::Revision>,
    /// Protected MCP resources by role (`primary`, `secondary`, `lab`, `agenda`),
    /// zero or more: a scenario that needs a role the profile lacks requires
    /// `resources.<role>` and is skipped, so a server with no resource server
    /// of its own can still be checked as an authorization server.
    #[serde(default)]
    pub resources: BTreeMap<String, Resource>,
    #[serde(default)]
    pub capabilities: Capabilities,
    pub user: UserDriver,
    /// Further users by name, for policy scenarios (`authorize` with `user = "<name>"`).
    #[serde(default)]
    pub users: BTreeMap<String, OtherUser>,
    /// Pre-registered clients by role; scenarios use `agent`.
    #[serde(default)]
    pub clients: BTreeMap<String, PreRegisteredClient>,
    /// A tenant whose users sign in through their own OpenID Provider
    /// (enterprise single sign-on), which the harness plays in `sso.*`
    /// scenarios; without it they are skipped.
    #[serde(default)]
    pub sso: Option<SsoSettings>,
    /// Public clients the server has pre-registered, by the role a scenario
    /// registers (`self`, `other`): the first way the MCP client acquires a
    /// client (MCP authorization, Client Registration Approaches), before
    /// dynamic registration.
    #[serde(default)]
    pub public_clients: BTreeMap<String, PublicClient>,
    /// How the harness hosts Client ID Metadata Documents.
    #[serde(default)]
    pub cimd_host: CimdHostSettings,
    /// How the target performs the operations no standard defines (policies,
    /// agents, Connections, the audit trail, the test clock), by operation
    /// name: see `recipe.rs`. A step needing one the profile lacks is skipped.
    #[serde(default)]
    pub operations: BTreeMap<String, Recipe>,
    /// Named secrets the recipes use (`${secrets.<name>}`): redacted from
    /// every report and never offered to scenarios.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Redirect URI the harness's MCP client registers. Never fetched.
    #[serde(default = "default_callback")]
    pub callback: String,
    #[serde(default)]
    pub http: HttpSettings,
    /// How the target treats a request its policies permit only in part.
    #[serde(default)]
    pub policy: PolicySettings,
    /// How to reach the target's Connections (credential vault), for `connections` scenarios.
    #[serde(default)]
    pub connections: ConnectionSettings,
    /// Where the harness's audit collector reads the target's audit trail.
    #[serde(default)]
    pub audit: AuditSettings,
    /// What every authorization request carries besides what scenarios ask for.
    #[serde(default)]
    pub authorization: AuthorizationSettings,
    /// What every dynamic registration carries besides what scenarios ask for.
    #[serde(default)]
    pub registration: RegistrationSettings,
    /// Whether the target is an agentic identity hub, whose product model
    /// (policies, Connections, agents, audit) the `hub` suite checks.
    #[serde(default)]
    pub hub: HubModel,
    /// What the target's access tokens are, for the RFC 9068 checks.
    #[serde(default)]
    pub access_token_format: AccessTokenFormat,
    /// The robustness pass: how many hostile requests, from which seed.
    #[serde(default)]
    pub robustness: RobustnessSettings,
    /// The clients registered so far in this run, shared by its scenarios
    /// for the registration budget (steps/budget.rs); never read from a file.
    #[serde(skip)]
    pub registrations: std::sync::Arc<crate::steps::budget::RegistrationPool>,
}

/// The robustness pass (`robustness.rs`): seeded, so a finding is
/// reproduced by running the same seed again (`conform --seed`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobustnessSettings {
    /// The seed of the pass's generators.
    #[serde(default = "one")]
    pub seed: u64,
    /// How many hostile requests the pass sends, spread over the endpoints.
    #[serde(default = "two_thousand")]
    pub requests: usize,
    /// How many are in flight at once.
    #[serde(default = "sixteen")]
    pub concurrency: usize,
}

impl Default for RobustnessSettings {
    fn default() -> Self {
        RobustnessSettings {
            seed: one(),
            requests: two_thousand(),
            concurrency: sixteen(),
        }
    }
}

fn one() -> u64 {
    1
}
fn two_thousand() -> usize {
    2_000
}
fn sixteen() -> usize {
    16
}

/// RFC 9068 checks apply to JWT access tokens only; OAuth leaves the format
/// to the server (RFC 6749 §1.4), so an opaque token makes them not
/// applicable (`skip`), never an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessTokenFormat {
    /// Judge each token as it comes: one that is not a JWS is opaque.
    #[default]
    Detect,
    /// Every access token must be a JWT: one that is not fails the checks.
    Jwt,
    /// Access tokens are opaque: the RFC 9068 checks are skipped.
    Opaque,
}

/// A plain authorization server never declares the product model, so no
/// product-model requirement (`suite = "hub"`) is ever held against it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubModel {
    /// Check the hub product model's requirements (off by default).
    #[serde(default)]
    pub product_model: bool,
}

/// Parameters the harness builds itself; the profile may not add them again,
/// or a scenario that gets one wrong on purpose would be overridden.
pub const OWN_AUTHORIZATION_PARAMS: [&str; 8] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "scope",
    "resource",
];

/// Some servers need more than the harness sends (an `audience`, a `prompt`,
/// an `openid` scope); without them every flow would fail and the server be
/// blamed for the profile's gap.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationSettings {
    /// Query parameters added to every authorization request.
    #[serde(default)]
    pub extra_params: BTreeMap<String, String>,
    /// Scopes appended to every authorization request that carries a scope.
    #[serde(default)]
    pub extra_scopes: Vec<String>,
    /// Per client, by the name scenarios give it (`self`, `other`, …):
    /// parameters added after `extra_params` (and replacing theirs).
    #[serde(default)]
    pub clients: BTreeMap<String, ClientAuthorization>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthorization {
    #[serde(default)]
    pub extra_params: BTreeMap<String, String>,
}

impl AuthorizationSettings {
    /// The extra parameters for `client`'s requests: the common ones, then its own.
    pub fn params_for(&self, client: &str) -> BTreeMap<String, String> {
        let mut params = self.extra_params.clone();
        if let Some(own) = self.clients.get(client) {
            params.extend(own.extra_params.clone());
        }
        params
    }
}

/// Some servers refuse a registration without metadata the harness does not
/// send by default (for example `application_type = "native"` for loopback
/// redirect URIs).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationSettings {
    /// Fields merged into every registration request body; a scenario's own
    /// `metadata` wins over them.
    #[serde(default)]
    pub extra_metadata: BTreeMap<String, toml::Value>,
    /// The longest `Retry-After` (seconds) the harness waits when the
    /// registration endpoint answers `429`, before it reuses a client
    /// registered earlier in the run or skips (steps/budget.rs).
    #[serde(default = "retry_after_max_secs")]
    pub retry_after_max_secs: u64,
    /// Reuse a client registered earlier in the run, with the same
    /// metadata, for every setup registration (a registration no scenario
    /// judges): for a server with a small registration budget. Off by
    /// default: each scenario then has clients of its own.
    #[serde(default)]
    pub reuse: bool,
}

impl Default for RegistrationSettings {
    fn default() -> Self {
        RegistrationSettings {
            extra_metadata: BTreeMap::new(),
            retry_after_max_secs: retry_after_max_secs(),
            reuse: false,
        }
    }
}

fn retry_after_max_secs() -> u64 {
    10
}

/// How the audit collector (`audit.rs`) reads the target's trail.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// `query`: page through the trail with the `audit_position` and
    /// `read_audit` recipes; `webhook`: receive the target's CloudEvents
    /// stream on an endpoint the harness hosts.
    #[serde(default)]
    pub source: AuditSource,
    /// For `webhook`: the `ip:port` the harness listens on. The target must
    /// POST its batches to `http://<webhook_listen>/audit-webhook`.
    #[serde(default)]
    pub webhook_listen: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuditSource {
    #[default]
    Query,
    Webhook,
}

/// The target's Connections (docs/connections.md): how the harness names a
/// connection at the token endpoint, starts the connect flow, and which
/// connection the Agenda MCP server reads from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSettings {
    /// The connection the `agenda` resource's tools fetch tokens from (fixed
    /// when the target starts); scenarios that replace it are exclusive.
    #[serde(default = "demo_calendar")]
    pub agenda_connection: String,
    /// The `resource` that names a connection in a token exchange, followed by its id.
    #[serde(default = "connection_resource_prefix")]
    pub resource_prefix: String,
    /// The connect flow's start page; `{connection}` is replaced by the id.
    #[serde(default)]
    pub connect_url: Option<String>,
    /// How long the target waits for a provider before it answers 504; the
    /// harness allows this plus `timeout_margin_secs` for a connection token.
    #[serde(default = "ten")]
    pub provider_timeout_secs: u64,
    #[serde(default = "five")]
    pub timeout_margin_secs: u64,
}

fn demo_calendar() -> String {
    "demo-calendar".into()
}

fn connection_resource_prefix() -> String {
    "urn:hub:connection:".into()
}

fn five() -> u64 {
    5
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            agenda_connection: demo_calendar(),
            resource_prefix: connection_resource_prefix(),
            connect_url: None,
            provider_timeout_secs: ten(),
            timeout_margin_secs: five(),
        }
    }
}

/// The target's declared policy behaviour; scenarios check whichever is declared.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// `filter`: grant the permitted scopes only; `block`: refuse the whole request.
    #[serde(default = "filter")]
    pub partial: String,
}

fn filter() -> String {
    "filter".into()
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings { partial: filter() }
    }
}

fn default_callback() -> String {
    "http://127.0.0.1:8976/conform/callback".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// Canonical resource URL (RFC 8707 §2).
    pub url: String,
    /// The target's own id for this server, as its admin API names it (policies, agents).
    #[serde(default)]
    pub id: Option<String>,
    pub scopes: Vec<String>,
    /// The scopes the server cannot work without, which a product that has
    /// mandatory scopes shows with no box to untick (`consent.mandatory-scopes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_scopes: Option<Vec<String>>,
    /// A tool whose scope a narrowly scoped token lacks, for the insufficient_scope check.
    #[serde(default)]
    pub scope_probe: Option<ScopeProbe>,
    /// Whether an MCP server answers at `url`. `false` declares only a
    /// resource indicator the authorization server knows (a plain
    /// authorization server tested without its resource servers): steps that
    /// call the server, or read its RFC 9728 metadata, are then `skip`.
    #[serde(default = "yes")]
    pub reachable: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeProbe {
    /// The only scope the probing token is requested with.
    pub token_scope: String,
    /// A tool that needs another scope.
    pub tool: String,
    /// The scope that tool needs.
    pub tool_scope: String,
}

/// Optional features a target may have; scenarios needing a missing one are
/// skipped. Every capability is off unless the profile declares it: a default
/// of on made scenarios "pass" against servers without the feature at all
/// (an SSRF refusal is no evidence when there is no CIMD to refuse).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    #[serde(default)]
    pub dcr: bool,
    #[serde(default)]
    pub client_credentials: bool,
    #[serde(default)]
    pub control_api: bool,
    /// Supports RFC 9207 (`iss` in authorization responses).
    #[serde(default)]
    pub rfc9207: bool,
    /// Accepts Client ID Metadata Documents; the scenarios also need the control
    /// API to make the target trust the harness's loopback CIMD host.
    #[serde(default)]
    pub cimd: bool,
    /// Has a token revocation endpoint (RFC 7009).
    #[serde(default)]
    pub revocation: bool,
    /// Has a token introspection endpoint (RFC 7662); needs `[clients.introspector]`.
    #[serde(default)]
    pub introspection: bool,
    /// Accepts the JWT bearer authorization grant (RFC 7523 §2.1) from `[clients.keyed_agent]`.
    #[serde(default)]
    pub jwt_bearer: bool,
    /// Limits dynamic registrations per source address. The harness registers
    /// from 127.0.0.2 when the target is on loopback, so its other traffic is unaffected.
    #[serde(default)]
    pub dcr_rate_limit: bool,
    /// Remembers consent per user, client and resource, asks only for new scopes
    /// (step-up), and lets an admin revoke it (operation `revoke_consent`).
    #[serde(default)]
    pub consent_memory: bool,
    /// MCP Server Policies managed by an admin (operations `create_policy`, `delete_policy`), with
    /// `[users.bob]` and `[users.carol]` as in fixtures/profiles/reference.toml.
    #[serde(default)]
    pub policy_admin: bool,
    /// RFC 8693 token exchange by `[clients.agent]` and `[clients.keyed_agent]`.
    #[serde(default)]
    pub token_exchange: bool,
    /// Agents created, listed and decommissioned by an admin (operations
    /// `create_agent`, `list_agents`, `decommission_agent`).
    #[serde(default)]
    pub agent_admin: bool,
    /// Connections (a credential vault) managed through the admin API and
    /// retrieved by token exchange (`[connections]`, `[clients.agenda_rs]`,
    /// `[resources.agenda]`).
    #[serde(default)]
    pub connections: bool,
    /// What the rest of the profile implies, by requirement name
    /// (`resources.<role>`, `per_scope_consent`); filled by `Profile::parse`.
    #[serde(skip)]
    pub implied: BTreeMap<String, bool>,
}

impl Capabilities {
    pub fn has(&self, name: &str) -> Option<bool> {
        match name {
            "dcr" => Some(self.dcr),
            "client_credentials" => Some(self.client_credentials),
            "control_api" => Some(self.control_api),
            "rfc9207" => Some(self.rfc9207),
            "revocation" => Some(self.revocation),
            "cimd" => Some(self.cimd),
            "introspection" => Some(self.introspection),
            "jwt_bearer" => Some(self.jwt_bearer),
            "dcr_rate_limit" => Some(self.dcr_rate_limit),
            "consent_memory" => Some(self.consent_memory),
            "policy_admin" => Some(self.policy_admin),
            "token_exchange" => Some(self.token_exchange),
            "agent_admin" => Some(self.agent_admin),
            "connections" => Some(self.connections),
            "per_scope_consent" => Some(self.implied.get(name).copied().unwrap_or(true)),
            "public_client" => Some(self.implied.get(name).copied().unwrap_or(self.dcr)),
            other if other.starts_with("resources.") => {
                Some(self.implied.get(other).copied().unwrap_or(false))
            }
            _ => None,
        }
    }
}

/// Another user the harness can log in as, with the same forms as `[user]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtherUser {
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// The base32 TOTP secret of an authenticator the user already has
    /// (RFC 6238), for a target with no `enrol_second_factor` operation.
    #[serde(default)]
    pub totp_secret: Option<String>,
    /// The user's unused recovery codes, with `totp_secret`.
    #[serde(default)]
    pub recovery_codes: Vec<String>,
}

/// The tenant the harness points at its own identity provider (operation
/// `configure_sso`), and who signs in through it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoSettings {
    /// The target's tenant id.
    pub tenant: String,
    /// A `[users]` name whose `username` is a work e-mail of the tenant's
    /// domain (home-realm discovery sends it to the provider).
    pub user: String,
}

/// How the harness plays the user who logs in and consents.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDriver {
    /// `form`: fill and submit the hub's HTML pages. `control`: decide through
    /// the `decide_pending` operation.
    pub mode: UserMode,
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// Form rules, tried in order against each page the browser would show.
    #[serde(default)]
    pub forms: Vec<FormRule>,
    /// In `control` mode: the query parameter of the login page URL that carries the pending request id.
    #[serde(default)]
    pub request_param: Option<String>,
    /// Whether the consent page lets the user untick single scopes. When
    /// false, scenarios that untick one (`requires = ["per_scope_consent"]`)
    /// are skipped: pressing approve instead would grant the scope and blame
    /// the server for it.
    #[serde(default = "yes")]
    pub per_scope_consent: bool,
    /// CSS selector of the target's own error page when it answers HTTP 200:
    /// such a page is the server refusing to redirect (RFC 6749 §4.1.2.1),
    /// reported as `not_redirected` rather than a missing form rule.
    #[serde(default)]
    pub error_page_has: Option<String>,
    /// Where a POST from the user's browser ends its sign-in (the sign-out
    /// form's action; `${issuer}` allowed). Without it the sign-out
    /// scenarios are skipped.
    #[serde(default)]
    pub sign_out_url: Option<String>,
    /// As in `[users.<name>]`: the user's TOTP secret, base32.
    #[serde(default)]
    pub totp_secret: Option<String>,
    /// As in `[users.<name>]`: the user's unused recovery codes.
    #[serde(default)]
    pub recovery_codes: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Which page a form rule is for; only consent pages can be denied or have
/// scopes unticked, so asking that of another page is not a silent approval.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PageKind {
    Login,
    Consent,
    /// Asks for a second factor after the password: its fill may use
    /// `${user.one_time_code}` and `${user.recovery_code}`.
    #[serde(rename = "second_factor")]
    SecondFactor,
    Other,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UserMode {
    Form,
    Control,
    /// The server shows the user no page: it approves at once (a simulated
    /// user, as SDK demo providers do). Scenarios that deny or untick are
    /// not applicable (`skip`); a page shown anyway is an `error`.
    None,
}

/// "On a page whose URL contains X (and which shows Y), fill this form and
/// press that button."
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormRule {
    /// A substring of the page URL; empty matches every URL.
    #[serde(default)]
    pub url_contains: String,
    /// CSS selector that must match something on the page: login and consent
    /// pages may share one URL and differ only in content.
    #[serde(default)]
    pub page_has: Option<String>,
    /// `login`, `consent` or `other`. When absent: `consent` if the rule has
    /// `check_all`, `deny`, `deny_link` or `deny_form`, or fills nothing;
    /// else `login`.
    #[serde(default)]
    pub page: Option<PageKind>,
    /// CSS selector of the form.
    #[serde(default = "default_form")]
    pub form: String,
    /// Field values; `${user.username}` and `${user.password}` are substituted.
    #[serde(default)]
    pub fill: BTreeMap<String, String>,
    /// Checkbox names whose boxes are all ticked (approve everything offered).
    #[serde(default)]
    pub check_all: Vec<String>,
    /// The submit button to press.
    #[serde(default)]
    pub submit: Option<SubmitButton>,
    /// The button to press instead when the scenario denies consent.
    #[serde(default)]
    pub deny: Option<SubmitButton>,
    /// Or: CSS selector of a link (`<a href>`) the user follows to deny.
    #[serde(default)]
    pub deny_link: Option<String>,
    /// Or: CSS selector of a separate form submitted (as the page has it,
    /// hidden fields included) to deny.
    #[serde(default)]
    pub deny_form: Option<String>,
}

impl FormRule {
    /// The page this rule is for, declared or inferred.
    pub fn page_kind(&self) -> PageKind {
        self.page.unwrap_or(
            if !self.check_all.is_empty()
                || self.deny.is_some()
                || self.deny_link.is_some()
                || self.deny_form.is_some()
                || self.fill.is_empty()
            {
                PageKind::Consent
            } else {
                PageKind::Login
            },
        )
    }

    /// How to name this rule in an error.
    pub fn describe(&self) -> String {
        match &self.page_has {
            Some(has) => format!(
                "[[user.forms]] url_contains = \"{}\", page_has = \"{has}\"",
                self.url_contains
            ),
            None => format!("[[user.forms]] url_contains = \"{}\"", self.url_contains),
        }
    }
}

fn default_form() -> String {
    "form".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitButton {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreRegisteredClient {
    pub client_id: String,
    /// For `client_secret_basic` and `client_secret_post`.
    #[serde(default)]
    pub client_secret: String,
    /// `client_secret_basic`, `client_secret_post` or `private_key_jwt`.
    #[serde(default = "basic")]
    pub auth_method: String,
    /// For `private_key_jwt`: the PKCS#8 PEM private key that signs assertions.
    #[serde(default)]
    pub private_key_pem: Option<String>,
    /// For `private_key_jwt`: the `kid` to put in assertion headers.
    #[serde(default)]
    pub key_id: Option<String>,
    /// Resource role this client is configured for.
    pub resource: String,
    /// Scopes the client's configuration allows on that resource.
    pub allowed_scopes: Vec<String>,
    /// Scopes the resource offers but the client's configuration does not allow.
    #[serde(default)]
    pub disallowed_scopes: Vec<String>,
}

fn basic() -> String {
    "client_secret_basic".into()
}

/// The harness's CIMD host serves http on loopback by default; with a
/// certificate and key it serves https, for a target that fetches
/// documents over https only (and trusts that certificate's issuer).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CimdHostSettings {
    /// PEM certificate chain, leaf first, valid for 127.0.0.1; a path
    /// relative to the profile's directory.
    #[serde(default)]
    pub tls_certificate: Option<PathBuf>,
    /// Its PEM private key; a path relative to the profile's directory.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Where `cimd.ssrf-refused` listens for a connection that must never
    /// come: a loopback address (nothing leaves the machine) that the target
    /// neither runs on nor trusts. CIMD draft-01 §6.5 exempts "the same
    /// loopback interface" when the server itself runs on loopback; the suite
    /// reads that as the server's own address, and a target that reads it
    /// wider names an address it guarantees is outside its exception.
    #[serde(default = "default_ssrf_probe_address")]
    pub ssrf_probe_address: std::net::IpAddr,
}

impl Default for CimdHostSettings {
    fn default() -> Self {
        CimdHostSettings {
            tls_certificate: None,
            tls_key: None,
            ssrf_probe_address: default_ssrf_probe_address(),
        }
    }
}

fn default_ssrf_probe_address() -> std::net::IpAddr {
    std::net::IpAddr::from([127, 0, 0, 2])
}

/// A public client (PKCE, no secret) the server's administrator registered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicClient {
    pub client_id: String,
    /// Its registered redirect URI; the profile's `callback` by default.
    #[serde(default)]
    pub redirect_uri: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Whole-request timeout, seconds.
    #[serde(default = "ten")]
    pub timeout_secs: u64,
    #[serde(default = "three")]
    pub connect_timeout_secs: u64,
    /// How long a server may hold a half-sent request before the
    /// slow-client check notes it never closed the connection, seconds.
    #[serde(default = "thirty")]
    pub slow_request_bound_secs: u64,
}

fn thirty() -> u64 {
    30
}

fn ten() -> u64 {
    10
}
fn three() -> u64 {
    3
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout_secs: 10,
            connect_timeout_secs: 3,
            slow_request_bound_secs: thirty(),
        }
    }
}

impl Profile {
    /// The whole profile, secrets and recipes included, as the variables a
    /// recipe's `${…}` reads (see `operation::perform`).
    pub fn vars(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Reads a profile; `base_override` replaces its `base` (the embedded hub's origin).
    pub fn load(path: &Path, base_override: Option<&str>) -> Result<Profile, HarnessError> {
        let text = std::fs::read_to_string(path).map_err(|source| HarnessError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut profile =
            Profile::parse(&text, base_override).map_err(|message| HarnessError::Profile {
                path: path.to_path_buf(),
                message,
            })?;
        // Files the profile names are relative to the profile.
        let dir = path.parent().unwrap_or(Path::new("."));
        let host = &mut profile.cimd_host;
        for file in [&mut host.tls_certificate, &mut host.tls_key]
            .into_iter()
            .flatten()
        {
            if file.is_relative() {
                *file = dir.join(&*file);
            }
        }
        Ok(profile)
    }

    pub fn parse(text: &str, base_override: Option<&str>) -> Result<Profile, String> {
        let raw: toml::Value = toml::from_str(text).map_err(|e| e.to_string())?;
        let base = base_override
            .map(str::to_owned)
            .or_else(|| raw.get("base").and_then(|b| b.as_str()).map(str::to_owned));
        let substituted = match &base {
            Some(base) => substitute(raw, base.trim_end_matches('/')),
            None => raw,
        };
        let mut profile: Profile = substituted.try_into().map_err(|e: toml::de::Error| {
            // The same error read from the text carries its place.
            let line = toml::from_str::<Profile>(text)
                .err()
                .and_then(|e| e.span())
                .map(|span| line_at(text, span.start));
            located(line, &e.to_string().trim().replace('\n', " "))
        })?;
        profile.base = base;
        profile.validate()?;
        profile.check_operations(text)?;
        profile.capabilities.implied = profile
            .resources
            .keys()
            .map(|role| (format!("resources.{role}"), true))
            .chain([
                (
                    "per_scope_consent".to_owned(),
                    profile.user.per_scope_consent,
                ),
                // A public client: pre-registered, or by dynamic registration.
                (
                    "public_client".to_owned(),
                    profile.capabilities.dcr || !profile.public_clients.is_empty(),
                ),
            ])
            .collect();
        Ok(profile)
    }

    fn validate(&self) -> Result<(), String> {
        let host = &self.cimd_host;
        if host.tls_certificate.is_some() != host.tls_key.is_some() {
            return Err("cimd_host: tls_certificate and tls_key go together".into());
        }
        if !host.ssrf_probe_address.is_loopback() {
            return Err(format!(
                "cimd_host: ssrf_probe_address {} is not a loopback address; the SSRF probe never listens beyond this machine",
                host.ssrf_probe_address
            ));
        }
        if self.issuer.contains("${") {
            return Err("`issuer` uses ${base} but no base is set".into());
        }
        url::Url::parse(&self.issuer).map_err(|e| format!("issuer `{}`: {e}", self.issuer))?;
        let own = |key: &String| OWN_AUTHORIZATION_PARAMS.contains(&key.as_str());
        let clients = self.authorization.clients.iter();
        let extra = self
            .authorization
            .extra_params
            .keys()
            .map(|k| ("authorization.extra_params".to_owned(), k))
            .chain(clients.flat_map(|(name, c)| {
                c.extra_params
                    .keys()
                    .map(move |k| (format!("authorization.clients.{name}.extra_params"), k))
            }));
        for (section, key) in extra {
            if own(key) {
                return Err(format!(
                    "{section}.{key}: the harness sends `{key}` itself (scenarios set it, sometimes wrong on purpose)"
                ));
            }
        }
        for (role, r) in &self.resources {
            url::Url::parse(&r.url)
                .map_err(|e| format!("resources.{role}.url `{}`: {e}", r.url))?;
        }
        for (role, c) in &self.clients {
            if !self.resources.contains_key(&c.resource) {
                return Err(format!(
                    "clients.{role}.resource `{}` is not a resource role",
                    c.resource
                ));
            }
            match c.auth_method.as_str() {
                "client_secret_basic" | "client_secret_post" if !c.client_secret.is_empty() => {}
                "private_key_jwt" if c.private_key_pem.is_some() => {}
                "client_secret_basic" | "client_secret_post" => {
                    return Err(format!(
                        "clients.{role}.client_secret is required for {}",
                        c.auth_method
                    ))
                }
                "private_key_jwt" => {
                    return Err(format!(
                        "clients.{role}.private_key_pem is required for private_key_jwt"
                    ))
                }
                _ => {
                    return Err(format!(
                        "clients.{role}.auth_method must be client_secret_basic, client_secret_post or private_key_jwt"
                    ))
                }
            }
        }
        if !matches!(self.policy.partial.as_str(), "filter" | "block") {
            return Err(format!(
                "policy.partial must be filter or block, not `{}`",
                self.policy.partial
            ));
        }
        match (self.audit.source, &self.audit.webhook_listen) {
            (AuditSource::Webhook, None) => {
                return Err(
                    "audit.source = \"webhook\" needs audit.webhook_listen (the ip:port the harness listens on)"
                        .into(),
                )
            }
            (AuditSource::Webhook, Some(listen)) => {
                listen.parse::<std::net::SocketAddr>().map_err(|e| {
                    format!(
                        "audit.webhook_listen `{listen}`: {e} (expected ip:port, e.g. 127.0.0.1:8977)"
                    )
                })?;
            }
            (AuditSource::Query, Some(_)) => {
                return Err(
                    "audit.webhook_listen applies only to audit.source = \"webhook\"".into(),
                )
            }
            (AuditSource::Query, None) => {}
        }
        if self.user.mode == UserMode::Control
            && !self
                .operations
                .contains_key(Operation::DecidePending.name())
        {
            return Err(format!(
                "user.mode = \"control\" needs a recipe for operation {0} ([operations.{0}])",
                Operation::DecidePending
            ));
        }
        let selectors = self
            .user
            .forms
            .iter()
            .enumerate()
            .flat_map(|(i, rule)| {
                [
                    ("form", Some(&rule.form)),
                    ("page_has", rule.page_has.as_ref()),
                    ("deny_link", rule.deny_link.as_ref()),
                    ("deny_form", rule.deny_form.as_ref()),
                ]
                .into_iter()
                .filter_map(move |(key, s)| s.map(|s| (format!("user.forms[{i}].{key}"), s)))
            })
            .chain(
                self.user
                    .error_page_has
                    .iter()
                    .map(|s| ("user.error_page_has".to_owned(), s)),
            );
        for (key, selector) in selectors {
            scraper::Selector::parse(selector)
                .map_err(|e| format!("{key} `{selector}` is not a CSS selector: {e}"))?;
        }
        if self.user.mode == UserMode::Form && self.user.forms.is_empty() {
            return Err("user.mode = \"form\" needs at least one [[user.forms]] rule".into());
        }
        Ok(())
    }
}

impl Profile {
    /// Every recipe names an operation the harness knows and is sound for
    /// it (`Recipe::problems`); each problem names its key and line.
    fn check_operations(&self, text: &str) -> Result<(), String> {
        let vars = self.vars();
        let lines = toml::from_str::<OperationLines>(text).unwrap_or_default();
        let mut problems = Vec::new();
        for (name, recipe) in &self.operations {
            let Some(operation) = Operation::by_name(name) else {
                let known: Vec<&str> = Operation::ALL.iter().map(|op| op.name()).collect();
                problems.push(located(
                    lines.line(text, name, None),
                    &format!(
                        "operations.{name}: no such operation; the harness knows {}",
                        known.join(", ")
                    ),
                ));
                continue;
            };
            for (key, message) in recipe.problems(operation, &vars) {
                let field = key.split(['.', '[']).next().unwrap_or_default();
                problems.push(located(
                    lines.line(text, name, Some(field)),
                    &format!("operations.{name}.{key}: {message}"),
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Every secret the profile holds, for redaction: passwords, client
    /// secrets, `[secrets]`, and the credentials recipes send in headers
    /// (the whole value, and what follows a scheme such as `Bearer`).
    pub fn secret_values(&self) -> Vec<String> {
        let mut secrets = vec![self.user.password.clone()];
        secrets.extend(self.users.values().map(|u| u.password.clone()));
        // Second factors: the TOTP secrets and recovery codes.
        let factors = std::iter::once((&self.user.totp_secret, &self.user.recovery_codes)).chain(
            self.users
                .values()
                .map(|u| (&u.totp_secret, &u.recovery_codes)),
        );
        for (secret, codes) in factors {
            secrets.extend(secret.iter().cloned());
            secrets.extend(codes.iter().cloned());
        }
        secrets.extend(self.clients.values().map(|c| c.client_secret.clone()));
        secrets.extend(self.secrets.values().cloned());
        for recipe in self.operations.values() {
            for (name, value) in &recipe.headers {
                let plain = ["accept", "content-type", "user-agent"]
                    .iter()
                    .any(|h| name.eq_ignore_ascii_case(h));
                if plain || value.contains("${") {
                    continue;
                }
                secrets.push(value.clone());
                if let Some((_, credential)) = value.split_once(' ') {
                    secrets.push(credential.trim().to_owned());
                }
            }
        }
        secrets.retain(|s| !s.is_empty());
        secrets
    }
}

/// Where each recipe and each of its keys is written, for errors.
#[derive(Debug, Default, Deserialize)]
struct OperationLines {
    #[serde(default)]
    operations: BTreeMap<toml::Spanned<String>, BTreeMap<toml::Spanned<String>, toml::Value>>,
}

impl OperationLines {
    /// The line of `[operations.<name>]`, or of its key `field`.
    fn line(&self, text: &str, name: &str, field: Option<&str>) -> Option<usize> {
        let (key, fields) = self.operations.iter().find(|(k, _)| k.get_ref() == name)?;
        let span = match field.and_then(|f| fields.keys().find(|k| k.get_ref() == f)) {
            Some(field) => field.span(),
            None => key.span(),
        };
        Some(line_at(text, span.start))
    }
}

/// The 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// A message prefixed by its line, when known.
fn located(line: Option<usize>, message: &str) -> String {
    match line {
        Some(line) => format!("line {line}: {message}"),
        None => message.to_owned(),
    }
}

fn substitute(value: toml::Value, base: &str) -> toml::Value {
    match value {
        toml::Value::String(s) => toml::Value::String(s.replace("${base}", base)),
        toml::Value::Array(items) => {
            toml::Value::Array(items.into_iter().map(|v| substitute(v, base)).collect())
        }
        toml::Value::Table(table) => toml::Value::Table(
            table
                .into_iter()
                .map(|(k, v)| (k, substitute(v, base)))
                .collect(),
        ),
        other => other,
    }
}
