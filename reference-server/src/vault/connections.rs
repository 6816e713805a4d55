//! Connections: third-party services whose credentials the hub keeps so that
//! agents and MCP servers never hold them (docs/connections.md).
//!
//! This module owns the definitions, the sealed token rows and the admin API
//! that manages both. Retrieval and refresh live in `retrieval.rs`, the
//! browser connect flow in `connect.rs`. Every secret goes through
//! [`crate::vault`] with the row's identity as associated data, and no
//! function here logs or audits a secret.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::audit::event::{AuditEvent, Outcome};
use crate::error::{HubError, OAuthError};
use crate::fault::Fault;
use crate::hub::Hub;
use crate::params::json_body;
use crate::policy::rules::KnownConnection;
use crate::vault::sealing::{Sealed, PLAINTEXT_KEY_ID};

/// How a `resource` names a Connection at the token endpoint.
pub const RESOURCE_PREFIX: &str = "urn:hub:connection:";

/// What kind of credential a Connection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionKind {
    /// OAuth 2.0 tokens from a provider, refreshed by the hub.
    Oauth2,
    /// A static API key, returned as stored.
    ApiKey,
}

impl ConnectionKind {
    fn as_str(self) -> &'static str {
        match self {
            ConnectionKind::Oauth2 => "oauth2",
            ConnectionKind::ApiKey => "api_key",
        }
    }
}

/// A Connection's definition. `client_secret` is opened from the vault.
#[derive(Clone)]
pub struct Connection {
    pub id: String,
    pub name: String,
    pub kind: ConnectionKind,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub api_base_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    /// Agents (client_credentials clients) that may retrieve its tokens.
    pub allowed_clients: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("token_endpoint", &self.token_endpoint)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// The `resource` value that names it at the token endpoint.
    pub fn resource(&self) -> String {
        format!("{RESOURCE_PREFIX}{}", self.id)
    }

    /// How the policy engine sees it.
    pub fn known(&self) -> KnownConnection {
        KnownConnection {
            id: self.id.clone(),
            scopes: self.scopes.clone(),
        }
    }

    /// The admin view: never a secret.
    fn view(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "type": self.kind.as_str(),
            "authorization_endpoint": self.authorization_endpoint,
            "token_endpoint": self.token_endpoint,
            "api_base_url": self.api_base_url,
            "client_id": self.client_id,
            "has_client_secret": self.client_secret.is_some(),
            "scopes": self.scopes,
            "allowed_clients": self.allowed_clients,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

/// Whose credential a stored token is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    User(String),
    Tenant(String),
    Agent(String),
}

impl Owner {
    pub fn kind(&self) -> &'static str {
        match self {
            Owner::User(_) => "user",
            Owner::Tenant(_) => "tenant",
            Owner::Agent(_) => "agent",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Owner::User(id) | Owner::Tenant(id) | Owner::Agent(id) => id,
        }
    }

    fn from_parts(kind: &str, id: String) -> Result<Owner, HubError> {
        match kind {
            "user" => Ok(Owner::User(id)),
            "tenant" => Ok(Owner::Tenant(id)),
            "agent" => Ok(Owner::Agent(id)),
            other => Err(HubError::Config(format!("unknown owner kind {other}"))),
        }
    }

    pub fn view(&self) -> Value {
        json!({ self.kind(): self.id() })
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind(), self.id())
    }
}

/// The secret part of a stored credential, sealed as one JSON document.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Credential {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Unix seconds; `None` when the provider did not say.
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub metadata: Value,
}

impl std::fmt::Debug for Credential {
    /// Never the values: only which parts exist.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("access_token", &self.access_token.as_ref().map(|_| "…"))
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "…"))
            .field("api_key", &self.api_key.as_ref().map(|_| "…"))
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// One row of `connection_tokens`, opened.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: i64,
    pub connection_id: String,
    pub owner: Owner,
    /// '' for the token as granted; otherwise the narrowed scopes, sorted.
    pub scope_key: String,
    pub credential: Credential,
    pub needs_reauth: bool,
    pub last_refreshed_at: Option<i64>,
    pub key_id: String,
}

