//! `conform init --target URL`: a starter profile from what the target says
//! about itself.
//!
//! The URL is an MCP server or an authorization server's issuer. An MCP
//! server is asked to `initialize` without a token; its 401 challenge (or
//! the well-known URL) leads to its Protected Resource Metadata (RFC 9728),
//! whose `authorization_servers` names the issuer. The issuer's metadata
//! (RFC 8414, or OpenID Connect discovery) then proves the capabilities it
//! advertises. Everything metadata cannot prove (users, login and consent
//! pages, pre-registered clients, product-model APIs) is written as a TODO,
//! never guessed: a capability not proven is written `false`.

use serde_json::{json, Value};

use crate::http::{Http, Response};
use crate::profile::HttpSettings;
use crate::well_known::{authorization_server_metadata_urls, protected_resource_metadata_url};

/// Why discovery could not produce a profile.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("`{0}` is not an absolute http(s) URL")]
    NotAUrl(String),
    #[error("{0}")]
    Transport(#[from] crate::http::TransportError),
    #[error("no authorization server metadata at any of {tried:?} (RFC 8414 §3, OpenID Connect Discovery §4)")]
    NoMetadata { tried: Vec<String> },
    #[error("the metadata at {url} names issuer `{found}`, not `{expected}` (RFC 8414 §3.3)")]
    IssuerMismatch {
        url: String,
        expected: String,
        found: String,
    },
}

/// A protected MCP server found at the target URL.
#[derive(Debug, Clone)]
pub struct FoundResource {
    pub url: String,
    pub metadata_url: String,
    pub scopes: Vec<String>,
}

/// What the target said about itself.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub issuer: String,
    pub metadata_url: String,
    pub metadata: Value,
    pub resource: Option<FoundResource>,
}

/// A capability the profile declares, and what proves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub name: &'static str,
    pub present: bool,
    /// Why it is `present`, or what to check by hand when it is not.
    pub why: String,
}

/// Finds the issuer (directly, or through an MCP server's resource metadata)
/// and reads its metadata.
pub async fn discover(target: &str) -> Result<Discovery, InitError> {
    let parsed = url::Url::parse(target).map_err(|_| InitError::NotAUrl(target.to_owned()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(InitError::NotAUrl(target.to_owned()));
    }
    let http = Http::new(&HttpSettings::default());
    let resource = find_resource(&http, target).await?;
    let issuer = resource
        .as_ref()
        .and_then(|(_, prm)| prm.pointer("/authorization_servers/0"))
        .and_then(Value::as_str)
        .unwrap_or(target)
        .to_owned();
    let (metadata_url, metadata) = fetch_metadata(&http, &issuer).await?;
    Ok(Discovery {
        issuer,
        metadata_url,
        metadata,
        resource: resource.map(|(found, _)| found),
    })
}

/// The target as a protected MCP server: a 401 to `initialize` without a
/// token, then its Protected Resource Metadata. `None` when it is not one.
async fn find_resource(
    http: &Http,
    target: &str,
) -> Result<Option<(FoundResource, Value)>, InitError> {
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "conform init", "version": env!("CARGO_PKG_VERSION")}}
    });
    let answer = http
        .send(
            http.post(target)
                .header("accept", "application/json, text/event-stream")
                .json(&initialize),
        )
        .await?;
    if answer.status != 401 {
        return Ok(None);
    }
    let challenge = crate::challenge::parse(answer.header("www-authenticate").unwrap_or_default());
    let metadata_url = match challenge
        .pointer("/params/resource_metadata")
        .and_then(Value::as_str)
    {
        Some(url) => url.to_owned(),
        None => protected_resource_metadata_url(target)
            .map_err(|_| InitError::NotAUrl(target.to_owned()))?,
    };
    let prm = http.send(http.get(&metadata_url)).await?;
    let Some(body) = json_object(&prm) else {
        return Ok(None);
    };
    let scopes = body
        .get("scopes_supported")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let url = body
        .get("resource")
        .and_then(Value::as_str)
        .unwrap_or(target)
        .to_owned();
    Ok(Some((
        FoundResource {
            url,
            metadata_url,
            scopes,
        },
        body,
    )))
}

