//! Enterprise single sign-on (docs/sso.md) against a real OpenID Provider,
//! the `demo` crate's Demo IdP, in a browser: home-realm discovery, the user
//! made just in time with roles from groups that a policy reads, the
//! provider's second factor counted or the hub's asked for, and refusals
//! (another browser's redirect back, a tampered state, a provider error)
//! that start no session and leave an audit event with the reason.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reference_server::store::Database;
use reference_server::RunningHub;
use serde_json::Value;

use crate::support::*;

/// A hub whose `initech` tenant signs in at a Demo IdP of its own.
async fn hub_with_idp() -> (RunningHub, String) {
    let (issuer, _task) = demo::idp::spawn(
        "127.0.0.1:0".parse().unwrap(),
        demo::idp::IdpConfig::default(),
    )
    .await
    .expect("the demo IdP starts");
    let mut config = config(Database::Memory);
    config.demo_idp_issuer = Some(issuer.clone());
    let hub = reference_server::spawn(config).await.expect("hub starts");
    (hub, issuer)
}

/// The authorization request; the login page it leads to.
async fn login_page(browser: &reqwest::Client, hub: &RunningHub, client_id: &str) -> String {
    let login = authorize_calendar(
        browser,
        hub,
        client_id,
        Some("calendar.read calendar.write"),
    )
    .await;
    assert!(login.contains("/login?"), "{login}");
    login
}

/// Types the work e-mail on the hub's login page (no password): the
/// answer, a redirect to the provider.
async fn work_email(
    browser: &reqwest::Client,
    hub: &RunningHub,
    login: &str,
    email: &str,
) -> reqwest::Response {
    let request = login.split("request=").nth(1).expect("a request id");
    browser
        .post(format!("{}/login", hub.issuer))
        .form(&[("request", request), ("username", email), ("password", "")])
        .send()
        .await
        .expect("login")
}

/// Signs in at the provider's page; the provider's redirect back.
async fn at_the_provider(browser: &reqwest::Client, to_provider: &str, user: &str) -> String {
    let page = browser.get(to_provider).send().await.expect("IdP page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let ticket = html
        .split("name=\"ticket\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a ticket");
    let form = to_provider.split('?').next().unwrap();
    let back = browser
        .post(form)
        .form(&[
            ("ticket", ticket),
            ("username", &format!("{user}@initech.example")),
            ("password", &format!("{user}-password")),
        ])
        .send()
        .await
        .expect("IdP sign-in");
    assert_eq!(back.status(), 302);
    location(&back)
}

#[tokio::test]
async fn an_sso_user_is_made_just_in_time_and_a_policy_reads_the_mapped_role() {
    let (hub, issuer) = hub_with_idp().await;
    let client_id = register(&hub).await;
    let browser = browser();

    let login = login_page(&browser, &hub, &client_id).await;
    let (status, page) =
        crate::support::page(&browser, &hub, login.trim_start_matches(&hub.base_url)).await;
    assert_eq!(status, 200);
    assert!(page.contains("work e-mail"), "{page}");
    let to_provider = work_email(&browser, &hub, &login, "Erin@Initech.example").await;
    assert_eq!(to_provider.status(), 303);
    let to_provider = location(&to_provider);
    assert!(to_provider.starts_with(&issuer), "{to_provider}");
    for param in [
        "code_challenge=",
        "nonce=",
        "state=",
        "login_hint=Erin%40Initech.example",
    ] {
        assert!(to_provider.contains(param), "{param} in {to_provider}");
    }
    let back = at_the_provider(&browser, &to_provider, "erin").await;
    assert!(
        back.starts_with(&format!("{}/sso/callback", hub.issuer)),
        "{back}"
    );
    let callback = browser.get(&back).send().await.expect("callback");
    assert_eq!(callback.status(), 303);
    // Erin proved a second factor at her provider (amr otp): no hub TOTP.
    let consent = location(&callback);
    assert!(consent.contains("/consent?"), "{consent}");
    let (_, consent_page) =
        crate::support::page(&browser, &hub, consent.trim_start_matches(&hub.base_url)).await;
    // The group `engineering` gave the role the writers' policy reads.
    assert!(consent_page.contains("calendar.write"), "{consent_page}");

    let request = consent.split("request=").nth(1).unwrap();
    let approved = browser
        .post(format!("{}/consent", hub.issuer))
        .form(&[
            ("request", request),
            ("scope", "calendar.read"),
            ("scope", "calendar.write"),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    let back = location(&approved);
    let code = url::Url::parse(&back)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("a code in {back}"));
    let tokens: Value = redeem(&hub, &code, &client_id, VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    let token = jwt_claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(token["scope"], "calendar.read calendar.write");
    assert_eq!(token["tenant"], "initech");
    assert_eq!(token["amr"], serde_json::json!(["pwd", "otp", "mfa"]));

    let linked = audit(&hub, "user.sso.linked").await;
    assert_eq!(linked.len(), 1, "{linked:?}");
    let logins = audit(&hub, "user.login").await;
    let reason = logins.last().unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.contains("roles [calendar-writer, mcp-admin]"),
        "{reason}"
    );

    // Frank (group sales, one factor upstream) is asked for the hub's own
    // second factor, and gets no write scope.
    let other = crate::support::browser();
    let login = login_page(&other, &hub, &client_id).await;
    let to_provider = location(&work_email(&other, &hub, &login, "frank@initech.example").await);
    let back = at_the_provider(&other, &to_provider, "frank").await;
    let callback = other.get(&back).send().await.unwrap();
    let next = location(&callback);
    assert!(next.contains("/login/second-factor?"), "{next}");
    hub.stop().await;
}

#[tokio::test]
async fn a_redirect_back_that_is_not_this_browsers_starts_no_session() {
    let (hub, issuer) = hub_with_idp().await;
    let client_id = register(&hub).await;
    let browser = browser();
    let login = login_page(&browser, &hub, &client_id).await;
    let to_provider = location(&work_email(&browser, &hub, &login, "erin@initech.example").await);
    let back = at_the_provider(&browser, &to_provider, "erin").await;

    // Another browser presents the redirect back: refused.
    let stranger = crate::support::browser();
    let refused = stranger.get(&back).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.headers().get("set-cookie").is_none());

    // The right browser with a tampered state: refused too.
    let tampered = back.replace("state=", "state=x");
    let refused = browser.get(&tampered).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    let page = refused.text().await.unwrap();
    assert!(page.contains("not started in this browser"), "{page}");
    assert!(
        !page.contains("hub_signin"),
        "no session cookie is mentioned or set"
    );

    // The provider's own error, in a fresh sign-in started by the login
    // page's "Continue with Initech sign-in" button.
    let login = login_page(&browser, &hub, &client_id).await;
    let (_, page) =
        crate::support::page(&browser, &hub, login.trim_start_matches(&hub.base_url)).await;
    assert!(page.contains("Continue with Initech sign-in"), "{page}");
    let request = login.split("request=").nth(1).unwrap();
    let to_provider = location(
        &browser
            .post(format!("{}/login", hub.issuer))
            .form(&[("request", request), ("sso", "initech")])
            .send()
            .await
            .unwrap(),
    );
    assert!(to_provider.starts_with(&issuer), "{to_provider}");
    let state = url::Url::parse(&to_provider)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let denied = browser
        .get(format!(
            "{}/sso/callback?error=access_denied&state={state}",
            hub.issuer
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 400);
    assert!(!denied
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("hub_signin=")));

    let reasons: Vec<String> = audit(&hub, "user.sso.refused")
        .await
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("another browser's"), "{reasons:?}");
    assert!(reasons[1].contains("state"), "{reasons:?}");
    assert!(reasons[2].contains("access_denied"), "{reasons:?}");
    assert!(audit(&hub, "user.sso.linked").await.is_empty());
    hub.stop().await;
}

