//! The listener's bounds: a client that sends nothing, or half a header, is
//! disconnected after the header-read timeout, and connections beyond the
//! limit are closed on arrival while the ones admitted keep working.

use std::time::Duration;

use reference_server::serve::Limits;
use reference_server::store::Database;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Reads until the server closes the connection (or `within` passes, a
/// failure); returns what it sent.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the hub kept the connection open");
    seen
}

#[tokio::test]
async fn silent_and_slow_clients_are_disconnected_after_the_header_read_timeout() {
    let hub = reference_server::spawn(reference_server::HubConfig {
        limits: Limits {
            header_read_timeout: Duration::from_secs(1),
            ..Limits::default()
        },
        ..config(Database::Memory)
    })
    .await
    .expect("hub starts");
    // Sends nothing at all.
    let mut silent = TcpStream::connect(hub.local_addr).await.unwrap();
    // Sends half a request line and stops.
    let mut slow = TcpStream::connect(hub.local_addr).await.unwrap();
    slow.write_all(b"GET /oauth/jwks.json HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // The bound is the header timeout (1 s); 20 s only guards against a hang.
    read_until_closed(&mut silent, Duration::from_secs(20)).await;
    read_until_closed(&mut slow, Duration::from_secs(20)).await;
    // A well-behaved client is still served.
    let status = client()
        .get(format!("{}/jwks.json", hub.issuer))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_and_the_admitted_ones_are_served() {
    let hub = reference_server::spawn(reference_server::HubConfig {
        limits: Limits {
            max_connections: 4,
            ..Limits::default()
        },
        ..config(Database::Memory)
    })
    .await
    .expect("hub starts");
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(hub.local_addr).await.unwrap());
    }
    // The fifth is accepted by the kernel and closed by the hub unread.
    let mut fifth = TcpStream::connect(hub.local_addr).await.unwrap();
    let _ = fifth
        .write_all(b"GET /oauth/jwks.json HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answer = read_until_closed(&mut fifth, Duration::from_secs(20)).await;
    assert!(answer.is_empty(), "the fifth connection was served");
    // One of the admitted connections is served.
    let first = &mut held[0];
    first
        .write_all(b"GET /oauth/jwks.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(first, Duration::from_secs(20)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}
