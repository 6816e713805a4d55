//! Connections (docs/connections.md), as the parties see them: the admin who
//! defines a connection and stores tokens, the agent or MCP server that
//! retrieves a token by token exchange (RFC 8693), the user who connects in
//! a browser, the MCP client of the Agenda server, and the third-party
//! provider behind it all (`crate::provider`). Part of [`Run`].

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use url::Url;

use super::{precondition, redirect_location, unverified_claims, Run, StepError};
use crate::provider::{Provider, TokenMode};
use crate::scenario::{Action, ConnectionKind};
use crate::user::{self, Move};

/// A connection this scenario created or replaced.
#[derive(Debug, Clone)]
pub(super) struct CreatedConnection {
    pub id: String,
    pub kind: ConnectionKind,
    pub scopes: Vec<String>,
    /// It is the profile's Agenda connection, shared with the Agenda MCP server.
    pub agenda: bool,
    /// What the admin API showed before the scenario replaced it.
    pub previous: Option<Value>,
}

/// The fields of a connection definition (docs/connections.md), for putting one back.
const DEFINITION_FIELDS: &[&str] = &[
    "name",
    "type",
    "authorization_endpoint",
    "token_endpoint",
    "api_base_url",
    "client_id",
    "scopes",
    "allowed_clients",
];

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A connection id of this run: lowercase, `conform-<name>-<8 hex>`.
fn fresh_id(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .take(24)
        .collect();
    format!("conform-{name}-{:08x}", rand::random::<u32>())
}

/// `user:alice` → `{"user": "alice"}`.
fn owner_json(owner: &str) -> Result<Value, StepError> {
    match owner.split_once(':') {
        Some((kind @ ("user" | "tenant" | "agent"), id)) if !id.is_empty() => {
            Ok(json!({ kind: id }))
        }
        _ => Err(precondition(format!(
            "owner `{owner}` is not user:<name>, tenant:<id> or agent:<client_id>"
        ))),
    }
}

/// The JSON-RPC message with `id` in a Streamable HTTP answer: one JSON
/// object, or Server-Sent Events whose `data` carry messages.
fn rpc_message(response: &crate::http::Response, id: u64) -> Option<Value> {
    let is_sse = response
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/event-stream"));
    if !is_sse {
        return response.json();
    }
    let text = response.text();
    let mut data = String::new();
    let mut found = None;
    for line in text.lines().chain(std::iter::once("")) {
        if let Some(rest) = line.strip_prefix("data:") {
            data.push_str(rest.trim_start());
            data.push('\n');
        } else if line.is_empty() && !data.is_empty() {
            if let Ok(message) = serde_json::from_str::<Value>(data.trim()) {
                if message["id"] == json!(id) {
                    found = Some(message);
                }
            }
            data.clear();
        }
    }
    found
}

