//! The console's home page, its script and its not-found page.

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;

use crate::console::common::{message, view, Admin, Page, Session, PREFIX};
use crate::hub::Hub;

/// The live feed's script: it opens the page's Server-Sent Events stream and
/// appends each event to the list; without it the page offers a reload link.
const FEED_JS: &str = include_str!("../../templates/console/feed.js");

/// `GET /console`: what each section holds, with counts.
pub(crate) async fn home(
    axum::extract::State(hub): axum::extract::State<Arc<Hub>>,
    Admin(admin): Admin,
) -> Page {
    let agents = crate::agents::find_agents(&hub, &Default::default())
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
pub(crate) async fn feed_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        FEED_JS,
    )
        .into_response()
}

pub(crate) async fn not_found(
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
