//! Back-off against online password guessing, per account and per source.
//!
//! RFC 6749 §10.10: the server "MUST utilize other means to protect
//! credentials intended for end-user usage"; RFC 6819 §5.1.4.2.3 suggests
//! locking accounts after failed attempts, and notes that a lock can itself
//! be abused to keep the owner out. So an account is never locked for good:
//! after a few free failures each further one doubles a short wait (30 s up
//! to 15 minutes), during which even the right password is refused without
//! being checked. A source address that fails across many accounts gets the
//! same treatment. Unknown usernames are counted like known ones, so the
//! answers do not tell which exist.
//!
//! Counted on the hub [`Clock`](crate::clock::Clock) (tests advance it; no
//! one sleeps) and kept in memory, bounded: a throttle protects a running
//! process, and a restart forgets it, as it should.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Failures an account may have before the waits begin.
pub const ACCOUNT_FREE_FAILURES: u32 = 5;
/// Failures one source address may have, over every account, before the waits begin.
pub const SOURCE_FREE_FAILURES: u32 = 30;
/// The first wait, doubled with every further failure.
const FIRST_WAIT: i64 = 30;
/// The longest wait.
const LONGEST_WAIT: i64 = 15 * 60;
/// A quiet spell this long forgets an account's or a source's failures.
const FORGET_AFTER: i64 = 15 * 60;
/// Entries kept at most per map; beyond it, forgotten ones are dropped first.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy, Default)]
struct Failures {
    count: u32,
    last: i64,
    locked_until: i64,
}

impl Failures {
    fn fail(&mut self, now: i64, free: u32) {
        if now - self.last > FORGET_AFTER {
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.last = now;
        if self.count > free {
            let doublings = (self.count - free - 1).min(20);
            let wait = (FIRST_WAIT << doublings).min(LONGEST_WAIT);
            self.locked_until = now.saturating_add(wait);
        }
    }
}

/// Whether a sign-in may be checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Too many recent failures; the password is not checked. Retry after this many seconds.
    Closed {
        retry_after: i64,
    },
}

/// Why a sign-in was refused unchecked, for the audit trail.
pub fn throttled_reason(retry_after: i64) -> String {
    format!("too many failed sign-ins: password not checked, retry in {retry_after} s")
}

/// What the sign-in page tells the person waiting.
pub fn throttled_message(retry_after: i64) -> String {
    format!("Too many failed sign-ins. Try again in {retry_after} seconds.")
}

/// The failure counts of one hub.
#[derive(Debug, Default)]
pub struct SignInGuard {
    accounts: Mutex<HashMap<String, Failures>>,
    sources: Mutex<HashMap<IpAddr, Failures>>,
}

fn account_key(username: &str) -> String {
    username.trim().to_lowercase()
}

/// Counts a failure for `key`, keeping the map within [`MAX_ENTRIES`]: when
/// full, forgotten entries are dropped first; if it is still full, a key not
/// yet in it is not counted (the other map, per account or per source, still
/// is), so a flood of new names cannot grow the hub's memory.
fn count_failure<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Failures>,
    key: K,
    now: i64,
    free: u32,
) {
    if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
        map.retain(|_, f| now < f.locked_until || now - f.last <= FORGET_AFTER);
        if map.len() >= MAX_ENTRIES {
            return;
        }
    }
    map.entry(key).or_default().fail(now, free);
}

impl SignInGuard {
    /// Whether `username` may try to sign in from `source` at `now`.
    pub fn gate(&self, username: &str, source: IpAddr, now: i64) -> Gate {
        let account = self
            .accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&account_key(username))
            .map_or(0, |f| f.locked_until);
        let source = self
            .sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&source)
            .map_or(0, |f| f.locked_until);
        let until = account.max(source);
        if until > now {
            Gate::Closed {
                retry_after: until - now,
            }
        } else {
            Gate::Open
        }
    }

    /// Counts a wrong password (or an unknown username).
    pub fn failed(&self, username: &str, source: IpAddr, now: i64) {
        count_failure(
            &mut self.accounts.lock().unwrap_or_else(|p| p.into_inner()),
            account_key(username),
            now,
            ACCOUNT_FREE_FAILURES,
        );
        count_failure(
            &mut self.sources.lock().unwrap_or_else(|p| p.into_inner()),
            source,
            now,
            SOURCE_FREE_FAILURES,
        );
    }

    /// A right password clears the account's failures (not the source's).
    pub fn succeeded(&self, username: &str) {
        self.accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&account_key(username));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_account_waits_after_its_free_failures_and_the_wait_doubles() {
        let guard = SignInGuard::default();
        let a = ip("127.0.0.2");
        for _ in 0..ACCOUNT_FREE_FAILURES {
            assert_eq!(guard.gate("Alice", a, 100), Gate::Open);
            guard.failed("alice", a, 100);
        }
        assert_eq!(guard.gate("alice", a, 100), Gate::Open);
        guard.failed("alice", a, 100);
        assert_eq!(
            guard.gate("ALICE", a, 100),
            Gate::Closed { retry_after: 30 }
        );
        assert_eq!(guard.gate("alice", a, 130), Gate::Open);
        guard.failed("alice", a, 130);
        assert_eq!(
            guard.gate("alice", a, 130),
            Gate::Closed { retry_after: 60 }
        );
        // Another account from another address is not affected.
        assert_eq!(guard.gate("bob", ip("127.0.0.3"), 130), Gate::Open);
    }

    #[test]
    fn waits_are_capped_and_forgotten_after_a_quiet_spell() {
        let guard = SignInGuard::default();
        let a = ip("127.0.0.2");
        for _ in 0..40 {
            guard.failed("alice", a, 1_000);
        }
        assert_eq!(
            guard.gate("alice", ip("10.0.0.9"), 1_000),
            Gate::Closed {
                retry_after: LONGEST_WAIT
            }
        );
        let later = 1_000 + LONGEST_WAIT + FORGET_AFTER + 1;
        assert_eq!(guard.gate("alice", ip("10.0.0.9"), later), Gate::Open);
        guard.failed("alice", ip("10.0.0.9"), later);
        assert_eq!(guard.gate("alice", ip("10.0.0.9"), later), Gate::Open);
    }

    #[test]
    fn the_maps_never_grow_past_their_bound() {
        let mut map = HashMap::new();
        for i in 0..(MAX_ENTRIES as u32 + 10) {
            count_failure(&mut map, i, 5, ACCOUNT_FREE_FAILURES);
        }
        assert_eq!(map.len(), MAX_ENTRIES);
        // Once the entries are forgotten, new keys are counted again.
        let later = 5 + FORGET_AFTER + 1;
        count_failure(&mut map, u32::MAX, later, ACCOUNT_FREE_FAILURES);
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn a_source_failing_across_accounts_waits_and_success_clears_only_the_account() {
        let guard = SignInGuard::default();
        let a = ip("127.0.0.2");
        for i in 0..=SOURCE_FREE_FAILURES {
            guard.failed(&format!("user{i}"), a, 50);
        }
        assert!(matches!(
            guard.gate("someone-new", a, 50),
            Gate::Closed { .. }
        ));
        assert_eq!(guard.gate("someone-new", ip("127.0.0.3"), 50), Gate::Open);
        for _ in 0..=ACCOUNT_FREE_FAILURES {
            guard.failed("carol", ip("127.0.0.4"), 60);
        }
        guard.succeeded("carol");
        assert_eq!(guard.gate("carol", ip("127.0.0.5"), 60), Gate::Open);
    }
}
