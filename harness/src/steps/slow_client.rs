//! The attacker's slowloris: a connection that sends half a request (or
//! nothing) and holds the socket. A server that waits for the rest without
//! a bound gives every such connection a socket for ever, and a few
//! thousand of them make it unreachable.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::act::{Act, ActionInfo};
use super::failure::{precondition, StepError};
use super::run::Run;

/// What the slow client sends before it goes quiet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowStart {
    /// The request line and one header, never the blank line that ends them.
    #[default]
    PartialHeaders,
    /// Nothing at all after connecting.
    Nothing,
}

/// Attacker: half a request to the authorization server's metadata URL,
/// then silence; the facts say whether the server closed the connection
/// within the profile's `[http] slow_request_bound_secs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlowRequest {
    #[serde(default)]
    pub send: SlowStart,
}

fn transport(url: &url::Url, message: String) -> StepError {
    StepError::Transport(crate::http::TransportError {
        method: "GET".into(),
        url: url.to_string(),
        message,
    })
}

impl Act for SlowRequest {
    const INFO: ActionInfo = ActionInfo::new(
        "attacker",
        "An attacker opens a connection to the authorization server, sends half a request (the request line and one header, never the blank line), and goes quiet. A server that gives up on it closes the connection (or answers 408) in bounded time; one that waits for ever lends the attacker a socket per connection.",
        "RFC 9112 §9.5",
        "https://www.rfc-editor.org/rfc/rfc9112#section-9.5",
    );

    /// The target's header-read timeout is what it measures.
    fn waits(&self) -> bool {
        true
    }

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        let url = crate::well_known::authorization_server_metadata_urls(&run.profile.issuer)
            .ok()
            .and_then(|urls| urls.into_iter().next())
            .ok_or_else(|| precondition("the issuer is not a URL"))?;
        let url = url::Url::parse(&url).map_err(|e| precondition(e.to_string()))?;
        if url.scheme() != "http" {
            return Err(StepError::Undeclared(
                "the slow-request probe speaks plain HTTP only, and the issuer is https".into(),
            ));
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let bound = Duration::from_secs(run.profile.http.slow_request_bound_secs);
        let connect = Duration::from_secs(run.profile.http.connect_timeout_secs);
        let mut stream = tokio::time::timeout(connect, TcpStream::connect((host.as_str(), port)))
            .await
            .map_err(|_| transport(&url, "could not connect in time".into()))?
            .map_err(|e| transport(&url, format!("could not connect: {e}")))?;
        let sent = match self.send {
            SlowStart::PartialHeaders => format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nX-Slow: ",
                url.path(),
                url.host_str().unwrap_or_default()
            ),
            SlowStart::Nothing => String::new(),
        };
        let started = Instant::now();
        stream
            .write_all(sent.as_bytes())
            .await
            .map_err(|e| transport(&url, format!("sending half a request: {e}")))?;
        // Read until the server closes, or the bound passes.
        let mut answer = Vec::new();
        let mut buffer = [0u8; 1024];
        let closed = loop {
            let left = bound.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, stream.read(&mut buffer)).await {
                Err(_) => break false,
                Ok(Ok(0)) | Ok(Err(_)) => break true,
                Ok(Ok(n)) => {
                    if answer.len() < 4096 {
                        answer.extend_from_slice(&buffer[..n]);
                    }
                }
            }
        };
        let status = String::from_utf8_lossy(&answer)
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse::<u16>().ok());
        Ok(json!({
            "sent": match self.send {
                SlowStart::PartialHeaders => "partial_headers",
                SlowStart::Nothing => "nothing",
            },
            "closed": closed,
            "closed_after_ms": closed.then(|| started.elapsed().as_millis() as u64),
            "status": status,
            "bound_secs": bound.as_secs(),
        }))
    }
}
