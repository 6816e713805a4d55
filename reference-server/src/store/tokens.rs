//! Refresh tokens, used client assertions and revoked access tokens.

use sqlx::Row;

use super::{from_json, optional_json, to_json, Store};
use crate::error::HubError;

/// A stored refresh token (the token itself only as a digest).
#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub token_hash: String,
    pub family_id: String,
    pub client_id: String,
    pub user_id: String,
    pub tenant: Option<String>,
    pub resource: String,
    pub scopes: Vec<String>,
    pub expires_at: i64,
    pub rotated: bool,
    pub revoked: bool,
    /// How the user signed in for the authorization this grant came from.
    pub authentication: Option<crate::model::Authentication>,
}

impl Store {
    pub async fn insert_refresh_token(
        &self,
        token: &RefreshToken,
        now: i64,
    ) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, tenant, resource, scopes,
               issued_at, expires_at, authentication) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&token.token_hash)
        .bind(&token.family_id)
        .bind(&token.client_id)
        .bind(&token.user_id)
        .bind(&token.tenant)
        .bind(&token.resource)
        .bind(to_json(&token.scopes))
        .bind(now)
        .bind(token.expires_at)
        .bind(token.authentication.as_ref().map(to_json))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshToken>, HubError> {
        let Some(row) = sqlx::query("SELECT * FROM refresh_tokens WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(RefreshToken {
            token_hash: row.try_get("token_hash")?,
            family_id: row.try_get("family_id")?,
            client_id: row.try_get("client_id")?,
            user_id: row.try_get("user_id")?,
            tenant: row.try_get("tenant")?,
            resource: row.try_get("resource")?,
            scopes: from_json(&row, "scopes")?,
            expires_at: row.try_get("expires_at")?,
            rotated: row.try_get::<Option<i64>, _>("rotated_at")?.is_some(),
            revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
            authentication: optional_json(&row, "authentication")?,
        }))
    }

    /// Marks a refresh token used; false when it already was (a replay).
    /// Atomic, so two concurrent refreshes with one token cannot both win.
    pub async fn rotate_refresh_token(&self, token_hash: &str, now: i64) -> Result<bool, HubError> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = ? WHERE token_hash = ? AND rotated_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(token_hash)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Rotates a refresh token to its successor in one transaction: the old
    /// one is marked used and the new one stored together, or neither (a
    /// crash in between leaves the old token live). False, with nothing
    /// written, when the old one was already used or revoked (a replay).
    pub async fn rotate_refresh_token_to(
        &self,
        token_hash: &str,
        successor: &RefreshToken,
        now: i64,
    ) -> Result<bool, HubError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = ? WHERE token_hash = ? AND rotated_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(token_hash)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, tenant, resource, scopes,
               issued_at, expires_at, authentication) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&successor.token_hash)
        .bind(&successor.family_id)
        .bind(&successor.client_id)
        .bind(&successor.user_id)
        .bind(&successor.tenant)
        .bind(&successor.resource)
        .bind(to_json(&successor.scopes))
        .bind(now)
        .bind(successor.expires_at)
        .bind(successor.authentication.as_ref().map(to_json))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Revokes every refresh token of a family; returns how many were still live.
    pub async fn revoke_refresh_family(&self, family_id: &str, now: i64) -> Result<u64, HubError> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(family_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Records an assertion's jti; false when this client already used it (a replay).
    pub async fn use_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<bool, HubError> {
        let done = sqlx::query(
            "INSERT INTO used_assertions (client_id, jti, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(client_id)
        .bind(jti)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- revoked access tokens -----------------------------------------------

    /// Revokes an access token by its `jti`, in the database and in the
    /// store's memory of revoked ones (under the same lock, so a check
    /// that loads that memory meanwhile cannot miss it).
    pub async fn revoke_access_token(
        &self,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), HubError> {
        let mut revoked = self.revoked.write().await;
        sqlx::query(
            "INSERT INTO revoked_access_tokens (jti, expires_at, revoked_at) VALUES (?, ?, ?)
             ON CONFLICT(jti) DO NOTHING",
        )
        .bind(jti)
        .bind(expires_at)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if let super::RevokedJtis::Loaded(set) = &mut *revoked {
            if set.len() >= super::REVOKED_IN_MEMORY {
                *revoked = super::RevokedJtis::TooMany;
            } else {
                set.insert(jti.to_owned());
            }
        }
        Ok(())
    }

    /// Whether an access token was revoked: every token validation asks, so
    /// the revoked `jti`s are read once and kept in memory (up to
    /// [`super::REVOKED_IN_MEMORY`]; past it, each check reads the database).
    pub async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, HubError> {
        {
            let revoked = self.revoked.read().await;
            match &*revoked {
                super::RevokedJtis::Loaded(set) => return Ok(set.contains(jti)),
                super::RevokedJtis::TooMany => return self.revoked_in_database(jti).await,
                super::RevokedJtis::Unloaded => {}
            }
        }
        let mut revoked = self.revoked.write().await;
        if matches!(*revoked, super::RevokedJtis::Unloaded) {
            let jtis: Vec<String> = sqlx::query_scalar("SELECT jti FROM revoked_access_tokens")
                .fetch_all(&self.pool)
                .await?;
            *revoked = if jtis.len() >= super::REVOKED_IN_MEMORY {
                super::RevokedJtis::TooMany
            } else {
                super::RevokedJtis::Loaded(jtis.into_iter().collect())
            };
        }
        match &*revoked {
            super::RevokedJtis::Loaded(set) => Ok(set.contains(jti)),
            _ => self.revoked_in_database(jti).await,
        }
    }

    async fn revoked_in_database(&self, jti: &str) -> Result<bool, HubError> {
        let row = sqlx::query("SELECT 1 FROM revoked_access_tokens WHERE jti = ?")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Revokes one refresh token (not yet its family); false if it was not live.
    pub async fn revoke_refresh_token(&self, token_hash: &str, now: i64) -> Result<bool, HubError> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(token_hash)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