impl TokenRow {
    /// `active`, `expired` or `needs_reauthorization`.
    pub fn status(&self, now: i64) -> &'static str {
        if self.needs_reauth {
            "needs_reauthorization"
        } else if self.credential.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        }
    }

    fn view(&self, now: i64) -> Value {
        json!({
            "owner": self.owner.view(),
            "status": self.status(now),
            "scopes": self.credential.scopes,
            "expires_at": self.credential.expires_at,
            "last_refreshed_at": self.last_refreshed_at,
            "key_id": self.key_id,
        })
    }
}

/// Associated data binding a sealed credential to its row.
fn token_aad(connection_id: &str, owner: &Owner, scope_key: &str) -> String {
    format!(
        "connection-token:v1:{connection_id}:{}:{}:{scope_key}",
        owner.kind(),
        owner.id()
    )
}

fn secret_aad(connection_id: &str) -> String {
    format!("connection-client-secret:v1:{connection_id}")
}

impl Hub {
    /// Seals under the active vault key, or, under the `plaintext-vault`
    /// fault, not at all.
    fn seal(&self, plaintext: &[u8], aad: &str) -> Sealed {
        if self.faults.on(Fault::PlaintextVault) {
            return Sealed {
                key_id: PLAINTEXT_KEY_ID.to_owned(),
                nonce: Vec::new(),
                ciphertext: plaintext.to_vec(),
            };
        }
        self.vault.seal(plaintext, aad)
    }

    fn open(&self, sealed: &Sealed, aad: &str) -> Result<Vec<u8>, HubError> {
        self.vault
            .open(sealed, aad)
            .map_err(|e| HubError::Config(e.to_string()))
    }

    // ---- definitions ----------------------------------------------------

    fn connection_from_row(&self, row: &SqliteRow) -> Result<Connection, HubError> {
        let id: String = row.try_get("id")?;
        let kind: String = row.try_get("kind")?;
        let secret_key_id: Option<String> = row.try_get("secret_key_id")?;
        let client_secret = match secret_key_id {
            Some(key_id) => {
                let sealed = Sealed {
                    key_id,
                    nonce: row.try_get("secret_nonce")?,
                    ciphertext: row.try_get("secret_sealed")?,
                };
                let bytes = self.open(&sealed, &secret_aad(&id))?;
                Some(String::from_utf8(bytes).map_err(|e| HubError::Config(e.to_string()))?)
            }
            None => None,
        };
        let scopes: String = row.try_get("scopes")?;
        let allowed: String = row.try_get("allowed_clients")?;
        Ok(Connection {
            name: row.try_get("name")?,
            kind: if kind == "api_key" {
                ConnectionKind::ApiKey
            } else {
                ConnectionKind::Oauth2
            },
            authorization_endpoint: row.try_get("authorization_endpoint")?,
            token_endpoint: row.try_get("token_endpoint")?,
            api_base_url: row.try_get("api_base_url")?,
            client_id: row.try_get("client_id")?,
            client_secret,
            scopes: serde_json::from_str(&scopes)?,
            allowed_clients: serde_json::from_str(&allowed)?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            id,
        })
    }

    pub async fn connection(&self, id: &str) -> Result<Option<Connection>, HubError> {
        let row = sqlx::query("SELECT * FROM connections WHERE id = ?")
            .bind(id)
            .fetch_optional(self.store.pool())
            .await?;
        row.as_ref()
            .map(|r| self.connection_from_row(r))
            .transpose()
    }

    pub async fn connections(&self) -> Result<Vec<Connection>, HubError> {
        let rows = sqlx::query("SELECT * FROM connections ORDER BY id")
            .fetch_all(self.store.pool())
            .await?;
        rows.iter().map(|r| self.connection_from_row(r)).collect()
    }

