//! The reference hub's integration tests: behaviour the conformance suite does
//! not reach through its scenarios (persistence, bad input, audit, control API,
//! the vault, the console). One test binary; a module per concern.

mod audit;
mod console;
mod control;
mod crash;
mod listener;
mod memory;
mod oauth;
mod persistence;
mod policy;
mod second_factor;
mod secrets;
mod signin;
mod sso;
mod support;
mod vault;
