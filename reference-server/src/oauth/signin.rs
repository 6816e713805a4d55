//! The user's sign-in at the authorization pages, and the binding of each
//! authorization request to the browser that signed in for it.
//!
//! The consent page and the consent decision are addressed by the request's
//! handle, which travels in URLs and forms. Without a binding, anyone who
//! learnt the handle (a shoulder, a log, a referrer) could post "approve" for
//! the signed-in user (RFC 6749 §10.12: no authorization without the resource
//! owner's awareness). So a successful sign-in starts a session whose cookie
//! (HttpOnly, SameSite=Lax, under the issuer's path) only the user's browser
//! holds, the request records that session, and consent answers only to it.

use axum::http::{HeaderMap, HeaderValue};

use crate::error::{HubError, OAuthError};
use crate::fault::Fault;
use crate::hub::Hub;
use crate::store::authorizations::AuthorizationRequest;
use crate::web_guard::{cookie, read_cookie, SameSite};

/// The sign-in session cookie.
pub const SIGNIN_COOKIE: &str = "hub_signin";
/// How long a sign-in lasts, on the hub clock.
pub const SIGNIN_TTL: i64 = 8 * 3600;

/// A new session for `user_id`: its digest (for the request) and the
/// `Set-Cookie` value that hands it to the browser.
pub async fn start(hub: &Hub, user_id: &str) -> Result<(String, HeaderValue), HubError> {
    let id = crate::random::secret();
    let id_hash = crate::random::sha256_b64url(&id);
    let now = hub.clock.now();
    hub.store
        .insert_signin_session(&id_hash, user_id, now, now.saturating_add(SIGNIN_TTL))
        .await?;
    let set_cookie = cookie(
        hub,
        SIGNIN_COOKIE,
        &id,
        &cookie_path(hub),
        SameSite::Lax,
        Some(SIGNIN_TTL),
    );
    Ok((id_hash, set_cookie))
}

/// The pages under the issuer share the cookie; nothing else of the hub sees it.
fn cookie_path(hub: &Hub) -> String {
    url::Url::parse(&hub.issuer)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".to_owned())
}

/// Refuses a consent page or decision that does not come from the browser
/// that signed in for `request`.
pub async fn require_same_browser(
    hub: &Hub,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
) -> Result<(), OAuthError> {
    if hub.faults.on(Fault::ConsentWithoutSession) {
        return Ok(());
    }
    let refused = || {
        OAuthError::AccessDenied(
            "this authorization was signed in from another browser, or the sign-in has ended; start again from the application".into(),
        )
    };
    let (Some(expected), Some(user_id)) = (&request.session_hash, &request.user_id) else {
        return Err(refused());
    };
    let presented = read_cookie(headers, SIGNIN_COOKIE).ok_or_else(refused)?;
    let presented = crate::random::sha256_b64url(presented);
    if &presented != expected {
        return Err(refused());
    }
    match hub
        .store
        .signin_session_user(&presented, hub.clock.now())
        .await?
    {
        Some(owner) if &owner == user_id => Ok(()),
        _ => Err(refused()),
    }
}
