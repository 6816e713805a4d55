//! The robustness pass: a seeded stream of hostile requests ([`crate::hostile`])
//! to every endpoint the target's metadata and Protected Resource Metadata
//! name, each answer judged on four things any server owes hostile input:
//! no 5xx, an answer within the profile's timeout, no payload reflected
//! unescaped into HTML (or into a header), and no secret the harness knows
//! in any answer.
//!
//! Request `i` of a pass seeded `s` is a pure function of `(s, i)` and the
//! endpoints, so every finding names both numbers and the exact request.
//! The pass sends on a client of its own: its thousands of exchanges are
//! not a scenario's transcript; findings carry the requests that matter.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake::rand::rngs::StdRng;
use fake::rand::RngExt;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};

use crate::hostile::{self, INJECTED_HEADER};
use crate::http::{clip, Exchange};
use crate::profile::{HttpSettings, RobustnessSettings};

/// How a hostile request reaches an endpoint, by what the endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Parameters in the query of a GET (authorization, metadata, JWKS, PRM).
    Query,
    /// A form-encoded POST (token, revocation, introspection, PAR).
    Form,
    /// A JSON POST (dynamic registration).
    Json,
    /// A JSON-RPC POST to an MCP server (Streamable HTTP).
    Mcp,
}

/// One endpoint the pass sends to.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    /// The metadata member that named it, or `resource`/`resource_metadata`.
    pub name: String,
    pub url: String,
    pub shape: Shape,
}

impl Endpoint {
    /// The shape of the endpoint a metadata member names (RFC 8414 §2 and the
    /// RFC 8414 registry), or `None` for a member the pass does not send to.
    pub fn from_metadata(name: &str, url: &str) -> Option<Endpoint> {
        let shape = match name {
            "authorization_endpoint"
            | "jwks_uri"
            | "userinfo_endpoint"
            | "end_session_endpoint" => Shape::Query,
            "token_endpoint"
            | "revocation_endpoint"
            | "introspection_endpoint"
            | "pushed_authorization_request_endpoint"
            | "device_authorization_endpoint"
            | "backchannel_authentication_endpoint" => Shape::Form,
            "registration_endpoint" => Shape::Json,
            _ => return None,
        };
        Some(Endpoint {
            name: name.to_owned(),
            url: url.to_owned(),
            shape,
        })
    }
}

/// What the pass may use to get past the first check of an endpoint: a
/// registered client (so the authorization endpoint looks further), the
/// profile's confidential clients and users, whose secrets it plants in
/// the wrong places to see whether an answer repeats them.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// A client_id and its registered redirect URI.
    pub client: Option<(String, String)>,
    /// Confidential clients: `(client_id, client_secret)`.
    pub confidential: Vec<(String, String)>,
    /// Users: `(username, password)`.
    pub users: Vec<(String, String)>,
    /// Every secret the harness knows; none may come back in an answer.
    pub secrets: Vec<String>,
    /// Scopes the target knows, for requests that look ordinary elsewhere.
    pub scopes: Vec<String>,
}

/// What a finding is about: the four checks of the pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// A 5xx answer (a 503 with `Retry-After`, an announced overload, is not one).
    ServerError,
    /// No answer within the profile's timeout.
    Slow,
    /// A payload's markup came back unescaped in an answer a browser renders, or a header was injected.
    Reflection,
    /// A secret the harness knows came back in an answer.
    Secret,
}

impl Check {
    pub const ALL: [Check; 4] = [
        Check::ServerError,
        Check::Slow,
        Check::Reflection,
        Check::Secret,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Check::ServerError => "server_error",
            Check::Slow => "slow",
            Check::Reflection => "reflection",
            Check::Secret => "secret",
        }
    }
}

/// One hostile request, as sent.
#[derive(Debug, Clone)]
pub struct HostileRequest {
    pub index: usize,
    pub endpoint: String,
    /// Which generators made it: `form/password+repeat+huge`.
    pub generator: String,
    pub method: reqwest::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A broken check, with everything needed to send the request again.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: Check,
    pub seed: u64,
    /// The request's number in the pass: with the seed, it reproduces it.
    pub request: usize,
    pub endpoint: String,
    pub generator: String,
    pub detail: String,
    /// The request as sent and the answer (secrets redacted, long parts cut).
    pub exchange: Exchange,
}

