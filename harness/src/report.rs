//! What a run writes: `report.json` (schema `conform-report/1`, documented in
//! `reports/README.md`), `junit.xml` for CI, `summary.md` for people,
//! `report.html` (see `html.rs`) for people who want to see the flows, and
//! the table printed to the terminal.

use std::collections::BTreeMap;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;

use crate::baseline::BaselineOutcome;
use crate::engine::ScenarioResult;
use crate::error::HarnessError;
use crate::verdict::{Status, Suite};

pub const REPORT_SCHEMA: &str = "conform-report/1";

/// Counts per status.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub total: usize,
    pub pass: usize,
    pub fail: usize,
    pub warn: usize,
    /// INFO checks that did not hold: noted, never failures.
    pub info: usize,
    pub skip: usize,
    pub error: usize,
}

impl Summary {
    pub fn of<'r>(results: impl IntoIterator<Item = &'r ScenarioResult>) -> Summary {
        let mut s = Summary::default();
        for r in results {
            s.total += 1;
            match r.status {
                Status::Pass => s.pass += 1,
                Status::Fail => s.fail += 1,
                Status::Warn => s.warn += 1,
                Status::Info => s.info += 1,
                Status::Skip => s.skip += 1,
                Status::Error => s.error += 1,
            }
        }
        s
    }

    /// `N passed, N failed, N warned, N skipped, N errored`, with `N noted`
    /// after the warnings when any INFO check did not hold.
    pub fn counts(&self) -> String {
        format!(
            "{} passed, {} failed, {} warned, {}{} skipped, {} errored",
            self.pass,
            self.fail,
            self.warn,
            self.noted(),
            self.skip,
            self.error
        )
    }

    /// `N noted, ` when any INFO check did not hold, else nothing.
    fn noted(&self) -> String {
        if self.info == 0 {
            String::new()
        } else {
            format!("{} noted, ", self.info)
        }
    }
}

/// The run's results per suite (those with any), each with its counts: the
/// grouping of the console table and summary.md.
fn by_suite(report: &RunReport) -> Vec<(Suite, Vec<&ScenarioResult>, Summary)> {
    Suite::ALL
        .into_iter()
        .filter_map(|suite| {
            let results: Vec<&ScenarioResult> = report
                .scenarios
                .iter()
                .filter(|r| r.suite == suite)
                .collect();
            let summary = Summary::of(results.iter().copied());
            (!results.is_empty()).then_some((suite, results, summary))
        })
        .collect()
}

/// The whole run, as written to report.json.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub schema: &'static str,
    pub tool: String,
    pub target: TargetInfo,
    /// The MCP revision the run judged by.
    pub revision: crate::revision::Revision,
    pub strict: bool,
    pub duration_ms: u64,
    pub summary: Summary,
    pub baseline: Option<BaselineOutcome>,
    /// True when the run should pass a CI gate (the exit code is 0).
    pub gate_passed: bool,
    pub scenarios: Vec<ScenarioResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetInfo {
    pub name: String,
    pub issuer: String,
    pub embedded: bool,
}

/// JUnit XML: one suite per scenario group, one case per scenario. Warnings
/// are passes with a message in system-out, so CI dashboards stay honest.
pub fn junit(report: &RunReport) -> Result<String, HarnessError> {
    let mut junit = Report::new("conform");
    let mut groups: BTreeMap<&str, Vec<&ScenarioResult>> = BTreeMap::new();
    for r in &report.scenarios {
        groups
            .entry(r.id.split('.').next().unwrap_or(&r.id))
            .or_default()
            .push(r);
    }
    for (group, results) in groups {
        let mut suite = TestSuite::new(group);
        for r in results {
            let mut status = match r.status {
                Status::Pass | Status::Warn | Status::Info => TestCaseStatus::success(),
                Status::Skip => TestCaseStatus::skipped(),
                Status::Fail => TestCaseStatus::non_success(NonSuccessKind::Failure),
                Status::Error => TestCaseStatus::non_success(NonSuccessKind::Error),
            };
            if let Some(reason) = &r.reason {
                status.set_message(reason.clone());
            }
            let refs: Vec<String> = r
                .refs
                .iter()
                .map(|x| format!("{}: \"{}\" <{}>", x.id, x.quote, x.url))
                .collect();
            if matches!(r.status, Status::Fail | Status::Error) {
                status.set_description(format!(
                    "[{}] {}\n{}",
                    r.level.as_str(),
                    r.title,
                    refs.join("\n")
                ));
            }
            let mut case = TestCase::new(r.id.clone(), status);
            case.set_classname(format!("conform.{group}"));
            case.set_time(Duration::from_millis(r.duration_ms));
            if r.status == Status::Warn {
                case.set_system_out(format!(
                    "WARN ({}): {}",
                    r.level.as_str(),
                    r.reason.clone().unwrap_or_default()
                ));
            }
            if r.status == Status::Info {
                case.set_system_out(format!(
                    "INFO (noted, not a failure): {}",
                    r.reason.clone().unwrap_or_default()
                ));
            }
            suite.add_test_case(case);
        }
        junit.add_test_suite(suite);
    }
    junit.to_string().map_err(|e| HarnessError::Report {
        path: "junit.xml".into(),
        message: e.to_string(),
    })
}

