//! The demo parts end to end, on loopback only: the mock provider through
//! its OAuth flows, and the Agenda MCP server over real Streamable HTTP with
//! wiremock playing the hub (JWKS, token exchange, audit).

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
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ISSUER_PATH: &str = "/oauth";
const REDIRECT_URI: &str = "http://127.0.0.1:9/oauth/connections/callback";
const PROTOCOL: &str = "2025-11-25";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ------------------------------------------------------------ provider helpers

async fn provider() -> RunningProvider {
    demo::provider::spawn("127.0.0.1:0".parse().unwrap(), ProviderConfig::default())
        .await
        .unwrap()
}

fn challenge_for(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn query_param(location: &str, name: &str) -> Option<String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The authorize URL with PKCE for `verifier`; `extra` overrides or adds parameters.
fn authorize_url(
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
async fn approve(
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

async fn token_request(
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

/// A provider token for `alice` through the whole code flow.
async fn provider_tokens(
    client: &reqwest::Client,
    provider: &RunningProvider,
    scope: &str,
) -> Value {
    let verifier = "verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
    let location = approve(client, provider, scope, verifier, "allow").await;
    let code = query_param(&location, "code").unwrap();
    let response = token_request(
        client,
        provider,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn list_events(
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

async fn add_event(
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

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {value}"))
}

// ------------------------------------------------------------ provider tests

#[tokio::test]
async fn provider_code_flow_checks_pkce_and_redirect_uri() {
    let provider = provider().await;
    let client = http();

    // The approve page: who asks for what, labelled controls, no script.
    let page = client
        .get(authorize_url(
            &provider,
            "calendar.read",
            "v".repeat(43).as_str(),
            &[],
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Demo Calendar: hub-demo wants calendar.read"),
        "{page}"
    );
    assert!(page.contains("<label for=\"account\">") && page.contains("id=\"account\""));
    assert!(page.contains("value=\"demo-user\""));
    assert!(page.contains(">Allow</button>") && page.contains(">Deny</button>"));
    assert!(!page.contains("<script"));

    // PKCE is required, and only S256.
    for (extra, why) in [
        (("code_challenge", ""), "no challenge"),
        (("code_challenge_method", "plain"), "plain"),
    ] {
        let response = client
            .get(authorize_url(
                &provider,
                "calendar.read",
                &"v".repeat(43),
                &[extra],
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302, "{why}");
        let location = response.headers()["location"].to_str().unwrap();
        assert_eq!(
            query_param(location, "error").as_deref(),
            Some("invalid_request"),
            "{why}"
        );
        assert_eq!(
            query_param(location, "state").as_deref(),
            Some("st-123"),
            "{why}"
        );
    }
    // An unknown client is never redirected to.
    let unknown = client
        .get(authorize_url(
            &provider,
            "calendar.read",
            &"v".repeat(43),
            &[("client_id", "evil")],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);

    // A wrong verifier burns the code: the right one cannot use it afterwards.
    let verifier = "right-verifier-0123456789-abcdefghijklmnopqrstu";
    let location = approve(&client, &provider, "calendar.read", verifier, "allow").await;
    assert!(location.starts_with(REDIRECT_URI));
    assert_eq!(query_param(&location, "state").as_deref(), Some("st-123"));
    let code = query_param(&location, "code").unwrap();
    let redeem = |verifier: &'static str, redirect_uri: &'static str| {
        let code = code.clone();
        let client = client.clone();
        let endpoint = provider.token_endpoint();
        async move {
            client
                .post(endpoint)
                .basic_auth("hub-demo", Some("hub-demo-secret"))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", redirect_uri),
                    ("code_verifier", verifier),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let wrong = redeem(
        "wrong-verifier-0123456789-abcdefghijklmnopqrstu",
        REDIRECT_URI,
    )
    .await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(
        str_of(&wrong.json::<Value>().await.unwrap(), "error"),
        "invalid_grant"
    );
    let late = redeem(
        "right-verifier-0123456789-abcdefghijklmnopqrstu",
        REDIRECT_URI,
    )
    .await;
    assert_eq!(late.status(), 400);
    assert_eq!(
        str_of(&late.json::<Value>().await.unwrap(), "error"),
        "invalid_grant"
    );

    // A redirect_uri that differs from the authorization request's is refused.
    let location = approve(&client, &provider, "calendar.read", verifier, "allow").await;
    let other = client
        .post(provider.token_endpoint())
        .basic_auth("hub-demo", Some("hub-demo-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", query_param(&location, "code").unwrap().as_str()),
            ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        str_of(&other.json::<Value>().await.unwrap(), "error"),
        "invalid_grant"
    );

    // The right verifier on a fresh code: RFC 6749 §5.1, not cached.
    let location = approve(&client, &provider, "calendar.read", verifier, "allow").await;
    let response = token_request(
        &client,
        &provider,
        &[
            ("grant_type", "authorization_code"),
            ("code", query_param(&location, "code").unwrap().as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(str_of(&tokens, "token_type"), "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(str_of(&tokens, "scope"), "calendar.read");
    assert!(tokens["refresh_token"].is_string());
    assert_eq!(provider.stats().codes_redeemed, 1);

    // The token reads the account's seeded events.
    let events: Value = list_events(&client, &provider, str_of(&tokens, "access_token"))
        .await
        .json()
        .await
        .unwrap();
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert!(events
        .iter()
        .all(|e| e["title"].is_string() && e["start"].is_string()));
}

#[tokio::test]
async fn provider_deny_sends_access_denied_with_state() {
    let provider = provider().await;
    let location = approve(
        &http(),
        &provider,
        "calendar.read calendar.write",
        &"d".repeat(43),
        "deny",
    )
    .await;
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&location, "state").as_deref(), Some("st-123"));
    assert_eq!(query_param(&location, "code"), None);
}

#[tokio::test]
async fn provider_refresh_rotates_and_refuses_the_old_token() {
    let provider = provider().await;
    let client = http();
    let tokens = provider_tokens(&client, &provider, "calendar.read calendar.write").await;
    let first = str_of(&tokens, "refresh_token");

    let response = token_request(
        &client,
        &provider,
        &[("grant_type", "refresh_token"), ("refresh_token", first)],
    )
    .await;
    assert_eq!(response.status(), 200);
    let rotated: Value = response.json().await.unwrap();
    let second = str_of(&rotated, "refresh_token");
    assert_ne!(first, second);
    assert_eq!(str_of(&rotated, "scope"), "calendar.read calendar.write");
    assert_eq!(
        list_events(&client, &provider, str_of(&rotated, "access_token"))
            .await
            .status(),
        200
    );

    // The old refresh token is spent.
    let reused = token_request(
        &client,
        &provider,
        &[("grant_type", "refresh_token"), ("refresh_token", first)],
    )
    .await;
    assert_eq!(reused.status(), 400);
    assert_eq!(
        str_of(&reused.json::<Value>().await.unwrap(), "error"),
        "invalid_grant"
    );
    // The new one works, once.
    let again = token_request(
        &client,
        &provider,
        &[("grant_type", "refresh_token"), ("refresh_token", second)],
    )
    .await;
    assert_eq!(again.status(), 200);
    assert_eq!(provider.stats().refreshes, 2);

    // Client authentication is required, by Basic or in the body.
    let anonymous = client
        .post(provider.token_endpoint())
        .form(&[("grant_type", "refresh_token"), ("refresh_token", second)])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        str_of(&anonymous.json::<Value>().await.unwrap(), "error"),
        "invalid_client"
    );
    let wrong_secret = client
        .post(provider.token_endpoint())
        .basic_auth("hub-demo", Some("nope"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", second)])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_secret.status(), 401);
    assert!(wrong_secret.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
}

#[tokio::test]
async fn provider_refresh_narrows_within_the_grant() {
    let provider = provider().await;
    let client = http();
    let tokens = provider_tokens(&client, &provider, "calendar.read calendar.write").await;

    let response = token_request(
        &client,
        &provider,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", str_of(&tokens, "refresh_token")),
            ("client_id", "hub-demo"),
            ("scope", "calendar.read"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    let narrow: Value = response.json().await.unwrap();
    assert_eq!(str_of(&narrow, "scope"), "calendar.read");
    let narrow_token = str_of(&narrow, "access_token");
    assert_eq!(
        list_events(&client, &provider, narrow_token).await.status(),
        200
    );
    let refused = add_event(&client, &provider, narrow_token, "Nope").await;
    assert_eq!(refused.status(), 403);
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"calendar.write\""),
        "{challenge}"
    );

    // The rotated refresh token still carries the whole grant…
    let wide = token_request(
        &client,
        &provider,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", str_of(&narrow, "refresh_token")),
            ("scope", "calendar.write"),
        ],
    )
    .await;
    assert_eq!(wide.status(), 200);
    let wide: Value = wide.json().await.unwrap();
    assert_eq!(
        add_event(&client, &provider, str_of(&wide, "access_token"), "Lunch")
            .await
            .status(),
        201
    );
    // …and nothing beyond it; a refused request leaves the refresh token usable.
    let beyond = token_request(
        &client,
        &provider,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", str_of(&wide, "refresh_token")),
            ("scope", "calendar.read calendar.admin"),
        ],
    )
    .await;
    assert_eq!(beyond.status(), 400);
    assert_eq!(
        str_of(&beyond.json::<Value>().await.unwrap(), "error"),
        "invalid_scope"
    );
    let still = token_request(
        &client,
        &provider,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", str_of(&wide, "refresh_token")),
        ],
    )
    .await;
    assert_eq!(still.status(), 200);
}

#[tokio::test]
async fn provider_api_wants_a_known_token_and_keeps_events_per_account() {
    let provider = provider().await;
    let client = http();
    let unknown = list_events(&client, &provider, "dcal_at_not-a-token").await;
    assert_eq!(unknown.status(), 401);
    let challenge = unknown.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
        "{challenge}"
    );
    let none = client
        .get(format!("{}/calendar/events", provider.api_base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    assert!(!none.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error="));

    let tokens = provider_tokens(&client, &provider, "calendar.write").await;
    let token = str_of(&tokens, "access_token");
    let created = add_event(&client, &provider, token, "Piano lesson").await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(str_of(&created, "title"), "Piano lesson");
    let events: Value = list_events(&client, &provider, token)
        .await
        .json()
        .await
        .unwrap();
    let titles: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| str_of(e, "title"))
        .collect();
    assert_eq!(titles.len(), 4, "{titles:?}");
    assert_eq!(titles.last(), Some(&"Piano lesson"));
    let stats = provider.stats();
    assert_eq!((stats.api_authorized, stats.api_refused), (2, 2));
}

// ------------------------------------------------------------ agenda helpers

/// An ES256 key the fake hub signs with, and its JWK Set.
struct HubKey {
    kid: String,
    key: EncodingKey,
    jwks: Value,
}

fn hub_key(kid: &str) -> HubKey {
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
    fn mint(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

/// The fake hub, the Agenda server mounted under it, and a user token.
struct Setup {
    hub: MockServer,
    key: HubKey,
    config: AgendaConfig,
    /// The Agenda endpoint, `…/mcp/agenda`.
    mcp_url: String,
    _server: tokio::task::JoinHandle<()>,
}

impl Setup {
    fn claims(&self, scope: &str) -> Value {
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

    fn token(&self, scope: &str) -> String {
        self.key.mint(&self.claims(scope))
    }

    async fn requests_to(&self, to: &str) -> Vec<wiremock::Request> {
        self.hub
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path() == to)
            .collect()
    }
}

/// How the hub mounts the Agenda router.
#[derive(Clone, Copy)]
enum Mount {
    NestService,
    Nest,
}

async fn setup(faults: AgendaFaults, api_base_url: Option<String>, mount: Mount) -> Setup {
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
async fn mcp(url: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
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

fn call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

/// The JSON-RPC result of a 200 `application/json` answer.
async fn result_of(response: reqwest::Response) -> Value {
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

fn text_of(result: &Value) -> &str {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{result}"))
}

fn basic(id: &str, secret: &str) -> String {
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

async fn mount_audit(hub: &MockServer, expected: u64) {
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

// ------------------------------------------------------------ agenda tests

#[tokio::test]
async fn agenda_challenges_a_request_without_a_token() {
    let setup = setup(AgendaFaults::default(), None, Mount::NestService).await;
    let response = mcp(
        &setup.mcp_url,
        None,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{}\"",
            setup.config.resource_metadata
        )),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"agenda.read agenda.write\""),
        "{challenge}"
    );
    assert!(!challenge.contains("error="), "{challenge}");
    assert!(response.json::<Value>().await.unwrap()["error"].is_string());
    // Every method is protected, not only POST.
    let get = http().get(&setup.mcp_url).send().await.unwrap();
    assert_eq!(get.status(), 401);
}

#[tokio::test]
async fn agenda_refuses_tokens_for_another_audience_or_from_another_key() {
    let setup = setup(AgendaFaults::default(), None, Mount::NestService).await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let expect_invalid = |response: reqwest::Response, why: &'static str| async move {
        assert_eq!(response.status(), 401, "{why}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{why}: {challenge}"
        );
        assert!(
            challenge.contains("resource_metadata=\""),
            "{why}: {challenge}"
        );
        assert_eq!(
            str_of(&response.json::<Value>().await.unwrap(), "error"),
            "invalid_token",
            "{why}"
        );
    };

    let mut claims = setup.claims("agenda.read");
    claims["aud"] = json!("http://127.0.0.1:1/mcp/other");
    expect_invalid(
        mcp(&setup.mcp_url, Some(&setup.key.mint(&claims)), &list).await,
        "aud",
    )
    .await;

    let mut claims = setup.claims("agenda.read");
    claims["iss"] = json!("http://127.0.0.1:1/oauth");
    expect_invalid(
        mcp(&setup.mcp_url, Some(&setup.key.mint(&claims)), &list).await,
        "iss",
    )
    .await;

    let mut claims = setup.claims("agenda.read");
    claims["exp"] = json!(now() - 5);
    expect_invalid(
        mcp(&setup.mcp_url, Some(&setup.key.mint(&claims)), &list).await,
        "exp",
    )
    .await;

    // A key the hub never published: the JWKS is fetched again once, in vain.
    let rogue = hub_key("rogue");
    expect_invalid(
        mcp(
            &setup.mcp_url,
            Some(&rogue.mint(&setup.claims("agenda.read"))),
            &list,
        )
        .await,
        "kid",
    )
    .await;
    assert_eq!(setup.requests_to("/oauth/jwks").await.len(), 2);

    // A good token passes, on the cached keys.
    let ok = mcp(&setup.mcp_url, Some(&setup.token("agenda.read")), &list).await;
    let tools = result_of(ok).await;
    assert_eq!(tools["tools"].as_array().unwrap().len(), 2);
    assert_eq!(setup.requests_to("/oauth/jwks").await.len(), 2);
}

#[tokio::test]
async fn agenda_asks_for_agenda_write_before_calendar_write() {
    let setup = setup(AgendaFaults::default(), None, Mount::NestService).await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&setup.hub)
        .await;
    let token = setup.token("agenda.read");
    let write = call(
        1,
        "calendar_write",
        json!({"title": "Lunch", "start": "2026-03-01T12:00:00Z"}),
    );
    // A batch is challenged for every scope it needs, so one new token covers it.
    let batch = json!([call(2, "calendar_read", json!({})), write]);
    for (body, scope) in [
        (write.clone(), "agenda.write"),
        (batch, "agenda.read agenda.write"),
    ] {
        let response = mcp(&setup.mcp_url, Some(&token), &body).await;
        assert_eq!(response.status(), 403, "{body}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{challenge}"
        );
        assert!(
            challenge.contains(&format!("scope=\"{scope}\"")),
            "{challenge}"
        );
        assert!(
            challenge.contains(&format!(
                "resource_metadata=\"{}\"",
                setup.config.resource_metadata
            )),
            "{challenge}"
        );
        assert!(challenge.contains("error_description=\""), "{challenge}");
        assert_eq!(
            str_of(&response.json::<Value>().await.unwrap(), "error"),
            "insufficient_scope"
        );
    }
    setup.hub.verify().await;
}

#[tokio::test]
async fn agenda_reads_the_calendar_with_the_vault_token_and_reports_it() {
    let provider = provider().await;
    let client = http();
    let vault = provider_tokens(&client, &provider, "calendar.read calendar.write").await;
    let setup = setup(AgendaFaults::default(), None, Mount::NestService).await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(header(
            "authorization",
            basic("mcp-agenda", "agenda secret/+").as_str(),
        ))
        .and(body_string_contains(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": vault["access_token"],
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": 3599,
            "scope": "calendar.read",
            "connection": "demo-calendar",
            "api_base_url": provider.api_base_url(),
        })))
        .expect(2)
        .mount(&setup.hub)
        .await;
    mount_audit(&setup.hub, 2).await;
    let token = setup.token("agenda.read agenda.write");

    // initialize and tools/list work over the same endpoint; no session.
    let init = mcp(
        &setup.mcp_url,
        Some(&token),
        &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL, "capabilities": {},
            "clientInfo": {"name": "demo-test", "version": "1"}}}),
    )
    .await;
    assert!(init.headers().get("mcp-session-id").is_none());
    let init = result_of(init).await;
    assert_eq!(str_of(&init, "protocolVersion"), PROTOCOL);
    assert_eq!(init["serverInfo"]["name"], "agenda");
    assert!(init["capabilities"]["tools"].is_object());
    let initialized = mcp(
        &setup.mcp_url,
        Some(&token),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(initialized.status(), 202);
    let tools = result_of(
        mcp(
            &setup.mcp_url,
            Some(&token),
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        )
        .await,
    )
    .await;
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| str_of(t, "name"))
        .collect();
    assert_eq!(names, ["calendar_read", "calendar_write"]);

    // The transport's rules, as the module docs state them.
    let get = http()
        .get(&setup.mcp_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    let json_only = http()
        .post(&setup.mcp_url)
        .bearer_auth(&token)
        .header("accept", "application/json")
        .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_only.status(), 406);
    let no_version = http()
        .post(&setup.mcp_url)
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        result_of(no_version).await["tools"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The read: the calendar answered the vault token (the hub token would be refused).
    let read = result_of(
        mcp(
            &setup.mcp_url,
            Some(&token),
            &call(2, "calendar_read", json!({})),
        )
        .await,
    )
    .await;
    assert_eq!(read["isError"], false, "{read}");
    let events: Value = serde_json::from_str(text_of(&read)).unwrap();
    assert_eq!(events.as_array().unwrap().len(), 3, "{events}");
    assert_eq!(str_of(&events[0], "title"), "Team stand-up");
    assert_eq!(
        (
            provider.stats().api_authorized,
            provider.stats().api_refused
        ),
        (1, 0)
    );

    // The write, through the trailing-slash form of the mount point.
    let write = result_of(
        mcp(
            &format!("{}/", setup.mcp_url),
            Some(&token),
            &call(
                3,
                "calendar_write",
                json!({"title": "Lunch with Bo", "start": "2026-03-01T12:00:00Z"}),
            ),
        )
        .await,
    )
    .await;
    assert_eq!(write["isError"], false, "{write}");
    let created: Value = serde_json::from_str(text_of(&write)).unwrap();
    assert_eq!(str_of(&created, "title"), "Lunch with Bo");
    assert_eq!(
        (
            provider.stats().api_authorized,
            provider.stats().api_refused
        ),
        (2, 0)
    );

    // The exchanges named the caller's token, the connection and the tool's scope.
    let exchanges = setup.requests_to("/oauth/token").await;
    let forms: Vec<Vec<(String, String)>> = exchanges
        .iter()
        .map(|r| url::form_urlencoded::parse(&r.body).into_owned().collect())
        .collect();
    let get = |form: &Vec<(String, String)>, key: &str| {
        form.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    for (form, scope) in forms.iter().zip(["calendar.read", "calendar.write"]) {
        assert_eq!(get(form, "subject_token"), token);
        assert_eq!(
            get(form, "subject_token_type"),
            "urn:ietf:params:oauth:token-type:access_token"
        );
        assert_eq!(get(form, "resource"), "urn:hub:connection:demo-calendar");
        assert_eq!(get(form, "scope"), scope);
    }

    // The hub heard about both executions, without any token.
    let reports = setup.requests_to("/oauth/audit/tool-executions").await;
    let reports: Vec<Value> = reports
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(
        reports[0],
        json!({"tool": "calendar_read", "resource": setup.config.resource, "client_id": "mcp-inspector",
               "user": "user-alice", "tenant": "tenant-acme", "outcome": "success",
               "act": {"sub": "agent-planner"}})
    );
    assert_eq!(str_of(&reports[1], "tool"), "calendar_write");
    for report in &reports {
        let text = report.to_string();
        assert!(!text.contains(&token) && !text.contains(str_of(&vault, "access_token")));
    }
    setup.hub.verify().await;
}

#[tokio::test]
async fn agenda_passes_on_the_hubs_refusal_with_the_connect_link() {
    let setup = setup(AgendaFaults::default(), None, Mount::NestService).await;
    let connect_uri = format!(
        "{}/oauth/connections/demo-calendar/connect",
        setup.hub.uri()
    );
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "reauthorization_required",
            "error_description": "nothing is stored for this user",
            "connect_uri": connect_uri,
        })))
        .mount(&setup.hub)
        .await;
    mount_audit(&setup.hub, 1).await;
    let result = result_of(
        mcp(
            &setup.mcp_url,
            Some(&setup.token("agenda.read")),
            &call(1, "calendar_read", json!({})),
        )
        .await,
    )
    .await;
    assert_eq!(result["isError"], true, "{result}");
    let text = text_of(&result);
    assert!(
        text.contains("reauthorization_required") && text.contains(&connect_uri),
        "{text}"
    );
    let report: Value =
        serde_json::from_slice(&setup.requests_to("/oauth/audit/tool-executions").await[0].body)
            .unwrap();
    assert_eq!(str_of(&report, "outcome"), "failure");
    assert_eq!(
        str_of(&report, "reason"),
        "token exchange refused: reauthorization_required"
    );
    setup.hub.verify().await;
}

#[tokio::test]
async fn agenda_fault_token_passthrough_sends_the_hub_token_upstream() {
    let upstream = MockServer::start().await;
    let faults = AgendaFaults {
        token_passthrough: true,
        ..AgendaFaults::default()
    };
    let setup = setup(faults, Some(format!("{}/api", upstream.uri())), Mount::Nest).await;
    let token = setup.token("agenda.read");
    Mock::given(method("GET"))
        .and(path("/api/calendar/events"))
        .and(header("authorization", format!("Bearer {token}").as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([{"id": "evt-9", "title": "Leaked", "start": "x"}])),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&setup.hub)
        .await;
    mount_audit(&setup.hub, 1).await;
    let result = result_of(
        mcp(
            &setup.mcp_url,
            Some(&token),
            &call(1, "calendar_read", json!({})),
        )
        .await,
    )
    .await;
    assert_eq!(result["isError"], false, "{result}");
    assert!(text_of(&result).contains("Leaked"));
    upstream.verify().await;
    setup.hub.verify().await;
}

#[tokio::test]
async fn agenda_fault_skip_tool_scope_lets_a_read_token_write() {
    let faults = AgendaFaults {
        skip_tool_scope: true,
        ..AgendaFaults::default()
    };
    let setup = setup(faults, None, Mount::Nest).await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_string_contains("scope=calendar.write"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_scope", "error_description": "no policy permits calendar.write"})))
        .expect(1)
        .mount(&setup.hub)
        .await;
    mount_audit(&setup.hub, 1).await;
    let response = mcp(
        &setup.mcp_url,
        Some(&setup.token("agenda.read")),
        &call(
            1,
            "calendar_write",
            json!({"title": "Sneaky", "start": "2026-03-01T12:00:00Z"}),
        ),
    )
    .await;
    let result = result_of(response).await;
    assert_eq!(result["isError"], true, "{result}");
    assert!(text_of(&result).contains("invalid_scope"));
    setup.hub.verify().await;
}
