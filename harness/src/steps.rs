//! The parties the harness plays, one action at a time. Each action talks to
//! the target over HTTP and returns its *facts*, the JSON that expectations
//! are evaluated against (documented per action in scenarios/README.md).

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde_json::{json, Map, Value};
use url::Url;

use crate::expect::interpolate;
use crate::http::{Http, Response, TransportError};
use crate::profile::PreRegisteredClient;
use crate::profile::Profile;
use crate::scenario::{
    Action, AssertionVariant, CimdVariant, ClientAuth, Pkce, RefreshPick, TokenKind, Verifier,
};

/// The harness's own test key for metadata-document clients that use
/// private_key_jwt (CIMD §6.2). Test-only: it signs nothing but assertions to
/// targets under test.
const CIMD_CLIENT_KEY: &str = include_str!("../keys/cimd-client.pem");
const CIMD_CLIENT_KID: &str = "conform-cimd-client-1";

/// Changes one character in the middle of a JWT's signature, keeping it valid base64url.
fn tamper_signature(jwt: &str) -> String {
    let Some(dot) = jwt.rfind('.') else {
        return jwt.to_owned();
    };
    let (head, signature) = jwt.split_at(dot + 1);
    let mut chars: Vec<char> = signature.chars().collect();
    if let Some(c) = chars.get_mut(signature.len() / 2) {
        *c = if *c == 'A' { 'B' } else { 'A' };
    }
    format!("{head}{}", chars.into_iter().collect::<String>())
}
use crate::user::{self, Move};

mod connections;

/// Why an action could not produce facts at all.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{0}")]
    Transport(#[from] TransportError),
    #[error("{0}")]
    User(#[from] user::UserError),
    /// A precondition the scenario or target did not meet (no code yet, no metadata).
    #[error("{0}")]
    Precondition(String),
}

fn precondition(message: impl Into<String>) -> StepError {
    StepError::Precondition(message.into())
}

/// A client the harness registered during this scenario.
#[derive(Debug, Clone)]
struct Registered {
    client_id: String,
    redirect_uri: String,
}

/// An authorization code waiting to be redeemed.
#[derive(Debug, Clone)]
struct PendingCode {
    code: String,
    verifier: String,
    redirect_uri: String,
}

/// The state of one scenario run: what the parties have learned so far.
pub struct Run<'p> {
    pub profile: &'p Profile,
    pub http: Http,
    metadata: Option<Value>,
    registered: BTreeMap<String, Registered>,
    resource_metadata_url: Option<String>,
    /// The first `authorization_servers` entry of the last Protected Resource Metadata.
    discovered_issuer: Option<String>,
    pending: Option<PendingCode>,
    last_token: Option<String>,
    /// The CIMD host, started on first use, and the document path per client name.
    cimd_host: Option<wiremock::MockServer>,
    cimd_paths: BTreeMap<String, String>,
    /// The SSRF probe listener's accepted-connection counter.
    ssrf_probe: Option<(
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
        tokio::task::JoinHandle<()>,
    )>,
    /// The last private_key_jwt assertion sent, for replay.
    last_assertion: Option<String>,
    /// Every refresh token received, oldest first.
    refresh_tokens: Vec<String>,
    state_sent: Option<String>,
    /// The user the next `authorize` logs in as (a `[users]` name), and the scopes it unticks.
    login_as: Option<String>,
    uncheck: Vec<String>,
    /// Policies created in this scenario (name → id), deleted at teardown.
    policies: BTreeMap<String, String>,
    /// Agents created in this scenario, usable as client roles.
    agents: BTreeMap<String, PreRegisteredClient>,
    /// Events the target must have audited because of what this scenario did.
    pub audit_expectations: Vec<crate::audit::AuditExpectation>,
    /// Client ids this scenario used (whose events it may inspect closely).
    pub own_clients: std::collections::BTreeSet<String>,
    /// The expectation of the last consent, to tie its code's token to the same flow.
    last_consent: Option<usize>,
    /// Every secret seen, for redaction of transcripts.
    pub secrets: Vec<String>,
    /// Decoded claims of every access token received, for reports and snapshots.
    pub token_claims: Vec<Value>,
    /// The third-party provider behind this scenario's connections, started on first use.
    provider: Option<crate::provider::Provider>,
    /// How the provider was last told to answer.
    provider_mode: Option<crate::provider::TokenMode>,
    /// Connections created (or replaced) in this scenario, by name; removed at teardown.
    connections: BTreeMap<String, connections::CreatedConnection>,
    /// Tokens stored in this scenario: (connection id, owner).
    stored_owners: Vec<(String, String)>,
    /// API keys stored in this scenario, with their owner.
    api_keys: BTreeMap<String, String>,
}

