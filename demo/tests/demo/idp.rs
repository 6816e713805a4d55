//! The Demo IdP as an OpenID Connect relying party sees it: discovery, the
//! JWK Set, the code flow with PKCE and a verifiable ES256 ID token, and the
//! refusals (one-time codes, PKCE, client authentication, passwords,
//! unregistered clients).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use demo::idp::IdpConfig;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::support::{http, query_param, str_of};

const CLIENT_ID: &str = "hub-sso";
const CLIENT_SECRET: &str = "hub-sso-demo-secret";
const REDIRECT_URI: &str = "http://127.0.0.1:9/oauth/sso/callback";
const VERIFIER: &str = "idp-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
const ALL_SCOPES: &str = "openid email profile groups";

/// The issuer of a fresh IdP on loopback.
async fn idp() -> String {
    let (issuer, _task) = demo::idp::spawn("127.0.0.1:0".parse().unwrap(), IdpConfig::default())
        .await
        .unwrap();
    issuer
}

/// The authorize URL with PKCE for `verifier`; `extra` overrides or adds
/// parameters, an empty value removes one.
fn authorize_url(issuer: &str, scope: &str, verifier: &str, extra: &[(&str, &str)]) -> String {
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT_URI),
        ("scope", scope),
        ("state", "st-sso"),
        ("nonce", "n-0S6_WzA2Mj"),
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
    format!("{issuer}/authorize?{query}")
}

fn ticket_of(html: &str) -> String {
    html.split("name=\"ticket\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the sign-in page carries a ticket")
        .to_owned()
}