    /// Every Connection as the policy engine sees it.
    pub async fn known_connections(&self) -> Result<Vec<KnownConnection>, HubError> {
        Ok(self
            .connections()
            .await?
            .iter()
            .map(Connection::known)
            .collect())
    }

    /// Creates or replaces a definition; true when it was created.
    pub async fn put_connection(&self, c: &Connection) -> Result<bool, HubError> {
        let existed = self.connection(&c.id).await?.is_some();
        let sealed = c
            .client_secret
            .as_ref()
            .map(|s| self.seal(s.as_bytes(), &secret_aad(&c.id)));
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
        .bind(c.kind.as_str())
        .bind(&c.authorization_endpoint)
        .bind(&c.token_endpoint)
        .bind(&c.api_base_url)
        .bind(&c.client_id)
        .bind(sealed.as_ref().map(|s| s.key_id.clone()))
        .bind(sealed.as_ref().map(|s| s.nonce.clone()))
        .bind(sealed.as_ref().map(|s| s.ciphertext.clone()))
        .bind(serde_json::to_string(&c.scopes)?)
        .bind(serde_json::to_string(&c.allowed_clients)?)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(self.store.pool())
        .await?;
        Ok(!existed)
    }

    pub async fn delete_connection(&self, id: &str) -> Result<bool, HubError> {
        let done = sqlx::query("DELETE FROM connections WHERE id = ?")
            .bind(id)
            .execute(self.store.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    // ---- tokens ---------------------------------------------------------

    fn token_from_row(&self, row: &SqliteRow) -> Result<TokenRow, HubError> {
        let connection_id: String = row.try_get("connection_id")?;
        let owner_kind: String = row.try_get("owner_kind")?;
        let owner = Owner::from_parts(&owner_kind, row.try_get("owner_id")?)?;
        let scope_key: String = row.try_get("scope_key")?;
        let sealed = Sealed {
            key_id: row.try_get("key_id")?,
            nonce: row.try_get("nonce")?,
            ciphertext: row.try_get("sealed")?,
        };
        let bytes = self.open(&sealed, &token_aad(&connection_id, &owner, &scope_key))?;
        let needs_reauth: i64 = row.try_get("needs_reauth")?;
        Ok(TokenRow {
            id: row.try_get("id")?,
            credential: serde_json::from_slice(&bytes)?,
            needs_reauth: needs_reauth != 0,
            last_refreshed_at: row.try_get("last_refreshed_at")?,
            key_id: sealed.key_id,
            connection_id,
            owner,
            scope_key,
        })
    }

    /// Stores (or replaces) the credential of one owner; clears a pending
    /// re-authorization. Storing the token as granted drops any narrowed
    /// tokens derived from the previous one.
    pub async fn put_connection_token(
        &self,
        connection_id: &str,
        owner: &Owner,
        scope_key: &str,
        credential: &Credential,
        refreshed_at: Option<i64>,
    ) -> Result<(), HubError> {
        let sealed = self.seal(
            &serde_json::to_vec(credential)?,
            &token_aad(connection_id, owner, scope_key),
        );
        let now = self.clock.now();
        let mut tx = self.store.pool().begin().await?;
        if scope_key.is_empty() && refreshed_at.is_none() {
            sqlx::query(
                "DELETE FROM connection_tokens WHERE connection_id = ? AND owner_kind = ? AND owner_id = ? AND scope_key <> ''",
            )
            .bind(connection_id)
            .bind(owner.kind())
            .bind(owner.id())
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
        .bind(connection_id)
        .bind(owner.kind())
        .bind(owner.id())
        .bind(scope_key)
        .bind(&sealed.key_id)
        .bind(&sealed.nonce)
        .bind(&sealed.ciphertext)
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
        connection_id: &str,
        owner: &Owner,
        scope_key: &str,
    ) -> Result<Option<TokenRow>, HubError> {
        let row = sqlx::query(
            "SELECT * FROM connection_tokens WHERE connection_id = ? AND owner_kind = ? AND owner_id = ? AND scope_key = ?",
        )
        .bind(connection_id)
        .bind(owner.kind())
        .bind(owner.id())
        .bind(scope_key)
        .fetch_optional(self.store.pool())
        .await?;
        row.as_ref().map(|r| self.token_from_row(r)).transpose()
    }

    /// The tokens as granted (not narrowed ones) of one connection, optionally
    /// of one owner kind.
    pub async fn connection_tokens(
        &self,
        connection_id: &str,
        owner_kind: Option<&str>,
    ) -> Result<Vec<TokenRow>, HubError> {
        let rows = sqlx::query(
            "SELECT * FROM connection_tokens WHERE connection_id = ? AND scope_key = ''
               AND (? IS NULL OR owner_kind = ?) ORDER BY owner_kind, owner_id",
        )
        .bind(connection_id)
        .bind(owner_kind)
        .bind(owner_kind)
        .fetch_all(self.store.pool())
        .await?;
        rows.iter().map(|r| self.token_from_row(r)).collect()
    }

    pub async fn mark_needs_reauth(&self, row_id: i64) -> Result<(), HubError> {
        sqlx::query("UPDATE connection_tokens SET needs_reauth = 1, updated_at = ? WHERE id = ?")
            .bind(self.clock.now())
            .bind(row_id)
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    pub async fn delete_connection_token(
        &self,
        connection_id: &str,
        owner: &Owner,
    ) -> Result<bool, HubError> {
        let done = sqlx::query(
            "DELETE FROM connection_tokens WHERE connection_id = ? AND owner_kind = ? AND owner_id = ?",
        )
        .bind(connection_id)
        .bind(owner.kind())
        .bind(owner.id())
        .execute(self.store.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// Refuses to start with a missing or wrong vault key: every key id the
/// database has sealed under must be configured, and every configured key
/// must open the check value recorded for its id.
pub async fn check_vault_keys(hub: &Hub) -> Result<(), HubError> {
    let pool = hub.store.pool();
    let used: Vec<String> = sqlx::query_scalar(
        "SELECT key_id FROM connection_tokens UNION SELECT secret_key_id FROM connections WHERE secret_key_id IS NOT NULL",
    )
    .fetch_all(pool)
    .await?;
    let configured: Vec<&str> = hub.vault.ids().collect();
    if let Some(missing) = used
        .iter()
        .find(|k| k.as_str() != PLAINTEXT_KEY_ID && !configured.contains(&k.as_str()))
    {
        return Err(HubError::Config(
            crate::vault::sealing::VaultError::UnknownKey(missing.clone()).to_string(),
        ));
    }
    for id in configured {
        let row = sqlx::query("SELECT nonce, sealed FROM vault_keys WHERE key_id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await?;
        match row {
            Some(row) => {
                let sealed = Sealed {
                    key_id: id.to_owned(),
                    nonce: row.try_get("nonce")?,
                    ciphertext: row.try_get("sealed")?,
                };
                hub.vault
                    .verify_check_value(&sealed)
                    .map_err(|e| HubError::Config(e.to_string()))?;
            }
            None => {
                let sealed = hub
                    .vault
                    .check_value(id)
                    .ok_or_else(|| HubError::Config(format!("vault key {id} vanished")))?;
                sqlx::query(
                    "INSERT INTO vault_keys (key_id, nonce, sealed, created_at) VALUES (?, ?, ?, ?)",
                )
                .bind(id)
                .bind(&sealed.nonce)
                .bind(&sealed.ciphertext)
                .bind(hub.clock.now())
                .execute(pool)
                .await?;
            }
        }
    }
    Ok(())
}

// ---- admin API --------------------------------------------------------------

const CONNECTION_FIELDS: &[&str] = &[
    "id",
    "name",
    "type",
    "authorization_endpoint",
    "token_endpoint",
    "api_base_url",
    "client_id",
    "client_secret",
    "scopes",
    "allowed_clients",
];

fn bad(message: impl Into<String>) -> OAuthError {
    OAuthError::InvalidRequest(message.into())
}

/// A connection id: 1–64 of `a-z 0-9 - _ .`.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn optional_string(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, OAuthError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Some(Value::String(_)) => Err(bad(format!("`{field}` must not be empty"))),
        Some(_) => Err(bad(format!("`{field}` must be a string"))),
    }
}

fn string_list(obj: &Map<String, Value>, field: &str) -> Result<Vec<String>, OAuthError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            let mut out: Vec<String> = Vec::with_capacity(items.len());
            for item in items {
                let s = item
                    .as_str()
                    .filter(|s| !s.is_empty() && !s.chars().any(char::is_whitespace))
                    .ok_or_else(|| {
                        bad(format!(
                            "`{field}` must be an array of non-empty strings without spaces"
                        ))
                    })?;
                if !out.iter().any(|o| o == s) {
                    out.push(s.to_owned());
                }
            }
            Ok(out)
        }
        Some(_) => Err(bad(format!("`{field}` must be an array of strings"))),
    }
}

/// An absolute http(s) URL with a host, or a precise error naming the field.
fn endpoint(
    hub: &Hub,
    obj: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, OAuthError> {
    let Some(raw) = optional_string(obj, field)? else {
        return Ok(None);
    };
    if hub.faults.on(Fault::AcceptMalformedConnectionEndpoint) {
        return Ok(Some(raw));
    }
    let url = url::Url::parse(&raw)
        .map_err(|e| bad(format!("`{field}` is not an absolute URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad(format!(
            "`{field}` must be an http or https URL with a host"
        )));
    }
    if url.fragment().is_some() {
        return Err(bad(format!("`{field}` must not have a fragment")));
    }
    Ok(Some(raw))
}

/// Validates a definition draft for connection `id`.
async fn parse_connection(hub: &Hub, id: &str, draft: &Value) -> Result<Connection, OAuthError> {
    if !valid_id(id) {
        return Err(bad("a connection id is 1-64 of a-z 0-9 - _ ."));
    }
    let obj = draft
        .as_object()
        .ok_or_else(|| bad("a connection must be a JSON object"))?;
    if let Some(field) = obj
        .keys()
        .find(|k| !CONNECTION_FIELDS.contains(&k.as_str()))
    {
        return Err(bad(format!(
            "unknown field `{field}`; expected {}",
            CONNECTION_FIELDS.join(", ")
        )));
    }
    let kind = match obj.get("type").and_then(Value::as_str) {
        Some("oauth2") => ConnectionKind::Oauth2,
        Some("api_key") => ConnectionKind::ApiKey,
        _ => return Err(bad("`type` must be \"oauth2\" or \"api_key\"")),
    };
    let allowed_clients = string_list(obj, "allowed_clients")?;
    for client in &allowed_clients {
        if hub.store.client(client).await?.is_none() {
            return Err(bad(format!("allowed_clients: unknown client `{client}`")));
        }
    }
    let now = hub.clock.now();
    let mut connection = Connection {
        id: id.to_owned(),
        name: optional_string(obj, "name")?.unwrap_or_else(|| id.to_owned()),
        kind,
        authorization_endpoint: None,
        token_endpoint: None,
        api_base_url: endpoint(hub, obj, "api_base_url")?,
        client_id: None,
        client_secret: None,
        scopes: Vec::new(),
        allowed_clients,
        created_at: now,
        updated_at: now,
    };
    match kind {
        ConnectionKind::ApiKey => {
            if let Some(field) = [
                "authorization_endpoint",
                "token_endpoint",
                "client_id",
                "client_secret",
                "scopes",
            ]
            .into_iter()
            .find(|f| obj.get(*f).is_some_and(|v| !v.is_null()))
            {
                return Err(bad(format!(
                    "an api_key connection has no `{field}`; only oauth2 connections do"
                )));
            }
        }
        ConnectionKind::Oauth2 => {
            connection.token_endpoint = Some(
                endpoint(hub, obj, "token_endpoint")?
                    .ok_or_else(|| bad("an oauth2 connection needs `token_endpoint`"))?,
            );
            connection.authorization_endpoint = endpoint(hub, obj, "authorization_endpoint")?;
            connection.client_id = Some(
                optional_string(obj, "client_id")?
                    .ok_or_else(|| bad("an oauth2 connection needs `client_id`"))?,
            );
            connection.client_secret = optional_string(obj, "client_secret")?;
            connection.scopes = string_list(obj, "scopes")?;
        }
    }
    Ok(connection)
}

async fn audit_admin(
    hub: &Hub,
    peer: std::net::SocketAddr,
    event_type: &str,
    connection_id: &str,
    reason: String,
    user: Option<String>,
    tenant: Option<String>,
) -> Result<(), OAuthError> {
    hub.audit(
        AuditEvent::new(event_type, Outcome::Success)
            .actor("admin", None)
            .resource(format!("{RESOURCE_PREFIX}{connection_id}"))
            .user(user)
            .tenant(tenant)
            .source_ip(peer.ip().to_string())
            .reason(reason),
    )
    .await?;
    Ok(())
}

/// Upserts a connection from the seed, validated like the admin API's.
pub(crate) async fn seed_connection(hub: &Hub, id: &str, draft: Value) -> Result<(), OAuthError> {
    let mut connection = parse_connection(hub, id, &draft).await?;
    if let Some(existing) = hub.connection(id).await? {
        connection.created_at = existing.created_at;
    }
    hub.put_connection(&connection).await?;
    Ok(())
}

/// Points the seeded `demo-calendar` connection at the demo provider's
/// actual address (`hub --demo-provider-bind`).
pub(crate) async fn point_demo_connection(hub: &Hub, provider_url: &str) -> Result<(), HubError> {
    let Some(mut connection) = hub.connection("demo-calendar").await? else {
        return Ok(());
    };
    let base = provider_url.trim_end_matches('/');
    connection.authorization_endpoint = Some(format!("{base}/authorize"));
    connection.token_endpoint = Some(format!("{base}/token"));
    connection.api_base_url = Some(format!("{base}/api"));
    hub.put_connection(&connection).await?;
    Ok(())
}

/// `PUT /admin/connections/{id}`: create or replace a definition.
pub async fn put_connection(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let draft: Value = json_body(&body)?;
    if draft
        .get("id")
        .is_some_and(|v| v.as_str() != Some(id.as_str()))
    {
        return Err(bad("the body's `id` differs from the URL's"));
    }
    store_definition(&hub, peer, &id, &draft, true).await
}

/// `POST /admin/connections`: create; 409 when the id is taken.
pub async fn create_connection(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let draft: Value = json_body(&body)?;
    let id = draft
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("a new connection needs an `id`"))?
        .to_owned();
    store_definition(&hub, peer, &id, &draft, false).await
}

async fn store_definition(
    hub: &Hub,
    peer: std::net::SocketAddr,
    id: &str,
    draft: &Value,
    replace: bool,
) -> Result<Response, OAuthError> {
    let mut connection = parse_connection(hub, id, draft).await?;
    if let Some(existing) = hub.connection(id).await? {
        // The secret is never shown, so a definition put back without one keeps it.
        if connection.client_secret.is_none()
            && connection.kind == ConnectionKind::Oauth2
            && draft.get("client_secret").is_none()
        {
            connection.client_secret = existing.client_secret.clone();
        }
        if !replace {
            return Ok((
                StatusCode::CONFLICT,
                Json(json!({"error": "invalid_request", "error_description": format!("connection `{id}` already exists")})),
            )
                .into_response());
        }
        connection.created_at = existing.created_at;
    }
    let created = hub.put_connection(&connection).await?;
    let event = if created {
        "connection.created"
    } else {
        "connection.updated"
    };
    audit_admin(
        hub,
        peer,
        event,
        id,
        format!(
            "connection \"{}\" ({})",
            connection.name,
            connection.kind.as_str()
        ),
        None,
        None,
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(connection.view())).into_response())
}

/// `GET /admin/connections`.
pub async fn list_connections(State(hub): State<Arc<Hub>>) -> Result<Response, OAuthError> {
    let connections: Vec<Value> = hub
        .connections()
        .await?
        .iter()
        .map(Connection::view)
        .collect();
    Ok(Json(json!({ "connections": connections })).into_response())
}

fn not_found(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "not_found", "error_description": format!("no connection `{id}`")})),
    )
        .into_response()
}

