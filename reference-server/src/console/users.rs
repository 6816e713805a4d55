//! Users: who can sign in, how (a password, a second factor, a tenant's
//! identity provider), their live sign-in sessions and the identities their
//! providers vouched for; an administrator can end a session (a lost laptop,
//! a departure) without touching the user's tokens.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use minijinja::{context, Value};
use serde_json::json;

use crate::audit::event::{AuditEvent, Outcome};
use crate::console::common::{message, view, Admin, Page, PREFIX};
use crate::hub::Hub;

fn href(id: &str) -> String {
    format!(
        "{PREFIX}/users/{}",
        url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    )
}

/// `GET /console/users`.
pub(crate) async fn list(State(hub): State<Arc<Hub>>, Admin(admin): Admin) -> Page {
    let now = hub.clock.now();
    let idle = i64::from(hub.config.signin_idle_timeout);
    let mut users = Vec::new();
    for user in hub.store.users().await? {
        let sessions = hub
            .store
            .live_signin_sessions_of(&user.id, now, idle)
            .await?;
        let identities = hub.store.identities_of(&user.id).await?;
        users.push(json!({
            "href": href(&user.id),
            "username": user.username,
            "name": user.name,
            "tenants": user.tenants,
            "roles": user.roles,
            "second_factor": hub.store.totp_factor(&user.id).await?.is_some(),
            "sso": identities.iter().map(|i| i.issuer.clone()).collect::<Vec<_>>(),
            "sessions": sessions.len(),
        }));
    }
    view(
        &hub,
        &admin,
        "users",
        "console/users.html",
        context! { users => Value::from_serialize(&users) },
    )
}

/// `GET /console/users/{id}`.
pub(crate) async fn show(
    State(hub): State<Arc<Hub>>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Page {
    let Some(user) = hub.store.user_by_id(&id).await? else {
        return Ok(message(
            &hub,
            Some(&admin),
            StatusCode::NOT_FOUND,
            "No such user",
            &format!("No user has the id {id}."),
        ));
    };
    let now = hub.clock.now();
    let sessions: Vec<_> = hub
        .store
        .live_signin_sessions_of(&user.id, now, i64::from(hub.config.signin_idle_timeout))
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "started": s.created_at,
                "last_seen": s.last_seen_at,
                "ends": s.expires_at,
                "amr": s.amr,
                "end_href": format!("{}/sessions/{}/end", href(&user.id), s.id_hash),
            })
        })
        .collect();
    let factor = hub.store.totp_factor(&user.id).await?;
    let recovery_left = match &factor {
        Some(_) => hub.store.recovery_codes_left(&user.id).await?,
        None => 0,
    };
    let required = crate::oauth::second_factor::required_for(&hub, &user).await?;
    view(
        &hub,
        &admin,
        "users",
        "console/user.html",
        context! {
            user => Value::from_serialize(json!({
                "id": user.id,
                "username": user.username,
                "name": user.name,
                "email": user.email,
                "tenants": user.tenants,
                "roles": user.roles,
                "groups": user.claims.get("groups"),
            })),
            second_factor => Value::from_serialize(json!({
                "required": required,
                "enrolled_at": factor.as_ref().map(|f| f.enrolled_at),
                "recovery_codes_left": recovery_left,
            })),
            identities => Value::from_serialize(&hub.store.identities_of(&user.id).await?),
            sessions => Value::from_serialize(&sessions),
            audit_href => format!("{PREFIX}/audit?{}", crate::console::common::query(&[("user", &user.id)])),
        },
    )
}

/// `GET /console/users/{id}/sessions/{session}/end`: what will happen, and a button.
pub(crate) async fn confirm_end(
    State(hub): State<Arc<Hub>>,
    Admin(admin): Admin,
    Path((id, session)): Path<(String, String)>,
) -> Page {
    view(
        &hub,
        &admin,
        "users",
        "console/confirm.html",
        context! {
            title => "End this sign-in session?",
            consequences => vec![
                "The browser holding it is signed out of the hub: its next authorization asks the user to sign in again.".to_owned(),
                "Tokens already issued to applications are not touched: revoke consents for that.".to_owned(),
                "The event is written to the audit trail.".to_owned(),
            ],
            action => format!("{}/sessions/{session}/end", href(&id)),
            button => "End session",
            cancel => href(&id),
        },
    )
}

/// `POST /console/users/{id}/sessions/{session}/end` (after the guard's CSRF check).
pub(crate) async fn end(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Admin(admin): Admin,
    Path((id, session)): Path<(String, String)>,
    headers: HeaderMap,
) -> Page {
    if !hub.store.end_user_signin_session(&id, &session).await? {
        return Ok(message(
            &hub,
            Some(&admin),
            StatusCode::NOT_FOUND,
            "No such session",
            "That sign-in session has already ended; nothing was changed.",
        ));
    }
    hub.audit(
        AuditEvent::new("user.session.ended", Outcome::Success)
            .actor("admin", admin.username.clone())
            .user(id.clone())
            .source_ip(hub.source_address(peer.ip(), &headers).to_string())
            .reason("an administrator ended the sign-in session in the console"),
    )
    .await?;
    Ok(Redirect::to(&href(&id)).into_response())
}
