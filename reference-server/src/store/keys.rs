//! The hub's signing keys.

use sqlx::Row;

use super::Store;
use crate::error::HubError;

/// A persisted signing key.
#[derive(Debug, Clone)]
pub struct SigningKeyRow {
    pub kid: String,
    pub private_pem: String,
}

impl Store {
    pub async fn active_signing_keys(&self) -> Result<Vec<SigningKeyRow>, HubError> {
        let rows = sqlx::query(
            "SELECT kid, private_pem FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC, rowid DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SigningKeyRow {
                    kid: row.try_get("kid")?,
                    private_pem: row.try_get("private_pem")?,
                })
            })
            .collect()
    }

    pub async fn insert_signing_key(&self, kid: &str, pem: &str, now: i64) -> Result<(), HubError> {
        sqlx::query("INSERT INTO signing_keys (kid, algorithm, private_pem, created_at) VALUES (?, 'ES256', ?, ?)")
            .bind(kid)
            .bind(pem)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stops publishing every active key except `keep`.
    pub async fn retire_signing_keys_except(&self, keep: &str, now: i64) -> Result<u64, HubError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET retired_at = ? WHERE kid != ? AND retired_at IS NULL",
        )
        .bind(now)
        .bind(keep)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
