//! Runs scenarios against a target and decides each one's status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::http::Exchange;
use crate::profile::Profile;
use crate::scenario::{Scenario, SpecRef, Step};
use crate::schedule::{ResourceLocks, Schedule};
use crate::steps::{Run, StepError};
use crate::verdict::{Level, Status, Suite};

/// How long one scenario may take, whatever the target does.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);
/// Scenarios in flight at once.
const CONCURRENCY: usize = 8;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// SHOULD failures fail instead of warn.
    pub strict: bool,
    /// The MCP revision the run judges by: each scenario's level, quote and
    /// link come from it, and a requirement it lacks is not applicable.
    /// `None` (the proofs): each scenario under the newest revision that has it.
    pub revision: Option<crate::revision::Revision>,
}

impl RunOptions {
    /// Judged by the newest revision that has each requirement.
    pub fn new(strict: bool) -> RunOptions {
        RunOptions {
            strict,
            revision: None,
        }
    }

    /// Judged by `revision`.
    pub fn under(self, revision: crate::revision::Revision) -> RunOptions {
        RunOptions {
            revision: Some(revision),
            ..self
        }
    }
}

/// The verdict on one scenario, with the evidence behind it.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub id: String,
    pub title: String,
    pub suite: Suite,
    pub level: Level,
    pub refs: Vec<SpecRef>,
    pub status: Status,
    /// Why it did not pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub duration_ms: u64,
    pub steps: Vec<StepResult>,
    /// Decoded claims of the access tokens the scenario obtained.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub token_claims: Vec<Value>,
    /// Faults of the reference hub this scenario is proven to catch.
    pub catches: Vec<String>,
    /// Whether the target audited what the scenario did (see `audit.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<crate::audit::AuditCheck>,
}

impl ScenarioResult {
    /// The allowed answers the server gave, where a standard allows several
    /// (`step N: name`), for the console and summary.
    pub fn answers(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter_map(|s| s.answer.as_ref().map(|a| format!("step {}: {a}", s.index)))
            .collect()
    }

    /// A passing result with no steps yet, for `scenario`.
    pub fn of(scenario: &Scenario) -> ScenarioResult {
        ScenarioResult {
            id: scenario.id.clone(),
            title: scenario.title.clone(),
            suite: scenario.suite,
            level: scenario.level,
            refs: scenario.refs.clone(),
            status: Status::Pass,
            reason: None,
            duration_ms: 0,
            steps: Vec::new(),
            token_claims: Vec::new(),
            catches: scenario.catches.clone(),
            audit: None,
        }
    }

    /// Did a checking step (not a setup step, not the audit check) find the
    /// target breaking this scenario's requirement? Only this proves a fault.
    pub fn requirement_broken(&self) -> bool {
        self.steps
            .iter()
            .any(|step| !step.setup && step.status.is_violation())
    }

