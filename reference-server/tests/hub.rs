//! The reference hub's integration tests: behaviour the conformance suite does
//! not reach through its scenarios (persistence, bad input, audit, control API).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use reference_server::store::Database;
use reference_server::{Fault, Faults, HubConfig, RunningHub};
use serde_json::{json, Value};

const CONTROL: &str = "test-control-token";

fn seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/hub")
}

fn config(database: Database) -> HubConfig {
    HubConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        database,
        seed_dir: Some(seed_dir()),
        test_mode: true,
        control_token: Some(CONTROL.into()),
        ..HubConfig::default()
    }
}

async fn start() -> RunningHub {
    reference_server::spawn(config(Database::Memory))
        .await
        .expect("hub starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn audit(hub: &RunningHub, event_type: &str) -> Vec<Value> {
    let body: Value = client()
        .get(format!("{}/control/audit?type={event_type}", hub.base_url))
        .bearer_auth(CONTROL)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    body["events"].as_array().cloned().unwrap_or_default()
}

async fn register(hub: &RunningHub) -> String {
    let body: Value = client()
        .post(format!("{}/register", hub.issuer))
        .json(&json!({"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": "test"}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    body["client_id"].as_str().expect("client_id").to_owned()
}

/// Drives an authorization request through the control API and returns the code.
async fn code_for(hub: &RunningHub, client_id: &str, verifier: &str) -> String {
    code_for_resource(hub, client_id, verifier, "/mcp/calendar").await
}

/// [`code_for`], for the MCP server at `path`.
async fn code_for_resource(
    hub: &RunningHub,
    client_id: &str,
    verifier: &str,
    path: &str,
) -> String {
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()))
    };
    let resource = format!("{}{path}", hub.base_url);
    let response = client()
        .get(format!("{}/authorize", hub.issuer))
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", &resource),
            ("state", "s1"),
        ])
        .send()
        .await
        .expect("authorize");
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let request = location
        .split("request=")
        .nth(1)
        .expect("request id")
        .to_owned();
    let decided: Value = client()
        .post(format!(
            "{}/control/authorizations/{request}/decision",
            hub.base_url
        ))
        .bearer_auth(CONTROL)
        .json(&json!({"username": "alice", "decision": "approve"}))
        .send()
        .await
        .expect("decide")
        .json()
        .await
        .expect("json");
    let redirect =
        url::Url::parse(decided["redirect_to"].as_str().expect("redirect_to")).expect("url");
    redirect
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code")
}

