//! The OAuth 2.1 authorization server: endpoints, grants and the rules they share.

pub mod access_token;
pub mod assertion;
pub mod authorize;
pub mod cimd;
pub mod metadata;
pub mod registration;
pub mod revocation;
pub mod token;
