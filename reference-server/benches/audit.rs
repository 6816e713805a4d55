//! Audit events written per second to a file-backed store (SQLite, WAL,
//! each event committed before the action it records may answer).
//!
//! `cargo bench -p reference-server --bench audit`

use std::time::Instant;

use reference_server::audit::event::{AuditEvent, Outcome};
use reference_server::store::{Database, Store};

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let path = std::env::temp_dir().join(format!("audit-bench-{}.sqlite", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let store = Store::open(&Database::File(path.clone()))
            .await
            .expect("store");
        let n = 5_000;
        let started = Instant::now();
        for i in 0..n {
            let mut event = AuditEvent::new("token.issued", Outcome::Success)
                .actor("user", format!("user-{}", i % 50))
                .client(format!("client-{}", i % 20))
                .resource("https://hub.example/mcp/calendar".to_owned())
                .scopes(&["calendar.read".into()], &["calendar.read".into()])
                .correlation(format!("flow_{i}"))
                .reason("grant authorization_code");
            event.time = 1_795_000_000 + i;
            store.append_audit(std::hint::black_box(&event)).await.expect("append");
        }
        let elapsed = started.elapsed();
        println!(
            "audit: {n} events, one transaction each, durable (SQLite WAL): {:.0} events/s ({:.1} µs per event)",
            n as f64 / elapsed.as_secs_f64(),
            elapsed.as_micros() as f64 / n as f64
        );
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    });
}
