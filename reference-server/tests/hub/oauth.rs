//! The OAuth endpoints under bad and hostile input: precise OAuth errors,
//! never a 500, and the limits that hold per source and per client.

use reference_server::store::Database;
use reference_server::{Fault, RunningHub};
use serde_json::{json, Value};

use crate::support::*;

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

/// RFC 7662 §2.1: introspection requires authorization. A request with no
/// client authentication at all, or a client id without its secret, is
/// `invalid_client` (RFC 6749 §5.2), whatever the token.
#[tokio::test]
async fn introspection_without_client_authentication_is_invalid_client() {
    let hub = start().await;
    let http = client();
    for body in ["token=anything", "token=anything&client_id=rs-calendar"] {
        let response = http
            .post(format!("{}/introspect", hub.issuer))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{body}");
        let v: Value = response.json().await.unwrap();
        assert_eq!(v["error"], "invalid_client", "{body}");
        assert!(v.get("active").is_none(), "{body}: {v}");
    }
    hub.stop().await;
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
            // Log in through the form, then see whether consent is asked (a
            // browser: it keeps the sign-in cookie the consent page needs).
            let browser = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .cookie_store(true)
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
            // A remembered consent sends the browser straight back (a
            // redirect); anything else but the page is a failure here.
            assert!(
                matches!(page.status().as_u16(), 200 | 302 | 303),
                "the consent step answered {}",
                page.status()
            );
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

/// A client name with a right-to-left override would read as another
/// client's on the consent page: refused with invalid_client_metadata.
#[tokio::test]
async fn a_client_name_that_could_disguise_the_client_is_refused() {
    let hub = start().await;
    for name in [
        "Calendar \u{202E}ppA",
        "Cal\u{200B}endar",
        "Calendar\u{0007}",
    ] {
        let answer = client()
            .post(format!("{}/register", hub.issuer))
            .json(&json!({"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400, "{name:?}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client_metadata", "{name:?}");
    }
    // The same check catches a hub that lets the override through.
    let lenient = start_with_faults(vec![Fault::ClientNameAllowsBidi]).await;
    let answer = client()
        .post(format!("{}/register", lenient.issuer))
        .json(&json!({"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": "Calendar \u{202E}ppA"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status(),
        201,
        "the fault registers the disguised name"
    );
    lenient.stop().await;
    hub.stop().await;
}

/// A DNS-rebinding page sends its own name as both `Origin` and `Host`: the
/// hub's MCP endpoint refuses it, since only the hub's configured origin
/// counts, never the request's `Host`.
#[tokio::test]
async fn an_origin_that_matches_only_the_host_is_refused() {
    let rebound = |hub: &reference_server::RunningHub| {
        let port = hub.local_addr.port();
        client()
            .post(format!("{}/mcp/calendar", hub.base_url))
            .header("origin", format!("http://rebound.example:{port}"))
            .header("host", format!("rebound.example:{port}"))
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
            .send()
    };
    let hub = start().await;
    assert_eq!(rebound(&hub).await.unwrap().status(), 403);
    hub.stop().await;
    // The same check catches a hub that trusts an Origin equal to the Host.
    let trusting = start_with_faults(vec![Fault::OriginTrustsHost]).await;
    assert_eq!(
        rebound(&trusting).await.unwrap().status(),
        401,
        "the fault lets the rebound page reach the bearer check"
    );
    trusting.stop().await;
}

/// Tokens issued at once never share a `jti` (RFC 7519 §4.1.7; RFC 9068
/// §2.2): 32 concurrent client_credentials grants give 32 identifiers.
#[tokio::test]
async fn concurrent_tokens_never_share_a_jti() {
    async fn jtis(hub: &RunningHub) -> std::collections::HashSet<String> {
        let grants = (0..32).map(|_| async {
            let body = json_of(
                client()
                    .post(format!("{}/token", hub.issuer))
                    .basic_auth(REPORTER.0, Some(REPORTER.1))
                    .form(&[("grant_type", "client_credentials")]),
            )
            .await;
            let token = body["access_token"].as_str().expect("a token").to_owned();
            let payload = token.split('.').nth(1).expect("a JWS").to_owned();
            use base64::Engine;
            let claims: Value = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload)
                    .unwrap(),
            )
            .unwrap();
            claims["jti"].as_str().expect("a jti").to_owned()
        });
        futures_util::future::join_all(grants)
            .await
            .into_iter()
            .collect()
    }
    let hub = start().await;
    assert_eq!(jtis(&hub).await.len(), 32);
    hub.stop().await;
    // The same check catches a hub whose jti repeats within a second
    // (the test clock stands still, so all 32 share one).
    let repeating = start_with_faults(vec![Fault::JtiRepeats]).await;
    assert!(jtis(&repeating).await.len() < 32, "the fault repeats a jti");
    repeating.stop().await;
}
