//! The sensitivity proof: every check can fail.
//!
//! The suite runs once against the clean reference hub, where everything
//! must pass. Then each named fault gets a hub of its own, and the scenarios
//! that claim it (`catches = [...]`) run against that hub. A claimed pair is
//! *proven* only when the scenario's **own requirement** fails: a checking
//! step (not a setup step) finds the deviation. A scenario whose steps pass
//! but whose audit check trips has not proven its claim; the audit check is
//! reported in a column of its own, and faults that break only the audit
//! trail are claimed by the `audit.*` scenarios, whose steps read the trail.
//!
//! The default run costs what it proves: one hub per fault, running only the
//! claiming scenarios, several faults at once. A scenario that cites MCP
//! runs under every revision it is in ([`per_revision`]), so a fault is
//! proven caught under each revision its requirement is in. [`Coverage::Full`]
//! (`conform --sensitivity --full`) runs every scenario under every fault and
//! reports the collateral trips too; it is for investigation, not for CI.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::acceptance::VariantRow;
use crate::engine::{run_all, run_on_embedded_hub, RunOptions, ScenarioResult};
use crate::error::HarnessError;
use crate::report::RunReport;
use crate::scenario::Scenario;
use crate::verdict::Status;

/// Faults that no black-box scenario can trip, because they need the target
/// restarted or its files read, or concurrent load to show, each with the
/// test that proves it is caught: the reference hub's own, or `conform
/// load`'s (`cargo test --workspace` runs both).
pub const PROVEN_BY_OWN_TESTS: &[(&str, &str)] = &[
    (
        "webhook-loses-events-on-restart",
        "reference-server/tests/hub/audit.rs::the_audit_webhook_delivers_everything_in_order_across_a_restart",
    ),
    // Encryption at rest is invisible over HTTP: only the database file shows it.
    (
        "plaintext-vault",
        "reference-server/tests/hub/vault.rs::the_database_file_holds_no_plaintext_connection_secret",
    ),
    // The JSON Lines file is the hub's own file, and a crash its own event.
    (
        "jsonl-keeps-cut-line",
        "reference-server/tests/hub/audit.rs::the_jsonl_file_has_every_seq_once_in_order_across_a_restart",
    ),
    // Tool-execution reports are the hub's own API for its resource servers.
    (
        "tool-report-for-any-server",
        "reference-server/tests/hub/audit.rs::a_resource_server_reports_tool_executions_for_itself_only",
    ),
    // No standard bounds the characters of `client_name`; the consent page is the hub's.
    (
        "client-name-allows-bidi",
        "reference-server/tests/hub/oauth.rs::a_client_name_that_could_disguise_the_client_is_refused",
    ),
    // Two tokens issued in the same instant: load shows it (`conform load`
    // checks every jti), a scenario's few sequential tokens may not.
    (
        "jti-repeats",
        "reference-server/tests/hub/oauth.rs::concurrent_tokens_never_share_a_jti",
    ),
    // The faults only load shows, each caught by one of `conform load`'s checks.
    (
        "refresh-rotation-races",
        "harness/tests/suite/load.rs::a_refresh_race_with_two_winners_is_caught",
    ),
    (
        "token-server-error-under-load",
        "harness/tests/suite/load.rs::a_server_error_under_load_is_caught",
    ),
    (
        "introspection-forgets-live-tokens",
        "harness/tests/suite/load.rs::a_live_token_introspected_inactive_is_caught",
    ),
    // A rebound page needs a Host header the harness's clients cannot fake
    // for every target (a virtual host may answer 421 first).
    (
        "origin-trusts-host",
        "reference-server/tests/hub/oauth.rs::an_origin_that_matches_only_the_host_is_refused",
    ),
];

/// Fault hubs running at once. Each is small (in-memory SQLite) and most of a
/// run is waiting on loopback HTTP, so a few per core keep both cores busy.
const FAULT_HUBS_AT_ONCE: usize = 6;

/// Which scenarios run under each fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Coverage {
    /// Only the scenarios that claim the fault: proves every claimed pair.
    Claimed,
    /// Every scenario under every fault: also shows collateral trips.
    Full,
}

