//! What every action declares, in one place: who acts, what it shows and
//! where that comes from (read by narration, report.html and the sequence
//! diagrams), whether it must run alone, how it is performed, and which
//! audit events the target owes for it.

use std::collections::BTreeMap;

use serde_json::Value;

use super::evidence::Evidence;
use super::failure::StepError;
use super::run::Run;

/// Who acts in a step, what the step shows, and where that comes from.
#[derive(Debug, Clone, Copy)]
pub struct ActionInfo {
    /// The party the harness plays (a lane of the sequence diagrams).
    pub actor: &'static str,
    pub shows: &'static str,
    /// The spec section (or the hub's contract) the step's behaviour comes from.
    pub spec: &'static str,
    /// Its address: a URL, or a path in this repository (`docs/…`).
    pub url: &'static str,
    /// Who answers the step's requests to hosts other than the hub (a diagram lane).
    pub elsewhere: &'static str,
}

impl ActionInfo {
    pub const fn new(
        actor: &'static str,
        shows: &'static str,
        spec: &'static str,
        url: &'static str,
    ) -> ActionInfo {
        ActionInfo {
            actor,
            shows,
            spec,
            url,
            elsewhere: "other host",
        }
    }

    /// The same, naming who answers off the hub (the provider, for a browser at it).
    pub const fn answered_elsewhere_by(self, party: &'static str) -> ActionInfo {
        ActionInfo {
            elsewhere: party,
            ..self
        }
    }
}

/// What the rest of a scenario declares that decides whether one of its
/// actions must run alone: the policies it creates, by name.
#[derive(Debug, Default)]
pub struct InScenario<'a> {
    pub policies: BTreeMap<&'a str, &'a toml::Value>,
}

/// One action of a scenario file: implemented by its parameter type, and
/// listed once in `catalogue.rs`.
// The engine performs actions through `Action`, on concrete types, so
// whether the futures are `Send` is known where it matters.
#[allow(async_fn_in_trait)]
pub trait Act {
    /// Who acts, what it shows, where the behaviour is specified.
    const INFO: ActionInfo;

    /// Whether the scenario must not share the target with others: it moves
    /// the clock, rotates keys or changes what every other scenario sees.
    fn exclusive(&self, _scenario: &InScenario<'_>) -> bool {
        false
    }

    /// Whether the action waits out one of the target's timeouts: seconds of
    /// wall time and little work. A run starts such scenarios at once, beside
    /// the others and without taking one of their places, so the wait
    /// overlaps their work instead of ending the run.
    fn waits(&self) -> bool {
        false
    }

    /// Talks to the target as the party and returns the facts expectations read.
    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError>;

    /// The audit events the target owes for this action, given its facts.
    /// Reads the run; writes only the evidence.
    fn oblige(&self, _facts: &Value, _run: &Run<'_>, _evidence: &mut Evidence) {}
}
