//! The hub's shared context: configuration, storage, keys, clock and the
//! in-memory state every feature reads. Features take a `&Hub`; the hub
//! imports none of them, so it sits below every endpoint. What it keeps on
//! their behalf (the CIMD cache, vault keys, refresh flights, pending connect
//! flows) is defined in small modules that import nothing above them.

use std::sync::Arc;

use tokio::sync::RwLock;

use crate::audit::event::AuditEvent;
use crate::clock::Clock;
use crate::config::HubConfig;
use crate::error::HubError;
use crate::fault::Faults;
use crate::keys::SigningKeys;
use crate::model::McpServer;
use crate::store::Store;
use crate::variant::Variants;

/// Path of the issuer under the public origin. The issuer has a path so that
/// RFC 8414 path insertion is exercised for real.
pub const ISSUER_PATH: &str = "/oauth";

/// The running hub, shared by every request as `Arc<Hub>`.
pub struct Hub {
    pub config: HubConfig,
    pub store: Store,
    pub clock: Clock,
    pub keys: RwLock<SigningKeys>,
    pub faults: Faults,
    pub variants: Variants,
    /// Public origin without a trailing slash, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    /// Issuer identifier, byte-exact as advertised (RFC 8414 §2).
    pub issuer: String,
    pub pages: minijinja::Environment<'static>,
    pub cimd: crate::oauth::cimd_cache::CimdResolver,
    /// Failed sign-ins per account and per source, for back-off.
    pub signin_guard: crate::lockout::SignInGuard,
    /// Wrong second-factor codes per user and per source, for back-off.
    pub second_factor_guard: crate::lockout::SignInGuard,
    /// Budget of dynamic registrations per source address.
    pub registrations: crate::throttle::Throttle,
    /// Policies as last read from the store, indexed; emptied on every change.
    pub policy_cache: RwLock<Option<Arc<crate::policy::index::PolicySet>>>,
    /// Test mode: make every audit write fail, to prove actions fail with it.
    pub audit_failing: std::sync::atomic::AtomicBool,
    /// Every audit event as written, for the live feed (Server-Sent Events).
    pub audit_feed: tokio::sync::broadcast::Sender<AuditEvent>,
    /// The keys Connection secrets are sealed with.
    pub vault: crate::vault::sealing::VaultKeys,
    /// One lock per stored Connection token, so its refresh is single-flight.
    pub connection_flights: crate::vault::flights::Flights,
    /// Calls to Connection providers, bounded by `provider_timeout`.
    pub provider_http: reqwest::Client,
    /// The same without a useful bound, for the `unbounded-provider-timeout` fault.
    pub provider_http_unbounded: reqwest::Client,
    /// Connect flows waiting for the provider's redirect back, by `state`.
    pub pending_connects: crate::vault::pending::PendingConnects,
    /// Sign-ins in flight at tenants' identity providers.
    pub sso_flights: crate::oauth::sso_flights::SsoFlights,
}

impl Hub {
    /// The canonical resource URL of an MCP server (RFC 8707 §2, RFC 9728 §1.2).
    pub fn resource_url(&self, server: &McpServer) -> String {
        format!("{}{}", self.base_url, server.path)
    }

    /// Where a resource's metadata lives: the well-known prefix inserted
    /// before its path (RFC 9728 §3.1).
    pub fn resource_metadata_url(&self, path: &str) -> String {
        format!(
            "{}/.well-known/oauth-protected-resource{path}",
            self.base_url
        )
    }

    /// An endpoint under the issuer, e.g. `endpoint("/token")`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Finds the MCP server whose canonical URL is exactly `resource`.
    pub async fn server_for_resource(&self, resource: &str) -> Result<Option<McpServer>, HubError> {
        match resource.strip_prefix(&self.base_url) {
            Some(path) if path.starts_with('/') => self.store.mcp_server_by_path(path).await,
            _ => Ok(None),
        }
    }

    /// The address a request came from: the TCP peer, or, when the peer is a
    /// proxy the operator trusts, the last address it appended to
    /// `X-Forwarded-For`. Anyone else's forwarded-for header is ignored.
    pub fn source_address(
        &self,
        peer: std::net::IpAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        if !self.config.trusted_proxies.contains(&peer) {
            return peer;
        }
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .next_back()
            .unwrap_or(peer)
    }

    /// Records an audit event; the caller's action fails if this fails, so
    /// nothing is ever done unaudited. The event is stamped with the hub's
    /// time and the client's name, trust level and tags as they are now, then
    /// written to the store (the JSON Lines file and the webhook follow it,
    /// see `audit::jsonl` and `audit::webhook`) and to the live feed.
    pub async fn audit(&self, mut event: AuditEvent) -> Result<(), HubError> {
        use crate::fault::Fault;
        use std::sync::atomic::Ordering;
        let dropped = (self.faults.on(Fault::DropConsentAudit)
            && event.event_type.starts_with("consent."))
            || (self.faults.on(Fault::DropRefusalAudit) && event.event_type.ends_with(".refused"));
        if dropped {
            return Ok(());
        }
        if self.audit_failing.load(Ordering::Relaxed) {
            if self.faults.on(Fault::AuditFailureIgnored) {
                return Ok(());
            }
            return Err(HubError::Config(
                "the audit store is unwritable (test mode)".into(),
            ));
        }
        event.time = self.clock.now();
        if let Some(id) = event.client_id.clone() {
            if let Some(client) = self.store.client(&id).await? {
                event.client_name = Some(client.name);
                event.client_trust_level = Some(client.trust_level.as_str().to_owned());
                event.client_tags = client.tags;
            }
        }
        self.store.append_audit(&event).await?;
        // Nobody listening is fine: the live feed is best effort, the store is the record.
        let _ = self.audit_feed.send(event);
        Ok(())
    }
}