/// What one fault did to the scenarios that ran under it.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRow {
    pub fault: String,
    pub description: String,
    /// Scenarios that claim to catch it (or the hub test that proves it).
    pub claimed_by: Vec<String>,
    /// Claiming scenarios whose own requirement failed: the claim is proven.
    pub caught_by: Vec<String>,
    /// Claiming scenarios whose own requirement held: the fault went unnoticed by them.
    pub missed_by: Vec<String>,
    /// Scenarios whose audit check failed under this fault (a separate
    /// column: an audit trip never proves a claim).
    pub audit_tripped: Vec<String>,
    /// With full coverage: scenarios that do not claim the fault but whose
    /// own requirement failed under it.
    pub collateral: Vec<String>,
    /// Every claim is proven (and there is at least one).
    pub caught: bool,
}

impl FaultRow {
    /// Judges one fault's run: `results` are the scenarios run under it.
    fn judge(
        fault: &str,
        description: &str,
        claimed_by: Vec<String>,
        results: &[ScenarioResult],
    ) -> FaultRow {
        let broken = |id: &str| results.iter().any(|r| r.id == id && r.requirement_broken());
        let (caught_by, missed_by): (Vec<String>, Vec<String>) =
            claimed_by.iter().cloned().partition(|id| broken(id));
        FaultRow {
            fault: fault.to_owned(),
            description: description.to_owned(),
            caught: !claimed_by.is_empty() && missed_by.is_empty(),
            audit_tripped: results
                .iter()
                .filter(|r| r.audit_broken())
                .map(|r| r.id.clone())
                .collect(),
            collateral: results
                .iter()
                .filter(|r| r.requirement_broken() && !claimed_by.contains(&r.id))
                .map(|r| r.id.clone())
                .collect(),
            claimed_by,
            caught_by,
            missed_by,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    pub coverage: Coverage,
    /// Scenarios that did not pass against the clean hub (must be empty).
    pub clean_failures: Vec<String>,
    pub rows: Vec<FaultRow>,
    /// Claimed (fault, scenario) pairs whose requirement failed under the fault.
    pub proven_pairs: usize,
    /// Every claimed (fault, scenario) pair.
    pub claimed_pairs: usize,
    /// The acceptance proof: each compliant variant, run with the scenarios
    /// that name it ([`crate::acceptance`]).
    pub variants: Vec<VariantRow>,
    /// The clean run itself, for report.html (not in sensitivity.json).
    #[serde(skip)]
    pub clean_run: Option<RunReport>,
}

impl Matrix {
    pub fn all_caught(&self) -> bool {
        self.clean_failures.is_empty()
            && self.rows.iter().all(|r| r.caught)
            && self.variants.iter().all(|v| v.proven)
    }

    /// The variants whose other answer was not accepted, each with why.
    pub fn unaccepted(&self) -> Vec<String> {
        self.variants.iter().filter_map(VariantRow::miss).collect()
    }

    /// The faults that were not caught, each with why.
    pub fn misses(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter(|r| !r.caught)
            .map(|r| {
                if r.claimed_by.is_empty() {
                    format!("{}: no scenario claims it", r.fault)
                } else {
                    format!(
                        "{}: the requirement of {} held{}",
                        r.fault,
                        r.missed_by.join(", "),
                        if r.audit_tripped.is_empty() {
                            String::new()
                        } else {
                            format!(" (audit check tripped: {})", r.audit_tripped.join(", "))
                        }
                    )
                }
            })
            .collect()
    }

    /// One line for people: what was proven and at what cost.
    pub fn headline(&self) -> String {
        format!(
            "Clean hub: {}. Faults caught: {} of {}. Claimed pairs proven: {} of {} ({} coverage). Variants accepted: {} of {}.",
            if self.clean_failures.is_empty() {
                "all scenarios pass".to_owned()
            } else {
                format!("FAILING {}", self.clean_failures.join(", "))
            },
            self.rows.iter().filter(|r| r.caught).count(),
            self.rows.len(),
            self.proven_pairs,
            self.claimed_pairs,
            match self.coverage {
                Coverage::Claimed => "claimed",
                Coverage::Full => "full",
            },
            self.variants.iter().filter(|v| v.proven).count(),
            self.variants.len(),
        )
    }

    pub fn markdown(&self) -> String {
        let mut out = format!(
            "# Sensitivity matrix\n\n{}\n\n| Fault | Caught | Claimed by | Audit check tripped |{}\n|---|---|---|---|{}\n",
            self.headline(),
            if self.coverage == Coverage::Full { " Collateral |" } else { "" },
            if self.coverage == Coverage::Full { "---|" } else { "" },
        );
        let list = |ids: &[String]| {
            ids.iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for r in &self.rows {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |",
                r.fault,
                if r.caught { "yes" } else { "**NO**" },
                list(&r.claimed_by),
                list(&r.audit_tripped),
            ));
            if self.coverage == Coverage::Full {
                out.push_str(&format!(" {} |", list(&r.collateral)));
            }
            out.push('\n');
        }
        if !self.variants.is_empty() {
            out.push_str(
                "\n## Acceptance of allowed answers\n\nEach variant is a compliant hub giving another answer a standard allows; the scenarios that name it must pass with that answer.\n\n| Variant | Accepted | Scenarios and the answer they saw |\n|---|---|---|\n",
            );
            for v in &self.variants {
                let mut seen = v.accepted_by.clone();
                seen.extend(v.refused_by.iter().map(|id| format!("{id}: REFUSED")));
                seen.extend(
                    v.unexercised_by
                        .iter()
                        .map(|id| format!("{id}: same answer as the clean hub")),
                );
                out.push_str(&format!(
                    "| `{}` | {} | {} |\n",
                    v.variant,
                    if v.proven { "yes" } else { "**NO**" },
                    seen.join("<br>"),
                ));
            }
        }
        out
    }
}

/// Which scenarios claim `fault`.
/// Each scenario once per MCP revision it is in: the wire, the level and the
/// words of an MCP-sourced requirement move between revisions, so its fault
/// must be caught under each. The newest revision's copy keeps the id (the
/// acceptance proof and the clean report know it by that); an older one's
/// is `<id> @ <revision>`. A scenario that does not cite MCP runs once.
pub fn per_revision(scenarios: &[Scenario]) -> Vec<Scenario> {
    let mut expanded = Vec::with_capacity(scenarios.len());
    for scenario in scenarios {
        let revisions = scenario.revisions();
        if let Some((_newest, older)) = revisions.split_last().filter(|_| !scenario.mcp.is_empty())
        {
            for revision in older {
                if let Ok(mut resolved) = scenario.under(*revision) {
                    resolved.id = format!("{} @ {revision}", scenario.id);
                    expanded.push(resolved);
                }
            }
        }
        expanded.push(scenario.clone());
    }
    expanded
}

fn claimers<'a>(scenarios: &'a [Scenario], fault: &str) -> Vec<&'a Scenario> {
    scenarios
        .iter()
        .filter(|s| s.catches.iter().any(|c| c == fault))
        .collect()
}

