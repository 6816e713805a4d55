//! Who may get which scopes: administrator policies, agent conditions and the
//! scope intersection every user-delegated issuance asks.

mod anchors;
mod bits;
pub mod changes;
pub mod conditions;
pub mod evaluation;
pub mod explanation;
pub mod index;
pub mod matching;
mod render;
pub mod rules;
pub mod scoping;
pub mod validation;

#[cfg(test)]
mod tests;
