//! Connecting a Connection in a browser: the hub acts as an OAuth client of
//! the third-party provider (RFC 6749 §4.1) for the signed-in user, with
//! PKCE S256 (RFC 7636 §4.3) and a single-use `state` (RFC 6749 §10.12),
//! and stores the tokens it gets in the vault for that user.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;

use crate::audit::event::{AuditEvent, Outcome};
use crate::error::OAuthError;
use crate::fault::Fault;
use crate::hub::Hub;
use crate::pages::{error_page, render};
use crate::params::Params;
use crate::vault::connection::{Connection, ConnectionKind, Credential, Owner, RESOURCE_PREFIX};
use crate::vault::pending::PendingConnect;

/// One callback per connection: a code or state sent back for one provider
/// can never complete another connection's flow (a mix-up).
fn redirect_uri(hub: &Hub, connection_id: &str) -> String {
    hub.endpoint(&format!("/connections/{connection_id}/callback"))
}

/// The hub as a provider's OAuth client: authorization and token endpoints set.
type ProviderClient = BasicClient<
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn provider_client(hub: &Hub, connection: &Connection) -> Result<ProviderClient, OAuthError> {
    let unusable = || {
        OAuthError::InvalidRequest(format!(
            "connection {} cannot be connected in a browser: it needs an authorization and a token endpoint",
            connection.id
        ))
    };
    let auth = connection
        .authorization_endpoint
        .clone()
        .and_then(|u| AuthUrl::new(u).ok())
        .ok_or_else(unusable)?;
    let token = connection
        .token_endpoint
        .clone()
        .and_then(|u| TokenUrl::new(u).ok())
        .ok_or_else(unusable)?;
    let redirect =
        RedirectUrl::new(redirect_uri(hub, &connection.id)).map_err(|_| OAuthError::ServerError)?;
    let mut client = BasicClient::new(ClientId::new(
        connection.client_id.clone().unwrap_or_default(),
    ))
    .set_auth_uri(auth)
    .set_token_uri(token)
    .set_redirect_uri(redirect);
    if let Some(secret) = &connection.client_secret {
        client = client.set_client_secret(ClientSecret::new(secret.clone()));
    }
    Ok(client)
}

async fn oauth2_connection(hub: &Hub, id: &str) -> Result<Connection, OAuthError> {
    match hub.connection(id).await? {
        Some(c) if c.kind == ConnectionKind::Oauth2 => Ok(c),
        Some(_) => Err(OAuthError::InvalidRequest(format!(
            "connection {id} holds an API key; an administrator stores it"
        ))),
        None => Err(OAuthError::InvalidTarget(format!(
            "there is no connection `{id}`"
        ))),
    }
}

fn connect_page(
    hub: &Hub,
    connection: &Connection,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    render(
        &hub.pages,
        status,
        "connect.html",
        context! {
            connection_name => connection.name,
            scopes => connection.scopes,
            action => hub.endpoint(&format!("/connections/{}/connect", connection.id)),
            error => error,
        },
    )
    .unwrap_or_else(|e| OAuthError::from(e).into_response())
}

/// `GET /oauth/connections/{id}/connect`: the sign-in page that starts it.
pub async fn connect_form(State(hub): State<Arc<Hub>>, Path(id): Path<String>) -> Response {
    match oauth2_connection(&hub, &id).await {
        Ok(connection) => connect_page(&hub, &connection, None, StatusCode::OK),
        Err(err) => error_page(&hub.pages, &err),
    }
}

/// `POST /oauth/connections/{id}/connect`: signs the user in and sends the
/// browser to the provider with PKCE and a fresh `state`.
pub async fn connect_submit(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let result = async {
        // A foreign page must not bind its author's provider account to the
        // user who signs in here (RFC 6749 §10.12).
        if !hub.faults.on(Fault::ConnectAcceptsForeignOrigin) {
            crate::web_guard::same_origin(&hub, &headers)
                .map_err(|why| OAuthError::AccessDenied(why.into()))?;
        }
        let connection = oauth2_connection(&hub, &id).await?;
        let client = provider_client(&hub, &connection)?;
        let params = Params::parse(&body)?;
        let source = hub.source_address(peer.ip(), &headers);
        let (reason, message, status) =
            match crate::credentials::sign_in(&hub, &params, source).await? {
                crate::credentials::SignIn::User(user) => {
                    return connect_signed_in(&hub, &connection, &client, *user, source).await
                }
                crate::credentials::SignIn::Refused => (
                    "unknown user or wrong password".to_owned(),
                    "Unknown user or wrong password.".to_owned(),
                    StatusCode::UNAUTHORIZED,
                ),
                crate::credentials::SignIn::Throttled { retry_after } => (
                    crate::lockout::throttled_reason(retry_after),
                    crate::lockout::throttled_message(retry_after),
                    StatusCode::TOO_MANY_REQUESTS,
                ),
            };
        hub.audit(
            AuditEvent::new("user.login", Outcome::Failure)
                .actor("user", None)
                .resource(connection.resource())
                .source_ip(source.to_string())
                .reason(reason),
        )
        .await?;
        Ok(connect_page(&hub, &connection, Some(&message), status))
    }
    .await;
    result.unwrap_or_else(|err| error_page(&hub.pages, &err))
}