/// A provider whose ID tokens the test writes: each defect OpenID Connect
/// Core §3.1.3.7 names is refused with a sign-in error page, an audit event
/// with the reason, and no session; the same flow with a sound token signs
/// the user in, so the refusals are the defects' doing.
#[tokio::test]
async fn an_id_token_that_does_not_validate_signs_no_one_in() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn key_pem() -> String {
        use p256::pkcs8::EncodePrivateKey;
        p256::SecretKey::random(&mut rand::rngs::OsRng)
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .unwrap()
            .to_string()
    }
    let (published, other) = (key_pem(), key_pem());
    let provider = MockServer::start().await;
    let issuer = provider.uri();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(
        &EncodingKey::from_ec_pem(published.as_bytes()).unwrap(),
        Algorithm::ES256,
    )
    .unwrap();
    jwk.common.key_id = Some("k1".into());
    let mut config = config(Database::Memory);
    config.demo_idp_issuer = Some(issuer.clone());
    let hub = reference_server::spawn(config).await.expect("hub starts");
    let client_id = register(&hub).await;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sign = |claims: &Value, pem: &str, kid: &str| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(
            &header,
            claims,
            &EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let unsigned = |claims: &Value| {
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    };
    type Defect = Box<dyn Fn(Value) -> String>;
    let (good_key, other_key) = (published.clone(), other.clone());
    let cases: Vec<(&str, Defect)> = vec![
        ("unsigned", Box::new(move |c| unsigned(&c))),
        ("another key under the published kid", {
            let k = other_key.clone();
            Box::new(move |c| sign(&c, &k, "k1"))
        }),
        ("an unknown kid", {
            let k = other_key.clone();
            Box::new(move |c| sign(&c, &k, "k2"))
        }),
        ("another audience", {
            let k = good_key.clone();
            Box::new(move |mut c| {
                c["aud"] = serde_json::json!("someone-else");
                sign(&c, &k, "k1")
            })
        }),
        ("expired", {
            let k = good_key.clone();
            Box::new(move |mut c| {
                c["exp"] = serde_json::json!(now - 600);
                c["iat"] = serde_json::json!(now - 900);
                sign(&c, &k, "k1")
            })
        }),
        ("malformed", Box::new(|_| "not-a-jwt".to_owned())),
        ("sound", {
            let k = good_key.clone();
            Box::new(move |c| sign(&c, &k, "k1"))
        }),
    ];
    let metadata = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    });
    for (name, defect) in cases {
        // The provider afresh: metadata and keys; the token once the nonce is known.
        provider.reset().await;
        for (p, body) in [
            ("/.well-known/openid-configuration", metadata.clone()),
            ("/jwks", serde_json::json!({"keys": [jwk.clone()]})),
        ] {
            Mock::given(method("GET"))
                .and(path(p))
                .respond_with(ResponseTemplate::new(200).set_body_json(body))
                .mount(&provider)
                .await;
        }
        let browser = crate::support::browser();
        let login = login_page(&browser, &hub, &client_id).await;
        let to_provider =
            location(&work_email(&browser, &hub, &login, "erin@initech.example").await);
        let query: std::collections::HashMap<String, String> = url::Url::parse(&to_provider)
            .unwrap_or_else(|e| panic!("{name}: {e}: {to_provider:?}"))
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let claims = serde_json::json!({
            "iss": issuer, "sub": "erin", "aud": "hub-sso", "iat": now, "exp": now + 300,
            "nonce": query["nonce"], "email": "erin@initech.example", "email_verified": true,
            "amr": ["pwd", "otp"],
        });
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": "at", "token_type": "Bearer", "expires_in": 300,
                "id_token": defect(claims),
            })))
            .mount(&provider)
            .await;
        let back = browser
            .get(format!("{}/sso/callback", hub.issuer))
            .query(&[("code", "c1"), ("state", query["state"].as_str())])
            .send()
            .await
            .unwrap();
        let session = back
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("hub_signin="));
        if name == "sound" {
            assert_eq!(back.status(), 303, "{name}");
            assert!(session, "a sound token signs in");
        } else {
            assert_eq!(back.status(), 400, "{name}");
            assert!(!session, "{name}: no session");
        }
    }
    let reasons: Vec<String> = audit(&hub, "user.sso.refused")
        .await
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(reasons.len(), 6, "{reasons:?}");
    assert!(
        reasons[..5].iter().all(|r| r.contains("ID token")),
        "{reasons:?}"
    );
    hub.stop().await;
}

