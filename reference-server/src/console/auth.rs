//! Console administrators, their sessions, and the guard every console
//! request passes: same-origin and CSRF checks on POST, security headers on
//! every answer.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, OriginalUri, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use sha2::{Digest, Sha256};

use crate::audit::event::{AuditEvent, Outcome};
use crate::console::common::{message, render, safe_next, Admin, Page, Session, PREFIX};
use crate::credentials::PasswordCheck;
use crate::error::HubError;
use crate::hub::Hub;
use crate::params::Params;
use crate::store::console::SessionRecord;
use crate::web_guard::{read_cookie, same_origin, SameSite};

/// The session cookie.
pub(crate) const SESSION_COOKIE: &str = "hub_console";
/// The sign-in form's own CSRF token, before there is a session.
const LOGIN_COOKIE: &str = "hub_console_login";
/// How long a session lasts, on the hub clock.
pub(crate) const SESSION_TTL: i64 = 8 * 3600;
/// How long a sign-in form may be submitted after it was shown.
const LOGIN_FORM_TTL: i64 = 600;
/// Largest console form the guard reads (the hub's body limit is the same).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A console cookie: HttpOnly, SameSite=Strict, only under /console, and
/// Secure when the hub's public URL is https.
fn cookie(hub: &Hub, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    crate::web_guard::cookie(hub, name, value, PREFIX, SameSite::Strict, max_age)
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(presented: &str, expected: &str) -> bool {
    let (a, b) = (
        Sha256::digest(presented.as_bytes()),
        Sha256::digest(expected.as_bytes()),
    );
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    diff == 0 && !expected.is_empty()
}

/// The live session the request's cookie names, if any.
async fn session_from(hub: &Hub, headers: &HeaderMap) -> Result<Option<Session>, HubError> {
    let Some(id) = read_cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let record = hub
        .store
        .console_session(&crate::random::sha256_b64url(id), hub.clock.now())
        .await?;
    Ok(record.map(|r| Session {
        username: r.username,
        csrf: r.csrf,
        expires_at: r.expires_at,
    }))
}

/// Every console request: loads the session, checks POSTs (same origin, CSRF
/// token in the form), and adds the console's security headers.
pub(crate) async fn guard(
    State(hub): State<Arc<Hub>>,
    mut request: Request,
    next: Next,
) -> Response {
    let session = match session_from(&hub, request.headers()).await {
        Ok(session) => session,
        Err(err) => return crate::console::common::Fail::from(err).into_response(),
    };
    if let Some(session) = &session {
        request.extensions_mut().insert(session.clone());
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        request = match check_post(&hub, session.as_ref(), request).await {
            Ok(request) => request,
            Err(refused) => return with_headers(refused),
        };
    }
    with_headers(next.run(request).await)
}

/// The same-origin and CSRF checks of a POST; on success the request is
/// rebuilt with the body it had.
async fn check_post(
    hub: &Hub,
    session: Option<&Session>,
    request: Request,
) -> Result<Request, Response> {
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map(|u| u.0.path().to_owned())
        .unwrap_or_else(|| request.uri().path().to_owned());
    let login = path == format!("{PREFIX}/login");
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| hub.source_address(c.0.ip(), request.headers()).to_string());
    let refuse = |why: &str| {
        message(
            hub,
            session,
            StatusCode::FORBIDDEN,
            "Request refused",
            &format!("{why}. Nothing was changed; go back, reload the page and try again."),
        )
    };
    if let Err(why) = same_origin(hub, request.headers()) {
        audit_refusal(hub, session, &path, why, source.clone()).await?;
        return Err(refuse(why));
    }
    if !login && session.is_none() {
        return Err(Redirect::to(&format!("{PREFIX}/login")).into_response());
    }
    let expected = if login {
        read_cookie(request.headers(), LOGIN_COOKIE)
            .unwrap_or_default()
            .to_owned()
    } else {
        session.map(|s| s.csrf.clone()).unwrap_or_default()
    };
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| refuse("The form is too large"))?;
    let presented = Params::parse(&bytes)
        .ok()
        .and_then(|p| p.get("csrf").ok().flatten().map(str::to_owned))
        .unwrap_or_default();
    if !same_secret(&presented, &expected) {
        let why = if login {
            "The sign-in form has expired"
        } else if presented.is_empty() {
            "The form carried no CSRF token"
        } else {
            "The form's CSRF token is not this session's"
        };
        audit_refusal(hub, session, &path, why, source).await?;
        return Err(refuse(why));
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

/// A refused console POST is audited when it names a session: an
/// administrator's browser was made to send it, or their form went stale.
async fn audit_refusal(
    hub: &Hub,
    session: Option<&Session>,
    path: &str,
    why: &str,
    source: Option<String>,
) -> Result<(), Response> {
    let Some(session) = session else {
        return Ok(());
    };
    hub.audit(
        AuditEvent::new("admin.request_refused", Outcome::Failure)
            .actor("admin", session.username.clone())
            .source_ip(source)
            .reason(format!("POST {path}: {why}")),
    )
    .await
    .map_err(|e| crate::console::common::Fail::from(e).into_response())
}

/// Headers on every console answer: nothing from elsewhere, no framing, no caching.
fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; \
             img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The sign-in page, with a fresh form token in a cookie and a hidden field.
fn login_page(
    hub: &Hub,
    status: StatusCode,
    next: &str,
    error: Option<&str>,
    notice: Option<&str>,
) -> Page {
    let token = crate::random::secret();
    let mut response = render(
        hub,
        status,
        "console/login.html",
        context! { csrf => token, next => next, error => error, notice => notice },
    )?;
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie(hub, LOGIN_COOKIE, &token, Some(LOGIN_FORM_TTL)),
    );
    Ok(response)
}