/// summary.md: the table and, for each non-passing scenario, why.
pub fn markdown(report: &RunReport) -> String {
    let s = &report.summary;
    let mut out = format!(
        "# conform: {}\n\nIssuer: `{}`. Judged by MCP {}{}.\n\n**{} scenarios: {}.** Gate: {}.\n\n",
        report.target.name,
        report.target.issuer,
        report.revision,
        if report.strict { " (strict)" } else { "" },
        s.total,
        s.counts(),
        if report.gate_passed {
            "passed"
        } else {
            "FAILED"
        },
    );
    for (suite, results, summary) in by_suite(report) {
        out.push_str(&format!(
            "## {}\n\n{}.\n\n| Status | Level | Scenario | Reference |\n|---|---|---|---|\n",
            suite.heading(),
            summary.counts()
        ));
        for r in results {
            let refs: Vec<String> = r
                .refs
                .iter()
                .map(|x| format!("[{}]({})", x.id, x.url))
                .collect();
            out.push_str(&format!(
                "| {} | {} | `{}` {} | {} |\n",
                r.status.as_str().to_uppercase(),
                r.level.as_str(),
                r.id,
                r.title.replace('|', "\\|"),
                refs.join(", ")
            ));
        }
        out.push('\n');
    }
    let problems: Vec<_> = report
        .scenarios
        .iter()
        .filter(|r| r.status != Status::Pass)
        .collect();
    if !problems.is_empty() {
        out.push_str("\n## Details\n");
        for r in problems {
            out.push_str(&format!(
                "\n### `{}`: {}\n\n{}\n",
                r.id,
                r.status.as_str(),
                r.reason.clone().unwrap_or_default()
            ));
            for x in &r.refs {
                out.push_str(&format!("\n> {} — {}\n", x.id, x.quote));
            }
        }
    }
    if let Some(b) = report.baseline.as_ref().filter(|b| b.pinned) {
        out.push_str(&format!(
            "\n## Baseline\n\nPinned verdicts: {} of {} scenarios drifted.\n",
            b.drift.len(),
            report.scenarios.len()
        ));
        for d in &b.drift {
            out.push_str(&format!("\n- {}\n", d.describe()));
        }
    } else if let Some(b) = &report.baseline {
        out.push_str(&format!(
            "\n## Baseline\n\nExpected failures still failing: {}. New failures: {}. Stale entries (now passing): {}.\n",
            b.still_failing.len(),
            b.new_failures.len(),
            b.stale.len()
        ));
    }
    out
}

/// The table printed after a run.
pub fn console_table(report: &RunReport) -> String {
    let width = report
        .scenarios
        .iter()
        .map(|r| r.id.len())
        .max()
        .unwrap_or(10)
        .max(8);
    let mut out = String::new();
    for (suite, results, summary) in by_suite(report) {
        out.push_str(&format!(
            "{}{}: {}\n",
            if out.is_empty() { "" } else { "\n" },
            suite.heading(),
            summary.counts()
        ));
        out.push_str(&format!(
            "{:<6} {:<6} {:<width$}  {}\n",
            "STATUS", "LEVEL", "SCENARIO", "REFERENCE"
        ));
        for r in results {
            out.push_str(&format!(
                "{:<6} {:<6} {:<width$}  {}\n",
                r.status.as_str().to_uppercase(),
                r.level.as_str(),
                r.id,
                r.refs.first().map(|x| x.id.as_str()).unwrap_or_default()
            ));
            if let Some(reason) = r.reason.as_ref().filter(|_| r.status != Status::Pass) {
                out.push_str(&format!("{:>14}{}\n", "↳ ", reason));
            }
            let answers = r.answers();
            if r.status == Status::Pass && !answers.is_empty() {
                out.push_str(&format!(
                    "{:>14}allowed answer: {}\n",
                    "↳ ",
                    answers.join(", ")
                ));
            }
        }
    }
    if let Some(b) = report.baseline.as_ref().filter(|b| b.pinned) {
        out.push_str(&format!(
            "\npinned verdicts: {} of {} drifted\n",
            b.drift.len(),
            report.scenarios.len()
        ));
        for d in &b.drift {
            out.push_str(&format!("  drift: {}\n", d.describe()));
        }
    }
    let s = &report.summary;
    out.push_str(&format!(
        "\n{} of {} scenarios in {} ms, judged by MCP {}\n",
        s.counts(),
        s.total,
        report.duration_ms,
        report.revision
    ));
    out
}
