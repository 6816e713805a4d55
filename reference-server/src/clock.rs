//! Time, injectable: the control API can move a test clock forward so that
//! expiry is tested without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The earliest moment the test clock may be set to: 2000-01-01T00:00:00Z.
pub const EARLIEST: i64 = 946_684_800;
/// The latest: 9999-12-31T23:59:59Z, so that every expiry still fits.
pub const LATEST: i64 = 253_402_300_799;

/// Wall-clock seconds plus an offset that only the test-mode control API changes.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset: Arc<AtomicI64>,
}

impl Clock {
    /// Seconds since the Unix epoch, as the hub sees them.
    pub fn now(&self) -> i64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        wall + self.offset.load(Ordering::Relaxed)
    }

    /// Moves the hub's notion of time forward (never backward: expiry must stay monotonic).
    pub fn advance(&self, seconds: u32) -> i64 {
        self.offset.fetch_add(i64::from(seconds), Ordering::Relaxed);
        self.now()
    }

    /// Back to wall time: a test teardown, so one test's jump does not leak into the next run.
    pub fn reset(&self) -> i64 {
        self.offset.store(0, Ordering::Relaxed);
        self.now()
    }

    /// Jumps to a given moment (seconds since the epoch), for checks that need a
    /// known weekday and hour. Only the control API calls it.
    pub fn set(&self, at: i64) -> i64 {
        let wall = self.now() - self.offset();
        self.offset.store(at - wall, Ordering::Relaxed);
        self.now()
    }

    pub fn offset(&self) -> i64 {
        self.offset.load(Ordering::Relaxed)
    }
}
