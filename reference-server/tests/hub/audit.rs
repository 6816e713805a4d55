//! The audit trail: every step recorded without secrets, the webhook's
//! ordered delivery across a restart, and the live feed.

use reference_server::store::Database;
use reference_server::{Fault, Faults};
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn every_step_of_a_flow_is_audited_without_secrets() {
    let hub = start().await;
    let client_id = register(&hub).await;
    let verifier = "another-verifier-long-enough-for-pkce-0123456789abcdef";
    let code = code_for(&hub, &client_id, verifier).await;
    let response = redeem(&hub, &code, &client_id, verifier).await;
    assert_eq!(response.status(), 200);
    let token: Value = response.json().await.unwrap();
    let access_token = token["access_token"].as_str().unwrap().to_owned();
    // A replay is refused and audited with its reason.
    let replay = redeem(&hub, &code, &client_id, verifier).await;
    assert_eq!(replay.status(), 400);

    for kind in [
        "client.registered",
        "user.login",
        "consent.granted",
        "token.issued",
        "token.refused",
    ] {
        assert!(!audit(&hub, kind).await.is_empty(), "no {kind} event");
    }
    let issued = &audit(&hub, "token.issued").await[0];
    assert_eq!(issued["user"], "user-alice");
    assert_eq!(issued["tenant"], "acme");
    assert_eq!(
        issued["scopes_granted"],
        json!(["calendar.read", "calendar.write"])
    );
    let granted = &audit(&hub, "consent.granted").await[0];
    assert_eq!(
        issued["correlation_id"], granted["correlation_id"],
        "one flow, one correlation id"
    );
    let refused = &audit(&hub, "token.refused").await[0];
    assert!(refused["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("already used"));

    let everything = serde_json::to_string(&audit(&hub, "").await).unwrap();
    let all: Value = client()
        .get(format!("{}/control/audit", hub.base_url))
        .bearer_auth(CONTROL)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let all = all.to_string() + &everything;
    for secret in [
        code.as_str(),
        verifier,
        access_token.as_str(),
        "alice-password",
    ] {
        assert!(!all.contains(secret), "a secret reached the audit trail");
    }
    hub.stop().await;
}

/// Every CloudEvent the webhook endpoint accepted (2xx), in arrival order.
async fn delivered(server: &wiremock::MockServer) -> Vec<Value> {
    let mut out = Vec::new();
    for request in server.received_requests().await.unwrap_or_default() {
        if let Ok(Value::Array(batch)) = serde_json::from_slice::<Value>(&request.body) {
            out.extend(batch);
        }
    }
    out
}

/// Waits (bounded) until `cond` holds for what the endpoint received.
async fn until_delivered(
    server: &wiremock::MockServer,
    cond: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let got = delivered(server).await;
        if cond(&got) || std::time::Instant::now() > deadline {
            return got;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn webhook_across_restart(faults: Vec<Fault>) -> (Vec<i64>, i64) {
    use wiremock::matchers::method;
    use wiremock::{Mock, ResponseTemplate};
    let path = std::env::temp_dir().join(format!(
        "hub-webhook-{}-{}.sqlite",
        std::process::id(),
        faults.len()
    ));
    let _ = std::fs::remove_file(&path);
    // The endpoint is down while the first hub runs.
    let down = wiremock::MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&down)
        .await;
    let mut first = config(Database::File(path.clone()));
    first.audit_webhook = Some(format!("{}/audit", down.uri()));
    let hub = reference_server::spawn(first).await.unwrap();
    for _ in 0..3 {
        register(&hub).await;
    }
    let last_before: Value = client()
        .get(format!("{}/control/audit?limit=0", hub.base_url))
        .bearer_auth(CONTROL)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let last_before = last_before["last_seq"].as_i64().unwrap();
    let attempted = until_delivered(&down, |events| !events.is_empty()).await;
    assert!(!attempted.is_empty(), "delivery was attempted");
    hub.stop().await;

    // It comes back; so does the hub, on the same database.
    let up = wiremock::MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&up)
        .await;
    let mut second = config(Database::File(path.clone()));
    second.audit_webhook = Some(format!("{}/audit", up.uri()));
    second.faults = Faults::new(faults);
    let hub = reference_server::spawn(second).await.unwrap();
    register(&hub).await;
    let got = until_delivered(&up, |events| {
        events.iter().any(|e| {
            e["data"]["type"] == "client.registered" && e["sequence"].as_i64() > Some(last_before)
        })
    })
    .await;
    hub.stop().await;
    let _ = std::fs::remove_file(&path);
    for event in &got {
        assert_eq!(event["specversion"], "1.0");
        assert!(event["type"]
            .as_str()
            .unwrap_or_default()
            .starts_with("dev.agentic-identity-hub.audit."));
    }
    (
        got.iter().filter_map(|e| e["sequence"].as_i64()).collect(),
        last_before,
    )
}

#[tokio::test]
async fn the_audit_webhook_delivers_everything_in_order_across_a_restart() {
    let (sequences, last_before) = webhook_across_restart(Vec::new()).await;
    assert!(
        sequences.windows(2).all(|w| w[0] < w[1]),
        "in order: {sequences:?}"
    );
    let expected: Vec<i64> = (1..=*sequences.last().unwrap()).collect();
    assert_eq!(sequences, expected, "no loss, no repeat");
    assert!(
        sequences.len() as i64 > last_before,
        "events from before the restart arrived"
    );
    // The same check catches a hub that forgets undelivered events on restart.
    let (lossy, last_before) =
        webhook_across_restart(vec![Fault::WebhookLosesEventsOnRestart]).await;
    assert!(
        lossy.first().copied().unwrap_or(i64::MAX) > last_before,
        "the fault loses the events from before the restart: {lossy:?}"
    );
}

#[tokio::test]
async fn the_live_audit_feed_streams_events_as_they_are_written() {
    let hub = start_with_admin().await;
    let mut feed = client()
        .get(format!("{}/admin/audit/stream", hub.base_url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    assert!(feed.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let client_id = register(&hub).await;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.contains(&client_id) {
        let chunk = tokio::time::timeout_at(deadline, feed.chunk())
            .await
            .expect("an event within the deadline")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: audit"), "{seen}");
    assert!(seen.contains("client.registered"), "{seen}");
    // An open stream would hold a graceful shutdown.
    drop(feed);
    let unauthenticated = client()
        .get(format!("{}/admin/audit/stream", hub.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    hub.stop().await;
}

/// A resource server reports tool executions for its own MCP server only:
/// the Agenda server's credentials cannot file events for the calendar
/// server, and a report for its own server must carry a token valid there.
#[tokio::test]
async fn a_resource_server_reports_tool_executions_for_itself_only() {
    // The Agenda server's credentials reporting a tool run at `resource`.
    let report = |hub: &reference_server::RunningHub, resource: &str, token: Option<&str>| {
        let mut body = serde_json::json!({
            "tool": "calendar_create",
            "resource": resource_url(hub, resource),
            "client_id": "someone-else",
            "user": "user-bob",
        });
        if let Some(token) = token {
            body["token"] = serde_json::json!(token);
        }
        client()
            .post(format!("{}/audit/tool-executions", hub.issuer))
            .basic_auth(
                "rs-agenda",
                Some("s20CX9_QyYGV8dHbXnN9b5hEpvFFudFja05vksJZ4_U"),
            )
            .json(&body)
            .send()
    };
    let hub = start().await;
    let foreign = report(&hub, "calendar", None).await.unwrap();
    assert_eq!(foreign.status(), 400);
    let body: serde_json::Value = foreign.json().await.unwrap();
    assert_eq!(body["error"], "invalid_target");
    let forged = report(&hub, "agenda", Some("not-a-token")).await.unwrap();
    assert_eq!(forged.status(), 400);
    let body: serde_json::Value = forged.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    hub.stop().await;
    // The same check catches a hub that files any server's report.
    let lax = start_with_faults(vec![Fault::ToolReportForAnyServer]).await;
    let filed = report(&lax, "calendar", None).await.unwrap();
    assert!(
        filed.status().is_success(),
        "the fault files it: {}",
        filed.status()
    );
    lax.stop().await;
}

/// The resource URL of the seeded MCP server `id`.
fn resource_url(hub: &reference_server::RunningHub, id: &str) -> String {
    hub.resources
        .iter()
        .find(|(server, _)| server == id)
        .map(|(_, url)| url.clone())
        .unwrap_or_else(|| panic!("no MCP server {id}"))
}

/// The JSON Lines lines so far, as parsed JSON (a partial last line is kept as text).
fn jsonl_seqs(path: &std::path::Path) -> Vec<i64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["seq"].as_i64())
        .collect()
}

/// Waits (bounded) until the file holds `n` events.
async fn until_written(path: &std::path::Path, n: usize) -> Vec<i64> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let seqs = jsonl_seqs(path);
        if seqs.len() >= n || std::time::Instant::now() > deadline {
            return seqs;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Three events, a crash that cuts a line in half, a restart with `faults`
/// on, two more events: the file's text and its `seq`s, and how many events
/// were written in all.
async fn jsonl_across_a_cut_line(faults: Vec<Fault>) -> (String, Vec<i64>, usize) {
    let dir = fresh_dir(&format!("jsonl-{}", faults.len()));
    let (db, file) = (dir.join("hub.sqlite"), dir.join("audit.jsonl"));
    let register = |hub: &reference_server::RunningHub| {
        client()
            .post(format!("{}/register", hub.issuer))
            .json(&json!({"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": "jsonl"}))
            .send()
    };
    let mut first = config(Database::File(db.clone()));
    first.audit_jsonl = Some(file.clone());
    let hub = reference_server::spawn(first).await.expect("hub starts");
    for _ in 0..3 {
        assert_eq!(register(&hub).await.unwrap().status(), 201);
    }
    let before = until_written(&file, 3).await;
    hub.stop().await;
    // A crash mid-write leaves half a line.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        write!(f, "{{\"seq\": 99, \"event_ty").unwrap();
    }
    let mut second = config(Database::File(db.clone()));
    second.audit_jsonl = Some(file.clone());
    let keep_cut_line = faults.contains(&Fault::JsonlKeepsCutLine);
    second.faults = Faults::new(faults);
    let hub = reference_server::spawn(second).await.expect("hub restarts");
    for _ in 0..2 {
        assert_eq!(register(&hub).await.unwrap().status(), 201);
    }
    let total = before.len() + 2;
    // A line appended to a cut one does not parse: wait for one fewer then.
    let readable = if keep_cut_line { total - 1 } else { total };
    let seqs = until_written(&file, readable).await;
    hub.stop().await;
    let text = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (text, seqs, total)
}

/// Whether the half line the crash left is still in the file.
fn keeps_cut_line(text: &str) -> bool {
    text.contains("{\"seq\": 99")
}

/// The JSON Lines file is written from the committed trail: every event once,
/// with its `seq`, in order, across a restart; a line cut short by a crash is
/// dropped and the event written again whole.
#[tokio::test]
async fn the_jsonl_file_has_every_seq_once_in_order_across_a_restart() {
    let (text, seqs, total) = jsonl_across_a_cut_line(Vec::new()).await;
    assert!(!keeps_cut_line(&text), "the cut line was kept");
    assert!(seqs.len() >= total, "{seqs:?}");
    let expected: Vec<i64> = (seqs[0]..seqs[0] + seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "every seq once, in order, no gap");
    // The same check catches a hub that appends after the broken line.
    let (text, _, _) = jsonl_across_a_cut_line(vec![Fault::JsonlKeepsCutLine]).await;
    assert!(
        keeps_cut_line(&text),
        "the fault keeps the cut line: {text}"
    );
}