/// Runs the clean hub, every fault the hub knows and every variant.
pub async fn run(
    fixtures_dir: &Path,
    scenarios: &[Scenario],
    coverage: Coverage,
) -> Result<Matrix, HarnessError> {
    let faults = crate::embedded::faults();
    let variants = crate::embedded::variants();
    prove(fixtures_dir, scenarios, &faults, &variants, coverage).await
}

/// Runs the clean hub, each of `faults` (name, description) with its
/// claiming scenarios (or, with full coverage, every scenario), and each of
/// `variants` with the scenarios that name it.
pub async fn prove(
    fixtures_dir: &Path,
    scenarios: &[Scenario],
    faults: &[(&str, &str)],
    variants: &[(&str, &str)],
    coverage: Coverage,
) -> Result<Matrix, HarnessError> {
    let options = RunOptions::new(true);
    let permits = Arc::new(Semaphore::new(FAULT_HUBS_AT_ONCE));
    let given = scenarios;
    let scenarios = &per_revision(scenarios)[..];

    // Each fault run is an independent hub; they all go at once, bounded.
    let mut runs = Vec::new();
    for (fault, _) in faults {
        if PROVEN_BY_OWN_TESTS.iter().any(|(f, _)| f == fault) {
            runs.push(None);
            continue;
        }
        let to_run: Vec<Scenario> = match coverage {
            Coverage::Claimed => claimers(scenarios, fault).into_iter().cloned().collect(),
            Coverage::Full => scenarios.to_vec(),
        };
        let fixtures_dir = fixtures_dir.to_path_buf();
        let options = options.clone();
        let permits = permits.clone();
        let fault = (*fault).to_owned();
        runs.push(Some(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            run_on_embedded_hub(&fixtures_dir, &[fault], &[], &to_run, &options).await
        })));
    }

    let variant_runs = crate::acceptance::start(fixtures_dir, given, variants, &options);
    let clean_run = clean_run(fixtures_dir, scenarios, &options).await?;
    let clean_failures: Vec<String> = clean_run
        .scenarios
        .iter()
        .filter(|r| r.status != Status::Pass)
        .map(|r| r.id.clone())
        .collect();

    let mut rows = Vec::new();
    for ((fault, description), run) in faults.iter().zip(runs) {
        let row = match run {
            Some(run) => {
                let results = run.await.map_err(|e| {
                    HarnessError::Embedded(format!("fault run `{fault}` crashed: {e}"))
                })??;
                let claimed_by = claimers(scenarios, fault)
                    .iter()
                    .map(|s| s.id.clone())
                    .collect();
                FaultRow::judge(fault, description, claimed_by, &results)
            }
            None => proven_by_own_test(fault, description),
        };
        rows.push(row);
    }
    let variants =
        crate::acceptance::judge(given, variants, variant_runs, &clean_run.scenarios).await?;
    let claimed_pairs = rows.iter().map(|r| r.claimed_by.len()).sum();
    let proven_pairs = rows.iter().map(|r| r.caught_by.len()).sum();
    Ok(Matrix {
        coverage,
        clean_failures,
        rows,
        proven_pairs,
        claimed_pairs,
        variants,
        clean_run: Some(clean_run),
    })
}

