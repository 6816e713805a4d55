//! The harness's only way onto the network: reqwest clients that never
//! follow redirects, are bounded by timeouts, and record every exchange so a
//! failing check can show exactly what was said.
//!
//! Each party has its own HTTP identity. The user's browser holds cookies;
//! the MCP client, agents, resource servers, the admin and the test driver
//! talk on the back channel, which holds none. Sharing one cookie jar sent
//! the user's session cookie on token, revocation and introspection requests,
//! where a target's CSRF check refused them with 403s no transcript
//! explained. Both identities record into one transcript, in request order,
//! and the harness adds every header it sends itself (user agent, `accept`,
//! the browser's `cookie`), so the transcript shows them all.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, COOKIE, SET_COOKIE, USER_AGENT};
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
    /// The operation whose recipe this request was (`recipe.rs`), if any:
    /// what it did, whatever the target's URL for it looks like.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
}

/// How a secret can appear in a request or an answer: as itself, and
/// form-encoded when that spelling differs.
pub fn spellings(secret: &str) -> Vec<String> {
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    if encoded == secret {
        vec![encoded]
    } else {
        vec![secret.to_owned(), encoded]
    }
}

/// Replaces every secret (and its form-encoded spelling) in `text`.
pub fn scrub(text: &mut String, secrets: &[String]) {
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        for spelling in spellings(secret) {
            if text.contains(spelling.as_str()) {
                *text = text.replace(spelling.as_str(), "[redacted]");
            }
        }
    }
}

