//! The audit collector: after every scenario, reads the target's audit trail
//! and checks that the scenario's actions were recorded, with the required
//! fields, reasons for refusals, the delegation chain for exchanged tokens,
//! one correlation id per flow, and no secret the harness saw anywhere in it.
//! Reported as its own check on every scenario.
//!
//! The trail comes from one of two sources, as the profile's `[audit] source`
//! says: the `audit_position` and `read_audit` recipes (paged by cursor), or
//! the target's audit webhook, which POSTs CloudEvents batches to an endpoint the
//! harness hosts ([`WebhookCollector`], at [`WEBHOOK_PATH`]). Either way a
//! scenario's check looks at everything that came after its mark, so
//! concurrent scenarios see each other's events and match their own by client.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

use crate::http::Http;
use crate::operation::OperationError;
use crate::profile::{AuditSource, Profile};
use crate::recipe::Operation;
use crate::verdict::Status;

/// An event the target must have written because of something the harness did.
#[derive(Debug, Clone)]
pub struct AuditExpectation {
    /// What the harness did, for messages.
    pub because: String,
    /// Acceptable event types.
    pub types: Vec<&'static str>,
    /// The client the event must name, when the harness knows it.
    pub client_id: Option<String>,
    /// `success` or `failure`.
    pub outcome: &'static str,
    /// An exchanged token's event must carry `act`.
    pub needs_act: bool,
    /// Must share its correlation id with the event matched by this earlier expectation.
    pub same_flow_as: Option<usize>,
}

/// The audit-completeness verdict of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct AuditCheck {
    pub status: Status,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
    /// Events of the trail written while the scenario ran.
    pub events_read: usize,
    /// Events the scenario's actions required.
    pub events_expected: usize,
    /// Where the events were read: `query` (the profile's `read_audit`
    /// recipe) or `webhook` (the stream the target delivered to the
    /// harness's endpoint).
    pub source: AuditSource,
    /// The URL they were read from, or received at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl AuditCheck {
    pub fn skip(why: &str) -> AuditCheck {
        AuditCheck {
            status: Status::Skip,
            messages: vec![why.to_owned()],
            events_read: 0,
            events_expected: 0,
            source: AuditSource::Query,
            endpoint: None,
        }
    }

    fn error(source: AuditSource, endpoint: Option<String>, why: String) -> AuditCheck {
        AuditCheck {
            status: Status::Error,
            messages: vec![why],
            events_read: 0,
            events_expected: 0,
            source,
            endpoint,
        }
    }
}

/// Where the trail stood when a scenario started.
pub enum Mark {
    /// Where the trail stood, as the `audit_position` recipe read it: the
    /// cursor `read_audit` starts after.
    Query(Value),
    /// How many distinct events the webhook collector had received.
    Webhook {
        collector: Arc<WebhookCollector>,
        position: usize,
    },
}

/// Marks the trail before a scenario starts; a scenario whose trail cannot be
/// read gets the check it should report instead (`skip` or `error`).
pub async fn mark(http: &Http, profile: &Profile) -> Result<Mark, AuditCheck> {
    match profile.audit.source {
        AuditSource::Query => mark_query(http, profile).await.map(Mark::Query),
        AuditSource::Webhook => {
            let collector = collector_for(profile).await.map_err(|e| {
                AuditCheck::error(AuditSource::Webhook, None, format!("audit webhook: {e}"))
            })?;
            let position = collector.position();
            Ok(Mark::Webhook {
                collector,
                position,
            })
        }
    }
}

/// Where the trail stands, through the `audit_position` recipe.
async fn mark_query(http: &Http, profile: &Profile) -> Result<Value, AuditCheck> {
    let vars = profile.vars();
    let answer =
        crate::operation::perform(http, profile, &vars, Operation::AuditPosition, json!({}))
            .await
            .map_err(|e| match e {
                OperationError::Undeclared(_) => {
                    AuditCheck::skip(&format!("no audit collector: {e}"))
                }
                other => AuditCheck::skip(&format!(
                    "no audit collector: the target did not say where the trail stands: {other}"
                )),
            })?;
    answer.need_ok("position").cloned().map_err(|e| {
        AuditCheck::skip(&format!(
            "no audit collector: the target did not say where the trail stands: {e}"
        ))
    })
}

