//! Connections and their tokens to and from the store: sealed on the way in,
//! opened on the way out, each secret bound to its row's identity as
//! associated data so a sealed value cannot be moved to another row. No
//! function here logs or audits a secret.

use crate::error::HubError;
use crate::fault::Fault;
use crate::hub::Hub;
use crate::policy::rules::KnownConnection;
use crate::store::connections::{ConnectionRecord, TokenKey, TokenRecord};
use crate::vault::connection::{Connection, ConnectionKind, Credential, Owner, TokenRow};
use crate::vault::sealing::{Sealed, VaultError, PLAINTEXT_KEY_ID};

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

    fn open_connection(&self, record: ConnectionRecord) -> Result<Connection, HubError> {
        let client_secret = match &record.client_secret {
            Some(sealed) => {
                let bytes = self.open(sealed, &secret_aad(&record.id))?;
                Some(String::from_utf8(bytes).map_err(|e| HubError::Config(e.to_string()))?)
            }
            None => None,
        };
        Ok(Connection {
            name: record.name,
            kind: if record.kind == "api_key" {
                ConnectionKind::ApiKey
            } else {
                ConnectionKind::Oauth2
            },
            authorization_endpoint: record.authorization_endpoint,
            token_endpoint: record.token_endpoint,
            api_base_url: record.api_base_url,
            client_id: record.client_id,
            client_secret,
            scopes: record.scopes,
            allowed_clients: record.allowed_clients,
            created_at: record.created_at,
            updated_at: record.updated_at,
            id: record.id,
        })
    }

    pub async fn connection(&self, id: &str) -> Result<Option<Connection>, HubError> {
        self.store
            .connection(id)
            .await?
            .map(|r| self.open_connection(r))
            .transpose()
    }

    pub async fn connections(&self) -> Result<Vec<Connection>, HubError> {
        self.store
            .connections()
            .await?
            .into_iter()
            .map(|r| self.open_connection(r))
            .collect()
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
        let client_secret = c
            .client_secret
            .as_ref()
            .map(|s| self.seal(s.as_bytes(), &secret_aad(&c.id)));
        self.store
            .put_connection(&ConnectionRecord {
                id: c.id.clone(),
                name: c.name.clone(),
                kind: c.kind.as_str().to_owned(),
                authorization_endpoint: c.authorization_endpoint.clone(),
                token_endpoint: c.token_endpoint.clone(),
                api_base_url: c.api_base_url.clone(),
                client_id: c.client_id.clone(),
                client_secret,
                scopes: c.scopes.clone(),
                allowed_clients: c.allowed_clients.clone(),
                created_at: c.created_at,
                updated_at: c.updated_at,
            })
            .await?;
        Ok(!existed)
    }

    pub async fn delete_connection(&self, id: &str) -> Result<bool, HubError> {
        self.store.delete_connection(id).await
    }

    // ---- tokens ---------------------------------------------------------

    fn open_token(&self, record: TokenRecord) -> Result<TokenRow, HubError> {
        let owner = Owner::from_parts(&record.owner_kind, record.owner_id)?;
        let bytes = self.open(
            &record.credential,
            &token_aad(&record.connection_id, &owner, &record.scope_key),
        )?;
        Ok(TokenRow {
            id: record.id,
            credential: serde_json::from_slice(&bytes)?,
            needs_reauth: record.needs_reauth,
            last_refreshed_at: record.last_refreshed_at,
            key_id: record.credential.key_id,
            connection_id: record.connection_id,
            owner,
            scope_key: record.scope_key,
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
        let key = TokenKey {
            connection_id,
            owner_kind: owner.kind(),
            owner_id: owner.id(),
            scope_key,
        };
        let drop_narrowed = scope_key.is_empty() && refreshed_at.is_none();
        self.store
            .put_connection_token(key, &sealed, refreshed_at, drop_narrowed, self.clock.now())
            .await
    }

    pub async fn connection_token(
        &self,
        connection_id: &str,
        owner: &Owner,
        scope_key: &str,
    ) -> Result<Option<TokenRow>, HubError> {
        let key = TokenKey {
            connection_id,
            owner_kind: owner.kind(),
            owner_id: owner.id(),
            scope_key,
        };
        self.store
            .connection_token(key)
            .await?
            .map(|r| self.open_token(r))
            .transpose()
    }

    /// The tokens as granted (not narrowed ones) of one connection, optionally
    /// of one owner kind.
    pub async fn connection_tokens(
        &self,
        connection_id: &str,
        owner_kind: Option<&str>,
    ) -> Result<Vec<TokenRow>, HubError> {
        self.store
            .connection_tokens(connection_id, owner_kind)
            .await?
            .into_iter()
            .map(|r| self.open_token(r))
            .collect()
    }

    pub async fn mark_needs_reauth(&self, row_id: i64) -> Result<(), HubError> {
        self.store.mark_needs_reauth(row_id, self.clock.now()).await
    }

    pub async fn delete_connection_token(
        &self,
        connection_id: &str,
        owner: &Owner,
    ) -> Result<bool, HubError> {
        self.store
            .delete_connection_tokens(connection_id, owner.kind(), owner.id())
            .await
    }
}

/// Refuses to start with a missing or wrong vault key: every key id the
/// database has sealed under must be configured, and every configured key
/// must open the check value recorded for its id.
pub async fn check_vault_keys(hub: &Hub) -> Result<(), HubError> {
    let used = hub.store.sealing_key_ids().await?;
    let configured: Vec<&str> = hub.vault.ids().collect();
    if let Some(missing) = used
        .iter()
        .find(|k| k.as_str() != PLAINTEXT_KEY_ID && !configured.contains(&k.as_str()))
    {
        return Err(HubError::Config(
            VaultError::UnknownKey(missing.clone()).to_string(),
        ));
    }
    for id in configured {
        match hub.store.vault_check_value(id).await? {
            Some(sealed) => {
                hub.vault
                    .verify_check_value(&sealed)
                    .map_err(|e| HubError::Config(e.to_string()))?;
            }
            None => {
                let sealed = hub
                    .vault
                    .check_value(id)
                    .ok_or_else(|| HubError::Config(format!("vault key {id} vanished")))?;
                hub.store
                    .insert_vault_check_value(&sealed, hub.clock.now())
                    .await?;
            }
        }
    }
    Ok(())
}
