//! The HTTP surface: every route of the hub in one place.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{middleware, Json, Router};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::admin;
use crate::control;
use crate::fault::Fault;
use crate::hub::{Hub, ISSUER_PATH};
use crate::mcp::resource;
use crate::oauth::authorize;
use crate::oauth::metadata;
use crate::oauth::registration;
use crate::oauth::revocation;
use crate::oauth::token;
use crate::vault::connect;
use crate::vault::connections;

/// Largest request body the hub reads: registrations and forms are small.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest a request body may take to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// CORS (Fetch standard) for the endpoints a browser-based client calls
/// directly: token, registration, revocation, introspection, metadata, JWKS
/// and resource metadata (RFC 9700 §2.6 allows it there; the browser-based
/// apps BCP asks for it). Any origin may read the answers: none of these
/// endpoints uses cookies, so no credentials are allowed. Never on the
/// authorization endpoint, the sign-in and consent pages or the console,
/// which are only ever navigated to (RFC 9700 §2.6: CORS MUST NOT be
/// supported at the authorization endpoint).
fn browser_callable(route: MethodRouter<Arc<Hub>>, hub: &Hub) -> MethodRouter<Arc<Hub>> {
    if hub.faults.on(Fault::NoCors) {
        return route;
    }
    route.layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::any())
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static("mcp-protocol-version"),
            ])
            .expose_headers([header::WWW_AUTHENTICATE, header::RETRY_AFTER])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

pub fn router(hub: Arc<Hub>) -> Router {
    let cors = |route| browser_callable(route, &hub);
    // The fault: the authorization endpoint answers preflights too.
    let authorization_endpoint = if hub.faults.on(Fault::CorsOnAuthorize) {
        cors(get(authorize::authorize))
    } else {
        get(authorize::authorize)
    };
    let oauth = Router::new()
        .route("/authorize", authorization_endpoint)
        .route(
            "/login",
            get(authorize::login_form).post(authorize::login_submit),
        )
        .route("/sso/callback", get(crate::oauth::sso::callback))
        .route(
            "/login/second-factor",
            get(crate::oauth::second_factor::form).post(crate::oauth::second_factor::submit),
        )
        .route(
            "/consent",
            get(authorize::consent_form).post(authorize::consent_submit),
        )
        .route(
            "/logout",
            get(crate::oauth::signout::page).post(crate::oauth::signout::sign_out),
        )
        .route("/token", cors(post(token::token)))
        .route("/register", cors(post(registration::register)))
        .route("/revoke", cors(post(revocation::revoke)))
        .route("/introspect", cors(post(revocation::introspect)))
        .route(
            "/audit/tool-executions",
            post(resource::report_tool_execution),
        )
        .route("/jwks.json", cors(get(metadata::jwks)))
        .route(
            "/connections/{id}/connect",
            get(connect::connect_form).post(connect::connect_submit),
        )
        .route("/connections/{id}/callback", get(connect::callback))
        .route(
            "/.well-known/openid-configuration",
            cors(get(metadata::authorization_server_metadata)),
        );

    let mut app = Router::new()
        .route("/", get(index))
        .route(
            &format!("/.well-known/oauth-authorization-server{ISSUER_PATH}"),
            cors(get(metadata::authorization_server_metadata)),
        )
        .route(
            &format!("/.well-known/openid-configuration{ISSUER_PATH}"),
            cors(get(metadata::authorization_server_metadata)),
        )
        .route(
            "/.well-known/oauth-protected-resource/{*path}",
            cors(get(metadata::protected_resource_metadata)),
        )
        .nest(ISSUER_PATH, oauth)
        .nest(
            crate::console::common::PREFIX,
            crate::console::router(hub.clone()),
        )
        .route("/console/", get(crate::console::home::slash))
        .fallback(fallback);

    if hub.config.test_mode {
        let control = Router::new()
            .route("/audit", get(admin::audit))
            .route("/audit/failure", post(control::audit_failure))
            .route("/clock", get(control::clock).post(control::advance_clock))
            .route("/authorizations/{request}/decision", post(control::decide))
            .route("/clients", post(control::create_client))
            .route("/keys/rotate", post(control::rotate_keys))
            .route("/cimd/trust", post(control::trust_cimd_origin))
            .route("/users", post(control::create_user))
            .layer(middleware::from_fn_with_state(
                hub.clone(),
                control::require_control_token,
            ));
        app = app.nest("/control", control);
    }

    if hub.config.admin_token.is_some() {
        let admin = Router::new()
            .route("/consents", get(admin::list_consents))
            .route("/consents/revoke", post(admin::revoke_consent))
            .route(
                "/tenants/{tenant}/sso",
                axum::routing::put(admin::configure_sso).delete(admin::remove_sso),
            )
            .route(
                "/users/{user}/second-factor",
                post(admin::enrol_second_factor).delete(admin::remove_second_factor),
            )
            .route(
                "/policies",
                get(admin::list_policies).post(admin::create_policy),
            )
            .route(
                "/policies/{id}",
                axum::routing::delete(admin::delete_policy),
            )
            .route("/agents", get(admin::list_agents).post(admin::create_agent))
            .route("/audit", get(admin::audit))
            .route("/audit/stream", get(admin::audit_stream))
            .route("/agents/{id}/decommission", post(admin::decommission_agent))
            .route(
                "/connections",
                get(connections::list_connections).post(connections::create_connection),
            )
            .route(
                "/connections/{id}",
                get(connections::get_connection)
                    .put(connections::put_connection)
                    .delete(connections::delete_connection),
            )
            .route(
                "/connections/{id}/tokens",
                axum::routing::put(connections::put_token).delete(connections::delete_token),
            )
            .layer(middleware::from_fn_with_state(
                hub.clone(),
                admin::require_admin_token,
            ));
        app = app.nest("/admin", admin);
    }

    app.layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        // A client that announces a body and sends it slowly, or never, is cut off.
        .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .layer(middleware::from_fn(oversized_body_as_oauth_error))
        // Spans carry the path only: query strings can hold request handles.
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
        }))
        .with_state(hub)
}

