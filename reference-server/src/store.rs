//! Durable state in SQLite through sqlx. Every query lives here or in a
//! per-concern part below (`store/connections.rs`, `store/console.rs`), so
//! the endpoints speak in domain types and the schema changes in one place.

use std::path::PathBuf;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use sqlx::Row;

use crate::audit::event::AuditEvent;
use crate::error::HubError;
use crate::model::{AuthMethod, Client, Consent, McpServer, Tenant, TrustLevel, User};
use crate::policy::rules::Policy;

pub mod connections;
pub mod console;

/// Where the hub keeps its state.
#[derive(Debug, Clone)]
pub enum Database {
    /// A SQLite file, created on first start; state survives restarts.
    File(PathBuf),
    /// A private in-memory database, gone when the hub stops.
    Memory,
}

impl FromStr for Database {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            ":memory:" | "memory" => Database::Memory,
            path => Database::File(PathBuf::from(
                path.strip_prefix("sqlite://").unwrap_or(path),
            )),
        })
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

fn from_json<T: DeserializeOwned + Default>(row: &SqliteRow, column: &str) -> Result<T, HubError> {
    let raw: String = row.try_get(column)?;
    Ok(serde_json::from_str(&raw)?)
}

/// A pending authorization request, between `/authorize` and the redirect back.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub resource: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub correlation_id: String,
    pub user_id: Option<String>,
    pub expires_at: i64,
    pub completed: bool,
}

/// An issued authorization code, as stored (the code itself only as a digest).
#[derive(Debug, Clone)]
pub struct AuthorizationCode {
    pub code_hash: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub resource: String,
    pub scopes: Vec<String>,
    pub code_challenge: Option<String>,
    pub user_id: String,
    pub tenant: Option<String>,
    pub correlation_id: String,
    pub expires_at: i64,
}

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
}

