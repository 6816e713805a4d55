//! Why an action could not produce facts at all: kept apart from the facts,
//! since a missing precondition is the scenario's error, never the target's fault.

use crate::http::TransportError;
use crate::user;

/// Why an action could not produce facts at all.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{0}")]
    Transport(#[from] TransportError),
    #[error("{0}")]
    User(#[from] user::UserError),
    /// A precondition the scenario or target did not meet (no code yet, no metadata).
    #[error("{0}")]
    Precondition(String),
    /// The profile does not declare what the step needs (a client, a user):
    /// the scenario does not apply to this target as described, a `skip`.
    #[error("{0}")]
    Undeclared(String),
}

pub(super) fn precondition(message: impl Into<String>) -> StepError {
    StepError::Precondition(message.into())
}

pub(super) fn undeclared(message: impl Into<String>) -> StepError {
    StepError::Undeclared(message.into())
}
