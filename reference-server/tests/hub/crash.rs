//! Refresh rotation survives a crash: refresh-token families are created, a
//! real `hub` process refreshes them all at once, each in a chain, and is
//! killed (SIGKILL) in the middle, and then the database must hold exactly one live refresh
//! token per family (rotation and storage are one transaction) and an audit
//! trail whose `seq` has no gap.

use reference_server::store::Database;
use serde_json::Value;
use sqlx::Row;

use crate::support::*;

const FAMILIES: usize = 24;
/// Refreshes each family would make in a row, had the hub lived.
const ROUNDS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_during_concurrent_refreshes_leaves_every_family_one_live_token_and_no_audit_gap() {
    let dir = fresh_dir("crash");
    let db = dir.join("hub.sqlite");

    // The families, made by an in-process hub on the same database.
    let hub = reference_server::spawn(config(Database::File(db.clone())))
        .await
        .expect("hub starts");
    let registered = json_of(client().post(format!("{}/register", hub.issuer)).json(
        &serde_json::json!({
            "redirect_uris": ["http://127.0.0.1:9/cb"],
            "client_name": "crash",
            "grant_types": ["authorization_code", "refresh_token"],
        }),
    ))
    .await;
    let client_id = registered["client_id"].as_str().unwrap().to_owned();
    let mut refresh_tokens = Vec::new();
    for i in 0..FAMILIES {
        let verifier = format!("crash-verifier-{i:040}");
        let code = code_for(&hub, &client_id, &verifier).await;
        let body: Value = redeem(&hub, &code, &client_id, &verifier)
            .await
            .json()
            .await
            .unwrap();
        refresh_tokens.push(
            body["refresh_token"]
                .as_str()
                .expect("a refresh token")
                .to_owned(),
        );
    }
    hub.stop().await;

    // A real process refreshes every family at once and is killed mid-way.
    let mut process = HubProcess::start(&["--database".as_ref(), db.as_os_str()]);
    let base = process.base.clone();
    let http = client();
    // Each family refreshes in a chain (the new token refreshes next), so
    // that whenever the kill lands, later links are in flight: concurrent
    // refreshes are committed together, and a single round could all be
    // answered at once.
    let (answers, mut answered_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut chains = Vec::new();
    for token in refresh_tokens {
        let (http, base, client_id, answers) = (
            http.clone(),
            base.clone(),
            client_id.clone(),
            answers.clone(),
        );
        chains.push(tokio::spawn(async move {
            let mut token = token;
            for _ in 0..ROUNDS {
                let Ok(response) = http
                    .post(format!("{base}/oauth/token"))
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", token.as_str()),
                        ("client_id", client_id.as_str()),
                    ])
                    .send()
                    .await
                else {
                    break;
                };
                let _ = answers.send(());
                let Ok(body) = response.json::<Value>().await else {
                    break;
                };
                match body["refresh_token"].as_str() {
                    Some(next) => token = next.to_owned(),
                    None => break,
                }
            }
        }));
    }
    drop(answers);
    // Killed as soon as the first refresh is answered: later links are in flight.
    let mut answered = 0;
    if answered_rx.recv().await.is_some() {
        answered += 1;
        process.child.kill().expect("SIGKILL");
    }
    while answered_rx.recv().await.is_some() {
        answered += 1;
    }
    for chain in chains {
        let _ = chain.await;
    }
    let _ = process.child.wait();
    assert!(
        answered < FAMILIES * ROUNDS,
        "the kill came after every refresh: nothing was in flight"
    );

    // Exactly one live token per family, and no gap in the audit trail.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let families = sqlx::query(
        "SELECT family_id, SUM(CASE WHEN rotated_at IS NULL AND revoked_at IS NULL THEN 1 ELSE 0 END) AS live
         FROM refresh_tokens GROUP BY family_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(families.len(), FAMILIES);
    for family in &families {
        let live: i64 = family.get("live");
        let id: String = family.get("family_id");
        assert_eq!(live, 1, "family {id} has {live} live refresh tokens");
    }
    let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM audit_events ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    let expected: Vec<i64> = (seqs[0]..seqs[0] + seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "the audit seq has a gap");
    pool.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