/// The body limit answers 413 with plain text; clients of an OAuth server are
/// owed an OAuth error body (RFC 6749 §5.2, RFC 7591 §3.2.2 at registration).
async fn oversized_body_as_oauth_error(request: Request, next: middleware::Next) -> Response {
    let registration = request.uri().path().ends_with("/register");
    let response = next.run(request).await;
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return response;
    }
    let description = format!(
        "the request body is larger than {} KiB",
        MAX_BODY_BYTES / 1024
    );
    let error = if registration {
        crate::error::OAuthError::InvalidClientMetadata(description)
    } else {
        crate::error::OAuthError::InvalidRequest(description)
    };
    let mut response = error.into_response();
    *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    response
}

/// Anything else: an MCP server path is the demo MCP endpoint, the rest is 404.
async fn fallback(
    state: State<Arc<Hub>>,
    peer: axum::extract::ConnectInfo<std::net::SocketAddr>,
    uri: axum::http::Uri,
    method: axum::http::Method,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match state.store.mcp_server_by_path(uri.path()).await {
        Ok(Some(server)) if method == axum::http::Method::POST => {
            return resource::mcp_endpoint(state, peer, server, headers, body)
                .await
                .unwrap_or_else(IntoResponse::into_response)
        }
        // No standalone SSE stream and no session to delete: GET and DELETE
        // are 405 (MCP 2025-11-25 transports allow it; 2026-07-28,
        // Backward Compatibility, asks it).
        Ok(Some(_)) => {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                [(axum::http::header::ALLOW, "POST")],
                Json(json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": "the MCP endpoint takes POST only"}})),
            )
                .into_response()
        }
        Ok(None) => {}
        Err(err) => return crate::error::OAuthError::from(err).into_response(),
    }
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "not_found", "error_description": "no such endpoint"})),
    )
        .into_response()
}

async fn index(State(hub): State<Arc<Hub>>) -> Response {
    let servers = hub.store.mcp_servers().await.unwrap_or_default();
    let items: String = servers
        .iter()
        .map(|s| format!("<li>{} — <code>{}</code></li>", s.name, hub.resource_url(s)))
        .collect();
    Html(format!(
        "<!doctype html><html lang=\"en\"><title>Agentic identity hub</title><body>\
         <h1>Agentic identity hub</h1><p>Issuer: <code>{issuer}</code></p>\
         <p>Metadata: <a href=\"/.well-known/oauth-authorization-server{ISSUER_PATH}\">RFC 8414</a></p>\
         <p>Administrators: <a href=\"/console\">the hub console</a></p>\
         <h2>Protected MCP servers</h2><ul>{items}</ul></body></html>",
        issuer = hub.issuer
    ))
    .into_response()
}