async fn get_json(url: String) -> Value {
    client()
        .get(url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON body")
}

/// Moves the hub's test clock forward; answers the control API's body.
async fn advance_clock(hub: &RunningHub, seconds: u32) -> Value {
    client()
        .post(format!("{}/control/clock", hub.base_url))
        .bearer_auth(CONTROL)
        .json(&json!({ "advance_seconds": seconds }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A user access token from a full code flow (login and consent through the control API).
async fn access_token_for(hub: &RunningHub, client_id: &str, verifier: &str) -> String {
    let code = code_for(hub, client_id, verifier).await;
    let body: Value = redeem(hub, &code, client_id, verifier)
        .await
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Redeems a code as the public test client would.
async fn redeem(
    hub: &RunningHub,
    code: &str,
    client_id: &str,
    verifier: &str,
) -> reqwest::Response {
    client()
        .post(format!("{}/token", hub.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("client_id", client_id),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .expect("token request")
}

#[tokio::test]
async fn state_and_signing_key_survive_a_restart() {
    let path = std::env::temp_dir().join(format!("hub-restart-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let hub = reference_server::spawn(config(Database::File(path.clone())))
        .await
        .expect("first start");
    let client_id = register(&hub).await;
    let jwks_before: Value = get_json(format!("{}/jwks.json", hub.issuer)).await;
    hub.stop().await;

    let hub = reference_server::spawn(config(Database::File(path.clone())))
        .await
        .expect("second start");
    let jwks_after: Value = get_json(format!("{}/jwks.json", hub.issuer)).await;
    assert_eq!(jwks_before, jwks_after, "the signing key must persist");
    // The client registered before the restart can still start a flow.
    let code = code_for(
        &hub,
        &client_id,
        "a-verifier-that-is-long-enough-for-pkce-rules-0123",
    )
    .await;
    assert!(code.len() >= 43);
    assert_eq!(
        audit(&hub, "client.registered").await.len(),
        1,
        "the audit trail persists too"
    );
    hub.stop().await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn malformed_input_gets_oauth_errors_never_500() {
    let hub = start().await;
    let http = client();
    let cases: Vec<(String, reqwest::RequestBuilder)> = vec![
        ("token: binary body".into(), http.post(format!("{}/token", hub.issuer)).body(vec![0xff, 0xfe, 0x00, 0x80])),
        ("token: repeated grant_type".into(), http.post(format!("{}/token", hub.issuer)).body("grant_type=client_credentials&grant_type=client_credentials")),
        ("token: no grant_type".into(), http.post(format!("{}/token", hub.issuer)).body("code=x")),
        ("token: bad basic".into(), http.post(format!("{}/token", hub.issuer)).header("authorization", "Basic !!!").body("grant_type=client_credentials")),
        ("register: not JSON".into(), http.post(format!("{}/register", hub.issuer)).body("{{{")),
        ("register: array".into(), http.post(format!("{}/register", hub.issuer)).body("[1,2]")),
        ("register: wrong types".into(), http.post(format!("{}/register", hub.issuer)).json(&json!({"redirect_uris": "http://127.0.0.1/cb"}))),
        ("register: too many redirect URIs".into(), http.post(format!("{}/register", hub.issuer)).json(&json!({"redirect_uris": (0..50).map(|i| format!("https://a.example/{i}")).collect::<Vec<_>>()}))),
        ("login: no request".into(), http.post(format!("{}/login", hub.issuer)).body("username=alice")),
        ("consent: garbage".into(), http.post(format!("{}/consent", hub.issuer)).body("%%%")),
        ("control: bad JSON".into(), http.post(format!("{}/control/clock", hub.base_url)).bearer_auth(CONTROL).body("nope")),
    ];
    for (name, request) in cases {
        let response = request.send().await.expect(&name);
        let status = response.status().as_u16();
        assert!((400..500).contains(&status), "{name}: status {status}");
        let body = response.text().await.unwrap_or_default();
        if !name.starts_with("login") && !name.starts_with("consent") {
            let v: Value =
                serde_json::from_str(&body).unwrap_or_else(|_| panic!("{name}: not JSON: {body}"));
            assert!(v["error"].is_string(), "{name}: no error code in {body}");
        }
    }
    // An unknown client or redirect URI is an error page, never a redirect.
    let response = http
        .get(format!(
            "{}/authorize?client_id=nobody&redirect_uri=https://evil.example/",
            hub.issuer
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
    hub.stop().await;
}

#[tokio::test]
async fn every_step_of_a_flow_is_audited_without_secrets() {
    let hub = start().await;
    let client_id = register(&hub).await;
    let verifier = "another-verifier-long-enough-for-pkce-0123456789abcdef";
    let code = code_for(&hub, &client_id, verifier).await;
    let response = redeem(&hub, &code, &client_id, verifier).await;
    assert_eq!(response.status(), 200);
    let token: Value = response.json().await.unwrap();
    let access_token = token["access_token"].as_str().unwrap().to_owned();
    // A replay is refused and audited with its reason.
    let replay = redeem(&hub, &code, &client_id, verifier).await;
    assert_eq!(replay.status(), 400);

    for kind in [
        "client.registered",
        "user.login",
        "consent.granted",
        "token.issued",
        "token.refused",
    ] {
        assert!(!audit(&hub, kind).await.is_empty(), "no {kind} event");
    }
    let issued = &audit(&hub, "token.issued").await[0];
    assert_eq!(issued["user"], "user-alice");
    assert_eq!(issued["tenant"], "acme");
    assert_eq!(
        issued["scopes_granted"],
        json!(["calendar.read", "calendar.write"])
    );
    let granted = &audit(&hub, "consent.granted").await[0];
    assert_eq!(
        issued["correlation_id"], granted["correlation_id"],
        "one flow, one correlation id"
    );
    let refused = &audit(&hub, "token.refused").await[0];
    assert!(refused["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("already used"));

    let everything = serde_json::to_string(&audit(&hub, "").await).unwrap();
    let all: Value = client()
        .get(format!("{}/control/audit", hub.base_url))
        .bearer_auth(CONTROL)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let all = all.to_string() + &everything;
    for secret in [
        code.as_str(),
        verifier,
        access_token.as_str(),
        "alice-password",
    ] {
        assert!(!all.contains(secret), "a secret reached the audit trail");
    }
    hub.stop().await;
}

#[tokio::test]
async fn control_api_needs_test_mode_and_its_token() {
    let hub = start().await;
    let unauthorized = client()
        .get(format!("{}/control/audit", hub.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let wrong = client()
        .get(format!("{}/control/audit", hub.base_url))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    hub.stop().await;

    let production = reference_server::spawn(HubConfig {
        test_mode: false,
        control_token: None,
        ..config(Database::Memory)
    })
    .await
    .unwrap();
    let absent = client()
        .get(format!("{}/control/audit", production.base_url))
        .bearer_auth(CONTROL)
        .send()
        .await
        .unwrap();
    assert_eq!(absent.status(), 404);
    production.stop().await;

    let refused = reference_server::spawn(HubConfig {
        control_token: None,
        ..config(Database::Memory)
    })
    .await;
    assert!(
        refused.is_err(),
        "test mode without a control token must refuse to start"
    );
}

#[tokio::test]
async fn codes_expire_on_the_test_clock() {
    let hub = start().await;
    let client_id = register(&hub).await;
    let verifier = "clock-verifier-long-enough-for-pkce-rules-0123456789";
    let code = code_for(&hub, &client_id, verifier).await;
    let advanced = advance_clock(&hub, 61).await;
    assert_eq!(advanced["offset_seconds"], 61);
    let response = redeem(&hub, &code, &client_id, verifier).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["error_description"]
        .as_str()
        .unwrap_or_default()
        .contains("expired"));
    hub.stop().await;
}

#[test]
fn fault_names_round_trip_and_are_unique() {
    let mut names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
    for fault in Fault::ALL {
        assert_eq!(fault.name().parse::<Fault>().unwrap(), *fault);
        assert!(!fault.description().is_empty());
    }
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len());
    assert!("no-such-fault".parse::<Fault>().is_err());
    assert!(Faults::default().is_empty());
}

#[tokio::test]
async fn client_assertions_with_none_or_hmac_algorithms_are_refused() {
    use base64::Engine;
    let hub = start().await;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let claims = json!({"iss": "agent-keyed", "sub": "agent-keyed", "aud": hub.issuer, "exp": 4102444800u64, "jti": "x1"});
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims.clone())
    );
    let hmac = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"guessable"),
    )
    .unwrap();
    for assertion in [unsigned.clone(), hmac.clone(), "not-a-jwt".to_owned()] {
        let response = client()
            .post(format!("{}/token", hub.issuer))
            .form(&[
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
    }
    // The same JWTs as authorization grants (RFC 7523 §3.1): invalid_grant.
    for assertion in [unsigned, hmac, "not-a-jwt".to_owned()] {
        let response = client()
            .post(format!("{}/token", hub.issuer))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant");
    }
    let refused = audit(&hub, "token.refused").await;
    assert_eq!(refused.len(), 6, "every refusal is audited");
    hub.stop().await;
}

#[tokio::test]
async fn hostile_registrations_get_oauth_errors_and_the_limit_is_per_source() {
    let mut config = config(Database::Memory);
    config.registration_rate_limit = 2;
    let hub = reference_server::spawn(config).await.expect("hub starts");
    let uris = |n: usize| -> Vec<String> {
        (0..n)
            .map(|i| format!("http://127.0.0.1:9/cb/{i}"))
            .collect()
    };
    // Beyond the hub's body limit: still an OAuth error body, not plain text.
    let huge = client()
        .post(format!("{}/register", hub.issuer))
        .json(&json!({"redirect_uris": uris(5000), "client_name": "huge"}))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    let body: Value = huge.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client_metadata");
    // Within the body limit but over the metadata cap.
    let big = client()
        .post(format!("{}/register", hub.issuer))
        .json(&json!({"redirect_uris": uris(1000), "client_name": "big"}))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 400);
    let body: Value = big.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client_metadata");
    // Two requests reached the registration logic; the third is over budget.
    register(&hub).await;
    let limited = client()
        .post(format!("{}/register", hub.issuer))
        .json(&json!({"redirect_uris": uris(1), "client_name": "one too many"}))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    // A new window on the test clock restores the budget.
    advance_clock(&hub, 60).await;
    register(&hub).await;
    let refusals = audit(&hub, "client.registered").await;
    assert!(
        refusals
            .iter()
            .filter(|e| e["outcome"] == "failure")
            .count()
            >= 2,
        "refused registrations are audited"
    );
    hub.stop().await;
}

#[tokio::test]
async fn consent_is_remembered_until_it_expires() {
    let mut config = config(Database::Memory);
    config.consent_ttl = 3600;
    let hub = reference_server::spawn(config).await.expect("hub starts");
    let client_id = register(&hub).await;
    let verifier = "consent-verifier-long-enough-for-pkce-rules-0123456789";
    code_for(&hub, &client_id, verifier).await;
    let consent_page = |hub: &RunningHub| {
        let issuer = hub.issuer.clone();
        let base = hub.base_url.clone();
        let client_id = client_id.clone();
        async move {
            // Log in through the form, then see whether consent is asked.
            let browser = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
            let resource = format!("{base}/mcp/calendar");
            let response = browser
                .get(format!("{issuer}/authorize"))
                .query(&[
                    ("response_type", "code"),
                    ("client_id", client_id.as_str()),
                    ("redirect_uri", "http://127.0.0.1:9/cb"),
                    ("code_challenge", challenge),
                    ("code_challenge_method", "S256"),
                    ("resource", resource.as_str()),
                ])
                .send()
                .await
                .unwrap();
            let login = response.headers()["location"].to_str().unwrap().to_owned();
            let request = login.split("request=").nth(1).unwrap().to_owned();
            let after_login = browser
                .post(format!("{issuer}/login"))
                .form(&[
                    ("request", request.as_str()),
                    ("username", "alice"),
                    ("password", "alice-password"),
                ])
                .send()
                .await
                .unwrap();
            let consent = after_login.headers()["location"]
                .to_str()
                .unwrap()
                .to_owned();
            let page = browser.get(consent).send().await.unwrap();
            page.status() == 200
        }
    };
    assert!(
        !consent_page(&hub).await,
        "a remembered consent is not asked again"
    );
    advance_clock(&hub, 3601).await;
    assert!(
        consent_page(&hub).await,
        "an expired consent is asked again"
    );
    hub.stop().await;
}

const ADMIN: &str = "test-admin-token";

async fn start_with_admin() -> RunningHub {
    let mut config = config(Database::Memory);
    config.admin_token = Some(ADMIN.into());
    reference_server::spawn(config).await.expect("hub starts")
}

async fn create_policy(hub: &RunningHub, draft: Value) -> (u16, Value) {
    let response = client()
        .post(format!("{}/admin/policies", hub.base_url))
        .bearer_auth(ADMIN)
        .json(&draft)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn malformed_policies_get_precise_errors_never_500() {
    let hub = start_with_admin().await;
    let grants = json!([{"mcp_server": "lab", "scopes": ["lab.read"]}]);
    let many: Vec<Value> = (0..1000)
        .map(|i| json!({"key": "user.roles", "operator": "equal", "value": format!("r{i}")}))
        .collect();
    for (draft, needle) in [
        (json!({"name": 5, "grants": grants}), "name"),
        (
            json!({"name": "x", "grants": grants, "priority": 1}),
            "priority",
        ),
        (
            json!({"name": "x", "conditions": [{"key": "user.shoe_size", "operator": "equal", "value": "9"}], "grants": grants}),
            "user.shoe_size",
        ),
        (
            json!({"name": "x", "conditions": [{"key": "user.roles", "operator": "in", "value": "admin"}], "grants": grants}),
            "in",
        ),
        (
            json!({"name": "x", "conditions": many, "grants": grants}),
            "64",
        ),
        (
            json!({"name": "x", "grants": [{"mcp_server": "lab", "scopes": ["lab.fly"]}]}),
            "lab.fly",
        ),
        (json!("not an object"), ""),
    ] {
        let (status, body) = create_policy(&hub, draft.clone()).await;
        assert_eq!(status, 400, "{draft}: {body}");
        assert_eq!(body["error"], "invalid_policy", "{body}");
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(description.contains(needle), "{description} names {needle}");
    }
    // A claim path into nested or missing claims is valid; it simply does not match.
    let (status, body) = create_policy(
        &hub,
        json!({"name": "nested", "conditions": [{"key": "jwtClaims.org.unit.name", "operator": "equal", "value": "x"}], "grants": grants}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let deleted = client()
        .delete(format!("{}/admin/policies/{id}", hub.base_url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let again = client()
        .delete(format!("{}/admin/policies/{id}", hub.base_url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    let unauthenticated = client()
        .get(format!("{}/admin/policies", hub.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(audit(&hub, "policy.created").await.len(), 8);
    assert_eq!(audit(&hub, "policy.deleted").await.len(), 1);
    hub.stop().await;
}

async fn exchange(hub: &RunningHub, subject: &str) -> (u16, Value) {
    let response = client()
        .post(format!("{}/token", hub.issuer))
        .basic_auth("agent-reporter", Some("reporter-secret"))
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", subject),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn token_exchange_refuses_foreign_revoked_and_expired_subjects() {
    let hub = start().await;
    let client_id = register(&hub).await;
    let verifier = "exchange-verifier-long-enough-for-pkce-rules-0123456789";
    let user_token = access_token_for(&hub, &client_id, verifier).await;

    let (status, ok) = exchange(&hub, &user_token).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(
        ok["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let exchanged = audit(&hub, "token.exchanged").await;
    assert_eq!(exchanged.len(), 1);
    assert_eq!(
        exchanged[0]["act"]["sub"], "agent-reporter",
        "the chain is audited"
    );

    // A JWT this hub did not sign.
    let foreign = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "user-alice", "iss": hub.issuer, "exp": 4102444800u64}),
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-hub"),
    )
    .unwrap();
    for subject in [foreign.as_str(), "garbage"] {
        let (status, body) = exchange(&hub, subject).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "invalid_request");
    }
    // Revoked.
    let revoked = client()
        .post(format!("{}/revoke", hub.issuer))
        .form(&[
            ("token", user_token.as_str()),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let (status, body) = exchange(&hub, &user_token).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");
    // Expired.
    let fresh = access_token_for(&hub, &client_id, verifier).await;
    advance_clock(&hub, 3600).await;
    let (status, body) = exchange(&hub, &fresh).await;
    assert_eq!(status, 400);
    assert!(body["error_description"]
        .as_str()
        .unwrap_or_default()
        .contains("expired"));
    assert!(
        audit(&hub, "token.refused").await.len() >= 4,
        "refused exchanges are audited"
    );
    hub.stop().await;
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let mut config = config(Database::Memory);
    config.admin_token = Some(ADMIN.into());
    let untrusting = reference_server::spawn(config.clone()).await.unwrap();
    config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let trusting = reference_server::spawn(config).await.unwrap();
    for (hub, expected) in [(&untrusting, 403), (&trusting, 200)] {
        let agent: Value = client()
            .post(format!("{}/admin/agents", hub.base_url))
            .bearer_auth(ADMIN)
            .json(&json!({
                "name": "office agent",
                "allowed_resources": ["calendar"],
                "allowed_scopes": ["calendar.read"],
                "conditions": {"source_ranges": ["10.0.0.0/8"]},
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let response = client()
            .post(format!("{}/token", hub.issuer))
            .basic_auth(
                agent["client_id"].as_str().unwrap(),
                agent["client_secret"].as_str(),
            )
            .header("x-forwarded-for", "10.1.2.3")
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected);
    }
    let refused = audit(&untrusting, "token.refused").await;
    assert!(refused.iter().any(|e| e["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("source ranges")));
    untrusting.stop().await;
    trusting.stop().await;
}

/// Every CloudEvent the webhook endpoint accepted (2xx), in arrival order.
async fn delivered(server: &wiremock::MockServer) -> Vec<Value> {
    let mut out = Vec::new();
    for request in server.received_requests().await.unwrap_or_default() {
        if let Ok(Value::Array(batch)) = serde_json::from_slice::<Value>(&request.body) {
            out.extend(batch);
        }
    }
    out
}

/// Waits (bounded) until `cond` holds for what the endpoint received.
async fn until_delivered(
    server: &wiremock::MockServer,
    cond: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let got = delivered(server).await;
        if cond(&got) || std::time::Instant::now() > deadline {
            return got;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn webhook_across_restart(faults: Vec<Fault>) -> (Vec<i64>, i64) {
    use wiremock::matchers::method;
    use wiremock::{Mock, ResponseTemplate};
    let path = std::env::temp_dir().join(format!(
        "hub-webhook-{}-{}.sqlite",
        std::process::id(),
        faults.len()
    ));
    let _ = std::fs::remove_file(&path);
    // The endpoint is down while the first hub runs.
    let down = wiremock::MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&down)
        .await;
    let mut first = config(Database::File(path.clone()));
    first.audit_webhook = Some(format!("{}/audit", down.uri()));
    let hub = reference_server::spawn(first).await.unwrap();
    for _ in 0..3 {
        register(&hub).await;
    }
    let last_before: Value = client()
        .get(format!("{}/control/audit?limit=0", hub.base_url))
        .bearer_auth(CONTROL)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let last_before = last_before["last_seq"].as_i64().unwrap();
    let attempted = until_delivered(&down, |events| !events.is_empty()).await;
    assert!(!attempted.is_empty(), "delivery was attempted");
    hub.stop().await;

    // It comes back; so does the hub, on the same database.
    let up = wiremock::MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&up)
        .await;
    let mut second = config(Database::File(path.clone()));
    second.audit_webhook = Some(format!("{}/audit", up.uri()));
    second.faults = Faults::new(faults);
    let hub = reference_server::spawn(second).await.unwrap();
    register(&hub).await;
    let got = until_delivered(&up, |events| {
        events.iter().any(|e| {
            e["data"]["type"] == "client.registered" && e["sequence"].as_i64() > Some(last_before)
        })
    })
    .await;
    hub.stop().await;
    let _ = std::fs::remove_file(&path);
    for event in &got {
        assert_eq!(event["specversion"], "1.0");
        assert!(event["type"]
            .as_str()
            .unwrap_or_default()
            .starts_with("dev.agentic-identity-hub.audit."));
    }
    (
        got.iter().filter_map(|e| e["sequence"].as_i64()).collect(),
        last_before,
    )
}

#[tokio::test]
async fn the_audit_webhook_delivers_everything_in_order_across_a_restart() {
    let (sequences, last_before) = webhook_across_restart(Vec::new()).await;
    assert!(
        sequences.windows(2).all(|w| w[0] < w[1]),
        "in order: {sequences:?}"
    );
    let expected: Vec<i64> = (1..=*sequences.last().unwrap()).collect();
    assert_eq!(sequences, expected, "no loss, no repeat");
    assert!(
        sequences.len() as i64 > last_before,
        "events from before the restart arrived"
    );
    // The same check catches a hub that forgets undelivered events on restart.
    let (lossy, last_before) =
        webhook_across_restart(vec![Fault::WebhookLosesEventsOnRestart]).await;
    assert!(
        lossy.first().copied().unwrap_or(i64::MAX) > last_before,
        "the fault loses the events from before the restart: {lossy:?}"
    );
}

#[tokio::test]
async fn the_live_audit_feed_streams_events_as_they_are_written() {
    let hub = start_with_admin().await;
    let mut feed = client()
        .get(format!("{}/admin/audit/stream", hub.base_url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    assert!(feed.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let client_id = register(&hub).await;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.contains(&client_id) {
        let chunk = tokio::time::timeout_at(deadline, feed.chunk())
            .await
            .expect("an event within the deadline")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: audit"), "{seen}");
    assert!(seen.contains("client.registered"), "{seen}");
    // An open stream would hold a graceful shutdown.
    drop(feed);
    let unauthenticated = client()
        .get(format!("{}/admin/audit/stream", hub.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    hub.stop().await;
}

// ---- the Connections vault ---------------------------------------------------

/// Every byte of the database files (main file and write-ahead log).
fn database_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if let Ok(b) = std::fs::read(&file) {
            bytes.extend(b);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Stores a token and a client secret through the admin API of a hub on a
/// database file, then returns the file's bytes.
async fn vault_bytes(faults: Vec<Fault>, name: &str) -> Vec<u8> {
    let path = std::env::temp_dir().join(format!("hub-vault-{name}-{}.sqlite", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let mut config = config(Database::File(path.clone()));
    config.admin_token = Some(ADMIN.into());
    config.faults = Faults::new(faults);
    let hub = reference_server::spawn(config).await.expect("hub starts");
    let put = |url: String, body: Value| async move {
        let response = client()
            .put(url)
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    };
    let (status, body) = put(
        format!("{}/admin/connections/vault-probe", hub.base_url),
        json!({"type": "oauth2", "token_endpoint": "http://127.0.0.2:9/token", "client_id": "c",
               "client_secret": "CLIENT-SECRET-PLAINTEXT-MARKER", "scopes": ["read"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(!body.contains("CLIENT-SECRET-PLAINTEXT-MARKER"), "{body}");
    let (status, body) = put(
        format!("{}/admin/connections/vault-probe/tokens", hub.base_url),
        json!({"owner": {"user": "alice"}, "access_token": "ACCESS-TOKEN-PLAINTEXT-MARKER",
               "refresh_token": "REFRESH-TOKEN-PLAINTEXT-MARKER", "expires_in": 3600}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("TOKEN-PLAINTEXT-MARKER"), "{body}");
    hub.stop().await;
    let bytes = database_bytes(&path);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    bytes
}

/// Proves the `plaintext-vault` fault is caught (the sensitivity matrix names this test).
#[tokio::test]
async fn the_database_file_holds_no_plaintext_connection_secret() {
    let sealed = vault_bytes(Vec::new(), "sealed").await;
    assert!(sealed.len() > 4096, "the database was written");
    for marker in [
        "ACCESS-TOKEN-PLAINTEXT-MARKER",
        "REFRESH-TOKEN-PLAINTEXT-MARKER",
        "CLIENT-SECRET-PLAINTEXT-MARKER",
    ] {
        assert!(
            !contains(&sealed, marker),
            "{marker} is in the database file"
        );
    }
    let plain = vault_bytes(vec![Fault::PlaintextVault], "plain").await;
    assert!(
        contains(&plain, "ACCESS-TOKEN-PLAINTEXT-MARKER"),
        "the check must see a token stored without encryption"
    );
}

#[tokio::test]
async fn the_hub_refuses_to_start_without_a_right_vault_key() {
    let empty_seed = std::env::temp_dir().join(format!("hub-empty-seed-{}", std::process::id()));
    std::fs::create_dir_all(&empty_seed).unwrap();
    let mut no_key = config(Database::Memory);
    no_key.seed_dir = Some(empty_seed.clone());
    let err = reference_server::spawn(no_key)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("no vault key"), "{err}");

    let mut malformed = config(Database::Memory);
    malformed.vault_keys = vec!["k1:not-base64!".into()];
    let err = reference_server::spawn(malformed)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("not base64"), "{err}");

    // A database sealed under one key refuses a different key with the same id,
    // and a configuration that lacks a key id the database uses.
    let path = std::env::temp_dir().join(format!("hub-vault-keys-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let key = |byte: u8| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    };
    let mut first = config(Database::File(path.clone()));
    first.vault_keys = vec![format!("prod:{}", key(1))];
    reference_server::spawn(first)
        .await
        .expect("first start")
        .stop()
        .await;
    let mut wrong = config(Database::File(path.clone()));
    wrong.vault_keys = vec![format!("prod:{}", key(2))];
    let err = reference_server::spawn(wrong).await.err().expect("refused");
    assert!(err.to_string().contains("does not open"), "{err}");
    let mut rotated = config(Database::File(path.clone()));
    rotated.vault_keys = vec![format!("next:{}", key(3)), format!("prod:{}", key(1))];
    reference_server::spawn(rotated)
        .await
        .expect("rotation starts")
        .stop()
        .await;
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir_all(&empty_seed);
}

/// A wiremock provider whose token endpoint rotates refresh tokens; answers
/// `rt-1` → (`at-2`, `rt-2`). Returns how many refresh grants it saw.
async fn rotating_provider() -> wiremock::MockServer {
    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, ResponseTemplate};
    let server = wiremock::MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("refresh_token=rt-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at-2", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "rt-2", "scope": "read write"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})))
        .mount(&server)
        .await;
    server
}

async fn agent_token(hub: &RunningHub) -> String {
    let body: Value = client()
        .post(format!("{}/token", hub.issuer))
        .basic_auth("agent-reporter", Some("reporter-secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("resource", &format!("{}/mcp/calendar", hub.base_url)),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"]
        .as_str()
        .expect("agent token")
        .to_owned()
}

async fn fetch_connection(hub: &RunningHub, subject: &str, connection: &str) -> (u16, Value) {
    let response = client()
        .post(format!("{}/token", hub.issuer))
        .basic_auth("agent-reporter", Some("reporter-secret"))
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", subject),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("resource", &format!("urn:hub:connection:{connection}")),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_expired_connection_token_is_refreshed_once_and_the_rotation_kept() {
    let provider = rotating_provider().await;
    let hub = start_with_admin().await;
    let admin_put = |url: String, body: Value| async move {
        let r = client()
            .put(url)
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    };
    admin_put(
        format!("{}/admin/connections/probe", hub.base_url),
        json!({"type": "oauth2", "token_endpoint": format!("{}/token", provider.uri()),
               "client_id": "hub", "client_secret": "s", "scopes": ["read", "write"],
               "allowed_clients": ["agent-reporter"]}),
    )
    .await;
    admin_put(
        format!("{}/admin/connections/probe/tokens", hub.base_url),
        json!({"owner": {"agent": "agent-reporter"}, "access_token": "at-1",
               "refresh_token": "rt-1", "expires_in": 0}),
    )
    .await;
    let subject = agent_token(&hub).await;
    let fetches = (0..20).map(|_| fetch_connection(&hub, &subject, "probe"));
    let results = futures_util::future::join_all(fetches).await;
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["access_token"], "at-2", "{body}");
        assert_eq!(
            body["issued_token_type"],
            "urn:ietf:params:oauth:token-type:access_token"
        );
    }
    let refreshes = provider.received_requests().await.unwrap_or_default();
    assert_eq!(
        refreshes.len(),
        1,
        "one upstream refresh for 20 concurrent fetches"
    );
    assert!(String::from_utf8_lossy(&refreshes[0].body).contains("refresh_token=rt-1"));

    // The rotated refresh token was kept: expire again, the next refresh presents rt-2.
    advance_clock(&hub, 7200).await;
    let subject = agent_token(&hub).await;
    let (status, body) = fetch_connection(&hub, &subject, "probe").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "reauthorization_required", "{body}");
    let requests = provider.received_requests().await.unwrap_or_default();
    assert!(String::from_utf8_lossy(&requests[1].body).contains("refresh_token=rt-2"));
    // Marked for re-authorization: no retry storm upstream.
    let (status, _) = fetch_connection(&hub, &subject, "probe").await;
    assert_eq!(status, 400);
    assert_eq!(provider.received_requests().await.unwrap().len(), 2);
    let refreshed = audit(&hub, "connection.refreshed").await;
    let failed = audit(&hub, "connection.refresh_failed").await;
    assert_eq!((refreshed.len(), failed.len()), (1, 1));
    let trail = serde_json::to_string(&audit(&hub, "").await).unwrap();
    for secret in ["at-1", "at-2", "rt-1\"", "rt-2"] {
        assert!(
            !trail.contains(secret),
            "{secret} leaked into the audit trail"
        );
    }
    hub.stop().await;
}

/// The README's demo path, end to end: alice connects the demo provider in a
/// browser-like client, then an MCP client calls the Agenda MCP server, which
/// reads her calendar through the vault.
#[tokio::test]
async fn the_demo_path_connects_the_provider_and_the_agenda_reads_the_calendar() {
    let provider = demo::provider::spawn(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        demo::provider::ProviderConfig::default(),
    )
    .await
    .expect("provider");
    let mut config = config(Database::Memory);
    config.agenda = Some(reference_server::AgendaSettings::demo("rs-agenda-secret"));
    config.demo_provider_url = Some(provider.url.clone());
    let hub = reference_server::spawn(config).await.expect("hub");
    let browser = client();

    // 1. Connect: sign in at the hub, approve at the provider, back to the hub.
    let connect = format!("{}/connections/demo-calendar/connect", hub.issuer);
    let page = browser.get(&connect).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Connect Demo Calendar"));
    let to_provider = browser
        .post(&connect)
        .form(&[("username", "alice"), ("password", "alice-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(to_provider.status(), 303);
    let authorize = to_provider.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let url = url::Url::parse(&authorize).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert!(authorize.starts_with(&provider.url));
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(query["state"].len() >= 16);
    let approve_page = browser
        .get(&authorize)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ticket = approve_page
        .split("name=\"ticket\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("ticket")
        .to_owned();
    let back = browser
        .post(format!("{}/authorize", provider.url))
        .form(&[
            ("ticket", ticket.as_str()),
            ("account", "alice"),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 302);
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(&format!(
        "{}/connections/demo-calendar/callback",
        hub.issuer
    )));
    let connected = browser.get(&callback).send().await.unwrap();
    assert_eq!(connected.status(), 200);
    assert!(connected.text().await.unwrap().contains("is connected"));
    // A replayed callback is refused: the state was single-use.
    assert_eq!(browser.get(&callback).send().await.unwrap().status(), 400);

    // 2. An MCP client with alice's token for the Agenda MCP server calls a tool.
    let client_id = register(&hub).await;
    let verifier = "a-verifier-that-is-long-enough-for-pkce-rules-agenda";
    let code = code_for_resource(&hub, &client_id, verifier, "/mcp/agenda").await;
    let body: Value = redeem(&hub, &code, &client_id, verifier)
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().expect("token").to_owned();
    let call = |name: &'static str, arguments: Value| {
        let token = token.clone();
        let url = format!("{}/mcp/agenda", hub.base_url);
        async move {
            let r = client()
                .post(url)
                .bearer_auth(token)
                .header("accept", "application/json, text/event-stream")
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                              "params": {"name": name, "arguments": arguments}}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, text) = call("calendar_read", json!({})).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"isError\":false"), "{text}");
    assert!(
        text.contains("stand-up") || text.contains("title"),
        "{text}"
    );
    let (status, text) = call(
        "calendar_write",
        json!({"title": "Demo", "start": "2026-12-01T10:00:00Z"}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"isError\":false"), "{text}");
    let stats = provider.stats();
    assert_eq!(stats.codes_redeemed, 1);
    assert!(stats.api_authorized >= 2, "{stats:?}");
    assert_eq!(stats.api_refused, 0, "{stats:?}");
    assert!(!audit(&hub, "connection.token.issued").await.is_empty());
    assert!(!audit(&hub, "tool.executed").await.is_empty());
    hub.stop().await;
}

// ---- the hub console -----------------------------------------------------------

/// A browser: a cookie jar, no redirects followed.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Undoes the pages' HTML escaping, to look for text in them.
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of the first field named `name` (hidden inputs), unescaped.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name}"))
        + marker.len();
    let end = html[start..].find('"').expect("end of value") + start;
    unescape(&html[start..end])
}

/// The text of the element with `id` up to the end of its section.
fn section(html: &str, id: &str) -> String {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element {id} in {html}"));
    let end = html[start..]
        .find("</section>")
        .map_or(html.len(), |e| e + start);
    html[start..end].to_owned()
}

async fn page(browser: &reqwest::Client, hub: &RunningHub, path: &str) -> (u16, String) {
    let response = browser
        .get(format!("{}{path}", hub.base_url))
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        unescape(&response.text().await.unwrap()),
    )
}

/// Posts a console form with the session's CSRF token.
async fn post_form(
    browser: &reqwest::Client,
    hub: &RunningHub,
    path: &str,
    csrf: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut fields = vec![("csrf", csrf)];
    fields.extend_from_slice(form);
    browser
        .post(format!("{}{path}", hub.base_url))
        .form(&fields)
        .send()
        .await
        .unwrap()
}

/// Signs in as the seeded administrator; returns the browser and the session's CSRF token.
async fn console_login(hub: &RunningHub) -> (reqwest::Client, String) {
    let browser = browser();
    let form = browser
        .get(format!("{}/console/login", hub.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let signed_in = browser
        .post(format!("{}/console/login", hub.base_url))
        .form(&[
            ("csrf", field(&form, "csrf").as_str()),
            ("username", "admin"),
            ("password", "admin-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303, "sign-in");
    let (status, home) = page(&browser, hub, "/console").await;
    assert_eq!(status, 200, "{home}");
    let csrf = field(&home, "csrf");
    (browser, csrf)
}

async fn audit_events(hub: &RunningHub, query: &str) -> Vec<Value> {
    let body: Value = client()
        .get(format!("{}/control/audit?{query}", hub.base_url))
        .bearer_auth(CONTROL)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["events"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn the_console_needs_a_signed_in_admin_and_its_session_cookie_is_locked_down() {
    let hub = start().await;
    // Signed out: every page sends the browser to the sign-in page, and back afterwards.
    let (status, _) = page(&browser(), &hub, "/console/agents?tag=autonomous").await;
    assert_eq!(status, 303);
    let away = client()
        .get(format!("{}/console/agents?tag=autonomous", hub.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        away.headers()["location"],
        "/console/login?next=%2Fconsole%2Fagents%3Ftag%3Dautonomous"
    );
    for path in [
        "/console",
        "/console/policies/what-if",
        "/console/connections",
        "/console/audit/stream",
    ] {
        let r = client()
            .get(format!("{}{path}", hub.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert!(r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/console/login"));
    }

    // A wrong password is refused and audited with the administrator's name.
    let b = browser();
    let (status, form) = page(&b, &hub, "/console/login").await;
    assert_eq!(status, 200);
    assert!(
        form.contains("<label for=\"username\">Username</label>"),
        "{form}"
    );
    let refused = b
        .post(format!("{}/console/login", hub.base_url))
        .form(&[
            ("csrf", field(&form, "csrf").as_str()),
            ("username", "admin"),
            ("password", "not-the-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused
        .headers()
        .get_all("set-cookie")
        .iter()
        .all(|c| !c.to_str().unwrap().starts_with("hub_console=")));
    let again = unescape(&refused.text().await.unwrap());
    assert!(again.contains("Wrong username or password."), "{again}");
    let failures: Vec<_> = audit_events(&hub, "type=admin.login")
        .await
        .into_iter()
        .filter(|e| e["outcome"] == "failure")
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        failures[0]["actor"],
        json!({"type": "admin", "id": "admin"})
    );
    assert!(failures[0]["reason"]
        .as_str()
        .unwrap()
        .contains("wrong password"));
    assert!(!failures[0].to_string().contains("not-the-password"));

    // The sign-in form's own token is checked too: without its cookie, refused.
    let stray = client()
        .post(format!("{}/console/login", hub.base_url))
        .form(&[
            ("csrf", field(&again, "csrf").as_str()),
            ("username", "admin"),
            ("password", "admin-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(stray.status(), 403);

    // The right password: a session cookie that scripts and other sites never see.
    let signed_in = b
        .post(format!("{}/console/login", hub.base_url))
        .form(&[
            ("csrf", field(&again, "csrf").as_str()),
            ("username", "admin"),
            ("password", "admin-password"),
            ("next", "/console/agents?tag=autonomous"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(
        signed_in.headers()["location"],
        "/console/agents?tag=autonomous"
    );
    let session = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("hub_console="))
        .expect("a session cookie");
    for attribute in ["; HttpOnly", "; SameSite=Strict", "; Path=/console"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(!session.contains("Secure"), "plain http: {session}");
    let value = session
        .trim_start_matches("hub_console=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (status, agents) = page(&b, &hub, "/console/agents?tag=autonomous").await;
    assert_eq!(status, 200);
    assert!(agents.contains("agent-reporter"), "{agents}");
    let success = audit_events(&hub, "type=admin.login").await;
    assert!(success.iter().any(
        |e| e["outcome"] == "success" && e["actor"] == json!({"type": "admin", "id": "admin"})
    ));
    assert!(!success.iter().any(|e| e.to_string().contains(&value)));

    // Sign out: the session ends on the server, not only in the browser.
    let csrf = field(&agents, "csrf");
    let out = post_form(&b, &hub, "/console/logout", &csrf, &[]).await;
    assert_eq!(out.status(), 303);
    let replayed = client()
        .get(format!("{}/console/agents", hub.base_url))
        .header("cookie", format!("hub_console={value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 303, "a signed-out session is gone");
    assert!(!audit_events(&hub, "type=admin.logout").await.is_empty());

    // Sessions expire on the hub clock.
    let (b, _) = console_login(&hub).await;
    assert_eq!(page(&b, &hub, "/console/agents").await.0, 200);
    advance_clock(&hub, 8 * 3600 + 1).await;
    assert_eq!(page(&b, &hub, "/console/agents").await.0, 303);
    hub.stop().await;

    // Behind https, the cookies are Secure.
    let mut config = config(Database::Memory);
    config.public_url = Some("https://hub.example".into());
    let hub = reference_server::spawn(config).await.unwrap();
    let form = client()
        .get(format!("http://{}/console/login", hub.local_addr))
        .send()
        .await
        .unwrap();
    let login_cookie = form.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(login_cookie.contains("; Secure"), "{login_cookie}");
    let token = field(&form.text().await.unwrap(), "csrf");
    let signed_in = client()
        .post(format!("http://{}/console/login", hub.local_addr))
        .header("cookie", format!("hub_console_login={token}"))
        .header("origin", "https://hub.example")
        .form(&[
            ("csrf", token.as_str()),
            ("username", "admin"),
            ("password", "admin-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let session = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("hub_console="))
        .expect("a session cookie");
    assert!(session.contains("; Secure"), "{session}");
    hub.stop().await;
}

#[tokio::test]
async fn console_forms_are_refused_without_the_session_csrf_token_or_from_another_site() {
    let hub = start().await;
    let (b, csrf) = console_login(&hub).await;
    let (status, confirm) = page(&b, &hub, "/console/policies/pol-globex-readers/delete").await;
    assert_eq!(status, 200);
    assert!(
        confirm.contains("Delete the policy \"Globex: read-only calendar\"?"),
        "{confirm}"
    );
    let delete = format!(
        "{}/console/policies/pol-globex-readers/delete",
        hub.base_url
    );
    let without = b
        .post(&delete)
        .form(&[("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 403);
    let text = unescape(&without.text().await.unwrap());
    assert!(text.contains("The form carried no CSRF token"), "{text}");
    let wrong = post_form(
        &b,
        &hub,
        "/console/policies/pol-globex-readers/delete",
        "x",
        &[],
    )
    .await;
    assert_eq!(wrong.status(), 403);
    let cross_site = b
        .post(&delete)
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let other_origin = b
        .post(&delete)
        .header("origin", "http://attacker.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(other_origin.status(), 403);
    let (_, policies) = page(&b, &hub, "/console/policies").await;
    assert!(
        policies.contains("pol-globex-readers"),
        "nothing was deleted"
    );
    let refusals = audit_events(&hub, "type=admin.request_refused").await;
    assert_eq!(refusals.len(), 4, "{refusals:?}");
    assert!(refusals.iter().all(|e| e["actor"]["id"] == "admin"));

    // The same form from the console's own page, with its token: done.
    let done = b
        .post(&delete)
        .header("origin", &hub.base_url)
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    let (_, policies) = page(&b, &hub, "/console/policies?deleted=pol-globex-readers").await;
    assert!(
        !policies.contains("id=\"policy-pol-globex-readers\""),
        "{policies}"
    );
    let deleted = audit_events(&hub, "type=policy.deleted").await;
    assert_eq!(deleted[0]["actor"], json!({"type": "admin", "id": "admin"}));
    assert_eq!(deleted[0]["policies"], json!(["pol-globex-readers"]));
    hub.stop().await;
}

#[tokio::test]
async fn a_policy_created_in_three_steps_takes_effect_and_bad_drafts_get_precise_errors() {
    let hub = start().await;
    let (b, csrf) = console_login(&hub).await;
    let client_id = register(&hub).await;
    let what_if = |user: &str| format!("/console/policies/what-if?user={user}&client={client_id}");
    let (status, before) = page(&b, &hub, &what_if("user-alice")).await;
    assert_eq!(status, 200);
    let lab = section(&before, "server-lab");
    assert!(
        lab.contains("<strong>Effective scopes:</strong> <span class=\"effective\">none"),
        "{lab}"
    );
    assert!(
        lab.contains("none of the 3 policies allows lab.read on lab"),
        "{lab}"
    );
    assert!(lab.contains("Policy decision: matched: none"), "{lab}");

    // Step 1: conditions. A bad operator is named precisely.
    let steps = "/console/policies/new";
    let (status, first) = page(&b, &hub, steps).await;
    assert_eq!(status, 200);
    assert!(first.contains("<label for=\"key_0\">"), "{first}");
    let bad = post_form(
        &b,
        &hub,
        steps,
        &csrf,
        &[
            ("step", "1"),
            ("action", "next"),
            ("key_0", "user.roles"),
            ("operator_0", "resembles"),
            ("value_0", "engineer"),
        ],
    )
    .await;
    assert_eq!(bad.status(), 422);
    let text = unescape(&bad.text().await.unwrap());
    assert!(text.contains("conditions[0]: unknown operator \"resembles\"; expected one of equal, not_equal, in, not_in, contains"), "{text}");
    assert!(
        text.contains("value=\"engineer\""),
        "what was typed is kept: {text}"
    );
    let second = post_form(
        &b,
        &hub,
        steps,
        &csrf,
        &[
            ("step", "1"),
            ("action", "next"),
            ("key_0", "user.roles"),
            ("operator_0", "contains"),
            ("value_0", "engineer"),
        ],
    )
    .await;
    assert_eq!(second.status(), 200);
    let second = second.text().await.unwrap();
    let conditions = field(&second, "conditions");
    assert_eq!(
        serde_json::from_str::<Value>(&conditions).unwrap(),
        json!([{"key": "user.roles", "operator": "contains", "value": "engineer"}])
    );

    // Step 2: servers and scopes. An unknown scope is named precisely.
    let unknown = post_form(
        &b,
        &hub,
        steps,
        &csrf,
        &[
            ("step", "2"),
            ("action", "next"),
            ("conditions", &conditions),
            ("grant", "server lab lab.nuke"),
        ],
    )
    .await;
    assert_eq!(unknown.status(), 422);
    let text = unescape(&unknown.text().await.unwrap());
    assert!(
        text.contains("grants[0]: MCP server \"lab\" has no scope \"lab.nuke\""),
        "{text}"
    );
    let third = post_form(
        &b,
        &hub,
        steps,
        &csrf,
        &[
            ("step", "2"),
            ("action", "next"),
            ("conditions", &conditions),
            ("grant", "server lab lab.read"),
        ],
    )
    .await;
    assert_eq!(third.status(), 200);
    let third = third.text().await.unwrap();
    let grants = field(&third, "grants");
    assert_eq!(
        serde_json::from_str::<Value>(&grants).unwrap(),
        json!([{"mcp_server": "lab", "scopes": ["lab.read"]}])
    );
    assert!(unescape(&third).contains("MCP server lab: lab.read"));

    // Step 3: name and description. No name, no policy.
    let nameless = post_form(
        &b,
        &hub,
        steps,
        &csrf,
        &[
            ("step", "3"),
            ("action", "create"),
            ("conditions", &conditions),
            ("grants", &grants),
            ("name", " "),
        ],
    )
    .await;
    assert_eq!(nameless.status(), 422);
    assert!(unescape(&nameless.text().await.unwrap()).contains("the policy needs a name"));
    let created = post_form(
        &b,
        &hub,
        steps,
        &csrf,
        &[
            ("step", "3"),
            ("action", "create"),
            ("conditions", &conditions),
            ("grants", &grants),
            ("name", "Engineers read the lab"),
            ("description", "made in the console"),
        ],
    )
    .await;
    assert_eq!(created.status(), 303);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let id = location
        .split("created=")
        .nth(1)
        .and_then(|rest| rest.split('#').next())
        .expect("the new policy's id")
        .to_owned();
    let (_, list) = page(&b, &hub, &location).await;
    let card = section(&list, &format!("policy-{id}"));
    assert!(card.contains("Engineers read the lab"), "{card}");
    assert!(card.contains("user.roles contains \"engineer\""), "{card}");
    assert!(card.contains("lab.read"), "{card}");

    // In force at once: alice (an engineer) gets lab.read, bob (a viewer) does not.
    let (_, after) = page(&b, &hub, &what_if("user-alice")).await;
    let lab = section(&after, "server-lab");
    assert!(
        lab.contains("<span class=\"effective\"><code>lab.read</code>"),
        "{lab}"
    );
    assert!(lab.contains("matched: \"Engineers read the lab\""), "{lab}");
    assert!(
        lab.contains("lab.write"),
        "the other scopes are still dropped, with why: {lab}"
    );
    let (_, bob) = page(&b, &hub, &what_if("user-bob")).await;
    let lab = section(&bob, "server-lab");
    assert!(lab.contains("<span class=\"effective\">none"), "{lab}");
    assert!(
        lab.contains("user.roles contains \"engineer\""),
        "the failed condition is named: {lab}"
    );

    let audited = audit_events(&hub, "type=policy.created").await;
    let outcomes: Vec<_> = audited.iter().map(|e| e["outcome"].clone()).collect();
    assert_eq!(
        outcomes,
        vec![json!("success")],
        "invalid drafts never reach the store"
    );
    assert_eq!(audited[0]["actor"], json!({"type": "admin", "id": "admin"}));
    assert_eq!(audited[0]["policies"], json!([id]));
    hub.stop().await;
}

#[tokio::test]
async fn an_agent_is_listed_by_its_attributes_and_decommissioned_after_a_confirmation() {
    let hub = start_with_admin().await;
    let agent: Value = client()
        .post(format!("{}/admin/agents", hub.base_url))
        .bearer_auth(ADMIN)
        .json(
            &json!({"name": "Nightly inventory agent", "allowed_resources": ["calendar"],
                      "allowed_scopes": ["calendar.read"], "tags": ["nightly"],
                      "tenant": "globex", "user": "bob"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = agent["client_id"].as_str().unwrap().to_owned();
    let secret = agent["client_secret"].as_str().unwrap().to_owned();
    let token = || {
        client()
            .post(format!("{}/token", hub.issuer))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    assert_eq!(token().await.unwrap().status(), 200);

    let (b, csrf) = console_login(&hub).await;
    let (_, tagged) = page(
        &b,
        &hub,
        "/console/agents?tag=nightly&tenant=globex&trust_level=manual",
    )
    .await;
    let rows = section(&tagged, "agents");
    assert!(rows.contains(&id), "{rows}");
    assert!(!rows.contains("agent-reporter"), "{rows}");
    let (_, acme) = page(&b, &hub, "/console/agents?tenant=acme").await;
    assert!(!section(&acme, "agents").contains(&id));
    assert!(section(&acme, "agents").contains("agent-reporter"));

    let (status, show) = page(&b, &hub, &format!("/console/agents/{id}")).await;
    assert_eq!(status, 200);
    let attributes = section(&show, "attributes");
    for expected in [
        &id,
        "nightly",
        "bob (Bob Builder)",
        "globex",
        "Calendar MCP server",
        "calendar.read",
        "active",
    ] {
        assert!(attributes.contains(expected), "{expected} in {attributes}");
    }
    assert!(!show.contains(&secret));

    // The confirmation changes nothing by itself.
    let (status, confirm) = page(&b, &hub, &format!("/console/agents/{id}/decommission")).await;
    assert_eq!(status, 200);
    assert!(
        confirm.contains("Decommission Nightly inventory agent?"),
        "{confirm}"
    );
    assert!(confirm.contains(&format!("action=\"/console/agents/{id}/decommission\"")));
    assert_eq!(token().await.unwrap().status(), 200);

    let done = post_form(
        &b,
        &hub,
        &format!("/console/agents/{id}/decommission"),
        &csrf,
        &[("confirm", "yes")],
    )
    .await;
    assert_eq!(done.status(), 303);
    let location = done.headers()["location"].to_str().unwrap().to_owned();
    let (_, after) = page(&b, &hub, &location).await;
    assert!(
        after.contains("Decommissioned: 0 refresh token(s) revoked"),
        "{after}"
    );
    assert!(section(&after, "attributes").contains("decommissioned since"));
    assert_eq!(
        token().await.unwrap().status(),
        401,
        "it can no longer authenticate"
    );
    let events = audit_events(&hub, "type=agent.decommissioned").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor"], json!({"type": "admin", "id": "admin"}));
    assert_eq!(events[0]["client_id"], json!(id));
    // Twice is not found, and changes nothing.
    let again = post_form(
        &b,
        &hub,
        &format!("/console/agents/{id}/decommission"),
        &csrf,
        &[],
    )
    .await;
    assert_eq!(again.status(), 404);
    hub.stop().await;
}

#[tokio::test]
async fn the_connections_page_shows_who_holds_tokens_and_never_a_token_value() {
    let hub = start_with_admin().await;
    let admin = |method: reqwest::Method, path: &str, body: Value| {
        client()
            .request(method, format!("{}/admin{path}", hub.base_url))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
    };
    let stored = admin(
        reqwest::Method::PUT,
        "/connections/demo-calendar/tokens",
        json!({
        "owner": {"user": "alice"}, "access_token": "MARKER-access-token",
        "refresh_token": "MARKER-refresh-token", "expires_in": 3600,
        "scopes": ["calendar.read"]}),
    )
    .await
    .unwrap();
    assert_eq!(stored.status(), 200);
    let stored = admin(
        reqwest::Method::PUT,
        "/connections/demo-calendar/tokens",
        json!({
        "owner": {"tenant": "globex"}, "access_token": "MARKER-tenant-token", "expires_in": 0}),
    )
    .await
    .unwrap();
    assert_eq!(stored.status(), 200);
    let created = admin(
        reqwest::Method::PUT,
        "/connections/weather-api",
        json!({
        "name": "Weather API", "type": "api_key", "allowed_clients": ["agent-reporter"]}),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let stored = admin(
        reqwest::Method::PUT,
        "/connections/weather-api/tokens",
        json!({
        "owner": {"agent": "agent-reporter"}, "api_key": "MARKER-api-key"}),
    )
    .await
    .unwrap();
    assert_eq!(stored.status(), 200);

    let (b, _) = console_login(&hub).await;
    let (status, html) = page(&b, &hub, "/console/connections").await;
    assert_eq!(status, 200);
    let calendar = section(&html, "connection-demo-calendar");
    for expected in [
        "OAuth 2.0",
        "/token",
        "agent-reporter",
        "user: alice (Alice Liddell)",
        "status-active",
        "tenant: globex",
        "expired (refreshed on next use)",
        "pol-acme-demo-calendar",
        "a client secret is stored, sealed",
    ] {
        assert!(calendar.contains(expected), "{expected} in {calendar}");
    }
    assert!(!calendar.contains("needs re-authorization"), "{calendar}");
    let weather = section(&html, "connection-weather-api");
    assert!(
        weather.contains("API key") && weather.contains("agent: "),
        "{weather}"
    );
    // Never a value: not the tokens, not the key, not the provider client secret.
    for path in [
        "/console/connections",
        "/console/agents/agent-reporter",
        "/console/audit",
        "/console/servers",
    ] {
        let (_, html) = page(&b, &hub, path).await;
        assert!(!html.contains("MARKER"), "{path} shows a secret");
        assert!(
            !html.contains("hub-demo-secret"),
            "{path} shows the client secret"
        );
    }
    hub.stop().await;
}

#[tokio::test]
async fn the_flow_drill_down_shows_one_flow_in_order_and_the_live_feed_filters() {
    let hub = start().await;
    let (b, _) = console_login(&hub).await;
    let mut feed = b
        .get(format!(
            "{}/console/audit/stream?type=tool.executed",
            hub.base_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    assert!(feed.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));

    let client_id = register(&hub).await;
    let token = access_token_for(&hub, &client_id, &"v".repeat(43)).await;
    let called = client()
        .post(format!("{}/mcp/calendar", hub.base_url))
        .bearer_auth(&token)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "calendar_list", "arguments": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(called.status(), 200);

    // The live feed carries the tool call, and nothing its filter leaves out.
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.contains("tool.executed") {
        let chunk = tokio::time::timeout_at(deadline, feed.chunk())
            .await
            .expect("an event within the deadline")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: audit"), "{seen}");
    for other in ["client.registered", "consent.granted", "token.issued"] {
        assert!(!seen.contains(other), "{other} passed the filter: {seen}");
    }
    drop(feed);

    let issued = audit_events(&hub, &format!("type=token.issued&client_id={client_id}")).await;
    let correlation = issued[0]["correlation_id"].as_str().unwrap().to_owned();
    let in_flow: Vec<String> = audit_events(&hub, &format!("correlation_id={correlation}"))
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        in_flow.contains(&"consent.granted".to_owned()),
        "{in_flow:?}"
    );

    let (status, html) = page(&b, &hub, &format!("/console/audit/flow/{correlation}")).await;
    assert_eq!(status, 200);
    let timeline = &html[html.find("id=\"timeline\"").expect("a timeline")..];
    let mut expected = vec!["client.registered".to_owned()];
    expected.extend(in_flow);
    expected.push("tool.executed".to_owned());
    let mut at = 0;
    for kind in &expected {
        let found = timeline[at..]
            .find(&format!("data-type=\"{kind}\""))
            .unwrap_or_else(|| panic!("{kind} after position {at} in {timeline}"));
        at += found + 1;
    }
    for stage in ["Registration:", "Consent:", "Token:", "Tool call:"] {
        assert!(timeline.contains(stage), "{stage} in {timeline}");
    }
    assert!(!html.contains(&token), "never a token");

    // The list, filtered by correlation id, links each event to its flow.
    let (_, list) = page(
        &b,
        &hub,
        &format!("/console/audit?correlation_id={correlation}"),
    )
    .await;
    let rows = section(&list, "events");
    assert!(
        rows.contains("consent.granted") && !rows.contains("client.registered"),
        "{rows}"
    );
    assert!(
        rows.contains(&format!("href=\"/console/audit/flow/{correlation}\"")),
        "{rows}"
    );
    assert!(
        list.contains(&format!(
            "data-stream=\"/console/audit/stream?correlation_id={correlation}\""
        )),
        "{list}"
    );
    let script = b
        .get(format!("{}/console/feed.js", hub.base_url))
        .send()
        .await
        .unwrap();
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script.text().await.unwrap().contains("EventSource"));
    let (status, _) = page(&b, &hub, "/console/audit/flow/flow_unknown").await;
    assert_eq!(status, 404);
    hub.stop().await;
}
