//! Second factors: users' TOTP shared secrets (sealed) with the last time
//! step accepted, their recovery codes (digests, each used once), tenants'
//! rules for who must prove one, and a request's pending second factor.

use sqlx::Row;

use super::Store;
use crate::error::HubError;
use crate::model::SecondFactorRule;
use crate::vault::sealing::Sealed;

/// A user's enrolled TOTP factor, as stored.
#[derive(Debug, Clone)]
pub struct TotpFactor {
    pub secret: Sealed,
    pub enrolled_at: i64,
    /// The last time step a code was accepted for (-1: none yet).
    pub last_step: i64,
}

/// A request that owes a second factor: whose, and the digest of the
/// cookie of the browser that gave the password.
#[derive(Debug, Clone)]
pub struct PendingSecondFactor {
    pub user_id: String,
    pub binding: String,
    /// During enrolment: the secret offered, sealed, until a code confirms it.
    pub offered_secret: Option<String>,
}

impl Store {
    /// The rules of these tenants (unknown ids are left out).
    pub async fn second_factor_rules(
        &self,
        tenant_ids: &[String],
    ) -> Result<Vec<SecondFactorRule>, HubError> {
        let mut rules = Vec::new();
        for id in tenant_ids {
            let raw: Option<String> =
                sqlx::query_scalar("SELECT second_factor FROM tenants WHERE id = ?")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some(raw) = raw {
                rules.push(serde_json::from_str(&raw)?);
            }
        }
        Ok(rules)
    }

    pub async fn totp_factor(&self, user_id: &str) -> Result<Option<TotpFactor>, HubError> {
        let Some(row) = sqlx::query("SELECT * FROM totp_factors WHERE user_id = ?")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(TotpFactor {
            secret: Sealed {
                key_id: row.try_get("key_id")?,
                nonce: row.try_get("nonce")?,
                ciphertext: row.try_get("ciphertext")?,
            },
            enrolled_at: row.try_get("enrolled_at")?,
            last_step: row.try_get("last_step")?,
        }))
    }

    /// Enrols a TOTP factor for `user_id` with fresh recovery codes (their
    /// digests), replacing any earlier factor and codes, in one transaction;
    /// `last_step` is the step of the code that confirmed it (-1: none).
    pub async fn enrol_totp(
        &self,
        user_id: &str,
        secret: &Sealed,
        recovery_code_hashes: &[String],
        now: i64,
        last_step: i64,
    ) -> Result<(), HubError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO totp_factors (user_id, key_id, nonce, ciphertext, enrolled_at, last_step)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT(user_id) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce,
               ciphertext = excluded.ciphertext, enrolled_at = excluded.enrolled_at,
               last_step = excluded.last_step",
        )
        .bind(user_id)
        .bind(&secret.key_id)
        .bind(&secret.nonce)
        .bind(&secret.ciphertext)
        .bind(now)
        .bind(last_step)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for hash in recovery_code_hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)")
                .bind(user_id)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes a user's second factor and recovery codes (an administrator's
    /// reset); whether there was a factor.
    pub async fn remove_second_factor(&self, user_id: &str) -> Result<bool, HubError> {
        let mut tx = self.pool.begin().await?;
        let removed = sqlx::query("DELETE FROM totp_factors WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(removed > 0)
    }

    /// Records that a code of time step `step` was accepted, only if no code
    /// of that step or a later one was (RFC 6238 §5.2): atomic, so two
    /// submissions of one code cannot both win. False: refuse the code.
    pub async fn accept_totp_step(&self, user_id: &str, step: i64) -> Result<bool, HubError> {
        let done = sqlx::query(
            "UPDATE totp_factors SET last_step = ?1 WHERE user_id = ?2 AND last_step < ?1",
        )
        .bind(step)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The digests of a user's recovery codes, each with whether it was used.
    pub async fn recovery_codes(&self, user_id: &str) -> Result<Vec<(String, bool)>, HubError> {
        let rows: Vec<(String, Option<i64>)> =
            sqlx::query_as("SELECT code_hash, used_at FROM recovery_codes WHERE user_id = ?")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(hash, used_at)| (hash, used_at.is_some()))
            .collect())
    }

    /// Marks a recovery code used; false when it already was (atomic).
    pub async fn use_recovery_code(
        &self,
        user_id: &str,
        code_hash: &str,
        now: i64,
    ) -> Result<bool, HubError> {
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(code_hash)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// How many recovery codes a user has left.
    pub async fn recovery_codes_left(&self, user_id: &str) -> Result<i64, HubError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Puts a pending request on hold for a second factor from one browser.
    pub async fn set_pending_second_factor(
        &self,
        request_id: &str,
        pending: &PendingSecondFactor,
    ) -> Result<(), HubError> {
        sqlx::query(
            "UPDATE authorization_requests SET pending_user_id = ?, pending_binding = ?, pending_secret = ?
             WHERE id = ? AND completed = 0",
        )
        .bind(&pending.user_id)
        .bind(&pending.binding)
        .bind(&pending.offered_secret)
        .bind(request_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn pending_second_factor(
        &self,
        request_id: &str,
    ) -> Result<Option<PendingSecondFactor>, HubError> {
        let row: Option<(Option<String>, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT pending_user_id, pending_binding, pending_secret FROM authorization_requests
             WHERE id = ? AND completed = 0",
        )
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some((Some(user_id), Some(binding), offered_secret)) => Some(PendingSecondFactor {
                user_id,
                binding,
                offered_secret,
            }),
            _ => None,
        })
    }

    /// The second factor was proven (or the request moved on): no longer pending.
    pub async fn clear_pending_second_factor(&self, request_id: &str) -> Result<(), HubError> {
        sqlx::query(
            "UPDATE authorization_requests SET pending_user_id = NULL, pending_binding = NULL,
               pending_secret = NULL WHERE id = ?",
        )
        .bind(request_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
