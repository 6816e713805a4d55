//! The test-mode control API, the test clock and the fault catalogue.

use reference_server::store::Database;
use reference_server::{Fault, Faults, HubConfig};
use serde_json::Value;

use crate::support::*;

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
