//! Audit streaming to a webhook: every event, at least once, in order, as a
//! CloudEvents batch (`application/cloudevents-batch+json`).
//!
//! A background task reads events after a cursor persisted in the store,
//! POSTs them, and advances the cursor only after a 2xx. A failing endpoint
//! (down, slow, 500) is retried with exponential back-off (capped at a
//! minute) while the hub keeps serving; the events wait in the store, which is
//! the durable queue. After a restart the task resumes from the cursor.

use std::sync::Arc;
use std::time::Duration;

use crate::error::HubError;
use crate::fault::Fault;
use crate::hub::Hub;

const STREAM: &str = "webhook";
const BATCH: i64 = 100;
const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Starts delivering to `url` in the background.
pub async fn spawn(hub: Arc<Hub>, url: String) -> Result<tokio::task::JoinHandle<()>, HubError> {
    if hub.faults.on(Fault::WebhookLosesEventsOnRestart) {
        // The fault: start from "now", forgetting what was not yet delivered.
        let last = hub.store.last_audit_seq().await?;
        hub.store.set_audit_cursor(STREAM, last).await?;
    }
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| HubError::Config(format!("webhook client: {e}")))?;
    let mut feed = hub.audit_feed.subscribe();
    Ok(tokio::spawn(async move {
        let mut backoff = Duration::from_millis(250);
        loop {
            match deliver_batch(&hub, &client, &url).await {
                Ok(0) => {
                    backoff = Duration::from_millis(250);
                    // Wait for the next event (or a periodic re-check of the store).
                    let _ = tokio::time::timeout(Duration::from_secs(5), feed.recv()).await;
                }
                Ok(_) => backoff = Duration::from_millis(250),
                Err(why) => {
                    tracing::warn!(%why, retry_in_ms = backoff.as_millis() as u64, "audit webhook delivery failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }))
}

/// Delivers the next batch after the cursor; returns how many were delivered.
async fn deliver_batch(hub: &Hub, client: &reqwest::Client, url: &str) -> Result<usize, String> {
    let events = hub
        .store
        .undelivered_audit(STREAM, BATCH)
        .await
        .map_err(|e| e.to_string())?;
    let Some(last) = events.last().map(|(seq, _)| *seq) else {
        return Ok(0);
    };
    let batch: Vec<_> = events
        .iter()
        .map(|(seq, e)| crate::audit::event::cloud_event(e, *seq, &hub.issuer))
        .collect();
    let response = client
        .post(url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/cloudevents-batch+json",
        )
        .json(&batch)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status().as_u16()));
    }
    hub.store
        .set_audit_cursor(STREAM, last)
        .await
        .map_err(|e| e.to_string())?;
    Ok(batch.len())
}