async fn fetch_metadata(http: &Http, issuer: &str) -> Result<(String, Value), InitError> {
    let urls = authorization_server_metadata_urls(issuer)
        .map_err(|_| InitError::NotAUrl(issuer.to_owned()))?;
    for url in &urls {
        let answer = http.send(http.get(url)).await?;
        if let Some(body) = json_object(&answer) {
            let found = body
                .get("issuer")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if found != issuer {
                return Err(InitError::IssuerMismatch {
                    url: url.clone(),
                    expected: issuer.to_owned(),
                    found: found.to_owned(),
                });
            }
            return Ok((url.clone(), body));
        }
    }
    Err(InitError::NoMetadata { tried: urls })
}

fn json_object(response: &Response) -> Option<Value> {
    (response.status == 200)
        .then(|| response.json())
        .flatten()
        .filter(Value::is_object)
}

impl Discovery {
    fn lists(&self, field: &str, value: &str) -> bool {
        self.metadata
            .get(field)
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(value)))
    }

    fn has(&self, field: &str) -> bool {
        self.metadata.get(field).is_some_and(|v| !v.is_null())
    }

    /// Every capability of the profile format, proven from metadata or not.
    pub fn capabilities(&self) -> Vec<Detected> {
        let proven = |name, present: bool, field: &str| Detected {
            name,
            present,
            why: if present {
                format!("metadata: {field}")
            } else {
                format!("not in the metadata ({field}); set true if your server has it")
            },
        };
        let unknowable = |name, what: &str| Detected {
            name,
            present: false,
            why: format!("TODO: metadata cannot say; {what}"),
        };
        vec![
            proven(
                "dcr",
                self.has("registration_endpoint"),
                "registration_endpoint",
            ),
            proven(
                "cimd",
                self.metadata.get("client_id_metadata_document_supported") == Some(&json!(true)),
                "client_id_metadata_document_supported",
            ),
            proven(
                "client_credentials",
                self.lists("grant_types_supported", "client_credentials"),
                "grant_types_supported has client_credentials",
            ),
            proven(
                "jwt_bearer",
                self.lists(
                    "grant_types_supported",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer",
                ),
                "grant_types_supported has the jwt-bearer grant",
            ),
            proven(
                "token_exchange",
                self.lists(
                    "grant_types_supported",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                "grant_types_supported has the token-exchange grant",
            ),
            proven(
                "revocation",
                self.has("revocation_endpoint"),
                "revocation_endpoint",
            ),
            proven(
                "introspection",
                self.has("introspection_endpoint"),
                "introspection_endpoint",
            ),
            proven(
                "rfc9207",
                self.metadata
                    .get("authorization_response_iss_parameter_supported")
                    == Some(&json!(true)),
                "authorization_response_iss_parameter_supported",
            ),
            unknowable(
                "dcr_rate_limit",
                "true if registration is budgeted per source address",
            ),
            unknowable(
                "consent_memory",
                "true if a second authorization asks only for new scopes",
            ),
            unknowable(
                "control_api",
                "true with a test-mode API, described by [operations.*] recipes",
            ),
            unknowable(
                "policy_admin",
                "true with policies managed by [operations.*] recipes",
            ),
            unknowable(
                "agent_admin",
                "true with agents managed by [operations.*] recipes",
            ),
            unknowable(
                "connections",
                "true with a credential vault ([connections])",
            ),
        ]
    }

    /// The starter profile, as TOML with a comment on every value.
    pub fn profile_toml(&self, target: &str) -> String {
        let origin = url::Url::parse(&self.issuer)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| self.issuer.clone());
        let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let mut out = format!(
            "# Starter profile written by `conform init --target {target}`.\n\
             # Values marked TODO cannot be discovered: fill them in, then run\n\
             #   conform --target <this file>\n\
             # Reference of every key: docs/profile.md.\n\n\
             name = {name}\n\
             base = {base}\n\
             # Byte-exact, as the metadata at {metadata_url} says (RFC 8414 §3.3);\n\
             # ${{base}} is `base`, or `conform --base URL` for a server on another port.\n\
             issuer = {issuer}\n\
             # A redirect URI the harness registers; it is never fetched.\n\
             callback = \"http://127.0.0.1:8976/conform/callback\"\n\n\
             # TODO: true if the server is an agentic identity hub (policies, Connections,\n\
             # agents, audit): its product model's requirements are then checked too.\n\
             [hub]\n\
             product_model = false\n\n\
             [capabilities]\n",
            name = quote(&format!("{origin} (from conform init)")),
            base = quote(&origin),
            metadata_url = self.metadata_url,
            issuer = quote(&on_base(&self.issuer, &origin)),
        );
        for capability in self.capabilities() {
            out.push_str(&format!(
                "{} = {}  # {}\n",
                capability.name, capability.present, capability.why
            ));
        }
        if let Some(resource) = &self.resource {
            let scopes: Vec<String> = resource.scopes.iter().map(|s| quote(s)).collect();
            out.push_str(&format!(
                "\n# The protected MCP server at the target (its metadata: {}).\n\
                 [resources.primary]\n\
                 url = {}\n\
                 scopes = [{}]\n\
                 # TODO: for the insufficient_scope check, a tool that needs a scope beyond token_scope:\n\
                 # scope_probe = {{ token_scope = \"…\", tool = \"…\", tool_scope = \"…\" }}\n",
                resource.metadata_url,
                quote(&on_base(&resource.url, &origin)),
                scopes.join(", ")
            ));
        } else {
            out.push_str(
                "\n# TODO: protected MCP servers, if any (conform init was given no MCP server URL):\n\
                 # [resources.primary]\n\
                 # url = \"https://mcp.example/calendar\"\n\
                 # scopes = [\"calendar.read\", \"calendar.write\"]\n",
            );
        }
        out.push_str(
            "\n# How the harness signs in and consents as a user of your server.\n\
             [user]\n\
             mode = \"form\"\n\
             username = \"TODO: a test user's name\"\n\
             password = \"TODO: that user's password\"\n\
             # TODO: one rule per page (login, consent): the URL part and page content that\n\
             # identify it, the form to fill, the button to press (reference: docs/profile.md).\n\
             [[user.forms]]\n\
             url_contains = \"/login\"  # TODO\n\
             form = \"form\"  # TODO\n\
             fill = { username = \"${user.username}\", password = \"${user.password}\" }  # TODO: your field names\n\
             \n\
             # TODO: pre-registered confidential clients (client_credentials agents, an introspector):\n\
             # [clients.agent]\n\
             # client_id = \"…\"\n\
             # client_secret = \"…\"\n\
             # auth_method = \"client_secret_basic\"\n\
             # resource = \"primary\"\n\
             # allowed_scopes = [\"…\"]\n\
             \n\
             # TODO: what no standard defines (policies, agents, Connections, the audit trail,\n\
             # a test clock), as HTTP recipes for your API; scenarios needing one you do not\n\
             # write are skipped. Every operation: docs/profile.md; an example:\n\
             # [secrets]\n\
             # admin_token = \"…\"\n\
             # [operations.create_policy]\n\
             # method = \"POST\"\n\
             # url = \"${base}/…\"  # where your API creates a policy\n\
             # headers = { authorization = \"Bearer ${secrets.admin_token}\" }\n\
             # body = \"${policy}\"  # the scenario's policy, as JSON\n\
             # read = { id = \"/id\" }  # a JSON pointer to the new policy's id\n",
        );
        out
    }
}

/// `url` written relative to the profile's `base` when it is on that origin,
/// so `conform --base` moves the whole profile to another port.
fn on_base(url: &str, origin: &str) -> String {
    match url.strip_prefix(origin) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("${{base}}{rest}"),
        _ => url.to_owned(),
    }
}
