//! Redirect URI rules, shared by registration, the admin API and Client ID
//! Metadata Documents: absolute, https or loopback http, no fragment.

use std::net::IpAddr;

use url::{Host, Url};

use crate::error::OAuthError;
use crate::fault::Fault;
use crate::hub::Hub;

/// Is `host` a loopback host, for which plain http is allowed (OAuth 2.1 §8.4.2, RFC 8252 §7.3)?
pub fn is_loopback(host: Option<Host<&str>>) -> bool {
    match host {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Redirect URI rules: absolute, https or loopback http, no fragment (RFC 6749 §3.1.2, OAuth 2.1 §2.3.1).
pub fn validate_redirect_uri(hub: &Hub, raw: &str) -> Result<(), OAuthError> {
    let bad = |why: &str| OAuthError::InvalidRedirectUri(format!("redirect URI `{raw}` {why}"));
    let url = Url::parse(raw).map_err(|_| bad("is not an absolute URL"))?;
    if url.fragment().is_some() && !hub.faults.on(Fault::AcceptFragmentRedirect) {
        return Err(bad("must not contain a fragment"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url.host()) || hub.faults.on(Fault::AcceptHttpRedirect) => Ok(()),
        "http" => Err(bad("uses plain http on a host that is not loopback")),
        _ => Err(bad("must use https, or http on a loopback host")),
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;
    use url::Url;

    #[test]
    fn only_loopback_hosts_count_as_loopback() {
        for (uri, loopback) in [
            ("http://127.0.0.1:9/cb", true),
            ("http://127.8.9.10/cb", true),
            ("http://[::1]:8/cb", true),
            ("http://localhost/cb", true),
            ("http://localhost.evil.example/cb", false),
            ("http://10.0.0.1/cb", false),
            ("http://example.com/cb", false),
        ] {
            let url = Url::parse(uri).unwrap();
            assert_eq!(is_loopback(url.host()), loopback, "{uri}");
        }
    }
}
