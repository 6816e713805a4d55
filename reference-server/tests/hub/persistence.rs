//! State that must survive a restart of the hub on the same database file.

use reference_server::store::Database;
use serde_json::Value;

use crate::support::*;

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
