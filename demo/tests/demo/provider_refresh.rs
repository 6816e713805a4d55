//! The mock Demo Calendar provider's refresh grant: rotation, spent tokens,
//! client authentication, and narrowing the scope within the original grant.

use serde_json::Value;

use crate::support::{
    add_event, http, list_events, provider, provider_tokens, str_of, token_request,
    www_authenticate,
};

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
    let challenge = www_authenticate(&refused);
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
