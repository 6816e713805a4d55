//! Connections to third-party providers and their credentials, sealed at rest.

pub mod connect;
pub mod connection;
pub mod connections;
pub mod definition;
pub mod flights;
pub mod pending;
pub mod retrieval;
pub mod sealing;
pub mod stored;
