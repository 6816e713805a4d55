//! Connections: third-party services whose credentials the hub keeps so that
//! agents and MCP servers never hold them (docs/connections.md). The
//! definitions, their owners and credentials as the rest of the hub sees them,
//! secrets already opened.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::HubError;
use crate::policy::rules::KnownConnection;

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
    pub fn as_str(self) -> &'static str {
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
    pub(crate) fn view(&self) -> Value {
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

    pub fn from_parts(kind: &str, id: String) -> Result<Owner, HubError> {
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

    pub(crate) fn view(&self, now: i64) -> Value {
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