/// Opens the sign-in page for `scope` and posts `username` and `password`.
async fn sign_in(
    client: &reqwest::Client,
    issuer: &str,
    scope: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    let page = client
        .get(authorize_url(issuer, scope, VERIFIER, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let ticket = ticket_of(&page.text().await.unwrap());
    client
        .post(format!("{issuer}/authorize"))
        .form(&[
            ("ticket", ticket.as_str()),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

/// Erin signs in; returns the authorization code from the redirect.
async fn erin_code(client: &reqwest::Client, issuer: &str) -> String {
    let answer = sign_in(
        client,
        issuer,
        ALL_SCOPES,
        "erin@initech.example",
        "erin-password",
    )
    .await;
    assert_eq!(answer.status(), 302);
    let location = answer.headers()["location"].to_str().unwrap();
    query_param(location, "code").unwrap()
}

/// `grant_type=authorization_code` for `code`, the client authenticated by Basic.
async fn redeem(
    client: &reqwest::Client,
    issuer: &str,
    code: &str,
    verifier: &str,
) -> reqwest::Response {
    client
        .post(format!("{issuer}/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap()
}

/// The claims of an ID token, verified against the IdP's JWK Set as a
/// relying party would: signature, `kid`, `iss`, `aud` and `exp`.
async fn verify_id_token(client: &reqwest::Client, issuer: &str, id_token: &str) -> Value {
    let jwks: JwkSet = client
        .get(format!("{issuer}/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let jwk = jwks
        .find(header.kid.as_deref().expect("the ID token names its key"))
        .expect("the ID token's kid is in the JWK Set");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[CLIENT_ID]);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    jsonwebtoken::decode::<Value>(id_token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap()
        .claims
}

async fn error_of(response: reqwest::Response) -> String {
    str_of(&response.json::<Value>().await.unwrap(), "error").to_owned()
}

#[tokio::test]
async fn idp_discovery_names_its_endpoints_under_the_issuer() {
    let issuer = idp().await;
    assert!(issuer.starts_with("http://127.0.0.1:") && !issuer.ends_with('/'));
    let metadata: Value = http()
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(str_of(&metadata, "issuer"), issuer);
    for (field, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("jwks_uri", "/jwks"),
        ("userinfo_endpoint", "/userinfo"),
    ] {
        assert_eq!(
            str_of(&metadata, field),
            format!("{issuer}{path}"),
            "{field}"
        );
    }
    let list = |field: &str| -> Vec<String> {
        metadata[field]
            .as_array()
            .unwrap_or_else(|| panic!("{field} in {metadata}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(list("response_types_supported"), ["code"]);
    assert_eq!(list("subject_types_supported"), ["public"]);
    assert_eq!(list("id_token_signing_alg_values_supported"), ["ES256"]);
    assert_eq!(
        list("scopes_supported"),
        ["openid", "email", "profile", "groups"]
    );
    assert_eq!(
        list("token_endpoint_auth_methods_supported"),
        ["client_secret_basic", "client_secret_post"]
    );
    assert_eq!(list("code_challenge_methods_supported"), ["S256"]);
    assert_eq!(list("grant_types_supported"), ["authorization_code"]);
    let claims = list("claims_supported");
    for claim in [
        "sub", "iss", "aud", "nonce", "email", "name", "groups", "amr",
    ] {
        assert!(claims.iter().any(|c| c == claim), "{claim}");
    }
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        true
    );
}

#[tokio::test]
async fn idp_jwks_has_one_es256_signing_key() {
    let issuer = idp().await;
    let jwks: Value = http()
        .get(format!("{issuer}/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    let key = &keys[0];
    assert_eq!(str_of(key, "kty"), "EC");
    assert_eq!(str_of(key, "crv"), "P-256");
    assert_eq!(str_of(key, "alg"), "ES256");
    assert_eq!(str_of(key, "use"), "sig");
    assert!(!str_of(key, "kid").is_empty());
    assert!(key["x"].is_string() && key["y"].is_string());
    assert!(key.get("d").is_none(), "the private key never leaves");
}

#[tokio::test]
async fn idp_code_flow_issues_a_verifiable_id_token() {
    let issuer = idp().await;
    let client = http();

    // The sign-in page: the tenant's name, labelled fields, no script.
    let page = client
        .get(authorize_url(&issuer, ALL_SCOPES, VERIFIER, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<title>Initech sign-in (Demo IdP)</title>"),
        "{html}"
    );
    assert!(html.contains("<form method=\"post\""));
    assert!(html.contains("type=\"hidden\" name=\"ticket\""));
    assert!(html.contains("name=\"username\"") && html.contains("name=\"password\""));
    assert!(html.contains("type=\"submit\""));
    assert!(!html.contains("<script"));

    // Erin signs in: code, state and iss (RFC 9207) come back.
    let answer = client
        .post(format!("{issuer}/authorize"))
        .form(&[
            ("ticket", ticket_of(&html).as_str()),
            ("username", "erin@initech.example"),
            ("password", "erin-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 302);
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    assert_eq!(query_param(&location, "state").as_deref(), Some("st-sso"));
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(issuer.as_str())
    );
    let code = query_param(&location, "code").unwrap();

    let response = redeem(&client, &issuer, &code, VERIFIER).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(str_of(&tokens, "token_type"), "Bearer");
    assert!(tokens["expires_in"].as_u64().unwrap() > 0);
    assert_eq!(str_of(&tokens, "scope"), ALL_SCOPES);

    let claims = verify_id_token(&client, &issuer, str_of(&tokens, "id_token")).await;
    assert_eq!(str_of(&claims, "iss"), issuer);
    assert_eq!(str_of(&claims, "aud"), CLIENT_ID);
    assert_eq!(str_of(&claims, "nonce"), "n-0S6_WzA2Mj");
    assert_eq!(str_of(&claims, "sub"), "initech-erin");
    assert_eq!(str_of(&claims, "email"), "erin@initech.example");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(str_of(&claims, "name"), "Erin Hannon");
    assert_eq!(
        claims["groups"],
        serde_json::json!(["engineering", "mcp-admins"])
    );
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp"]));
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(claims["exp"].as_u64().unwrap(), iat + 300);
    assert!(claims["auth_time"].as_u64().unwrap() <= iat);

    // The access token reads the same claims at /userinfo.
    let info: Value = client
        .get(format!("{issuer}/userinfo"))
        .bearer_auth(str_of(&tokens, "access_token"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(str_of(&info, "sub"), "initech-erin");
    assert_eq!(str_of(&info, "email"), "erin@initech.example");
    assert_eq!(info["groups"], claims["groups"]);
}

#[tokio::test]
async fn idp_claims_follow_the_scopes() {
    let issuer = idp().await;
    let client = http();
    let answer = sign_in(
        &client,
        &issuer,
        "openid unknown-scope",
        "FRANK@initech.example",
        "frank-password",
    )
    .await;
    assert_eq!(answer.status(), 302);
    let code = query_param(answer.headers()["location"].to_str().unwrap(), "code").unwrap();
    let tokens: Value = redeem(&client, &issuer, &code, VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        str_of(&tokens, "scope"),
        "openid",
        "unknown scopes are ignored"
    );
    let claims = verify_id_token(&client, &issuer, str_of(&tokens, "id_token")).await;
    assert_eq!(str_of(&claims, "sub"), "initech-frank");
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    for absent in ["email", "email_verified", "name", "groups"] {
        assert!(claims.get(absent).is_none(), "{absent} in {claims}");
    }
}

#[tokio::test]
async fn idp_code_is_single_use() {
    let issuer = idp().await;
    let client = http();
    let code = erin_code(&client, &issuer).await;
    // client_secret_post this time.
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    let first = client
        .post(format!("{issuer}/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let access_token = str_of(&first.json::<Value>().await.unwrap(), "access_token").to_owned();

    let second = client
        .post(format!("{issuer}/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 400);
    assert_eq!(error_of(second).await, "invalid_grant");

    // The replay revoked what the code had issued.
    let info = client
        .get(format!("{issuer}/userinfo"))
        .bearer_auth(&access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 401);
    assert!(info.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"invalid_token\""));
}

#[tokio::test]
async fn idp_wrong_code_verifier_is_invalid_grant() {
    let issuer = idp().await;
    let client = http();
    let code = erin_code(&client, &issuer).await;
    let wrong = redeem(
        &client,
        &issuer,
        &code,
        "wrong-verifier-0123456789-abcdefghijklmnopqrstuvwxyz",
    )
    .await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(error_of(wrong).await, "invalid_grant");
    // The failed attempt burnt the code.
    let late = redeem(&client, &issuer, &code, VERIFIER).await;
    assert_eq!(error_of(late).await, "invalid_grant");

    // So does a redirect_uri other than the authorization request's.
    let code = erin_code(&client, &issuer).await;
    let elsewhere = client
        .post(format!("{issuer}/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(elsewhere).await, "invalid_grant");
}

#[tokio::test]
async fn idp_wrong_client_secret_is_invalid_client() {
    let issuer = idp().await;
    let client = http();
    let code = erin_code(&client, &issuer).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
    ];
    let basic = client
        .post(format!("{issuer}/token"))
        .basic_auth(CLIENT_ID, Some("not-the-secret"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    assert!(basic.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic "));
    assert_eq!(error_of(basic).await, "invalid_client");

    let mut post = form.to_vec();
    post.extend([
        ("client_id", CLIENT_ID),
        ("client_secret", "not-the-secret"),
    ]);
    let posted = client
        .post(format!("{issuer}/token"))
        .form(&post)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 401);
    assert_eq!(error_of(posted).await, "invalid_client");

    // Client authentication failed before the code was looked at: it still works.
    let right = redeem(&client, &issuer, &code, VERIFIER).await;
    assert_eq!(right.status(), 200);
}

#[tokio::test]
async fn idp_wrong_password_is_401_without_redirect() {
    let issuer = idp().await;
    let client = http();
    for (username, password) in [
        ("erin@initech.example", "frank-password"),
        ("nobody@initech.example", "erin-password"),
    ] {
        let answer = sign_in(&client, &issuer, ALL_SCOPES, username, password).await;
        assert_eq!(answer.status(), 401, "{username}");
        assert!(answer.headers().get("location").is_none());
        let html = answer.text().await.unwrap();
        assert!(html.contains("The e-mail address or password is incorrect."));
        assert!(html.contains("Initech sign-in (Demo IdP)"));
        assert!(!html.contains(password), "the password is not echoed");
    }
}

#[tokio::test]
async fn idp_missing_code_challenge_redirects_invalid_request() {
    let issuer = idp().await;
    let client = http();
    for (extra, error) in [
        (("code_challenge", ""), "invalid_request"),
        (("code_challenge_method", "plain"), "invalid_request"),
        (("scope", "email profile"), "invalid_scope"),
        (("response_type", "token"), "unsupported_response_type"),
        (("prompt", "none"), "login_required"),
    ] {
        let response = client
            .get(authorize_url(&issuer, ALL_SCOPES, VERIFIER, &[extra]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302, "{extra:?}");
        let location = response.headers()["location"].to_str().unwrap();
        assert!(location.starts_with(REDIRECT_URI), "{location}");
        assert_eq!(query_param(location, "error").as_deref(), Some(error));
        assert_eq!(query_param(location, "state").as_deref(), Some("st-sso"));
        assert_eq!(
            query_param(location, "iss").as_deref(),
            Some(issuer.as_str())
        );
        assert_eq!(query_param(location, "code"), None);
    }
}

#[tokio::test]
async fn idp_unknown_client_gets_an_error_page() {
    let issuer = idp().await;
    let client = http();
    for extra in [
        ("client_id", "evil"),
        ("client_id", ""),
        ("redirect_uri", "not a url"),
        ("redirect_uri", "javascript:alert(1)"),
    ] {
        let response = client
            .get(authorize_url(&issuer, ALL_SCOPES, VERIFIER, &[extra]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{extra:?}");
        assert!(response.headers().get("location").is_none());
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let html = response.text().await.unwrap();
        assert!(html.contains("The Demo IdP cannot continue"), "{html}");
        assert!(!html.contains("<script"));
    }
}

#[tokio::test]
async fn idp_cancel_sends_access_denied() {
    let issuer = idp().await;
    let client = http();
    let page = client
        .get(authorize_url(&issuer, ALL_SCOPES, VERIFIER, &[]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let answer = client
        .post(format!("{issuer}/authorize"))
        .form(&[
            ("ticket", ticket_of(&page).as_str()),
            ("decision", "cancel"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 302);
    let location = answer.headers()["location"].to_str().unwrap();
    assert_eq!(
        query_param(location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(location, "code"), None);
    // The ticket is gone: answering again is an error page, not a redirect.
    let again = client
        .post(format!("{issuer}/authorize"))
        .form(&[
            ("ticket", ticket_of(&page).as_str()),
            ("username", "erin@initech.example"),
            ("password", "erin-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
}

#[tokio::test]
async fn idp_hostile_input_gets_4xx_never_5xx() {
    let issuer = idp().await;
    let client = http();
    let token = format!("{issuer}/token");
    let cases: Vec<reqwest::RequestBuilder> = vec![
        client.post(&token),
        client.post(&token).body("%%%&&&==="),
        client
            .post(&token)
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[("grant_type", "authorization_code"), ("grant_type", "x")]),
        client
            .post(&token)
            .header("authorization", "Basic !!!not-base64")
            .form(&[("grant_type", "authorization_code")]),
        client
            .post(&token)
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")]),
        client
            .post(&token)
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", "idp_code_forged"),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", VERIFIER),
            ]),
        client.post(&token).body(vec![b'a'; 64 * 1024]),
        client
            .post(format!("{issuer}/authorize"))
            .body("ticket=forged"),
        client
            .post(format!("{issuer}/authorize"))
            .body(vec![0xff; 100]),
        client.get(authorize_url(
            &issuer,
            ALL_SCOPES,
            VERIFIER,
            &[("state", &"s".repeat(20_000))],
        )),
        client.get(format!("{issuer}/authorize?client_id=a&client_id=b")),
        client.get(format!("{issuer}/userinfo")),
        client
            .get(format!("{issuer}/userinfo"))
            .bearer_auth("forged"),
    ];
    for (i, request) in cases.into_iter().enumerate() {
        let response = request.send().await.unwrap();
        let status = response.status();
        assert!(status.is_client_error(), "case {i}: {status}");
    }
}
