//! The audit trail as stored: append-only events with sequence numbers, and
//! each delivery stream's cursor.

use sqlx::Row;
use tokio::sync::oneshot;

use super::{from_json, Store};
use crate::audit::event::AuditEvent;
use crate::error::HubError;

impl Store {
    /// Appends an event to the trail and returns once it is durable (see
    /// [`super::audit_writer::spawn_writer`]: concurrent appends share one transaction).
    pub async fn append_audit(&self, event: &AuditEvent) -> Result<(), HubError> {
        let (done, durable) = oneshot::channel();
        self.audit_writer
            .send((event.clone(), done))
            .await
            .map_err(|_| HubError::Config("the audit writer has stopped".into()))?;
        durable
            .await
            .map_err(|_| HubError::Config("the audit writer has stopped".into()))?
    }

    /// Where an audit stream got to (0: from the beginning).
    pub async fn audit_cursor(&self, stream: &str) -> Result<i64, HubError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM audit_cursors WHERE stream = ?")
            .bind(stream)
            .fetch_optional(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    pub async fn set_audit_cursor(&self, stream: &str, seq: i64) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO audit_cursors (stream, seq) VALUES (?, ?)
             ON CONFLICT(stream) DO UPDATE SET seq = excluded.seq",
        )
        .bind(stream)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The next events a delivery stream has not yet delivered: up to
    /// `limit` after its cursor, oldest first.
    pub async fn undelivered_audit(
        &self,
        stream: &str,
        limit: i64,
    ) -> Result<Vec<(i64, AuditEvent)>, HubError> {
        let after = self.audit_cursor(stream).await?;
        self.audit_events(&AuditFilter {
            after,
            limit,
            ..Default::default()
        })
        .await
    }

    /// The sequence number of the newest event (0 for none).
    pub async fn last_audit_seq(&self) -> Result<i64, HubError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_events")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    /// Events matching `filter`, oldest first, paged by sequence number.
    pub async fn audit_events(
        &self,
        filter: &AuditFilter,
    ) -> Result<Vec<(i64, AuditEvent)>, HubError> {
        let rows = sqlx::query(
            "SELECT * FROM audit_events WHERE seq > ?1
               AND (?2 IS NULL OR type = ?2) AND (?3 IS NULL OR correlation_id = ?3)
               AND (?4 IS NULL OR client_id = ?4) AND (?5 IS NULL OR user_id = ?5)
               AND (?6 IS NULL OR tenant = ?6) AND (?7 IS NULL OR time >= ?7) AND (?8 IS NULL OR time < ?8)
             ORDER BY seq LIMIT ?9",
        )
        .bind(filter.after)
        .bind(&filter.event_type)
        .bind(&filter.correlation_id)
        .bind(&filter.client_id)
        .bind(&filter.user)
        .bind(&filter.tenant)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let event = AuditEvent {
                    id: row.try_get("id")?,
                    time: row.try_get("time")?,
                    event_type: row.try_get("type")?,
                    outcome: row.try_get("outcome")?,
                    actor: crate::audit::event::Actor {
                        kind: row.try_get("actor_type")?,
                        id: row.try_get("actor_id")?,
                    },
                    user: row.try_get("user_id")?,
                    tenant: row.try_get("tenant")?,
                    client_id: row.try_get("client_id")?,
                    resource: row.try_get("resource")?,
                    scopes_requested: from_json(row, "scopes_requested")?,
                    scopes_granted: from_json(row, "scopes_granted")?,
                    reason: row.try_get("reason")?,
                    correlation_id: row.try_get("correlation_id")?,
                    source_ip: row.try_get("source_ip")?,
                    policies: from_json(row, "policies")?,
                    client_name: row.try_get("client_name")?,
                    client_trust_level: row.try_get("client_trust_level")?,
                    client_tags: from_json(row, "client_tags")?,
                    scopes_dropped: from_json(row, "scopes_dropped")?,
                    act: row
                        .try_get::<Option<String>, _>("act")?
                        .map(|raw| serde_json::from_str(&raw))
                        .transpose()?,
                };
                Ok((row.try_get("seq")?, event))
            })
            .collect()
    }
}

/// Which audit events to read: every field narrows; `after` pages.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AuditFilter {
    /// Only events with a sequence number above this.
    #[serde(default)]
    pub after: i64,
    /// Time range on the hub clock, seconds since the epoch: `from` inclusive, `to` exclusive.
    pub from: Option<i64>,
    pub to: Option<i64>,
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub correlation_id: Option<String>,
    pub client_id: Option<String>,
    pub user: Option<String>,
    pub tenant: Option<String>,
    #[serde(default = "default_audit_limit")]
    pub limit: i64,
}

fn default_audit_limit() -> i64 {
    500
}
