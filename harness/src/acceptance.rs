//! The acceptance proof: every "one of" expectation really accepts its other
//! answers.
//!
//! Where a standard allows two answers (400 or 401 for `invalid_client` in the
//! body, a refusal or a narrowed scope), a scenario's expectation lists both.
//! A list that is never exercised could be wrong and nobody would know, so
//! each such scenario names reference-hub *variants* (`variants = [...]`):
//! compliant hubs that give another allowed answer. The proof runs each
//! variant's hub with the scenarios that name it. A scenario accepts the
//! variant when it passes **and** reports a different allowed answer from the
//! one the clean hub gave; passing with the same answer proves nothing.

use std::path::Path;

use serde::Serialize;

use crate::engine::{run_on_embedded_hub, RunOptions, ScenarioResult};
use crate::error::HarnessError;
use crate::scenario::Scenario;
use crate::verdict::Status;

/// What one variant did to the scenarios that name it.
#[derive(Debug, Clone, Serialize)]
pub struct VariantRow {
    pub variant: String,
    pub description: String,
    /// Scenarios that name the variant.
    pub named_by: Vec<String>,
    /// Passed with another allowed answer than against the clean hub, each
    /// as `id: answers`.
    pub accepted_by: Vec<String>,
    /// Did not pass against the variant: an allowed answer was refused.
    pub refused_by: Vec<String>,
    /// Passed, but with the same answer as the clean hub: the variant did
    /// not exercise the other branch.
    pub unexercised_by: Vec<String>,
    /// Every naming scenario accepted the variant (and there is at least one).
    pub proven: bool,
}

impl VariantRow {
    fn judge(
        variant: &str,
        description: &str,
        named_by: Vec<String>,
        clean: &[ScenarioResult],
        results: &[ScenarioResult],
    ) -> VariantRow {
        let (mut accepted_by, mut refused_by, mut unexercised_by) = (vec![], vec![], vec![]);
        for id in &named_by {
            let on_variant = results.iter().find(|r| &r.id == id);
            let on_clean = clean.iter().find(|r| &r.id == id);
            match on_variant {
                Some(r) if r.status == Status::Pass => {
                    let answers = r.answers();
                    if on_clean.is_some_and(|c| c.answers() == answers) {
                        unexercised_by.push(id.clone());
                    } else {
                        accepted_by.push(format!("{id}: {}", answers.join("; ")));
                    }
                }
                _ => refused_by.push(id.clone()),
            }
        }
        VariantRow {
            variant: variant.to_owned(),
            description: description.to_owned(),
            proven: !named_by.is_empty() && refused_by.is_empty() && unexercised_by.is_empty(),
            named_by,
            accepted_by,
            refused_by,
            unexercised_by,
        }
    }

    /// Why the variant is not proven, for people; `None` when it is.
    pub fn miss(&self) -> Option<String> {
        if self.proven {
            return None;
        }
        let mut why = Vec::new();
        if self.named_by.is_empty() {
            why.push("no scenario names it".to_owned());
        }
        if !self.refused_by.is_empty() {
            why.push(format!("refused by {}", self.refused_by.join(", ")));
        }
        if !self.unexercised_by.is_empty() {
            why.push(format!(
                "{} gave the clean hub's answer",
                self.unexercised_by.join(", ")
            ));
        }
        Some(format!("{}: {}", self.variant, why.join("; ")))
    }
}

/// Which scenarios name `variant`.
fn naming<'a>(scenarios: &'a [Scenario], variant: &str) -> Vec<&'a Scenario> {
    scenarios
        .iter()
        .filter(|s| s.variants.iter().any(|v| v == variant))
        .collect()
}

/// A variant's hub running the scenarios that name it.
pub type VariantRun = tokio::task::JoinHandle<Result<Vec<ScenarioResult>, HarnessError>>;

/// Starts one hub per variant, each running the scenarios that name it, all
/// at once (there are few, and each runs a handful of scenarios).
pub fn start(
    fixtures_dir: &Path,
    scenarios: &[Scenario],
    variants: &[(&str, &str)],
    options: &RunOptions,
) -> Vec<VariantRun> {
    variants
        .iter()
        .map(|(variant, _)| {
            let to_run: Vec<Scenario> = naming(scenarios, variant).into_iter().cloned().collect();
            let fixtures_dir = fixtures_dir.to_path_buf();
            let options = options.clone();
            let variant = vec![(*variant).to_owned()];
            tokio::spawn(async move {
                run_on_embedded_hub(&fixtures_dir, &[], &variant, &to_run, &options).await
            })
        })
        .collect()
}

/// Judges each variant's run (from [`start`], in the same order) against
/// the clean hub's results.
pub async fn judge(
    scenarios: &[Scenario],
    variants: &[(&str, &str)],
    runs: Vec<VariantRun>,
    clean: &[ScenarioResult],
) -> Result<Vec<VariantRow>, HarnessError> {
    let mut rows = Vec::new();
    for ((variant, description), run) in variants.iter().zip(runs) {
        let results = run.await.map_err(|e| {
            HarnessError::Embedded(format!("variant run `{variant}` crashed: {e}"))
        })??;
        let named_by = naming(scenarios, variant)
            .iter()
            .map(|s| s.id.clone())
            .collect();
        rows.push(VariantRow::judge(
            variant,
            description,
            named_by,
            clean,
            &results,
        ));
    }
    Ok(rows)
}
