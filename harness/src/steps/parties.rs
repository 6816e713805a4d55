//! What each party the harness plays remembers during one scenario: the MCP
//! client, the agent, the CIMD host, the third-party provider, the objects
//! the admin created (removed at teardown) and what the test driver changed
//! (put back at teardown). Plain data; the actions change it.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::profile::PreRegisteredClient;
use crate::provider::{Provider, TokenMode};

// Declared with the registration pool, which the profile holds: the pool
// must not import the parties, which import the profile.
pub use super::budget::Registered;

/// An authorization code waiting to be redeemed.
#[derive(Debug, Clone)]
pub struct PendingCode {
    pub code: String,
    pub verifier: String,
    pub redirect_uri: String,
}

/// The MCP client (and the browser it sends the user to).
#[derive(Debug, Default)]
pub struct ClientState {
    /// The authorization server metadata, discovered once per scenario.
    pub metadata: Option<Value>,
    /// Clients by the name scenarios give them.
    pub registered: BTreeMap<String, Registered>,
    /// The `resource_metadata` of the last challenge.
    pub resource_metadata_url: Option<String>,
    /// The first `authorization_servers` entry of the last Protected Resource Metadata.
    pub discovered_issuer: Option<String>,
    pub pending: Option<PendingCode>,
    pub last_token: Option<String>,
    /// Every refresh token received, oldest first.
    pub refresh_tokens: Vec<String>,
    /// The `state` of the last authorization request.
    pub state_sent: Option<String>,
}

/// Whoever signs private_key_jwt assertions (agents, and metadata-document clients).
#[derive(Debug, Default)]
pub struct AgentState {
    /// The last assertion sent, for replay.
    pub last_assertion: Option<String>,
}

/// The SSRF probe listener's accepted-connection counter and its task.
pub type SsrfProbe = (Arc<AtomicUsize>, tokio::task::JoinHandle<()>);

/// The CIMD host: metadata documents served on loopback, and the SSRF probe.
#[derive(Default)]
pub struct CimdHost {
    /// Started on first use.
    pub host: Option<wiremock::MockServer>,
    /// With `[cimd_host]` TLS: the https front of `host`, whose origin the
    /// documents' URLs use.
    pub tls: Option<crate::tls_front::TlsFront>,
    /// The document path per client name.
    pub paths: BTreeMap<String, String>,
    pub ssrf_probe: Option<SsrfProbe>,
}

/// The third-party provider behind this scenario's connections.
#[derive(Default)]
pub struct ThirdParty {
    /// Started on first use.
    pub server: Option<Provider>,
    /// How it was last told to answer.
    pub mode: Option<TokenMode>,
}

/// What kind of credential a Connection holds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionKind {
    #[default]
    Oauth2,
    ApiKey,
}

/// A connection this scenario created or replaced.
#[derive(Debug, Clone)]
pub struct CreatedConnection {
    pub id: String,
    pub kind: ConnectionKind,
    pub scopes: Vec<String>,
    /// It is the profile's Agenda connection, shared with the Agenda MCP server.
    pub agenda: bool,
    /// Its definition before the scenario replaced it, as `put_connection`
    /// inputs (what `get_connection` read back).
    pub previous: Option<Value>,
}

/// What the admin created on the target in this scenario; teardown removes it.
#[derive(Debug, Default)]
pub struct Created {
    /// Policies (name → id).
    pub policies: BTreeMap<String, String>,
    /// Agents, usable as client roles.
    pub agents: BTreeMap<String, PreRegisteredClient>,
    /// Connections created (or replaced), by name.
    pub connections: BTreeMap<String, CreatedConnection>,
    /// Tokens stored: (connection id, owner).
    pub stored_owners: Vec<(String, String)>,
    /// API keys stored, with their owner.
    pub api_keys: BTreeMap<String, String>,
}

/// What the test driver changed on the target; teardown puts it back.
#[derive(Debug, Default)]
pub struct Driver {
    pub moved_clock: bool,
    pub broke_audit: bool,
}
