//! The OAuth 2.1 authorization server: endpoints, grants and the rules they share.

pub mod access_token;
pub mod assertion;
pub mod authorize;
pub mod cimd;
pub mod cimd_cache;
pub mod client_auth;
pub mod grants;
pub mod metadata;
pub mod redirect_uri;
pub mod registration;
pub mod revocation;
pub mod second_factor;
pub mod signin;
pub mod signout;
pub mod special_use;
pub mod sso;
pub mod sso_flights;
pub mod token;
