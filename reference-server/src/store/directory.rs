//! Who and what the hub knows: tenants, users, MCP servers and clients
//! (agents among them), and taking a client out of service.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{from_json, to_json, Store};
use crate::error::HubError;
use crate::model::{AuthMethod, Client, McpServer, Tenant, TrustLevel, User};

impl Store {
    pub async fn tenant_exists(&self, id: &str) -> Result<bool, HubError> {
        let row = sqlx::query("SELECT 1 FROM tenants WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    pub async fn upsert_tenant(&self, tenant: &Tenant) -> Result<(), HubError> {
        sqlx::query("INSERT INTO tenants (id, name, second_factor) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name, second_factor = excluded.second_factor")
            .bind(&tenant.id)
            .bind(&tenant.name)
            .bind(to_json(&tenant.second_factor))
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

    /// Every user, by username (the console's list).
    pub async fn users(&self) -> Result<Vec<User>, HubError> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY username")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::user_from_row).collect()
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
            "INSERT INTO mcp_servers (id, name, path, scopes, tools, required_scopes) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, path = excluded.path,
               scopes = excluded.scopes, tools = excluded.tools,
               required_scopes = excluded.required_scopes",
        )
        .bind(&server.id)
        .bind(&server.name)
        .bind(&server.path)
        .bind(to_json(&server.scopes))
        .bind(to_json(&server.tools))
        .bind(to_json(&server.required_scopes))
        .execute(&self.pool)
        .await?;
        *self.servers.write().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    fn server_from_row(row: &SqliteRow) -> Result<McpServer, HubError> {
        Ok(McpServer {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            path: row.try_get("path")?,
            scopes: from_json(row, "scopes")?,
            required_scopes: from_json(row, "required_scopes")?,
            tools: from_json(row, "tools")?,
        })
    }

    /// Every MCP server, by id. Read on every token request and written
    /// only by the seed, so kept in memory after the first read; the cache
    /// is dropped on every write ([`Store::upsert_mcp_server`]).
    pub async fn mcp_servers(&self) -> Result<Vec<McpServer>, HubError> {
        if let Some(servers) = self
            .servers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Ok(servers.clone());
        }
        let rows = sqlx::query("SELECT * FROM mcp_servers ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let servers: Vec<McpServer> = rows
            .iter()
            .map(Self::server_from_row)
            .collect::<Result<_, _>>()?;
        *self.servers.write().unwrap_or_else(|p| p.into_inner()) = Some(servers.clone());
        Ok(servers)
    }

    /// The MCP server at `path`, from the same in-memory list as
    /// [`Store::mcp_servers`]: asked on every MCP request and every
    /// unrouted one, it costs no query.
    pub async fn mcp_server_by_path(&self, path: &str) -> Result<Option<McpServer>, HubError> {
        Ok(self
            .mcp_servers()
            .await?
            .into_iter()
            .find(|s| s.path == path))
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
        self.forget_client(&client.client_id);
        Ok(())
    }

    /// A client in service; a decommissioned one is gone for every purpose but the admin's list.
    ///
    /// Read several times per token request (authentication, the audit
    /// event), so clients in service are kept in memory. Every write to a
    /// client row in this module forgets the client once it is written
    /// ([`Store::forget_client`]), and a read that raced a write does not
    /// keep what it read (the cache's generation moved).
    pub async fn client(&self, client_id: &str) -> Result<Option<Client>, HubError> {
        let generation = {
            let cache = self.client_cache();
            if let Some(client) = cache.clients.get(client_id) {
                return Ok(Some(client.clone()));
            }
            cache.generation
        };
        let Some(row) =
            sqlx::query("SELECT * FROM clients WHERE client_id = ? AND decommissioned_at IS NULL")
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let client = Self::client_from_row(&row)?;
        let mut cache = self.client_cache();
        if cache.generation == generation {
            // Bounded: a registration flood cannot grow it past this.
            if cache.clients.len() >= super::CLIENT_CACHE {
                cache.clients.clear();
            }
            cache.clients.insert(client_id.to_owned(), client.clone());
        }
        Ok(Some(client))
    }

    fn client_cache(&self) -> std::sync::MutexGuard<'_, super::ClientCache> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops a client from memory after a write to its row, and moves the
    /// generation so a read in flight does not put the old row back.
    fn forget_client(&self, client_id: &str) {
        let mut cache = self.client_cache();
        cache.generation += 1;
        cache.clients.remove(client_id);
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

    /// Replaces how a client's secret is stored (the same secret, re-stored
    /// in another kind: see `credentials::needs_rehash`), only if it is still
    /// stored as `was`, so a concurrent rotation is never undone.
    pub async fn rehash_client_secret(
        &self,
        client_id: &str,
        was: &str,
        now_stored: &str,
    ) -> Result<bool, HubError> {
        let done = sqlx::query(
            "UPDATE clients SET secret_hash = ? WHERE client_id = ? AND secret_hash = ?",
        )
        .bind(now_stored)
        .bind(client_id)
        .bind(was)
        .execute(&self.pool)
        .await?;
        self.forget_client(client_id);
        Ok(done.rows_affected() == 1)
    }

    /// Whether the client was decommissioned. Asked on every token
    /// validation: a client in service is answered from memory
    /// ([`Store::client`]), so only one the store does not hold costs a read.
    pub async fn is_decommissioned(&self, client_id: &str) -> Result<bool, HubError> {
        Ok(self.client(client_id).await?.is_none()
            && self.decommissioned_at(client_id).await?.is_some())
    }

    /// When the client was decommissioned, if it was.
    async fn decommissioned_at(&self, client_id: &str) -> Result<Option<i64>, HubError> {
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
        self.forget_client(client_id);
        Ok(Some(refresh))
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
}
