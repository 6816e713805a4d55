//! `conform load`: load on any target a profile describes, and correctness
//! under that load.
//!
//! A *mix* is what each request does (a `client_credentials` grant as the
//! profile's agent, or an introspection as its resource server). Workers,
//! one per connection, send until the duration or the request budget is
//! spent; with `--rate` the load is open-loop: request `i` is due at
//! `start + i / rate`, and its latency counts from then, so a server that
//! falls behind is not flattered by the workers waiting for it.
//!
//! Latencies go into an HDR histogram per worker (microseconds, merged at
//! the end). The checks are what a fast answer must still be: no 5xx, every
//! issued `jti` unique, every introspection of a live token `active`.
//! Only the profile's issuer and its metadata's endpoints are contacted.

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

use crate::profile::{PreRegisteredClient, Profile};

/// What each request of a load run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mix {
    /// A `client_credentials` grant as `[clients.agent]` (RFC 6749 §4.4).
    #[value(alias = "client_credentials")]
    ClientCredentials,
    /// An introspection (RFC 7662) of a live token as `[clients.introspector]`.
    Introspection,
}

/// The bounds and shape of a run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub mix: Mix,
    /// Connections, one worker each (1 to 1,024).
    pub connections: usize,
    /// How long to send (at most 10 minutes); with `requests`, whichever ends first.
    pub duration: Duration,
    /// How many requests at most.
    pub requests: Option<u64>,
    /// Open-loop: requests per second, whatever the answers' pace.
    pub rate: Option<u64>,
    /// Print a progress line every second (on a terminal).
    pub progress: bool,
}

/// The longest run: every loop is bounded in time as well as in requests.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// The most connections.
pub const MAX_CONNECTIONS: usize = 1_024;

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// One correctness check under load.
#[derive(Debug, Clone, Serialize)]
pub struct LoadCheck {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub target: String,
    pub mix: Mix,
    pub connections: usize,
    pub rate: Option<u64>,
    pub requests: u64,
    pub succeeded: u64,
    /// Failures by kind: `status 401`, `timeout`, `connection`, …
    pub errors: BTreeMap<String, u64>,
    pub elapsed_ms: u64,
    pub throughput_per_s: f64,
    pub latency: Latency,
    pub checks: Vec<LoadCheck>,
}

