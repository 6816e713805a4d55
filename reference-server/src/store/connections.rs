//! Connections and their tokens as stored. Secrets come in sealed and leave
//! sealed: opening them is the vault's business, so nothing here sees a
//! plaintext client secret or token.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::Store;
use crate::error::HubError;
use crate::vault::sealing::Sealed;

/// A Connection definition as stored, its client secret still sealed.
#[derive(Debug, Clone)]
pub struct ConnectionRecord {
    pub id: String,
    pub name: String,
    /// `oauth2` or `api_key`.
    pub kind: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub api_base_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Sealed>,
    pub scopes: Vec<String>,
    pub allowed_clients: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Whose token a row holds: one connection, one owner, one scope key (empty
/// for the token as granted, else the narrowed scopes it was derived for).
#[derive(Debug, Clone, Copy)]
pub struct TokenKey<'a> {
    pub connection_id: &'a str,
    pub owner_kind: &'a str,
    pub owner_id: &'a str,
    pub scope_key: &'a str,
}

/// A stored Connection token, its credential still sealed.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub id: i64,
    pub connection_id: String,
    pub owner_kind: String,
    pub owner_id: String,
    pub scope_key: String,
    pub credential: Sealed,
    pub needs_reauth: bool,
    pub last_refreshed_at: Option<i64>,
}

