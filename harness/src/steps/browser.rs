//! The user's browser: following redirects, telling when it leaves the hub,
//! and whom it signs in as. Shared by `authorize` and `connect`.

use serde_json::{json, Value};
use url::Url;

use super::failure::{undeclared, StepError};
use super::run::Run;
use crate::http::Response;

/// Where a redirect sends the browser, resolved against the current page.
pub(super) fn redirect_location(response: &Response, current: &str) -> Option<String> {
    if !(300..400).contains(&response.status) {
        return None;
    }
    let location = response.header("location")?;
    Url::parse(current)
        .ok()?
        .join(location)
        .ok()
        .map(|u| u.to_string())
}

/// Whether `url` names this machine (a loopback address or `localhost`):
/// then a second source address on loopback (127.0.0.2) reaches it too.
pub(super) fn on_loopback(url: &str) -> bool {
    Url::parse(url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
        .is_some_and(|h| match h {
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
            url::Host::Domain(d) => d == "localhost",
        })
}

/// The harness's second source address on loopback, for probes that must
/// not spend the budget of its ordinary traffic.
pub(super) const SECOND_SOURCE: std::net::IpAddr =
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// The facts of a browser the server answered with a page of its own instead
/// of a redirect (an error page, a refusal): its status and error, if any.
pub(super) fn not_redirected(response: &Response, page: &str) -> Value {
    json!({
        "outcome": "not_redirected",
        "status": response.status,
        "page": page,
        "error": response.json().and_then(|b| b.get("error").cloned()),
    })
}

pub(super) fn without_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

impl Run<'_> {
    /// The variables the browser's forms are filled from, signed in as a
    /// `[users]` name of the profile instead of `[user]` when one is given.
    pub(super) fn vars_as(&self, user: Option<&str>) -> Result<Value, StepError> {
        let mut vars = self.vars();
        if let Some(name) = user {
            let other = self
                .profile
                .users
                .get(name)
                .ok_or_else(|| undeclared(format!("the profile declares no [users.{name}]")))?;
            vars["user"]["username"] = json!(other.username);
            vars["user"]["password"] = json!(other.password);
        }
        Ok(vars)
    }
}