/// The outcome of a pass.
#[derive(Debug, Clone, Serialize)]
pub struct Pass {
    pub seed: u64,
    pub requests: usize,
    pub elapsed_ms: u64,
    pub endpoints: Vec<Endpoint>,
    /// Answers by status code; `closed` for a connection the target closed.
    pub statuses: BTreeMap<String, usize>,
    /// How many findings each check has.
    pub counts: BTreeMap<Check, usize>,
    /// The first findings of each check (at most [`KEPT_FINDINGS`] each).
    pub findings: Vec<Finding>,
}

/// Findings kept per check: the count is exact, the examples bounded.
pub const KEPT_FINDINGS: usize = 10;
/// The longest URL the pass sends.
const MAX_URL: usize = 60_000;
/// Bytes of a body (or a URL) a finding shows.
const SHOWN_BODY: usize = 2_048;
/// Bytes of an answer the pass reads: enough to see any reflection near the top.
const READ_LIMIT: usize = 256 * 1024;

impl Pass {
    /// The facts of a step judging one check.
    pub fn facts(&self, check: Check) -> Value {
        let examples: Vec<&Finding> = self.findings.iter().filter(|f| f.check == check).collect();
        json!({
            "check": check.as_str(),
            "findings": self.counts.get(&check).copied().unwrap_or(0),
            "examples": examples,
            "seed": self.seed,
            "requests": self.requests,
            "elapsed_ms": self.elapsed_ms,
            "endpoints": self.endpoints.iter().map(|e| format!("{} {}", e.name, e.url)).collect::<Vec<_>>(),
            "statuses": self.statuses,
            "all_checks": self.counts.iter().map(|(c, n)| (c.as_str(), *n)).collect::<BTreeMap<_, _>>(),
        })
    }
}

/// Runs the pass: `settings.requests` hostile requests spread over
/// `endpoints`, `settings.concurrency` at a time, each with the profile's timeout.
pub async fn run(
    settings: &RobustnessSettings,
    http: &HttpSettings,
    endpoints: Vec<Endpoint>,
    known: &Known,
) -> Pass {
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(http.timeout_secs))
        .connect_timeout(Duration::from_secs(http.connect_timeout_secs))
        .pool_idle_timeout(crate::http::POOL_IDLE)
        .build()
        .unwrap_or_default();
    let mut pass = Pass {
        seed: settings.seed,
        requests: 0,
        elapsed_ms: 0,
        endpoints: endpoints.clone(),
        statuses: BTreeMap::new(),
        counts: Check::ALL.iter().map(|c| (*c, 0)).collect(),
        findings: Vec::new(),
    };
    if endpoints.is_empty() {
        return pass;
    }
    // Every spelling of every secret, worked out once for the whole pass.
    let secret_spellings: Arc<Vec<String>> = Arc::new(
        known
            .secrets
            .iter()
            .flat_map(|s| crate::http::spellings(s))
            .collect(),
    );
    let shared = Arc::new((known.clone(), endpoints.clone()));
    let seed = settings.seed;
    let mut outcomes = futures_util::stream::iter(0..settings.requests)
        .map(|index| {
            let (client, shared, spellings) =
                (client.clone(), shared.clone(), secret_spellings.clone());
            // Each exchange (built, sent, judged) is a task of its own, so
            // the pass's work spreads over the runtime's threads instead of
            // all running on the pass's own.
            tokio::spawn(async move {
                let (known, endpoints) = &*shared;
                let request = build(seed, index, &endpoints[index % endpoints.len()], known);
                let answer = send(&client, &request).await;
                let judged = judge(&request, &answer, &spellings);
                (request, answer, judged)
            })
        })
        .buffer_unordered(settings.concurrency.clamp(1, 64))
        .filter_map(|joined| std::future::ready(joined.ok()));
    while let Some((request, answer, judged)) = outcomes.next().await {
        pass.requests += 1;
        let status_key = match &answer {
            Answer::Answered { status, .. } => status.to_string(),
            Answer::TimedOut => "timeout".to_owned(),
            Answer::Closed => "closed".to_owned(),
            Answer::Unsent => "unsent".to_owned(),
        };
        *pass.statuses.entry(status_key).or_default() += 1;
        for (check, detail) in judged {
            *pass.counts.entry(check).or_default() += 1;
            if pass.findings.iter().filter(|f| f.check == check).count() < KEPT_FINDINGS {
                pass.findings.push(Finding {
                    check,
                    seed: settings.seed,
                    request: request.index,
                    endpoint: request.endpoint.clone(),
                    generator: request.generator.clone(),
                    detail,
                    exchange: exchange(&request, &answer, &known.secrets),
                });
            }
        }
    }
    // The target must still be up: a crash looks like closed connections.
    if let Some(metadata) = endpoints
        .iter()
        .find(|e| e.name == "authorization_server_metadata")
    {
        let alive = client.get(&metadata.url).send().await;
        if !alive.as_ref().is_ok_and(|r| r.status().is_success()) {
            *pass.counts.entry(Check::ServerError).or_default() += 1;
            pass.findings.push(Finding {
                check: Check::ServerError,
                seed: settings.seed,
                request: settings.requests,
                endpoint: metadata.name.clone(),
                generator: "liveness".into(),
                detail: format!(
                    "after the pass, the target no longer serves its metadata ({})",
                    match &alive {
                        Ok(r) => format!("status {}", r.status().as_u16()),
                        Err(e) => e.to_string(),
                    }
                ),
                exchange: Exchange {
                    method: "GET".into(),
                    url: metadata.url.clone(),
                    request_headers: Vec::new(),
                    request_body: None,
                    status: alive.as_ref().ok().map(|r| r.status().as_u16()),
                    response_headers: Vec::new(),
                    response_body: None,
                    transport_error: alive.as_ref().err().map(|e| e.to_string()),
                    operation: None,
                },
            });
        }
    }
    pass.findings.sort_by_key(|f| (f.check, f.request));
    pass.elapsed_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        seed = pass.seed,
        requests = pass.requests,
        endpoints = pass.endpoints.len(),
        elapsed_ms = pass.elapsed_ms,
        statuses = ?pass.statuses,
        findings = ?pass.counts,
        "robustness pass"
    );
    pass
}

