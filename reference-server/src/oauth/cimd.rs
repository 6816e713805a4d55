//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document;
//! MCP authorization 2025-11-25): a `client_id` that is an https URL names a
//! JSON document, fetched by the hub, that describes the client.
//!
//! The fetch is hostile-input handling end to end:
//! * https only; plain http only for origins the operator trusts (tests);
//! * special-use addresses are refused before any connection: IP literals at
//!   once, names after resolution, and the connection is pinned to the
//!   address that was checked (no DNS rebinding between check and connect);
//! * no redirects, only a 200 counts, a 5 KiB cap and short timeouts;
//! * cached per `Cache-Control: max-age` (at most 24 h); failures never cached.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use serde_json::{Map, Value};

use url::{Host, Url};

use crate::fault::Fault;
use crate::hub::Hub;
use crate::model::{AuthMethod, Client, TrustLevel};
use crate::oauth::cimd_cache::CimdError;

/// The most of a document the hub reads.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// The most of a client's JWK Set the hub reads.
const MAX_JWKS_BYTES: usize = 32 * 1024;
/// How long a fetched JWK Set is kept when its response says nothing.
const DEFAULT_JWKS_CACHE_SECONDS: i64 = 300;
/// The longest a document is cached, whatever its headers say.
const MAX_CACHE_SECONDS: i64 = 24 * 3600;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Is this `client_id` a URL, to be resolved as a metadata document?
pub fn is_metadata_url(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

/// Whether the guard refuses `ip` (the special-use registries, see
/// [`crate::oauth::special_use`]); the fault lets IPv4-mapped IPv6 through.
fn refused_address(hub: &Hub, ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6)
            if v6.to_ipv4_mapped().is_some() && hub.faults.on(Fault::CimdSsrfMissesIpv4Mapped) =>
        {
            false
        }
        _ => crate::oauth::special_use::is_special_use(ip),
    }
}

/// Resolves a metadata-document client: from the cache, or by fetching it.
pub async fn resolve(hub: &Hub, client_id: &str) -> Result<Client, CimdError> {
    let now = hub.clock.now();
    if let Some((cached, expires)) = hub.cimd.cache.lock().await.get(client_id).cloned() {
        if expires > now {
            return cached;
        }
    }
    let fetched = fetch_and_validate(hub, client_id).await;
    let ttl = match &fetched {
        Ok((_, ttl)) if !hub.faults.on(Fault::CimdIgnoreCache) => *ttl,
        Err(_) if hub.faults.on(Fault::CimdCacheErrors) => 300,
        _ => 0,
    };
    let result = fetched.map(|(client, _)| client);
    if ttl > 0 {
        hub.cimd
            .cache
            .lock()
            .await
            .insert(client_id.to_owned(), (result.clone(), now + ttl));
    }
    result
}

async fn fetch_and_validate(hub: &Hub, client_id: &str) -> Result<(Client, i64), CimdError> {
    let url = Url::parse(client_id).map_err(|e| CimdError::BadUrl(e.to_string()))?;
    if url.path().is_empty() || url.path() == "/" {
        return Err(CimdError::BadUrl("it must have a path".into()));
    }
    let cap = if hub.faults.on(Fault::CimdNoSizeLimit) {
        16 << 20
    } else if hub.faults.on(Fault::CimdLenientSizeLimit) {
        64 << 10
    } else {
        MAX_DOCUMENT_BYTES
    };
    let (body, ttl) = guarded_get(hub, &url, cap).await?;
    let doc: Map<String, Value> = serde_json::from_slice(&body)
        .map_err(|_| CimdError::Invalid("not a JSON object".into()))?;
    let client = validate(hub, client_id, &doc)?;
    hub.store
        .upsert_client(&client)
        .await
        .map_err(|e| CimdError::Fetch(format!("could not record the client: {e}")))?;
    Ok((client, ttl))
}

