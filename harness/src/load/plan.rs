//! What a run is: its mix, its bounds, and what its workers share.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// What each request of a load run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mix {
    /// A `client_credentials` grant as `[clients.agent]` (RFC 6749 §4.4).
    #[value(alias = "client_credentials")]
    ClientCredentials,
    /// An introspection (RFC 7662) of a live token as `[clients.introspector]`.
    Introspection,
    /// A refresh (RFC 6749 §6) of the worker's own chain, each from a code
    /// flow of a registered public client; plus refresh races.
    Refresh,
    /// A whole authorization code flow with PKCE, the profile's user signing
    /// in and consenting, and the code redeemed.
    #[value(alias = "code_flow")]
    CodeFlow,
    /// A retrieval of an agent's connection token from the vault (token
    /// exchange, docs/connections.md); plus a race for an expired one.
    Vault,
}

impl Mix {
    pub fn name(self) -> &'static str {
        match self {
            Mix::ClientCredentials => "client_credentials",
            Mix::Introspection => "introspection",
            Mix::Refresh => "refresh",
            Mix::CodeFlow => "code_flow",
            Mix::Vault => "vault",
        }
    }
}

/// The bounds and shape of a run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub mix: Mix,
    /// Connections, one worker each (1 to 1,024).
    pub connections: usize,
    /// How long to send (at most 10 minutes); with `requests`, whichever ends first.
    pub duration: Duration,
    /// How many requests at most.
    pub requests: Option<u64>,
    /// Open-loop: requests per second, whatever the answers' pace.
    pub rate: Option<u64>,
    /// Print a progress line every second (on a terminal).
    pub progress: bool,
}

/// The longest run: every loop is bounded in time as well as in requests.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// The most connections.
pub const MAX_CONNECTIONS: usize = 1_024;

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the profile has no [clients.{0}] with a client secret (client_secret_basic or client_secret_post); load needs one")]
    NoClient(&'static str),
    #[error("the metadata has no `{0}`")]
    NoEndpoint(&'static str),
    #[error("{0}")]
    Unsupported(String),
    #[error("setting the load up failed: {0}")]
    Setup(String),
    #[error("{0}")]
    Bounds(String),
}

/// Everything the workers share.
pub(super) struct Plan {
    pub mix: Mix,
    pub deadline: Instant,
    pub started: Instant,
    pub budget: u64,
    pub rate: Option<u64>,
    pub next: AtomicU64,
}

/// An empty latency histogram: 1 µs to 10 minutes, 3 significant figures.
pub(super) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}