/// Every event written after the cursor `after`, page by page through the
/// `read_audit` recipe; with the URL it read from.
async fn events_since(
    http: &Http,
    profile: &Profile,
    after: &Value,
) -> (Option<String>, Result<Vec<Value>, String>) {
    let mut events = Vec::new();
    let mut cursor = after.clone();
    let mut endpoint = None;
    let vars = profile.vars();
    for _ in 0..20 {
        let answer = match crate::operation::perform(
            http,
            profile,
            &vars,
            Operation::ReadAudit,
            json!({"after": cursor}),
        )
        .await
        {
            Ok(answer) => answer,
            Err(e) => return (endpoint, Err(e.to_string())),
        };
        endpoint.get_or_insert_with(|| answer.url.split('?').next().unwrap_or_default().to_owned());
        let page = match answer.need_ok("events") {
            Ok(Value::Array(page)) => page.clone(),
            Ok(_) => {
                return (
                    endpoint,
                    Err(answer.unexpected("`events` is not a list").to_string()),
                )
            }
            Err(e) => return (endpoint, Err(format!("reading the audit trail: {e}"))),
        };
        if page.is_empty() {
            break;
        }
        events.extend(page);
        match answer.output("next") {
            Some(next) if *next != cursor => cursor = next.clone(),
            _ => break,
        }
    }
    (endpoint, Ok(events))
}

/// Names the kind of a secret without showing it.
fn secret_hint(secret: &str) -> String {
    let shown: String = secret.chars().take(4).collect();
    format!("`{shown}…` ({} characters)", secret.chars().count())
}

/// Checks the trail written since `mark` against what the scenario did.
pub async fn check(
    http: &Http,
    profile: &Profile,
    mark: Mark,
    expectations: &[AuditExpectation],
    own_clients: &BTreeSet<String>,
    secrets: &[String],
) -> AuditCheck {
    let (source, endpoint, read) = match &mark {
        Mark::Query(after) => {
            let (endpoint, read) = events_since(http, profile, after).await;
            (AuditSource::Query, endpoint, read)
        }
        Mark::Webhook {
            collector,
            position,
        } => (
            AuditSource::Webhook,
            Some(collector.url()),
            Ok(collector.settle(*position, expectations).await),
        ),
    };
    let events = match read {
        Ok(events) => events,
        Err(e) => {
            return AuditCheck {
                events_expected: expectations.len(),
                ..AuditCheck::error(source, endpoint, e)
            }
        }
    };
    let mut messages = Vec::new();
    let text = |e: &Value| e.to_string();
    // No secret the scenario saw may appear anywhere in the trail.
    for event in &events {
        let serialized = text(event);
        if let Some(secret) = secrets
            .iter()
            .filter(|s| s.len() >= 8)
            .find(|s| serialized.contains(s.as_str()))
        {
            messages.push(format!(
                "event {} ({}) contains a secret the harness used: {}",
                event["id"].as_str().unwrap_or("?"),
                event["type"].as_str().unwrap_or("?"),
                secret_hint(secret)
            ));
        }
    }
    // The scenario's own events carry the required fields; refusals say why.
    for event in events.iter().filter(|e| {
        e["client_id"]
            .as_str()
            .is_some_and(|c| own_clients.contains(c))
    }) {
        let id = event["id"].as_str().unwrap_or_default();
        let missing: Vec<&str> = [
            ("id", !id.is_empty()),
            ("time", event["time"].as_i64().unwrap_or(0) > 0),
            (
                "type",
                event["type"].as_str().is_some_and(|t| !t.is_empty()),
            ),
            (
                "outcome",
                matches!(event["outcome"].as_str(), Some("success" | "failure")),
            ),
            (
                "actor.type",
                event["actor"]["type"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty()),
            ),
        ]
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| name)
        .collect();
        if !missing.is_empty() {
            messages.push(format!("event {id} lacks {}", missing.join(", ")));
        }
        if event["outcome"] == "failure"
            && event["reason"].as_str().is_none_or(|r| r.trim().is_empty())
        {
            messages.push(format!(
                "refusal {id} ({}) gives no reason",
                event["type"].as_str().unwrap_or("?")
            ));
        }
    }
    // Every action the harness performed produced its event.
    let mut used = vec![false; events.len()];
    let mut matched: Vec<Option<usize>> = Vec::new();
    for expectation in expectations {
        let found = events
            .iter()
            .enumerate()
            .position(|(i, e)| !used[i] && fits(expectation, e));
        match found {
            None => messages.push(format!(
                "no `{}` event ({}) for {}",
                expectation.types.join("` or `"),
                expectation.outcome,
                expectation.because
            )),
            Some(i) => {
                used[i] = true;
                let event = &events[i];
                if expectation.needs_act && !event["act"].is_object() {
                    messages.push(format!(
                        "the `{}` event for {} has no delegation chain (act)",
                        event["type"].as_str().unwrap_or("?"),
                        expectation.because
                    ));
                }
                if let Some(Some(j)) = expectation
                    .same_flow_as
                    .map(|k| matched.get(k).copied().flatten())
                {
                    let (a, b) = (&events[j]["correlation_id"], &event["correlation_id"]);
                    if a.is_null() || a != b {
                        messages.push(format!(
                            "{} is not tied to its flow: correlation id {b} differs from {a}",
                            expectation.because
                        ));
                    }
                }
            }
        }
        matched.push(found);
    }
    if let (false, Mark::Webhook { collector, .. }) = (messages.is_empty(), &mark) {
        messages.extend(collector.diagnosis());
    }
    AuditCheck {
        status: if messages.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        },
        messages,
        events_read: events.len(),
        events_expected: expectations.len(),
        source,
        endpoint,
    }
}

