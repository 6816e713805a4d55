//! Domain types shared by the stores and the endpoints.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    /// Who of the tenant's users must prove a second factor at sign-in.
    #[serde(default)]
    pub second_factor: SecondFactorRule,
    /// The tenant's own identity provider, for enterprise single sign-on.
    #[serde(default)]
    pub sso: Option<SsoConfig>,
}

/// A tenant's upstream OpenID Provider (docs/sso.md): the hub signs the
/// tenant's users in through it as an OpenID Connect relying party, creates
/// or updates each user on every sign-in, and maps the groups the ID token
/// names to the user's roles.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoConfig {
    /// The provider's issuer identifier; its discovery document is at
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// How the login page names it ("Continue with …").
    #[serde(default)]
    pub display_name: Option<String>,
    pub client_id: String,
    /// The hub's client secret at the provider; stored sealed with the vault
    /// key, never shown back.
    #[serde(default, skip_serializing)]
    pub client_secret: String,
    /// E-mail domains whose users the login page sends to this provider
    /// (home-realm discovery).
    #[serde(default)]
    pub email_domains: Vec<String>,
    /// The scopes asked for; `openid` is always among them.
    #[serde(default = "default_sso_scopes")]
    pub scopes: Vec<String>,
    /// The ID token claim that lists the user's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Groups to the hub roles they give, re-read on every sign-in.
    #[serde(default)]
    pub role_mappings: Vec<RoleMapping>,
}

impl std::fmt::Debug for SsoConfig {
    /// Everything but the client secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("email_domains", &self.email_domains)
            .field("scopes", &self.scopes)
            .field("groups_claim", &self.groups_claim)
            .field("role_mappings", &self.role_mappings)
            .finish_non_exhaustive()
    }
}

fn default_sso_scopes() -> Vec<String> {
    ["openid", "email", "profile", "groups"]
        .map(str::to_owned)
        .to_vec()
}

fn default_groups_claim() -> String {
    "groups".to_owned()
}

/// One group of the upstream provider and the hub roles it gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMapping {
    pub group: String,
    pub roles: Vec<String>,
}

impl SsoConfig {
    /// The roles `groups` give, in mapping order, without repeats.
    pub fn roles_for(&self, groups: &[String]) -> Vec<String> {
        let mut roles: Vec<String> = Vec::new();
        for mapping in self
            .role_mappings
            .iter()
            .filter(|m| groups.contains(&m.group))
        {
            for role in &mapping.roles {
                if !roles.contains(role) {
                    roles.push(role.clone());
                }
            }
        }
        roles
    }
}

/// A tenant's rule for second factors (docs/mfa.md): everyone, or the
/// holders of some roles. A user of several tenants follows the strictest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondFactorRule {
    /// Every user of the tenant.
    #[serde(default)]
    pub required: bool,
    /// Users holding any of these roles.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl SecondFactorRule {
    /// Whether a user with `roles` must prove a second factor under this rule.
    pub fn applies_to(&self, roles: &[String]) -> bool {
        self.required || self.roles.iter().any(|r| roles.contains(r))
    }
}

/// How the user proved who they are for one sign-in (OpenID Connect Core
/// §2: `auth_time`, `acr`, `amr`). Every access token derived from an
/// authorization made under this sign-in carries it unchanged, refreshed
/// ones too (RFC 9068 §2.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authentication {
    /// When the user proved who they are (seconds, hub clock).
    pub auth_time: i64,
    /// [`ACR_SINGLE_FACTOR`] or [`ACR_MULTI_FACTOR`].
    pub acr: String,
    /// RFC 8176 method references: `pwd`, `otp`, `mfa`, or those an
    /// upstream identity provider reported.
    pub amr: Vec<String>,
}

/// The `acr` of a sign-in by one factor.
pub const ACR_SINGLE_FACTOR: &str = "urn:agentic-hub:acr:1fa";
/// The `acr` of a sign-in by two factors or more.
pub const ACR_MULTI_FACTOR: &str = "urn:agentic-hub:acr:mfa";

impl Authentication {
    /// A sign-in by the methods `amr`, at `auth_time`; two factors or more
    /// (RFC 8176 `mfa`) make it multi-factor.
    pub fn new(auth_time: i64, amr: Vec<String>) -> Authentication {
        let acr = if amr.iter().any(|m| m == "mfa") {
            ACR_MULTI_FACTOR
        } else {
            ACR_SINGLE_FACTOR
        };
        Authentication {
            auth_time,
            acr: acr.to_owned(),
            amr,
        }
    }