/// A client's public keys from its `jwks_uri` (RFC 7591 §2), fetched with the
/// same guards as metadata documents and cached per its headers (5 minutes
/// when they say nothing). `refresh` skips the cache, for a `kid` not yet seen.
pub async fn client_jwks(hub: &Hub, jwks_uri: &str, refresh: bool) -> Result<JwkSet, CimdError> {
    let now = hub.clock.now();
    if !refresh {
        if let Some((keys, expires)) = hub.cimd.jwks_cache.lock().await.get(jwks_uri).cloned() {
            if expires > now {
                return Ok(keys);
            }
        }
    }
    let url = Url::parse(jwks_uri).map_err(|e| CimdError::BadUrl(e.to_string()))?;
    let (body, ttl) = guarded_get(hub, &url, MAX_JWKS_BYTES).await?;
    let keys: JwkSet = serde_json::from_slice(&body)
        .map_err(|_| CimdError::Invalid("the jwks_uri does not serve a JWK Set".into()))?;
    let ttl = if ttl > 0 {
        ttl
    } else {
        DEFAULT_JWKS_CACHE_SECONDS
    };
    hub.cimd
        .jwks_cache
        .lock()
        .await
        .insert(jwks_uri.to_owned(), (keys.clone(), now + ttl));
    Ok(keys)
}

/// GET with every guard: https (http only for trusted origins), no
/// special-use addresses unless trusted (checked before connecting, and the
/// connection pinned to the checked address), no redirects, only a 200, a
/// size cap and timeouts. Returns the body and its cache lifetime.
async fn guarded_get(hub: &Hub, url: &Url, cap: usize) -> Result<(Vec<u8>, i64), CimdError> {
    let trusted = hub.cimd.is_trusted(url).await;
    match url.scheme() {
        "https" => {}
        "http" if trusted => {}
        _ => return Err(CimdError::BadUrl("it must use https".into())),
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(CimdError::BadUrl(
            "it must not have a fragment or credentials".into(),
        ));
    }
    let host = url
        .host()
        .ok_or_else(|| CimdError::BadUrl("it has no host".into()))?;
    let port = url.port_or_known_default().unwrap_or(443);
    let guard = !trusted && !hub.faults.on(Fault::CimdNoSsrfGuard);

    let mut builder = reqwest::Client::builder()
        .redirect(if hub.faults.on(Fault::CimdFollowRedirects) {
            reqwest::redirect::Policy::limited(3)
        } else {
            reqwest::redirect::Policy::none()
        })
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("agentic-identity-hub/", env!("CARGO_PKG_VERSION")));
    match host {
        Host::Ipv4(ip) if guard && refused_address(hub, IpAddr::V4(ip)) => {
            return Err(CimdError::SpecialUseAddress(IpAddr::V4(ip)))
        }
        Host::Ipv6(ip) if guard && refused_address(hub, IpAddr::V6(ip)) => {
            return Err(CimdError::SpecialUseAddress(IpAddr::V6(ip)))
        }
        Host::Domain(domain) if guard => {
            // `Name.Example.` and `name.example` are one host: look up the
            // normalized name, and check every address it resolves to.
            let name = crate::oauth::special_use::normalized_domain(domain);
            let addrs: Vec<SocketAddr> = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio::net::lookup_host((name.as_str(), port)),
            )
            .await
            .map_err(|_| CimdError::Fetch("name resolution timed out".into()))?
            .map_err(|e| CimdError::Fetch(format!("name resolution failed: {e}")))?
            .collect();
            if let Some(bad) = addrs.iter().find(|a| refused_address(hub, a.ip())) {
                return Err(CimdError::SpecialUseAddress(bad.ip()));
            }
            let first = addrs
                .first()
                .ok_or_else(|| CimdError::Fetch("the name has no address".into()))?;
            // Connect to exactly the address that was checked.
            builder = builder.resolve(domain, *first);
        }
        _ => {}
    }
    let http = builder
        .build()
        .map_err(|e| CimdError::Fetch(e.to_string()))?;
    let mut response = http
        .get(url.as_str())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| {
            CimdError::Fetch(if e.is_timeout() {
                "timed out".into()
            } else {
                e.to_string()
            })
        })?;
    if response.status().is_redirection() {
        return Err(CimdError::Fetch(
            "it answered with a redirect, which is not followed".into(),
        ));
    }
    if response.status() != reqwest::StatusCode::OK {
        return Err(CimdError::Fetch(format!(
            "HTTP {}",
            response.status().as_u16()
        )));
    }
    let ttl = cache_ttl(response.headers());
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| CimdError::Fetch(e.to_string()))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > cap {
            return Err(CimdError::TooLarge(cap));
        }
    }
    Ok((body, ttl))
}

