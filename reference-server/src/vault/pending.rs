//! Connect flows waiting for the provider's redirect back, kept in the hub's
//! context between the user's visit and the callback.

/// How long a user has to approve at the provider, in seconds.
const CONNECT_TTL_SECS: i64 = 600;

/// A connect flow waiting for the provider's redirect back.
pub(crate) struct PendingConnect {
    pub(crate) state: String,
    /// The PKCE verifier, when a challenge was sent.
    pub(crate) verifier: Option<String>,
    pub(crate) user_id: String,
    pub(crate) connection_id: String,
    pub(crate) created_at: i64,
}

/// Pending connect flows, in the order they started. Short-lived, so memory
/// is enough: a restart only makes the user start again.
#[derive(Default)]
pub struct PendingConnects(std::sync::Mutex<Vec<PendingConnect>>);

impl std::fmt::Debug for PendingConnects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingConnects(…)")
    }
}

impl PendingConnects {
    pub(crate) fn push(&self, pending: PendingConnect, now: i64) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|p| p.created_at + CONNECT_TTL_SECS > now);
        list.push(pending);
    }

    /// Removes and returns the flow of `connection_id` that `state` names,
    /// if it is still live. Under the `connect-ignores-state` fault an
    /// unknown state takes that connection's latest flow.
    pub(crate) fn take(
        &self,
        connection_id: &str,
        state: &str,
        now: i64,
        ignore_state: bool,
    ) -> Option<PendingConnect> {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|p| p.created_at + CONNECT_TTL_SECS > now);
        let ours = |p: &PendingConnect| p.connection_id == connection_id;
        match list.iter().position(|p| ours(p) && p.state == state) {
            Some(i) => Some(list.remove(i)),
            None if ignore_state => list.iter().rposition(ours).map(|i| list.remove(i)),
            None => None,
        }
    }
}
