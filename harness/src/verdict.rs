//! Levels of requirements and statuses of checks.

use serde::{Deserialize, Serialize};

/// The normative strength of a requirement (RFC 2119).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    #[serde(rename = "MUST")]
    Must,
    #[serde(rename = "SHOULD")]
    Should,
    /// Informational: what the text allows but does not demand (a MAY, a
    /// lowercase "should", an either/or). Reported, never a failure; `MAY`
    /// is accepted as an alias in scenario files.
    #[serde(rename = "INFO", alias = "MAY")]
    Info,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
            Level::Info => "INFO",
        }
    }
}

/// Where a requirement comes from, and so which targets it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Suite {
    /// A standard: an RFC, the MCP authorization spec, the CIMD draft. It
    /// applies to every authorization server that has the capability.
    Standard,
    /// The agentic identity hub's product model (the seed documents:
    /// policies, Connections, agents, audit). It applies only to a target
    /// that declares the model.
    Hub,
    /// What any server owes hostile input (no 5xx, timely answers, nothing
    /// reflected unescaped, no secret repeated): the robustness pass, after
    /// the rest of the run.
    Robustness,
}

impl Suite {
    pub const ALL: [Suite; 3] = [Suite::Standard, Suite::Hub, Suite::Robustness];

    pub fn as_str(self) -> &'static str {
        match self {
            Suite::Standard => "standard",
            Suite::Hub => "hub",
            Suite::Robustness => "robustness",
        }
    }

    /// A heading for reports.
    pub fn heading(self) -> &'static str {
        match self {
            Suite::Standard => "Standards (RFCs, MCP authorization, CIMD draft)",
            Suite::Hub => "Hub product model (policies, Connections, agents, audit)",
            Suite::Robustness => "Robustness (hostile input on every endpoint)",
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The target met the requirement.
    Pass,
    /// A MUST (or, with --strict, a SHOULD) was broken.
    Fail,
    /// A SHOULD was broken and the run is not strict (or, with --strict,
    /// an INFO check did not hold).
    Warn,
    /// An INFO check did not hold: noted, never a failure nor a warning.
    Info,
    /// The target lacks a capability the check needs.
    Skip,
    /// The check could not be completed: the harness or the target broke.
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Warn => "warn",
            Status::Info => "info",
            Status::Skip => "skip",
            Status::Error => "error",
        }
    }

    /// Did the check find the target deviating from its requirement?
    /// An INFO check that did not hold counts too: it is what the
    /// sensitivity test proves a fault by.
    pub fn is_violation(self) -> bool {
        matches!(self, Status::Fail | Status::Warn | Status::Info)
    }
}