/// `GET /admin/connections/{id}`: the definition and every owner's token status.
pub async fn get_connection(
    State(hub): State<Arc<Hub>>,
    Path(id): Path<String>,
) -> Result<Response, OAuthError> {
    let Some(connection) = hub.connection(&id).await? else {
        return Ok(not_found(&id));
    };
    let now = hub.clock.now();
    let mut view = connection.view();
    view["tokens"] = hub
        .connection_tokens(&id, None)
        .await?
        .iter()
        .map(|t| t.view(now))
        .collect();
    Ok(Json(view).into_response())
}

/// `DELETE /admin/connections/{id}`: the definition and every stored token.
pub async fn delete_connection(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
) -> Result<Response, OAuthError> {
    if !hub.delete_connection(&id).await? {
        return Ok(not_found(&id));
    }
    audit_admin(
        &hub,
        peer,
        "connection.deleted",
        &id,
        "connection and its tokens deleted".into(),
        None,
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Resolves an owner given as `{"user": …}` / `{"tenant": …}` / `{"agent": …}`.
async fn resolve_owner(hub: &Hub, kind: &str, id: &str) -> Result<Owner, OAuthError> {
    match kind {
        "user" => {
            let user = match hub.store.user_by_id(id).await? {
                Some(u) => Some(u),
                None => hub.store.user_by_username(id).await?,
            };
            user.map(|u| Owner::User(u.id))
                .ok_or_else(|| bad(format!("owner: unknown user `{id}`")))
        }
        "tenant" => {
            if hub.store.tenant_exists(id).await? {
                Ok(Owner::Tenant(id.to_owned()))
            } else {
                Err(bad(format!("owner: unknown tenant `{id}`")))
            }
        }
        "agent" => {
            if hub.store.client(id).await?.is_some() {
                Ok(Owner::Agent(id.to_owned()))
            } else {
                Err(bad(format!("owner: unknown agent `{id}`")))
            }
        }
        _ => Err(bad("owner is one of user, tenant, agent")),
    }
}

async fn owner_from_json(hub: &Hub, raw: Option<&Value>) -> Result<Owner, OAuthError> {
    let obj = raw
        .and_then(Value::as_object)
        .filter(|o| o.len() == 1)
        .ok_or_else(|| {
            bad(r#"`owner` must be exactly one of {"user": …}, {"tenant": …}, {"agent": …}"#)
        })?;
    let (kind, id) = obj.iter().next().expect("one entry");
    let id = id
        .as_str()
        .ok_or_else(|| bad(format!("owner.{kind} must be a string")))?;
    resolve_owner(hub, kind, id).await
}

/// The user id and tenant an owner stands for, for audit events.
fn owner_subjects(owner: &Owner) -> (Option<String>, Option<String>) {
    match owner {
        Owner::User(id) => (Some(id.clone()), None),
        Owner::Tenant(id) => (None, Some(id.clone())),
        Owner::Agent(_) => (None, None),
    }
}

/// `PUT /admin/connections/{id}/tokens`: store a credential directly.
pub async fn put_token(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let Some(connection) = hub.connection(&id).await? else {
        return Ok(not_found(&id));
    };
    let draft: Value = json_body(&body)?;
    let obj = draft
        .as_object()
        .ok_or_else(|| bad("a token must be a JSON object"))?;
    let owner = owner_from_json(&hub, obj.get("owner")).await?;
    let now = hub.clock.now();
    let credential = match connection.kind {
        ConnectionKind::ApiKey => {
            const FIELDS: &[&str] = &["owner", "api_key", "metadata"];
            if let Some(field) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
                return Err(bad(format!(
                    "unknown field `{field}` for an api_key connection; expected {}",
                    FIELDS.join(", ")
                )));
            }
            Credential {
                api_key: Some(
                    optional_string(obj, "api_key")?
                        .ok_or_else(|| bad("an api_key connection stores an `api_key`"))?,
                ),
                metadata: obj.get("metadata").cloned().unwrap_or(Value::Null),
                ..Credential::default()
            }
        }
        ConnectionKind::Oauth2 => {
            const FIELDS: &[&str] = &[
                "owner",
                "access_token",
                "refresh_token",
                "expires_in",
                "expires_at",
                "scopes",
                "metadata",
            ];
            if let Some(field) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
                return Err(bad(format!(
                    "unknown field `{field}`; expected {}",
                    FIELDS.join(", ")
                )));
            }
            let expires_at = match (obj.get("expires_in"), obj.get("expires_at")) {
                (Some(_), Some(_)) => {
                    return Err(bad("give `expires_in` or `expires_at`, not both"))
                }
                (Some(v), None) => Some(
                    now + v
                        .as_i64()
                        .filter(|s| *s >= 0)
                        .ok_or_else(|| bad("`expires_in` must be a non-negative integer"))?,
                ),
                (None, Some(v)) => Some(
                    v.as_i64()
                        .ok_or_else(|| bad("`expires_at` must be an integer (unix seconds)"))?,
                ),
                (None, None) => None,
            };
            let scopes = match obj.get("scopes") {
                Some(_) => string_list(obj, "scopes")?,
                None => connection.scopes.clone(),
            };
            if let Some(unknown) = scopes.iter().find(|s| !connection.scopes.contains(s)) {
                return Err(bad(format!(
                    "scope `{unknown}` is not one of the connection's scopes"
                )));
            }
            Credential {
                access_token: Some(
                    optional_string(obj, "access_token")?
                        .ok_or_else(|| bad("an oauth2 token needs `access_token`"))?,
                ),
                refresh_token: optional_string(obj, "refresh_token")?,
                api_key: None,
                expires_at,
                scopes,
                metadata: obj.get("metadata").cloned().unwrap_or(Value::Null),
            }
        }
    };
    hub.put_connection_token(&id, &owner, "", &credential, None)
        .await?;
    let (user, tenant) = owner_subjects(&owner);
    audit_admin(
        &hub,
        peer,
        "connection.token.stored",
        &id,
        format!("token stored for {owner}"),
        user,
        tenant,
    )
    .await?;
    let row = hub
        .connection_token(&id, &owner, "")
        .await?
        .ok_or(OAuthError::ServerError)?;
    Ok(Json(row.view(now)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct OwnerQuery {
    owner: String,
}

/// `DELETE /admin/connections/{id}/tokens?owner=user:alice`.
pub async fn delete_token(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
    Query(query): Query<OwnerQuery>,
) -> Result<Response, OAuthError> {
    let (kind, owner_id) = query
        .owner
        .split_once(':')
        .ok_or_else(|| bad("owner is user:<id>, tenant:<id> or agent:<client_id>"))?;
    let owner = resolve_owner(&hub, kind, owner_id).await?;
    if !hub.delete_connection_token(&id, &owner).await? {
        return Ok((
            StatusCode::NOT_FOUND,
            Json(json!({"error": "not_found", "error_description": format!("connection `{id}` holds no token for {owner}")})),
        )
            .into_response());
    }
    let (user, tenant) = owner_subjects(&owner);
    audit_admin(
        &hub,
        peer,
        "connection.token.deleted",
        &id,
        format!("token deleted for {owner}"),
        user,
        tenant,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
