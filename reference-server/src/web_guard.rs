//! What the hub's own HTML pages demand of the browser that posts them: the
//! request comes from the hub's origin, and it carries the hub's cookie.
//!
//! A form post from another site (CSRF, RFC 6749 §10.12) or from a party
//! that only learnt a form's contents must not act for the user. The
//! console, the authorization pages (sign-in, consent) and the connect form
//! share these checks, so there is one definition of "same origin" and of a
//! hub cookie.

use axum::http::{header, HeaderMap, HeaderValue};

use crate::hub::Hub;

/// The value of one cookie of the request.
pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// How a cookie travels on requests from other sites.
#[derive(Debug, Clone, Copy)]
pub enum SameSite {
    /// Never: the console, reached only from its own pages.
    Strict,
    /// On top-level navigations too: the authorization flow arrives from the
    /// MCP client's site by redirect and must find the user's sign-in.
    Lax,
}

/// A hub cookie: HttpOnly, under `path`, Secure when the hub's public URL is
/// https; `max_age` in seconds (0 deletes it), or a session cookie.
pub fn cookie(
    hub: &Hub,
    name: &str,
    value: &str,
    path: &str,
    same_site: SameSite,
    max_age: Option<i64>,
) -> HeaderValue {
    let secure = if hub.base_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let max_age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    let same_site = match same_site {
        SameSite::Strict => "Strict",
        SameSite::Lax => "Lax",
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite={same_site}{secure}{max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// Whether a state-changing request comes from the hub's own pages:
/// `Sec-Fetch-Site` must be `same-origin` (or `none`, typed by the user) and
/// `Origin` exactly the hub's public origin. Headers a browser did not send
/// are not required (curl, tests); what else the page demands (a CSRF token,
/// a sign-in cookie) is.
///
/// The origin is compared with the hub's configured public URL only, never
/// with the request's own `Host`: a DNS-rebinding page is served under a
/// host name of the attacker's, which the `Host` header would then carry.
pub fn same_origin(hub: &Hub, headers: &HeaderMap) -> Result<(), &'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.to_str(), Ok("same-origin" | "none")) {
            return Err("The request came from another site");
        }
    }
    if foreign_origin(hub, headers) {
        return Err("The request's Origin is not this hub");
    }
    Ok(())
}

/// Whether the request carries an `Origin` other than the hub's public
/// origin (none at all is not foreign: not every client is a browser).
pub fn foreign_origin(hub: &Hub, headers: &HeaderMap) -> bool {
    let host_origin = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|_| hub.faults.on(crate::fault::Fault::OriginTrustsHost))
        .map(|host| format!("http://{host}"));
    headers.get(header::ORIGIN).is_some_and(|o| {
        !o.to_str().is_ok_and(|o| {
            o.eq_ignore_ascii_case(&hub.base_url)
                || host_origin
                    .as_deref()
                    .is_some_and(|h| o.eq_ignore_ascii_case(h))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a_login=a; a=b; other="),
        );
        assert_eq!(read_cookie(&headers, "a"), Some("b"));
        assert_eq!(read_cookie(&headers, "a_login"), Some("a"));
        assert_eq!(read_cookie(&headers, "other"), None);
        assert_eq!(read_cookie(&headers, "missing"), None);
    }
}
