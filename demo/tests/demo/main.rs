//! The demo parts end to end, on loopback only: the mock provider through
//! its OAuth flows, the Agenda MCP server over real Streamable HTTP with
//! wiremock playing the hub (JWKS, token exchange, audit), and the Demo IdP
//! as an OpenID Connect relying party sees it.
//!
//! One test binary, one module per concern; shared helpers live in `support`.

mod support;

mod provider_api;
mod provider_code;
mod provider_refresh;

mod bearer;
mod scopes;
mod vault;

mod idp;
