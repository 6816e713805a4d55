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

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{middleware, Router};
use minijinja::{context, Environment};

use crate::error::{HubError, OAuthError};
use crate::state::Hub;

mod agents;
mod audit;
mod auth;
mod policies;
mod servers;

pub use auth::upsert_admin;

/// Where the console is mounted.
pub const PREFIX: &str = "/console";

/// The console's templates, registered with the hub's page environment.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "console/layout.html",
        include_str!("../../templates/console/layout.html"),
    ),
    (
        "console/login.html",
        include_str!("../../templates/console/login.html"),
    ),
    (
        "console/home.html",
        include_str!("../../templates/console/home.html"),
    ),
    (
        "console/message.html",
        include_str!("../../templates/console/message.html"),
    ),
    (
        "console/confirm.html",
        include_str!("../../templates/console/confirm.html"),
    ),
    (
        "console/agents.html",
        include_str!("../../templates/console/agents.html"),
    ),
    (
        "console/agent.html",
        include_str!("../../templates/console/agent.html"),
    ),
    (
        "console/servers.html",
        include_str!("../../templates/console/servers.html"),
    ),
    (
        "console/connections.html",
        include_str!("../../templates/console/connections.html"),
    ),
    (
        "console/policies.html",
        include_str!("../../templates/console/policies.html"),
    ),
    (
        "console/policy_new.html",
        include_str!("../../templates/console/policy_new.html"),
    ),
    (
        "console/what_if.html",
        include_str!("../../templates/console/what_if.html"),
    ),
    (
        "console/audit.html",
        include_str!("../../templates/console/audit.html"),
    ),
    (
        "console/flow.html",
        include_str!("../../templates/console/flow.html"),
    ),
];

/// The live feed's script: it opens the page's Server-Sent Events stream and
/// appends each event to the list; without it the page offers a reload link.
const FEED_JS: &str = include_str!("../../templates/console/feed.js");

/// Adds the console's templates and its filters, `utc` (seconds since the
/// epoch as `2026-11-24 09:00:00 UTC`) and `iso` (RFC 3339), to the hub's
/// page environment.
pub fn register(env: &mut Environment<'static>) {
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("built-in template {name} does not parse: {e}"));
    }
    env.add_filter("utc", |t: i64| utc(t));
    env.add_filter("iso", |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    });
}

/// Every console route, behind [`auth::guard`]; nested at [`PREFIX`].
pub fn router(hub: Arc<Hub>) -> Router<Arc<Hub>> {
    Router::new()
        .route("/", get(home))
        .route("/feed.js", get(feed_js))
        .route("/login", get(auth::login_form).post(auth::login_submit))
        .route("/logout", axum::routing::post(auth::logout))
        .route("/agents", get(agents::list))
        .route("/agents/{id}", get(agents::show))
        .route(
            "/agents/{id}/decommission",
            get(agents::confirm).post(agents::decommission),
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
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(hub, auth::guard))
}

/// A signed-in administrator's session, put in the request by [`auth::guard`].
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub username: String,
    /// The token every form of this session carries.
    pub csrf: String,
    /// Seconds on the hub clock.
    pub expires_at: i64,
}

/// Extracts the signed-in administrator; anyone else is sent to the sign-in
/// page (and back to where they were going afterwards).
pub(crate) struct Admin(pub Session);

impl FromRequestParts<Arc<Hub>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<Hub>) -> Result<Self, Response> {
        if let Some(session) = parts.extensions.get::<Session>() {
            return Ok(Admin(session.clone()));
        }
        let wanted = parts
            .extensions
            .get::<OriginalUri>()
            .map(|u| u.0.clone())
            .unwrap_or_else(|| parts.uri.clone());
        let target = wanted
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|_| parts.method == axum::http::Method::GET)
            .filter(|p| safe_next(p))
            .map(|p| format!("{PREFIX}/login?{}", query(&[("next", p)])))
            .unwrap_or_else(|| format!("{PREFIX}/login"));
        Err(Redirect::to(&target).into_response())
    }
}

