//! The reference agentic identity hub.
//!
//! An OAuth 2.1 authorization server for MCP servers and agents. See
//! `ARCHITECTURE.md` at the repository root for the map of this crate.

pub mod admin;
pub mod agents;
pub mod app;
pub mod audit;
pub mod clock;
pub mod config;
pub mod console;
pub mod control;
pub mod credentials;
pub mod embedded;
pub mod error;
pub mod fault;
pub mod hub;
pub mod keys;
pub mod lockout;
pub mod mcp;
pub mod model;
pub mod oauth;
pub mod pages;
pub mod params;
pub mod policy;
pub mod random;
pub mod seed;
pub mod serve;
pub mod server;
pub mod store;
pub mod switch;
pub mod throttle;
pub mod variant;
pub mod vault;
pub mod web_guard;

pub use config::{AgendaSettings, HubConfig};
pub use fault::{Fault, Faults};
pub use server::{spawn, RunningHub};
pub use variant::{Variant, Variants};