/// The user signed in at the connect form: off to the provider, with PKCE and a fresh state.
async fn connect_signed_in(
    hub: &Hub,
    connection: &Connection,
    client: &ProviderClient,
    user: crate::model::User,
    source: std::net::IpAddr,
) -> Result<Response, OAuthError> {
    hub.audit(
        AuditEvent::new("user.login", Outcome::Success)
            .actor("user", user.id.clone())
            .user(user.id.clone())
            .tenant(user.primary_tenant().map(str::to_owned))
            .resource(connection.resource())
            .source_ip(source.to_string()),
    )
    .await?;
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(connection.scopes.iter().cloned().map(Scope::new));
    let mut verifier = None;
    if !hub.faults.on(Fault::ConnectWithoutPkce) {
        let (challenge, v) = PkceCodeChallenge::new_random_sha256();
        request = request.set_pkce_challenge(challenge);
        verifier = Some(v.secret().clone());
    }
    let (url, state) = request.url();
    hub.pending_connects.push(
        PendingConnect {
            state: state.secret().clone(),
            verifier,
            user_id: user.id.clone(),
            connection_id: connection.id.clone(),
            created_at: hub.clock.now(),
        },
        hub.clock.now(),
    );
    Ok(Redirect::to(url.as_str()).into_response())
}

#[derive(Debug, Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /oauth/connections/{id}/callback`: the provider sends the browser
/// back; the code is redeemed with the PKCE verifier and the tokens are sealed.
pub async fn callback(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(connection_id): Path<String>,
    Query(query): Query<Callback>,
) -> Response {
    let refused = |resource: Option<String>, reason: String| {
        AuditEvent::new("connection.token.stored", Outcome::Failure)
            .actor("user", None)
            .resource(resource)
            .source_ip(peer.ip().to_string())
            .reason(reason)
    };
    let now = hub.clock.now();
    let Some(pending) = query.state.as_deref().and_then(|s| {
        hub.pending_connects.take(
            &connection_id,
            s,
            now,
            hub.faults.on(Fault::ConnectIgnoresState),
        )
    }) else {
        let err = OAuthError::InvalidRequest(
            "this connect attempt is unknown, expired or already used (state mismatch)".into(),
        );
        let resource = Some(format!("{RESOURCE_PREFIX}{connection_id}"));
        if let Err(e) = hub
            .audit(refused(resource, err.description().to_owned()))
            .await
        {
            return OAuthError::from(e).into_response();
        }
        return error_page(&hub.pages, &err);
    };
    let resource = format!("{RESOURCE_PREFIX}{}", pending.connection_id);
    let result = async {
        if let Some(error) = query.error {
            return Err(OAuthError::AccessDenied(format!(
                "the provider answered {error}: nothing was stored"
            )));
        }
        let code = query
            .code
            .ok_or_else(|| OAuthError::InvalidRequest("the provider sent no code".into()))?;
        let connection = oauth2_connection(&hub, &pending.connection_id).await?;
        let client = provider_client(&hub, &connection)?;
        let mut exchange = client.exchange_code(AuthorizationCode::new(code));
        if let Some(verifier) = &pending.verifier {
            exchange = exchange.set_pkce_verifier(PkceCodeVerifier::new(verifier.clone()));
        }
        let response = exchange.request_async(&hub.provider_http).await.map_err(|e| {
            tracing::warn!(connection = %connection.id, error = %e, "connect: code redemption failed");
            OAuthError::ProviderUnavailable {
                description: "the provider did not redeem the authorization code".into(),
                timed_out: false,
            }
        })?;
        let now = hub.clock.now();
        let credential = Credential {
            access_token: Some(response.access_token().secret().clone()),
            refresh_token: response.refresh_token().map(|r| r.secret().clone()),
            api_key: None,
            expires_at: response.expires_in().map(|d| now + d.as_secs() as i64),
            scopes: response
                .scopes()
                .map(|s| s.iter().map(|s| s.to_string()).collect())
                .unwrap_or_else(|| connection.scopes.clone()),
            metadata: serde_json::Value::Null,
        };
        let owner = Owner::User(pending.user_id.clone());
        hub.put_connection_token(&connection.id, &owner, "", &credential, None)
            .await?;
        let user = hub.store.user_by_id(&pending.user_id).await?;
        hub.audit(
            AuditEvent::new("connection.token.stored", Outcome::Success)
                .actor("user", pending.user_id.clone())
                .user(pending.user_id.clone())
                .tenant(user.as_ref().and_then(|u| u.primary_tenant().map(str::to_owned)))
                .resource(connection.resource())
                .scopes(&connection.scopes, &credential.scopes)
                .source_ip(peer.ip().to_string())
                .reason("connected in the browser (authorization code with PKCE)"),
        )
        .await?;
        render(
            &hub.pages,
            StatusCode::OK,
            "connected.html",
            context! {
                connection_name => connection.name,
                username => user.map(|u| u.username).unwrap_or_default(),
                scopes => credential.scopes,
            },
        )
        .map_err(OAuthError::from)
    }
    .await;
    match result {
        Ok(page) => page,
        Err(err) => {
            if let Err(e) = hub
                .audit(refused(Some(resource), err.description().to_owned()))
                .await
            {
                return OAuthError::from(e).into_response();
            }
            error_page(&hub.pages, &err)
        }
    }
}
