//! Expected-failure baselines: a CI gate that tolerates known failures but
//! catches new ones, and catches fixed ones too, so the baseline is kept honest.
//!
//! Format (TOML): `expected_failures = ["scenario.id", …]`, or, to pin a
//! whole run, `[verdicts]` with every scenario's expected verdict
//! (`"scenario.id" = "pass"`). The second form is how a third-party target's
//! hand-judged verdicts are held in CI (fixtures/targets/*/expected.toml):
//! any drift, in either direction and for any verdict, fails the gate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::ScenarioResult;
use crate::error::HarnessError;
use crate::verdict::Status;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    #[serde(default)]
    pub expected_failures: BTreeSet<String>,
    /// Every scenario's expected verdict; when present, the gate is an exact match.
    #[serde(default)]
    pub verdicts: BTreeMap<String, Status>,
}

impl Baseline {
    pub fn load(path: &Path) -> Result<Baseline, HarnessError> {
        let text = std::fs::read_to_string(path).map_err(|source| HarnessError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let baseline: Baseline = toml::from_str(&text).map_err(|e| HarnessError::Baseline {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if !baseline.verdicts.is_empty() && !baseline.expected_failures.is_empty() {
            return Err(HarnessError::Baseline {
                path: path.to_path_buf(),
                message: "use either `expected_failures` or `[verdicts]`, not both".into(),
            });
        }
        Ok(baseline)
    }

    /// Every scenario id the baseline names.
    pub fn ids(&self) -> impl Iterator<Item = &String> {
        self.expected_failures.iter().chain(self.verdicts.keys())
    }
}

/// A scenario whose verdict is not the one the baseline expects.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Drift {
    pub id: String,
    /// `None`: the scenario ran but the baseline does not list it.
    pub expected: Option<Status>,
    pub actual: Status,
}

impl Drift {
    /// One line for the console and summary.md.
    pub fn describe(&self) -> String {
        match self.expected {
            Some(expected) => format!(
                "`{}` is {}, expected {}",
                self.id,
                self.actual.as_str(),
                expected.as_str()
            ),
            None => format!(
                "`{}` is {} and the baseline does not list it",
                self.id,
                self.actual.as_str()
            ),
        }
    }
}

/// How a run compares with the baseline.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BaselineOutcome {
    /// Listed and still failing: tolerated.
    pub still_failing: Vec<String>,
    /// Failing and not listed: the gate fails.
    pub new_failures: Vec<String>,
    /// Listed but now passing: the gate fails until the entry is removed.
    pub stale: Vec<String>,
    /// With `[verdicts]`: every scenario whose verdict differs from the expected one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<Drift>,
    /// The baseline pinned every verdict (`[verdicts]`).
    pub pinned: bool,
}

/// Does this status count against the gate?
fn is_failure(status: Status) -> bool {
    matches!(status, Status::Fail | Status::Error)
}

/// Compares results with a baseline (an empty one when none was given).
pub fn compare(results: &[ScenarioResult], baseline: &Baseline) -> BaselineOutcome {
    let mut outcome = BaselineOutcome::default();
    if !baseline.verdicts.is_empty() {
        outcome.pinned = true;
        outcome.drift = results
            .iter()
            .filter_map(|r| {
                let expected = baseline.verdicts.get(&r.id).copied();
                (expected != Some(r.status)).then(|| Drift {
                    id: r.id.clone(),
                    expected,
                    actual: r.status,
                })
            })
            .collect();
        return outcome;
    }
    for r in results {
        let listed = baseline.expected_failures.contains(&r.id);
        match (is_failure(r.status), listed) {
            (true, true) => outcome.still_failing.push(r.id.clone()),
            (true, false) => outcome.new_failures.push(r.id.clone()),
            (false, true) if r.status != Status::Skip => outcome.stale.push(r.id.clone()),
            _ => {}
        }
    }
    outcome
}

impl BaselineOutcome {
    pub fn gate_passes(&self) -> bool {
        self.new_failures.is_empty() && self.stale.is_empty() && self.drift.is_empty()
    }
}
