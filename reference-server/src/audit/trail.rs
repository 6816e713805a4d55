//! Reading the audit trail: the paged query and the live feed. The admin
//! and control APIs and the console all read it through here.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};

use crate::audit::event::AuditEvent;
use crate::error::OAuthError;
use crate::hub::Hub;
use crate::store::audit::AuditFilter;

/// The audit query: events matching `filter` (at most 1,000), oldest first,
/// with their sequence numbers, and the newest sequence number in the trail.
pub async fn query_audit(
    hub: &Hub,
    mut filter: AuditFilter,
) -> Result<(Vec<(i64, AuditEvent)>, i64), OAuthError> {
    let last_seq = hub.store.last_audit_seq().await?;
    filter.limit = filter.limit.clamp(0, 1000);
    if hub.faults.on(crate::fault::Fault::AuditQueryIgnoresFilters) {
        filter.client_id = None;
    }
    Ok((hub.store.audit_events(&filter).await?, last_seq))
}

/// The live feed as Server-Sent Events: the events `keep` accepts, as they
/// are written, until `until` (seconds on the hub clock) if given.
pub fn audit_sse(
    hub: &Arc<Hub>,
    keep: impl Fn(&AuditEvent) -> bool + Send + Sync + 'static,
    until: Option<i64>,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio::sync::broadcast::error::RecvError;
    let receiver = hub.audit_feed.subscribe();
    let state = (receiver, hub.clone(), keep);
    let stream = futures_util::stream::unfold(state, move |(mut rx, hub, keep)| async move {
        let item = loop {
            match rx.recv().await {
                Ok(_) if until.is_some_and(|t| hub.clock.now() >= t) => return None,
                Ok(event) if !keep(&event) => continue,
                Ok(event) => {
                    break Event::default()
                        .event("audit")
                        .id(event.id.clone())
                        .json_data(&event)
                        .unwrap_or_else(|_| Event::default().event("error"))
                }
                Err(RecvError::Lagged(n)) => {
                    break Event::default().event("lagged").data(n.to_string())
                }
                Err(RecvError::Closed) => return None,
            }
        };
        Some((Ok::<_, std::convert::Infallible>(item), (rx, hub, keep)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
