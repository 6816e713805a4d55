//! The extension grant types the hub speaks, named once: the token endpoint
//! dispatches on them, the metadata advertises them, clients are allowed them.

/// `grant_type` of the JWT bearer authorization grant (RFC 7523 §2.1).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// `grant_type` of token exchange (RFC 8693 §2.1).
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