/// `Cache-Control: max-age=N` (capped at 24 h); `no-store`/`no-cache` or none: not cached.
fn cache_ttl(headers: &reqwest::header::HeaderMap) -> i64 {
    let Some(value) = headers
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
    else {
        return 0;
    };
    let directives: Vec<&str> = value.split(',').map(str::trim).collect();
    if directives
        .iter()
        .any(|d| d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("no-cache"))
    {
        return 0;
    }
    directives
        .iter()
        .find_map(|d| {
            d.strip_prefix("max-age=")
                .and_then(|n| n.parse::<i64>().ok())
        })
        .unwrap_or(0)
        .clamp(0, MAX_CACHE_SECONDS)
}

fn validate(hub: &Hub, client_id: &str, doc: &Map<String, Value>) -> Result<Client, CimdError> {
    let invalid = |why: &str| CimdError::Invalid(why.to_owned());
    if doc.get("client_id").and_then(Value::as_str) != Some(client_id)
        && !hub.faults.on(Fault::CimdSkipClientIdMatch)
    {
        return Err(CimdError::ClientIdMismatch);
    }
    let name = doc
        .get("client_name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| invalid("client_name is required"))?;
    if name.chars().any(crate::oauth::registration::is_disguising) {
        return Err(invalid(
            "client_name contains an invisible or direction-changing character",
        ));
    }
    let redirect_uris: Vec<String> = doc
        .get("redirect_uris")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .filter(|v: &Vec<String>| !v.is_empty())
        .ok_or_else(|| invalid("redirect_uris must be a non-empty array of strings"))?;
    for uri in &redirect_uris {
        crate::oauth::redirect_uri::validate_redirect_uri(hub, uri)
            .map_err(|e| CimdError::Invalid(e.description().to_owned()))?;
    }
    let method = doc
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .unwrap_or("none");
    if doc.contains_key("client_secret") {
        return Err(CimdError::SharedSecret("client_secret".into()));
    }
    let method = match method {
        "none" => AuthMethod::None,
        // CIMD §6.2: a document may establish a public key; the client is then confidential.
        "private_key_jwt" if hub.faults.on(Fault::CimdIgnoreRegisteredAuth) => AuthMethod::None,
        "private_key_jwt" => {
            let jwks_uri = doc.get("jwks_uri").and_then(Value::as_str);
            if jwks_uri.is_none() && !doc.contains_key("jwks") {
                return Err(invalid("private_key_jwt needs jwks_uri or jwks"));
            }
            if let Some(uri) = jwks_uri {
                let ok = Url::parse(uri).is_ok_and(|u| matches!(u.scheme(), "https" | "http"));
                if !ok {
                    return Err(invalid("jwks_uri must be an https URL"));
                }
            }
            AuthMethod::PrivateKeyJwt
        }
        other
            if other.starts_with("client_secret")
                && !hub.faults.on(Fault::CimdAllowSharedSecret) =>
        {
            return Err(CimdError::SharedSecret(other.to_owned()))
        }
        "client_secret_basic" | "client_secret_post" => AuthMethod::None,
        other => {
            return Err(invalid(&format!(
                "token_endpoint_auth_method `{other}` is not supported"
            )))
        }
    };
    Ok(Client {
        client_id: client_id.to_owned(),
        name: name.chars().take(200).collect(),
        trust_level: TrustLevel::Cimd,
        secret_hash: None,
        token_endpoint_auth_method: method,
        redirect_uris,
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        allowed_resources: Vec::new(),
        allowed_scopes: Vec::new(),
        tags: Vec::new(),
        tenant: None,
        jwks: doc.get("jwks").cloned(),
        metadata: Value::Object(doc.clone()),
        created_at: hub.clock.now(),
    })
}
