//! The running hub: configuration, storage, keys and clock shared by every endpoint.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{oneshot, RwLock};
use tokio::task::JoinHandle;

use crate::audit::event::AuditEvent;
use crate::clock::Clock;
use crate::config::HubConfig;
use crate::error::HubError;
use crate::fault::Faults;
use crate::keys::SigningKeys;
use crate::model::McpServer;
use crate::seed::Seed;
use crate::store::Store;

/// Path of the issuer under the public origin. The issuer has a path so that
/// RFC 8414 path insertion is exercised for real.
pub const ISSUER_PATH: &str = "/oauth";

pub struct Hub {
    pub config: HubConfig,
    pub store: Store,
    pub clock: Clock,
    pub keys: RwLock<SigningKeys>,
    pub faults: Faults,
    /// Public origin without a trailing slash, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    /// Issuer identifier, byte-exact as advertised (RFC 8414 §2).
    pub issuer: String,
    pub pages: minijinja::Environment<'static>,
    pub cimd: crate::oauth::cimd::CimdResolver,
    /// Budget of dynamic registrations per source address.
    pub registrations: crate::throttle::Throttle,
    /// Policies as last read from the store; emptied on every change.
    pub policy_cache: RwLock<Option<Arc<Vec<crate::policy::rules::Policy>>>>,
    /// Test mode: make every audit write fail, to prove actions fail with it.
    pub audit_failing: std::sync::atomic::AtomicBool,
    /// Every audit event as written, for the live feed (Server-Sent Events).
    pub audit_feed: tokio::sync::broadcast::Sender<AuditEvent>,
    /// The JSON Lines audit file, when configured.
    pub audit_jsonl: Option<std::sync::Mutex<std::fs::File>>,
    /// The keys Connection secrets are sealed with.
    pub vault: crate::vault::sealing::VaultKeys,
    /// One lock per stored Connection token, so its refresh is single-flight.
    pub connection_flights: crate::vault::retrieval::Flights,
    /// Calls to Connection providers, bounded by `provider_timeout`.
    pub provider_http: reqwest::Client,
    /// The same without a useful bound, for the `unbounded-provider-timeout` fault.
    pub provider_http_unbounded: reqwest::Client,
    /// Connect flows waiting for the provider's redirect back, by `state`.
    pub pending_connects: crate::vault::connect::PendingConnects,
}

impl Hub {
    /// The canonical resource URL of an MCP server (RFC 8707 §2, RFC 9728 §1.2).
    pub fn resource_url(&self, server: &McpServer) -> String {
        format!("{}{}", self.base_url, server.path)
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
    /// written to the store, the JSON Lines file (if configured) and the live feed.
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
        if let Some(file) = &self.audit_jsonl {
            use std::io::Write;
            let line = serde_json::to_string(&event)?;
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            writeln!(file, "{line}")
                .and_then(|_| file.flush())
                .map_err(|e| HubError::Config(format!("audit JSON Lines file: {e}")))?;
        }
        // Nobody listening is fine: the live feed is best effort, the store is the record.
        let _ = self.audit_feed.send(event);
        Ok(())
    }
}

/// A hub serving in the background, as returned by [`spawn`].
pub struct RunningHub {
    pub local_addr: SocketAddr,
    pub base_url: String,
    pub issuer: String,
    /// `(MCP server id, canonical resource URL)` for every protected MCP server.
    pub resources: Vec<(String, String)>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), std::io::Error>>,
    /// The audit webhook's delivery task, stopped with the hub.
    webhook: Option<JoinHandle<()>>,
}

impl RunningHub {
    /// Serves until the task ends (for the `hub` binary).
    pub async fn wait(mut self) -> Result<(), std::io::Error> {
        let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
        task.await.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }

