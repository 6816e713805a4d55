//! One worker's requests: the same authenticated form each time, a refresh
//! token chain, or a full code flow in the worker's own browser.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::Value;

use super::plan::{new_histogram, Mix, Plan};
use super::report::Tally;
use crate::profile::{PreRegisteredClient, Profile};
use crate::scenario::Step;
use crate::steps::budget::Registered;
use crate::steps::Run;

/// A form POST the same every time, authenticated as a confidential client.
#[derive(Debug, Clone)]
pub(super) struct TokenRequest {
    endpoint: String,
    client: PreRegisteredClient,
    form: Vec<(String, String)>,
}

impl TokenRequest {
    pub fn new(endpoint: String, client: PreRegisteredClient, form: Vec<(String, String)>) -> Self {
        TokenRequest {
            endpoint,
            client,
            form,
        }
    }

    /// client_secret_basic (RFC 6749 §2.3.1, the harness's one encoding) or client_secret_post.
    fn build(&self, http: &reqwest::Client) -> reqwest::RequestBuilder {
        if self.client.auth_method == "client_secret_post" {
            let mut form = self.form.clone();
            form.push(("client_id".into(), self.client.client_id.clone()));
            form.push(("client_secret".into(), self.client.client_secret.clone()));
            return http.post(&self.endpoint).form(&form);
        }
        crate::steps::basic_auth(
            http.post(&self.endpoint),
            &self.client.client_id,
            &self.client.client_secret,
        )
        .form(&self.form)
    }
}

/// What the workers of a code-flow run share: the client registered for
/// them, the metadata already read, and the flow's steps.
pub(super) struct Flows {
    pub registered: BTreeMap<String, Registered>,
    pub metadata: Option<Value>,
    pub steps: Vec<Step>,
}

/// Where one worker starts.
pub(super) enum Start {
    Fixed(Arc<TokenRequest>),
    /// A refresh token chain: each request presents the newest token.
    Chain {
        endpoint: Arc<str>,
        client_id: Arc<str>,
        token: String,
    },
    Flow(Arc<Flows>),
}

/// One connection's loop: bounded by the deadline and the request budget.
/// A chain the target ends (its refresh refused) ends the worker.
pub(super) async fn work(
    plan: Arc<Plan>,
    http: reqwest::Client,
    start: Start,
    profile: Arc<Profile>,
) -> (Histogram<u64>, Tally) {
    let mut histogram = new_histogram();
    let mut tally = Tally::default();
    let mut flow_run = match &start {
        Start::Flow(flows) => {
            let mut run = Run::new(&profile);
            run.client.registered = flows.registered.clone();
            run.client.metadata = flows.metadata.clone();
            Some(run)
        }
        _ => None,
    };
    let mut chain = match &start {
        Start::Chain { token, .. } => Some(token.clone()),
        _ => None,
    };
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
        let outcome = match (&start, flow_run.as_mut(), chain.as_mut()) {
            (Start::Fixed(request), _, _) => send(request.build(&http)).await,
            (
                Start::Chain {
                    endpoint,
                    client_id,
                    ..
                },
                _,
                Some(token),
            ) => refresh(&http, endpoint, client_id, token).await,
            (Start::Flow(flows), Some(run), _) => code_flow(run, &flows.steps).await,
            _ => Err("no session".to_owned()),
        };
        let _ = histogram.record(due.elapsed().as_micros().max(1) as u64);
        match outcome {
            Ok(body) => {
                tally.succeeded += 1;
                read_body(plan.mix, &body, &mut tally);
            }
            Err(kind) => {
                tally.failed(kind);
                if chain.is_some() {
                    break;
                }
            }
        }
    }
    (histogram, tally)
}

/// Sends one request: its JSON answer, or the kind of failure.
async fn send(request: reqwest::RequestBuilder) -> Result<Value, String> {
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            "timeout".to_owned()
        } else {
            "connection".to_owned()
        }
    })?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|_| "body cut".to_owned())?;
    if !(200..300).contains(&status) {
        return Err(failure_kind(status, &body));
    }
    serde_json::from_slice(&body).map_err(|_| "not JSON".to_owned())
}

/// A refusal's kind: its status, and its OAuth `error` code (RFC 6749
/// §5.2) when the body has a plausible one, so that a run refused for one
/// reason says which.
fn failure_kind(status: u16, body: &[u8]) -> String {
    let code = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|b| b["error"].as_str().map(str::to_owned))
        .filter(|c| c.len() <= 40 && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
    match code {
        Some(code) => format!("status {status} {code}"),
        None => format!("status {status}"),
    }
}

/// One refresh of a public client's chain (RFC 6749 §6); a rotated token
/// replaces the one presented.
async fn refresh(
    http: &reqwest::Client,
    endpoint: &str,
    client_id: &str,
    token: &mut String,
) -> Result<Value, String> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", token.as_str()),
        ("client_id", client_id),
    ];
    let body = send(http.post(endpoint).form(&form)).await?;
    if let Some(next) = body["refresh_token"].as_str() {
        *token = next.to_owned();
    }
    Ok(body)
}

/// One full code flow in the worker's browser. A 5xx anywhere in it is a
/// server error; otherwise a failure is named by the step that failed.
async fn code_flow(run: &mut Run<'_>, steps: &[Step]) -> Result<Value, String> {
    // Only this flow's memories: nothing accumulates over a long run.
    run.evidence = crate::steps::Evidence::default();
    run.client.refresh_tokens.clear();
    run.client.last_token = None;
    run.answers.clear();
    for (i, step) in steps.iter().enumerate() {
        let result = crate::engine::run_step(run, i + 1, step, crate::verdict::Status::Fail).await;
        if let Some(status) = result
            .exchanges
            .iter()
            .filter_map(|e| e.status)
            .find(|s| *s >= 500)
        {
            return Err(format!("status {status}"));
        }
        if result.status != crate::verdict::Status::Pass {
            return Err(format!("{} {}", result.action, result.status.as_str()));
        }
    }
    Ok(serde_json::json!({"access_token": run.client.last_token}))
}

/// What a successful answer tells the checks.
fn read_body(mix: Mix, body: &Value, tally: &mut Tally) {
    match mix {
        Mix::ClientCredentials | Mix::Refresh | Mix::CodeFlow => {
            if let Some(jti) = body["access_token"]
                .as_str()
                .and_then(crate::steps::unverified_claims)
                .and_then(|c| c["jti"].as_str().map(str::to_owned))
            {
                tally.saw_jti(&jti);
            }
        }
        Mix::Introspection => {
            if body["active"] != Value::Bool(true) {
                tally.inactive += 1;
            }
        }
        Mix::Vault => {}
    }
}

#[cfg(test)]
mod tests {
    use super::failure_kind;

    #[test]
    fn a_refusal_is_named_by_its_status_and_a_plausible_error_code() {
        assert_eq!(
            failure_kind(400, br#"{"error":"unsupported_token_type"}"#),
            "status 400 unsupported_token_type"
        );
        assert_eq!(failure_kind(503, b"<html>busy</html>"), "status 503");
        assert_eq!(
            failure_kind(400, br#"{"error":"<script>x</script>"}"#),
            "status 400"
        );
    }
}