/// What came back for one request.
enum Answer {
    Answered {
        status: u16,
        headers: reqwest::header::HeaderMap,
        body: Vec<u8>,
    },
    TimedOut,
    /// The target closed the connection or refused the request on the wire
    /// (a header too large, say): an answer of a kind, not a finding.
    Closed,
    /// The harness could not build the request (a URL past what its HTTP
    /// library takes): the harness's limit, not the target's.
    Unsent,
}

async fn send(client: &reqwest::Client, request: &HostileRequest) -> Answer {
    let mut builder = client.request(request.method.clone(), &request.url);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    if !request.body.is_empty() {
        builder = builder.body(request.body.clone());
    }
    let mut response = match builder.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Answer::TimedOut,
        Err(e) if e.is_builder() => return Answer::Unsent,
        Err(_) => return Answer::Closed,
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = READ_LIMIT.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= READ_LIMIT {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) if e.is_timeout() => return Answer::TimedOut,
            Err(_) => break,
        }
    }
    Answer::Answered {
        status,
        headers,
        body,
    }
}

/// The checks one answer breaks, each with what was seen.
fn judge(
    request: &HostileRequest,
    answer: &Answer,
    secret_spellings: &[String],
) -> Vec<(Check, String)> {
    let mut broken = Vec::new();
    let Answer::Answered {
        status,
        headers,
        body,
    } = answer
    else {
        if matches!(answer, Answer::TimedOut) {
            broken.push((
                Check::Slow,
                "no answer within the profile's timeout".to_owned(),
            ));
        }
        return broken;
    };
    let overload = *status == 503 && headers.contains_key("retry-after");
    if *status >= 500 && !overload {
        broken.push((Check::ServerError, format!("answered {status}")));
    }
    let text = String::from_utf8_lossy(body);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    // A browser renders HTML, XML, and anything whose type it must guess.
    let rendered =
        content_type.is_empty() || content_type.contains("html") || content_type.contains("xml");
    if rendered {
        if let Some(payload) = hostile::markup(request.index)
            .into_iter()
            .find(|p| text.contains(p.as_str()))
        {
            broken.push((
                Check::Reflection,
                format!("the answer ({content_type:?}) holds the payload `{payload}` unescaped"),
            ));
        }
    }
    if headers.contains_key(INJECTED_HEADER) {
        broken.push((
            Check::Reflection,
            format!("the answer carries the header `{INJECTED_HEADER}` the request injected"),
        ));
    }
    let header_text: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    if let Some(secret) = secret_spellings
        .iter()
        .find(|s| text.contains(s.as_str()) || header_text.contains(s.as_str()))
    {
        broken.push((
            Check::Secret,
            format!(
                "the answer repeats a secret the harness holds ({} characters, from the profile)",
                secret.len()
            ),
        ));
    }
    broken
}

