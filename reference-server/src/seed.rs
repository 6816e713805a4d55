//! Seed fixtures: tenants, users, MCP servers and pre-registered clients,
//! read from every `*.toml` file of a directory and upserted at start, so a
//! restart re-applies the seed without losing runtime state.

use std::path::Path;

use serde::Deserialize;

use crate::error::HubError;
use crate::hub::Hub;
use crate::model::{AuthMethod, Client, McpServer, Tenant, TrustLevel, User};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub tenants: Vec<Tenant>,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub mcp_servers: Vec<McpServer>,
    #[serde(default)]
    pub clients: Vec<SeedClient>,
    /// MCP Server and Connections Policies, validated like those created through the admin API.
    #[serde(default)]
    pub policies: Vec<SeedPolicy>,
    /// Connections, in the admin API's shape (docs/connections.md).
    #[serde(default)]
    pub connections: Vec<SeedPolicy>,
    /// Administrators of the hub console (`/console`, docs/console.md).
    #[serde(default)]
    pub admins: Vec<SeedAdmin>,
}

/// A console administrator as written in a seed file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAdmin {
    pub username: String,
    /// argon2 PHC hash of the password (`hub --hash-secret`).
    pub password_hash: String,
}

/// A policy or connection as written in a seed file: a stable id and the admin API's draft shape.
#[derive(Debug, Deserialize)]
pub struct SeedPolicy {
    pub id: String,
    #[serde(flatten)]
    pub draft: serde_json::Map<String, serde_json::Value>,
}

/// What a seeded client secret is (see `credentials`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeedSecretKind {
    Chosen,
    Generated,
}

/// A pre-registered client as written in a seed file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedClient {
    pub client_id: String,
    pub name: String,
    #[serde(default = "manual")]
    pub trust_level: TrustLevel,
    /// The stored secret; confidential clients only: an argon2id PHC hash
    /// (`hub --hash-secret`) or a generated secret's digest (`hub
    /// --hash-secret --generated`).
    pub secret_hash: Option<String>,
    /// Which kind `secret_hash` is, declared: `chosen` (argon2id) or
    /// `generated` (salted SHA-256); checked against the hash itself.
    pub secret_kind: Option<SeedSecretKind>,
    pub token_endpoint_auth_method: Option<AuthMethod>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub allowed_resources: Vec<String>,
    #[serde(default)]
    pub allowed_scopes: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub tenant: Option<String>,
    /// Public keys for private_key_jwt, inline as a JWK Set.
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
}

fn manual() -> TrustLevel {
    TrustLevel::Manual
}

