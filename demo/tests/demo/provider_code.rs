//! The mock Demo Calendar provider's authorization code flow: the approve
//! page, PKCE (S256 only), client and redirect URI checks, one-time codes,
//! and the user's refusal.

use serde_json::Value;

use crate::support::{
    approve, authorize_url, http, list_events, provider, query_param, redeem_code, str_of,
    REDIRECT_URI,
};

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
    let wrong = redeem_code(
        &client,
        &provider,
        &code,
        REDIRECT_URI,
        "wrong-verifier-0123456789-abcdefghijklmnopqrstu",
    )
    .await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(
        str_of(&wrong.json::<Value>().await.unwrap(), "error"),
        "invalid_grant"
    );
    let late = redeem_code(
        &client,
        &provider,
        &code,
        REDIRECT_URI,
        "right-verifier-0123456789-abcdefghijklmnopqrstu",
    )
    .await;
    assert_eq!(late.status(), 400);
    assert_eq!(
        str_of(&late.json::<Value>().await.unwrap(), "error"),
        "invalid_grant"
    );

    // A redirect_uri that differs from the authorization request's is refused.
    let location = approve(&client, &provider, "calendar.read", verifier, "allow").await;
    let other = redeem_code(
        &client,
        &provider,
        query_param(&location, "code").unwrap().as_str(),
        "http://127.0.0.1:9/elsewhere",
        verifier,
    )
    .await;
    assert_eq!(
        str_of(&other.json::<Value>().await.unwrap(), "error"),
        "invalid_grant"
    );

    // The right verifier on a fresh code: RFC 6749 §5.1, not cached.
    let location = approve(&client, &provider, "calendar.read", verifier, "allow").await;
    let response = redeem_code(
        &client,
        &provider,
        query_param(&location, "code").unwrap().as_str(),
        REDIRECT_URI,
        verifier,
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