impl<'p> Run<'p> {
    pub fn new(profile: &'p Profile) -> Run<'p> {
        let mut secrets = vec![profile.user.password.clone()];
        secrets.extend(profile.users.values().map(|u| u.password.clone()));
        secrets.extend(profile.clients.values().map(|c| c.client_secret.clone()));
        secrets.extend(profile.control.iter().map(|c| c.token.clone()));
        secrets.extend(profile.admin.iter().map(|c| c.token.clone()));
        Run {
            profile,
            http: Http::new(&profile.http),
            metadata: None,
            registered: BTreeMap::new(),
            resource_metadata_url: None,
            discovered_issuer: None,
            pending: None,
            last_token: None,
            refresh_tokens: Vec::new(),
            last_assertion: None,
            cimd_host: None,
            ssrf_probe: None,
            cimd_paths: BTreeMap::new(),
            state_sent: None,
            login_as: None,
            uncheck: Vec::new(),
            policies: BTreeMap::new(),
            agents: BTreeMap::new(),
            audit_expectations: Vec::new(),
            own_clients: std::collections::BTreeSet::new(),
            last_consent: None,
            secrets,
            token_claims: Vec::new(),
            provider: None,
            provider_mode: None,
            connections: BTreeMap::new(),
            stored_owners: Vec::new(),
            api_keys: BTreeMap::new(),
        }
    }

    /// Variables for `${…}` in scenario files: the profile (without secrets) and the run's state.
    pub fn vars(&self) -> Value {
        let mut profile = serde_json::to_value(self.profile).unwrap_or_default();
        if let Some(clients) = profile.get_mut("clients").and_then(Value::as_object_mut) {
            for client in clients.values_mut() {
                if let Some(c) = client.as_object_mut() {
                    c.remove("client_secret");
                    c.remove("private_key_pem");
                }
            }
        }
        if let Some(p) = profile.as_object_mut() {
            p.remove("control");
            p.remove("admin");
        }
        let registered: Map<String, Value> = self
            .registered
            .iter()
            .map(|(k, r)| {
                (
                    k.clone(),
                    json!({"client_id": r.client_id, "redirect_uri": r.redirect_uri}),
                )
            })
            .collect();
        profile["registered"] = Value::Object(registered);
        profile["state"] = json!(self.state_sent);
        let (conn, provider) = self.connection_vars();
        profile["conn"] = conn;
        profile["provider"] = provider;
        profile
    }

    fn text(&self, template: &str) -> Result<String, StepError> {
        interpolate(template, &self.vars()).map_err(StepError::Precondition)
    }

    fn resource_url(&self, role_or_url: &str) -> Result<Option<String>, StepError> {
        if role_or_url == "omit" {
            return Ok(None);
        }
        if let Some(r) = self.profile.resources.get(role_or_url) {
            return Ok(Some(r.url.clone()));
        }
        Ok(Some(self.text(role_or_url)?))
    }

    /// Records which audit event the target owes for an action and its outcome.
    pub fn note_audit(&mut self, action: &Action, facts: &Value) {
        use crate::audit::AuditExpectation;
        let status = facts["status"].as_u64().unwrap_or(0);
        let ok = (200..300).contains(&status);
        let refused = (400..500).contains(&status);
        let registered = |name: &str| self.registered.get(name).map(|r| r.client_id.clone());
        let mut expect = |because: String,
                          types: Vec<&'static str>,
                          client_id: Option<String>,
                          outcome: &'static str,
                          needs_act: bool,
                          same_flow_as: Option<usize>|
         -> usize {
            self.audit_expectations.push(AuditExpectation {
                because,
                types,
                client_id,
                outcome,
                needs_act,
                same_flow_as,
            });
            self.audit_expectations.len() - 1
        };
        let token_types: Vec<&'static str> = match action {
            Action::Refresh { .. } => vec!["token.refreshed"],
            Action::TokenExchange { .. } => vec!["token.exchanged"],
            _ => vec!["token.issued"],
        };
        match action {
            Action::Register { name, .. } if ok => {
                if let Some(id) = facts["body"]["client_id"].as_str() {
                    self.own_clients.insert(id.to_owned());
                }
                expect(
                    format!("registering `{name}`"),
                    vec!["client.registered"],
                    registered(name),
                    "success",
                    false,
                    None,
                );
            }
            Action::Authorize { client, .. } => {
                let id = registered(client);
                if let Some(id) = &id {
                    self.own_clients.insert(id.clone());
                }
                match (facts["outcome"].as_str(), facts["error"].as_str()) {
                    (Some("code"), _) => {
                        let i = expect(
                            format!("the consent given to `{client}`"),
                            vec!["consent.granted"],
                            id,
                            "success",
                            false,
                            None,
                        );
                        self.last_consent = Some(i);
                    }
                    (Some("error"), Some("access_denied")) => {
                        expect(
                            format!("the consent refused to `{client}`"),
                            vec!["consent.denied"],
                            id,
                            "failure",
                            false,
                            None,
                        );
                    }
                    _ => {}
                }
            }
            Action::Token { client, .. }
            | Action::Refresh { client, .. }
            | Action::ClientCredentials { client, .. }
            | Action::JwtBearer { client, .. }
            | Action::TokenExchange { client, .. } => {
                let delegated = matches!(action, Action::Token { .. } | Action::Refresh { .. });
                let id = if delegated {
                    registered(client)
                } else {
                    self.profile
                        .clients
                        .get(client)
                        .or_else(|| self.agents.get(client))
                        .map(|c| c.client_id.clone())
                };
                if ok {
                    // A code's token belongs to the flow of the consent that gave the code.
                    let flow = matches!(action, Action::Token { .. })
                        .then_some(self.last_consent)
                        .flatten();
                    expect(
                        format!("the token issued to `{client}`"),
                        token_types,
                        id,
                        "success",
                        matches!(action, Action::TokenExchange { .. }),
                        flow,
                    );
                } else if refused {
                    expect(
                        format!("the token request refused to `{client}`"),
                        vec!["token.refused"],
                        None,
                        "failure",
                        false,
                        None,
                    );
                }
            }
            Action::CallResource {
                tool: Some(tool),
                with_token: true,
                ..
            } if ok => {
                let id = self
                    .token_claims
                    .last()
                    .and_then(|c| c["client_id"].as_str())
                    .map(str::to_owned);
                expect(
                    format!("running the tool `{tool}`"),
                    vec!["tool.executed"],
                    id,
                    "success",
                    false,
                    None,
                );
            }
            Action::CreatePolicy { name, .. } if ok => {
                expect(
                    format!("creating policy `{name}`"),
                    vec!["policy.created"],
                    None,
                    "success",
                    false,
                    None,
                );
            }
            Action::DeletePolicy { name } if ok => {
                expect(
                    format!("deleting policy `{name}`"),
                    vec!["policy.deleted"],
                    None,
                    "success",
                    false,
                    None,
                );
            }
            Action::CreateAgent { name, .. } if ok => {
                let id = facts["body"]["client_id"].as_str().map(str::to_owned);
                if let Some(id) = &id {
                    self.own_clients.insert(id.clone());
                }
                expect(
                    format!("creating agent `{name}`"),
                    vec!["agent.created"],
                    id,
                    "success",
                    false,
                    None,
                );
            }
            Action::DecommissionAgent { name } if ok => {
                let id = self.agents.get(name).map(|a| a.client_id.clone());
                expect(
                    format!("decommissioning agent `{name}`"),
                    vec!["agent.decommissioned"],
                    id,
                    "success",
                    false,
                    None,
                );
            }
            Action::RevokeConsent { client } if ok => {
                expect(
                    format!("revoking the consent to `{client}`"),
                    vec!["consent.revoked"],
                    registered(client),
                    "success",
                    false,
                    None,
                );
            }
            _ => {}
        }
        self.note_connection_audit(action, facts);
    }