/// A tenant that moves to another provider keeps its people: an account its
/// single sign-on made is linked to the new provider's identity by the
/// verified e-mail, within the tenant; the console lists both identities.
#[tokio::test]
async fn a_tenant_that_moves_providers_keeps_its_users() {
    let (first, _) = demo::idp::spawn(
        "127.0.0.1:0".parse().unwrap(),
        demo::idp::IdpConfig::default(),
    )
    .await
    .unwrap();
    let (second, _) = demo::idp::spawn(
        "127.0.0.1:0".parse().unwrap(),
        demo::idp::IdpConfig::default(),
    )
    .await
    .unwrap();
    let mut config = config(Database::Memory);
    config.demo_idp_issuer = Some(first.clone());
    config.admin_token = Some(ADMIN.into());
    let hub = reference_server::spawn(config).await.expect("hub starts");
    let client_id = register(&hub).await;
    sign_in_erin(&hub, &client_id).await;
    let moved = client()
        .put(format!("{}/admin/tenants/initech/sso", hub.base_url))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({
            "issuer": second, "client_id": "hub-sso", "client_secret": "hub-sso-demo-secret",
            "email_domains": ["initech.example"],
            "role_mappings": [{"group": "engineering", "roles": ["calendar-writer"]}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200);
    sign_in_erin(&hub, &client_id).await;
    let linked = audit(&hub, "user.sso.linked").await;
    assert_eq!(linked.len(), 2, "{linked:?}");
    assert_eq!(linked[0]["user"], linked[1]["user"], "one user, made once");
    let second_reason = linked[1]["reason"].as_str().unwrap();
    assert!(
        second_reason.starts_with("linked to the account"),
        "{second_reason}"
    );
    let logins = audit(&hub, "user.login").await;
    assert_eq!(logins.len(), 2);
    assert_eq!(logins[0]["user"], logins[1]["user"], "the same user");
    assert_eq!(audit(&hub, "tenant.sso.configured").await.len(), 1);
    hub.stop().await;
}

/// Erin signs in through the tenant's provider in a fresh browser, as far as
/// the consent page.
async fn sign_in_erin(hub: &RunningHub, client_id: &str) {
    let browser = crate::support::browser();
    let login = authorize_calendar(&browser, hub, client_id, None).await;
    let to_provider = location(&work_email(&browser, hub, &login, "erin@initech.example").await);
    let back = at_the_provider(&browser, &to_provider, "erin").await;
    let callback = browser.get(&back).send().await.unwrap();
    assert!(location(&callback).contains("/consent?"), "signed in");
}
