//! The harness's well-behaved MCP client: the official Rust SDK's client
//! (rmcp), speaking the run's revision, over the harness's own HTTP.
//!
//! rmcp (3.8) implements every revision the suite judges by: the legacy
//! `initialize` handshake with the version offered, and MCP 2026-07-28's
//! `server/discover` with per-request `_meta` and the request metadata
//! headers. Its own HTTP client is built on another major version of
//! reqwest than the workspace's, and it would bypass the transcript, so
//! [`HarnessHttp`] carries its messages instead: every exchange lands in the
//! run's transcript, redacted like any other, and the last answer is kept
//! for the step's facts (status and challenge of a refused call).
//!
//! Requests that deviate on purpose (a wrong header, a missing `_meta`
//! field) are not rmcp's business: `call_resource` frames those itself
//! ([`crate::mcp_wire`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, InsufficientScopeError, StreamableHttpClient, StreamableHttpError,
    StreamableHttpPostResponse,
};
use serde_json::Value;

use crate::http::Http;
use crate::revision::Revision;

/// rmcp's name for a revision.
pub fn protocol_version(revision: Revision) -> rmcp::model::ProtocolVersion {
    use rmcp::model::ProtocolVersion;
    match revision {
        Revision::R2025_06_18 => ProtocolVersion::V_2025_06_18,
        Revision::R2025_11_25 => ProtocolVersion::V_2025_11_25,
        Revision::R2026_07_28 => ProtocolVersion::V_2026_07_28,
    }
}

/// What the server last answered, for the step's facts.
#[derive(Debug, Clone, Default)]
pub struct LastAnswer {
    /// The JSON-RPC method of the message it answered.
    pub method: String,
    pub status: u16,
    pub www_authenticate: Option<String>,
    /// The session id it gave, if any (legacy servers may).
    pub session: Option<String>,
}

/// A transport failure of the harness's HTTP client, as rmcp sees it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HarnessHttpError(String);

/// rmcp's Streamable HTTP client transport, carried by the harness's [`Http`].
#[derive(Clone)]
pub struct HarnessHttp {
    http: Http,
    last: Arc<Mutex<LastAnswer>>,
}

impl HarnessHttp {
    pub fn new(http: Http) -> HarnessHttp {
        HarnessHttp {
            http,
            last: Arc::default(),
        }
    }

    pub fn last(&self) -> LastAnswer {
        self.last.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Keeps the latest answer, and the session id once any answer gave one.
    fn remember(&self, mut answer: LastAnswer) {
        if let Ok(mut last) = self.last.lock() {
            if answer.session.is_none() {
                answer.session = last.session.take();
            }
            *last = answer;
        }
    }
}

type PostResult = Result<StreamableHttpPostResponse, StreamableHttpError<HarnessHttpError>>;

impl StreamableHttpClient for HarnessHttp {
    type Error = HarnessHttpError;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> PostResult {
        let body = serde_json::to_value(&message)?;
        let mut request = self
            .http
            .post(&uri)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(token) = auth_header {
            request = request.bearer_auth(token);
        }
        for (name, value) in custom_headers {
            request = request.header(name, value);
        }
        if let Some(session) = session_id {
            request = request.header("mcp-session-id", session.as_ref());
        }
        let response = self
            .http
            .send(request)
            .await
            .map_err(|e| StreamableHttpError::Client(HarnessHttpError(e.to_string())))?;
        let challenge = response.header("www-authenticate").map(str::to_owned);
        let session = response.header("mcp-session-id").map(str::to_owned);
        self.remember(LastAnswer {
            method: body["method"].as_str().unwrap_or_default().to_owned(),
            status: response.status,
            www_authenticate: challenge.clone(),
            session: session.clone(),
        });
        match (response.status, challenge) {
            (401, Some(header)) => {
                return Err(StreamableHttpError::AuthRequired(AuthRequiredError::new(
                    header,
                )))
            }
            (403, Some(header)) => {
                let scope = crate::challenge::parse(&header)
                    .pointer("/params/scope")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                return Err(StreamableHttpError::InsufficientScope(
                    InsufficientScopeError::new(header, scope),
                ));
            }
            (202 | 204, _) => return Ok(StreamableHttpPostResponse::Accepted),
            _ => {}
        }
        let id = body["id"].as_u64();
        let answer = match id {
            Some(id) => crate::mcp_wire::rpc_message(&response, id),
            None => response.json(),
        };
        match answer {
            // A JSON-RPC answer, success or error, whatever the status: rmcp
            // reads the error and names it (a 400 -32022 among them).
            Some(answer) => Ok(StreamableHttpPostResponse::Json(
                serde_json::from_value::<ServerJsonRpcMessage>(answer)?,
                session,
            )),
            None if (200..300).contains(&response.status) && response.body.is_empty() => {
                Ok(StreamableHttpPostResponse::Accepted)
            }
            None => Err(StreamableHttpError::UnexpectedServerResponse(
                format!(
                    "HTTP {} with no JSON-RPC answer: {}",
                    response.status,
                    crate::http::clip(&response.text(), 200)
                )
                .into(),
            )),
        }
    }

    /// Ends a legacy session, as a client SHOULD (2025-11-25 transports,
    /// Session Management); a server may refuse with 405.
    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<HarnessHttpError>> {
        let mut request = self
            .http
            .request(reqwest::Method::DELETE, &uri)
            .header("mcp-session-id", session_id.as_ref());
        if let Some(token) = auth_header {
            request = request.bearer_auth(token);
        }
        for (name, value) in custom_headers {
            request = request.header(name, value);
        }
        let response = self
            .http
            .send(request)
            .await
            .map_err(|e| StreamableHttpError::Client(HarnessHttpError(e.to_string())))?;
        if (200..300).contains(&response.status) {
            Ok(())
        } else {
            Err(StreamableHttpError::ServerDoesNotSupportDeleteSession)
        }
    }

    /// The harness opens no standalone stream: a tool call's answer comes
    /// on its own POST, and 2026-07-28 has no GET stream at all.
    async fn get_stream(
        &self,
        _uri: Arc<str>,
        _session_id: Option<Arc<str>>,
        _last_event_id: Option<String>,
        _auth_header: Option<String>,
        _custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<
        futures_util::stream::BoxStream<'static, Result<sse_stream::Sse, sse_stream::Error>>,
        StreamableHttpError<HarnessHttpError>,
    > {
        Err(StreamableHttpError::ServerDoesNotSupportSse)
    }
}
