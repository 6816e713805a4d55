//! The mock Demo Calendar provider's calendar API: bearer tokens it issued
//! are required, and each account keeps its own events.

use serde_json::Value;

use crate::support::{add_event, http, list_events, provider, provider_tokens, str_of};

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
