//! The registration budget: how the MCP client lives with a server that
//! rate-limits Dynamic Client Registration (RFC 6585 §4, `429` with
//! `Retry-After`).
//!
//! A rate limit is the server's right, not a verdict on anything else, so it
//! must never cascade into `error`s. Every successful registration of a run
//! is kept in a pool keyed by what was sent (apart from `client_name`). When
//! the server answers `429`, the client waits `Retry-After` if that is within
//! the profile's bound (`[registration] retry_after_max_secs`) and tries once
//! more; then a *setup* registration reuses a client registered earlier in
//! the run with the same metadata, and anything else (a registration the
//! scenario judges, or metadata never registered before) is `skip` with the
//! reason. A registration a scenario judges is never answered from the pool.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

/// A client the harness registered (or hosts, or created) during this scenario.
#[derive(Debug, Clone)]
pub struct Registered {
    pub client_id: String,
    pub redirect_uri: String,
}

/// Clients registered during one run, by the metadata they were registered with.
#[derive(Debug, Default)]
pub struct RegistrationPool {
    clients: Mutex<HashMap<String, Vec<(Registered, Value)>>>,
}

impl RegistrationPool {
    /// The pool key: the request body without `client_name`, which only
    /// names the scenario's role.
    fn key(body: &Value) -> String {
        let mut body = body.clone();
        if let Some(map) = body.as_object_mut() {
            map.remove("client_name");
        }
        body.to_string()
    }

    /// Keeps a client the server registered, with its registration response.
    pub fn keep(&self, body: &Value, registered: Registered, response: Value) {
        if let Ok(mut clients) = self.clients.lock() {
            clients
                .entry(Self::key(body))
                .or_default()
                .push((registered, response));
        }
    }

    /// A client registered earlier in the run with the same metadata, other
    /// than those the scenario already holds (`taken`): two roles of one
    /// scenario never share a client.
    pub fn find(&self, body: &Value, taken: &[&str]) -> Option<(Registered, Value)> {
        self.clients
            .lock()
            .ok()?
            .get(&Self::key(body))?
            .iter()
            .find(|(r, _)| !taken.contains(&r.client_id.as_str()))
            .cloned()
    }
}

/// Seconds to wait from a `Retry-After` header: delay-seconds only
/// (RFC 9110 §10.2.3); an HTTP-date is treated as "too long".
pub fn retry_after_secs(header: Option<&str>) -> Option<u64> {
    header?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pool_ignores_client_name_but_not_metadata() {
        let pool = RegistrationPool::default();
        let sent = json!({"client_name": "a", "redirect_uris": ["http://127.0.0.1/cb"]});
        let registered = Registered {
            client_id: "c1".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
        };
        pool.keep(&sent, registered, json!({"client_id": "c1"}));
        let same = json!({"client_name": "b", "redirect_uris": ["http://127.0.0.1/cb"]});
        assert_eq!(
            pool.find(&same, &[]).map(|(r, _)| r.client_id),
            Some("c1".into())
        );
        assert!(
            pool.find(&same, &["c1"]).is_none(),
            "a held client is not handed out twice"
        );
        let other = json!({"client_name": "a", "redirect_uris": ["http://127.0.0.1/other"]});
        assert!(pool.find(&other, &[]).is_none());
    }

    #[test]
    fn retry_after_reads_delay_seconds_only() {
        assert_eq!(retry_after_secs(Some(" 12 ")), Some(12));
        assert_eq!(
            retry_after_secs(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(retry_after_secs(None), None);
    }
}