    /// Stops serving and waits for in-flight requests to finish.
    pub async fn stop(mut self) {
        if let Some(webhook) = self.webhook.take() {
            webhook.abort();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
        let _ = task.await;
    }
}

impl Drop for RunningHub {
    fn drop(&mut self) {
        if let Some(webhook) = self.webhook.take() {
            webhook.abort();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The Agenda MCP server, configured to reach this hub over HTTP like any
/// other resource server would, and the path to mount it at.
async fn agenda_router(
    hub: &Hub,
    settings: &crate::config::AgendaSettings,
) -> Result<(String, axum::Router), HubError> {
    let server = hub
        .store
        .mcp_servers()
        .await?
        .into_iter()
        .find(|s| s.id == settings.server_id)
        .ok_or_else(|| {
            HubError::Config(format!(
                "the Agenda MCP server needs the MCP server `{}` in the seed",
                settings.server_id
            ))
        })?;
    let config = demo::agenda::AgendaConfig {
        resource: hub.resource_url(&server),
        resource_metadata: crate::oauth::metadata::resource_metadata_url(hub, &server.path),
        issuer: hub.issuer.clone(),
        jwks_uri: hub.endpoint("/jwks.json"),
        token_endpoint: hub.endpoint("/token"),
        audit_endpoint: hub.endpoint("/audit/tool-executions"),
        client_id: settings.client_id.clone(),
        client_secret: settings.client_secret.clone(),
        connection: settings.connection.clone(),
        api_base_url: None,
        faults: demo::agenda::AgendaFaults {
            token_passthrough: hub.faults.on(crate::fault::Fault::McpTokenPassthrough),
            skip_tool_scope: hub.faults.on(crate::fault::Fault::AgendaSkipToolScope),
        },
    };
    Ok((server.path, demo::agenda::router(config)))
}

/// Opens storage, applies the seed, binds the listener and serves in the background.
pub async fn spawn(config: HubConfig) -> Result<RunningHub, HubError> {
    if config.test_mode && config.control_token.as_deref().is_none_or(str::is_empty) {
        return Err(HubError::Config(
            "--test-mode needs a control token (--control-token or HUB_CONTROL_TOKEN)".into(),
        ));
    }
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| HubError::Config(format!("cannot listen on {}: {e}", config.bind)))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| HubError::Config(e.to_string()))?;
    let base_url = config
        .public_url
        .clone()
        .map(|u| u.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("http://{local_addr}"));
    let issuer = format!("{base_url}{ISSUER_PATH}");

    let vault = if !config.vault_keys.is_empty() {
        crate::vault::sealing::VaultKeys::parse(&config.vault_keys)
    } else {
        match config.seed_dir.as_ref().map(|d| d.join("vault-dev.key")) {
            Some(path) if path.is_file() => {
                tracing::warn!(
                    path = %path.display(),
                    "using the development vault key from the seed directory; pass --vault-key in production"
                );
                crate::vault::sealing::VaultKeys::from_file(&path)
            }
            _ => Err(crate::vault::sealing::VaultError::NoKey),
        }
    }
    .map_err(|e| HubError::Config(e.to_string()))?;
    let clock = Clock::default();
    let store = Store::open(&config.database).await?;
    let seed = match &config.seed_dir {
        Some(dir) => Some(Seed::load_dir(dir)?),
        None => None,
    };
    let keys = SigningKeys::load_or_create(&store, clock.now()).await?;
    let cimd = crate::oauth::cimd::CimdResolver::new(config.cimd_trusted_origins.clone());
    let registrations = crate::throttle::Throttle::new(
        config.registration_rate_limit,
        60,
        config.registration_rate_exempt.clone(),
    );
    let audit_jsonl = match &config.audit_jsonl {
        Some(path) => Some(std::sync::Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    HubError::Config(format!("cannot open audit file {}: {e}", path.display()))
                })?,
        )),
        None => None,
    };
    let hub = Arc::new(Hub {
        cimd,
        registrations,
        policy_cache: RwLock::new(None),
        audit_failing: std::sync::atomic::AtomicBool::new(false),
        audit_feed: tokio::sync::broadcast::channel(1024).0,
        audit_jsonl,
        vault,
        connection_flights: Default::default(),
        provider_http: crate::vault::retrieval::provider_client(config.provider_timeout),
        provider_http_unbounded: crate::vault::retrieval::provider_client(
            std::time::Duration::from_secs(3600),
        ),
        pending_connects: Default::default(),
        faults: config.faults.clone(),
        config,
        store,
        clock,
        keys: RwLock::new(keys),
        base_url: base_url.clone(),
        issuer: issuer.clone(),
        pages: crate::pages::environment(),
    });
    crate::vault::connections::check_vault_keys(&hub).await?;
    if let Some(seed) = seed {
        seed.apply(&hub).await?;
    }
    if let Some(url) = &hub.config.demo_provider_url {
        crate::vault::connections::point_demo_connection(&hub, url).await?;
    }
    let resources = hub
        .store
        .mcp_servers()
        .await?
        .iter()
        .map(|s| (s.id.clone(), hub.resource_url(s)))
        .collect();
    let webhook = match hub.config.audit_webhook.clone() {
        Some(url) => Some(crate::audit::webhook::spawn(hub.clone(), url).await?),
        None => None,
    };
    let agenda = match &hub.config.agenda {
        Some(settings) => Some(agenda_router(&hub, settings).await?),
        None => None,
    };
    let mut router = crate::app::router(hub);
    if let Some((path, agenda)) = agenda {
        router = router.nest_service(&path, agenda);
    }
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = rx.await;
        })
        .await
    });
    Ok(RunningHub {
        local_addr,
        base_url,
        issuer,
        resources,
        shutdown: Some(tx),
        task,
        webhook,
    })
}