    /// Did the audit check after the scenario fail?
    pub fn audit_broken(&self) -> bool {
        self.audit
            .as_ref()
            .is_some_and(|audit| audit.status == Status::Fail)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub index: usize,
    pub action: String,
    pub setup: bool,
    pub status: Status,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
    /// Which of the expectation's allowed answers (`any_of`) the server gave.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// The HTTP exchanges, kept for steps that did not pass; secrets redacted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exchanges: Vec<Exchange>,
    /// The step needs something the profile does not declare: the scenario
    /// ends as `skip` here.
    #[serde(skip)]
    pub undeclared: bool,
    /// Every exchange of the step (bounded) with the claims of the JWTs it
    /// carried, for report.html and `--narrate`; not in report.json.
    #[serde(skip)]
    pub transcript: crate::transcript::Transcript,
}

fn action_name(step: &crate::scenario::Step) -> String {
    step.action.name().to_owned()
}

/// Runs one scenario to its verdict.
pub async fn run_scenario(
    profile: &Profile,
    scenario: &Scenario,
    options: &RunOptions,
) -> ScenarioResult {
    let started = Instant::now();
    let revision = options
        .revision
        .or_else(|| scenario.revisions().last().copied())
        .unwrap_or(crate::revision::Revision::LATEST);
    let scenario = &match scenario.under(revision) {
        Ok(resolved) => resolved,
        Err(why) => {
            let mut result = ScenarioResult::of(scenario);
            result.status = Status::Skip;
            result.reason = Some(format!("not applicable: {why}"));
            return result;
        }
    };
    let mut result = ScenarioResult::of(scenario);
    if scenario.suite == Suite::Hub && !profile.hub.product_model {
        result.status = Status::Skip;
        result.reason = Some(
            "a requirement of the hub product model, which the target does not declare ([hub] product_model = true)"
                .into(),
        );
        return result;
    }
    for capability in &scenario.requires {
        match profile.capabilities.has(capability) {
            Some(true) => {}
            Some(false) => {
                result.status = Status::Skip;
                result.reason = Some(format!(
                    "the target does not declare the `{capability}` capability"
                ));
                return result;
            }
            None => {
                result.status = Status::Error;
                result.reason = Some(format!("unknown capability `{capability}` in the scenario"));
                return result;
            }
        }
    }

    let mut run = Run::new(profile);
    run.revision = revision;
    let audit_from = crate::audit::mark(&run.http, profile).await;
    // Marking the trail is the collector's exchange, not the first step's.
    let _ = run.http.take_transcript();
    let outcome = tokio::time::timeout(
        SCENARIO_TIMEOUT,
        run_steps(&mut run, scenario, options, &mut result),
    )
    .await;
    let audit = teardown_and_check_audit(&mut run, profile, audit_from).await;
    if audit.status == Status::Fail && result.status == Status::Pass {
        result.status = Status::Fail;
        result.reason = Some(format!("audit: {}", audit.messages.join("; ")));
    }
    result.audit = Some(audit);
    if outcome.is_err() {
        result.status = Status::Error;
        result.reason = Some(format!(
            "the scenario did not finish within {}s",
            SCENARIO_TIMEOUT.as_secs()
        ));
        let mut exchanges = run.http.take_transcript();
        let transcript = crate::transcript::Transcript::of(&exchanges);
        exchanges
            .iter_mut()
            .for_each(|e| e.redact(&run.evidence.secrets));
        result.steps.push(StepResult {
            index: result.steps.len() + 1,
            action: "timeout".into(),
            setup: false,
            status: Status::Error,
            messages: vec!["timed out".into()],
            answer: None,
            exchanges,
            undeclared: false,
            transcript,
        });
    }
    // Redact now that every secret of the scenario is known.
    if let Some(reason) = result.reason.as_mut() {
        crate::http::scrub(reason, &run.evidence.secrets);
    }
    for step in &mut result.steps {
        step.messages
            .iter_mut()
            .for_each(|m| crate::http::scrub(m, &run.evidence.secrets));
        step.exchanges
            .iter_mut()
            .for_each(|e| e.redact(&run.evidence.secrets));
        step.transcript.redact(&run.evidence.secrets);
    }
    result.token_claims = run.evidence.token_claims.clone();
    result.duration_ms = started.elapsed().as_millis() as u64;
    result
}

async fn run_steps(
    run: &mut Run<'_>,
    scenario: &Scenario,
    options: &RunOptions,
    result: &mut ScenarioResult,
) {
    let violation = violation_status(scenario.level, options.strict);
    for (i, step) in scenario.steps.iter().enumerate() {
        let step_result = run_step(run, i + 1, step, violation).await;
        let status = step_result.status;
        let messages = step_result.messages.clone();
        // A step the profile cannot support ends the scenario as `skip`; a
        // `when` skip only passes over the step.
        let ends = step_result.undeclared || !matches!(status, Status::Pass | Status::Skip);
        result.steps.push(step_result);
        if ends {
            result.status = status;
            let what = if step.setup { "setup step" } else { "step" };
            result.reason = Some(format!(
                "{what} {} ({}): {}",
                i + 1,
                action_name(step),
                messages.join("; ")
            ));
            return;
        }
    }
}

/// Tears the scenario's objects down, then checks the audit trail written
/// since `mark` against what the run did (shared by runs and narration).
pub(crate) async fn teardown_and_check_audit(
    run: &mut Run<'_>,
    profile: &Profile,
    mark: Result<crate::audit::Mark, crate::audit::AuditCheck>,
) -> crate::audit::AuditCheck {
    run.teardown().await;
    let audit = match mark {
        Ok(mark) => {
            crate::audit::check(
                &run.http,
                profile,
                mark,
                &run.evidence.obligations,
                &run.evidence.own_clients,
                &run.evidence.secrets,
            )
            .await
        }
        // No trail to read (`skip`), or the collector could not start (`error`).
        Err(unchecked) => unchecked,
    };
    // The audit exchanges are the collector's, not a step's.
    let _ = run.http.take_transcript();
    audit
}

/// What breaking a requirement of this level is: `fail` for a MUST;
/// `warn` for a SHOULD (`fail` when strict); `info` for an INFO (`warn` when
/// strict): an INFO never fails a run.
pub fn violation_status(level: Level, strict: bool) -> Status {
    match (level, strict) {
        (Level::Must, _) | (Level::Should, true) => Status::Fail,
        (Level::Should, false) | (Level::Info, true) => Status::Warn,
        (Level::Info, false) => Status::Info,
    }
}

/// Runs one step (or skips it when its `when` does not hold for the target)
/// and decides its status; `index` counts from 1. Exchanges are not redacted
/// yet: secrets learnt later in the scenario are redacted by the caller.
pub async fn run_step(
    run: &mut Run<'_>,
    index: usize,
    step: &crate::scenario::Step,
    violation: Status,
) -> StepResult {
    let vars = run.vars();
    let applies = step.when.iter().all(|(path, wanted)| {
        let actual = crate::expect::lookup(&vars, path);
        serde_json::to_value(wanted).ok().as_ref() == actual
    });
    if !applies {
        return StepResult {
            index,
            action: action_name(step),
            setup: step.setup,
            status: Status::Skip,
            messages: vec!["not for the behaviour this target declares".into()],
            answer: None,
            exchanges: Vec::new(),
            undeclared: false,
            transcript: Default::default(),
        };
    }
    run.setup_step = step.setup;
    let facts = step.action.perform(run).await;
    if let Ok(facts) = &facts {
        step.action.oblige(facts, run);
    }
    let exchanges = run.http.take_transcript();
    let transcript = crate::transcript::Transcript::of(&exchanges);
    // Variables after the action: it may have registered a client or
    // received a token the expectations name.
    let vars = run.vars();
    let mut answer = None;
    let (status, messages, undeclared) = match facts {
        Err(StepError::Transport(e)) => (Status::Error, vec![format!("transport: {e}")], false),
        Err(StepError::Undeclared(e)) => (Status::Skip, vec![e], true),
        Err(e) => (Status::Error, vec![e.to_string()], false),
        Ok(facts) => match crate::expect::evaluate(&step.expect, &facts, &vars) {
            Err(e) => (Status::Error, vec![format!("scenario file: {e}")], false),
            Ok(unmet) => {
                // A step whose expectations hold but whose facts miss
                // `only_if` shows the scenario does not apply to this
                // server: `skip`, like an undeclared need.
                let not_applicable = unmet
                    .is_empty()
                    .then(|| not_applicable(step, &facts, &vars))
                    .flatten();
                if let Some(why) = not_applicable {
                    (Status::Skip, vec![why], true)
                } else {
                    answer = crate::expect::allowed_answer(&step.expect, &facts, &vars)
                        .ok()
                        .flatten();
                    let status = if unmet.is_empty() {
                        Status::Pass
                    } else if step.setup {
                        Status::Error
                    } else {
                        violation
                    };
                    (status, unmet, false)
                }
            }
        },
    };
    let passed = status == Status::Pass;
    if let Some(answer) = &answer {
        run.answers
            .insert(index.to_string(), Value::String(answer.clone()));
    }
    StepResult {
        index,
        action: action_name(step),
        setup: step.setup,
        status,
        messages,
        answer,
        exchanges: if passed { Vec::new() } else { exchanges },
        undeclared,
        transcript,
    }
}

/// Why the scenario does not apply, when the step's facts miss its `only_if`
/// or meet its `skip_if`.
fn not_applicable(
    step: &Step,
    facts: &serde_json::Value,
    vars: &serde_json::Value,
) -> Option<String> {
    let missed = step.only_if.iter().find_map(|(path, wanted)| {
        let wanted = serde_json::to_value(wanted).ok()?;
        let actual = crate::expect::lookup(facts, path);
        (actual != Some(&wanted)).then(|| {
            format!(
                "not applicable: this scenario needs `{path}` = {wanted}, and the server gave {}",
                actual.map_or("nothing".to_owned(), |a| a.to_string())
            )
        })
    });
    missed.or_else(|| {
        let skip_if = step.skip_if.as_ref()?;
        crate::expect::evaluate(skip_if, facts, vars)
            .is_ok_and(|unmet| unmet.is_empty())
            .then(|| {
                let what: Vec<String> = skip_if
                    .equals
                    .iter()
                    .map(|(path, value)| format!("`{path}` = {value}"))
                    .chain(
                        skip_if
                            .contains
                            .iter()
                            .map(|(path, value)| format!("`{path}` holds {value}")),
                    )
                    .chain(skip_if.absent.iter().map(|path| format!("no `{path}`")))
                    .chain(skip_if.present.iter().map(|path| format!("`{path}` given")))
                    .collect();
                format!(
                    "not applicable: the server's answer meets this scenario's `skip_if` ({})",
                    what.join(", ")
                )
            })
    })
}

/// Runs `scenarios` against an embedded hub of their own, started with
/// these faults and variants and stopped afterwards (the sensitivity and
/// acceptance proofs); nothing to run starts no hub.
pub async fn run_on_embedded_hub(
    fixtures_dir: &std::path::Path,
    faults: &[String],
    variants: &[String],
    scenarios: &[Scenario],
    options: &RunOptions,
) -> Result<Vec<ScenarioResult>, crate::error::HarnessError> {
    if scenarios.is_empty() {
        return Ok(Vec::new());
    }
    let target = crate::embedded::start(fixtures_dir, faults, variants).await?;
    let results = run_all(Arc::new(target.profile.clone()), scenarios, options).await;
    target.stop().await;
    Ok(results)
}

/// Runs scenarios as [`crate::schedule`] plans: concurrently, up to
/// [`CONCURRENCY`] at once (those that wait out a target's timeout start at
/// once beside them), under their resource locks; then the exclusive ones one
/// at a time, the robustness suite last. Results come back in the scenarios'
/// order.
pub async fn run_all(
    profile: Arc<Profile>,
    scenarios: &[Scenario],
    options: &RunOptions,
) -> Vec<ScenarioResult> {
    let schedule = Schedule::plan(&profile, scenarios);
    let mut results = run_concurrently(profile.clone(), &schedule, options).await;
    for scenario in &schedule.alone {
        results.push(run_scenario(&profile, scenario, options).await);
    }
    let position = |id: &str| {
        scenarios
            .iter()
            .position(|s| s.id == id)
            .unwrap_or(usize::MAX)
    };
    results.sort_by_key(|r| position(&r.id));
    results
}

async fn run_concurrently(
    profile: Arc<Profile>,
    schedule: &Schedule,
    options: &RunOptions,
) -> Vec<ScenarioResult> {
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let locks = ResourceLocks::for_schedule(schedule);
    let mut tasks = Vec::new();
    for (scenario, claims) in &schedule.concurrent {
        let scenario = scenario.clone();
        let claims = claims.clone();
        let profile = profile.clone();
        let options = options.clone();
        let permits = permits.clone();
        let locks = locks.clone();
        tasks.push(tokio::spawn(async move {
            // The locks first, then a place (see `schedule`).
            let _held = locks.acquire(&claims).await;
            // One that waits out a timeout does little meanwhile: it takes
            // no place from the others.
            let _permit = if scenario.waits() {
                None
            } else {
                permits.acquire_owned().await.ok()
            };
            run_scenario(&profile, &scenario, &options).await
        }));
    }
    let mut results = Vec::new();
    for (task, (scenario, _)) in tasks.into_iter().zip(&schedule.concurrent) {
        results.push(task.await.unwrap_or_else(|e| ScenarioResult {
            id: scenario.id.clone(),
            title: scenario.title.clone(),
            suite: scenario.suite,
            level: scenario.level,
            refs: scenario.refs.clone(),
            status: Status::Error,
            reason: Some(format!("the harness crashed running this scenario: {e}")),
            duration_ms: 0,
            steps: Vec::new(),
            token_claims: Vec::new(),
            catches: scenario.catches.clone(),
            audit: None,
        }));
    }
    results
}
