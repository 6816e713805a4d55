//! The sensitivity matrix: proof that every check can fail.
//!
//! The suite runs against the clean reference hub (everything must pass) and
//! then once per named fault. A fault is *caught* when every scenario that
//! claims it (`catches = [...]`) does not pass. Every fault must be claimed by
//! some scenario (or, for the few that need the target restarted, be proven
//! by a named test of the hub itself) and every scenario must claim a fault
//! the hub knows.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::engine::{run_all, RunOptions};
use crate::error::HarnessError;
use crate::scenario::Scenario;
use crate::verdict::Status;

/// Faults that no black-box scenario can trip because they need the target
/// restarted, each with the reference hub's own test that proves it is
/// caught (`cargo test --workspace` runs it too).
pub const PROVEN_BY_HUB_TESTS: &[(&str, &str)] = &[
    (
        "webhook-loses-events-on-restart",
        "reference-server/tests/hub.rs::the_audit_webhook_delivers_everything_in_order_across_a_restart",
    ),
    // Encryption at rest is invisible over HTTP: only the database file shows it.
    (
        "plaintext-vault",
        "reference-server/tests/hub.rs::the_database_file_holds_no_plaintext_connection_secret",
    ),
];

#[derive(Debug, Clone, Serialize)]
pub struct FaultRow {
    pub fault: String,
    pub description: String,
    /// Scenarios that claim to catch it.
    pub claimed_by: Vec<String>,
    /// Claiming scenarios that still passed: the fault went unnoticed by them.
    pub missed_by: Vec<String>,
    /// Every scenario that did not pass under this fault (claimed or not).
    pub tripped: Vec<String>,
    pub caught: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    /// Scenarios that did not pass against the clean hub (must be empty).
    pub clean_failures: Vec<String>,
    pub rows: Vec<FaultRow>,
    /// Faults named by scenarios that the hub does not know.
    pub unknown_claims: Vec<String>,
    /// The clean run itself, for report.html (not in sensitivity.json).
    #[serde(skip)]
    pub clean_run: Option<crate::report::RunReport>,
}

impl Matrix {
    pub fn all_caught(&self) -> bool {
        self.clean_failures.is_empty()
            && self.unknown_claims.is_empty()
            && self.rows.iter().all(|r| r.caught)
    }

    pub fn markdown(&self) -> String {
        let caught = self.rows.iter().filter(|r| r.caught).count();
        let mut out = format!(
            "# Sensitivity matrix\n\nClean hub: {}. Faults caught: {caught} of {}.\n\n| Fault | Caught | Claimed by | Also tripped |\n|---|---|---|---|\n",
            if self.clean_failures.is_empty() { "all scenarios pass".to_owned() } else { format!("FAILING {}", self.clean_failures.join(", ")) },
            self.rows.len()
        );
        for r in &self.rows {
            let also: Vec<_> = r
                .tripped
                .iter()
                .filter(|t| !r.claimed_by.contains(t))
                .cloned()
                .collect();
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                r.fault,
                if r.caught { "yes" } else { "**NO**" },
                r.claimed_by
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                also.join(", ")
            ));
        }
        if !self.unknown_claims.is_empty() {
            out.push_str(&format!(
                "\nUnknown faults claimed: {}\n",
                self.unknown_claims.join(", ")
            ));
        }
        out
    }
}

/// Runs the clean hub and every fault; each run gets its own embedded hub.
pub async fn run(fixtures_dir: &Path, scenarios: &[Scenario]) -> Result<Matrix, HarnessError> {
    let options = RunOptions { strict: true };
    let known = crate::embedded::faults();
    let mut unknown_claims: Vec<String> = scenarios
        .iter()
        .flat_map(|s| s.catches.iter())
        .filter(|c| !known.iter().any(|(name, _)| name == c))
        .cloned()
        .collect();
    unknown_claims.sort();
    unknown_claims.dedup();

    let clean = crate::embedded::start(fixtures_dir, &[]).await?;
    let started = std::time::Instant::now();
    let clean_profile = clean.profile.clone();
    let results = run_all(Arc::new(clean_profile.clone()), scenarios, &options).await;
    clean.stop().await;
    let clean_failures: Vec<String> = results
        .iter()
        .filter(|r| r.status != Status::Pass)
        .map(|r| r.id.clone())
        .collect();
    let clean_run = crate::report::RunReport {
        schema: crate::report::REPORT_SCHEMA,
        tool: concat!("conform ", env!("CARGO_PKG_VERSION")).to_owned(),
        target: crate::report::TargetInfo {
            name: format!("{} (clean, for the sensitivity matrix)", clean_profile.name),
            issuer: clean_profile.issuer.clone(),
            embedded: true,
        },
        strict: options.strict,
        duration_ms: started.elapsed().as_millis() as u64,
        summary: crate::report::Summary::of(&results),
        baseline: None,
        gate_passed: clean_failures.is_empty(),
        scenarios: results,
    };

    // Fault runs are independent hubs: run a few at once.
    let permits = Arc::new(tokio::sync::Semaphore::new(4));
    let (hub_tested, known): (Vec<_>, Vec<_>) = known
        .into_iter()
        .partition(|(name, _)| PROVEN_BY_HUB_TESTS.iter().any(|(f, _)| f == name));
    let mut runs = Vec::new();
    for (fault, _) in &known {
        let fixtures_dir = fixtures_dir.to_path_buf();
        let scenarios = scenarios.to_vec();
        let options = options.clone();
        let permits = permits.clone();
        let fault = (*fault).to_owned();
        runs.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let target =
                crate::embedded::start(&fixtures_dir, std::slice::from_ref(&fault)).await?;
            let results = run_all(Arc::new(target.profile.clone()), &scenarios, &options).await;
            target.stop().await;
            Ok::<_, HarnessError>(results)
        }));
    }
    let mut rows = Vec::new();
    for ((fault, description), run) in known.into_iter().zip(runs) {
        let results = run
            .await
            .map_err(|e| HarnessError::Embedded(format!("fault run `{fault}` crashed: {e}")))??;
        let claimed_by: Vec<String> = scenarios
            .iter()
            .filter(|s| s.catches.iter().any(|c| c == fault))
            .map(|s| s.id.clone())
            .collect();
        let tripped: Vec<String> = results
            .iter()
            .filter(|r| r.status.is_violation())
            .map(|r| r.id.clone())
            .collect();
        let missed_by: Vec<String> = claimed_by
            .iter()
            .filter(|c| !tripped.contains(c))
            .cloned()
            .collect();
        rows.push(FaultRow {
            fault: fault.to_owned(),
            description: description.to_owned(),
            caught: !claimed_by.is_empty() && missed_by.is_empty(),
            claimed_by,
            missed_by,
            tripped,
        });
    }
    for (fault, description) in hub_tested {
        let test = PROVEN_BY_HUB_TESTS
            .iter()
            .find(|(f, _)| *f == fault)
            .map(|(_, t)| *t)
            .unwrap_or_default();
        rows.push(FaultRow {
            fault: fault.to_owned(),
            description: description.to_owned(),
            claimed_by: vec![format!("hub test {test}")],
            missed_by: Vec::new(),
            tripped: Vec::new(),
            caught: true,
        });
    }
    Ok(Matrix {
        clean_failures,
        rows,
        unknown_claims,
        clean_run: Some(clean_run),
    })
}