    fn keep_secret(&mut self, secret: &str) {
        if !secret.is_empty() && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_owned());
        }
    }

    pub async fn perform(&mut self, action: &Action) -> Result<Value, StepError> {
        let facts = self.perform_action(action).await;
        // Whatever the provider issued meanwhile is a secret the scenario saw.
        self.sync_provider_secrets();
        facts
    }

    async fn perform_action(&mut self, action: &Action) -> Result<Value, StepError> {
        match action {
            Action::FetchAsMetadata { from_prm } => {
                let issuer = if *from_prm {
                    self.discovered_issuer.clone().ok_or_else(|| {
                        precondition("no Protected Resource Metadata named an authorization server")
                    })?
                } else {
                    self.profile.issuer.clone()
                };
                self.fetch_as_metadata(&issuer).await
            }
            Action::CallResource {
                resource,
                with_token,
                tool,
            } => {
                self.call_resource(resource, *with_token, tool.as_deref())
                    .await
            }
            Action::FetchResourceMetadata { resource } => {
                self.fetch_resource_metadata(resource).await
            }
            Action::Register {
                name,
                redirect_uris,
                redirect_uri_count,
                metadata,
            } => {
                let generated = redirect_uri_count.map(|n| {
                    (0..n)
                        .map(|i| format!("{}/{i}", self.profile.callback.trim_end_matches('/')))
                        .collect::<Vec<_>>()
                });
                self.register(
                    name,
                    generated.as_deref().or(redirect_uris.as_deref()),
                    metadata,
                )
                .await
            }
            Action::RegisterBurst { count } => self.register_burst(*count).await,
            Action::RevokeConsent { client } => self.revoke_consent(client).await,
            Action::JwtBearer {
                client,
                scope,
                assertion,
            } => self.jwt_bearer(client, scope.as_deref(), *assertion).await,
            Action::Authorize {
                client,
                pkce,
                redirect_uri,
                resource,
                scope,
                deny,
                user,
                uncheck,
                oauth2_crate,
            } => {
                self.login_as = user.clone();
                self.uncheck = uncheck
                    .iter()
                    .map(|s| self.text(s))
                    .collect::<Result<_, _>>()?;
                self.authorize(
                    client,
                    *pkce,
                    redirect_uri.as_deref(),
                    resource,
                    scope.as_deref(),
                    *deny,
                    *oauth2_crate,
                )
                .await
            }
            Action::Token {
                client,
                verifier,
                redirect_uri,
                resource,
                oauth2_crate,
                auth,
            } => {
                self.token(
                    client,
                    *verifier,
                    redirect_uri.as_deref(),
                    resource,
                    *oauth2_crate,
                    *auth,
                )
                .await
            }
            Action::ValidateToken { resource } => self.validate_token(resource).await,
            Action::AdvanceClock { seconds } => {
                self.control_post("/clock", json!({"advance_seconds": seconds}))
                    .await
            }
            Action::SetClock { at } => self.control_post("/clock", json!({"set": at})).await,
            Action::AuditFailure { fail } => {
                self.control_post("/audit/failure", json!({"fail": fail}))
                    .await
            }
            Action::HostClientMetadata {
                name,
                variant,
                max_age,
                fail_first,
            } => {
                self.host_client_metadata(name, *variant, *max_age, *fail_first)
                    .await
            }
            Action::CimdFetchCount { name } => self.cimd_fetch_count(name).await,
            Action::ListenForSsrf { name } => self.listen_for_ssrf(name).await,
            Action::SsrfConnections => Ok(json!({
                "count": self
                    .ssrf_probe
                    .as_ref()
                    .map(|(count, _)| count.load(std::sync::atomic::Ordering::SeqCst))
                    .ok_or_else(|| precondition("no SSRF probe is listening"))?
            })),
            Action::RotateKeys => self.control_post("/keys/rotate", json!({})).await,
            Action::Revoke { client, token } => self.revoke(client, *token).await,
            Action::Introspect { client, token } => self.introspect(client, *token).await,
            Action::Refresh {
                client,
                token,
                scope,
                resource,
            } => {
                self.refresh(client, *token, scope.as_deref(), resource)
                    .await
            }
            Action::ClientCredentials {
                client,
                scope,
                wrong_secret,
                assertion,
                source,
                resource,
            } => {
                self.client_credentials(
                    client,
                    scope.as_deref(),
                    *wrong_secret,
                    *assertion,
                    source.as_deref(),
                    resource.as_deref(),
                )
                .await
            }
            Action::CreatePolicy { name, policy } => self.create_policy(name, policy).await,
            Action::DeletePolicy { name } => self.delete_policy(name).await,
            Action::CreateAgent { name, agent } => self.create_agent(name, agent).await,
            Action::DecommissionAgent { name } => self.decommission_agent(name).await,
            Action::ListAgents { tag } => self.list_agents(tag.as_deref()).await,
            Action::TokenExchange {
                client,
                scope,
                resource,
            } => {
                self.token_exchange(client, scope.as_deref(), resource.as_deref())
                    .await
            }
            Action::AuditEvents {
                event_type,
                client,
                via_admin,
                resource,
            } => {
                self.audit_events(
                    event_type,
                    client.as_deref(),
                    *via_admin,
                    resource.as_deref(),
                )
                .await
            }
            Action::CreateConnection {
                name,
                kind,
                scopes,
                allowed_clients,
                agenda,
                set,
            } => {
                self.create_connection(name, *kind, scopes, allowed_clients, *agenda, set)
                    .await
            }
            Action::StoreConnectionToken {
                connection,
                owner,
                expires_in,
                no_expiry,
                scopes,
                refresh_token,
            } => {
                self.store_connection_token(
                    connection,
                    owner,
                    *expires_in,
                    *no_expiry,
                    scopes.as_deref(),
                    *refresh_token,
                )
                .await
            }
            Action::ConnectionToken {
                connection,
                client,
                scope,
                concurrent,
            } => {
                self.connection_token(connection, client, scope.as_deref(), *concurrent)
                    .await
            }
            Action::ProviderMode { token, expires_in } => {
                self.set_provider_mode(*token, *expires_in).await
            }
            Action::ProviderLog => self.provider_log(),
            Action::GetConnection { connection, owner } => {
                self.get_connection(connection, owner.as_deref()).await
            }
            Action::Connect {
                connection,
                user,
                forge_state,
            } => {
                self.connect(connection, user.as_deref(), *forge_state)
                    .await
            }
            Action::McpTool {
                resource,
                tool,
                arguments,
            } => self.mcp_tool(resource, tool, arguments).await,
        }
    }

    // ---- discovery ----------------------------------------------------------

    /// The metadata URLs to try for an issuer, in the MCP authorization spec's order.
    fn metadata_urls(issuer: &str) -> Result<Vec<String>, StepError> {
        let issuer =
            Url::parse(issuer).map_err(|e| precondition(format!("issuer `{issuer}`: {e}")))?;
        let origin = issuer.origin().ascii_serialization();
        let path = issuer.path().trim_end_matches('/');
        Ok(if path.is_empty() {
            vec![
                format!("{origin}/.well-known/oauth-authorization-server"),
                format!("{origin}/.well-known/openid-configuration"),
            ]
        } else {
            vec![
                format!("{origin}/.well-known/oauth-authorization-server{path}"),
                format!("{origin}/.well-known/openid-configuration{path}"),
                format!("{origin}{path}/.well-known/openid-configuration"),
            ]
        })
    }

    async fn fetch_as_metadata(&mut self, issuer: &str) -> Result<Value, StepError> {
        let mut tried = Vec::new();
        let mut last = None;
        for url in Self::metadata_urls(issuer)? {
            let response = self.http.send(self.http.get(&url)).await?;
            tried.push(json!({"url": url, "status": response.status}));
            if response.status == 200 {
                if let Some(body) = response.json().filter(Value::is_object) {
                    self.metadata = Some(body.clone());
                    return Ok(
                        json!({"status": 200, "url": url, "issuer_used": issuer, "body": body, "tried": tried}),
                    );
                }
            }
            last = Some(response);
        }
        Ok(json!({
            "status": last.map(|r| r.status),
            "body": null,
            "tried": tried,
        }))
    }

    /// The AS metadata, discovered once per scenario.
    async fn metadata(&mut self) -> Result<Value, StepError> {
        if self.metadata.is_none() {
            let issuer = self.profile.issuer.clone();
            self.fetch_as_metadata(&issuer).await?;
        }
        self.metadata.clone().ok_or_else(|| {
            precondition("the authorization server metadata could not be discovered")
        })
    }

    async fn endpoint(&mut self, name: &str) -> Result<String, StepError> {
        self.metadata()
            .await?
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| precondition(format!("the metadata has no `{name}`")))
    }

    async fn call_resource(
        &mut self,
        resource: &str,
        with_token: bool,
        tool: Option<&str>,
    ) -> Result<Value, StepError> {
        let url = self
            .resource_url(resource)?
            .ok_or_else(|| precondition("call_resource needs a resource"))?;
        let body = match tool {
            Some(tool) => {
                json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": self.text(tool)?, "arguments": {}}})
            }
            None => json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "conform", "version": env!("CARGO_PKG_VERSION")}
            }}),
        };
        let mut request = self
            .http
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body);
        if with_token {
            let token = self
                .last_token
                .clone()
                .ok_or_else(|| precondition("no access token has been obtained yet"))?;
            request = request.bearer_auth(token);
        }
        let response = self.http.send(request).await?;
        let challenge = response
            .header("www-authenticate")
            .map(crate::challenge::parse);
        if let Some(url) = challenge
            .as_ref()
            .and_then(|c| c.pointer("/params/resource_metadata"))
            .and_then(Value::as_str)
        {
            self.resource_metadata_url = Some(url.to_owned());
        }
        Ok(json!({
            "status": response.status,
            "www_authenticate": challenge,
            "error": challenge.as_ref().and_then(|c| c.pointer("/params/error")).cloned(),
            "body": response.json(),
        }))
    }

    async fn fetch_resource_metadata(&mut self, resource: &str) -> Result<Value, StepError> {
        let resource_url = self
            .resource_url(resource)?
            .ok_or_else(|| precondition("fetch_resource_metadata needs a resource"))?;
        let (url, source) = match &self.resource_metadata_url {
            Some(url) => (url.clone(), "challenge"),
            None => {
                let parsed = Url::parse(&resource_url).map_err(|e| precondition(e.to_string()))?;
                let path = parsed.path().trim_end_matches('/');
                (
                    format!(
                        "{}/.well-known/oauth-protected-resource{path}",
                        parsed.origin().ascii_serialization()
                    ),
                    "well-known",
                )
            }
        };
        let response = self.http.send(self.http.get(&url)).await?;
        let body = response.json();
        self.discovered_issuer = body
            .as_ref()
            .and_then(|b| b.pointer("/authorization_servers/0"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(json!({"status": response.status, "url": url, "source": source, "body": body}))
    }

    // ---- MCP client -----------------------------------------------------------

    async fn register(
        &mut self,
        name: &str,
        redirect_uris: Option<&[String]>,
        extra: &BTreeMap<String, toml::Value>,
    ) -> Result<Value, StepError> {
        let endpoint = self.endpoint("registration_endpoint").await?;
        let redirect_uris = match redirect_uris {
            Some(uris) => uris
                .iter()
                .map(|u| self.text(u))
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![self.profile.callback.clone()],
        };
        let mut body = json!({
            "client_name": format!("conform test client ({name})"),
            "redirect_uris": redirect_uris,
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        });
        for (key, value) in extra {
            let value = serde_json::to_value(value).map_err(|e| precondition(e.to_string()))?;
            body[key] = match value {
                Value::String(s) => Value::String(self.text(&s)?),
                other => other,
            };
        }
        let response = self
            .http
            .send(self.http.post(&endpoint).json(&body))
            .await?;
        let json = response.json();
        if matches!(response.status, 200 | 201) {
            if let Some(client_id) = json
                .as_ref()
                .and_then(|b| b.get("client_id"))
                .and_then(Value::as_str)
            {
                self.registered.insert(
                    name.to_owned(),
                    Registered {
                        client_id: client_id.to_owned(),
                        redirect_uri: redirect_uris.first().cloned().unwrap_or_default(),
                    },
                );
            }
        }
        Ok(json!({
            "status": response.status,
            "body": json,
            "error": json.as_ref().and_then(|b| b.get("error")).cloned(),
            "sent": body,
        }))
    }

    fn registered(&self, name: &str) -> Result<Registered, StepError> {
        self.registered.get(name).cloned().ok_or_else(|| {
            precondition(format!("no client registered as `{name}` in this scenario"))
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn authorize(
        &mut self,
        client: &str,
        pkce: Pkce,
        redirect_uri: Option<&str>,
        resource: &str,
        scope: Option<&str>,
        deny: bool,
        oauth2_crate: bool,
    ) -> Result<Value, StepError> {
        let client = self.registered(client)?;
        let endpoint = self.endpoint("authorization_endpoint").await?;
        let presented_redirect = match redirect_uri {
            Some(r) => self.text(r)?,
            None => client.redirect_uri.clone(),
        };
        let resource_url = self.resource_url(resource)?;
        let scope = match scope {
            Some(s) => Some(self.text(s)?),
            None => self
                .profile
                .resources
                .get(resource)
                .map(|r| r.scopes.join(" ")),
        };
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let verifier = verifier.secret().clone();
        self.keep_secret(&verifier);
        let state = crate::random_token();
        self.state_sent = Some(state.clone());

        let url = if oauth2_crate && pkce == Pkce::S256 {
            let oauth = BasicClient::new(ClientId::new(client.client_id.clone()))
                .set_auth_uri(
                    AuthUrl::new(endpoint.clone()).map_err(|e| precondition(e.to_string()))?,
                )
                .set_redirect_uri(
                    RedirectUrl::new(presented_redirect.clone())
                        .map_err(|e| precondition(e.to_string()))?,
                );
            let state_for_crate = state.clone();
            let mut request = oauth
                .authorize_url(move || CsrfToken::new(state_for_crate))
                .set_pkce_challenge(challenge);
            for s in scope.iter().flat_map(|s| s.split_ascii_whitespace()) {
                request = request.add_scope(Scope::new(s.to_owned()));
            }
            if let Some(r) = &resource_url {
                request = request.add_extra_param("resource", r.clone());
            }
            request.url().0
        } else {
            let mut url = Url::parse(&endpoint).map_err(|e| precondition(e.to_string()))?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("response_type", "code");
                q.append_pair("client_id", &client.client_id);
                q.append_pair("redirect_uri", &presented_redirect);
                q.append_pair("state", &state);
                match pkce {
                    Pkce::S256 => {
                        q.append_pair("code_challenge", challenge.as_str());
                        q.append_pair("code_challenge_method", "S256");
                    }
                    Pkce::Plain => {
                        q.append_pair("code_challenge", &verifier);
                        q.append_pair("code_challenge_method", "plain");
                    }
                    Pkce::None => {}
                }
                if let Some(scope) = &scope {
                    q.append_pair("scope", scope);
                }
                if let Some(r) = &resource_url {
                    q.append_pair("resource", r);
                }
            }
            url
        };

        let hub_origin = Url::parse(&endpoint)
            .map_err(|e| precondition(e.to_string()))?
            .origin();
        let mut vars = self.vars();
        if let Some(name) = &self.login_as {
            let other = self
                .profile
                .users
                .get(name)
                .ok_or_else(|| precondition(format!("the profile has no [users.{name}]")))?;
            vars["user"]["username"] = json!(other.username);
            vars["user"]["password"] = json!(other.password);
        }
        let uncheck = self.uncheck.clone();
        let mut current = url.to_string();
        let mut response = self.http.send(self.http.get(&current)).await?;
        // The scopes each consent page asked for (none shown: empty).
        let mut offered: Vec<String> = Vec::new();
        let mut consent_shown = false;
        for _ in 0..12 {
            if let Some(location) = redirect_location(&response, &current) {
                let target = Url::parse(&location).map_err(|e| precondition(e.to_string()))?;
                if target.origin() != hub_origin || without_query(&target) == presented_redirect {
                    let mut facts =
                        self.left_hub(&target, &presented_redirect, &verifier, &response);
                    facts["consent_offered"] = json!(offered);
                    facts["consent_shown"] = json!(consent_shown);
                    return Ok(facts);
                }
                current = location;
                response = self.http.send(self.http.get(&current)).await?;
                continue;
            }
            if response.status != 200 {
                return Ok(json!({
                    "outcome": "not_redirected",
                    "status": response.status,
                    "page": current,
                    "error": response.json().and_then(|b| b.get("error").cloned()),
                }));
            }
            match user::act(
                &self.http,
                self.profile,
                &vars,
                &current,
                &response,
                deny,
                &uncheck,
            )
            .await?
            {
                Move::GoTo(location) => {
                    let target = Url::parse(&location).map_err(|e| precondition(e.to_string()))?;
                    if target.origin() != hub_origin || without_query(&target) == presented_redirect
                    {
                        let mut facts =
                            self.left_hub(&target, &presented_redirect, &verifier, &response);
                        facts["consent_offered"] = json!(offered);
                        facts["consent_shown"] = json!(consent_shown);
                        return Ok(facts);
                    }
                    current = location;
                    response = self.http.send(self.http.get(&current)).await?;
                }
                Move::Submitted {
                    response: next,
                    offered: asked,
                } => {
                    if !asked.is_empty() {
                        consent_shown = true;
                        offered.extend(asked);
                    }
                    response = next;
                }
            }
        }
        Err(precondition(
            "the authorization flow did not finish within 12 pages",
        ))
    }

    /// The browser is leaving the hub: record where to and with what.
    fn left_hub(
        &mut self,
        target: &Url,
        presented_redirect: &str,
        verifier: &str,
        response: &Response,
    ) -> Value {
        let params: Map<String, Value> = target
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        let destination = without_query(target);
        let code = params
            .get("code")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(code) = &code {
            self.keep_secret(code);
            self.pending = Some(PendingCode {
                code: code.clone(),
                verifier: verifier.to_owned(),
                redirect_uri: presented_redirect.to_owned(),
            });
        }
        let outcome = if code.is_some() {
            "code"
        } else if params.contains_key("error") {
            "error"
        } else {
            "redirected"
        };
        json!({
            "outcome": outcome,
            "status": response.status,
            "redirected_to": destination,
            "to_presented_redirect_uri": destination == presented_redirect,
            "params": params,
            "error": params.get("error").cloned(),
            "state_sent": self.state_sent,
        })
    }

    async fn token(
        &mut self,
        client: &str,
        verifier: Verifier,
        redirect_uri: Option<&str>,
        resource: &str,
        oauth2_crate: bool,
        auth: ClientAuth,
    ) -> Result<Value, StepError> {
        let client = self.registered(client)?;
        let pending = self
            .pending
            .clone()
            .ok_or_else(|| precondition("no authorization code has been obtained yet"))?;
        let endpoint = self.endpoint("token_endpoint").await?;
        let redirect_uri = match redirect_uri {
            Some(r) => self.text(r)?,
            None => pending.redirect_uri.clone(),
        };
        let resource_url = self.resource_url(resource)?;
        let verifier_value = match verifier {
            Verifier::Correct => Some(pending.verifier.clone()),
            Verifier::Wrong => {
                let wrong = PkceCodeChallenge::new_random_sha256().1.secret().clone();
                self.keep_secret(&wrong);
                Some(wrong)
            }
            Verifier::Omit => None,
        };

        if oauth2_crate {
            let oauth = BasicClient::new(ClientId::new(client.client_id.clone()))
                .set_token_uri(TokenUrl::new(endpoint).map_err(|e| precondition(e.to_string()))?)
                .set_redirect_uri(
                    RedirectUrl::new(redirect_uri).map_err(|e| precondition(e.to_string()))?,
                );
            let mut request = oauth.exchange_code(AuthorizationCode::new(pending.code.clone()));
            if let Some(v) = verifier_value {
                request = request.set_pkce_verifier(PkceCodeVerifier::new(v));
            }
            if let Some(r) = resource_url {
                request = request.add_extra_param("resource", r);
            }
            let http = self.http.clone();
            let call = move |req| {
                let http = http.clone();
                async move { http.oauth2_call(req).await }
            };
            return Ok(match request.request_async(&call).await {
                Ok(token) => {
                    let access_token = token.access_token().secret().clone();
                    self.received_token(&access_token);
                    json!({
                        "status": 200,
                        "body": {
                            "token_type": token.token_type().as_ref(),
                            "expires_in": token.expires_in().map(|d| d.as_secs()),
                            "scope": token.scopes().map(|s| s.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ")),
                            "access_token": "[redacted]",
                        },
                    })
                }
                Err(oauth2::RequestTokenError::ServerResponse(err)) => {
                    json!({"status": null, "error": err.error().as_ref(), "body": {"error_description": err.error_description()}})
                }
                Err(oauth2::RequestTokenError::Request(e)) => return Err(StepError::Transport(e)),
                Err(other) => {
                    json!({"status": null, "error": null, "crate_error": other.to_string()})
                }
            });
        }

        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", pending.code.clone()),
            ("redirect_uri", redirect_uri),
            ("client_id", client.client_id.clone()),
        ];
        if let Some(v) = verifier_value {
            form.push(("code_verifier", v));
        }
        if let Some(r) = resource_url {
            form.push(("resource", r));
        }
        if auth == ClientAuth::PrivateKeyJwt {
            let assertion = self.sign_assertion(
                &client.client_id,
                CIMD_CLIENT_KEY,
                Some(CIMD_CLIENT_KID),
                &endpoint,
                AssertionVariant::Valid,
            )?;
            form.push((
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
            ));
            form.push(("client_assertion", assertion));
        }
        let response = self
            .http
            .send(self.http.post(&endpoint).form(&form))
            .await?;
        Ok(self.token_facts(&response))
    }

    fn received_token(&mut self, token: &str) {
        self.keep_secret(token);
        self.last_token = Some(token.to_owned());
        if let Some(claims) = unverified_claims(token) {
            self.token_claims.push(claims);
        }
    }

    fn token_facts(&mut self, response: &Response) -> Value {
        let body = response.json();
        let refresh_token = body
            .as_ref()
            .and_then(|b| b.get("refresh_token"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if response.status == 200 {
            if let Some(token) = body
                .as_ref()
                .and_then(|b| b.get("access_token"))
                .and_then(Value::as_str)
            {
                self.received_token(token);
            }
            if let Some(refresh) = &refresh_token {
                self.keep_secret(refresh);
                self.refresh_tokens.push(refresh.clone());
            }
        }
        json!({
            "status": response.status,
            "headers": {
                "cache_control": response.header("cache-control"),
                "pragma": response.header("pragma"),
                "content_type": response.header("content-type"),
            },
            "body": body,
            "error": body.as_ref().and_then(|b| b.get("error")).cloned(),
            "refresh_token_issued": refresh_token.is_some(),
        })
    }

    async fn refresh(
        &mut self,
        client: &str,
        pick: RefreshPick,
        scope: Option<&str>,
        resource: &str,
    ) -> Result<Value, StepError> {
        let client = self.registered(client)?;
        let presented = match pick {
            RefreshPick::Latest => self.refresh_tokens.last(),
            RefreshPick::Previous => self.refresh_tokens.iter().rev().nth(1),
        }
        .cloned()
        .ok_or_else(|| precondition("no such refresh token has been received"))?;
        let endpoint = self.endpoint("token_endpoint").await?;
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", presented.clone()),
            ("client_id", client.client_id.clone()),
        ];
        if let Some(scope) = scope {
            form.push(("scope", self.text(scope)?));
        }
        if let Some(r) = self.resource_url(resource)? {
            form.push(("resource", r));
        }
        let response = self
            .http
            .send(self.http.post(&endpoint).form(&form))
            .await?;
        let mut facts = self.token_facts(&response);
        let rotated = facts["refresh_token_issued"] == Value::Bool(true)
            && self
                .refresh_tokens
                .last()
                .is_some_and(|latest| *latest != presented);
        facts["refresh_token_rotated"] = Value::Bool(rotated);
        Ok(facts)
    }

    /// Registers up to `count` clients in a row; stops at the first answer that is not a success.
    async fn register_burst(&mut self, count: u32) -> Result<Value, StepError> {
        let endpoint = self.endpoint("registration_endpoint").await?;
        let target_on_loopback = Url::parse(&endpoint)
            .ok()
            .and_then(|u| u.host().map(|h| h.to_owned()))
            .is_some_and(|h| match h {
                url::Host::Ipv4(ip) => ip.is_loopback(),
                url::Host::Ipv6(ip) => ip.is_loopback(),
                url::Host::Domain(d) => d == "localhost",
            });
        let (http, source) = if target_on_loopback {
            let second = std::net::IpAddr::from([127, 0, 0, 2]);
            (
                self.http.with_local_address(&self.profile.http, second),
                second.to_string(),
            )
        } else {
            (self.http.clone(), "default".to_owned())
        };
        let body = json!({
            "client_name": "conform rate-limit probe",
            "redirect_uris": [self.profile.callback],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        });
        let mut accepted = 0;
        for _ in 0..count {
            let response = http.send(http.post(&endpoint).json(&body)).await?;
            if matches!(response.status, 200 | 201) {
                accepted += 1;
                continue;
            }
            let json = response.json();
            return Ok(json!({
                "status": response.status,
                "accepted_before_refusal": accepted,
                "retry_after": response.header("retry-after"),
                "error": json.as_ref().and_then(|b| b.get("error")).cloned(),
                "body": json,
                "source_address": source,
            }));
        }
        Ok(json!({
            "status": 201,
            "accepted_before_refusal": accepted,
            "source_address": source,
        }))
    }

    /// The admin revokes the profile user's consent to a client.
    async fn revoke_consent(&mut self, name: &str) -> Result<Value, StepError> {
        let client = self.registered(name)?;
        let admin = self
            .profile
            .admin
            .clone()
            .ok_or_else(|| precondition("this step needs the profile's [admin] section"))?;
        let url = format!("{}/consents/revoke", admin.url.trim_end_matches('/'));
        let body = json!({"user": self.profile.user.username, "client_id": client.client_id});
        let response = self
            .http
            .send(self.http.post(&url).bearer_auth(&admin.token).json(&body))
            .await?;
        Ok(json!({"status": response.status, "body": response.json()}))
    }

    // ---- autonomous agent -----------------------------------------------------

    /// RFC 7523 §2.1: the agent presents a JWT it signed as the grant, without
    /// other client authentication.
    async fn jwt_bearer(
        &mut self,
        role: &str,
        scope: Option<&str>,
        variant: AssertionVariant,
    ) -> Result<Value, StepError> {
        let client = self.confidential(role)?;
        if client.auth_method != "private_key_jwt" {
            return Err(precondition(format!(
                "[clients.{role}] must be a private_key_jwt client to sign a JWT grant"
            )));
        }
        let endpoint = self.endpoint("token_endpoint").await?;
        let assertion = self.assertion(&client, &endpoint, variant)?;
        let mut form = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
            ),
            ("assertion", assertion),
        ];
        if let Some(scope) = scope {
            form.push(("scope", self.text(scope)?));
        }
        if let Some(url) = self.resource_url(&client.resource)? {
            form.push(("resource", url));
        }
        let response = self
            .http
            .send(self.http.post(&endpoint).form(&form))
            .await?;
        Ok(self.token_facts(&response))
    }

    /// A confidential client by role: the profile's `[clients]`, or an agent created in this scenario.
    fn confidential(&self, role: &str) -> Result<PreRegisteredClient, StepError> {
        self.profile
            .clients
            .get(role)
            .or_else(|| self.agents.get(role))
            .cloned()
            .ok_or_else(|| {
                precondition(format!(
                    "no [clients.{role}] in the profile and no agent `{role}` created"
                ))
            })
    }

    /// An HTTP client whose connections leave from `source` when the target is on loopback.
    fn http_from(&self, source: Option<&str>) -> Result<Http, StepError> {
        match source {
            None => Ok(self.http.clone()),
            Some(address) => {
                let ip: std::net::IpAddr = address
                    .parse()
                    .map_err(|_| precondition(format!("`{address}` is not an IP address")))?;
                Ok(self.http.with_local_address(&self.profile.http, ip))
            }
        }
    }

    async fn client_credentials(
        &mut self,
        role: &str,
        scope: Option<&str>,
        wrong_secret: bool,
        variant: AssertionVariant,
        source: Option<&str>,
        resource: Option<&str>,
    ) -> Result<Value, StepError> {
        let client = self.confidential(role)?;
        let http = self.http_from(source)?;
        let endpoint = self.endpoint("token_endpoint").await?;
        let secret = if client.auth_method == "private_key_jwt" {
            self.assertion(&client, &endpoint, variant)?
        } else if wrong_secret {
            format!("{}-wrong", client.client_secret)
        } else {
            client.client_secret.clone()
        };
        let mut form = vec![("grant_type", "client_credentials".to_owned())];
        if let Some(scope) = scope {
            form.push(("scope", self.text(scope)?));
        }
        if let Some(url) = self.resource_url(resource.unwrap_or(&client.resource))? {
            form.push(("resource", url));
        }
        let request = self.confidential_post(&http, &endpoint, &client, &secret, form);
        let response = http.send(request).await?;
        Ok(self.token_facts(&response))
    }

    /// A private_key_jwt client assertion (RFC 7523 §2.2, §3), signed with the profile's key.
    fn assertion(
        &mut self,
        client: &PreRegisteredClient,
        token_endpoint: &str,
        variant: AssertionVariant,
    ) -> Result<String, StepError> {
        self.sign_assertion(
            &client.client_id,
            client.private_key_pem.as_deref().unwrap_or_default(),
            client.key_id.as_deref(),
            token_endpoint,
            variant,
        )
    }

    /// A JWT with `iss` = `sub` = `client_id` for the token endpoint (RFC 7523 §3),
    /// for client authentication or as an authorization grant.
    fn sign_assertion(
        &mut self,
        client_id: &str,
        pem: &str,
        key_id: Option<&str>,
        token_endpoint: &str,
        variant: AssertionVariant,
    ) -> Result<String, StepError> {
        if variant == AssertionVariant::Replay {
            return self
                .last_assertion
                .clone()
                .ok_or_else(|| precondition("no assertion has been sent yet to replay"));
        }
        let pem = pem.trim();
        let key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes())
            .or_else(|_| jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()))
            .map_err(|e| precondition(format!("the profile's private key cannot be read: {e}")))?;
        let algorithm = if pem.contains("RSA") {
            Algorithm::RS256
        } else {
            Algorithm::ES256
        };
        let mut header = jsonwebtoken::Header::new(algorithm);
        header.kid = key_id.map(str::to_owned);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let (iat, exp) = match variant {
            AssertionVariant::Expired => (now - 180, now - 120),
            _ => (now, now + 60),
        };
        let aud = match variant {
            AssertionVariant::WrongAudience => {
                "https://conform.invalid/another-authorization-server".to_owned()
            }
            _ => token_endpoint.to_owned(),
        };
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": aud,
            "iat": iat,
            "exp": exp,
            "jti": crate::random_token(),
        });
        let mut assertion = jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|e| precondition(format!("cannot sign the assertion: {e}")))?;
        if variant == AssertionVariant::BadSignature {
            assertion = tamper_signature(&assertion);
        }
        self.keep_secret(&assertion);
        self.last_assertion = Some(assertion.clone());
        Ok(assertion)
    }

    /// A form POST authenticated as a pre-registered confidential client:
    /// a secret (RFC 6749 §2.3.1) or, for private_key_jwt, the assertion in `secret`.
    fn confidential_post(
        &self,
        http: &Http,
        endpoint: &str,
        client: &PreRegisteredClient,
        secret: &str,
        mut form: Vec<(&'static str, String)>,
    ) -> reqwest::RequestBuilder {
        let mut request = http.post(endpoint);
        if client.auth_method == "private_key_jwt" {
            form.push((
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
            ));
            form.push(("client_assertion", secret.to_owned()));
        } else if client.auth_method == "client_secret_post" {
            form.push(("client_id", client.client_id.clone()));
            form.push(("client_secret", secret.to_owned()));
        } else {
            // Form-encode id and secret before Basic encoding.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            request = request.basic_auth(enc(&client.client_id), Some(enc(secret)));
        }
        request.form(&form)
    }

    fn latest(&self, kind: TokenKind) -> Result<String, StepError> {
        match kind {
            TokenKind::Access => self.last_token.clone(),
            TokenKind::Refresh => self.refresh_tokens.last().cloned(),
        }
        .ok_or_else(|| precondition(format!("no {kind:?} token has been obtained yet")))
    }

    async fn revoke(&mut self, client: &str, kind: TokenKind) -> Result<Value, StepError> {
        let client = self.registered(client)?;
        let token = self.latest(kind)?;
        let endpoint = self.endpoint("revocation_endpoint").await?;
        let hint = match kind {
            TokenKind::Access => "access_token",
            TokenKind::Refresh => "refresh_token",
        };
        let form = [
            ("token", token.as_str()),
            ("token_type_hint", hint),
            ("client_id", client.client_id.as_str()),
        ];
        let response = self
            .http
            .send(self.http.post(&endpoint).form(&form))
            .await?;
        let body = response.json();
        Ok(json!({
            "status": response.status,
            "body": body,
            "error": body.as_ref().and_then(|b| b.get("error")).cloned(),
        }))
    }

    async fn introspect(&mut self, role: &str, kind: TokenKind) -> Result<Value, StepError> {
        let client = self.confidential(role)?;
        let token = self.latest(kind)?;
        let endpoint = self.endpoint("introspection_endpoint").await?;
        let request = self.confidential_post(
            &self.http,
            &endpoint,
            &client,
            &client.client_secret,
            vec![("token", token)],
        );
        let response = self.http.send(request).await?;
        let body = response.json();
        Ok(json!({
            "status": response.status,
            "body": body,
            "error": body.as_ref().and_then(|b| b.get("error")).cloned(),
        }))
    }

    // ---- admin: policies and agents ----------------------------------------------

    /// A call to the target's admin API (the profile's `[admin]`).
    async fn admin(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Response, StepError> {
        let admin = self
            .profile
            .admin
            .clone()
            .ok_or_else(|| precondition("this step needs the profile's [admin] section"))?;
        let url = format!("{}{path}", admin.url.trim_end_matches('/'));
        let mut request = self.http.request(method, &url).bearer_auth(&admin.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Ok(self.http.send(request).await?)
    }

    fn admin_facts(response: &Response) -> Value {
        let body = response.json();
        json!({
            "status": response.status,
            "error": body.as_ref().and_then(|b| b.get("error")).cloned(),
            "body": body,
        })
    }

    /// TOML written in a scenario, as the JSON the admin API takes, with `${…}` resolved.
    fn admin_json(&self, value: &toml::Value) -> Result<Value, StepError> {
        let json = serde_json::to_value(value).map_err(|e| precondition(e.to_string()))?;
        let text = self.text(&json.to_string())?;
        serde_json::from_str(&text).map_err(|e| precondition(e.to_string()))
    }

    async fn create_policy(
        &mut self,
        name: &str,
        policy: &toml::Value,
    ) -> Result<Value, StepError> {
        let draft = self.admin_json(policy)?;
        let response = self
            .admin(reqwest::Method::POST, "/policies", Some(draft))
            .await?;
        let facts = Self::admin_facts(&response);
        if let Some(id) = facts["body"]["id"].as_str() {
            self.policies.insert(name.to_owned(), id.to_owned());
        }
        Ok(facts)
    }

    async fn delete_policy(&mut self, name: &str) -> Result<Value, StepError> {
        let id = self
            .policies
            .remove(name)
            .ok_or_else(|| precondition(format!("no policy `{name}` was created")))?;
        let response = self
            .admin(reqwest::Method::DELETE, &format!("/policies/{id}"), None)
            .await?;
        Ok(Self::admin_facts(&response))
    }

    async fn create_agent(&mut self, name: &str, agent: &toml::Value) -> Result<Value, StepError> {
        let spec = self.admin_json(agent)?;
        let response = self
            .admin(reqwest::Method::POST, "/agents", Some(spec.clone()))
            .await?;
        let facts = Self::admin_facts(&response);
        if let (Some(id), Some(redirect)) = (
            facts["body"]["client_id"].as_str(),
            spec["redirect_uris"][0].as_str(),
        ) {
            // An agent with a redirect URI can also run the authorization code flow.
            self.registered.insert(
                name.to_owned(),
                Registered {
                    client_id: id.to_owned(),
                    redirect_uri: redirect.to_owned(),
                },
            );
        }
        if let (Some(id), Some(secret)) = (
            facts["body"]["client_id"].as_str(),
            facts["body"]["client_secret"].as_str(),
        ) {
            self.keep_secret(secret);
            // The resource role of the agent's first configured server (by its id).
            let server = spec["allowed_resources"][0].as_str().unwrap_or_default();
            let resource = self
                .profile
                .resources
                .iter()
                .find(|(_, r)| r.id.as_deref() == Some(server))
                .map(|(role, _)| role.clone())
                .unwrap_or_else(|| "primary".to_owned());
            self.agents.insert(
                name.to_owned(),
                PreRegisteredClient {
                    client_id: id.to_owned(),
                    client_secret: secret.to_owned(),
                    auth_method: "client_secret_basic".to_owned(),
                    private_key_pem: None,
                    key_id: None,
                    resource,
                    allowed_scopes: Vec::new(),
                    disallowed_scopes: Vec::new(),
                },
            );
        }
        Ok(facts)
    }

    async fn decommission_agent(&mut self, name: &str) -> Result<Value, StepError> {
        let id = self
            .agents
            .get(name)
            .map(|a| a.client_id.clone())
            .ok_or_else(|| precondition(format!("no agent `{name}` was created")))?;
        let response = self
            .admin(
                reqwest::Method::POST,
                &format!("/agents/{id}/decommission"),
                None,
            )
            .await?;
        Ok(Self::admin_facts(&response))
    }

    async fn list_agents(&mut self, tag: Option<&str>) -> Result<Value, StepError> {
        let path = match tag {
            Some(tag) => format!(
                "/agents?tag={}",
                url::form_urlencoded::byte_serialize(tag.as_bytes()).collect::<String>()
            ),
            None => "/agents".to_owned(),
        };
        let response = self.admin(reqwest::Method::GET, &path, None).await?;
        let mut facts = Self::admin_facts(&response);
        // Agents of this scenario by name, for expectations.
        let mine: Map<String, Value> = self
            .agents
            .iter()
            .filter_map(|(name, a)| {
                facts["body"]["agents"]
                    .as_array()?
                    .iter()
                    .find(|x| x["client_id"] == a.client_id.as_str())
                    .map(|x| (name.clone(), x.clone()))
            })
            .collect();
        facts["created"] = Value::Object(mine);
        Ok(facts)
    }

    // ---- delegation ---------------------------------------------------------------

    /// RFC 8693: the agent exchanges the latest access token for one of its own.
    async fn token_exchange(
        &mut self,
        role: &str,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Result<Value, StepError> {
        let client = self.confidential(role)?;
        let subject = self
            .last_token
            .clone()
            .ok_or_else(|| precondition("no access token has been received to exchange"))?;
        let endpoint = self.endpoint("token_endpoint").await?;
        let secret = if client.auth_method == "private_key_jwt" {
            self.assertion(&client, &endpoint, AssertionVariant::Valid)?
        } else {
            client.client_secret.clone()
        };
        let mut form = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange".to_owned(),
            ),
            ("subject_token", subject),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token".to_owned(),
            ),
        ];
        if let Some(scope) = scope {
            form.push(("scope", self.text(scope)?));
        }
        if let Some(resource) = resource {
            if let Some(url) = self.resource_url(resource)? {
                form.push(("resource", url));
            }
        }
        let request = self.confidential_post(&self.http, &endpoint, &client, &secret, form);
        let response = self.http.send(request).await?;
        Ok(self.token_facts(&response))
    }

    /// The audit trail through the control API, for checks on what was recorded.
    async fn audit_events(
        &mut self,
        event_type: &str,
        client: Option<&str>,
        via_admin: bool,
        resource: Option<&str>,
    ) -> Result<Value, StepError> {
        let section = if via_admin { "admin" } else { "control" };
        let control = if via_admin {
            self.profile.admin.clone()
        } else {
            self.profile.control.clone()
        }
        .ok_or_else(|| {
            precondition(format!("this step needs the profile's [{section}] section"))
        })?;
        let mut url = Url::parse(&format!("{}/audit", control.url.trim_end_matches('/')))
            .map_err(|e| precondition(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("type", event_type)
            .append_pair("limit", "1000");
        if let Some(name) = client {
            let id = match self.registered.get(name) {
                Some(r) => r.client_id.clone(),
                None => self.confidential(name)?.client_id,
            };
            url.query_pairs_mut().append_pair("client_id", &id);
        }
        let response = self
            .http
            .send(self.http.get(url.as_str()).bearer_auth(&control.token))
            .await?;
        let body = response.json();
        let mut events = body
            .as_ref()
            .and_then(|b| b.get("events"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(resource) = resource {
            let resource = self.text(resource)?;
            events.retain(|e| e["resource"].as_str() == Some(resource.as_str()));
        }
        // Whether any of these events holds a secret the scenario saw.
        let text = Value::Array(events.clone()).to_string();
        let mentions_secret = self
            .secrets
            .iter()
            .filter(|s| s.len() >= 8)
            .any(|s| text.contains(s.as_str()));
        Ok(json!({
            "status": response.status,
            "count": events.len(),
            "last": events.last().cloned(),
            "events": events,
            "mentions_secret": mentions_secret,
        }))
    }

    // ---- test driver ------------------------------------------------------------

    // ---- CIMD host -----------------------------------------------------------------

    async fn host_client_metadata(
        &mut self,
        name: &str,
        variant: CimdVariant,
        max_age: Option<u32>,
        fail_first: bool,
    ) -> Result<Value, StepError> {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, ResponseTemplate};
        if self.cimd_host.is_none() {
            self.cimd_host = Some(wiremock::MockServer::start().await);
        }
        let (origin, trust) = {
            let origin = self.cimd_host.as_ref().map(|s| s.uri()).unwrap_or_default();
            let trust = self
                .control_post("/cimd/trust", json!({"origin": origin}))
                .await?;
            (origin, trust)
        };
        // A fresh path per run: the target may cache documents by URL.
        let doc_path = format!("/clients/{}/{name}.json", crate::random_token());
        let url = format!("{origin}{doc_path}");
        let mut doc = json!({
            "client_id": url,
            "client_name": format!("conform CIMD client ({name})"),
            "redirect_uris": [self.profile.callback],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        });
        match variant {
            CimdVariant::Valid | CimdVariant::Redirect => {}
            CimdVariant::ClientIdMismatch => {
                doc["client_id"] = json!(format!("{url}-someone-else"))
            }
            CimdVariant::Oversize => doc["padding"] = json!("x".repeat(6 * 1024)),
            CimdVariant::SharedSecret => {
                doc["token_endpoint_auth_method"] = json!("client_secret_basic")
            }
            CimdVariant::PrivateKeyJwt => {
                let jwks_path = format!("{doc_path}.jwks");
                let key = jsonwebtoken::EncodingKey::from_ec_pem(CIMD_CLIENT_KEY.as_bytes())
                    .map_err(|e| precondition(format!("the harness's CIMD key: {e}")))?;
                let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::ES256)
                    .map_err(|e| precondition(format!("the harness's CIMD key: {e}")))?;
                jwk.common.key_id = Some(CIMD_CLIENT_KID.to_owned());
                let server = self
                    .cimd_host
                    .as_ref()
                    .ok_or_else(|| precondition("no CIMD host"))?;
                Mock::given(method("GET"))
                    .and(path(jwks_path.clone()))
                    .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": [jwk]})))
                    .mount(server)
                    .await;
                doc["token_endpoint_auth_method"] = json!("private_key_jwt");
                doc["jwks_uri"] = json!(format!("{origin}{jwks_path}"));
            }
        }
        let mut ok = ResponseTemplate::new(200).set_body_json(doc);
        if let Some(seconds) = max_age {
            ok = ok.insert_header("cache-control", format!("max-age={seconds}").as_str());
        }
        let server = self
            .cimd_host
            .as_ref()
            .ok_or_else(|| precondition("no CIMD host"))?;
        if fail_first {
            Mock::given(method("GET"))
                .and(path(doc_path.clone()))
                .respond_with(ResponseTemplate::new(500))
                .up_to_n_times(1)
                .with_priority(1)
                .mount(server)
                .await;
        }
        if variant == CimdVariant::Redirect {
            let real = format!("{doc_path}.real");
            Mock::given(method("GET"))
                .and(path(doc_path.clone()))
                .respond_with(
                    ResponseTemplate::new(302)
                        .insert_header("location", format!("{origin}{real}").as_str()),
                )
                .mount(server)
                .await;
            Mock::given(method("GET"))
                .and(path(real))
                .respond_with(ok)
                .mount(server)
                .await;
        } else {
            Mock::given(method("GET"))
                .and(path(doc_path.clone()))
                .respond_with(ok)
                .with_priority(2)
                .mount(server)
                .await;
        }
        self.registered.insert(
            name.to_owned(),
            Registered {
                client_id: url.clone(),
                redirect_uri: self.profile.callback.clone(),
            },
        );
        self.cimd_paths.insert(name.to_owned(), doc_path);
        Ok(json!({"status": trust["status"], "url": url, "trust": trust}))
    }

    async fn listen_for_ssrf(&mut self, name: &str) -> Result<Value, StepError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // 127.0.0.2: loopback, but not an address the target was told to trust.
        let listener = tokio::net::TcpListener::bind("127.0.0.2:0")
            .await
            .map_err(|e| precondition(format!("cannot listen on 127.0.0.2: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| precondition(e.to_string()))?
            .port();
        let count = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        if let Some((_, old)) = self.ssrf_probe.replace((count, task)) {
            old.abort();
        }
        let url = format!(
            "https://127.0.0.2:{port}/clients/{}/{name}.json",
            crate::random_token()
        );
        self.registered.insert(
            name.to_owned(),
            Registered {
                client_id: url.clone(),
                redirect_uri: self.profile.callback.clone(),
            },
        );
        Ok(json!({"url": url}))
    }

    async fn cimd_fetch_count(&mut self, name: &str) -> Result<Value, StepError> {
        let doc_path = self
            .cimd_paths
            .get(name)
            .cloned()
            .ok_or_else(|| precondition(format!("no document is hosted for `{name}`")))?;
        let server = self
            .cimd_host
            .as_ref()
            .ok_or_else(|| precondition("no CIMD host"))?;
        let requests = server.received_requests().await.unwrap_or_default();
        let count = requests
            .iter()
            .filter(|r| r.url.path().starts_with(&doc_path))
            .count();
        Ok(json!({"count": count}))
    }

    /// Puts back what the scenario changed on the target: a moved clock returns
    /// to wall time. Best effort; its exchanges are not part of the verdict.
    pub async fn teardown(&mut self, scenario: &crate::scenario::Scenario) {
        if let Some((_, task)) = self.ssrf_probe.take() {
            task.abort();
        }
        self.connection_teardown().await;
        self.sync_provider_secrets();
        let created: Vec<String> = std::mem::take(&mut self.policies).into_values().collect();
        for id in created {
            let _ = self
                .admin(reqwest::Method::DELETE, &format!("/policies/{id}"), None)
                .await;
        }
        let moved_clock = scenario.steps.iter().any(|s| {
            matches!(
                s.action,
                Action::AdvanceClock { .. } | Action::SetClock { .. }
            )
        });
        let broke_audit = scenario
            .steps
            .iter()
            .any(|s| matches!(s.action, Action::AuditFailure { .. }));
        if broke_audit && self.profile.control.is_some() {
            let _ = self
                .control_post("/audit/failure", json!({"fail": false}))
                .await;
        }
        if moved_clock && self.profile.control.is_some() {
            let _ = self.control_post("/clock", json!({"reset": true})).await;
        }
    }

    /// A call to the target's control API (the profile's `[control]`).
    async fn control_post(&mut self, path: &str, body: Value) -> Result<Value, StepError> {
        let control = self
            .profile
            .control
            .clone()
            .ok_or_else(|| precondition("this step needs the profile's [control] section"))?;
        let url = format!("{}{path}", control.url.trim_end_matches('/'));
        let response = self
            .http
            .send(self.http.post(&url).bearer_auth(&control.token).json(&body))
            .await?;
        Ok(json!({"status": response.status, "body": response.json()}))
    }

    // ---- resource server --------------------------------------------------------

    async fn validate_token(&mut self, resource: &str) -> Result<Value, StepError> {
        let token = self
            .last_token
            .clone()
            .ok_or_else(|| precondition("no access token has been obtained yet"))?;
        let expected_aud = self
            .resource_url(resource)?
            .ok_or_else(|| precondition("validate_token needs a resource"))?;
        let jwks_uri = self.endpoint("jwks_uri").await?;
        let response = self.http.send(self.http.get(&jwks_uri)).await?;
        let jwks: Option<JwkSet> = serde_json::from_slice(&response.body).ok();
        let header = jsonwebtoken::decode_header(&token).ok();
        let claims = unverified_claims(&token);
        let mut errors: Vec<String> = Vec::new();

        let signature_valid = match (&header, &jwks) {
            (None, _) => {
                errors.push("the access token is not a JWT".into());
                false
            }
            (_, None) => {
                errors.push("the JWKS could not be read".into());
                false
            }
            (Some(header), Some(jwks)) => {
                let jwk = match &header.kid {
                    Some(kid) => jwks.find(kid),
                    None if jwks.keys.len() == 1 => jwks.keys.first(),
                    None => None,
                };
                let asymmetric = matches!(
                    header.alg,
                    Algorithm::ES256
                        | Algorithm::ES384
                        | Algorithm::RS256
                        | Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::PS256
                        | Algorithm::PS384
                        | Algorithm::PS512
                        | Algorithm::EdDSA
                );
                match jwk.map(DecodingKey::from_jwk) {
                    _ if !asymmetric => {
                        errors.push(format!(
                            "{:?} is not an asymmetric signature algorithm",
                            header.alg
                        ));
                        false
                    }
                    Some(Ok(key)) => {
                        let mut validation = Validation::new(header.alg);
                        validation.validate_aud = false;
                        validation.validate_exp = false;
                        validation.required_spec_claims.clear();
                        match jsonwebtoken::decode::<Value>(&token, &key, &validation) {
                            Ok(_) => true,
                            Err(e) => {
                                errors.push(format!("signature does not verify: {e}"));
                                false
                            }
                        }
                    }
                    Some(Err(e)) => {
                        errors.push(format!("the JWK cannot be used: {e}"));
                        false
                    }
                    None => {
                        errors.push("no JWKS key matches the token's kid".into());
                        false
                    }
                }
            }
        };
        let claims = claims.unwrap_or(Value::Null);
        let aud = claims.get("aud");
        let aud_is_exactly_resource = match aud {
            Some(Value::String(a)) => *a == expected_aud,
            Some(Value::Array(items)) => {
                items.len() == 1 && items[0] == Value::String(expected_aud.clone())
            }
            _ => false,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let typ = header.as_ref().and_then(|h| h.typ.clone());
        let missing: Vec<&str> = ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"]
            .into_iter()
            .filter(|c| claims.get(*c).is_none())
            .collect();
        Ok(json!({
            "header": {
                "alg": header.as_ref().map(|h| format!("{:?}", h.alg)),
                "typ": typ,
                "kid": header.as_ref().and_then(|h| h.kid.clone()),
            },
            "claims": claims,
            "signature_valid": signature_valid,
            "issuer_matches": claims.get("iss").and_then(Value::as_str) == Some(self.profile.issuer.as_str()),
            "aud_is_exactly_resource": aud_is_exactly_resource,
            "unexpired": claims.get("exp").and_then(Value::as_i64).is_some_and(|exp| exp > now),
            "typ_is_at_jwt": typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")),
            "missing_claims": missing,
            "errors": errors,
        }))
    }
}

fn redirect_location(response: &Response, current: &str) -> Option<String> {
    if !(300..400).contains(&response.status) {
        return None;
    }
    let location = response.header("location")?;
    Url::parse(current)
        .ok()?
        .join(location)
        .ok()
        .map(|u| u.to_string())
}

fn without_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// The payload of a JWT without verifying it (verification is `validate_token`'s job).
pub fn unverified_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}
