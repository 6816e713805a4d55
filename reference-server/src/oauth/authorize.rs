//! The authorization endpoint (RFC 6749 §4.1.1, OAuth 2.1 §4.1) and the login
//! and consent pages that stand between the request and the redirect back.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use url::Url;

use crate::audit::event::{AuditEvent, Outcome};
use crate::credentials::SignIn;
use crate::error::{HubError, OAuthError};
use crate::fault::Fault;
use crate::hub::Hub;
use crate::model::{Authentication, Client, Consent};
use crate::pages::{error_page, render};
use crate::params::{split_scopes, Params};
use crate::store::authorizations::{AuthorizationCode, AuthorizationRequest};
use crate::variant::Variant;

type Peer = ConnectInfo<std::net::SocketAddr>;

/// Sends the user back to the client with the outcome in the query (RFC 6749 §4.1.2, RFC 9207 §2).
fn redirect_back(
    hub: &Hub,
    redirect_uri: &str,
    state: Option<&str>,
    outcome: &[(&str, &str)],
) -> Response {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        return error_page(
            &hub.pages,
            &OAuthError::InvalidRequest("the redirect URI is not valid".into()),
        );
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in outcome {
            query.append_pair(k, v);
        }
        if let Some(state) = state.filter(|_| !hub.faults.on(Fault::DropState)) {
            query.append_pair("state", state);
        }
        let is_error = outcome.iter().any(|(k, _)| *k == "error");
        let omitted = hub.faults.on(Fault::OmitIssInResponse)
            || (is_error && hub.faults.on(Fault::ErrorResponseOmitsIss));
        if !omitted {
            query.append_pair("iss", &hub.issuer);
        }
    }
    let mut response = Redirect::to(url.as_str()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

fn redirect_error(
    hub: &Hub,
    redirect_uri: &str,
    state: Option<&str>,
    err: &OAuthError,
) -> Response {
    redirect_back(
        hub,
        redirect_uri,
        state,
        &[
            ("error", err.code()),
            ("error_description", err.description()),
        ],
    )
}

/// Exact string comparison (OAuth 2.1 §2.3.1); the fault swaps in a prefix match.
fn redirect_matches(hub: &Hub, registered: &str, presented: &str) -> bool {
    if hub.faults.on(Fault::LooseRedirectMatch) {
        presented.starts_with(registered)
    } else {
        registered == presented
    }
}

/// A `code_challenge` must be 43 to 128 unreserved characters (RFC 7636 §4.2).
fn valid_challenge(challenge: &str) -> bool {
    (43..=128).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `GET /authorize`.
pub async fn authorize(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let raw = |name: &str| {
        Params::from_query(uri.query())
            .ok()
            .and_then(|p| p.get(name).ok().flatten().map(str::to_owned))
    };
    if hub.faults.on(Fault::AuthorizeStallsOnLongState)
        && raw("state").is_some_and(|state| state.len() > 1024)
    {
        std::future::pending::<()>().await;
    }
    match authorize_inner(&hub, &peer, &headers, &uri).await {
        Ok(response) => response,
        Err(err) if hub.faults.on(Fault::ErrorPageReflectsRequest) => {
            crate::pages::error_page_echoing(
                &hub.pages,
                &err,
                &raw("redirect_uri").unwrap_or_default(),
            )
        }
        Err(err) => error_page(&hub.pages, &err),
    }
}

async fn authorize_inner(
    hub: &Hub,
    peer: &std::net::SocketAddr,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Response, OAuthError> {
    let params = Params::from_query(uri.query())?;
    let refuse = |client: Option<&Client>, reason: String| {
        AuditEvent::new("authorization.refused", Outcome::Failure)
            .actor("client", client.map(|c| c.client_id.clone()))
            .client(client.map(|c| c.client_id.clone()))
            .reason(reason)
            .source_ip(peer.ip().to_string())
    };

    // Until client and redirect URI are established, errors stay on the hub (RFC 6749 §4.1.2.1).
    let client_id = params.require("client_id")?;
    let client = if crate::oauth::cimd::is_metadata_url(client_id) {
        match crate::oauth::cimd::resolve(hub, client_id).await {
            Ok(client) => Some(client),
            Err(err) => {
                hub.audit(
                    AuditEvent::new("client.registered", Outcome::Failure)
                        .actor("anonymous", None)
                        .client(client_id.to_owned())
                        .reason(format!("client metadata document refused: {err}"))
                        .source_ip(peer.ip().to_string()),
                )
                .await?;
                return Err(err.into());
            }
        }
    } else {
        hub.store.client(client_id).await?
    };
    let Some(client) = client else {
        hub.audit(refuse(None, format!("unknown client_id `{client_id}`")))
            .await?;
        let err = OAuthError::InvalidRequest("the client_id is not registered".into());
        if hub.faults.on(Fault::UnknownClientRedirects) {
            if let Some(redirect_uri) = params.get("redirect_uri")? {
                return Ok(redirect_error(
                    hub,
                    redirect_uri,
                    params.get("state")?,
                    &err,
                ));
            }
        }
        return Err(err);
    };
    let redirect_uri = match params.get("redirect_uri")? {
        Some(presented) => {
            let listed = client
                .redirect_uris
                .iter()
                .any(|r| redirect_matches(hub, r, presented));
            let waived = client.trust_level == crate::model::TrustLevel::Cimd
                && hub.faults.on(Fault::CimdAnyRedirect);
            if !listed && !waived {
                hub.audit(refuse(
                    Some(&client),
                    "redirect_uri does not match a registered one".into(),
                ))
                .await?;
                return Err(OAuthError::InvalidRequest(
                    "the redirect_uri does not exactly match a registered redirect URI".into(),
                ));
            }
            presented.to_owned()
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            return Err(OAuthError::InvalidRequest(
                "redirect_uri is required when several are registered".into(),
            ))
        }
    };
    let state = params.get("state").ok().flatten();

    let checked = match check_request(hub, &client, &params).await {
        Ok(checked) => crate::oauth::signin::Prompt::of(&params).map(|prompt| (checked, prompt)),
        Err(err) => Err(err),
    };
    match checked {
        Ok(((resource, scopes, code_challenge), prompt)) => {
            let now = hub.clock.now();
            let mut request = AuthorizationRequest {
                id: crate::random::secret(),
                client_id: client.client_id.clone(),
                redirect_uri,
                resource,
                scopes,
                state: state.map(str::to_owned),
                code_challenge,
                correlation_id: crate::random::ordered_id("flow"),
                user_id: None,
                session_hash: None,
                authentication: None,
                expires_at: now + i64::from(hub.config.request_ttl),
                completed: false,
            };
            hub.store
                .insert_authorization_request(&request, now)
                .await?;
            let reusable = match crate::oauth::signin::reusable(hub, headers, &prompt).await? {
                // A sign-in by the password alone does not do for a user
                // who now owes a second factor: they sign in again.
                Some((hash, session))
                    if crate::oauth::second_factor::session_suffices(hub, &session).await? =>
                {
                    Some((hash, session))
                }
                _ => None,
            };
            let Some((session_hash, session)) = reusable else {
                if prompt.none && !hub.faults.on(Fault::PromptNoneShowsLogin) {
                    complete(hub, &request).await?;
                    let err = OAuthError::LoginRequired(
                        "prompt=none, and the user is not signed in here (or must sign in again)"
                            .into(),
                    );
                    hub.audit(
                        refuse(Some(&client), err.to_string())
                            .correlation(request.correlation_id.clone()),
                    )
                    .await?;
                    return Ok(redirect_error(hub, &request.redirect_uri, state, &err));
                }
                return Ok(Redirect::to(&format!(
                    "{}?request={}",
                    hub.endpoint("/login"),
                    request.id
                ))
                .into_response());
            };
            // The browser is signed in: no password; on to consent, which
            // sends it straight back when the consent is remembered.
            hub.store
                .set_request_user(
                    &request.id,
                    &session.user_id,
                    Some((&session_hash, &session.authentication)),
                )
                .await?;
            hub.audit(
                AuditEvent::new("user.session.reused", Outcome::Success)
                    .actor("user", session.user_id.clone())
                    .user(session.user_id.clone())
                    .client(client.client_id.clone())
                    .resource(request.resource.clone())
                    .correlation(request.correlation_id.clone())
                    .reason(format!(
                        "signed in {} s ago; no password asked",
                        (now - session.authentication.auth_time).max(0)
                    ))
                    .source_ip(peer.ip().to_string()),
            )
            .await?;
            request.user_id = Some(session.user_id.clone());
            request.session_hash = Some(session_hash);
            request.authentication = Some(session.authentication.clone());
            if prompt.none {
                return consent_step(hub, &request, &client, &session.user_id, peer, true).await;
            }
            Ok(Redirect::to(&crate::oauth::signin::consent_url(hub, &request)).into_response())
        }
        Err(err) => {
            hub.audit(refuse(Some(&client), err.to_string())).await?;
            Ok(redirect_error(hub, &redirect_uri, state, &err))
        }
    }
}

/// The checks whose failures are reported to the client by redirect.
async fn check_request(
    hub: &Hub,
    client: &Client,
    params: &Params,
) -> Result<(String, Vec<String>, Option<String>), OAuthError> {
    match params.require("response_type")? {
        "code" => {}
        other => {
            return Err(OAuthError::UnsupportedResponseType(format!(
                "response_type `{other}` is not supported; use `code`"
            )))
        }
    }
    if !client.allows_grant("authorization_code") {
        return Err(OAuthError::UnauthorizedClient(
            "this client is not registered for the authorization_code grant".into(),
        ));
    }
    let challenge = params.get("code_challenge")?;
    let method = params.get("code_challenge_method")?;
    let code_challenge = match (challenge, method) {
        (None, _) if hub.faults.on(Fault::AllowMissingPkce) => None,
        (None, _) => {
            return Err(OAuthError::InvalidRequest(
                "code_challenge is required (PKCE)".into(),
            ))
        }
        (Some(c), Some("S256")) if valid_challenge(c) => Some(c.to_owned()),
        (Some(c), Some("plain") | None) if hub.faults.on(Fault::AcceptPlainPkce) => {
            Some(c.to_owned())
        }
        (Some(_), Some("S256")) => {
            return Err(OAuthError::InvalidRequest(
                "code_challenge must be 43 to 128 unreserved characters".into(),
            ))
        }
        (Some(_), _) => {
            return Err(OAuthError::InvalidRequest(
                "code_challenge_method must be S256; plain is not accepted".into(),
            ))
        }
    };

    let resource = params.get("resource")?.ok_or_else(|| {
        OAuthError::InvalidTarget("the resource parameter is required (RFC 8707)".into())
    })?;
    let requested = split_scopes(params.get("scope")?);
    let server = hub.server_for_resource(resource).await?;
    let scopes = match server {
        Some(server) => {
            if let Some(unknown) = requested.iter().find(|s| !server.scopes.contains(s)) {
                return Err(OAuthError::InvalidScope(format!(
                    "scope `{unknown}` is not offered by {}",
                    server.name
                )));
            }
            // The seeds' scope-request step: a scope the client's configuration
            // does not allow "returns an error" (the hub usually narrows instead).
            if hub.variants.on(Variant::RefuseScopeBeyondClientConfig) {
                let configured = crate::policy::scoping::configured_scopes(client, &server);
                if let Some(beyond) = requested.iter().find(|s| !configured.contains(s)) {
                    return Err(OAuthError::InvalidScope(format!(
                        "scope `{beyond}` is not in this client's configuration"
                    )));
                }
            }
            if requested.is_empty() {
                server.scopes.clone()
            } else {
                requested
            }
        }
        None if hub.faults.on(Fault::AcceptUnknownResource) => requested,
        None => {
            return Err(OAuthError::InvalidTarget(format!(
                "`{resource}` is not a resource protected by this authorization server"
            )))
        }
    };
    Ok((resource.to_owned(), scopes, code_challenge))
}

/// Loads a pending request that is still open, or explains why it cannot continue.
async fn open_request(
    hub: &Hub,
    params: &Params,
) -> Result<(AuthorizationRequest, Client), OAuthError> {
    let id = params.require("request")?;
    let request = hub
        .store
        .authorization_request(id)
        .await?
        .filter(|r| !r.completed && r.expires_at > hub.clock.now())
        .ok_or_else(|| {
            OAuthError::InvalidRequest(
                "this authorization request is unknown, finished or expired".into(),
            )
        })?;
    let client = hub
        .store
        .client(&request.client_id)
        .await?
        .ok_or_else(|| OAuthError::InvalidRequest("the client no longer exists".into()))?;
    Ok((request, client))
}

async fn resource_name(hub: &Hub, resource: &str) -> Result<String, HubError> {
    Ok(hub
        .server_for_resource(resource)
        .await?
        .map(|s| s.name)
        .unwrap_or_else(|| resource.to_owned()))
}

async fn login_page(
    hub: &Hub,
    request: &AuthorizationRequest,
    client: &Client,
    resource_name: &str,
    error: Option<(StatusCode, &str)>,
) -> Result<Response, HubError> {
    let (status, error) = match error {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    // "Continue with …" for each organisation that signs in at its own
    // identity provider.
    let providers: Vec<_> = hub
        .store
        .sso_tenants()
        .await?
        .into_iter()
        .map(|(tenant, config, _)| {
            let name = config.display_name.unwrap_or_else(|| tenant.clone());
            minijinja::context! { tenant => tenant, name => name }
        })
        .collect();
    render(
        &hub.pages,
        status,
        "login.html",
        context! {
            action => hub.endpoint("/login"),
            request_id => request.id,
            client_name => client.name,
            resource_name => resource_name,
            error => error,
            providers => providers,
        },
    )
}

/// `GET /login?request=…`.
pub async fn login_form(State(hub): State<Arc<Hub>>, uri: Uri) -> Response {
    let result = async {
        let params = Params::from_query(uri.query())?;
        let (request, client) = open_request(&hub, &params).await?;
        let name = resource_name(&hub, &request.resource).await?;
        Ok::<_, OAuthError>(login_page(&hub, &request, &client, &name, None).await?)
    }
    .await;
    result.unwrap_or_else(|err| error_page(&hub.pages, &err))
}

/// `POST /login`: checks the password and moves the request on to consent.
pub async fn login_submit(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        crate::web_guard::same_origin(&hub, &headers)
            .map_err(|why| OAuthError::AccessDenied(why.into()))?;
        let params = Params::parse(&body)?;
        let (request, client) = open_request(&hub, &params).await?;
        let source = hub.source_address(peer.ip(), &headers);
        // Home-realm discovery: a work e-mail of a tenant with its own
        // identity provider signs in there, not with a password here.
        let username = params.get("username")?.unwrap_or_default();
        // Or the page's "Continue with …" button of one organisation.
        if let Some(tenant) = params.get("sso")? {
            let provider = crate::oauth::sso::provider_of_tenant(&hub, tenant)
                .await?
                .ok_or_else(|| {
                    OAuthError::InvalidRequest("no organisation signs in that way here".into())
                })?;
            return crate::oauth::sso::start(&hub, &request, &provider, "", source).await;
        }
        if let Some(provider) = crate::oauth::sso::provider_for(&hub, username).await? {
            return crate::oauth::sso::start(&hub, &request, &provider, username.trim(), source)
                .await;
        }
        let user = crate::credentials::sign_in(&hub, &params, source).await?;
        let event = AuditEvent::new("user.login", Outcome::Success)
            .client(client.client_id.clone())
            .resource(request.resource.clone())
            .correlation(request.correlation_id.clone())
            .source_ip(source.to_string());
        let refusal = match user {
            SignIn::User(user) => {
                let second_factor = crate::oauth::second_factor::required_for(&hub, &user).await?;
                hub.audit(
                    event
                        .actor("user", user.id.clone())
                        .user(user.id.clone())
                        .tenant(user.primary_tenant().map(str::to_owned))
                        .reason(if second_factor {
                            "the right password; a second factor is required"
                        } else {
                            "the right password"
                        }),
                )
                .await?;
                if second_factor {
                    return Ok(
                        crate::oauth::second_factor::challenge(&hub, &request, &user).await?,
                    );
                }
                let how = Authentication::new(hub.clock.now(), vec!["pwd".to_owned()]);
                return Ok(
                    crate::oauth::signin::signed_in(&hub, &request, &user.id, &how, None).await?,
                );
            }
            SignIn::Refused => (
                "wrong username or password".to_owned(),
                StatusCode::UNAUTHORIZED,
                "Wrong username or password.".to_owned(),
            ),
            SignIn::Throttled { retry_after } => (
                crate::lockout::throttled_reason(retry_after),
                StatusCode::TOO_MANY_REQUESTS,
                crate::lockout::throttled_message(retry_after),
            ),
        };
        let (reason, status, message) = refusal;
        hub.audit(
            AuditEvent {
                outcome: Outcome::Failure.as_str().into(),
                ..event
            }
            .actor("anonymous", None)
            .reason(reason),
        )
        .await?;
        let name = resource_name(&hub, &request.resource).await?;
        Ok::<_, OAuthError>(
            login_page(&hub, &request, &client, &name, Some((status, &message))).await?,
        )
    }
    .await;
    result.unwrap_or_else(|err| error_page(&hub.pages, &err))
}

/// The scopes of `request` the user has already consented to for this client
/// and resource, in a consent that has neither expired nor been revoked.
async fn prior_consent(
    hub: &Hub,
    request: &AuthorizationRequest,
    user_id: &str,
) -> Result<Vec<String>, OAuthError> {
    if hub.faults.on(Fault::ForgetConsent) {
        return Ok(Vec::new());
    }
    let consent = hub
        .store
        .live_consent(
            user_id,
            &request.client_id,
            &request.resource,
            hub.clock.now(),
        )
        .await?;
    Ok(consent.map(|c| c.scopes).unwrap_or_default())
}

/// `GET /consent?request=…`: one checkbox per requested scope the user has not
/// already granted (step-up consent). When nothing is new, no page is shown.
pub async fn consent_form(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let result = async {
        let params = Params::from_query(uri.query())?;
        let (request, client) = open_request(&hub, &params).await?;
        crate::oauth::signin::require_same_browser(&hub, &headers, &request).await?;
        let user_id = request
            .user_id
            .clone()
            .ok_or_else(|| OAuthError::InvalidRequest("sign in first".into()))?;
        consent_step(&hub, &request, &client, &user_id, &peer, false).await
    }
    .await;
    result.unwrap_or_else(|err| error_page(&hub.pages, &err))
}

/// What follows the sign-in: the policies' decision, then the consent page
/// for scopes not yet consented to, or straight back with a code when every
/// one was. `silent` (prompt=none) shows no page: `consent_required` instead.
async fn consent_step(
    hub: &Hub,
    request: &AuthorizationRequest,
    client: &Client,
    user_id: &str,
    peer: &std::net::SocketAddr,
    silent: bool,
) -> Result<Response, OAuthError> {
    let user = hub
        .store
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| OAuthError::InvalidRequest("the user no longer exists".into()))?;
    let prior = prior_consent(hub, request, user_id).await?;
    let scoping = scoping_for(hub, request, client, &user).await?;
    audit_policy_decision(hub, request, client, &user, &scoping, peer).await?;
    if scoping.permitted.is_empty() {
        return deny_by_policy(hub, request, client, &user, &scoping, peer).await;
    }
    let (already, new): (Vec<String>, Vec<String>) = scoping
        .permitted
        .iter()
        .cloned()
        .partition(|s| prior.contains(s));
    if new.is_empty() && !already.is_empty() {
        return decide(hub, request, client, user_id, &[], peer).await;
    }
    // prompt=none: no page may be shown, so scopes never consented to
    // end the request (OIDC Core §3.1.2.6 consent_required).
    if silent {
        if hub.faults.on(Fault::PromptNoneSkipsConsent) {
            return decide(hub, request, client, user_id, &new, peer).await;
        }
        complete(hub, request).await?;
        let err = OAuthError::ConsentRequired(format!(
            "prompt=none, and the user has not consented to {}",
            new.join(" ")
        ));
        hub.audit(
            AuditEvent::new("authorization.refused", Outcome::Failure)
                .actor("user", user_id.to_owned())
                .user(user_id.to_owned())
                .client(client.client_id.clone())
                .resource(request.resource.clone())
                .correlation(request.correlation_id.clone())
                .reason(err.to_string())
                .source_ip(peer.ip().to_string()),
        )
        .await?;
        return Ok(redirect_error(
            hub,
            &request.redirect_uri,
            request.state.as_deref(),
            &err,
        ));
    }
    let redirect_host = Url::parse(&request.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    // A client whose every redirect URI is local could be any program on the user's machine.
    let localhost_only = client.redirect_uris.iter().all(|r| {
        Url::parse(r)
            .map(|u| crate::oauth::redirect_uri::is_loopback(u.host()))
            .unwrap_or(false)
    });
    let name = resource_name(hub, &request.resource).await?;
    // The scopes the MCP server cannot work without: shown as mandatory, with
    // no box to untick (unless the fault makes them optional).
    let required = required_scopes(hub, request).await?;
    let (mandatory, new): (Vec<String>, Vec<String>) = new
        .into_iter()
        .partition(|s| required.contains(s) && !hub.faults.on(Fault::MandatoryScopeOptional));
    Ok(render(
        &hub.pages,
        StatusCode::OK,
        "consent.html",
        context! {
        action => hub.endpoint("/consent"),
        request_id => request.id,
        client_name => client.name,
        trust_level => client.trust_level.as_str(),
        user_name => user.name,
        resource => request.resource,
        resource_name => name,
        redirect_host => redirect_host,
        localhost_only => localhost_only,
        scopes => new,
        mandatory => mandatory,
        already_granted => already,
        unavailable => scoping.unavailable,
        },
    )?)
}

/// The scopes of the request's MCP server that it cannot work without.
async fn required_scopes(
    hub: &Hub,
    request: &AuthorizationRequest,
) -> Result<Vec<String>, OAuthError> {
    Ok(hub
        .server_for_resource(&request.resource)
        .await?
        .map(|server| server.required_scopes)
        .unwrap_or_default())
}

/// `POST /consent`: issues the code for the approved scopes, or `access_denied`.
pub async fn consent_submit(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        crate::web_guard::same_origin(&hub, &headers)
            .map_err(|why| OAuthError::AccessDenied(why.into()))?;
        let params = Params::parse(&body)?;
        let (request, client) = open_request(&hub, &params).await?;
        crate::oauth::signin::require_same_browser(&hub, &headers, &request).await?;
        let user_id = request
            .user_id
            .clone()
            .ok_or_else(|| OAuthError::InvalidRequest("sign in first".into()))?;
        let approve = match params.require("decision")? {
            "approve" => true,
            "deny" => false,
            _ => {
                return Err(OAuthError::InvalidRequest(
                    "decision must be approve or deny".into(),
                ))
            }
        };
        if !approve {
            return deny(&hub, &request, &client, &user_id, &peer).await;
        }
        let checked = params.all("scope");
        // Declining a scope the MCP server cannot work without declines the
        // request: a token without it would be of no use.
        if !hub.faults.on(Fault::MandatoryScopeOptional) {
            let required = required_scopes(&hub, &request).await?;
            let prior = prior_consent(&hub, &request, &user_id).await?;
            let declined: Vec<&String> = request
                .scopes
                .iter()
                .filter(|s| required.contains(s) && !prior.contains(s))
                .filter(|s| !checked.contains(&s.as_str()))
                .collect();
            if let Some(scope) = declined.first() {
                complete(&hub, &request).await?;
                let tenant = hub
                    .store
                    .user_by_id(&user_id)
                    .await?
                    .and_then(|u| u.primary_tenant().map(str::to_owned));
                let reason = format!("the user declined `{scope}`, which the MCP server requires");
                return send_denial(
                    &hub, &request, &client, &user_id, tenant, &reason, &reason, &peer,
                )
                .await;
            }
        }
        let granted: Vec<String> = request
            .scopes
            .iter()
            .filter(|s| {
                checked.contains(&s.as_str()) || hub.faults.on(Fault::IgnoreUncheckedScopes)
            })
            .cloned()
            .collect();
        decide(&hub, &request, &client, &user_id, &granted, &peer).await
    }
    .await;
    result.unwrap_or_else(|err| error_page(&hub.pages, &err))
}

/// Client configuration ∩ policies for an authorization request.
async fn scoping_for(
    hub: &Hub,
    request: &AuthorizationRequest,
    client: &Client,
    user: &crate::model::User,
) -> Result<crate::policy::scoping::Scoping, OAuthError> {
    let server = hub
        .server_for_resource(&request.resource)
        .await?
        .ok_or_else(|| OAuthError::InvalidTarget("the resource is no longer registered".into()))?;
    Ok(hub.scoping(user, client, &server, &request.scopes).await?)
}

/// Records which policies matched and why each dropped scope was dropped.
async fn audit_policy_decision(
    hub: &Hub,
    request: &AuthorizationRequest,
    client: &Client,
    user: &crate::model::User,
    scoping: &crate::policy::scoping::Scoping,
    peer: &std::net::SocketAddr,
) -> Result<(), OAuthError> {
    let outcome = if scoping.permitted.is_empty() {
        Outcome::Failure
    } else {
        Outcome::Success
    };
    hub.audit(
        AuditEvent::new("policy.evaluated", outcome)
            .actor("user", user.id.clone())
            .user(user.id.clone())
            .tenant(user.primary_tenant().map(str::to_owned))
            .client(client.client_id.clone())
            .resource(request.resource.clone())
            .scopes(&request.scopes, &scoping.permitted)
            .dropped(
                scoping
                    .unavailable
                    .iter()
                    .map(|u| crate::audit::event::DroppedScope {
                        scope: u.scope.clone(),
                        reason: u.reason.clone(),
                    })
                    .collect(),
            )
            .policies(scoping.matched_ids())
            .correlation(request.correlation_id.clone())
            .source_ip(peer.ip().to_string())
            .reason(scoping.explanation()),
    )
    .await?;
    Ok(())
}

/// Nothing requested is permitted: `access_denied`, with the reasons in the audit trail.
async fn deny_by_policy(
    hub: &Hub,
    request: &AuthorizationRequest,
    client: &Client,
    user: &crate::model::User,
    scoping: &crate::policy::scoping::Scoping,
    peer: &std::net::SocketAddr,
) -> Result<Response, OAuthError> {
    complete(hub, request).await?;
    send_denial(
        hub,
        request,
        client,
        &user.id,
        user.primary_tenant().map(str::to_owned),
        &format!("no requested scope is permitted: {}", scoping.explanation()),
        "no requested scope is permitted for this user and client",
        peer,
    )
    .await
}

/// Marks the request decided; a second decision (a replayed form) is refused.
async fn complete(hub: &Hub, request: &AuthorizationRequest) -> Result<(), OAuthError> {
    if hub.store.complete_request(&request.id).await? {
        Ok(())
    } else {
        Err(OAuthError::InvalidRequest(
            "this authorization request was already decided".into(),
        ))
    }
}

/// Audits `consent.denied` with `reason` and sends the client `access_denied`
/// with `description` (RFC 6749 §4.1.2.1). The request is already decided.
#[allow(clippy::too_many_arguments)]
async fn send_denial(
    hub: &Hub,
    request: &AuthorizationRequest,
    client: &Client,
    user_id: &str,
    tenant: Option<String>,
    reason: &str,
    description: &str,
    peer: &std::net::SocketAddr,
) -> Result<Response, OAuthError> {
    hub.audit(
        AuditEvent::new("consent.denied", Outcome::Failure)
            .actor("user", user_id.to_owned())
            .user(user_id.to_owned())
            .tenant(tenant)
            .client(client.client_id.clone())
            .resource(request.resource.clone())
            .scopes(&request.scopes, &[])
            .correlation(request.correlation_id.clone())
            .source_ip(peer.ip().to_string())
            .reason(reason),
    )
    .await?;
    let err = OAuthError::AccessDenied(description.to_owned());
    Ok(redirect_error(
        hub,
        &request.redirect_uri,
        request.state.as_deref(),
        &err,
    ))
}

/// The user said no: `access_denied` back to the client (RFC 6749 §4.1.2.1).
pub async fn deny(
    hub: &Hub,
    request: &AuthorizationRequest,
    client: &Client,
    user_id: &str,
    peer: &std::net::SocketAddr,
) -> Result<Response, OAuthError> {
    if hub.faults.on(Fault::IgnoreConsentDenial) {
        return decide(hub, request, client, user_id, &request.scopes, peer).await;
    }
    complete(hub, request).await?;
    let tenant = hub
        .store
        .user_by_id(user_id)
        .await?
        .and_then(|u| u.primary_tenant().map(str::to_owned));
    send_denial(
        hub,
        request,
        client,
        user_id,
        tenant,
        "the user denied the request",
        "the user denied the request",
        peer,
    )
    .await
}

/// Records the user's approval of `newly_granted` and sends them back to the
/// client with a code. The code carries the requested scopes the user has
/// granted now or earlier (step-up consent: the union, never more than asked).
/// Shared by the consent page and the control API.
pub async fn decide(
    hub: &Hub,
    request: &AuthorizationRequest,
    client: &Client,
    user_id: &str,
    newly_granted: &[String],
    peer: &std::net::SocketAddr,
) -> Result<Response, OAuthError> {
    let prior = prior_consent(hub, request, user_id).await?;
    let user = hub
        .store
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| OAuthError::InvalidRequest("the user no longer exists".into()))?;
    // Policies are evaluated again: one may have changed since the page was shown.
    let scoping = scoping_for(hub, request, client, &user).await?;
    complete(hub, request).await?;
    let granted: Vec<String> = request
        .scopes
        .iter()
        .filter(|s| scoping.permitted.contains(s))
        .filter(|s| {
            newly_granted.contains(s)
                || (prior.contains(s) && !hub.faults.on(Fault::StepUpDropsPrior))
        })
        .cloned()
        .collect();
    let tenant = user.primary_tenant().map(str::to_owned);
    if granted.is_empty() {
        return send_denial(
            hub,
            request,
            client,
            user_id,
            tenant,
            "the user granted no scope",
            "the user granted none of the requested scopes",
            peer,
        )
        .await;
    }
    let event = |kind: &str, outcome| {
        AuditEvent::new(kind, outcome)
            .actor("user", user_id.to_owned())
            .user(user_id.to_owned())
            .tenant(tenant.clone())
            .client(client.client_id.clone())
            .resource(request.resource.clone())
            .scopes(&request.scopes, &granted)
            .correlation(request.correlation_id.clone())
            .source_ip(peer.ip().to_string())
    };
    let now = hub.clock.now();
    // The record keeps everything the user ever granted this client here, not
    // only this request's share, so a narrower request does not forget the rest.
    let mut remembered = prior.clone();
    remembered.extend(granted.iter().filter(|s| !prior.contains(s)).cloned());
    hub.store
        .record_consent(&Consent {
            user_id: user_id.to_owned(),
            client_id: client.client_id.clone(),
            resource: request.resource.clone(),
            scopes: remembered,
            granted_at: now,
            expires_at: Some(now + i64::from(hub.config.consent_ttl)),
            revoked_at: None,
        })
        .await?;
    let code = crate::random::secret();
    let ttl = if hub.faults.on(Fault::LongLivedCodes) {
        3600
    } else {
        hub.config.code_ttl.min(crate::config::MAX_CODE_TTL)
    };
    hub.store
        .insert_code(&AuthorizationCode {
            code_hash: crate::random::sha256_b64url(&code),
            client_id: client.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            resource: request.resource.clone(),
            scopes: granted.clone(),
            code_challenge: request.code_challenge.clone(),
            user_id: user_id.to_owned(),
            tenant: tenant.clone(),
            correlation_id: request.correlation_id.clone(),
            expires_at: now + i64::from(ttl),
            authentication: request.authentication.clone(),
        })
        .await?;
    let reason = if newly_granted.is_empty() {
        "every requested scope was already consented".to_owned()
    } else {
        format!("granted now: {}", newly_granted.join(" "))
    };
    hub.audit(event("consent.granted", Outcome::Success).reason(reason))
        .await?;
    Ok(redirect_back(
        hub,
        &request.redirect_uri,
        request.state.as_deref(),
        &[("code", &code)],
    ))
}
