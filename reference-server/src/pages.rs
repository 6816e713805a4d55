//! Server-rendered HTML pages (login, consent, errors). They work without
//! JavaScript; minijinja escapes every value because the names end in `.html`.

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{context, Environment};

use crate::error::{HubError, OAuthError};

pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("../templates/base.html")),
        ("login.html", include_str!("../templates/login.html")),
        ("signout.html", include_str!("../templates/signout.html")),
        ("consent.html", include_str!("../templates/consent.html")),
        (
            "second_factor.html",
            include_str!("../templates/second_factor.html"),
        ),
        (
            "recovery_codes.html",
            include_str!("../templates/recovery_codes.html"),
        ),
        ("error.html", include_str!("../templates/error.html")),
        ("connect.html", include_str!("../templates/connect.html")),
        (
            "connected.html",
            include_str!("../templates/connected.html"),
        ),
    ] {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("built-in template {name} does not parse: {e}"));
    }
    crate::console::templates::register(&mut env);
    env
}

/// Renders a page; pages are never cached because they carry request handles.
pub fn render(
    env: &Environment<'static>,
    status: StatusCode,
    name: &str,
    context: minijinja::Value,
) -> Result<Response, HubError> {
    let html = env.get_template(name)?.render(context)?;
    Ok((
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::HeaderName::from_static("x-frame-options"), "DENY"),
        ],
        Html(html),
    )
        .into_response())
}

/// An error shown to the user on the hub's own page: used whenever the client
/// or redirect URI cannot be trusted, so the browser is never sent anywhere.
/// The error page with `echoed` (text from the request) put in unescaped:
/// only for the fault `error-page-reflects-request`.
pub fn error_page_echoing(env: &Environment<'static>, err: &OAuthError, echoed: &str) -> Response {
    let description = minijinja::Value::from_safe_string(format!(
        "{} (return address: {echoed})",
        err.description()
    ));
    render(
        env,
        StatusCode::BAD_REQUEST,
        "error.html",
        context! { error => err.code(), description => description },
    )
    .unwrap_or_else(|e| OAuthError::from(e).into_response())
}

pub fn error_page(env: &Environment<'static>, err: &OAuthError) -> Response {
    let status = if matches!(err, OAuthError::ServerError) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::BAD_REQUEST
    };
    render(
        env,
        status,
        "error.html",
        context! { error => err.code(), description => err.description() },
    )
    .unwrap_or_else(|e| OAuthError::from(e).into_response())
}
