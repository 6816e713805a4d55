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
use crate::model::Authentication;
use crate::store::authorizations::{AuthorizationRequest, SigninSession};
use crate::web_guard::{cookie, read_cookie, SameSite};

/// The sign-in session cookie.
pub const SIGNIN_COOKIE: &str = "hub_signin";

/// A new session for `user_id`: its digest (for the request) and the
/// `Set-Cookie` value that hands it to the browser. It lasts the hub's
/// configured sign-in lifetime unless it is ended or left idle.
pub async fn start(
    hub: &Hub,
    user_id: &str,
    authentication: &Authentication,
) -> Result<(String, HeaderValue), HubError> {
    let id = crate::random::secret();
    let id_hash = crate::random::sha256_b64url(&id);
    let lifetime = i64::from(hub.config.signin_lifetime);
    hub.store
        .insert_signin_session(
            &id_hash,
            user_id,
            authentication,
            authentication.auth_time.saturating_add(lifetime),
        )
        .await?;
    let set_cookie = flow_cookie(hub, SIGNIN_COOKIE, Some(&id), lifetime);
    Ok((id_hash, set_cookie))
}

/// The user proved who they are (`how`) for `request`: the session starts,
/// the request is theirs and bound to it, and the browser goes on to consent
/// (the page `then` names instead, when given: the recovery codes shown
/// once). The one ending of every way of signing in: a password, a second
/// factor, a tenant's identity provider.
pub async fn signed_in(
    hub: &Hub,
    request: &AuthorizationRequest,
    user_id: &str,
    how: &Authentication,
    then: Option<axum::response::Response>,
) -> Result<axum::response::Response, HubError> {
    use axum::response::IntoResponse;
    let (session_hash, set_cookie) = start(hub, user_id, how).await?;
    hub.store
        .set_request_user(&request.id, user_id, Some((&session_hash, how)))
        .await?;
    let mut response = then.unwrap_or_else(|| {
        axum::response::Redirect::to(&consent_url(hub, request)).into_response()
    });
    response
        .headers_mut()
        .append(axum::http::header::SET_COOKIE, set_cookie);
    Ok(response)
}

/// The consent page of `request`.
pub fn consent_url(hub: &Hub, request: &AuthorizationRequest) -> String {
    format!("{}?request={}", hub.endpoint("/consent"), request.id)
}

/// A `Set-Cookie` for one of the sign-in pages' cookies (under the issuer's
/// path, SameSite=Lax so the redirect flow carries it); `None` clears it.
pub fn flow_cookie(hub: &Hub, name: &str, value: Option<&str>, max_age: i64) -> HeaderValue {
    match value {
        Some(value) => cookie(
            hub,
            name,
            value,
            &cookie_path(hub),
            SameSite::Lax,
            Some(max_age),
        ),
        None => cookie(hub, name, "", &cookie_path(hub), SameSite::Lax, Some(0)),
    }
}

/// The browser's live sign-in, if it presents one: the session's digest
/// and whose it is. Reading it counts as use (the idle timeout restarts).
pub async fn current(
    hub: &Hub,
    headers: &HeaderMap,
) -> Result<Option<(String, SigninSession)>, HubError> {
    let Some(presented) = read_cookie(headers, SIGNIN_COOKIE) else {
        return Ok(None);
    };
    let id_hash = crate::random::sha256_b64url(presented);
    let session = hub
        .store
        .live_signin_session(
            &id_hash,
            hub.clock.now(),
            i64::from(hub.config.signin_idle_timeout),
        )
        .await?;
    Ok(session.map(|s| (id_hash, s)))
}

/// Ends the browser's sign-in: the session is gone from the store (so a
/// copied cookie is worthless too) and the cookie is cleared. Its user, if
/// there was a live one.
pub async fn end(
    hub: &Hub,
    headers: &HeaderMap,
) -> Result<(Option<String>, HeaderValue), HubError> {
    let user = match read_cookie(headers, SIGNIN_COOKIE) {
        Some(presented) if !hub.faults.on(Fault::SignoutKeepsSession) => {
            hub.store
                .end_signin_session(&crate::random::sha256_b64url(presented))
                .await?
        }
        _ => None,
    };
    Ok((user, flow_cookie(hub, SIGNIN_COOKIE, None, 0)))
}

/// What an authorization request asks of the sign-in: OpenID Connect Core
/// §3.1.2.1 `prompt` and `max_age`, which the hub honours in plain OAuth too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prompt {
    /// `prompt=none`: show no page; `login_required` or `consent_required`
    /// back to the client when one would be needed.
    pub none: bool,
    /// `prompt=login`: sign in again even with a live sign-in.
    pub login: bool,
    /// `max_age`: a sign-in this many seconds old or older is not reused.
    pub max_age: Option<i64>,
}

impl Prompt {
    /// Reads `prompt` (space-delimited; `none` only alone) and `max_age` (a
    /// non-negative integer). Other prompt values (`consent`,
    /// `select_account`) ask nothing more of the hub's pages: the consent
    /// page already shows every scope not consented to.
    pub fn of(params: &crate::params::Params) -> Result<Prompt, OAuthError> {
        let values: Vec<&str> = params
            .get("prompt")?
            .map(|p| p.split_ascii_whitespace().collect())
            .unwrap_or_default();
        let none = values.contains(&"none");
        if none && values.len() > 1 {
            return Err(OAuthError::InvalidRequest(
                "prompt=none cannot be combined with other prompt values".into(),
            ));
        }
        let max_age = match params.get("max_age")? {
            None => None,
            Some(text) => Some(text.parse::<u32>().map(i64::from).map_err(|_| {
                OAuthError::InvalidRequest(
                    "max_age must be a non-negative number of seconds".into(),
                )
            })?),
        };
        Ok(Prompt {
            none,
            login: values.contains(&"login"),
            max_age,
        })
    }
}

/// The browser's sign-in, when this request may reuse it: none when
/// `prompt=login`, or when it is older than `max_age`.
pub async fn reusable(
    hub: &Hub,
    headers: &HeaderMap,
    prompt: &Prompt,
) -> Result<Option<(String, SigninSession)>, HubError> {
    if hub.faults.on(Fault::SigninSessionIgnored)
        || (prompt.login && !hub.faults.on(Fault::PromptLoginIgnored))
    {
        return Ok(None);
    }
    let now = hub.clock.now();
    Ok(current(hub, headers)
        .await?
        .filter(|(_, session)| match prompt.max_age {
            // Reused only while younger than max_age: the clock counts whole
            // seconds, and a sign-in a fraction of a second old is already
            // older than 0 (so max_age=0 always signs in again).
            Some(max_age) if !hub.faults.on(Fault::MaxAgeIgnored) => {
                now.saturating_sub(session.authentication.auth_time) < max_age
            }
            _ => true,
        }))
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
    match current(hub, headers).await? {
        Some((presented, session)) if &presented == expected && &session.user_id == user_id => {
            Ok(())
        }
        _ => Err(refused()),
    }
}
