//! Why an action could not produce facts at all: kept apart from the facts,
//! since a missing precondition is the scenario's error, never the target's fault.

use crate::http::TransportError;
use crate::operation::OperationError;
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
    /// The profile does not declare what the step needs (a client, a user,
    /// a recipe): the scenario does not apply to this target as described, a `skip`.
    #[error("{0}")]
    Undeclared(String),
    /// The target answered an operation with something its recipe does not
    /// describe (a status outside `ok`, nothing where `read` points) when the
    /// harness needed the answer: an `error` that quotes the exchange.
    #[error("{0}")]
    Unexpected(String),
}

impl From<OperationError> for StepError {
    fn from(error: OperationError) -> StepError {
        match error {
            OperationError::Undeclared(_) => StepError::Undeclared(error.to_string()),
            OperationError::Transport(e) => StepError::Transport(e),
            OperationError::Recipe { .. } => StepError::Precondition(error.to_string()),
            OperationError::Unexpected(message) => StepError::Unexpected(message),
        }
    }
}

pub(super) fn precondition(message: impl Into<String>) -> StepError {
    StepError::Precondition(message.into())
}

pub(super) fn undeclared(message: impl Into<String>) -> StepError {
    StepError::Undeclared(message.into())
}
