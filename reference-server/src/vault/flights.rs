//! Single-flight refreshes of stored Connection tokens: one lock per token
//! row, so two requests never refresh the same token at once.

use std::collections::HashMap;
use std::sync::Arc;

/// Per stored token, the lock that makes its refresh single-flight.
#[derive(Debug, Default)]
pub struct Flights(std::sync::Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>);

impl Flights {
    pub(crate) fn lock_for(&self, row_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(row_id).or_default().clone()
    }
}