impl Seed {
    pub fn load_dir(dir: &Path) -> Result<Seed, HubError> {
        let err = |message: String| HubError::Seed {
            path: dir.display().to_string(),
            message,
        };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| err(e.to_string()))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        files.sort();
        let mut seed = Seed::default();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| err(e.to_string()))?;
            let part: Seed = toml::from_str(&text).map_err(|e| HubError::Seed {
                path: file.display().to_string(),
                message: e.to_string(),
            })?;
            seed.tenants.extend(part.tenants);
            seed.users.extend(part.users);
            seed.mcp_servers.extend(part.mcp_servers);
            seed.clients.extend(part.clients);
            seed.policies.extend(part.policies);
            seed.connections.extend(part.connections);
            seed.admins.extend(part.admins);
        }
        Ok(seed)
    }

    /// Upserts everything; connection secrets are sealed with the hub's vault.
    pub async fn apply(self, hub: &Hub) -> Result<(), HubError> {
        let store = &hub.store;
        let now = hub.clock.now();
        for tenant in &self.tenants {
            store.upsert_tenant(tenant).await?;
            let sealed = tenant.sso.as_ref().map(|sso| {
                (
                    sso,
                    crate::oauth::sso::seal_secret(hub, &tenant.id, &sso.client_secret),
                )
            });
            store
                .set_tenant_sso(&tenant.id, sealed.as_ref().map(|(c, s)| (*c, s.as_str())))
                .await?;
        }
        for user in &self.users {
            store.upsert_user(user).await?;
        }
        for admin in &self.admins {
            upsert_admin(hub, &admin.username, &admin.password_hash).await?;
        }
        for server in &self.mcp_servers {
            if !server.path.starts_with('/') {
                return Err(HubError::Seed {
                    path: server.id.clone(),
                    message: "an MCP server path must start with /".into(),
                });
            }
            if let Some(unknown) = server
                .required_scopes
                .iter()
                .find(|s| !server.scopes.contains(s))
            {
                return Err(HubError::Seed {
                    path: server.id.clone(),
                    message: format!(
                        "required scope `{unknown}` is not one of the server's scopes"
                    ),
                });
            }
            store.upsert_mcp_server(server).await?;
        }
        for c in self.clients {
            if let Some(stored) = &c.secret_hash {
                use crate::credentials::SecretKind;
                let kind = SecretKind::of_stored(stored);
                let declared = c.secret_kind.map(|k| match k {
                    SeedSecretKind::Chosen => SecretKind::Chosen,
                    SeedSecretKind::Generated => SecretKind::Generated,
                });
                let message = match (kind, declared) {
                    (None, _) => Some(
                        "secret_hash is neither an argon2id hash nor a generated secret's digest",
                    ),
                    (Some(k), Some(d)) if k != d => {
                        Some("secret_hash is not of the declared secret_kind")
                    }
                    _ => None,
                };
                if let Some(message) = message {
                    return Err(HubError::Seed {
                        path: c.client_id.clone(),
                        message: message.into(),
                    });
                }
            }
            let method = c
                .token_endpoint_auth_method
                .unwrap_or(if c.secret_hash.is_some() {
                    AuthMethod::ClientSecretBasic
                } else {
                    AuthMethod::None
                });
            let client = Client {
                metadata: serde_json::json!({
                    "client_name": c.name,
                    "redirect_uris": c.redirect_uris,
                    "grant_types": c.grant_types,
                    "token_endpoint_auth_method": method.as_str(),
                }),
                client_id: c.client_id,
                name: c.name,
                trust_level: c.trust_level,
                secret_hash: c.secret_hash,
                token_endpoint_auth_method: method,
                redirect_uris: c.redirect_uris,
                grant_types: c.grant_types,
                allowed_resources: c.allowed_resources,
                allowed_scopes: c.allowed_scopes,
                tags: c.tags,
                tenant: c.tenant,
                jwks: c.jwks,
                created_at: now,
            };
            store.upsert_client(&client).await?;
        }
        for c in self.connections {
            crate::vault::definition::seed_connection(
                hub,
                &c.id,
                serde_json::Value::Object(c.draft),
            )
            .await
            .map_err(|e| HubError::Seed {
                path: format!("connection {}", c.id),
                message: e.description().to_owned(),
            })?;
        }
        let servers = store.mcp_servers().await?;
        let connections = hub.known_connections().await?;
        for p in self.policies {
            let spec = crate::policy::validation::validate_with(
                &serde_json::Value::Object(p.draft),
                &servers,
                &connections,
            )
            .map_err(|e| HubError::Seed {
                path: format!("policy {}", p.id),
                message: e.to_string(),
            })?;
            store.insert_policy(&spec.into_policy(p.id, now)).await?;
        }
        Ok(())
    }
}

/// Creates or updates a console administrator from the seed. A changed
/// password ends the administrator's open sessions.
async fn upsert_admin(hub: &Hub, username: &str, password_hash: &str) -> Result<(), HubError> {
    let seed_error = |message: String| HubError::Seed {
        path: format!("admin {username}"),
        message,
    };
    if username.trim().is_empty() || username.len() > 64 {
        return Err(seed_error("a username has 1 to 64 characters".into()));
    }
    argon2::PasswordHash::new(password_hash)
        .map_err(|e| seed_error(format!("password_hash is not an argon2 PHC string: {e}")))?;
    let previous = hub.store.admin_password_hash(username).await?;
    hub.store
        .upsert_admin(username, password_hash, hub.clock.now())
        .await?;
    if previous.is_some_and(|p| p != password_hash) {
        hub.store.delete_admin_sessions(username).await?;
    }
    Ok(())
}