/// A persisted signing key.
#[derive(Debug, Clone)]
pub struct SigningKeyRow {
    pub kid: String,
    pub private_pem: String,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    pub async fn open(database: &Database) -> Result<Store, HubError> {
        let pool = match database {
            Database::File(path) => {
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .foreign_keys(true);
                SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(options)
                    .await?
            }
            // One connection: every new in-memory connection would be a new, empty database.
            Database::Memory => {
                let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(options)
                    .await?
            }
        };
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    /// The pool, for the per-concern parts of the store (`store/*.rs`).
    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn tenant_exists(&self, id: &str) -> Result<bool, HubError> {
        let row = sqlx::query("SELECT 1 FROM tenants WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    // ---- seed objects -------------------------------------------------

    pub async fn upsert_tenant(&self, tenant: &Tenant) -> Result<(), HubError> {
        sqlx::query("INSERT INTO tenants (id, name) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name")
            .bind(&tenant.id)
            .bind(&tenant.name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn upsert_user(&self, user: &User) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO users (id, username, name, email, password_hash, tenants, roles, permissions, claims)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET username = excluded.username, name = excluded.name,
               email = excluded.email, password_hash = excluded.password_hash, tenants = excluded.tenants,
               roles = excluded.roles, permissions = excluded.permissions, claims = excluded.claims",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(&user.name)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(to_json(&user.tenants))
        .bind(to_json(&user.roles))
        .bind(to_json(&user.permissions))
        .bind(to_json(&user.claims))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    fn user_from_row(row: &SqliteRow) -> Result<User, HubError> {
        Ok(User {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            name: row.try_get("name")?,
            email: row.try_get("email")?,
            password_hash: row.try_get("password_hash")?,
            tenants: from_json(row, "tenants")?,
            roles: from_json(row, "roles")?,
            permissions: from_json(row, "permissions")?,
            claims: from_json(row, "claims")?,
        })
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, HubError> {
        let row = sqlx::query("SELECT * FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::user_from_row).transpose()
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>, HubError> {
        let row = sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::user_from_row).transpose()
    }

    pub async fn upsert_mcp_server(&self, server: &McpServer) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO mcp_servers (id, name, path, scopes, tools) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, path = excluded.path,
               scopes = excluded.scopes, tools = excluded.tools",
        )
        .bind(&server.id)
        .bind(&server.name)
        .bind(&server.path)
        .bind(to_json(&server.scopes))
        .bind(to_json(&server.tools))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    fn server_from_row(row: &SqliteRow) -> Result<McpServer, HubError> {
        Ok(McpServer {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            path: row.try_get("path")?,
            scopes: from_json(row, "scopes")?,
            tools: from_json(row, "tools")?,
        })
    }

    pub async fn mcp_servers(&self) -> Result<Vec<McpServer>, HubError> {
        let rows = sqlx::query("SELECT * FROM mcp_servers ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::server_from_row).collect()
    }

    pub async fn mcp_server_by_path(&self, path: &str) -> Result<Option<McpServer>, HubError> {
        let row = sqlx::query("SELECT * FROM mcp_servers WHERE path = ?")
            .bind(path)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::server_from_row).transpose()
    }

    pub async fn upsert_client(&self, client: &Client) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO clients (client_id, name, trust_level, secret_hash, token_endpoint_auth_method,
               redirect_uris, grant_types, allowed_resources, allowed_scopes, tags, tenant, metadata, created_at, jwks)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(client_id) DO UPDATE SET name = excluded.name, trust_level = excluded.trust_level,
               secret_hash = excluded.secret_hash, token_endpoint_auth_method = excluded.token_endpoint_auth_method,
               redirect_uris = excluded.redirect_uris, grant_types = excluded.grant_types,
               allowed_resources = excluded.allowed_resources, allowed_scopes = excluded.allowed_scopes,
               tags = excluded.tags, tenant = excluded.tenant, metadata = excluded.metadata, jwks = excluded.jwks",
        )
        .bind(&client.client_id)
        .bind(&client.name)
        .bind(client.trust_level.as_str())
        .bind(&client.secret_hash)
        .bind(client.token_endpoint_auth_method.as_str())
        .bind(to_json(&client.redirect_uris))
        .bind(to_json(&client.grant_types))
        .bind(to_json(&client.allowed_resources))
        .bind(to_json(&client.allowed_scopes))
        .bind(to_json(&client.tags))
        .bind(&client.tenant)
        .bind(to_json(&client.metadata))
        .bind(client.created_at)
        .bind(client.jwks.as_ref().map(to_json))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A client in service; a decommissioned one is gone for every purpose but the admin's list.
    pub async fn client(&self, client_id: &str) -> Result<Option<Client>, HubError> {
        let Some(row) =
            sqlx::query("SELECT * FROM clients WHERE client_id = ? AND decommissioned_at IS NULL")
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        Self::client_from_row(&row).map(Some)
    }

    /// Any client, decommissioned or not, with when it was decommissioned.
    pub async fn client_any(
        &self,
        client_id: &str,
    ) -> Result<Option<(Client, Option<i64>)>, HubError> {
        let Some(row) = sqlx::query("SELECT * FROM clients WHERE client_id = ?")
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some((
            Self::client_from_row(&row)?,
            row.try_get("decommissioned_at")?,
        )))
    }

    /// Every client with the given trust levels, decommissioned or not, newest first.
    pub async fn clients_with_trust(
        &self,
        levels: &[TrustLevel],
    ) -> Result<Vec<(Client, Option<i64>)>, HubError> {
        let rows = sqlx::query("SELECT * FROM clients ORDER BY created_at DESC, client_id")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for row in &rows {
            let client = Self::client_from_row(row)?;
            if levels.contains(&client.trust_level) {
                out.push((client, row.try_get("decommissioned_at")?));
            }
        }
        Ok(out)
    }

    /// When the client was decommissioned, if it was.
    pub async fn decommissioned_at(&self, client_id: &str) -> Result<Option<i64>, HubError> {
        let at: Option<Option<i64>> =
            sqlx::query_scalar("SELECT decommissioned_at FROM clients WHERE client_id = ?")
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(at.flatten())
    }

    /// Takes an agent out of service: it can no longer authenticate, its refresh
    /// tokens are revoked, and access tokens issued to it stop validating.
    /// Returns the number of refresh tokens revoked, or None for an unknown client.
    pub async fn decommission_client(
        &self,
        client_id: &str,
        now: i64,
    ) -> Result<Option<u64>, HubError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE clients SET decommissioned_at = ? WHERE client_id = ? AND decommissioned_at IS NULL",
        )
        .bind(now)
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let refresh = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(client_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(Some(refresh))
    }

    // ---- policies ---------------------------------------------------------

    pub async fn insert_policy(&self, policy: &Policy) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO policies (id, name, description, conditions, grants, created_at) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, description = excluded.description,
               conditions = excluded.conditions, grants = excluded.grants",
        )
        .bind(&policy.id)
        .bind(&policy.name)
        .bind(&policy.description)
        .bind(to_json(&policy.conditions))
        .bind(to_json(&policy.grants))
        .bind(policy.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn policies(&self) -> Result<Vec<Policy>, HubError> {
        let rows = sqlx::query("SELECT * FROM policies ORDER BY created_at, rowid")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Policy {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    conditions: serde_json::from_str(&row.try_get::<String, _>("conditions")?)?,
                    grants: serde_json::from_str(&row.try_get::<String, _>("grants")?)?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Deletes a policy; false when there was none with that id.
    pub async fn delete_policy(&self, id: &str) -> Result<bool, HubError> {
        let done = sqlx::query("DELETE FROM policies WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    fn client_from_row(row: &SqliteRow) -> Result<Client, HubError> {
        let trust: String = row.try_get("trust_level")?;
        let method: String = row.try_get("token_endpoint_auth_method")?;
        Ok(Client {
            client_id: row.try_get("client_id")?,
            name: row.try_get("name")?,
            trust_level: TrustLevel::parse(&trust)
                .ok_or_else(|| HubError::Config(format!("stored trust level `{trust}`")))?,
            secret_hash: row.try_get("secret_hash")?,
            token_endpoint_auth_method: AuthMethod::parse(&method)
                .ok_or_else(|| HubError::Config(format!("stored auth method `{method}`")))?,
            redirect_uris: from_json(row, "redirect_uris")?,
            grant_types: from_json(row, "grant_types")?,
            allowed_resources: from_json(row, "allowed_resources")?,
            allowed_scopes: from_json(row, "allowed_scopes")?,
            tags: from_json(row, "tags")?,
            tenant: row.try_get("tenant")?,
            metadata: from_json(row, "metadata")?,
            created_at: row.try_get("created_at")?,
            jwks: row
                .try_get::<Option<String>, _>("jwks")?
                .map(|raw| serde_json::from_str(&raw))
                .transpose()?,
        })
    }

    // ---- authorization requests and codes ------------------------------

    pub async fn insert_authorization_request(
        &self,
        request: &AuthorizationRequest,
        now: i64,
    ) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO authorization_requests (id, client_id, redirect_uri, resource, scopes, state,
               code_challenge, correlation_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&request.id)
        .bind(&request.client_id)
        .bind(&request.redirect_uri)
        .bind(&request.resource)
        .bind(to_json(&request.scopes))
        .bind(&request.state)
        .bind(&request.code_challenge)
        .bind(&request.correlation_id)
        .bind(now)
        .bind(request.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn authorization_request(
        &self,
        id: &str,
    ) -> Result<Option<AuthorizationRequest>, HubError> {
        let Some(row) = sqlx::query("SELECT * FROM authorization_requests WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(AuthorizationRequest {
            id: row.try_get("id")?,
            client_id: row.try_get("client_id")?,
            redirect_uri: row.try_get("redirect_uri")?,
            resource: row.try_get("resource")?,
            scopes: from_json(&row, "scopes")?,
            state: row.try_get("state")?,
            code_challenge: row.try_get("code_challenge")?,
            correlation_id: row.try_get("correlation_id")?,
            user_id: row.try_get("user_id")?,
            expires_at: row.try_get("expires_at")?,
            completed: row.try_get::<i64, _>("completed")? != 0,
        }))
    }

    pub async fn set_request_user(&self, id: &str, user_id: &str) -> Result<(), HubError> {
        sqlx::query("UPDATE authorization_requests SET user_id = ? WHERE id = ? AND completed = 0")
            .bind(user_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks a request decided; false when it already was (a double submit).
    pub async fn complete_request(&self, id: &str) -> Result<bool, HubError> {
        let done = sqlx::query(
            "UPDATE authorization_requests SET completed = 1 WHERE id = ? AND completed = 0",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn insert_code(&self, code: &AuthorizationCode) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO authorization_codes (code_hash, client_id, redirect_uri, resource, scopes,
               code_challenge, user_id, tenant, correlation_id, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&code.code_hash)
        .bind(&code.client_id)
        .bind(&code.redirect_uri)
        .bind(&code.resource)
        .bind(to_json(&code.scopes))
        .bind(&code.code_challenge)
        .bind(&code.user_id)
        .bind(&code.tenant)
        .bind(&code.correlation_id)
        .bind(code.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Looks a code up by digest and reports whether it had already been redeemed.
    /// Marking it redeemed is atomic, so two concurrent redemptions cannot both win.
    pub async fn redeem_code(
        &self,
        code_hash: &str,
        now: i64,
    ) -> Result<Option<(AuthorizationCode, bool)>, HubError> {
        let Some(row) = sqlx::query("SELECT * FROM authorization_codes WHERE code_hash = ?")
            .bind(code_hash)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let first_use = sqlx::query(
            "UPDATE authorization_codes SET redeemed_at = ? WHERE code_hash = ? AND redeemed_at IS NULL",
        )
        .bind(now)
        .bind(code_hash)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        let code = AuthorizationCode {
            code_hash: row.try_get("code_hash")?,
            client_id: row.try_get("client_id")?,
            redirect_uri: row.try_get("redirect_uri")?,
            resource: row.try_get("resource")?,
            scopes: from_json(&row, "scopes")?,
            code_challenge: row.try_get("code_challenge")?,
            user_id: row.try_get("user_id")?,
            tenant: row.try_get("tenant")?,
            correlation_id: row.try_get("correlation_id")?,
            expires_at: row.try_get("expires_at")?,
        };
        Ok(Some((code, !first_use)))
    }

    /// Stores the scopes a user has consented to for this client and resource,
    /// replacing any earlier record.
    pub async fn record_consent(&self, consent: &Consent) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, resource, scopes, granted_at, expires_at, revoked_at)
             VALUES (?, ?, ?, ?, ?, ?, NULL)
             ON CONFLICT(user_id, client_id, resource) DO UPDATE SET scopes = excluded.scopes,
               granted_at = excluded.granted_at, expires_at = excluded.expires_at, revoked_at = NULL",
        )
        .bind(&consent.user_id)
        .bind(&consent.client_id)
        .bind(&consent.resource)
        .bind(to_json(&consent.scopes))
        .bind(consent.granted_at)
        .bind(consent.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The consent in force at `now`: neither expired nor revoked.
    pub async fn live_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
        now: i64,
    ) -> Result<Option<Consent>, HubError> {
        let row = sqlx::query(
            "SELECT * FROM consents WHERE user_id = ? AND client_id = ? AND resource = ?
               AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(resource)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| consent_from_row(&r)).transpose()
    }

    /// Every consent record, newest first, optionally for one user or client.
    pub async fn consents(
        &self,
        user_id: Option<&str>,
        client_id: Option<&str>,
    ) -> Result<Vec<Consent>, HubError> {
        let rows = sqlx::query(
            "SELECT * FROM consents WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR client_id = ?2)
             ORDER BY granted_at DESC",
        )
        .bind(user_id)
        .bind(client_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(consent_from_row).collect()
    }

    /// Revokes the user's live consents to `client_id` (for one resource, or
    /// all) and the refresh tokens issued under them. Returns (consents, refresh tokens) revoked.
    pub async fn revoke_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: Option<&str>,
        now: i64,
    ) -> Result<(u64, u64), HubError> {
        let mut tx = self.pool.begin().await?;
        let consents = sqlx::query(
            "UPDATE consents SET revoked_at = ? WHERE user_id = ? AND client_id = ?
               AND (? IS NULL OR resource = ?) AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(client_id)
        .bind(resource)
        .bind(resource)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let refresh = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND client_id = ?
               AND (? IS NULL OR resource = ?) AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(client_id)
        .bind(resource)
        .bind(resource)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok((consents, refresh))
    }

    // ---- refresh tokens ---------------------------------------------------

    pub async fn insert_refresh_token(
        &self,
        token: &RefreshToken,
        now: i64,
    ) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, tenant, resource, scopes,
               issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

    pub async fn revoke_access_token(
        &self,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO revoked_access_tokens (jti, expires_at, revoked_at) VALUES (?, ?, ?)
             ON CONFLICT(jti) DO NOTHING",
        )
        .bind(jti)
        .bind(expires_at)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, HubError> {
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

    // ---- signing keys ---------------------------------------------------

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

    // ---- audit ----------------------------------------------------------

    pub async fn append_audit(&self, event: &AuditEvent) -> Result<(), HubError> {
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
        .execute(&self.pool)
        .await?;
        Ok(())
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

fn consent_from_row(row: &SqliteRow) -> Result<Consent, HubError> {
    Ok(Consent {
        user_id: row.try_get("user_id")?,
        client_id: row.try_get("client_id")?,
        resource: row.try_get("resource")?,
        scopes: from_json(row, "scopes")?,
        granted_at: row.try_get("granted_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}