fn next_or_home(next: Option<&str>) -> String {
    next.filter(|n| safe_next(n))
        .map(str::to_owned)
        .unwrap_or_else(|| PREFIX.to_owned())
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

/// `GET /console/login`.
pub(crate) async fn login_form(
    State(hub): State<Arc<Hub>>,
    session: Option<axum::Extension<Session>>,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Page {
    let next = next_or_home(q.next.as_deref());
    if session.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let notice = q.signed_out.is_some().then_some("You have signed out.");
    login_page(&hub, StatusCode::OK, &next, None, notice)
}

/// `POST /console/login`: checks the administrator's password (argon2id),
/// opens a session and audits the attempt either way.
pub(crate) async fn login_submit(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    let params = Params::parse(&body).unwrap_or_default();
    let field = |name: &str| params.text(name);
    let (username, password) = (field("username"), field("password"));
    let next = next_or_home(Some(&field("next")));
    let source_ip = hub.source_address(peer.ip(), &headers);
    let source = source_ip.to_string();
    // Administrators share the sign-in back-off, under names of their own.
    let stored = hub.store.admin_password_hash(&username).await?;
    let check = crate::credentials::check_password(
        &hub,
        &format!("console:{username}"),
        &password,
        stored.as_deref(),
        source_ip,
    )
    .await?;
    let verified = match check {
        PasswordCheck::Right => true,
        PasswordCheck::Wrong => false,
        PasswordCheck::Throttled { retry_after } => {
            hub.audit(
                AuditEvent::new("admin.login", Outcome::Failure)
                    .actor("admin", None)
                    .source_ip(source)
                    .reason(format!(
                        "console sign-in refused: {}",
                        crate::lockout::throttled_reason(retry_after)
                    )),
            )
            .await?;
            return login_page(
                &hub,
                StatusCode::TOO_MANY_REQUESTS,
                &next,
                Some(&crate::lockout::throttled_message(retry_after)),
                None,
            );
        }
    };
    if !verified {
        // An unknown name is not recorded: it could be a password typed in the wrong field.
        let (actor, reason) = match stored {
            Some(_) => (Some(username.clone()), "wrong password"),
            None => (None, "no administrator with that username"),
        };
        hub.audit(
            AuditEvent::new("admin.login", Outcome::Failure)
                .actor("admin", actor)
                .source_ip(source)
                .reason(format!("console sign-in refused: {reason}")),
        )
        .await?;
        return login_page(
            &hub,
            StatusCode::UNAUTHORIZED,
            &next,
            Some("Wrong username or password."),
            None,
        );
    }
    let now = hub.clock.now();
    let id = crate::random::secret();
    hub.store.delete_expired_console_sessions(now).await?;
    let session = SessionRecord {
        username: username.clone(),
        csrf: crate::random::secret(),
        expires_at: now + SESSION_TTL,
    };
    hub.store
        .insert_console_session(&crate::random::sha256_b64url(&id), &session, now)
        .await?;
    hub.audit(
        AuditEvent::new("admin.login", Outcome::Success)
            .actor("admin", username)
            .source_ip(source)
            .reason("signed in to the console"),
    )
    .await?;
    let mut response = Redirect::to(&next).into_response();
    let h = response.headers_mut();
    h.append(header::SET_COOKIE, cookie(&hub, SESSION_COOKIE, &id, None));
    h.append(header::SET_COOKIE, cookie(&hub, LOGIN_COOKIE, "", Some(0)));
    Ok(response)
}

/// `POST /console/logout`: the session ends on the server, the cookie is cleared.
pub(crate) async fn logout(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Admin(admin): Admin,
    headers: HeaderMap,
) -> Page {
    if let Some(id) = read_cookie(&headers, SESSION_COOKIE) {
        hub.store
            .delete_console_session(&crate::random::sha256_b64url(id))
            .await?;
    }
    hub.audit(
        AuditEvent::new("admin.logout", Outcome::Success)
            .actor("admin", admin.username)
            .source_ip(hub.source_address(peer.ip(), &headers).to_string())
            .reason("signed out of the console"),
    )
    .await?;
    let mut response = Redirect::to(&format!("{PREFIX}/login?signed_out=1")).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie(&hub, SESSION_COOKIE, "", Some(0)),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole_and_never_empty() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("", ""));
    }

    #[test]
    fn only_console_paths_are_returned_to() {
        assert!(safe_next("/console/agents?tag=x"));
        assert!(!safe_next("https://evil.example/console/"));
        assert!(!safe_next("/console//evil.example"));
        assert!(!safe_next("/oauth/token"));
    }
}