/// Only a path inside the console may be returned to after signing in.
pub(crate) fn safe_next(next: &str) -> bool {
    next.starts_with(&format!("{PREFIX}/"))
        && !next.contains("//")
        && !next.contains('\\')
        && !next.contains(['\r', '\n'])
}

/// A page failed for an internal reason: logged, answered with a plain 500.
pub(crate) struct Fail(Box<Response>);

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl From<HubError> for Fail {
    fn from(err: HubError) -> Self {
        tracing::error!(error = %err, "console: internal error");
        Fail(Box::new(internal()))
    }
}

impl From<OAuthError> for Fail {
    fn from(err: OAuthError) -> Self {
        match err {
            OAuthError::ServerError => Fail(Box::new(internal())),
            other => Fail(Box::new(
                (
                    other.status(),
                    [(header::CACHE_CONTROL, "no-store")],
                    format!("{}: {}", other.code(), other.description()),
                )
                    .into_response(),
            )),
        }
    }
}

fn internal() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CACHE_CONTROL, "no-store")],
        axum::response::Html(
            "<!doctype html><html lang=\"en\"><title>Console error</title><h1>The console could not complete the request</h1><p>The detail is in the hub's log.</p></html>",
        ),
    )
        .into_response()
}

pub(crate) type Page = Result<Response, Fail>;

/// Renders a console template.
pub(crate) fn render(hub: &Hub, status: StatusCode, name: &str, ctx: minijinja::Value) -> Page {
    Ok(crate::pages::render(&hub.pages, status, name, ctx)?)
}

/// Renders a page of the signed-in console: the layout needs the
/// administrator, the session's CSRF token (for the sign-out form) and the
/// section to mark as current.
pub(crate) fn view(
    hub: &Hub,
    admin: &Session,
    section: &str,
    name: &str,
    ctx: minijinja::Value,
) -> Page {
    render(
        hub,
        StatusCode::OK,
        name,
        context! { admin => admin.username, csrf => admin.csrf, section => section, ..ctx },
    )
}

/// A short page that says what happened: not found, refused, expired.
pub(crate) fn message(
    hub: &Hub,
    admin: Option<&Session>,
    status: StatusCode,
    title: &str,
    text: &str,
) -> Response {
    let ctx = context! {
        admin => admin.map(|a| a.username.clone()),
        csrf => admin.map(|a| a.csrf.clone()),
        title => title,
        text => text,
        status => status.as_u16(),
    };
    crate::pages::render(&hub.pages, status, "console/message.html", ctx)
        .unwrap_or_else(|e| Fail::from(e).into_response())
}

/// `2026-11-24 09:00:00 UTC`.
pub(crate) fn utc(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// A percent-encoded path segment: client ids may be URLs (CIMD).
pub(crate) fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A form-encoded query string of the non-empty pairs.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        out.append_pair(k, v);
    }
    out.finish()
}

/// `GET /console`: what each section holds, with counts.
async fn home(
    axum::extract::State(hub): axum::extract::State<Arc<Hub>>,
    Admin(admin): Admin,
) -> Page {
    let agents = crate::admin::find_agents(&hub, &Default::default())
        .await?
        .iter()
        .filter(|(_, decommissioned)| decommissioned.is_none())
        .count();
    let servers = hub.store.mcp_servers().await?.len();
    let connections = hub.connections().await?.len();
    let policies = hub.policies().await?.len();
    let events = hub.store.last_audit_seq().await?;
    view(
        &hub,
        &admin,
        "home",
        "console/home.html",
        context! { agents, servers, connections, policies, events, issuer => hub.issuer },
    )
}

/// `GET /console/`: the same as `/console`.
pub async fn slash() -> Response {
    Redirect::to(PREFIX).into_response()
}

/// `GET /console/feed.js`.
async fn feed_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        FEED_JS,
    )
        .into_response()
}

async fn not_found(
    axum::extract::State(hub): axum::extract::State<Arc<Hub>>,
    request: axum::extract::Request,
) -> Response {
    message(
        &hub,
        request.extensions().get::<Session>(),
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no console page at this address.",
    )
}