fn connection_from_row(row: &SqliteRow) -> Result<ConnectionRecord, HubError> {
    let secret_key_id: Option<String> = row.try_get("secret_key_id")?;
    let client_secret = match secret_key_id {
        Some(key_id) => Some(Sealed {
            key_id,
            nonce: row.try_get("secret_nonce")?,
            ciphertext: row.try_get("secret_sealed")?,
        }),
        None => None,
    };
    let scopes: String = row.try_get("scopes")?;
    let allowed: String = row.try_get("allowed_clients")?;
    Ok(ConnectionRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        authorization_endpoint: row.try_get("authorization_endpoint")?,
        token_endpoint: row.try_get("token_endpoint")?,
        api_base_url: row.try_get("api_base_url")?,
        client_id: row.try_get("client_id")?,
        client_secret,
        scopes: serde_json::from_str(&scopes)?,
        allowed_clients: serde_json::from_str(&allowed)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn token_from_row(row: &SqliteRow) -> Result<TokenRecord, HubError> {
    let needs_reauth: i64 = row.try_get("needs_reauth")?;
    Ok(TokenRecord {
        id: row.try_get("id")?,
        connection_id: row.try_get("connection_id")?,
        owner_kind: row.try_get("owner_kind")?,
        owner_id: row.try_get("owner_id")?,
        scope_key: row.try_get("scope_key")?,
        credential: Sealed {
            key_id: row.try_get("key_id")?,
            nonce: row.try_get("nonce")?,
            ciphertext: row.try_get("sealed")?,
        },
        needs_reauth: needs_reauth != 0,
        last_refreshed_at: row.try_get("last_refreshed_at")?,
    })
}

impl Store {
    pub async fn connection(&self, id: &str) -> Result<Option<ConnectionRecord>, HubError> {
        let row = sqlx::query("SELECT * FROM connections WHERE id = ?")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(connection_from_row).transpose()
    }

    pub async fn connections(&self) -> Result<Vec<ConnectionRecord>, HubError> {
        let rows = sqlx::query("SELECT * FROM connections ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(connection_from_row).collect()
    }

    /// Creates or replaces a definition (its `created_at` is kept on replace).
    pub async fn put_connection(&self, c: &ConnectionRecord) -> Result<(), HubError> {
        let sealed = c.client_secret.as_ref();
        sqlx::query(
            "INSERT INTO connections (id, name, kind, authorization_endpoint, token_endpoint, api_base_url,
               client_id, secret_key_id, secret_nonce, secret_sealed, scopes, allowed_clients, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, kind = excluded.kind,
               authorization_endpoint = excluded.authorization_endpoint, token_endpoint = excluded.token_endpoint,
               api_base_url = excluded.api_base_url, client_id = excluded.client_id,
               secret_key_id = excluded.secret_key_id, secret_nonce = excluded.secret_nonce,
               secret_sealed = excluded.secret_sealed, scopes = excluded.scopes,
               allowed_clients = excluded.allowed_clients, updated_at = excluded.updated_at",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.kind)
        .bind(&c.authorization_endpoint)
        .bind(&c.token_endpoint)
        .bind(&c.api_base_url)
        .bind(&c.client_id)
        .bind(sealed.map(|s| s.key_id.clone()))
        .bind(sealed.map(|s| s.nonce.clone()))
        .bind(sealed.map(|s| s.ciphertext.clone()))
        .bind(serde_json::to_string(&c.scopes)?)
        .bind(serde_json::to_string(&c.allowed_clients)?)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn delete_connection(&self, id: &str) -> Result<bool, HubError> {
        let done = sqlx::query("DELETE FROM connections WHERE id = ?")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Stores (or replaces) one sealed credential and clears a pending
    /// re-authorization. With `drop_narrowed`, the owner's narrowed tokens
    /// go in the same transaction.
    pub async fn put_connection_token(
        &self,
        key: TokenKey<'_>,
        credential: &Sealed,
        refreshed_at: Option<i64>,
        drop_narrowed: bool,
        now: i64,
    ) -> Result<(), HubError> {
        let mut tx = self.pool().begin().await?;
        if drop_narrowed {
            sqlx::query(
                "DELETE FROM connection_tokens WHERE connection_id = ? AND owner_kind = ? AND owner_id = ? AND scope_key <> ''",
            )
            .bind(key.connection_id)
            .bind(key.owner_kind)
            .bind(key.owner_id)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO connection_tokens (connection_id, owner_kind, owner_id, scope_key, key_id, nonce, sealed,
               needs_reauth, last_refreshed_at, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)
             ON CONFLICT(connection_id, owner_kind, owner_id, scope_key) DO UPDATE SET
               key_id = excluded.key_id, nonce = excluded.nonce, sealed = excluded.sealed, needs_reauth = 0,
               last_refreshed_at = COALESCE(excluded.last_refreshed_at, connection_tokens.last_refreshed_at),
               updated_at = excluded.updated_at",
        )
        .bind(key.connection_id)
        .bind(key.owner_kind)
        .bind(key.owner_id)
        .bind(key.scope_key)
        .bind(&credential.key_id)
        .bind(&credential.nonce)
        .bind(&credential.ciphertext)
        .bind(refreshed_at)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn connection_token(
        &self,
        key: TokenKey<'_>,
    ) -> Result<Option<TokenRecord>, HubError> {
        let row = sqlx::query(
            "SELECT * FROM connection_tokens WHERE connection_id = ? AND owner_kind = ? AND owner_id = ? AND scope_key = ?",
        )
        .bind(key.connection_id)
        .bind(key.owner_kind)
        .bind(key.owner_id)
        .bind(key.scope_key)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// The tokens as granted (not narrowed ones) of one connection, optionally
    /// of one owner kind.
    pub async fn connection_tokens(
        &self,
        connection_id: &str,
        owner_kind: Option<&str>,
    ) -> Result<Vec<TokenRecord>, HubError> {
        let rows = sqlx::query(
            "SELECT * FROM connection_tokens WHERE connection_id = ? AND scope_key = ''
               AND (? IS NULL OR owner_kind = ?) ORDER BY owner_kind, owner_id",
        )
        .bind(connection_id)
        .bind(owner_kind)
        .bind(owner_kind)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    pub async fn mark_needs_reauth(&self, row_id: i64, now: i64) -> Result<(), HubError> {
        sqlx::query("UPDATE connection_tokens SET needs_reauth = 1, updated_at = ? WHERE id = ?")
            .bind(now)
            .bind(row_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Deletes every token of one owner on one connection, narrowed ones too.
    pub async fn delete_connection_tokens(
        &self,
        connection_id: &str,
        owner_kind: &str,
        owner_id: &str,
    ) -> Result<bool, HubError> {
        let done = sqlx::query(
            "DELETE FROM connection_tokens WHERE connection_id = ? AND owner_kind = ? AND owner_id = ?",
        )
        .bind(connection_id)
        .bind(owner_kind)
        .bind(owner_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every vault key id something in the database is sealed under.
    pub async fn sealing_key_ids(&self) -> Result<Vec<String>, HubError> {
        Ok(sqlx::query_scalar(
            "SELECT key_id FROM connection_tokens UNION SELECT secret_key_id FROM connections WHERE secret_key_id IS NOT NULL",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// The check value recorded for a vault key, proving later that the same
    /// key is configured again.
    pub async fn vault_check_value(&self, key_id: &str) -> Result<Option<Sealed>, HubError> {
        let row = sqlx::query("SELECT nonce, sealed FROM vault_keys WHERE key_id = ?")
            .bind(key_id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|row| {
            Ok(Sealed {
                key_id: key_id.to_owned(),
                nonce: row.try_get("nonce")?,
                ciphertext: row.try_get("sealed")?,
            })
        })
        .transpose()
    }

    pub async fn insert_vault_check_value(&self, check: &Sealed, now: i64) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO vault_keys (key_id, nonce, sealed, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&check.key_id)
        .bind(&check.nonce)
        .bind(&check.ciphertext)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
