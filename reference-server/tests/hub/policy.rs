//! MCP Server Policies through the admin API.

use reference_server::RunningHub;
use serde_json::{json, Value};

use crate::support::*;

async fn create_policy(hub: &RunningHub, draft: Value) -> (u16, Value) {
    let response = client()
        .post(format!("{}/admin/policies", hub.base_url))
        .bearer_auth(ADMIN)
        .json(&draft)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn malformed_policies_get_precise_errors_never_500() {
    let hub = start_with_admin().await;
    let grants = json!([{"mcp_server": "lab", "scopes": ["lab.read"]}]);
    let many: Vec<Value> = (0..1000)
        .map(|i| json!({"key": "user.roles", "operator": "equal", "value": format!("r{i}")}))
        .collect();
    for (draft, needle) in [
        (json!({"name": 5, "grants": grants}), "name"),
        (
            json!({"name": "x", "grants": grants, "priority": 1}),
            "priority",
        ),
        (
            json!({"name": "x", "conditions": [{"key": "user.shoe_size", "operator": "equal", "value": "9"}], "grants": grants}),
            "user.shoe_size",
        ),
        (
            json!({"name": "x", "conditions": [{"key": "user.roles", "operator": "in", "value": "admin"}], "grants": grants}),
            "in",
        ),
        (
            json!({"name": "x", "conditions": many, "grants": grants}),
            "64",
        ),
        (
            json!({"name": "x", "grants": [{"mcp_server": "lab", "scopes": ["lab.fly"]}]}),
            "lab.fly",
        ),
        (json!("not an object"), ""),
    ] {
        let (status, body) = create_policy(&hub, draft.clone()).await;
        assert_eq!(status, 400, "{draft}: {body}");
        assert_eq!(body["error"], "invalid_policy", "{body}");
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(description.contains(needle), "{description} names {needle}");
    }
    // A claim path into nested or missing claims is valid; it simply does not match.
    let (status, body) = create_policy(
        &hub,
        json!({"name": "nested", "conditions": [{"key": "jwtClaims.org.unit.name", "operator": "equal", "value": "x"}], "grants": grants}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let deleted = client()
        .delete(format!("{}/admin/policies/{id}", hub.base_url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let again = client()
        .delete(format!("{}/admin/policies/{id}", hub.base_url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    let unauthenticated = client()
        .get(format!("{}/admin/policies", hub.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(audit(&hub, "policy.created").await.len(), 8);
    assert_eq!(audit(&hub, "policy.deleted").await.len(), 1);
    hub.stop().await;
}