/// The request and what came back, as a transcript shows them: secrets
/// redacted, bodies cut at [`SHOWN_BODY`] bytes with their length.
fn exchange(request: &HostileRequest, answer: &Answer, secrets: &[String]) -> Exchange {
    let shown = |bytes: &[u8]| clip(&String::from_utf8_lossy(bytes), SHOWN_BODY);
    let (status, response_headers, response_body, transport_error) = match answer {
        Answer::Answered {
            status,
            headers,
            body,
        } => (
            Some(*status),
            crate::http::header_list(headers),
            Some(shown(body)),
            None,
        ),
        Answer::TimedOut => (
            None,
            Vec::new(),
            None,
            Some("timed out: no answer within the profile's timeout".to_owned()),
        ),
        Answer::Closed => (
            None,
            Vec::new(),
            None,
            Some("the connection was closed".to_owned()),
        ),
        Answer::Unsent => (None, Vec::new(), None, Some("not sent".to_owned())),
    };
    let mut exchange = Exchange {
        method: request.method.to_string(),
        url: clip(&request.url, SHOWN_BODY),
        request_headers: request
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), clip(v, 200)))
            .collect(),
        request_body: (!request.body.is_empty()).then(|| shown(&request.body)),
        status,
        response_headers,
        response_body,
        transport_error,
        operation: None,
    };
    exchange.redact(secrets);
    exchange
}

/// Request `index` of the pass seeded `seed`, to `endpoint`.
pub fn build(seed: u64, index: usize, endpoint: &Endpoint, known: &Known) -> HostileRequest {
    let mut rng = hostile::rng(seed, index);
    let mut request = match endpoint.shape {
        Shape::Query => query_request(&mut rng, index, endpoint, known),
        Shape::Form => form_request(&mut rng, index, endpoint, known),
        Shape::Json => json_request(&mut rng, index, endpoint),
        Shape::Mcp => mcp_request(&mut rng, index, endpoint),
    };
    // Headers every endpoint may meet: a forwarded-for it must not trust
    // blindly, a hostile user agent, a huge header.
    if rng.random_bool(0.15) {
        let (name, value, kind) = match rng.random_range(0..4) {
            0 => (
                "x-forwarded-for",
                "127.0.0.2, 10.0.0.1, ::1".to_owned(),
                "forwarded",
            ),
            1 => (
                "x-forwarded-host",
                "127.0.0.2:1".to_owned(),
                "forwarded-host",
            ),
            2 => (
                "user-agent",
                header_safe(&hostile::markup(index)[2]),
                "user-agent",
            ),
            _ => ("x-conform-padding", "p".repeat(16 * 1024), "huge-header"),
        };
        request.headers.push((name.to_owned(), value));
        request.generator.push('+');
        request.generator.push_str(kind);
    }
    request
}