impl LoadReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The summary people read.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{} against {}: {} connections{}\n{} requests in {:.1} s: {:.0} req/s, {} succeeded\nlatency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
            match self.mix {
                Mix::ClientCredentials => "client_credentials",
                Mix::Introspection => "introspection",
            },
            self.target,
            self.connections,
            self.rate.map(|r| format!(", open loop at {r} req/s")).unwrap_or_default(),
            self.requests,
            self.elapsed_ms as f64 / 1000.0,
            self.throughput_per_s,
            self.succeeded,
            self.latency.p50_ms,
            self.latency.p90_ms,
            self.latency.p99_ms,
            self.latency.max_ms,
        );
        if self.errors.is_empty() {
            out.push_str("errors: none\n");
        } else {
            let errors: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            out.push_str(&format!("errors: {}\n", errors.join(", ")));
        }
        for check in &self.checks {
            out.push_str(&format!(
                "{} {}: {}\n",
                if check.passed { "PASS" } else { "FAIL" },
                check.name,
                check.detail
            ));
        }
        out
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the profile has no [clients.{0}] with a client secret (client_secret_basic or client_secret_post); load needs one")]
    NoClient(&'static str),
    #[error("the metadata has no `{0}`")]
    NoEndpoint(&'static str),
    #[error("the authorization server metadata could not be read: {0}")]
    Metadata(String),
    #[error("no token to introspect: {0}")]
    NoToken(String),
    #[error("{0}")]
    Bounds(String),
}

/// Everything a worker needs, shared.
struct Plan {
    mix: Mix,
    endpoint: String,
    form: Vec<(String, String)>,
    client: PreRegisteredClient,
    deadline: Instant,
    started: Instant,
    budget: u64,
    rate: Option<u64>,
    next: AtomicU64,
}

/// What one worker saw.
#[derive(Default)]
struct Tally {
    succeeded: u64,
    errors: BTreeMap<String, u64>,
    jtis: Vec<String>,
    inactive: u64,
    server_errors: u64,
}

/// Runs the load and its checks against the target the profile describes.
pub async fn run(profile: &Profile, options: &LoadOptions) -> Result<LoadReport, LoadError> {
    if options.connections == 0 || options.connections > MAX_CONNECTIONS {
        return Err(LoadError::Bounds(format!(
            "--connections must be 1 to {MAX_CONNECTIONS}"
        )));
    }
    if options.duration.is_zero() || options.duration > MAX_DURATION {
        return Err(LoadError::Bounds(
            "--duration must be above 0 and at most 600 s".into(),
        ));
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(profile.http.timeout_secs))
        .connect_timeout(Duration::from_secs(profile.http.connect_timeout_secs))
        .pool_max_idle_per_host(options.connections)
        .pool_idle_timeout(crate::http::POOL_IDLE)
        .build()
        .map_err(|e| LoadError::Metadata(e.to_string()))?;
    let metadata = metadata(&http, &profile.issuer).await?;
    let endpoint = |name: &'static str| {
        metadata
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(LoadError::NoEndpoint(name))
    };
    let agent = secret_client(profile, "agent")?;
    let token_form = grant_form(profile, &agent);
    let (endpoint, client, form) = match options.mix {
        Mix::ClientCredentials => (endpoint("token_endpoint")?, agent, token_form),
        Mix::Introspection => {
            let token_endpoint = endpoint("token_endpoint")?;
            let token = one_token(&http, &token_endpoint, &agent, &token_form).await?;
            let introspector = secret_client(profile, "introspector")?;
            (
                endpoint("introspection_endpoint")?,
                introspector,
                vec![("token".to_owned(), token)],
            )
        }
    };
    let started = Instant::now();
    let plan = Arc::new(Plan {
        mix: options.mix,
        endpoint,
        form,
        client,
        deadline: started + options.duration,
        started,
        budget: options.requests.unwrap_or(u64::MAX),
        rate: options.rate.filter(|r| *r > 0),
        next: AtomicU64::new(0),
    });
    let progress = options
        .progress
        .then(|| tokio::spawn(show_progress(plan.clone())));
    let workers: Vec<_> = (0..options.connections)
        .map(|_| tokio::spawn(work(plan.clone(), http.clone())))
        .collect();
    let mut histogram = new_histogram();
    let mut tally = Tally::default();
    for worker in workers {
        let Ok((h, t)) = worker.await else { continue };
        let _ = histogram.add(&h);
        tally.succeeded += t.succeeded;
        tally.inactive += t.inactive;
        tally.server_errors += t.server_errors;
        for (k, n) in t.errors {
            *tally.errors.entry(k).or_default() += n;
        }
        tally.jtis.extend(t.jtis);
    }
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let elapsed = started.elapsed();
    let requests = tally.succeeded + tally.errors.values().sum::<u64>();
    let ms = |v: u64| v as f64 / 1000.0;
    Ok(LoadReport {
        target: profile.issuer.clone(),
        mix: options.mix,
        connections: options.connections,
        rate: plan.rate,
        requests,
        succeeded: tally.succeeded,
        elapsed_ms: elapsed.as_millis() as u64,
        throughput_per_s: requests as f64 / elapsed.as_secs_f64().max(0.001),
        latency: Latency {
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
        },
        checks: checks(options.mix, &tally),
        errors: tally.errors,
    })
}

fn checks(mix: Mix, tally: &Tally) -> Vec<LoadCheck> {
    let mut checks = vec![LoadCheck {
        name: "no-server-error",
        passed: tally.server_errors == 0,
        detail: format!("{} answers were 5xx", tally.server_errors),
    }];
    match mix {
        Mix::ClientCredentials => {
            let unique: HashSet<&str> = tally.jtis.iter().map(String::as_str).collect();
            let repeats = tally.jtis.len() - unique.len();
            checks.push(LoadCheck {
                name: "jti-unique",
                passed: repeats == 0,
                detail: if tally.jtis.is_empty() && tally.succeeded > 0 {
                    "the tokens are opaque (no jti to compare)".into()
                } else {
                    format!(
                        "{} tokens, {repeats} repeated a jti (RFC 9068 §2.2: unique)",
                        tally.jtis.len()
                    )
                },
            });
        }
        Mix::Introspection => checks.push(LoadCheck {
            name: "introspection-active",
            passed: tally.inactive == 0,
            detail: format!(
                "{} introspections of a live token said inactive (RFC 7662 §2.2)",
                tally.inactive
            ),
        }),
    }
    checks
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 10 minutes, 3 significant figures.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// One connection's loop: bounded by the deadline and the request budget.
async fn work(plan: Arc<Plan>, http: reqwest::Client) -> (Histogram<u64>, Tally) {
    let mut histogram = new_histogram();
    let mut tally = Tally::default();
    loop {
        let i = plan.next.fetch_add(1, Ordering::Relaxed);
        if i >= plan.budget || Instant::now() >= plan.deadline {
            break;
        }
        let due = match plan.rate {
            Some(rate) => {
                let due = plan.started + Duration::from_secs_f64(i as f64 / rate as f64);
                if due >= plan.deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => Instant::now(),
        };
        let outcome = send(&plan, &http).await;
        let _ = histogram.record(due.elapsed().as_micros().max(1) as u64);
        match outcome {
            Ok(body) => {
                tally.succeeded += 1;
                read_body(plan.mix, &body, &mut tally);
            }
            Err(kind) => {
                if kind.starts_with("status 5") {
                    tally.server_errors += 1;
                }
                *tally.errors.entry(kind).or_default() += 1;
            }
        }
    }
    (histogram, tally)
}

async fn send(plan: &Plan, http: &reqwest::Client) -> Result<Value, String> {
    let response = authenticated(http, &plan.endpoint, &plan.client, &plan.form)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "timeout".to_owned()
            } else {
                "connection".to_owned()
            }
        })?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|_| "body cut".to_owned())?;
    if !(200..300).contains(&status) {
        return Err(format!("status {status}"));
    }
    serde_json::from_slice(&body).map_err(|_| "not JSON".to_owned())
}

