//! Run-time configuration of a hub instance.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::fault::Faults;
use crate::store::Database;
use crate::variant::Variants;

#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Address to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Public origin (scheme://host:port) if the hub sits behind a proxy; defaults to the bound address.
    pub public_url: Option<String>,
    pub database: Database,
    /// Directory of seed TOML files (tenants, users, MCP servers, clients) applied at start.
    pub seed_dir: Option<PathBuf>,
    /// Access token lifetime in seconds.
    pub access_token_ttl: u32,
    /// Refresh token lifetime in seconds.
    pub refresh_token_ttl: u32,
    /// Authorization code lifetime in seconds; capped at 60.
    pub code_ttl: u32,
    /// How long a user has to log in and consent, in seconds.
    pub request_ttl: u32,
    /// How long a sign-in at the authorization pages lasts, in seconds.
    pub signin_lifetime: u32,
    /// A sign-in unused for this many seconds ends early.
    pub signin_idle_timeout: u32,
    /// Origins whose client metadata documents may be fetched over plain http
    /// and from loopback, e.g. `http://127.0.0.1:4000` (for tests and demos).
    pub cimd_trusted_origins: Vec<String>,
    /// Dynamic registrations allowed per source address per minute; 0 disables the limit.
    pub registration_rate_limit: u32,
    /// Source addresses the registration limit does not apply to (e.g. a trusted gateway).
    pub registration_rate_exempt: Vec<std::net::IpAddr>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (the address it
    /// appended last); every other peer's forwarded-for headers are ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Deliver every audit event to this URL (CloudEvents batches, at least once, in order).
    pub audit_webhook: Option<String>,
    /// Append every audit event to this JSON Lines file as well.
    pub audit_jsonl: Option<PathBuf>,
    /// How long a user's consent is remembered, in seconds; after that they are asked again.
    pub consent_ttl: u32,
    /// Enables the control API (`/control/*`), protected by `control_token`.
    pub test_mode: bool,
    pub control_token: Option<String>,
    /// Enables the admin API (`/admin/*`), protected by this bearer token.
    pub admin_token: Option<String>,
    /// Vault keys, `<id>:<base64 of 32 bytes>`; the first seals. When empty,
    /// `vault-dev.key` in the seed directory is used if present (a
    /// development key); with neither the hub refuses to start.
    pub vault_keys: Vec<String>,
    /// Upper bound on every call to a Connection's provider.
    pub provider_timeout: std::time::Duration,
    /// Serve the Agenda MCP server (crate `demo`) at its seeded MCP server's path.
    pub agenda: Option<AgendaSettings>,
    /// Where the demo provider listens, when it is not the seeded default:
    /// the `demo-calendar` connection's endpoints are pointed at it.
    pub demo_provider_url: Option<String>,
    /// Where the demo identity provider listens, when the hub started it:
    /// the `initech` tenant's SSO issuer is pointed at it.
    pub demo_idp_issuer: Option<String>,
    pub faults: Faults,
    /// Compliant alternative answers (see [`crate::variant`]).
    pub variants: Variants,
    /// Connections at once and header-read timeout (see [`crate::serve`]).
    pub limits: crate::serve::Limits,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            database: Database::File(PathBuf::from("hub.sqlite")),
            seed_dir: None,
            access_token_ttl: 300,
            refresh_token_ttl: 30 * 24 * 3600,
            code_ttl: 60,
            request_ttl: 600,
            signin_lifetime: 8 * 3600,
            signin_idle_timeout: 3600,
            cimd_trusted_origins: Vec::new(),
            registration_rate_limit: 20,
            registration_rate_exempt: Vec::new(),
            consent_ttl: 90 * 24 * 3600,
            trusted_proxies: Vec::new(),
            audit_jsonl: None,
            audit_webhook: None,
            test_mode: false,
            control_token: None,
            admin_token: None,
            vault_keys: Vec::new(),
            provider_timeout: std::time::Duration::from_secs(10),
            agenda: None,
            demo_provider_url: None,
            demo_idp_issuer: None,
            faults: Faults::default(),
            variants: Variants::default(),
            limits: crate::serve::Limits::default(),
        }
    }
}

/// How the hub runs the Agenda MCP server: which seeded MCP server it is,
/// the credentials it uses at the hub, and the Connection it reads.
#[derive(Clone)]
pub struct AgendaSettings {
    pub server_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub connection: String,
}

impl std::fmt::Debug for AgendaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgendaSettings")
            .field("server_id", &self.server_id)
            .field("client_id", &self.client_id)
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

impl AgendaSettings {
    /// The seeded demo: MCP server `agenda`, client `rs-agenda`, connection `demo-calendar`.
    pub fn demo(client_secret: impl Into<String>) -> Self {
        AgendaSettings {
            server_id: "agenda".into(),
            client_id: "rs-agenda".into(),
            client_secret: client_secret.into(),
            connection: "demo-calendar".into(),
        }
    }
}

/// The most an authorization code may live, whatever the configuration says.
pub const MAX_CODE_TTL: u32 = 60;
