//! The Connections vault: nothing in plaintext at rest, refusal of a missing
//! or wrong key, single-flight refresh, and the demo path end to end.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use reference_server::store::Database;
use reference_server::{Fault, Faults, RunningHub};
use serde_json::{json, Value};

use crate::support::*;

/// Every byte of the database files (main file and write-ahead log).
fn database_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if let Ok(b) = std::fs::read(&file) {
            bytes.extend(b);
        }
    }
    bytes
}

/// Stores a token and a client secret through the admin API of a hub on a
/// database file, then returns the file's bytes.
async fn vault_bytes(faults: Vec<Fault>, name: &str) -> Vec<u8> {
    let path = std::env::temp_dir().join(format!("hub-vault-{name}-{}.sqlite", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let mut config = config(Database::File(path.clone()));
    config.admin_token = Some(ADMIN.into());
    config.faults = Faults::new(faults);
    let hub = reference_server::spawn(config).await.expect("hub starts");
    let put = |url: String, body: Value| async move {
        let response = client()
            .put(url)
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    };
    let (status, body) = put(
        format!("{}/admin/connections/vault-probe", hub.base_url),
        json!({"type": "oauth2", "token_endpoint": "http://127.0.0.2:9/token", "client_id": "c",
               "client_secret": "CLIENT-SECRET-PLAINTEXT-MARKER", "scopes": ["read"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(!body.contains("CLIENT-SECRET-PLAINTEXT-MARKER"), "{body}");
    let (status, body) = put(
        format!("{}/admin/connections/vault-probe/tokens", hub.base_url),
        json!({"owner": {"user": "alice"}, "access_token": "ACCESS-TOKEN-PLAINTEXT-MARKER",
               "refresh_token": "REFRESH-TOKEN-PLAINTEXT-MARKER", "expires_in": 3600}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("TOKEN-PLAINTEXT-MARKER"), "{body}");
    hub.stop().await;
    let bytes = database_bytes(&path);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    bytes
}

/// Proves the `plaintext-vault` fault is caught (the sensitivity matrix names this test).
#[tokio::test]
async fn the_database_file_holds_no_plaintext_connection_secret() {
    let sealed = vault_bytes(Vec::new(), "sealed").await;
    assert!(sealed.len() > 4096, "the database was written");
    for marker in [
        "ACCESS-TOKEN-PLAINTEXT-MARKER",
        "REFRESH-TOKEN-PLAINTEXT-MARKER",
        "CLIENT-SECRET-PLAINTEXT-MARKER",
    ] {
        assert!(
            !contains(&sealed, marker),
            "{marker} is in the database file"
        );
    }
    let plain = vault_bytes(vec![Fault::PlaintextVault], "plain").await;
    assert!(
        contains(&plain, "ACCESS-TOKEN-PLAINTEXT-MARKER"),
        "the check must see a token stored without encryption"
    );
}

#[tokio::test]
async fn the_hub_refuses_to_start_without_a_right_vault_key() {
    let empty_seed = std::env::temp_dir().join(format!("hub-empty-seed-{}", std::process::id()));
    std::fs::create_dir_all(&empty_seed).unwrap();
    let mut no_key = config(Database::Memory);
    no_key.seed_dir = Some(empty_seed.clone());
    let err = reference_server::spawn(no_key)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("no vault key"), "{err}");

    let mut malformed = config(Database::Memory);
    malformed.vault_keys = vec!["k1:not-base64!".into()];
    let err = reference_server::spawn(malformed)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("not base64"), "{err}");

    // A database sealed under one key refuses a different key with the same id,
    // and a configuration that lacks a key id the database uses.
    let path = std::env::temp_dir().join(format!("hub-vault-keys-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let key = |byte: u8| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    };
    let mut first = config(Database::File(path.clone()));
    first.vault_keys = vec![format!("prod:{}", key(1))];
    reference_server::spawn(first)
        .await
        .expect("first start")
        .stop()
        .await;
    let mut wrong = config(Database::File(path.clone()));
    wrong.vault_keys = vec![format!("prod:{}", key(2))];
    let err = reference_server::spawn(wrong).await.err().expect("refused");
    assert!(err.to_string().contains("does not open"), "{err}");
    let mut rotated = config(Database::File(path.clone()));
    rotated.vault_keys = vec![format!("next:{}", key(3)), format!("prod:{}", key(1))];
    reference_server::spawn(rotated)
        .await
        .expect("rotation starts")
        .stop()
        .await;
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir_all(&empty_seed);
}

/// A wiremock provider whose token endpoint rotates refresh tokens; answers
/// `rt-1` → (`at-2`, `rt-2`). Returns how many refresh grants it saw.
async fn rotating_provider() -> wiremock::MockServer {
    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, ResponseTemplate};
    let server = wiremock::MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("refresh_token=rt-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at-2", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "rt-2", "scope": "read write"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})))
        .mount(&server)
        .await;
    server
}

async fn agent_token(hub: &RunningHub) -> String {
    let body: Value = client()
        .post(format!("{}/token", hub.issuer))
        .basic_auth(REPORTER.0, Some(REPORTER.1))
        .form(&[
            ("grant_type", "client_credentials"),
            ("resource", &format!("{}/mcp/calendar", hub.base_url)),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"]
        .as_str()
        .expect("agent token")
        .to_owned()
}

async fn fetch_connection(hub: &RunningHub, subject: &str, connection: &str) -> (u16, Value) {
    let response = client()
        .post(format!("{}/token", hub.issuer))
        .basic_auth(REPORTER.0, Some(REPORTER.1))
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", subject),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("resource", &format!("urn:hub:connection:{connection}")),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_expired_connection_token_is_refreshed_once_and_the_rotation_kept() {
    let provider = rotating_provider().await;
    let hub = start_with_admin().await;
    let admin_put = |url: String, body: Value| async move {
        let r = client()
            .put(url)
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    };
    admin_put(
        format!("{}/admin/connections/probe", hub.base_url),
        json!({"type": "oauth2", "token_endpoint": format!("{}/token", provider.uri()),
               "client_id": "hub", "client_secret": "s", "scopes": ["read", "write"],
               "allowed_clients": ["agent-reporter"]}),
    )
    .await;
    admin_put(
        format!("{}/admin/connections/probe/tokens", hub.base_url),
        json!({"owner": {"agent": "agent-reporter"}, "access_token": "at-1",
               "refresh_token": "rt-1", "expires_in": 0}),
    )
    .await;
    let subject = agent_token(&hub).await;
    let fetches = (0..20).map(|_| fetch_connection(&hub, &subject, "probe"));
    let results = futures_util::future::join_all(fetches).await;
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["access_token"], "at-2", "{body}");
        assert_eq!(
            body["issued_token_type"],
            "urn:ietf:params:oauth:token-type:access_token"
        );
    }
    let refreshes = provider.received_requests().await.unwrap_or_default();
    assert_eq!(
        refreshes.len(),
        1,
        "one upstream refresh for 20 concurrent fetches"
    );
    assert!(String::from_utf8_lossy(&refreshes[0].body).contains("refresh_token=rt-1"));

    // The rotated refresh token was kept: expire again, the next refresh presents rt-2.
    advance_clock(&hub, 7200).await;
    let subject = agent_token(&hub).await;
    let (status, body) = fetch_connection(&hub, &subject, "probe").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "reauthorization_required", "{body}");
    let requests = provider.received_requests().await.unwrap_or_default();
    assert!(String::from_utf8_lossy(&requests[1].body).contains("refresh_token=rt-2"));
    // Marked for re-authorization: no retry storm upstream.
    let (status, _) = fetch_connection(&hub, &subject, "probe").await;
    assert_eq!(status, 400);
    assert_eq!(provider.received_requests().await.unwrap().len(), 2);
    let refreshed = audit(&hub, "connection.refreshed").await;
    let failed = audit(&hub, "connection.refresh_failed").await;
    assert_eq!((refreshed.len(), failed.len()), (1, 1));
    let trail = serde_json::to_string(&audit(&hub, "").await).unwrap();
    for secret in ["at-1", "at-2", "rt-1\"", "rt-2"] {
        assert!(
            !trail.contains(secret),
            "{secret} leaked into the audit trail"
        );
    }
    hub.stop().await;
}

/// The README's demo path, end to end: alice connects the demo provider in a
/// browser-like client, then an MCP client calls the Agenda MCP server, which
/// reads her calendar through the vault.
#[tokio::test]
async fn the_demo_path_connects_the_provider_and_the_agenda_reads_the_calendar() {
    let provider = demo::provider::spawn(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        demo::provider::ProviderConfig::default(),
    )
    .await
    .expect("provider");
    let mut config = config(Database::Memory);
    config.agenda = Some(reference_server::AgendaSettings::demo(
        "s20CX9_QyYGV8dHbXnN9b5hEpvFFudFja05vksJZ4_U",
    ));
    config.demo_provider_url = Some(provider.url.clone());
    let hub = reference_server::spawn(config).await.expect("hub");
    let browser = client();

    // 1. Connect: sign in at the hub, approve at the provider, back to the hub.
    let connect = format!("{}/connections/demo-calendar/connect", hub.issuer);
    let page = browser.get(&connect).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Connect Demo Calendar"));
    let to_provider = browser
        .post(&connect)
        .form(&[("username", "alice"), ("password", "alice-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(to_provider.status(), 303);
    let authorize = to_provider.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let url = url::Url::parse(&authorize).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert!(authorize.starts_with(&provider.url));
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(query["state"].len() >= 16);
    let approve_page = browser
        .get(&authorize)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ticket = approve_page
        .split("name=\"ticket\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("ticket")
        .to_owned();
    let back = browser
        .post(format!("{}/authorize", provider.url))
        .form(&[
            ("ticket", ticket.as_str()),
            ("account", "alice"),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 302);
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(&format!(
        "{}/connections/demo-calendar/callback",
        hub.issuer
    )));
    let connected = browser.get(&callback).send().await.unwrap();
    assert_eq!(connected.status(), 200);
    assert!(connected.text().await.unwrap().contains("is connected"));
    // A replayed callback is refused: the state was single-use.
    assert_eq!(browser.get(&callback).send().await.unwrap().status(), 400);

    // 2. An MCP client with alice's token for the Agenda MCP server calls a tool.
    let client_id = register(&hub).await;
    let verifier = "a-verifier-that-is-long-enough-for-pkce-rules-agenda";
    let code = code_for_resource(&hub, &client_id, verifier, "/mcp/agenda").await;
    let body: Value = redeem(&hub, &code, &client_id, verifier)
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().expect("token").to_owned();
    let call = |name: &'static str, arguments: Value| {
        let token = token.clone();
        let url = format!("{}/mcp/agenda", hub.base_url);
        async move {
            let r = client()
                .post(url)
                .bearer_auth(token)
                .header("accept", "application/json, text/event-stream")
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                              "params": {"name": name, "arguments": arguments}}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, text) = call("calendar_read", json!({})).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"isError\":false"), "{text}");
    assert!(
        text.contains("stand-up") || text.contains("title"),
        "{text}"
    );
    let (status, text) = call(
        "calendar_write",
        json!({"title": "Demo", "start": "2026-12-01T10:00:00Z"}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"isError\":false"), "{text}");
    let stats = provider.stats();
    assert_eq!(stats.codes_redeemed, 1);
    assert!(stats.api_authorized >= 2, "{stats:?}");
    assert_eq!(stats.api_refused, 0, "{stats:?}");
    assert!(!audit(&hub, "connection.token.issued").await.is_empty());
    assert!(!audit(&hub, "tool.executed").await.is_empty());
    hub.stop().await;
}