/// Whether `event` is one the expectation asks for.
fn fits(expectation: &AuditExpectation, event: &Value) -> bool {
    expectation
        .types
        .iter()
        .any(|t| event["type"].as_str() == Some(t))
        && event["outcome"].as_str() == Some(expectation.outcome)
        && expectation
            .client_id
            .as_deref()
            .is_none_or(|c| event["client_id"].as_str() == Some(c))
}

/// Whether every expectation has an event of its own among `events`
/// (the same greedy matching as [`check`]).
fn all_arrived(events: &[Value], expectations: &[AuditExpectation]) -> bool {
    let mut used = vec![false; events.len()];
    expectations.iter().all(|expectation| {
        match events
            .iter()
            .enumerate()
            .position(|(i, e)| !used[i] && fits(expectation, e))
        {
            Some(i) => {
                used[i] = true;
                true
            }
            None => false,
        }
    })
}

// ---- the webhook source ----------------------------------------------------------

/// The path the collector receives the target's audit webhook on.
pub const WEBHOOK_PATH: &str = "/audit-webhook";
/// The longest a webhook-mode check waits for a scenario's events.
const WEBHOOK_DEADLINE: Duration = Duration::from_secs(5);
/// A stream that has been silent this long (since the check began) has
/// delivered what the target wrote before it.
const WEBHOOK_QUIET: Duration = Duration::from_secs(1);

/// Receives the target's audit webhook: CloudEvents batches
/// (`application/cloudevents-batch+json`, or one structured CloudEvent) POSTed
/// to [`WEBHOOK_PATH`]. Keeps each event's `data` (the audit event) once, in
/// arrival order, de-duplicated by event id since delivery is at least once,
/// and answers `204`. A delivery it cannot read gets `400`; another path `404`.
pub struct WebhookCollector {
    /// Serves the endpoint (on its own thread) while the collector lives.
    server: MockServer,
    stream: Arc<Stream>,
}

struct Stream {
    received: Mutex<Received>,
    /// Bumped on every delivery that brought a new event.
    arrivals: tokio::sync::watch::Sender<usize>,
    started: Instant,
}

#[derive(Default)]
struct Received {
    /// The `data` of each distinct event, in arrival order.
    events: Vec<Value>,
    ids: HashSet<String>,
    deliveries: usize,
    duplicates: usize,
    last_arrival: Option<Instant>,
    /// Why deliveries were refused (the latest few), for diagnosis.
    refused: Vec<String>,
    refused_count: usize,
}

