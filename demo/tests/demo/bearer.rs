//! The Agenda MCP server's bearer checks: the challenge without a token, and
//! refusal of tokens with the wrong audience, issuer, expiry or signing key
//! (against the hub's JWKS, refetched once for an unknown key).

use demo::agenda::AgendaFaults;
use serde_json::{json, Value};

use crate::support::{
    http, hub_key, mcp, now, result_of, setup, str_of, tools_list, www_authenticate, Mount,
};

#[tokio::test]
async fn agenda_challenges_a_request_without_a_token() {
    let setup = setup(AgendaFaults::default(), None, Mount::NestService).await;
    let response = mcp(&setup.mcp_url, None, &tools_list(1)).await;
    assert_eq!(response.status(), 401);
    let challenge = www_authenticate(&response);
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
    let list = tools_list(1);
    let expect_invalid = |response: reqwest::Response, why: &'static str| async move {
        assert_eq!(response.status(), 401, "{why}");
        let challenge = www_authenticate(&response);
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
