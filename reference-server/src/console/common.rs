//! What every console page shares: where the console is mounted, the
//! signed-in administrator, rendering and the page's failure.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;

use crate::error::{HubError, OAuthError};
use crate::hub::Hub;
use crate::model::TrustLevel;

/// Where the console is mounted.
pub const PREFIX: &str = "/console";

/// A signed-in administrator's session, put in the request by [`crate::console::auth::guard`].
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

/// How a client got its client id, for people, in the order MCP 2026-07-28
/// gives a client: pre-registered, a Client ID Metadata Document (a CIMD
/// client's id is the document's https URL), then Dynamic Client
/// Registration, which that revision deprecates ("Dynamic Client Registration
/// is deprecated. New implementations should use Client ID Metadata Documents
/// instead."). Derived from the trust level the hub stores with every client:
/// `dcr` only ever comes from `POST /register`, `cimd` from a metadata document.
pub(crate) fn registration(level: TrustLevel) -> &'static str {
    match level {
        TrustLevel::Manual => "pre-registered, manual",
        TrustLevel::Verified => "pre-registered, verified",
        TrustLevel::Cimd => "Client ID Metadata Document",
        TrustLevel::Dcr => "DCR (deprecated)",
    }
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

#[cfg(test)]
mod tests {
    use super::registration;
    use crate::model::TrustLevel;

    #[test]
    fn only_dynamically_registered_clients_are_labelled_deprecated() {
        assert_eq!(registration(TrustLevel::Dcr), "DCR (deprecated)");
        for level in [TrustLevel::Manual, TrustLevel::Verified, TrustLevel::Cimd] {
            assert!(!registration(level).contains("deprecated"), "{level:?}");
        }
    }
}
