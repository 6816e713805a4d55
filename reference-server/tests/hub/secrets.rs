//! Client secrets by kind (docs/secrets.md): a generated secret verifies as a
//! salted SHA-256 digest, a chosen one with argon2id, and a generated secret
//! an earlier hub stored under argon2id becomes a digest the first time it
//! verifies, without anyone doing anything.

use reference_server::store::{Database, Store};
use serde_json::json;

use crate::support::*;

/// A client provisioned through the control API, which stores any secret it
/// is given under argon2id, as every secret was stored before the kinds.
async fn provision(hub: &reference_server::RunningHub, client_id: &str, secret: &str) {
    let answer = client()
        .post(format!("{}/control/clients", hub.base_url))
        .bearer_auth(CONTROL)
        .json(&json!({
            "client_id": client_id,
            "name": client_id,
            "secret": secret,
            "grant_types": ["client_credentials"],
            "allowed_resources": ["calendar"],
            "allowed_scopes": ["calendar.read"],
            "tenant": "acme",
        }))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
}

async fn token_status(hub: &reference_server::RunningHub, client_id: &str, secret: &str) -> u16 {
    client()
        .post(format!("{}/token", hub.issuer))
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "calendar.read"),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn stored(path: &std::path::Path, client_id: &str) -> String {
    let store = Store::open(&Database::File(path.to_path_buf()))
        .await
        .unwrap();
    store
        .client(client_id)
        .await
        .unwrap()
        .and_then(|c| c.secret_hash)
        .unwrap_or_default()
}

#[tokio::test]
async fn a_generated_secret_under_argon2id_becomes_a_digest_when_it_first_verifies() {
    let dir = fresh_dir("secrets");
    let path = dir.join("hub.sqlite");
    let hub = reference_server::spawn(config(Database::File(path.clone())))
        .await
        .unwrap();
    let generated = reference_server::random::secret();
    provision(&hub, "agent-migrated", &generated).await;
    provision(&hub, "agent-chosen", "a secret a person chose").await;
    assert!(stored(&path, "agent-migrated")
        .await
        .starts_with("$argon2id$"));

    assert_eq!(token_status(&hub, "agent-migrated", &generated).await, 200);
    assert!(
        stored(&path, "agent-migrated")
            .await
            .starts_with("$sha256$"),
        "re-stored as a digest"
    );
    assert_eq!(token_status(&hub, "agent-migrated", &generated).await, 200);
    assert_eq!(token_status(&hub, "agent-migrated", "wrong").await, 401);
    // A chosen secret stays under argon2id.
    assert_eq!(
        token_status(&hub, "agent-chosen", "a secret a person chose").await,
        200
    );
    assert!(stored(&path, "agent-chosen")
        .await
        .starts_with("$argon2id$"));
    hub.stop().await;
    // And the digest still verifies after a restart.
    let hub = reference_server::spawn(config(Database::File(path.clone())))
        .await
        .unwrap();
    assert_eq!(token_status(&hub, "agent-migrated", &generated).await, 200);
    hub.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// An agent the admin API creates gets a generated secret, stored as a digest.
#[tokio::test]
async fn an_agent_the_hub_creates_gets_a_digest() {
    let hub = start_with_admin().await;
    let created = json_of(
        client()
            .post(format!("{}/admin/agents", hub.base_url))
            .bearer_auth(ADMIN)
            .json(&json!({
                "name": "digest agent",
                "tenant": "acme",
                "allowed_resources": ["calendar"],
                "allowed_scopes": ["calendar.read"],
                "grant_types": ["client_credentials"],
            })),
    )
    .await;
    let (id, secret) = (
        created["client_id"].as_str().expect("client_id").to_owned(),
        created["client_secret"]
            .as_str()
            .expect("client_secret")
            .to_owned(),
    );
    assert_eq!(token_status(&hub, &id, &secret).await, 200);
    assert_eq!(token_status(&hub, &id, "wrong").await, 401);
    hub.stop().await;
}
