//! What the Client ID Metadata Document resolver keeps between requests:
//! fetched documents and key sets until they expire, and the origins the
//! operator trusts. Part of the hub's context, so it knows no endpoint.

use std::collections::HashMap;
use std::net::IpAddr;

use jsonwebtoken::jwk::JwkSet;
use tokio::sync::{Mutex, RwLock};
use url::Url;

use crate::error::OAuthError;
use crate::model::Client;

/// Why a Client ID Metadata Document was not accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CimdError {
    /// CIMD §3: the client_id must be an https URL with a path.
    #[error("the client_id URL is not acceptable: {0}")]
    BadUrl(String),
    /// CIMD security considerations (SSRF): special-use addresses are never fetched.
    #[error("the client_id URL points at a special-use address ({0})")]
    SpecialUseAddress(IpAddr),
    /// The document could not be fetched (timeout, connection, non-200, redirect).
    #[error("the client metadata document could not be fetched: {0}")]
    Fetch(String),
    /// The document exceeds the size cap.
    #[error("the fetched document is larger than {0} bytes")]
    TooLarge(usize),
    /// CIMD §4.1: the document must be valid JSON with the required properties.
    #[error("the client metadata document is invalid: {0}")]
    Invalid(String),
    /// CIMD §4.1: `client_id` in the document must equal the URL exactly.
    #[error("the document's client_id does not match the URL it was fetched from")]
    ClientIdMismatch,
    /// CIMD §4.1: shared-secret client authentication is not allowed.
    #[error("the document declares a shared-secret authentication method `{0}`")]
    SharedSecret(String),
}

impl From<CimdError> for OAuthError {
    fn from(err: CimdError) -> Self {
        OAuthError::InvalidClient(err.to_string())
    }
}

/// A cached resolution and when it expires on the hub clock.
pub type CacheEntry = (Result<Client, CimdError>, i64);

/// Fetched documents and the operator's trusted origins.
#[derive(Default)]
pub struct CimdResolver {
    /// Origins (`http://127.0.0.1:4000`) that may be fetched over http and on loopback.
    pub(crate) trusted_origins: RwLock<Vec<String>>,
    /// URL → (client, cache expiry on the hub clock), or a cached failure under a fault.
    pub(crate) cache: Mutex<HashMap<String, CacheEntry>>,
    /// `jwks_uri` → (key set, cache expiry on the hub clock).
    pub(crate) jwks_cache: Mutex<HashMap<String, (JwkSet, i64)>>,
}

impl CimdResolver {
    pub fn new(trusted_origins: Vec<String>) -> Self {
        CimdResolver {
            trusted_origins: RwLock::new(trusted_origins),
            cache: Mutex::default(),
            jwks_cache: Mutex::default(),
        }
    }

    pub async fn trust_origin(&self, origin: &str) {
        let mut trusted = self.trusted_origins.write().await;
        if !trusted.iter().any(|o| o == origin) {
            trusted.push(origin.to_owned());
        }
    }

    pub(crate) async fn is_trusted(&self, url: &Url) -> bool {
        let origin = url.origin().ascii_serialization();
        self.trusted_origins.read().await.contains(&origin)
    }
}