/// A value fit for a header: visible ASCII only (reqwest refuses the rest),
/// the rest percent-encoded.
fn header_safe(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Parameters with one to three hostile changes: a value replaced, a
/// parameter repeated, a parameter with a hostile name added.
fn mutate(
    rng: &mut StdRng,
    index: usize,
    params: &mut Vec<(String, String)>,
    generator: &mut String,
) {
    for _ in 0..rng.random_range(1..=3) {
        match rng.random_range(0..5) {
            0..=2 if !params.is_empty() => {
                let at = rng.random_range(0..params.len());
                let (value, kind) = hostile::value(rng, index);
                params[at].1 = value;
                generator.push_str(&format!("+{}={kind}", params[at].0));
            }
            3 if !params.is_empty() => {
                let at = rng.random_range(0..params.len());
                let (value, _) = hostile::value(rng, index);
                let name = params[at].0.clone();
                generator.push_str(&format!("+repeat:{name}"));
                params.push((name, value));
            }
            _ => {
                let name = hostile::parameter_name(rng, index);
                let (value, kind) = hostile::value(rng, index);
                generator.push_str(&format!("+extra={kind}"));
                params.push((name, value));
            }
        }
    }
}

fn encode(params: &[(String, String)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        form.append_pair(k, v);
    }
    form.finish()
}

/// Encodings a parser must refuse: bad percent escapes, overlong UTF-8,
/// bytes that are not UTF-8 at all.
fn bad_encoding(rng: &mut StdRng) -> (&'static [u8], &'static str) {
    match rng.random_range(0..4) {
        0 => (b"&x=%ZZ%", "bad-percent"),
        1 => (b"&x=%C0%AF%C0%AE", "overlong-utf8"),
        2 => (b"&x=\xff\xfe\xfd", "not-utf8"),
        _ => (b"&&&==&=x&x==", "empty-pairs"),
    }
}

fn query_request(
    rng: &mut StdRng,
    index: usize,
    endpoint: &Endpoint,
    known: &Known,
) -> HostileRequest {
    let mut generator = "query".to_owned();
    let mut params: Vec<(String, String)> = Vec::new();
    if endpoint.name == "authorization_endpoint" {
        let (client_id, redirect_uri) = match &known.client {
            Some((id, uri)) if rng.random_bool(0.6) => (id.clone(), uri.clone()),
            _ => {
                generator.push_str("/unknown-client");
                (hostile::marker(index), hostile::redirect_uri(rng, index))
            }
        };
        params.extend([
            ("response_type".to_owned(), "code".to_owned()),
            ("client_id".to_owned(), client_id),
            ("redirect_uri".to_owned(), redirect_uri),
            (
                "code_challenge".to_owned(),
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned(),
            ),
            ("code_challenge_method".to_owned(), "S256".to_owned()),
            ("state".to_owned(), format!("{:032x}", rng.random::<u128>())),
            ("scope".to_owned(), known.scopes.join(" ")),
        ]);
        // `state` comes back to the client verbatim (RFC 6749 §4.1.2): a
        // long one, with markup, is where a server must stay careful.
        if rng.random_bool(0.1) {
            generator.push_str("+long-state");
            params[5].1 = format!(
                "{}{}",
                hostile::markup(index)[1],
                "s".repeat(rng.random_range(1_100..8_000))
            );
        }
    }
    mutate(rng, index, &mut params, &mut generator);
    let mut query = encode(&params).into_bytes();
    if rng.random_bool(0.15) {
        let (bytes, kind) = bad_encoding(rng);
        query.extend_from_slice(bytes);
        generator.push_str(&format!("+{kind}"));
    }
    // A URL carries bytes only as escapes: the invalid ones go escaped.
    let mut escaped = String::with_capacity(query.len());
    for &b in &query {
        if b.is_ascii_graphic() {
            escaped.push(b as char);
        } else {
            escaped.push_str(&format!("%{b:02X}"));
        }
    }
    let query = escaped;
    let separator = if endpoint.url.contains('?') { '&' } else { '?' };
    let method = if endpoint.name == "authorization_endpoint" || rng.random_bool(0.85) {
        reqwest::Method::GET
    } else {
        let m = ["POST", "PUT", "DELETE", "PATCH"][rng.random_range(0..4)];
        generator.push_str(&format!("+method={m}"));
        reqwest::Method::from_bytes(m.as_bytes()).unwrap_or(reqwest::Method::POST)
    };
    let mut url = format!("{}{separator}{query}", endpoint.url);
    // URLs past 64 KiB are not HTTP/1.1 requests any library sends; past
    // 8 KiB a server may already answer 414 (RFC 9112 §3).
    url.truncate(MAX_URL);
    HostileRequest {
        index,
        endpoint: endpoint.name.clone(),
        generator,
        method,
        url,
        headers: Vec::new(),
        body: Vec::new(),
    }
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

fn form_request(
    rng: &mut StdRng,
    index: usize,
    endpoint: &Endpoint,
    known: &Known,
) -> HostileRequest {
    let mut generator = "form".to_owned();
    let mut params: Vec<(String, String)> = Vec::new();
    let mut headers = vec![(
        "content-type".to_owned(),
        "application/x-www-form-urlencoded".to_owned(),
    )];
    let jwt = |rng: &mut StdRng| hostile::malformed_jwt(rng, index);
    if endpoint.name == "token_endpoint" {
        // Most grants here fail before client authentication: a pass that
        // costs the target a password hash per request measures the hash.
        let grant = match rng.random_range(0..10) {
            0..=2 => {
                if let Some((user, password)) = pick(rng, &known.users) {
                    params.push(("username".into(), user));
                    params.push(("password".into(), password));
                }
                "password".to_owned()
            }
            3 => {
                params.push(("code".into(), jwt(rng)));
                params.push(("code_verifier".into(), hostile::value(rng, index).0));
                "authorization_code".to_owned()
            }
            4 => {
                params.push(("refresh_token".into(), jwt(rng)));
                "refresh_token".to_owned()
            }
            5 => {
                params.push(("assertion".into(), jwt(rng)));
                JWT_BEARER.to_owned()
            }
            6 => {
                params.push(("subject_token".into(), jwt(rng)));
                params.push((
                    "subject_token_type".into(),
                    "urn:ietf:params:oauth:token-type:access_token".into(),
                ));
                TOKEN_EXCHANGE.to_owned()
            }
            7 => "client_credentials".to_owned(),
            _ => hostile::value(rng, index).0,
        };
        generator.push_str(&format!("/{}", grant.rsplit(':').next().unwrap_or("grant")));
        params.insert(0, ("grant_type".into(), grant));
        params.push(("scope".into(), known.scopes.join(" ")));
    } else {
        params.push(("token".into(), jwt(rng)));
        params.push(("token_type_hint".into(), "access_token".into()));
    }
    // Client authentication, right or wrong, and secrets in the wrong places.
    match rng.random_range(0..10) {
        0..=3 => {}
        4 | 5 => params.push(("client_id".into(), hostile::value(rng, index).0)),
        6 => {
            if let Some((id, secret)) = pick(rng, &known.confidential) {
                generator.push_str("+client_secret_post");
                params.push(("client_id".into(), id));
                params.push(("client_secret".into(), secret));
            }
        }
        7 => {
            use base64::Engine;
            let (id, secret) = pick(rng, &known.confidential).unwrap_or_default();
            let pair = match rng.random_range(0..3) {
                0 => format!("{id}:{secret}"),
                1 => format!("{}:{secret}", hostile::markup(index)[0]),
                _ => "no colon at all".to_owned(),
            };
            generator.push_str("+basic");
            headers.push((
                "authorization".into(),
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ),
            ));
        }
        8 => {
            generator.push_str("+basic-garbage");
            headers.push(("authorization".into(), "Basic !!!not base64!!!".into()));
        }
        _ => {
            generator.push_str("+client_assertion");
            params.push((
                "client_assertion_type".into(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ));
            params.push(("client_assertion".into(), jwt(rng)));
        }
    }
    mutate(rng, index, &mut params, &mut generator);
    if rng.random_bool(0.1) {
        generator.push_str("+repeat:grant_type");
        params.push(("grant_type".into(), "client_credentials".into()));
    }
    let mut body = encode(&params).into_bytes();
    match rng.random_range(0..12) {
        0 => {
            let (bytes, kind) = bad_encoding(rng);
            body.extend_from_slice(bytes);
            generator.push_str(&format!("+{kind}"));
        }
        1 => {
            generator.push_str("+json-body");
            headers[0].1 = "application/json".into();
            let map: serde_json::Map<String, Value> =
                params.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            body = serde_json::to_vec(&map).unwrap_or_default();
        }
        2 => {
            generator.push_str("+no-content-type");
            headers.remove(0);
        }
        3 => {
            generator.push_str("+many-params");
            for i in 0..2_000 {
                body.extend_from_slice(format!("&p{i}={i}").as_bytes());
            }
        }
        _ => {}
    }
    HostileRequest {
        index,
        endpoint: endpoint.name.clone(),
        generator,
        method: reqwest::Method::POST,
        url: endpoint.url.clone(),
        headers,
        body,
    }
}

fn json_request(rng: &mut StdRng, index: usize, endpoint: &Endpoint) -> HostileRequest {
    let mut generator = "json".to_owned();
    let name: String = fake::Fake::fake_with_rng(&fake::faker::name::en::Name(), rng);
    let mut metadata = json!({
        "client_name": name,
        "redirect_uris": ["http://127.0.0.1:9/callback"],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    const FIELDS: [&str; 9] = [
        "client_name",
        "client_uri",
        "logo_uri",
        "tos_uri",
        "policy_uri",
        "scope",
        "software_id",
        "token_endpoint_auth_method",
        "contacts",
    ];
    for _ in 0..rng.random_range(1..=3) {
        match rng.random_range(0..6) {
            0 | 1 => {
                let field = FIELDS[rng.random_range(0..FIELDS.len())];
                let (value, kind) = hostile::value(rng, index);
                generator.push_str(&format!("+{field}={kind}"));
                metadata[field] = json!(value);
            }
            2 => {
                generator.push_str("+redirect_uri-trick");
                metadata["redirect_uris"] = json!([hostile::redirect_uri(rng, index)]);
            }
            3 => {
                let field = ["redirect_uris", "client_name", "grant_types", "contacts"]
                    [rng.random_range(0..4)];
                let wrong = [
                    json!("text"),
                    json!(5),
                    json!({}),
                    json!([1, [2]]),
                    json!(null),
                ][rng.random_range(0..5)]
                .clone();
                generator.push_str(&format!("+wrong-type:{field}"));
                metadata[field] = wrong;
            }
            4 => {
                generator.push_str("+many-redirect-uris");
                // The same 5,000 for every request: built once.
                static MANY: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
                metadata["redirect_uris"] = MANY
                    .get_or_init(|| {
                        json!((0..5_000)
                            .map(|i| format!("http://127.0.0.1:9/cb{i}"))
                            .collect::<Vec<_>>())
                    })
                    .clone();
            }
            _ => {
                let name = hostile::parameter_name(rng, index);
                generator.push_str("+extra-member");
                metadata[name] = json!(hostile::value(rng, index).0);
            }
        }
    }
    let mut body = serde_json::to_vec(&metadata).unwrap_or_default();
    let mut content_type = "application/json".to_owned();
    match rng.random_range(0..14) {
        0 => {
            generator.push_str("+deep-nesting");
            body = format!(r#"{{"client_name":{}}}"#, hostile::nested_json(5_000)).into_bytes();
        }
        1 => {
            generator.push_str("+not-utf8");
            body = b"{\"client_name\":\"\xff\xfe\",\"redirect_uris\":[]}".to_vec();
        }
        2 => {
            generator.push_str("+lone-surrogate");
            body =
                br#"{"client_name":"\ud800","redirect_uris":["http://127.0.0.1:9/cb"]}"#.to_vec();
        }
        3 => {
            generator.push_str("+duplicate-keys");
            body =
                br#"{"redirect_uris":["http://127.0.0.1:9/cb"],"redirect_uris":["javascript:x"]}"#
                    .to_vec();
        }
        4 => {
            generator.push_str("+trailing-garbage");
            body.extend_from_slice(b"}}]]\0garbage");
        }
        5 => {
            generator.push_str("+not-json");
            body = encode(&[("client_name".into(), "x".into())]).into_bytes();
        }
        6 => {
            generator.push_str("+wrong-content-type");
            content_type = "text/html".into();
        }
        7 => {
            generator.push_str("+empty-body");
            body = Vec::new();
        }
        _ => {}
    }
    HostileRequest {
        index,
        endpoint: endpoint.name.clone(),
        generator,
        method: reqwest::Method::POST,
        url: endpoint.url.clone(),
        headers: vec![("content-type".into(), content_type)],
        body,
    }
}

fn mcp_request(rng: &mut StdRng, index: usize, endpoint: &Endpoint) -> HostileRequest {
    let mut generator = "mcp".to_owned();
    let mut headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        (
            "accept".to_owned(),
            "application/json, text/event-stream".to_owned(),
        ),
    ];
    match rng.random_range(0..5) {
        0 => {}
        1 | 2 => {
            generator.push_str("+bearer-jwt");
            let token = hostile::malformed_jwt(rng, index);
            headers.push(("authorization".into(), format!("Bearer {token}")));
        }
        3 => {
            generator.push_str("+bearer-hostile");
            let value = header_safe(&hostile::value(rng, index).0);
            headers.push(("authorization".into(), format!("Bearer {value}")));
        }
        _ => {
            generator.push_str("+basic");
            headers.push(("authorization".into(), "Basic Og==".into()));
        }
    }
    if rng.random_bool(0.2) {
        generator.push_str("+session-id");
        headers.push((
            "mcp-session-id".into(),
            header_safe(&hostile::value(rng, index).0),
        ));
    }
    if rng.random_bool(0.2) {
        generator.push_str("+protocol-version");
        headers.push((
            "mcp-protocol-version".into(),
            header_safe(&hostile::value(rng, index).0),
        ));
    }
    let method_name = [
        "initialize",
        "tools/call",
        "tools/list",
        "ping",
        "resources/read",
    ][rng.random_range(0..5)];
    let (value, kind) = hostile::value(rng, index);
    let body = match rng.random_range(0..8) {
        0 => {
            generator.push_str("+deep-nesting");
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{}}}"#,
                hostile::nested_json(5_000)
            )
            .into_bytes()
        }
        1 => {
            generator.push_str("+batch");
            // The same 1,000 pings for every request: serialized once.
            static BATCH: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
            BATCH
                .get_or_init(|| {
                    serde_json::to_vec(
                        &(0..1_000)
                            .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"ping"}))
                            .collect::<Vec<_>>(),
                    )
                    .unwrap_or_default()
                })
                .clone()
        }
        2 => {
            generator.push_str("+not-json");
            b"\xff{{{{".to_vec()
        }
        _ => {
            generator.push_str(&format!("+{method_name}:{kind}"));
            serde_json::to_vec(&json!({
                "jsonrpc": "2.0",
                "id": value,
                "method": method_name,
                "params": {"name": value, "arguments": {"q": value}, "uri": value},
            }))
            .unwrap_or_default()
        }
    };
    let method = match rng.random_range(0..10) {
        0 => reqwest::Method::GET,
        1 => reqwest::Method::DELETE,
        _ => reqwest::Method::POST,
    };
    HostileRequest {
        index,
        endpoint: endpoint.name.clone(),
        generator,
        method,
        url: endpoint.url.clone(),
        headers,
        body,
    }
}

