//! Signing out of the hub: `GET /logout` shows a button, `POST /logout`
//! ends the browser's sign-in session (the store forgets it, so a copied
//! cookie is worthless too) and clears its cookie. Applications keep the
//! tokens they were given; only the next authorization asks for a password.

use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::context;

use crate::audit::event::{AuditEvent, Outcome};
use crate::error::OAuthError;
use crate::hub::Hub;
use crate::pages::{error_page, render};

type Peer = ConnectInfo<std::net::SocketAddr>;

/// `GET /logout`: the sign-out button.
pub async fn page(State(hub): State<Arc<Hub>>) -> Response {
    render(
        &hub.pages,
        StatusCode::OK,
        "signout.html",
        context! { action => hub.endpoint("/logout"), signed_out => false },
    )
    .unwrap_or_else(|err| error_page(&hub.pages, &OAuthError::from(err)))
}

/// `POST /logout`: from the hub's own page only (the same-origin check every
/// form of the hub makes), so another site cannot sign the user out.
pub async fn sign_out(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Response {
    let result = async {
        crate::web_guard::same_origin(&hub, &headers)
            .map_err(|why| OAuthError::AccessDenied(why.into()))?;
        let (user, cleared) = crate::oauth::signin::end(&hub, &headers).await?;
        let source = hub.source_address(peer.ip(), &headers);
        let event = match &user {
            Some(user) => AuditEvent::new("user.logout", Outcome::Success)
                .actor("user", user.clone())
                .user(user.clone())
                .reason("the user signed out; the sign-in session is ended"),
            None => AuditEvent::new("user.logout", Outcome::Failure)
                .actor("anonymous", None)
                .reason("sign-out without a live sign-in session"),
        };
        hub.audit(event.source_ip(source.to_string())).await?;
        let mut response = render(
            &hub.pages,
            StatusCode::OK,
            "signout.html",
            context! { action => hub.endpoint("/logout"), signed_out => true },
        )?;
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, cleared);
        Ok::<_, OAuthError>(response)
    }
    .await;
    result.unwrap_or_else(|err| error_page(&hub.pages, &err))
}
