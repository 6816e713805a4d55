//! Where a token request's time goes, one stage at a time: reading the
//! form, checking the client's secret (each kind), signing the access
//! token, checking a token's signature, and making its audit event durable
//! alone and with 64 other requests at once (group commit).
//!
//! `cargo bench -p reference-server --bench token_path` (plain `fn main`,
//! harness = false, timed with `std::time::Instant`). Numbers vary with the
//! machine; nothing asserts them.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use reference_server::audit::event::{AuditEvent, Outcome};
use reference_server::credentials;
use reference_server::keys::SigningKeys;
use reference_server::oauth::access_token::{AccessTokenClaims, Audience};
use reference_server::params::Params;
use reference_server::store::{Database, Store};

/// Times `iterations` runs of `stage` and prints the mean.
fn report(stage: &str, iterations: u32, started: Instant) {
    let per = started.elapsed().as_secs_f64() / f64::from(iterations);
    if per >= 1e-3 {
        println!("{stage:<52} {:>9.2} ms", per * 1e3);
    } else {
        println!("{stage:<52} {:>9.2} µs", per * 1e6);
    }
}

fn time(stage: &str, iterations: u32, mut work: impl FnMut()) {
    for _ in 0..(iterations / 10).max(1) {
        work();
    }
    let started = Instant::now();
    for _ in 0..iterations {
        work();
    }
    report(stage, iterations, started);
}

fn claims(i: u64) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: "http://127.0.0.1:8080/oauth".into(),
        sub: "agent-reporter".into(),
        aud: Audience::One("http://127.0.0.1:8080/mcp/calendar".into()),
        client_id: "agent-reporter".into(),
        scope: "calendar.read calendar.write".into(),
        iat: 1_795_000_000,
        exp: 1_795_000_300,
        jti: format!("at_{i:022}"),
        tenant: Some("acme".into()),
        act: None,
        may_act: None,
        // A client credentials token: no user signed in for it.
        auth_time: None,
        acr: None,
        amr: None,
    }
}

fn event(i: u64) -> AuditEvent {
    let mut event = AuditEvent::new("token.issued", Outcome::Success)
        .actor("client", "agent-reporter".to_owned())
        .client("agent-reporter".to_owned())
        .resource("http://127.0.0.1:8080/mcp/calendar".to_owned())
        .scopes(&["calendar.read".into()], &["calendar.read".into()])
        .correlation(format!("flow_{i}"))
        .reason("grant client_credentials".to_owned());
    event.time = 1_795_000_000 + i as i64;
    event
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let form = b"grant_type=client_credentials&scope=calendar.read+calendar.write&resource=http%3A%2F%2F127.0.0.1%3A8080%2Fmcp%2Fcalendar";
        time("read the form (Params::parse)", 200_000, || {
            black_box(Params::parse(black_box(form)).ok());
        });

        let generated = reference_server::random::secret();
        let digest = credentials::digest_generated_secret(&generated);
        let started = Instant::now();
        let n = 100_000;
        for _ in 0..n {
            black_box(credentials::verify_client_secret(&generated, &digest).await.ok());
        }
        report("check a generated secret (salted SHA-256)", n, started);

        let chosen = credentials::hash_secret("a secret a person chose").expect("hash");
        let started = Instant::now();
        let n = 20;
        for _ in 0..n {
            black_box(credentials::verify_secret("a secret a person chose", &chosen).await.ok());
        }
        report("check a chosen secret (argon2id, 19 MiB)", n, started);

        let store = Store::open(&Database::Memory).await.expect("store");
        let keys = SigningKeys::load_or_create(&store, 1_795_000_000)
            .await
            .expect("keys");
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(keys.signing_kid().to_owned());
        header.typ = Some("at+jwt".into());
        let mut i = 0u64;
        time("sign an access token (ES256, ring)", 20_000, || {
            i += 1;
            black_box(keys.sign(&header, &claims(i)).ok());
        });
        let token = keys.sign(&header, &claims(0)).expect("sign");
        time("check an access token's signature (ring)", 20_000, || {
            black_box(keys.signature_holds(keys.signing_kid(), black_box(&token)));
        });

        let path = std::env::temp_dir().join(format!("token-path-bench-{}.sqlite", std::process::id()));
        let store = Arc::new(
            Store::open(&Database::File(path.clone()))
                .await
                .expect("store"),
        );
        let n = 2_000u64;
        let started = Instant::now();
        for i in 0..n {
            store.append_audit(&event(i)).await.expect("append");
        }
        report("make one audit event durable, one writer", n as u32, started);
        let writers = 64u64;
        let started = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0..n / writers {
                        store
                            .append_audit(&event(n + w * n + i))
                            .await
                            .expect("append");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("writer");
        }
        let per = started.elapsed().as_secs_f64() / n as f64;
        println!(
            "{:<52} {:>9.2} µs ({:.0} events/s)",
            "make one audit event durable, 64 writers (group commit)",
            per * 1e6,
            1.0 / per
        );
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    });
}