/// The row of a fault that the hub's own test proves.
fn proven_by_own_test(fault: &str, description: &str) -> FaultRow {
    let test = PROVEN_BY_OWN_TESTS
        .iter()
        .find(|(f, _)| *f == fault)
        .map(|(_, t)| format!("test {t}"))
        .unwrap_or_default();
    FaultRow {
        fault: fault.to_owned(),
        description: description.to_owned(),
        claimed_by: vec![test.clone()],
        caught_by: vec![test],
        missed_by: Vec::new(),
        audit_tripped: Vec::new(),
        collateral: Vec::new(),
        caught: true,
    }
}

/// Every scenario against the clean hub, as a report for report.html.
async fn clean_run(
    fixtures_dir: &Path,
    scenarios: &[Scenario],
    options: &RunOptions,
) -> Result<RunReport, HarnessError> {
    let clean = crate::embedded::start(fixtures_dir, &[], &[]).await?;
    let started = std::time::Instant::now();
    let profile = clean.profile.clone();
    let results = run_all(Arc::new(profile.clone()), scenarios, options).await;
    clean.stop().await;
    let passed = results.iter().all(|r| r.status == Status::Pass);
    Ok(RunReport {
        schema: crate::report::REPORT_SCHEMA,
        tool: concat!("conform ", env!("CARGO_PKG_VERSION")).to_owned(),
        target: crate::report::TargetInfo {
            name: format!("{} (clean, for the sensitivity matrix)", profile.name),
            issuer: profile.issuer.clone(),
            embedded: true,
        },
        revision: options
            .revision
            .unwrap_or(crate::revision::Revision::LATEST),
        strict: options.strict,
        duration_ms: started.elapsed().as_millis() as u64,
        summary: crate::report::Summary::of(&results),
        baseline: None,
        gate_passed: passed,
        scenarios: results,
    })
}
