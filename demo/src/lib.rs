//! Offline demo parts for the reference hub, so an educator can show the
//! credential vault end to end without the internet:
//!
//! * [`provider`] — "Demo Calendar", a mock third-party OAuth 2.0 provider
//!   (authorization code with PKCE, rotating refresh tokens, a small API);
//! * [`agenda`] — the Agenda MCP server: real MCP over Streamable HTTP
//!   (the official `rmcp` SDK), protected by the hub, which fetches the
//!   user's Demo Calendar token from the hub's vault on every tool call;
//! * [`idp`] — "Demo IdP", a small OpenID Provider (authorization code with
//!   PKCE, ES256 ID tokens) for the demo tenant "Initech", so the hub can
//!   show enterprise single sign-on as an OIDC relying party.
//!
//! All are plain axum routers; the hub decides where they live.

pub mod agenda;
pub mod idp;
pub mod provider;

mod util;
