//! Password hashing under a flood, measured on a real `hub` process: argon2id
//! costs 19 MiB a check, so unbounded concurrency once took a hub from 18 MB
//! to 4.5 GB. 300 concurrent sign-ins and 300 concurrent wrong client secrets
//! must leave its peak resident memory (VmHWM) under 300 MiB.

use crate::support::*;

/// Peak resident memory of `pid` in MiB, from /proc.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmHWM");
    kib / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_concurrent_password_checks_stay_under_300_mib() {
    // All 600 requests at once are admitted: this test is about hashing.
    let hub = HubProcess::start(&[
        "--database".as_ref(),
        ":memory:".as_ref(),
        "--max-connections".as_ref(),
        "1000".as_ref(),
    ]);
    let http = client();
    // An authorization request to sign in against.
    let registered = json_of(http.post(format!("{}/oauth/register", hub.base)).json(
        &serde_json::json!({"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": "flood"}),
    ))
    .await;
    let client_id = registered["client_id"]
        .as_str()
        .expect("registered")
        .to_owned();
    let authorize = http
        .get(format!("{}/oauth/authorize", hub.base))
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
            ("resource", &format!("{}/mcp/calendar", hub.base)),
            ("scope", "calendar.read"),
        ])
        .send()
        .await
        .unwrap();
    let location = authorize.headers()["location"].to_str().unwrap().to_owned();
    let request = location
        .split("request=")
        .nth(1)
        .expect("a request handle")
        .to_owned();

    let mut attempts = Vec::new();
    for i in 0..300 {
        let http = http.clone();
        let base = hub.base.clone();
        let request = request.clone();
        attempts.push(tokio::spawn(async move {
            let sign_in = http
                .post(format!("{base}/oauth/login"))
                .form(&[
                    ("request", request.as_str()),
                    ("username", &format!("nobody-{i}")),
                    ("password", "wrong"),
                ])
                .send();
            let secret = http
                .post(format!("{base}/oauth/token"))
                .basic_auth("agent-reporter", Some(format!("wrong-{i}")))
                .form(&[("grant_type", "client_credentials")])
                .send();
            let (a, b) = tokio::join!(sign_in, secret);
            (
                a.map(|r| r.status().as_u16()),
                b.map(|r| r.status().as_u16()),
            )
        }));
    }
    for attempt in attempts {
        let (sign_in, secret) = attempt.await.unwrap();
        let sign_in = sign_in.expect("the sign-in was answered");
        assert!(matches!(sign_in, 401 | 429), "sign-in answered {sign_in}");
        assert_eq!(secret.expect("the token request was answered"), 401);
    }
    let peak = peak_rss_mib(hub.child.id());
    println!("peak resident memory after 600 concurrent password checks: {peak} MiB");
    assert!(peak < 300, "peak resident memory {peak} MiB");
}
