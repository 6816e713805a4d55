//! An https front for a loopback http server: TLS ends here, with a
//! certificate and key the target profile names, and the bytes go on to
//! the server behind (the CIMD host's wiremock server, which cannot speak
//! TLS itself). A target that fetches Client ID Metadata Documents over
//! https only can then be pointed at the harness's host, trusting the
//! profile's certificate (for example `NODE_EXTRA_CA_CERTS`).
//!
//! Bounded: it listens on 127.0.0.1 only, each connection is one task that
//! ends when either side closes, a handshake has 10 seconds, and the task
//! is aborted with the scenario.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

#[derive(Debug, Error)]
pub enum TlsFrontError {
    #[error("cannot read the TLS certificate chain {path}: {message}")]
    Certificate { path: String, message: String },
    #[error("cannot read the TLS private key {path}: {message}")]
    Key { path: String, message: String },
    #[error("the TLS certificate and key do not make a server configuration: {0}")]
    Config(String),
    #[error("cannot listen on 127.0.0.1: {0}")]
    Listen(std::io::Error),
}

/// A running front; dropping it stops accepting.
#[derive(Debug)]
pub struct TlsFront {
    pub address: SocketAddr,
    task: JoinHandle<()>,
}

impl TlsFront {
    /// `https://127.0.0.1:<port>`.
    pub fn origin(&self) -> String {
        format!("https://{}", self.address)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The server configuration from PEM files: a certificate chain (leaf
/// first) and its PKCS#8, PKCS#1 or SEC1 private key.
pub fn server_config(certificate: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsFrontError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| TlsFrontError::Certificate {
            path: certificate.display().to_string(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsFrontError::Certificate {
            path: certificate.display().to_string(),
            message: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsFrontError::Key {
        path: key.display().to_string(),
        message: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsFrontError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsFrontError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}

/// Listens on 127.0.0.1 (a free port) and forwards every TLS connection's
/// plaintext to `behind`.
pub async fn start(
    config: Arc<ServerConfig>,
    behind: SocketAddr,
) -> Result<TlsFront, TlsFrontError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(TlsFrontError::Listen)?;
    let address = listener.local_addr().map_err(TlsFrontError::Listen)?;
    let acceptor = TlsAcceptor::from(config);
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            connections.spawn(forward(acceptor, stream, behind));
            // Reap finished connections so the set stays small.
            while connections.try_join_next().is_some() {}
        }
    });
    Ok(TlsFront { address, task })
}

async fn forward(acceptor: TlsAcceptor, stream: TcpStream, behind: SocketAddr) {
    let Ok(Ok(mut tls)) =
        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
    else {
        return;
    };
    let Ok(mut plain) = TcpStream::connect(behind).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
}
