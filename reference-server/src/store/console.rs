//! Console administrators and their sessions. A session is stored by the
//! SHA-256 digest of its id, never the id itself.

use sqlx::Row;

use super::Store;
use crate::error::HubError;

/// A live console session as stored.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub username: String,
    pub csrf: String,
    /// Seconds on the hub clock.
    pub expires_at: i64,
}

/// A user as the console's what-if page lists them.
#[derive(Debug, Clone)]
pub struct UserLabel {
    pub id: String,
    pub username: String,
    pub name: String,
}

impl Store {
    /// The argon2 PHC string of an administrator, if there is one by that name.
    pub async fn admin_password_hash(&self, username: &str) -> Result<Option<String>, HubError> {
        Ok(
            sqlx::query_scalar("SELECT password_hash FROM admins WHERE username = ?")
                .bind(username)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Creates an administrator or replaces their password hash.
    pub async fn upsert_admin(
        &self,
        username: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO admins (username, password_hash, created_at) VALUES (?, ?, ?)
         ON CONFLICT(username) DO UPDATE SET password_hash = excluded.password_hash",
        )
        .bind(username)
        .bind(password_hash)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Ends every session of one administrator.
    pub async fn delete_admin_sessions(&self, username: &str) -> Result<(), HubError> {
        sqlx::query("DELETE FROM console_sessions WHERE username = ?")
            .bind(username)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The session whose id hashes to `id_hash`, if it has not expired at `now`.
    pub async fn console_session(
        &self,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<SessionRecord>, HubError> {
        let row = sqlx::query(
            "SELECT username, csrf, expires_at FROM console_sessions WHERE id_hash = ? AND expires_at > ?",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(SessionRecord {
                username: r.try_get("username")?,
                csrf: r.try_get("csrf")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Forgets sessions that expired at or before `now`.
    pub async fn delete_expired_console_sessions(&self, now: i64) -> Result<(), HubError> {
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn insert_console_session(
        &self,
        id_hash: &str,
        session: &SessionRecord,
        now: i64,
    ) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, username, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id_hash)
        .bind(&session.username)
        .bind(&session.csrf)
        .bind(now)
        .bind(session.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn delete_console_session(&self, id_hash: &str) -> Result<(), HubError> {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every user by username. A column that cannot be read shows as empty:
    /// the list only labels a form's choices.
    pub async fn user_labels(&self) -> Result<Vec<UserLabel>, HubError> {
        let rows = sqlx::query("SELECT id, username, name FROM users ORDER BY username")
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|r| UserLabel {
                id: r.try_get("id").unwrap_or_default(),
                username: r.try_get("username").unwrap_or_default(),
                name: r.try_get("name").unwrap_or_default(),
            })
            .collect())
    }
}