impl Stream {
    /// Takes one delivery's body; all of it or none of it.
    fn accept(&self, body: &[u8]) -> Result<(), String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
        let items = match value {
            Value::Array(items) => items,
            single @ Value::Object(_) => vec![single],
            _ => return Err("the body is neither a CloudEvents batch nor a CloudEvent".into()),
        };
        let mut batch = Vec::with_capacity(items.len());
        for (i, mut item) in items.into_iter().enumerate() {
            let data = match item.get_mut("data").map(Value::take) {
                Some(data @ Value::Object(_)) => data,
                _ => {
                    return Err(format!(
                        "CloudEvent {i} has no `data` object (the audit event)"
                    ))
                }
            };
            let id = item["id"]
                .as_str()
                .or(data["id"].as_str())
                .filter(|id| !id.is_empty())
                .ok_or_else(|| format!("CloudEvent {i} has no `id`"))?
                .to_owned();
            batch.push((id, data));
        }
        let mut received = self.received.lock().unwrap_or_else(|p| p.into_inner());
        received.deliveries += 1;
        let before = received.events.len();
        for (id, data) in batch {
            if received.ids.insert(id) {
                received.events.push(data);
            } else {
                received.duplicates += 1;
            }
        }
        if received.events.len() > before {
            received.last_arrival = Some(Instant::now());
            let total = received.events.len();
            drop(received);
            self.arrivals.send_replace(total);
        }
        Ok(())
    }

    fn refuse(&self, why: String) {
        let mut received = self.received.lock().unwrap_or_else(|p| p.into_inner());
        received.refused_count += 1;
        if received.refused.len() == 3 {
            received.refused.remove(0);
        }
        received.refused.push(why);
    }
}

/// The endpoint's responder: takes the deliveries to [`WEBHOOK_PATH`].
struct Deliveries(Arc<Stream>);

impl Respond for Deliveries {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        match self.0.accept(&request.body) {
            Ok(()) => ResponseTemplate::new(204),
            Err(why) => {
                self.0.refuse(why.clone());
                ResponseTemplate::new(400).set_body_string(why)
            }
        }
    }
}

/// Anything else sent to the collector: noted, so a misconfigured URL is diagnosed.
struct Misdirected(Arc<Stream>);

impl Respond for Misdirected {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        self.0.refuse(format!(
            "{} {} (the collector takes POST {WEBHOOK_PATH})",
            request.method,
            request.url.path()
        ));
        ResponseTemplate::new(404)
    }
}

impl WebhookCollector {
    /// Listens on `listen` (port 0: any free port) and starts receiving.
    pub async fn start(listen: SocketAddr) -> std::io::Result<WebhookCollector> {
        let listener = std::net::TcpListener::bind(listen)?;
        let server = MockServer::builder()
            .listener(listener)
            .disable_request_recording()
            .start()
            .await;
        let stream = Arc::new(Stream {
            received: Mutex::new(Received::default()),
            arrivals: tokio::sync::watch::Sender::new(0),
            started: Instant::now(),
        });
        Mock::given(wiremock::matchers::method("POST"))
            .and(wiremock::matchers::path(WEBHOOK_PATH))
            .respond_with(Deliveries(stream.clone()))
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(wiremock::matchers::any())
            .respond_with(Misdirected(stream.clone()))
            .with_priority(u8::MAX)
            .mount(&server)
            .await;
        Ok(WebhookCollector { server, stream })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        *self.server.address()
    }

    /// The URL the target must deliver to (`--audit-webhook` for the reference hub).
    pub fn url(&self) -> String {
        format!("http://{}{WEBHOOK_PATH}", self.address())
    }

    /// How many distinct events have arrived so far.
    pub fn position(&self) -> usize {
        self.received().events.len()
    }

