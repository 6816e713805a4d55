//! The composition root: opens storage, applies the seed, builds the router
//! and starts what runs beside it (the audit webhook, the Agenda MCP server).
//! Nothing in the hub imports this module; it imports what it wires.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{oneshot, RwLock};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::HubConfig;
use crate::error::HubError;
use crate::hub::{Hub, ISSUER_PATH};
use crate::keys::SigningKeys;
use crate::seed::Seed;
use crate::store::Store;

/// A hub serving in the background, as returned by [`spawn`].
pub struct RunningHub {
    pub local_addr: SocketAddr,
    pub base_url: String,
    pub issuer: String,
    /// `(MCP server id, canonical resource URL)` for every protected MCP server.
    pub resources: Vec<(String, String)>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), std::io::Error>>,
    /// The audit delivery tasks (webhook, JSON Lines file), stopped with the hub.
    deliveries: Vec<JoinHandle<()>>,
}

impl RunningHub {
    /// Serves until the task ends (for the `hub` binary).
    pub async fn wait(mut self) -> Result<(), std::io::Error> {
        let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
        task.await.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }

    /// Stops serving and waits for in-flight requests to finish.
    pub async fn stop(mut self) {
        for delivery in self.deliveries.drain(..) {
            delivery.abort();
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
        for delivery in self.deliveries.drain(..) {
            delivery.abort();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
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
    let cimd = crate::oauth::cimd_cache::CimdResolver::new(config.cimd_trusted_origins.clone());
    let registrations = crate::throttle::Throttle::new(
        config.registration_rate_limit,
        60,
        config.registration_rate_exempt.clone(),
    );
    let hub = Arc::new(Hub {
        cimd,
        registrations,
        signin_guard: Default::default(),
        second_factor_guard: Default::default(),
        policy_cache: RwLock::new(None),
        audit_failing: std::sync::atomic::AtomicBool::new(false),
        audit_feed: tokio::sync::broadcast::channel(1024).0,
        vault,
        connection_flights: Default::default(),
        provider_http: crate::vault::retrieval::provider_client(config.provider_timeout),
        provider_http_unbounded: crate::vault::retrieval::provider_client(
            std::time::Duration::from_secs(3600),
        ),
        pending_connects: Default::default(),
        sso_flights: Default::default(),
        faults: config.faults.clone(),
        variants: config.variants.clone(),
        config,
        store,
        clock,
        keys: RwLock::new(keys),
        base_url: base_url.clone(),
        issuer: issuer.clone(),
        pages: crate::pages::environment(),
    });
    crate::vault::stored::check_vault_keys(&hub).await?;
    if let Some(seed) = seed {
        seed.apply(&hub).await?;
    }
    if let Some(url) = &hub.config.demo_provider_url {
        crate::vault::definition::point_demo_connection(&hub, url).await?;
    }
    if let Some(issuer) = &hub.config.demo_idp_issuer {
        crate::oauth::sso::point_demo_tenant(&hub, issuer).await?;
    }
    let resources = hub
        .store
        .mcp_servers()
        .await?
        .iter()
        .map(|s| (s.id.clone(), hub.resource_url(s)))
        .collect();
    let mut deliveries = Vec::new();
    if let Some(url) = hub.config.audit_webhook.clone() {
        deliveries.push(crate::audit::webhook::spawn(hub.clone(), url).await?);
    }
    if let Some(path) = hub.config.audit_jsonl.clone() {
        deliveries.push(crate::audit::jsonl::spawn(hub.clone(), path).await?);
    }
    let agenda = match &hub.config.agenda {
        Some(settings) => Some(crate::mcp::agenda::router(&hub, settings).await?),
        None => None,
    };
    let mut limits = hub.config.limits;
    if hub.faults.on(crate::fault::Fault::NoHeaderReadTimeout) {
        // A day: as good as none for any client that tests it.
        limits.header_read_timeout = std::time::Duration::from_secs(86_400);
    }
    let mut router = crate::app::router(hub);
    if let Some((path, agenda)) = agenda {
        router = router.nest_service(&path, agenda);
    }
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(crate::serve::serve(listener, router, limits, rx));
    Ok(RunningHub {
        local_addr,
        base_url,
        issuer,
        resources,
        shutdown: Some(tx),
        task,
        deliveries,
    })
}
