//! The reference agentic identity hub.
//!
//! An OAuth 2.1 authorization server for MCP servers and agents. See
//! `ARCHITECTURE.md` at the repository root for the map of this crate.

pub mod admin;
pub mod app;
pub mod assertion;
pub mod audit;
pub mod authorize;
pub mod cimd;
pub mod clock;
pub mod conditions;
pub mod config;
pub mod connect;
pub mod connections;
pub mod console;
pub mod control;
pub mod credentials;
pub mod embedded;
pub mod error;
pub mod fault;
pub mod keys;
pub mod metadata;
pub mod model;
pub mod pages;
pub mod params;
pub mod policy;
pub mod random;
pub mod registration;
pub mod resource;
pub mod retrieval;
pub mod revocation;
pub mod scoping;
pub mod seed;
pub mod state;
pub mod store;
pub mod throttle;
pub mod token;
pub mod tokens;
pub mod vault;
pub mod webhook;

pub use config::{AgendaSettings, HubConfig};
pub use fault::{Fault, Faults};
pub use state::{spawn, RunningHub};
