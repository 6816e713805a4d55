//! The audit trail and its delivery to an outside collector.

pub mod event;
pub mod jsonl;
pub mod trail;
pub mod webhook;