    /// Whether this sign-in proved more than one factor.
    pub fn is_multi_factor(&self) -> bool {
        self.acr == ACR_MULTI_FACTOR
    }
}

/// A human who logs in and consents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    /// PHC-format argon2 hash; the plaintext never reaches the hub's storage.
    pub password_hash: String,
    #[serde(default)]
    pub tenants: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl User {
    /// The tenant a token is issued under: the user's first tenant.
    pub fn primary_tenant(&self) -> Option<&str> {
        self.tenants.first().map(String::as_str)
    }
}

/// A tool on an MCP server and the scope it needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub scope: String,
    #[serde(default)]
    pub description: String,
}

/// An MCP server the hub protects: a resource with a canonical URL and scopes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct McpServer {
    pub id: String,
    pub name: String,
    /// Path on the hub's public origin; the canonical resource URL is origin + path.
    pub path: String,
    pub scopes: Vec<String>,
    /// The scopes it cannot work without at all: the consent page shows
    /// them as mandatory, and declining one declines the request.
    #[serde(default)]
    pub required_scopes: Vec<String>,
    #[serde(default)]
    pub tools: Vec<Tool>,
}

/// How far the hub trusts a client's identity, used by policies later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustLevel {
    /// Dynamically registered (RFC 7591): anyone could have made it.
    Dcr,
    /// Identified by a Client ID Metadata Document URL.
    Cimd,
    /// Registered by an administrator.
    Manual,
    /// Registered by an administrator and vetted.
    Verified,
}

impl TrustLevel {
    /// Every level, for lists that show all clients.
    pub const ALL: [TrustLevel; 4] = [
        TrustLevel::Manual,
        TrustLevel::Verified,
        TrustLevel::Dcr,
        TrustLevel::Cimd,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TrustLevel::Dcr => "dcr",
            TrustLevel::Cimd => "cimd",
            TrustLevel::Manual => "manual",
            TrustLevel::Verified => "verified",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "dcr" => Some(TrustLevel::Dcr),
            "cimd" => Some(TrustLevel::Cimd),
            "manual" => Some(TrustLevel::Manual),
            "verified" => Some(TrustLevel::Verified),
            _ => None,
        }
    }
}

/// Token endpoint client authentication methods the hub supports (RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    None,
    ClientSecretBasic,
    ClientSecretPost,
    /// RFC 7523 §2.2: a JWT signed with a key the client registered.
    PrivateKeyJwt,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(AuthMethod::None),
            "client_secret_basic" => Some(AuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(AuthMethod::ClientSecretPost),
            "private_key_jwt" => Some(AuthMethod::PrivateKeyJwt),
            _ => None,
        }
    }
}

/// An OAuth client: an MCP client, an agent, or a dynamically registered app.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    pub trust_level: TrustLevel,
    /// PHC-format argon2 hash of the client secret, for confidential clients.
    pub secret_hash: Option<String>,
    pub token_endpoint_auth_method: AuthMethod,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    /// MCP server ids this client may get tokens for (client_credentials).
    pub allowed_resources: Vec<String>,
    /// Scopes the client's own configuration allows (client_credentials).
    pub allowed_scopes: Vec<String>,
    pub tags: Vec<String>,
    pub tenant: Option<String>,
    /// Public keys for private_key_jwt, as a JWK Set.
    pub jwks: Option<serde_json::Value>,
    /// The registration metadata as accepted, echoed back by DCR.
    pub metadata: serde_json::Value,
    pub created_at: i64,
}

impl Client {
    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant_type)
    }
}

/// A user's standing permission for one client on one resource: the scopes
/// they approved, remembered so that asking again shows only what is new.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Consent {
    pub user_id: String,
    pub client_id: String,
    /// The canonical resource URL the consent is for.
    pub resource: String,
    pub scopes: Vec<String>,
    pub granted_at: i64,
    /// After this the user is asked again; `None` only for records from before expiry existed.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl Client {
    /// Where the client publishes its public keys (RFC 7591 §2), if it registered a URL.
    pub fn jwks_uri(&self) -> Option<&str> {
        self.metadata
            .get("jwks_uri")
            .and_then(serde_json::Value::as_str)
    }
}