impl Run<'_> {
    /// The scenario's provider, started on first use.
    async fn provider(&mut self) -> &Provider {
        if self.provider.is_none() {
            self.provider = Some(Provider::start().await);
        }
        self.sync_provider_secrets();
        self.provider.as_ref().expect("started above")
    }

    fn started_provider(&self) -> Result<&Provider, StepError> {
        self.provider
            .as_ref()
            .ok_or_else(|| precondition("no provider has been started in this scenario"))
    }

    /// Everything the provider issued counts as a secret the scenario saw.
    pub(super) fn sync_provider_secrets(&mut self) {
        let issued = self
            .provider
            .as_ref()
            .map(Provider::secrets)
            .unwrap_or_default();
        for secret in issued {
            self.keep_secret(&secret);
        }
    }

    fn created(&self, name: &str) -> Result<CreatedConnection, StepError> {
        self.connections.get(name).cloned().ok_or_else(|| {
            precondition(format!(
                "no connection `{name}` was created in this scenario"
            ))
        })
    }

    /// `conn.<name>.id`, `conn.<name>.resource` and `provider.url`, for `${…}`.
    pub(super) fn connection_vars(&self) -> (Value, Value) {
        let prefix = &self.profile.connections.resource_prefix;
        let conn: Map<String, Value> = self
            .connections
            .iter()
            .map(|(name, c)| {
                (
                    name.clone(),
                    json!({"id": c.id, "resource": format!("{prefix}{}", c.id)}),
                )
            })
            .collect();
        let provider = json!({"url": self.provider.as_ref().map(Provider::uri)});
        (Value::Object(conn), provider)
    }

    /// Which token a connection token is, as far as this scenario knows.
    fn describe_token(&self, token: &str) -> Value {
        if let Some(issued) = self.provider.as_ref().and_then(|p| p.issued(token)) {
            return serde_json::to_value(issued).unwrap_or_default();
        }
        if let Some(owner) = self.api_keys.get(token) {
            return json!({"label": "api_key", "owner": owner, "source": "stored"});
        }
        if self.is_hub_token(token) {
            return json!({"label": "hub"});
        }
        json!({"label": "foreign"})
    }

    /// A token the target issued: one the scenario received, or a JWT of its issuer.
    fn is_hub_token(&self, token: &str) -> bool {
        self.last_token.as_deref() == Some(token)
            || unverified_claims(token)
                .is_some_and(|c| c["iss"].as_str() == Some(self.profile.issuer.as_str()))
    }

    pub(super) async fn create_connection(
        &mut self,
        name: &str,
        kind: ConnectionKind,
        scopes: &[String],
        allowed_clients: &[String],
        agenda: bool,
        set: &std::collections::BTreeMap<String, toml::Value>,
    ) -> Result<Value, StepError> {
        let provider = self.provider().await;
        let (authorize, token, api, client_id, client_secret) = (
            provider.authorization_endpoint(),
            provider.token_endpoint(),
            provider.api_base_url(),
            provider.client_id.clone(),
            provider.client_secret.clone(),
        );
        let id = match self.connections.get(name) {
            Some(existing) => existing.id.clone(),
            None if agenda => self.profile.connections.agenda_connection.clone(),
            None => fresh_id(name),
        };
        let allowed: Vec<String> = allowed_clients
            .iter()
            .map(|c| self.text(c))
            .collect::<Result<_, _>>()?;
        let mut body = match kind {
            ConnectionKind::Oauth2 => json!({
                "name": format!("conform {name}"),
                "type": "oauth2",
                "authorization_endpoint": authorize,
                "token_endpoint": token,
                "api_base_url": api,
                "client_id": client_id,
                "client_secret": client_secret,
                "scopes": scopes,
                "allowed_clients": allowed,
            }),
            ConnectionKind::ApiKey => json!({
                "name": format!("conform {name}"),
                "type": "api_key",
                "api_base_url": api,
                "allowed_clients": allowed,
            }),
        };
        for (field, value) in set {
            body[field] = self.admin_json(value)?;
        }
        let path = format!("/connections/{id}");
        // The Agenda connection is shared: remember it, to put it back at teardown.
        let previous = if agenda && !self.connections.values().any(|c| c.agenda) {
            let before = self.admin(reqwest::Method::GET, &path, None).await?;
            (before.status == 200).then(|| before.json()).flatten()
        } else {
            None
        };
        let response = self.admin(reqwest::Method::PUT, &path, Some(body)).await?;
        let mut facts = Self::admin_facts(&response);
        facts["id"] = json!(id);
        if matches!(response.status, 200 | 201) {
            let previous = previous.or_else(|| {
                self.connections
                    .values()
                    .find(|c| c.agenda)
                    .and_then(|c| c.previous.clone())
            });
            self.connections.insert(
                name.to_owned(),
                CreatedConnection {
                    id,
                    kind,
                    scopes: scopes.to_vec(),
                    agenda,
                    previous,
                },
            );
        }
        Ok(facts)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn store_connection_token(
        &mut self,
        connection: &str,
        owner: &str,
        expires_in: u64,
        no_expiry: bool,
        scopes: Option<&[String]>,
        refresh_token: bool,
    ) -> Result<Value, StepError> {
        let created = self.created(connection)?;
        let owner = self.text(owner)?;
        let owner_body = owner_json(&owner)?;
        let (body, label) = match created.kind {
            ConnectionKind::ApiKey => {
                let key = format!("conform-key-{}", crate::random_token());
                self.keep_secret(&key);
                self.api_keys.insert(key.clone(), owner.clone());
                (
                    json!({"owner": owner_body, "api_key": key}),
                    "api_key".to_owned(),
                )
            }
            ConnectionKind::Oauth2 => {
                let scopes = scopes.map(<[String]>::to_vec).unwrap_or(created.scopes);
                let (access, refresh) = self.provider().await.mint(&owner, &scopes, refresh_token);
                let label = self
                    .started_provider()?
                    .issued(&access)
                    .map(|i| i.label)
                    .unwrap_or_default();
                let mut body =
                    json!({"owner": owner_body, "access_token": access, "scopes": scopes});
                if let Some(refresh) = refresh {
                    body["refresh_token"] = json!(refresh);
                }
                if !no_expiry {
                    body["expires_in"] = json!(expires_in);
                }
                (body, label)
            }
        };
        self.sync_provider_secrets();
        let response = self
            .admin(
                reqwest::Method::PUT,
                &format!("/connections/{}/tokens", created.id),
                Some(body),
            )
            .await?;
        let mut facts = Self::admin_facts(&response);
        facts["label"] = json!(label);
        if response.status == 200 {
            self.stored_owners.push((created.id, owner));
        }
        Ok(facts)
    }

    pub(super) async fn connection_token(
        &mut self,
        connection: &str,
        role: &str,
        scope: Option<&str>,
        concurrent: u32,
    ) -> Result<Value, StepError> {
        let created = self.created(connection)?;
        let client = self.confidential(role)?;
        let subject = self
            .last_token
            .clone()
            .ok_or_else(|| precondition("no access token has been received to exchange"))?;
        let endpoint = self.endpoint("token_endpoint").await?;
        let settings = &self.profile.connections;
        let bound =
            Duration::from_secs(settings.provider_timeout_secs + settings.timeout_margin_secs);
        let resource = format!("{}{}", settings.resource_prefix, created.id);
        let scope = scope.map(|s| self.text(s)).transpose()?;
        let seen_before = self
            .provider
            .as_ref()
            .map(|p| p.token_requests().len())
            .unwrap_or_default();
        let mut requests = Vec::new();
        for _ in 0..concurrent.max(1) {
            let secret = if client.auth_method == "private_key_jwt" {
                self.assertion(&client, &endpoint, crate::scenario::AssertionVariant::Valid)?
            } else {
                client.client_secret.clone()
            };
            let mut form = vec![
                ("grant_type", TOKEN_EXCHANGE.to_owned()),
                ("subject_token", subject.clone()),
                ("subject_token_type", ACCESS_TOKEN_TYPE.to_owned()),
                ("resource", resource.clone()),
            ];
            if let Some(scope) = &scope {
                form.push(("scope", scope.clone()));
            }
            let request = self
                .confidential_post(&self.http, &endpoint, &client, &secret, form)
                .timeout(bound);
            requests.push(request);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (i, request) in requests.into_iter().enumerate() {
            let http = self.http.clone();
            tasks.spawn(async move {
                let started = Instant::now();
                let result = http.send(request).await;
                (i, result, started.elapsed())
            });
        }
        let mut answers = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            answers.push(joined.map_err(|e| precondition(format!("a request task failed: {e}")))?);
        }
        answers.sort_by_key(|(i, _, _)| *i);

        let mut each = Vec::new();
        for (_, result, elapsed) in answers {
            let mut facts = match result {
                Ok(response) => {
                    let body = response.json();
                    if let Some(token) = body.as_ref().and_then(|b| b["access_token"].as_str()) {
                        self.keep_secret(token);
                    }
                    let token = body
                        .as_ref()
                        .and_then(|b| b["access_token"].as_str())
                        .map(|t| self.describe_token(t));
                    json!({
                        "status": response.status,
                        "error": body.as_ref().and_then(|b| b.get("error")).cloned(),
                        "body": body,
                        "headers": {"cache_control": response.header("cache-control")},
                        "token": token,
                        "timed_out": false,
                    })
                }
                Err(e) if e.message.starts_with("timed out") => {
                    json!({"status": null, "error": null, "timed_out": true})
                }
                Err(e) => return Err(StepError::Transport(e)),
            };
            facts["elapsed_ms"] = json!(elapsed.as_millis() as u64);
            facts["within_bound"] = json!(elapsed <= bound);
            each.push(facts);
        }

        // What the provider was asked meanwhile.
        let mode = self.provider_mode_now();
        let refreshes: Vec<crate::provider::TokenRequest> = self
            .provider
            .as_ref()
            .map(|p| p.token_requests())
            .unwrap_or_default()
            .into_iter()
            .skip(seen_before)
            .filter(|r| r.grant_type == "refresh_token")
            .collect();
        let usable = matches!(mode, TokenMode::Normal | TokenMode::NoExpiresIn);
        let refresh_outcomes: Vec<&str> = refreshes
            .iter()
            .map(|r| {
                if r.status == 200 && usable {
                    "refreshed"
                } else {
                    "failed"
                }
            })
            .collect();
        self.sync_provider_secrets();

        let statuses: Vec<Value> = each.iter().map(|f| f["status"].clone()).collect();
        let mut facts = if each.len() == 1 {
            each.remove(0)
        } else {
            let first_bad = each.iter().find(|f| f["status"] != json!(200));
            let mut distinct: Vec<String> = each
                .iter()
                .filter_map(|f| f["body"]["access_token"].as_str().map(str::to_owned))
                .collect();
            distinct.sort();
            distinct.dedup();
            let mut owners: Vec<Value> = each.iter().map(|f| f["token"]["owner"].clone()).collect();
            owners.dedup();
            json!({
                "status": first_bad.map_or(json!(200), |f| f["status"].clone()),
                "error": first_bad.map_or(Value::Null, |f| f["error"].clone()),
                "ok_count": each.iter().filter(|f| f["status"] == json!(200)).count(),
                "distinct_tokens": distinct.len(),
                "owners": owners,
                "tokens": each.iter().map(|f| f["token"].clone()).collect::<Vec<_>>(),
                "timed_out": each.iter().any(|f| f["timed_out"] == json!(true)),
            })
        };
        facts["statuses"] = json!(statuses);
        facts["refreshes"] = json!(refreshes.len());
        facts["refresh_presented"] = json!(refreshes
            .iter()
            .map(|r| r.refresh_token.clone())
            .collect::<Vec<_>>());
        facts["refresh_scopes"] = json!(refreshes
            .iter()
            .map(|r| r.scope.clone())
            .collect::<Vec<_>>());
        facts["refresh_outcomes"] = json!(refresh_outcomes);
        Ok(facts)
    }

    fn provider_mode_now(&self) -> TokenMode {
        self.provider_mode.unwrap_or_default()
    }

    pub(super) async fn set_provider_mode(
        &mut self,
        mode: TokenMode,
        expires_in: u64,
    ) -> Result<Value, StepError> {
        let settings = &self.profile.connections;
        // Slow enough that only a target without a bound still waits for it.
        let slow = settings.provider_timeout_secs + settings.timeout_margin_secs + 5;
        self.provider().await.set_mode(mode, expires_in, slow);
        self.provider_mode = Some(mode);
        Ok(json!({"mode": mode, "expires_in": expires_in, "slow_secs": slow}))
    }

    pub(super) fn provider_log(&self) -> Result<Value, StepError> {
        let provider = self.started_provider()?;
        let requests = provider.token_requests();
        let refreshes: Vec<_> = requests
            .iter()
            .filter(|r| r.grant_type == "refresh_token")
            .collect();
        let api = provider.api_log();
        let api_tokens: Vec<Value> = api
            .iter()
            .map(|(bearer, described)| match bearer {
                Some(b) if described["label"] == "foreign" && self.is_hub_token(b) => {
                    json!({"label": "hub"})
                }
                _ => described.clone(),
            })
            .collect();
        Ok(json!({
            "token_requests": requests.len(),
            "refresh_grants": refreshes.len(),
            "refresh_presented": refreshes.iter().map(|r| r.refresh_token.clone()).collect::<Vec<_>>(),
            "code_grants": requests.iter().filter(|r| r.grant_type == "authorization_code").count(),
            "authorize_requests": provider.authorize_count(),
            "api_calls": api.len(),
            "api_tokens": api_tokens,
            "api_saw_hub_token": api_tokens.iter().any(|t| t["label"] == "hub"),
            "api_saw_vault_token": api_tokens.iter().any(|t| t["source"].is_string()),
        }))
    }

    pub(super) async fn get_connection(
        &mut self,
        connection: &str,
        owner: Option<&str>,
    ) -> Result<Value, StepError> {
        let created = self.created(connection)?;
        let response = self
            .admin(
                reqwest::Method::GET,
                &format!("/connections/{}", created.id),
                None,
            )
            .await?;
        let mut facts = Self::admin_facts(&response);
        let tokens: Map<String, Value> = facts["body"]["tokens"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| {
                let (kind, id) = t["owner"].as_object()?.iter().next()?;
                Some((format!("{kind}:{}", id.as_str()?), t.clone()))
            })
            .collect();
        if let Some(owner) = owner {
            facts["token"] = tokens
                .get(&self.text(owner)?)
                .cloned()
                .unwrap_or(Value::Null);
        }
        facts["tokens"] = Value::Object(tokens);
        let text = response.text();
        facts["mentions_secret"] = json!(self
            .secrets
            .iter()
            .filter(|s| s.len() >= 8)
            .any(|s| text.contains(s.as_str())));
        Ok(facts)
    }

    /// The user connects in a browser: the target's login page, the
    /// provider's authorization endpoint (which approves at once), the
    /// target's callback.
    pub(super) async fn connect(
        &mut self,
        connection: &str,
        user: Option<&str>,
        forge_state: bool,
    ) -> Result<Value, StepError> {
        let created = self.created(connection)?;
        let template = self
            .profile
            .connections
            .connect_url
            .clone()
            .ok_or_else(|| precondition("the profile has no connections.connect_url"))?;
        let start = template.replace("{connection}", &created.id);
        let hub_origin = Url::parse(&start)
            .map_err(|e| precondition(format!("connect_url `{start}`: {e}")))?
            .origin();
        let provider_origin = Url::parse(&self.provider().await.uri())
            .map_err(|e| precondition(e.to_string()))?
            .origin();
        let mut vars = self.vars();
        if let Some(name) = user {
            let other = self
                .profile
                .users
                .get(name)
                .ok_or_else(|| precondition(format!("the profile has no [users.{name}]")))?;
            vars["user"]["username"] = json!(other.username);
            vars["user"]["password"] = json!(other.password);
        }

        // At the target: sign in until the browser is sent to the provider.
        let mut current = start;
        let mut response = self.http.send(self.http.get(&current)).await?;
        let mut to_provider = None;
        for _ in 0..8 {
            let next = match redirect_location(&response, &current) {
                Some(location) => Some(location),
                None if response.status == 200 => {
                    match user::act(
                        &self.http,
                        self.profile,
                        &vars,
                        &current,
                        &response,
                        false,
                        &[],
                    )
                    .await?
                    {
                        Move::GoTo(location) => Some(location),
                        Move::Submitted { response: next, .. } => {
                            response = next;
                            continue;
                        }
                    }
                }
                None => None,
            };
            let Some(location) = next else {
                return Ok(json!({
                    "outcome": "not_redirected",
                    "status": response.status,
                    "page": current,
                    "error": response.json().and_then(|b| b.get("error").cloned()),
                }));
            };
            let target = Url::parse(&location).map_err(|e| precondition(e.to_string()))?;
            if target.origin() == provider_origin {
                to_provider = Some(location);
                break;
            }
            if target.origin() != hub_origin {
                return Ok(json!({"outcome": "left_elsewhere", "redirected_to": location}));
            }
            current = location;
            response = self.http.send(self.http.get(&current)).await?;
        }
        let to_provider = to_provider.ok_or_else(|| {
            precondition("the connect flow did not reach the provider within 8 pages")
        })?;

        // At the provider: it records the request and approves at once.
        let at_provider = self.http.send(self.http.get(&to_provider)).await?;
        let sent = self
            .started_provider()?
            .last_authorize()
            .unwrap_or_default();
        let mut facts = json!({
            "authorize": sent,
            "pkce_s256": sent.get("code_challenge_method").map(String::as_str) == Some("S256")
                && sent.get("code_challenge").is_some_and(|c| !c.is_empty()),
            "state_sent": sent.get("state").is_some_and(|s| !s.is_empty()),
        });
        let Some(back) = redirect_location(&at_provider, &to_provider) else {
            facts["outcome"] = json!("provider_refused");
            facts["status"] = json!(at_provider.status);
            return Ok(facts);
        };
        let mut callback = Url::parse(&back).map_err(|e| precondition(e.to_string()))?;
        if forge_state {
            let forged = crate::random_token();
            let pairs: Vec<(String, String)> = callback
                .query_pairs()
                .into_owned()
                .map(|(k, v)| {
                    if k == "state" {
                        (k, forged.clone())
                    } else {
                        (k, v)
                    }
                })
                .collect();
            callback.query_pairs_mut().clear().extend_pairs(pairs);
        }
        self.sync_provider_secrets();

        // Back at the target's callback.
        let seen_before = self.started_provider()?.token_requests().len();
        let mut current = callback.to_string();
        let mut response = self.http.send(self.http.get(&current)).await?;
        let callback_status = response.status;
        for _ in 0..4 {
            let Some(location) = redirect_location(&response, &current) else {
                break;
            };
            let target = Url::parse(&location).map_err(|e| precondition(e.to_string()))?;
            if target.origin() != hub_origin {
                break;
            }
            current = location;
            response = self.http.send(self.http.get(&current)).await?;
        }
        let redeemed: Vec<_> = self
            .started_provider()?
            .token_requests()
            .into_iter()
            .skip(seen_before)
            .filter(|r| r.grant_type == "authorization_code")
            .collect();
        self.sync_provider_secrets();
        facts["outcome"] = json!("returned");
        facts["status"] = json!(callback_status);
        facts["final_status"] = json!(response.status);
        facts["refused"] = json!((400..500).contains(&callback_status));
        facts["code_redeemed"] = json!(redeemed.iter().any(|r| r.status == 200));
        facts["verifier_matched"] =
            json!(redeemed.iter().any(|r| r.verifier_matched == Some(true)));
        facts["error"] = json!(response.json().and_then(|b| b.get("error").cloned()));
        Ok(facts)
    }

    /// An MCP client over Streamable HTTP (MCP 2025-11-25): initialize,
    /// notifications/initialized, then tools/call, with the session id if the
    /// server gives one; answers may be JSON or SSE.
    pub(super) async fn mcp_tool(
        &mut self,
        resource: &str,
        tool: &str,
        arguments: &std::collections::BTreeMap<String, toml::Value>,
    ) -> Result<Value, StepError> {
        let url = self
            .resource_url(resource)?
            .ok_or_else(|| precondition("mcp_tool needs a resource"))?;
        let token = self
            .last_token
            .clone()
            .ok_or_else(|| precondition("no access token has been obtained yet"))?;
        let tool = self.text(tool)?;
        let mut args = Map::new();
        for (key, value) in arguments {
            args.insert(key.clone(), self.admin_json(value)?);
        }
        let mut session: Option<String> = None;
        let messages = [
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "conform", "version": env!("CARGO_PKG_VERSION")}
            }}),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": args}}),
        ];
        let mut last = None;
        for (stage, message) in ["initialize", "notifications/initialized", "tools/call"]
            .into_iter()
            .zip(messages)
        {
            let mut request = self
                .http
                .post(&url)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-11-25")
                .bearer_auth(&token)
                .json(&message);
            if let Some(id) = &session {
                request = request.header("mcp-session-id", id);
            }
            let response = self.http.send(request).await?;
            if stage == "initialize" {
                session = response.header("mcp-session-id").map(str::to_owned);
            }
            let failed = match stage {
                "notifications/initialized" => !(200..300).contains(&response.status),
                _ => response.status != 200,
            };
            last = Some((stage, response));
            if failed {
                break;
            }
        }
        let (stage, response) = last.ok_or_else(|| precondition("nothing was sent"))?;
        let challenge = response
            .header("www-authenticate")
            .map(crate::challenge::parse);
        let message = if stage == "tools/call" {
            rpc_message(&response, 2)
        } else {
            None
        };
        let result = message.as_ref().and_then(|m| m.get("result")).cloned();
        let text: String = result
            .as_ref()
            .and_then(|r| r["content"].as_array())
            .map(|items| {
                items
                    .iter()
                    .filter_map(|c| c["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        Ok(json!({
            "stage": stage,
            "status": response.status,
            "www_authenticate": challenge,
            "error": challenge.as_ref().and_then(|c| c.pointer("/params/error")).cloned(),
            "result": result,
            "rpc_error": message.as_ref().and_then(|m| m.get("error")).cloned(),
            "is_error": result.as_ref().and_then(|r| r["isError"].as_bool()).unwrap_or(false),
            "text": text,
            "session": session.is_some(),
        }))
    }

    /// The audit events the connection actions imply (docs/connections.md, Audit events).
    pub(super) fn note_connection_audit(&mut self, action: &Action, facts: &Value) {
        use crate::audit::AuditExpectation;
        let status = facts["status"].as_u64().unwrap_or(0);
        let ok = (200..300).contains(&status);
        // Events about a delegated token name the client the subject token was issued to.
        let subject_client = self
            .token_claims
            .last()
            .and_then(|c| c["client_id"].as_str())
            .map(str::to_owned);
        let mut expect = |because: String,
                          types: Vec<&'static str>,
                          client_id: Option<String>,
                          outcome: &'static str| {
            self.audit_expectations.push(AuditExpectation {
                because,
                types,
                client_id,
                outcome,
                needs_act: false,
                same_flow_as: None,
            });
        };
        match action {
            Action::CreateConnection { name, .. } if ok => {
                let kind = if status == 201 {
                    "connection.created"
                } else {
                    "connection.updated"
                };
                expect(
                    format!("putting connection `{name}`"),
                    vec![kind],
                    None,
                    "success",
                );
            }
            Action::StoreConnectionToken { owner, .. } if ok => {
                expect(
                    format!("storing a token for `{owner}`"),
                    vec!["connection.token.stored"],
                    None,
                    "success",
                );
            }
            Action::ConnectionToken { client, .. } => {
                for (i, s) in facts["statuses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    if s == &json!(200) {
                        expect(
                            format!(
                                "the connection token handed to `{client}` (request {})",
                                i + 1
                            ),
                            vec!["connection.token.issued"],
                            subject_client.clone(),
                            "success",
                        );
                    } else {
                        expect(
                            format!(
                                "the connection token refused to `{client}` (request {})",
                                i + 1
                            ),
                            vec!["connection.token.denied"],
                            None,
                            "failure",
                        );
                    }
                }
                for outcome in facts["refresh_outcomes"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                {
                    match outcome.as_str() {
                        Some("refreshed") => expect(
                            "a refresh at the provider".into(),
                            vec!["connection.refreshed"],
                            None,
                            "success",
                        ),
                        _ => expect(
                            "a refresh the provider failed".into(),
                            vec!["connection.refresh_failed"],
                            None,
                            "failure",
                        ),
                    }
                }
            }
            Action::Connect { connection, .. } if facts["code_redeemed"] == json!(true) && ok => {
                expect(
                    format!("connecting `{connection}`"),
                    vec!["connection.token.stored"],
                    None,
                    "success",
                );
            }
            Action::McpTool { tool, .. } if facts["stage"] == "tools/call" && status == 200 => {
                let failed = facts["is_error"] == json!(true);
                expect(
                    format!("running the tool `{tool}`"),
                    vec!["tool.executed"],
                    subject_client.clone(),
                    if failed { "failure" } else { "success" },
                );
                if !failed {
                    expect(
                        format!("the connection token `{tool}` used"),
                        vec!["connection.token.issued"],
                        subject_client,
                        "success",
                    );
                }
            }
            _ => {}
        }
    }

    /// Deletes the connections this scenario created; for the shared Agenda
    /// connection, deletes the tokens it stored and puts the definition back
    /// (without its client secret, which the admin API never shows).
    pub(super) async fn connection_teardown(&mut self) {
        let created: Vec<CreatedConnection> = std::mem::take(&mut self.connections)
            .into_values()
            .collect();
        let stored = std::mem::take(&mut self.stored_owners);
        for connection in created {
            let path = format!("/connections/{}", connection.id);
            if !connection.agenda {
                let _ = self.admin(reqwest::Method::DELETE, &path, None).await;
                continue;
            }
            for (_, owner) in stored.iter().filter(|(id, _)| *id == connection.id) {
                let query: String =
                    url::form_urlencoded::byte_serialize(owner.as_bytes()).collect();
                let _ = self
                    .admin(
                        reqwest::Method::DELETE,
                        &format!("{path}/tokens?owner={query}"),
                        None,
                    )
                    .await;
            }
            if let Some(previous) = connection.previous.as_ref().and_then(Value::as_object) {
                let definition: Map<String, Value> = previous
                    .iter()
                    .filter(|(k, v)| DEFINITION_FIELDS.contains(&k.as_str()) && !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let _ = self
                    .admin(reqwest::Method::PUT, &path, Some(Value::Object(definition)))
                    .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(content_type: &str, body: &str) -> crate::http::Response {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "content-type",
            content_type.parse().expect("a header value"),
        );
        crate::http::Response {
            status: 200,
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn finds_the_answer_in_json_or_in_server_sent_events() {
        let json = response(
            "application/json",
            r#"{"jsonrpc":"2.0","id":2,"result":{"isError":false}}"#,
        );
        assert_eq!(
            rpc_message(&json, 2).map(|m| m["result"]["isError"].clone()),
            Some(json!(false))
        );
        let sse = response(
            "text/event-stream",
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n\
             id: 7\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\ndata: \"result\":{\"content\":[]}}\n\n",
        );
        assert_eq!(
            rpc_message(&sse, 2).map(|m| m["result"].clone()),
            Some(json!({"content": []}))
        );
        assert_eq!(rpc_message(&sse, 3), None);
    }

    #[test]
    fn owners_and_ids() {
        assert_eq!(
            owner_json("user:alice").ok(),
            Some(json!({"user": "alice"}))
        );
        assert!(owner_json("group:x").is_err() && owner_json("user:").is_err());
        let id = fresh_id("My Cal_1");
        assert!(id.starts_with("conform-mycal1-") && id.len() == "conform-mycal1-".len() + 8);
    }
}
