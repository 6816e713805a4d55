//! The harness's only way onto the network: a reqwest client that never
//! follows redirects, is bounded by timeouts, and records every exchange so a
//! failing check can show exactly what was said.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Request;
use serde::Serialize;
use serde_json::Value;

use crate::profile::HttpSettings;

/// How much of a body a transcript keeps.
const BODY_LIMIT: usize = 4096;

/// One request and its response (or the transport error that replaced it).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    pub request_headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub response_headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_error: Option<String>,
}

/// Replaces every secret (and its form-encoded spelling) in `text`.
pub fn scrub(text: &mut String, secrets: &[String]) {
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        if text.contains(secret.as_str()) {
            *text = text.replace(secret.as_str(), "[redacted]");
        }
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        if encoded != *secret && text.contains(encoded.as_str()) {
            *text = text.replace(encoded.as_str(), "[redacted]");
        }
    }
}

impl Exchange {
    /// Replaces every secret the scenario saw, wherever it appears.
    pub fn redact(&mut self, secrets: &[String]) {
        let scrub = |s: &mut String| scrub(s, secrets);
        scrub(&mut self.url);
        for (name, value) in self
            .request_headers
            .iter_mut()
            .chain(self.response_headers.iter_mut())
        {
            if name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("cookie") {
                let scheme = value.split(' ').next().unwrap_or_default().to_owned();
                *value = format!("{scheme} [redacted]");
            }
            scrub(value);
        }
        for body in [&mut self.request_body, &mut self.response_body]
            .into_iter()
            .flatten()
        {
            scrub(body);
        }
    }
}

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The exchange could not be completed: connection refused, timeout, bad URL.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{method} {url}: {message}")]
pub struct TransportError {
    pub method: String,
    pub url: String,
    pub message: String,
}

/// A recording HTTP client; one per scenario run.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    transcript: Arc<Mutex<Vec<Exchange>>>,
}

impl Http {
    pub fn new(settings: &HttpSettings) -> Http {
        Http::from_address(settings, None)
    }

    /// A client whose connections leave from `local` (e.g. 127.0.0.2, to be a
    /// second source address on loopback), recording into this client's transcript.
    pub fn with_local_address(&self, settings: &HttpSettings, local: std::net::IpAddr) -> Http {
        Http {
            transcript: self.transcript.clone(),
            ..Http::from_address(settings, Some(local))
        }
    }

    fn from_address(settings: &HttpSettings, local: Option<std::net::IpAddr>) -> Http {
        let client = reqwest::Client::builder()
            .local_address(local)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(settings.timeout_secs))
            .connect_timeout(Duration::from_secs(settings.connect_timeout_secs))
            .user_agent(concat!("conform/", env!("CARGO_PKG_VERSION")))
            // Each scenario is its own browser: a fresh cookie jar, as login sessions need.
            .cookie_store(true)
            .build()
            .unwrap_or_default();
        Http {
            client,
            transcript: Arc::default(),
        }
    }

    pub fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.get(url)
    }

    pub fn post(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.post(url)
    }

    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client.request(method, url)
    }

    /// Takes the exchanges recorded since the last call.
    pub fn take_transcript(&self) -> Vec<Exchange> {
        std::mem::take(&mut *self.transcript.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn record(&self, exchange: Exchange) {
        self.transcript
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(exchange);
    }

    /// Sends a request, reads the whole response, and records both.
    pub async fn send(&self, builder: reqwest::RequestBuilder) -> Result<Response, TransportError> {
        let request = builder.build().map_err(|e| TransportError {
            method: "?".into(),
            url: "?".into(),
            message: e.to_string(),
        })?;
        self.execute(request).await
    }

    pub async fn execute(&self, request: Request) -> Result<Response, TransportError> {
        let mut exchange = Exchange {
            method: request.method().to_string(),
            url: request.url().to_string(),
            request_headers: header_list(request.headers()),
            request_body: request
                .body()
                .and_then(|b| b.as_bytes())
                .map(|b| truncate(&String::from_utf8_lossy(b))),
            status: None,
            response_headers: Vec::new(),
            response_body: None,
            transport_error: None,
        };
        let fail = |exchange: &mut Exchange, message: String| {
            exchange.transport_error = Some(message.clone());
            TransportError {
                method: exchange.method.clone(),
                url: exchange.url.clone(),
                message,
            }
        };
        let result = match self.client.execute(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                match response.bytes().await {
                    Ok(body) => {
                        exchange.status = Some(status);
                        exchange.response_headers = header_list(&headers);
                        exchange.response_body =
                            (!body.is_empty()).then(|| truncate(&String::from_utf8_lossy(&body)));
                        Ok(Response {
                            status,
                            headers,
                            body: body.to_vec(),
                        })
                    }
                    Err(e) => Err(fail(&mut exchange, describe(&e))),
                }
            }
            Err(e) => Err(fail(&mut exchange, describe(&e))),
        };
        self.record(exchange);
        result
    }

    /// Adapter so the oauth2 crate's requests go through the same recorder.
    pub async fn oauth2_call(
        &self,
        request: oauth2::HttpRequest,
    ) -> Result<oauth2::HttpResponse, TransportError> {
        let method = request.method().to_string();
        let url = request.uri().to_string();
        let request = Request::try_from(request).map_err(|e| TransportError {
            method: method.clone(),
            url: url.clone(),
            message: e.to_string(),
        })?;
        let response = self.execute(request).await?;
        let mut builder = oauth2::http::Response::builder().status(response.status);
        for (name, value) in &response.headers {
            builder = builder.header(name.as_str(), value.as_bytes());
        }
        builder.body(response.body).map_err(|e| TransportError {
            method,
            url,
            message: e.to_string(),
        })
    }
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        format!("timed out: {err}")
    } else if err.is_connect() {
        format!("could not connect: {err}")
    } else {
        err.to_string()
    }
}

fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or("<binary>").to_owned(),
            )
        })
        .collect()
}

fn truncate(s: &str) -> String {
    if s.len() <= BODY_LIMIT {
        return s.to_owned();
    }
    let mut end = BODY_LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} bytes cut]", &s[..end], s.len() - end)
}
