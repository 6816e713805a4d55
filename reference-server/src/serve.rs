//! The hub's HTTP listener, bounded so slow or idle clients cannot starve it.
//!
//! `axum::serve` keeps every connection as long as the client likes: a
//! client sending half a header, or nothing at all, held its socket for as
//! long as it cared to, and 1,100 idle sockets made a hub with 1,024 file
//! descriptors unreachable. Here every connection needs a permit (at most
//! [`Limits::max_connections`] at once; beyond that a new connection is
//! closed at once, before anything is read), and a request's headers must
//! arrive within [`Limits::header_read_timeout`], also on a kept-alive
//! connection waiting for its next request. Bodies are bounded in time by
//! the router's body timeout (see `app.rs`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::{Extension, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tower_layer::Layer;

/// How much of the host one client may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more are closed on arrival.
    pub max_connections: usize,
    /// How long a connection may take to send a request's headers, or sit
    /// idle between requests.
    pub header_read_timeout: Duration,
    /// How long in-flight requests get to finish at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` fires, then lets the
/// connections in flight finish (up to the grace period).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    // HTTP/1.1 only: its header-read timer runs from the moment a
    // connection waits for a request, where version detection (auto) would
    // wait for a first byte without any bound.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of descriptors, or a connection reset before accept:
                // the listener itself is fine; try the next one.
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::task::yield_now().await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "connection refused: the hub is at its connection limit");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        // The peer address for `ConnectInfo`, added to each request as
        // `axum::serve` does; the router is shared, not rebuilt per connection.
        let service = TowerToHyperService::new(Extension(ConnectInfo(peer)).layer(router.clone()));
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period were dropped");
    }
    Ok(())
}