    /// Every distinct event received so far (each CloudEvent's `data`), in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.received().events.clone()
    }

    fn received(&self) -> std::sync::MutexGuard<'_, Received> {
        self.stream
            .received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The events received after `position`, once the ones `expectations`
    /// imply have arrived, or the stream has been quiet for [`WEBHOOK_QUIET`]
    /// since the check began, or [`WEBHOOK_DEADLINE`] has passed. Delivery is
    /// in order, so when the last expected event is there, so is every event
    /// the target wrote before it.
    async fn settle(&self, position: usize, expectations: &[AuditExpectation]) -> Vec<Value> {
        let began = Instant::now();
        let deadline = began + WEBHOOK_DEADLINE;
        let mut arrivals = self.stream.arrivals.subscribe();
        loop {
            arrivals.borrow_and_update();
            let (events, last_arrival) = {
                let received = self.received();
                let from = position.min(received.events.len());
                (received.events[from..].to_vec(), received.last_arrival)
            };
            let quiet_at = last_arrival.map_or(began, |t| t.max(began)) + WEBHOOK_QUIET;
            let now = Instant::now();
            if all_arrived(&events, expectations) || now >= deadline || now >= quiet_at {
                return events;
            }
            let wake = tokio::time::Instant::from_std(deadline.min(quiet_at));
            let _ = tokio::time::timeout_at(wake, arrivals.changed()).await;
        }
    }

    /// What may explain missing events: nothing received at all, or refused deliveries.
    fn diagnosis(&self) -> Vec<String> {
        let received = self.received();
        let mut notes = Vec::new();
        if received.deliveries == 0 {
            notes.push(format!(
                "nothing has been delivered to {} in the {}s since the harness started listening: \
                 was the target started with its audit webhook pointing there?",
                self.url(),
                self.stream.started.elapsed().as_secs()
            ));
        }
        if received.refused_count > 0 {
            notes.push(format!(
                "the collector refused {} request(s), lately: {}",
                received.refused_count,
                received.refused.join("; ")
            ));
        }
        notes
    }
}

/// The collectors of this process, by the address they listen on: one per
/// address, shared by every scenario of every run against it.
fn collectors() -> &'static tokio::sync::Mutex<HashMap<SocketAddr, Arc<WebhookCollector>>> {
    static COLLECTORS: OnceLock<tokio::sync::Mutex<HashMap<SocketAddr, Arc<WebhookCollector>>>> =
        OnceLock::new();
    COLLECTORS.get_or_init(Default::default)
}

/// The collector for `listen`, started on first use. Port 0 starts a new one on
/// a free port each time: see [`start_collector`].
pub async fn webhook_collector(listen: SocketAddr) -> std::io::Result<Arc<WebhookCollector>> {
    let mut collectors = collectors().lock().await;
    if listen.port() != 0 {
        if let Some(collector) = collectors.get(&listen) {
            return Ok(collector.clone());
        }
    }
    let collector = Arc::new(WebhookCollector::start(listen).await?);
    collectors.insert(collector.address(), collector.clone());
    Ok(collector)
}

/// The collector a webhook-mode profile names (which must not say port 0).
async fn collector_for(profile: &Profile) -> Result<Arc<WebhookCollector>, String> {
    let listen: SocketAddr = profile
        .audit
        .webhook_listen
        .as_deref()
        .ok_or("the profile has no audit.webhook_listen")?
        .parse()
        .map_err(|e| format!("audit.webhook_listen: {e}"))?;
    if listen.port() == 0 {
        return Err(
            "audit.webhook_listen has port 0: start the collector first (start_collector) \
             so the target can be told its port"
                .into(),
        );
    }
    webhook_collector(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))
}

/// Starts the collector a webhook-mode profile asks for, before any scenario
/// runs, and writes the port it got into `webhook_listen` when that said port 0.
/// Nothing to do (`None`) for the query source.
pub async fn start_collector(
    profile: &mut Profile,
) -> Result<Option<Arc<WebhookCollector>>, String> {
    if profile.audit.source != AuditSource::Webhook {
        return Ok(None);
    }
    let listen: SocketAddr = profile
        .audit
        .webhook_listen
        .as_deref()
        .ok_or("audit.source = \"webhook\" needs audit.webhook_listen")?
        .parse()
        .map_err(|e| format!("audit.webhook_listen: {e}"))?;
    let collector = webhook_collector(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    profile.audit.webhook_listen = Some(collector.address().to_string());
    tracing::info!(url = %collector.url(), "audit collector receiving the target's webhook");
    Ok(Some(collector))
}
