//! The audit trail as a JSON Lines file (`hub --audit-jsonl FILE`), written
//! from the committed trail in `seq` order.
//!
//! Writing each event to the file beside the store, as the action ran, lost
//! events across a kill (the store had them, the file did not) and let lines
//! from concurrent actions land out of order, with nothing in them to notice
//! either. So the file is another delivery stream, like the webhook: a task
//! reads the store after a cursor, appends each event with its `seq`, syncs
//! the file, then moves the cursor. After a restart it resumes after the last
//! complete line of the file (a line cut short by a crash is dropped first),
//! so a consumer sees every `seq` once, in order, and can tell a gap.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::HubError;
use crate::hub::Hub;

const STREAM: &str = "jsonl";
const BATCH: i64 = 500;

/// Opens `path` (creating it), drops a last line cut short, and returns the
/// file and the `seq` of its last complete line (0 for none).
fn open_and_recover(path: &Path, keep_cut_line: bool) -> Result<(std::fs::File, i64), HubError> {
    let failed = |e: std::io::Error| {
        HubError::Config(format!("audit JSON Lines file {}: {e}", path.display()))
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(failed)?;
    let mut text = Vec::new();
    file.read_to_end(&mut text).map_err(failed)?;
    let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if complete < text.len() && !keep_cut_line {
        tracing::warn!(path = %path.display(), "dropping a last audit line cut short");
        file.set_len(complete as u64).map_err(failed)?;
    }
    file.seek(SeekFrom::End(0)).map_err(failed)?;
    let last_seq = text[..complete]
        .split(|b| *b == b'\n')
        .rfind(|line| !line.is_empty())
        .and_then(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .and_then(|v| v["seq"].as_i64())
        .unwrap_or(0);
    Ok((file, last_seq))
}

/// Starts writing the trail to `path` in the background.
pub async fn spawn(hub: Arc<Hub>, path: PathBuf) -> Result<tokio::task::JoinHandle<()>, HubError> {
    let keep_cut_line = hub.faults.on(crate::fault::Fault::JsonlKeepsCutLine);
    let (mut file, in_file) = open_and_recover(&path, keep_cut_line)?;
    let cursor = hub.store.audit_cursor(STREAM).await?.max(in_file);
    hub.store.set_audit_cursor(STREAM, cursor).await?;
    let mut feed = hub.audit_feed.subscribe();
    Ok(tokio::spawn(async move {
        loop {
            match write_batch(&hub, &mut file).await {
                Ok(0) => {
                    let _ = tokio::time::timeout(Duration::from_secs(5), feed.recv()).await;
                }
                Ok(_) => {}
                Err(why) => {
                    tracing::warn!(%why, path = %path.display(), "audit JSON Lines write failed");
                    let _ = tokio::time::timeout(Duration::from_secs(5), feed.recv()).await;
                }
            }
        }
    }))
}

/// Appends the next events after the cursor; returns how many.
async fn write_batch(hub: &Hub, file: &mut std::fs::File) -> Result<usize, String> {
    let events = hub
        .store
        .undelivered_audit(STREAM, BATCH)
        .await
        .map_err(|e| e.to_string())?;
    let Some(last) = events.last().map(|(seq, _)| *seq) else {
        return Ok(0);
    };
    let mut lines = Vec::new();
    for (seq, event) in &events {
        let mut value = serde_json::to_value(event).map_err(|e| e.to_string())?;
        value["seq"] = serde_json::json!(seq);
        serde_json::to_writer(&mut lines, &value).map_err(|e| e.to_string())?;
        lines.push(b'\n');
    }
    // On disk before the cursor moves: a crash in between repeats lines
    // (recognisable by seq, and skipped on restart), never loses them.
    file.write_all(&lines).map_err(|e| e.to_string())?;
    file.sync_data().map_err(|e| e.to_string())?;
    hub.store
        .set_audit_cursor(STREAM, last)
        .await
        .map_err(|e| e.to_string())?;
    Ok(events.len())
}
