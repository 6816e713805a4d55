//! Expected-failure baselines: a CI gate that tolerates known failures but
//! catches new ones, and catches fixed ones too, so the baseline is kept honest.
//!
//! Format (TOML): `expected_failures = ["scenario.id", …]`.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::ScenarioResult;
use crate::error::HarnessError;
use crate::verdict::Status;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub expected_failures: BTreeSet<String>,
}

impl Baseline {
    pub fn load(path: &Path) -> Result<Baseline, HarnessError> {
        let text = std::fs::read_to_string(path).map_err(|source| HarnessError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| HarnessError::Baseline {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
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
}

/// Does this status count against the gate?
fn is_failure(status: Status) -> bool {
    matches!(status, Status::Fail | Status::Error)
}

/// Compares results with a baseline (an empty one when none was given).
pub fn compare(results: &[ScenarioResult], baseline: &Baseline) -> BaselineOutcome {
    let mut outcome = BaselineOutcome::default();
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
        self.new_failures.is_empty() && self.stale.is_empty()
    }
}
