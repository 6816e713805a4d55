//! Sign-ins in flight at a tenant's identity provider: what the hub keeps
//! between sending the browser there and the provider's redirect back. Kept
//! in the hub's context (it imports nothing above it), in memory: a sign-in
//! lasts minutes, and a restart only makes the user start again.

use std::collections::VecDeque;
use std::sync::Mutex;

/// How long a user has to sign in at the provider, in seconds.
pub const SSO_TTL_SECS: i64 = 600;
/// The most sign-ins in flight at once; beyond it the oldest is forgotten,
/// so a flood of started sign-ins cannot grow the hub's memory.
const MAX_IN_FLIGHT: usize = 10_000;

/// One sign-in at a provider, waiting for the redirect back.
pub struct SsoFlight {
    /// The digest of the cookie of the browser that was sent there: only
    /// that browser's redirect back completes the sign-in (RFC 6749 §10.12).
    pub binding: String,
    /// The `state` sent to the provider.
    pub state: String,
    /// The `nonce` sent, which the ID token must carry back.
    pub nonce: String,
    /// The PKCE verifier of the challenge sent.
    pub pkce_verifier: String,
    /// The hub's authorization request the user is signing in for.
    pub request_id: String,
    pub tenant: String,
    pub created_at: i64,
}

/// The sign-ins in flight, oldest first.
#[derive(Default)]
pub struct SsoFlights(Mutex<VecDeque<SsoFlight>>);

impl std::fmt::Debug for SsoFlights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SsoFlights(…)")
    }
}

impl SsoFlights {
    pub fn push(&self, flight: SsoFlight, now: i64) {
        let mut flights = self.0.lock().unwrap_or_else(|e| e.into_inner());
        flights.retain(|f| f.created_at + SSO_TTL_SECS > now);
        while flights.len() >= MAX_IN_FLIGHT {
            flights.pop_front();
        }
        flights.push_back(flight);
    }

    /// Removes and returns the live sign-in of the browser whose cookie
    /// digest is `binding`: the latest, if it started more than one.
    pub fn take(&self, binding: &str, now: i64) -> Option<SsoFlight> {
        let mut flights = self.0.lock().unwrap_or_else(|e| e.into_inner());
        flights.retain(|f| f.created_at + SSO_TTL_SECS > now);
        let i = flights.iter().rposition(|f| f.binding == binding)?;
        flights.remove(i)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flight(binding: &str, at: i64) -> SsoFlight {
        SsoFlight {
            binding: binding.into(),
            state: "s".into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            request_id: "r".into(),
            tenant: "t".into(),
            created_at: at,
        }
    }

    #[test]
    fn a_flight_is_taken_once_by_its_browser_before_it_expires() {
        let flights = SsoFlights::default();
        flights.push(flight("a", 0), 0);
        assert!(flights.take("b", 1).is_none());
        assert!(flights.take("a", 1).is_some());
        assert!(flights.take("a", 1).is_none());
        flights.push(flight("a", 0), 0);
        assert!(flights.take("a", SSO_TTL_SECS).is_none(), "expired");
    }

    #[test]
    fn the_oldest_are_forgotten_beyond_the_bound() {
        let flights = SsoFlights::default();
        for i in 0..MAX_IN_FLIGHT + 5 {
            flights.push(flight(&i.to_string(), 0), 0);
        }
        assert_eq!(flights.len(), MAX_IN_FLIGHT);
        assert!(flights.take("0", 0).is_none());
        assert!(flights.take(&(MAX_IN_FLIGHT + 4).to_string(), 0).is_some());
    }
}
