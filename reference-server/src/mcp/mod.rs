//! The hub's own protected MCP endpoints.

pub mod resource;
