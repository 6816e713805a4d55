//! Group commit for the audit trail: its one writer. Imports nothing of the
//! store, which owns it (`Store::append_audit` sends to it).

use serde::Serialize;
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use crate::audit::event::AuditEvent;
use crate::error::HubError;

/// Events one durable transaction takes at most.
const GROUP: usize = 256;

/// A request to append an event, and who waits for it to be durable.
pub type Append = (AuditEvent, oneshot::Sender<Result<(), HubError>>);

/// Group commit: the one writer of the audit trail. It takes every event
/// waiting (up to [`GROUP`]), writes them in one transaction, in the order
/// they were appended, and answers each only once that transaction is
/// committed. Concurrent actions share one commit (one fsync) instead of
/// paying one each, and none returns before its event is durable.
pub fn spawn_writer(pool: SqlitePool) -> mpsc::Sender<Append> {
    let (tx, mut rx) = mpsc::channel::<Append>(4 * GROUP);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(GROUP);
        while rx.recv_many(&mut batch, GROUP).await > 0 {
            match insert_all(&pool, &batch).await {
                Ok(()) => {
                    for (_, done) in batch.drain(..) {
                        let _ = done.send(Ok(()));
                    }
                }
                // One bad event must not fail the others: each on its own.
                Err(_) => {
                    for (event, done) in batch.drain(..) {
                        let result = insert(&pool, &event).await;
                        let _ = done.send(result);
                    }
                }
            }
        }
    });
    tx
}

/// The batch in one transaction, as one statement (see [`statement`]).
async fn insert_all(pool: &SqlitePool, batch: &[Append]) -> Result<(), HubError> {
    let mut tx = pool.begin().await?;
    statement(batch.iter().map(|(event, _)| event))
        .build()
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// An event on its own (after its batch failed): one bad event fails alone.
async fn insert(pool: &SqlitePool, event: &AuditEvent) -> Result<(), HubError> {
    statement([event]).build().execute(pool).await?;
    Ok(())
}

/// One multi-row INSERT: rows take their `seq` in the events' order. One
/// statement instead of one per event, because each statement is a round
/// trip to SQLite's worker thread, and those round trips, not the commit,
/// capped group commit at about 7,000 events a second. A batch of
/// [`GROUP`] binds 21 × 256 values, well under SQLite's 32,766.
fn statement<'a>(
    events: impl IntoIterator<Item = &'a AuditEvent>,
) -> sqlx::QueryBuilder<'a, sqlx::Sqlite> {
    let mut insert = sqlx::QueryBuilder::new(
        "INSERT INTO audit_events (id, time, type, outcome, actor_type, actor_id, user_id, tenant, client_id,
           resource, scopes_requested, scopes_granted, reason, correlation_id, source_ip, policies, act,
           client_name, client_trust_level, client_tags, scopes_dropped) ",
    );
    insert.push_values(events, |mut row, event| {
        row.push_bind(&event.id)
            .push_bind(event.time)
            .push_bind(&event.event_type)
            .push_bind(&event.outcome)
            .push_bind(&event.actor.kind)
            .push_bind(&event.actor.id)
            .push_bind(&event.user)
            .push_bind(&event.tenant)
            .push_bind(&event.client_id)
            .push_bind(&event.resource)
            .push_bind(to_json(&event.scopes_requested))
            .push_bind(to_json(&event.scopes_granted))
            .push_bind(&event.reason)
            .push_bind(&event.correlation_id)
            .push_bind(&event.source_ip)
            .push_bind(to_json(&event.policies))
            .push_bind(event.act.as_ref().map(to_json))
            .push_bind(&event.client_name)
            .push_bind(&event.client_trust_level)
            .push_bind(to_json(&event.client_tags))
            .push_bind(to_json(&event.scopes_dropped));
    });
    insert
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}
