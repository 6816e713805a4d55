//! Per-source request budgets for open endpoints (RFC 7591 §3: open
//! registration "MAY be rate-limited or otherwise limited to prevent a
//! denial-of-service attack").
//!
//! A window per source address that opens with its first request, counted on
//! the hub's [`Clock`](crate::clock::Clock) so the
//! test clock can open a new window without anyone sleeping. Budgets live in
//! memory: they protect one process and reset on restart, which is the point
//! of a throttle (not an audit record).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// How many requests one source may make per window.
#[derive(Debug)]
pub struct Throttle {
    limit: u32,
    window_secs: i64,
    exempt: Vec<IpAddr>,
    windows: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Over budget; retry after this many seconds.
    Refused {
        retry_after: i64,
    },
}

impl Throttle {
    /// `limit` 0 disables the throttle.
    pub fn new(limit: u32, window_secs: i64, exempt: Vec<IpAddr>) -> Throttle {
        Throttle {
            limit,
            window_secs: window_secs.max(1),
            exempt,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request from `source` at `now` (seconds).
    pub fn admit(&self, source: IpAddr, now: i64) -> Admission {
        if self.limit == 0 || self.exempt.contains(&source) {
            return Admission::Allowed;
        }
        let window = self.window_secs;
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        // Forget finished windows so the map stays as large as the set of active sources.
        if windows.len() > 10_000 {
            windows.retain(|_, (start, _)| now < *start + window);
        }
        let entry = windows.entry(source).or_insert((now, 0));
        if now >= entry.0 + window || now < entry.0 {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            return Admission::Refused {
                retry_after: entry.0 + window - now,
            };
        }
        entry.1 += 1;
        Admission::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_per_source_and_window() {
        let t = Throttle::new(2, 60, vec!["127.0.0.1".parse().unwrap()]);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        assert_eq!(t.admit(a, 125), Admission::Allowed);
        assert_eq!(t.admit(a, 130), Admission::Allowed);
        assert_eq!(t.admit(a, 150), Admission::Refused { retry_after: 35 });
        assert_eq!(
            t.admit(b, 150),
            Admission::Allowed,
            "budgets are per source"
        );
        assert_eq!(
            t.admit(a, 185),
            Admission::Allowed,
            "a new window resets the budget"
        );
        for _ in 0..10 {
            assert_eq!(
                t.admit("127.0.0.1".parse().unwrap(), 180),
                Admission::Allowed
            );
        }
        assert_eq!(Throttle::new(0, 60, vec![]).admit(a, 0), Admission::Allowed);
    }
}
