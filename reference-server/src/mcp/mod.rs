//! The hub's own protected MCP endpoints.

pub mod agenda;
pub mod protocol;
pub mod resource;