fn read_body(mix: Mix, body: &Value, tally: &mut Tally) {
    match mix {
        Mix::ClientCredentials => {
            if let Some(jti) = body["access_token"]
                .as_str()
                .and_then(crate::steps::unverified_claims)
                .and_then(|c| c["jti"].as_str().map(str::to_owned))
            {
                tally.jtis.push(jti);
            }
        }
        Mix::Introspection => {
            if body["active"] != Value::Bool(true) {
                tally.inactive += 1;
            }
        }
    }
}

/// A form POST authenticated as `client` (client_secret_basic or _post).
fn authenticated(
    http: &reqwest::Client,
    endpoint: &str,
    client: &PreRegisteredClient,
    form: &[(String, String)],
) -> reqwest::RequestBuilder {
    if client.auth_method == "client_secret_post" {
        let mut form = form.to_vec();
        form.push(("client_id".into(), client.client_id.clone()));
        form.push(("client_secret".into(), client.client_secret.clone()));
        return http.post(endpoint).form(&form);
    }
    crate::steps::basic_auth(
        http.post(endpoint),
        &client.client_id,
        &client.client_secret,
    )
    .form(form)
}

fn secret_client(profile: &Profile, role: &'static str) -> Result<PreRegisteredClient, LoadError> {
    profile
        .clients
        .get(role)
        .filter(|c| {
            !c.client_secret.is_empty()
                && matches!(
                    c.auth_method.as_str(),
                    "client_secret_basic" | "client_secret_post"
                )
        })
        .cloned()
        .ok_or(LoadError::NoClient(role))
}

/// The agent's grant: its allowed scopes for its resource, as a scenario asks.
fn grant_form(profile: &Profile, agent: &PreRegisteredClient) -> Vec<(String, String)> {
    let mut form = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
    if !agent.allowed_scopes.is_empty() {
        form.push(("scope".into(), agent.allowed_scopes.join(" ")));
    }
    if let Some(resource) = profile.resources.get(&agent.resource) {
        form.push(("resource".into(), resource.url.clone()));
    }
    form
}

async fn one_token(
    http: &reqwest::Client,
    endpoint: &str,
    agent: &PreRegisteredClient,
    form: &[(String, String)],
) -> Result<String, LoadError> {
    let response = authenticated(http, endpoint, agent, form)
        .send()
        .await
        .map_err(|e| LoadError::NoToken(e.to_string()))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| LoadError::NoToken(format!("the token endpoint answered {status}")))
}

async fn metadata(http: &reqwest::Client, issuer: &str) -> Result<Value, LoadError> {
    let urls = crate::well_known::authorization_server_metadata_urls(issuer)
        .map_err(|e| LoadError::Metadata(e.to_string()))?;
    for url in urls {
        if let Ok(response) = http.get(&url).send().await {
            if response.status().is_success() {
                if let Ok(body) = response.json::<Value>().await {
                    return Ok(body);
                }
            }
        }
    }
    Err(LoadError::Metadata(format!("no metadata for `{issuer}`")))
}

/// A progress line every second on stderr: elapsed, requests, rate.
async fn show_progress(plan: Arc<Plan>) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let sent = plan.next.load(Ordering::Relaxed).min(plan.budget);
        let secs = plan.started.elapsed().as_secs_f64();
        eprint!(
            "\r{secs:5.1} s  {sent} requests  {:.0} req/s   ",
            sent as f64 / secs.max(0.001)
        );
    }
}
