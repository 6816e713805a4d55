//! The parties the harness plays, one action at a time. Each action talks to
//! the target over HTTP and returns its *facts*, the JSON that expectations
//! are evaluated against (documented per action in scenarios/README.md).
//!
//! `catalogue` lists the actions; each is a parameter type implementing
//! `act::Act`, in the module of the party (or flow) it belongs to. `run` is
//! the state of one scenario run: the parties' memories (`parties`) and the
//! evidence (`evidence`).

pub mod act;
pub mod budget;
pub mod catalogue;
pub mod evidence;
pub mod failure;
pub mod parties;
pub mod run;

mod authenticator;
mod browser;
mod credentials;
mod defaults;
mod teardown;

pub mod admin;
pub mod agent;
pub mod agents;
pub mod authorize;
pub mod cimd;
pub mod connect;
pub mod connections;
pub mod control;
pub mod cors;
pub mod discovery;
pub mod registration;
pub mod resource;
pub mod resource_server;
pub mod revocation;
pub mod robustness;
pub mod second_factor;
pub mod signout;
pub mod slow_client;
pub mod sso;
pub mod third_party;
pub mod token;
pub mod vault;

pub use act::{Act, ActionInfo};
pub use catalogue::{catalogue, info, Action, CatalogueEntry};
pub use credentials::{basic_auth, unverified_claims, AssertionVariant};
pub use evidence::Evidence;
pub use failure::StepError;
pub use run::Run;
