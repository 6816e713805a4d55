//! Who may get which scopes: administrator policies, agent conditions and the
//! scope intersection every user-delegated issuance asks.

pub mod changes;
pub mod conditions;
pub mod evaluation;
pub mod matching;
pub mod rules;
pub mod scoping;
pub mod validation;

#[cfg(test)]
mod tests;
