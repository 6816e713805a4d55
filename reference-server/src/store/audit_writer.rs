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

async fn insert_all(pool: &SqlitePool, batch: &[Append]) -> Result<(), HubError> {
    let mut tx = pool.begin().await?;
    for (event, _) in batch {
        insert_query(event).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn insert(pool: &SqlitePool, event: &AuditEvent) -> Result<(), HubError> {
    insert_query(event).execute(pool).await?;
    Ok(())
}

fn insert_query(
    event: &AuditEvent,
) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
    sqlx::query(
        "INSERT INTO audit_events (id, time, type, outcome, actor_type, actor_id, user_id, tenant, client_id,
           resource, scopes_requested, scopes_granted, reason, correlation_id, source_ip, policies, act,
           client_name, client_trust_level, client_tags, scopes_dropped)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&event.id)
    .bind(event.time)
    .bind(&event.event_type)
    .bind(&event.outcome)
    .bind(&event.actor.kind)
    .bind(&event.actor.id)
    .bind(&event.user)
    .bind(&event.tenant)
    .bind(&event.client_id)
    .bind(&event.resource)
    .bind(to_json(&event.scopes_requested))
    .bind(to_json(&event.scopes_granted))
    .bind(&event.reason)
    .bind(&event.correlation_id)
    .bind(&event.source_ip)
    .bind(to_json(&event.policies))
    .bind(event.act.as_ref().map(to_json))
    .bind(&event.client_name)
    .bind(&event.client_trust_level)
    .bind(to_json(&event.client_tags))
    .bind(to_json(&event.scopes_dropped))
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}