/// `text` up to `limit` bytes (on a character boundary), saying how much
/// was cut.
pub fn clip(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} bytes cut]", &text[..end], text.len() - end)
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
            if name.eq_ignore_ascii_case("authorization") {
                let scheme = value.split(' ').next().unwrap_or_default().to_owned();
                *value = format!("{scheme} [redacted]");
            } else if name.eq_ignore_ascii_case("cookie") {
                *value = redact_cookie_header(value);
            } else if name.eq_ignore_ascii_case("set-cookie") {
                *value = redact_set_cookie(value);
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

/// A `cookie` request header with every value redacted and the names kept
/// (`sid=[redacted]; theme=[redacted]`): which cookies went where is what a
/// reader needs, their values are session secrets.
fn redact_cookie_header(value: &str) -> String {
    value
        .split(';')
        .map(|pair| {
            let name = pair.split('=').next().unwrap_or_default().trim();
            format!("{name}=[redacted]")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A `set-cookie` response header with its value redacted, its name and
/// attributes kept.
fn redact_set_cookie(value: &str) -> String {
    let (cookie, attributes) = value.split_once(';').unwrap_or((value, ""));
    let name = cookie.split('=').next().unwrap_or_default();
    if attributes.is_empty() {
        format!("{name}=[redacted]")
    } else {
        format!("{name}=[redacted];{attributes}")
    }
}

/// The value of each cookie a `set-cookie` header sets.
fn set_cookie_value(header: &str) -> Option<&str> {
    let (_, value) = header.split(';').next()?.split_once('=')?;
    Some(value.trim()).filter(|v| !v.is_empty())
}

/// Cookie values shorter than this are not kept as secrets (the audit check
/// ignores shorter secrets too).
const MIN_COOKIE_SECRET: usize = 8;

/// Which party's HTTP identity sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The user's browser: holds the cookies the target sets (login sessions).
    Browser,
    /// The MCP client, agents, resource servers, the admin, the test driver
    /// and the audit collector: server-to-server requests, never a cookie.
    BackChannel,
}

impl Identity {
    /// The `user-agent` each identity sends, so a transcript (and the
    /// target's logs) tell which party spoke.
    pub fn user_agent(self) -> &'static str {
        match self {
            Identity::Browser => concat!("conform/", env!("CARGO_PKG_VERSION"), " (browser)"),
            Identity::BackChannel => {
                concat!("conform/", env!("CARGO_PKG_VERSION"), " (back-channel)")
            }
        }
    }
}

/// What every identity of a run records into: the exchanges in request
/// order, and the cookie values targets set (secrets the scenario saw).
#[derive(Debug, Default)]
struct Recording {
    exchanges: Vec<Exchange>,
    cookie_values: Vec<String>,
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

/// A recording HTTP client with one party's identity. A run has two that
/// share a recording: the back channel ([`Http::new`]) and the user's browser
/// ([`Http::browser`]).
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    identity: Identity,
    /// The browser's cookie jar; `None` on the back channel. The harness
    /// keeps it itself (the reqwest client has no cookie store) so that the
    /// `cookie` header is on the request before it is recorded.
    jar: Option<Arc<Jar>>,
    /// The back channel's client, for a browser asked for [`Http::back_channel`].
    back: reqwest::Client,
    recording: Arc<Mutex<Recording>>,
    /// The `Origin` of another site's page this browser posts forms from
    /// (with `Sec-Fetch-Site: cross-site`), as a page there would: see
    /// [`Http::posting_from`].
    foreign_origin: Option<HeaderValue>,
}

impl Http {
    /// The back channel of a run: no cookie jar, a fresh recording.
    pub fn new(settings: &HttpSettings) -> Http {
        let client = client(settings, None);
        Http {
            back: client.clone(),
            client,
            identity: Identity::BackChannel,
            jar: None,
            recording: Arc::default(),
            foreign_origin: None,
        }
    }

    /// The user's browser: a client of its own with a fresh cookie jar (each
    /// scenario is its own browser, as login sessions need), recording into
    /// this client's transcript.
    pub fn browser(&self, settings: &HttpSettings) -> Http {
        Http {
            client: client(settings, None),
            identity: Identity::Browser,
            jar: Some(Arc::default()),
            back: self.back.clone(),
            recording: self.recording.clone(),
            foreign_origin: None,
        }
    }

    /// The cookie-less back channel of the same run, for a party that acts
    /// beside the browser (the test driver deciding a consent through the
    /// control API). The back channel itself is returned unchanged.
    pub fn back_channel(&self) -> Http {
        Http {
            client: self.back.clone(),
            identity: Identity::BackChannel,
            jar: None,
            back: self.back.clone(),
            recording: self.recording.clone(),
            foreign_origin: None,
        }
    }

    /// The same browser (the same cookies) posting forms from a page of
    /// another site: every POST carries `Origin: origin` and
    /// `Sec-Fetch-Site: cross-site`, as a browser sends for a form on a
    /// foreign page (the origin is a header only; nothing connects to it).
    pub fn posting_from(&self, origin: &str) -> Http {
        Http {
            client: self.client.clone(),
            identity: self.identity,
            jar: self.jar.clone(),
            back: self.back.clone(),
            recording: self.recording.clone(),
            foreign_origin: HeaderValue::from_str(origin).ok(),
        }
    }

    /// Whose identity this client sends.
    pub fn identity(&self) -> Identity {
        self.identity
    }

    /// A client whose connections leave from `local` (e.g. 127.0.0.2, to be a
    /// second source address on loopback), with this client's identity (a
    /// browser gets an empty jar of its own), recording into this client's transcript.
    pub fn with_local_address(&self, settings: &HttpSettings, local: std::net::IpAddr) -> Http {
        Http {
            client: client(settings, Some(local)),
            identity: self.identity,
            jar: self.jar.as_ref().map(|_| Arc::default()),
            back: self.back.clone(),
            recording: self.recording.clone(),
            foreign_origin: None,
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

    /// Adds an exchange made on another client to this run's transcript
    /// (the robustness pass's findings: its thousands of other requests are not kept).
    pub fn record_exchange(&self, exchange: Exchange) {
        self.recording().exchanges.push(exchange);
    }

    /// Takes the exchanges every identity of the run recorded since the last
    /// call, in request order.
    pub fn take_transcript(&self) -> Vec<Exchange> {
        std::mem::take(&mut self.recording().exchanges)
    }

    /// Every cookie value a target set in this run, on either identity: a
    /// secret the scenario saw, for redaction.
    pub fn cookie_values(&self) -> Vec<String> {
        self.recording().cookie_values.clone()
    }

    fn recording(&self) -> std::sync::MutexGuard<'_, Recording> {
        self.recording.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, exchange: Exchange, set_cookies: &HeaderMap) {
        let mut recording = self.recording();
        for value in set_cookies.get_all(SET_COOKIE) {
            if let Some(v) = value.to_str().ok().and_then(set_cookie_value) {
                // `consent=true`, `theme=dark`: too short to be a session and
                // common words in text; cookie headers are redacted whatever they hold.
                if v.len() >= MIN_COOKIE_SECRET
                    && !recording.cookie_values.iter().any(|known| known == v)
                {
                    recording.cookie_values.push(v.to_owned());
                }
            }
        }
        recording.exchanges.push(exchange);
    }

    /// Puts on the request every header this identity adds, so the recorded
    /// headers are the ones sent: the user agent, reqwest's default `accept`,
    /// and the browser's cookies for this URL (reqwest would add the same
    /// through a cookie store, after the harness had recorded the request).
    fn add_identity_headers(&self, request: &mut Request) {
        let cookies = match (&self.jar, request.headers().contains_key(COOKIE)) {
            (Some(jar), false) => jar.cookies(request.url()),
            _ => None,
        };
        let headers = request.headers_mut();
        headers
            .entry(USER_AGENT)
            .or_insert(HeaderValue::from_static(self.identity.user_agent()));
        headers
            .entry(ACCEPT)
            .or_insert(HeaderValue::from_static("*/*"));
        if let Some(cookies) = cookies {
            headers.insert(COOKIE, cookies);
        }
        if let Some(origin) = &self.foreign_origin {
            if request.method() == reqwest::Method::POST {
                let headers = request.headers_mut();
                headers.insert(reqwest::header::ORIGIN, origin.clone());
                headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
            }
        }
    }

    /// Sends a request, reads the whole response, and records both.
    pub async fn send(&self, builder: reqwest::RequestBuilder) -> Result<Response, TransportError> {
        self.send_labelled(builder, None).await
    }

    /// Sends the request an operation's recipe made, recording which one it was.
    pub async fn send_operation(
        &self,
        builder: reqwest::RequestBuilder,
        operation: &str,
    ) -> Result<Response, TransportError> {
        self.send_labelled(builder, Some(operation)).await
    }

    async fn send_labelled(
        &self,
        builder: reqwest::RequestBuilder,
        operation: Option<&str>,
    ) -> Result<Response, TransportError> {
        let request = builder.build().map_err(|e| TransportError {
            method: "?".into(),
            url: "?".into(),
            message: e.to_string(),
        })?;
        self.execute_labelled(request, operation).await
    }

    pub async fn execute(&self, request: Request) -> Result<Response, TransportError> {
        self.execute_labelled(request, None).await
    }

    async fn execute_labelled(
        &self,
        mut request: Request,
        operation: Option<&str>,
    ) -> Result<Response, TransportError> {
        self.add_identity_headers(&mut request);
        let url = request.url().clone();
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
            operation: operation.map(str::to_owned),
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
                if let Some(jar) = &self.jar {
                    jar.set_cookies(&mut headers.get_all(SET_COOKIE).iter(), &url);
                }
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
        let set_cookies = result
            .as_ref()
            .map(|r| r.headers.clone())
            .unwrap_or_default();
        self.record(exchange, &set_cookies);
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

/// A reqwest client that follows no redirect (each party decides where to
/// go), bounded by the profile's timeouts, with no cookie store: only the
/// browser has cookies, and it keeps them in its own jar.
fn client(settings: &HttpSettings, local: Option<std::net::IpAddr>) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(local)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(settings.timeout_secs))
        .connect_timeout(Duration::from_secs(settings.connect_timeout_secs))
        .pool_idle_timeout(POOL_IDLE)
        .build()
        .unwrap_or_default()
}

/// How long an idle connection stays in a client's pool: less than any
/// target's idle timeout is likely to be, so the harness never sends on a
/// connection the target is closing (the embedded hub closes idle ones after 2 s).
pub const POOL_IDLE: Duration = Duration::from_secs(1);

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        format!("timed out: {err}")
    } else if err.is_connect() {
        format!("could not connect: {err}")
    } else {
        err.to_string()
    }
}

pub(crate) fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
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
    clip(s, BODY_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_keep_their_names_and_lose_their_values() {
        let mut e = Exchange {
            method: "GET".into(),
            url: "http://127.0.0.1/".into(),
            request_headers: vec![("cookie".into(), "sid=abc123; theme=dark".into())],
            request_body: None,
            status: Some(200),
            response_headers: vec![("set-cookie".into(), "sid=def456; Path=/; HttpOnly".into())],
            response_body: None,
            transport_error: None,
            operation: None,
        };
        e.redact(&[]);
        assert_eq!(
            e.request_headers[0].1, "sid=[redacted]; theme=[redacted]",
            "no cookie value survives, even one the scenario did not know"
        );
        assert_eq!(e.response_headers[0].1, "sid=[redacted]; Path=/; HttpOnly");
        assert_eq!(set_cookie_value("sid=def456; Path=/"), Some("def456"));
        assert_eq!(set_cookie_value("sid=; Max-Age=0"), None);
    }
}