fn pick<T: Clone>(rng: &mut StdRng, items: &[T]) -> Option<T> {
    (!items.is_empty()).then(|| items[rng.random_range(0..items.len())].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> Vec<Endpoint> {
        [
            ("authorization_endpoint", "http://127.0.0.1:9/authorize"),
            ("token_endpoint", "http://127.0.0.1:9/token"),
            ("registration_endpoint", "http://127.0.0.1:9/register"),
            ("jwks_uri", "http://127.0.0.1:9/jwks"),
        ]
        .iter()
        .filter_map(|(n, u)| Endpoint::from_metadata(n, u))
        .collect()
    }

    #[test]
    fn the_same_seed_builds_the_same_requests() {
        let known = Known::default();
        for (i, e) in endpoints().iter().enumerate() {
            let a = build(5, i, e, &known);
            let b = build(5, i, e, &known);
            assert_eq!((a.url, a.body, a.headers), (b.url, b.body, b.headers));
        }
    }

    #[test]
    fn a_secret_planted_in_a_request_is_redacted_when_it_is_shown() {
        let known = Known {
            confidential: vec![("agent".into(), "s3cret-value!".into())],
            secrets: vec!["s3cret-value!".into()],
            ..Known::default()
        };
        let token = &endpoints()[1];
        let mut planted = 0;
        for i in 0..400 {
            let request = build(1, i, token, &known);
            let shown = serde_json::to_string(&exchange(&request, &Answer::Closed, &known.secrets))
                .unwrap();
            assert!(!shown.contains("s3cret-value"), "{shown}");
            planted += usize::from(String::from_utf8_lossy(&request.body).contains("s3cret-value"));
        }
        assert!(planted > 0, "no request planted the secret");
    }

    #[test]
    fn answers_are_judged() {
        let known = Known {
            secrets: vec!["s3cret-value!".into()],
            ..Known::default()
        };
        let request = build(1, 3, &endpoints()[0], &known);
        let answer = |status, ct: &str, body: String| Answer::Answered {
            status,
            headers: [(reqwest::header::CONTENT_TYPE, ct.parse().unwrap())]
                .into_iter()
                .collect(),
            body: body.into_bytes(),
        };
        let checks = |a: &Answer| {
            judge(&request, a, &crate::http::spellings(&known.secrets[0]))
                .into_iter()
                .map(|(c, _)| c)
                .collect::<Vec<_>>()
        };
        let payload = hostile::markup(3)[0].clone();
        assert_eq!(
            checks(&answer(400, "text/html", "&lt;script&gt;".into())),
            vec![]
        );
        assert_eq!(
            checks(&answer(400, "text/html", payload.clone())),
            vec![Check::Reflection]
        );
        assert_eq!(checks(&answer(400, "application/json", payload)), vec![]);
        assert_eq!(
            checks(&answer(500, "application/json", "{}".into())),
            vec![Check::ServerError]
        );
        assert_eq!(
            checks(&answer(400, "application/json", "s3cret-value%21".into())),
            vec![Check::Secret]
        );
        assert_eq!(checks(&Answer::TimedOut), vec![Check::Slow]);
        assert_eq!(checks(&Answer::Closed), vec![]);
    }
}
