//! Shared helpers: an HTTP client, the mock provider's OAuth flows driven as
//! the hub would, and the fake hub (wiremock JWKS, ES256 token signing, audit)
//! with the Agenda server mounted under it.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use demo::agenda::{AgendaConfig, AgendaFaults};
use demo::provider::{ProviderConfig, RunningProvider};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ISSUER_PATH: &str = "/oauth";
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/oauth/connections/callback";
pub const PROTOCOL: &str = "2025-11-25";

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ------------------------------------------------------------ provider helpers

pub async fn provider() -> RunningProvider {
    demo::provider::spawn("127.0.0.1:0".parse().unwrap(), ProviderConfig::default())
        .await
        .unwrap()
}

fn challenge_for(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

pub fn query_param(location: &str, name: &str) -> Option<String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The authorize URL with PKCE for `verifier`; `extra` overrides or adds parameters.
pub fn authorize_url(
    provider: &RunningProvider,
    scope: &str,
    verifier: &str,
    extra: &[(&str, &str)],
) -> String {
    let challenge = challenge_for(verifier);
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", "hub-demo"),
        ("redirect_uri", REDIRECT_URI),
        ("scope", scope),
        ("state", "st-123"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    for (key, value) in extra {
        params.retain(|(k, _)| k != key);
        if !value.is_empty() {
            params.push((key, value));
        }
    }
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("{}?{query}", provider.authorization_endpoint())
}

/// Shows the approve page and answers it; returns the redirect `Location`.
pub async fn approve(
    client: &reqwest::Client,
    provider: &RunningProvider,
    scope: &str,
    verifier: &str,
    decision: &str,
) -> String {
    let page = client
        .get(authorize_url(provider, scope, verifier, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let ticket = html
        .split("name=\"ticket\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the approve page carries a ticket")
        .to_owned();
    let answer = client
        .post(provider.authorization_endpoint())
        .form(&[
            ("ticket", ticket.as_str()),
            ("account", "alice"),
            ("decision", decision),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 302);
    answer.headers()["location"].to_str().unwrap().to_owned()
}

pub async fn token_request(
    client: &reqwest::Client,
    provider: &RunningProvider,
    form: &[(&str, &str)],
) -> reqwest::Response {
    client
        .post(provider.token_endpoint())
        .basic_auth("hub-demo", Some("hub-demo-secret"))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Redeems an authorization `code` at the token endpoint (client authenticated by Basic).
pub async fn redeem_code(
    client: &reqwest::Client,
    provider: &RunningProvider,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> reqwest::Response {
    token_request(
        client,
        provider,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// A provider token for `alice` through the whole code flow.
pub async fn provider_tokens(
    client: &reqwest::Client,
    provider: &RunningProvider,
    scope: &str,
) -> Value {
    let verifier = "verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
    let location = approve(client, provider, scope, verifier, "allow").await;
    let code = query_param(&location, "code").unwrap();
    let response = redeem_code(client, provider, &code, REDIRECT_URI, verifier).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

pub async fn list_events(
    client: &reqwest::Client,
    provider: &RunningProvider,
    token: &str,
) -> reqwest::Response {
    client
        .get(format!("{}/calendar/events", provider.api_base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

pub async fn add_event(
    client: &reqwest::Client,
    provider: &RunningProvider,
    token: &str,
    title: &str,
) -> reqwest::Response {
    client
        .post(format!("{}/calendar/events", provider.api_base_url()))
        .bearer_auth(token)
        .json(&json!({"title": title, "start": "2026-03-01T09:00:00Z"}))
        .send()
        .await
        .unwrap()
}

pub fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {value}"))
}

/// The `WWW-Authenticate` challenge of a response.
pub fn www_authenticate(response: &reqwest::Response) -> String {
    response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned()
}

// ------------------------------------------------------------ agenda helpers

/// An ES256 key the fake hub signs with, and its JWK Set.
pub struct HubKey {
    kid: String,
    key: EncodingKey,
    jwks: Value,
}

pub fn hub_key(kid: &str) -> HubKey {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
    let key = EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    HubKey {
        kid: kid.to_owned(),
        key,
        jwks: json!({"keys": [jwk]}),
    }
}

impl HubKey {
    pub fn mint(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

/// The fake hub, the Agenda server mounted under it, and a user token.
pub struct Setup {
    pub hub: MockServer,
    pub key: HubKey,
    pub config: AgendaConfig,
    /// The Agenda endpoint, `…/mcp/agenda`.
    pub mcp_url: String,
    _server: tokio::task::JoinHandle<()>,
}

impl Setup {
    pub fn claims(&self, scope: &str) -> Value {
        json!({
            "iss": self.config.issuer,
            "sub": "user-alice",
            "aud": [self.config.resource],
            "client_id": "mcp-inspector",
            "scope": scope,
            "iat": now(),
            "exp": now() + 300,
            "jti": format!("at-{}", rand::random::<u64>()),
            "tenant": "tenant-acme",
            "act": {"sub": "agent-planner"},
        })
    }

    pub fn token(&self, scope: &str) -> String {
        self.key.mint(&self.claims(scope))
    }

    pub async fn requests_to(&self, to: &str) -> Vec<wiremock::Request> {
        self.hub
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path() == to)
            .collect()
    }

    /// The tool-execution reports the hub received, as JSON.
    pub async fn audit_reports(&self) -> Vec<Value> {
        self.requests_to("/oauth/audit/tool-executions")
            .await
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

/// How the hub mounts the Agenda router.
#[derive(Clone, Copy)]
pub enum Mount {
    NestService,
    Nest,
}

pub async fn setup(faults: AgendaFaults, api_base_url: Option<String>, mount: Mount) -> Setup {
    let hub = MockServer::start().await;
    let key = hub_key("hub-key-1");
    Mock::given(method("GET"))
        .and(path("/oauth/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&key.jwks))
        .mount(&hub)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = format!("{}{ISSUER_PATH}", hub.uri());
    let config = AgendaConfig {
        resource: format!("{base}/mcp/agenda"),
        resource_metadata: format!("{base}/.well-known/oauth-protected-resource/mcp/agenda"),
        jwks_uri: format!("{issuer}/jwks"),
        token_endpoint: format!("{issuer}/token"),
        audit_endpoint: format!("{issuer}/audit/tool-executions"),
        introspection_endpoint: None,
        allowed_origins: Vec::new(),
        issuer,
        client_id: "mcp-agenda".into(),
        client_secret: "agenda secret/+".into(),
        connection: "demo-calendar".into(),
        api_base_url,
        faults,
    };
    let agenda = demo::agenda::router(config.clone());
    let app = match mount {
        Mount::NestService => Router::new().nest_service("/mcp/agenda", agenda),
        Mount::Nest => Router::new().nest("/mcp/agenda", agenda),
    };
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Setup {
        hub,
        key,
        mcp_url: config.resource.clone(),
        config,
        _server: server,
    }
}

/// One Streamable HTTP POST, as the module docs tell a client to send it.
pub async fn mcp(url: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
    let mut request = http()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", PROTOCOL)
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

pub fn tools_list(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"})
}

pub fn call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

/// The JSON-RPC result of a 200 `application/json` answer.
pub async fn result_of(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().await.unwrap();
    assert!(body.get("error").is_none(), "{body}");
    body["result"].clone()
}

pub fn text_of(result: &Value) -> &str {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{result}"))
}

pub fn basic(id: &str, secret: &str) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            encode(id),
            encode(secret)
        ))
    )
}

pub async fn mount_audit(hub: &MockServer, expected: u64) {
    Mock::given(method("POST"))
        .and(path("/oauth/audit/tool-executions"))
        .and(header(
            "authorization",
            basic("mcp-agenda", "agenda secret/+").as_str(),
        ))
        .respond_with(ResponseTemplate::new(204))
        .expect(expected)
        .mount(hub)
        .await;
}

/// A hub token endpoint that must not be asked: answers 500, expected never.
pub async fn forbid_token_exchange(hub: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(hub)
        .await;
}
