//! The hub console (`/console`): server-rendered pages for the people who run
//! the hub. It works without JavaScript (the live audit feed adds a few lines
//! of it, served from `/console/feed.js`), loads nothing from elsewhere, and
//! calls the hub's own logic directly; the admin API stays for machines.
//! Documented in `docs/console.md`.
//!
//! * Administrators sign in with a seeded credential (`[[admins]]`, argon2id);
//!   a session is a random cookie (`HttpOnly; SameSite=Strict; Path=/console`,
//!   `Secure` on an https hub) whose SHA-256 digest is stored with an expiry on
//!   the hub clock ([`auth`]).
//! * Every POST passes [`auth::guard`]: the request must be same-origin when
//!   the browser says where it comes from, and carry the session's CSRF token
//!   (the sign-in form: its own single-use cookie token).
//! * Sign-ins, sign-outs, refusals and every change are audited with an
//!   `admin` actor naming the administrator.
//! * No page shows a token value, client secret or password hash.

use std::sync::Arc;

use axum::routing::get;
use axum::{middleware, Router};

use crate::hub::Hub;

pub mod agents;
pub mod audit;
pub mod auth;
pub mod common;
pub mod home;
pub mod policies;
pub mod servers;
pub mod templates;
pub mod users;

/// Every console route, behind [`auth::guard`]; nested at [`common::PREFIX`].
pub fn router(hub: Arc<Hub>) -> Router<Arc<Hub>> {
    Router::new()
        .route("/", get(home::home))
        .route("/feed.js", get(home::feed_js))
        .route("/login", get(auth::login_form).post(auth::login_submit))
        .route("/logout", axum::routing::post(auth::logout))
        .route("/agents", get(agents::list))
        .route("/agents/{id}", get(agents::show))
        .route(
            "/agents/{id}/decommission",
            get(agents::confirm).post(agents::decommission),
        )
        .route("/users", get(users::list))
        .route("/users/{id}", get(users::show))
        .route(
            "/users/{id}/sessions/{session}/end",
            get(users::confirm_end).post(users::end),
        )
        .route("/servers", get(servers::servers))
        .route("/connections", get(servers::connections))
        .route("/policies", get(policies::list))
        .route(
            "/policies/new",
            get(policies::new_form).post(policies::new_step),
        )
        .route("/policies/what-if", get(policies::what_if))
        .route(
            "/policies/{id}/delete",
            get(policies::confirm_delete).post(policies::delete),
        )
        .route("/audit", get(audit::list))
        .route("/audit/stream", get(audit::stream))
        .route("/audit/flow/{correlation}", get(audit::flow))
        .fallback(home::not_found)
        .layer(middleware::from_fn_with_state(hub, auth::guard))
}
