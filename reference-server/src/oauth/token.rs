//! The token endpoint (RFC 6749 §3.2): `authorization_code` with PKCE and
//! `client_credentials` for confidential agents.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::audit::event::{AuditEvent, Outcome};
use crate::error::OAuthError;
use crate::fault::Fault;
use crate::hub::Hub;
use crate::model::{AuthMethod, Client};
use crate::oauth::access_token::TokenGrant;
use crate::oauth::client_auth::authenticate;
use crate::oauth::grants::{JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT};
use crate::params::{split_scopes, Params};
use crate::store::tokens::RefreshToken;
use crate::variant::Variant;

/// `POST /token`.
pub async fn token(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let correlation = crate::random::ordered_id("flow");
    let base_event = |kind: &str, outcome| {
        AuditEvent::new(kind, outcome)
            .correlation(correlation.clone())
            .source_ip(peer.ip().to_string())
    };
    let params = match Params::parse(&body) {
        Ok(p) => p,
        Err(err) => {
            hub.audit(base_event("token.refused", Outcome::Failure).reason(err.to_string()))
                .await?;
            return Err(err);
        }
    };
    if hub.faults.on(Fault::RepeatedGrantTypeServerError) && params.get("grant_type").is_err() {
        return Err(OAuthError::ServerError);
    }
    static TOKEN_TICKS: AtomicU64 = AtomicU64::new(0);
    if hub.faults.on(Fault::TokenServerErrorUnderLoad) && crate::fault::one_in(100, &TOKEN_TICKS) {
        return Err(OAuthError::ServerError);
    }
    let grant_type = params
        .get("grant_type")
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_owned();
    let client_hint = params.get("client_id").ok().flatten().map(str::to_owned);
    if grant_type == TOKEN_EXCHANGE_GRANT && crate::vault::retrieval::names_connection(&params) {
        let source = hub.source_address(peer.ip(), &headers).to_string();
        return crate::vault::retrieval::exchange(&hub, &headers, &params, &source, &correlation)
            .await;
    }
    let outcome = match grant_type.as_str() {
        "authorization_code" => authorization_code(&hub, &headers, &params).await,
        "client_credentials" => {
            client_credentials(
                &hub,
                &headers,
                &params,
                hub.source_address(peer.ip(), &headers),
            )
            .await
        }
        "refresh_token" => refresh(&hub, &headers, &params).await,
        JWT_BEARER_GRANT if !hub.faults.on(Fault::JwtBearerUnsupported) => {
            jwt_bearer(
                &hub,
                &headers,
                &params,
                hub.source_address(peer.ip(), &headers),
            )
            .await
        }
        TOKEN_EXCHANGE_GRANT => token_exchange(&hub, &headers, &params).await,
        "" => Err(OAuthError::InvalidRequest("grant_type is required".into())),
        other if hub.faults.on(Fault::UnknownGrantInvalidRequest) => Err(
            OAuthError::InvalidRequest(format!("grant_type `{other}` is not supported")),
        ),
        other if hub.faults.on(Fault::TokenErrorEchoesRequest) => {
            Err(OAuthError::UnsupportedGrantType(format!(
                "grant_type `{other}` is not supported (request: {})",
                String::from_utf8_lossy(&body)
            )))
        }
        other => Err(OAuthError::UnsupportedGrantType(format!(
            "grant_type `{other}` is not supported"
        ))),
    };
    match outcome {
        Ok(issued) => {
            hub.audit(
                base_event(
                    match grant_type.as_str() {
                        "refresh_token" => "token.refreshed",
                        TOKEN_EXCHANGE_GRANT => "token.exchanged",
                        _ => "token.issued",
                    },
                    Outcome::Success,
                )
                .actor(
                    if issued.user.is_some() && issued.act.is_none() {
                        "user"
                    } else {
                        "agent"
                    },
                    if issued.act.is_some() {
                        issued.client_id.clone()
                    } else {
                        issued.subject.clone()
                    },
                )
                .user(issued.user.clone())
                .tenant(issued.tenant.clone())
                .client(issued.client_id.clone())
                .resource(issued.resource.clone())
                .scopes(&issued.requested, &issued.scopes)
                .act(if hub.faults.on(Fault::MissingActInAudit) {
                    None
                } else {
                    issued.act.clone()
                })
                .correlation(issued.correlation_id.clone().unwrap_or(correlation.clone()))
                .reason(if hub.faults.on(Fault::LeakTokenInAudit) {
                    format!("grant {grant_type}; token {}", issued.token)
                } else {
                    format!("grant {grant_type}")
                }),
            )
            .await?;
            let mut body = json!({
                "access_token": issued.token,
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
                "scope": issued.scopes.join(" "),
            });
            if let Some(refresh_token) = &issued.refresh_token {
                body["refresh_token"] = json!(refresh_token);
            }
            if grant_type == TOKEN_EXCHANGE_GRANT {
                if !hub.faults.on(Fault::ExchangeOmitIssuedTokenType) {
                    // RFC 8693 §2.1: with no requested_token_type the type is the
                    // server's choice; the hub's access tokens are JWTs (RFC 9068).
                    let jwt_named = hub.variants.on(Variant::ExchangeIssuesJwtType)
                        && params.get("requested_token_type").ok().flatten().is_none();
                    body["issued_token_type"] = json!(if jwt_named {
                        JWT_TOKEN_TYPE
                    } else {
                        ACCESS_TOKEN_TYPE
                    });
                }
                // RFC 6749 §5.1: `scope` is OPTIONAL when identical to the request.
                if hub.variants.on(Variant::OmitScopeAsRequested)
                    && issued.scopes == issued.requested
                {
                    if let Some(fields) = body.as_object_mut() {
                        fields.remove("scope");
                    }
                }
            }
            let mut response = Json(body).into_response();
            if !hub.faults.on(Fault::CacheableTokenResponse) {
                let h = response.headers_mut();
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            }
            Ok(response)
        }
        Err(err) => {
            hub.audit(
                base_event("token.refused", Outcome::Failure)
                    .actor("client", client_hint.clone())
                    .client(client_hint)
                    .reason(format!("grant `{grant_type}`: {err}")),
            )
            .await?;
            if !matches!(err, OAuthError::InvalidClient(_)) {
                return Err(err);
            }
            let mut response = err.into_response();
            // RFC 6749 §5.2: 401 is a MUST only for a client that used the
            // Authorization header; otherwise 400 is as good (the variant).
            let as_400 = hub.variants.on(Variant::InvalidClient400)
                && !headers.contains_key(header::AUTHORIZATION);
            if as_400 {
                *response.status_mut() = axum::http::StatusCode::BAD_REQUEST;
            }
            // A 400 needs no challenge; the fault drops it from the 401 too.
            if as_400 || hub.faults.on(Fault::InvalidClientNoChallenge) {
                response.headers_mut().remove(header::WWW_AUTHENTICATE);
            }
            Ok(response)
        }
    }
}

struct Issued {
    token: String,
    expires_in: i64,
    subject: String,
    user: Option<String>,
    tenant: Option<String>,
    client_id: String,
    resource: String,
    requested: Vec<String>,
    scopes: Vec<String>,
    correlation_id: Option<String>,
    refresh_token: Option<String>,
    /// The delegation chain of an exchanged token.
    act: Option<serde_json::Value>,
}

/// RFC 6749 §4.1.3 with RFC 7636 §4.6 and RFC 8707 §2.2.
async fn authorization_code(
    hub: &Hub,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Issued, OAuthError> {
    let caller = authenticate(hub, headers, params).await?;
    let code = params.require("code")?;
    let now = hub.clock.now();
    let (stored, already_redeemed) = hub
        .store
        .redeem_code(&crate::random::sha256_b64url(code), now)
        .await?
        .ok_or_else(|| {
            let why = "the authorization code is unknown".to_owned();
            if hub.faults.on(Fault::UnknownCodeInvalidRequest) {
                OAuthError::InvalidRequest(why)
            } else {
                OAuthError::InvalidGrant(why)
            }
        })?;
    if already_redeemed && !hub.faults.on(Fault::AllowCodeReplay) {
        return Err(OAuthError::InvalidGrant(
            "the authorization code was already used".into(),
        ));
    }
    if stored.expires_at <= now {
        return Err(OAuthError::InvalidGrant(
            "the authorization code has expired".into(),
        ));
    }
    if stored.client_id != caller.client.client_id && !hub.faults.on(Fault::SkipCodeClientBinding) {
        return Err(OAuthError::InvalidGrant(
            "the authorization code was issued to another client".into(),
        ));
    }
    if caller.client.token_endpoint_auth_method != AuthMethod::None && !caller.authenticated {
        return Err(OAuthError::InvalidClient(
            "client authentication failed".into(),
        ));
    }
    let redirect_ok = params.get("redirect_uri")? == Some(stored.redirect_uri.as_str());
    if !redirect_ok && !hub.faults.on(Fault::SkipCodeRedirectBinding) {
        return Err(OAuthError::InvalidGrant(
            "redirect_uri must be identical to the one in the authorization request".into(),
        ));
    }
    if let Some(challenge) = &stored.code_challenge {
        let verifier = params
            .get("code_verifier")?
            .ok_or_else(|| OAuthError::InvalidRequest("code_verifier is required (PKCE)".into()))?;
        let matches = crate::random::sha256_b64url(verifier) == *challenge
            || (hub.faults.on(Fault::AcceptPlainPkce) && verifier == challenge);
        if !matches && !hub.faults.on(Fault::SkipPkceVerify) {
            return Err(OAuthError::InvalidGrant(
                "the code_verifier does not match the code_challenge".into(),
            ));
        }
    }
    if let Some(resource) = params.get("resource")? {
        if resource != stored.resource && !hub.faults.on(Fault::IgnoreResource) {
            return Err(OAuthError::InvalidTarget(
                "the resource differs from the one that was authorized".into(),
            ));
        }
    }
    let scopes = policy_recheck(
        hub,
        &stored.user_id,
        &caller.client,
        &stored.resource,
        &stored.scopes,
    )
    .await?;
    let minted = hub
        .mint_access_token(TokenGrant {
            subject: &stored.user_id,
            client_id: &caller.client.client_id,
            resource: &stored.resource,
            scopes: &scopes,
            tenant: stored.tenant.as_deref(),
            act: None,
            authentication: stored.authentication.clone(),
        })
        .await?;
    let refresh_token = if caller.client.allows_grant("refresh_token") {
        Some(
            issue_refresh_token(
                hub,
                &RefreshToken {
                    token_hash: String::new(),
                    family_id: crate::random::id("family"),
                    client_id: caller.client.client_id.clone(),
                    user_id: stored.user_id.clone(),
                    tenant: stored.tenant.clone(),
                    resource: stored.resource.clone(),
                    scopes: stored.scopes.clone(),
                    expires_at: 0,
                    rotated: false,
                    revoked: false,
                    authentication: stored.authentication.clone(),
                },
            )
            .await?,
        )
    } else {
        None
    };
    Ok(Issued {
        token: minted.token,
        expires_in: minted.expires_in,
        subject: stored.user_id.clone(),
        user: Some(stored.user_id),
        tenant: stored.tenant,
        client_id: caller.client.client_id,
        resource: stored.resource,
        requested: stored.scopes,
        scopes,
        correlation_id: Some(stored.correlation_id),
        refresh_token,
        act: None,
    })
}

/// Policies are evaluated again whenever a user-delegated token is issued
/// (code redemption and refresh), so a deleted policy stops the very next
/// token. Scopes no longer permitted are dropped; none left is `invalid_grant`.
async fn policy_recheck(
    hub: &Hub,
    user_id: &str,
    client: &Client,
    resource: &str,
    scopes: &[String],
) -> Result<Vec<String>, OAuthError> {
    if hub.faults.on(Fault::PolicyOnlyAtConsent) {
        return Ok(scopes.to_vec());
    }
    let user = hub
        .store
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| OAuthError::InvalidGrant("the user no longer exists".into()))?;
    let server = hub
        .server_for_resource(resource)
        .await?
        .ok_or_else(|| OAuthError::InvalidGrant("the resource is no longer registered".into()))?;
    let scoping = hub.scoping(&user, client, &server, scopes).await?;
    if scoping.permitted.is_empty() {
        return Err(OAuthError::InvalidGrant(format!(
            "no granted scope is permitted any more: {}",
            scoping.explanation()
        )));
    }
    Ok(scoping.permitted)
}

/// RFC 6749 §4.4. Policies never apply here: the client's own configuration
/// (allowed resources and scopes) is the whole rule.
async fn client_credentials(
    hub: &Hub,
    headers: &HeaderMap,
    params: &Params,
    source: std::net::IpAddr,
) -> Result<Issued, OAuthError> {
    let caller = authenticate(hub, headers, params).await?;
    if !caller.authenticated {
        return Err(OAuthError::InvalidClient(
            "client_credentials requires a confidential client".into(),
        ));
    }
    let client = caller.client;
    if !client.allows_grant("client_credentials") {
        return Err(OAuthError::UnauthorizedClient(
            "this client is not configured for client_credentials".into(),
        ));
    }
    agent_token(hub, client, params, source).await
}

/// RFC 7523 §2.1: an autonomous agent presents a JWT it signed with its
/// registered key. Client authentication is optional (§3.1); when present it
/// must be valid and name the same client. Like client_credentials, the
/// client's own configuration governs and policies never apply.
async fn jwt_bearer(
    hub: &Hub,
    headers: &HeaderMap,
    params: &Params,
    source: std::net::IpAddr,
) -> Result<Issued, OAuthError> {
    let assertion = params.require("assertion")?;
    let authenticated = if headers.contains_key(header::AUTHORIZATION)
        || params.get("client_assertion")?.is_some()
        || params.get("client_secret")?.is_some()
    {
        Some(authenticate(hub, headers, params).await?.client.client_id)
    } else {
        None
    };
    let client = crate::oauth::assertion::verify_grant(hub, assertion).await?;
    if authenticated.is_some_and(|id| id != client.client_id) {
        return Err(OAuthError::InvalidGrant(
            "the JWT grant was issued by another client than the one authenticated".into(),
        ));
    }
    if !client.allows_grant(JWT_BEARER_GRANT) {
        return Err(OAuthError::UnauthorizedClient(
            "this client is not configured for the jwt-bearer grant".into(),
        ));
    }
    agent_token(hub, client, params, source).await
}

/// A token for an agent acting as itself: the resource and scopes come from
/// the client's configuration alone (allowed resources and scopes).
async fn agent_token(
    hub: &Hub,
    client: Client,
    params: &Params,
    source: std::net::IpAddr,
) -> Result<Issued, OAuthError> {
    // The agent's own conditions: where from and when (never policies).
    if let Some(raw) = client.metadata.get("conditions") {
        let conditions: crate::policy::conditions::AgentConditions =
            serde_json::from_value(raw.clone())
                .map_err(|e| crate::error::HubError::Config(format!("agent conditions: {e}")))?;
        if !hub.faults.on(Fault::AgentIgnoreSourceRanges) {
            conditions
                .check_source(source)
                .map_err(|v| OAuthError::AccessDenied(v.to_string()))?;
        }
        if !hub.faults.on(Fault::AgentIgnoreTimeWindows) {
            conditions
                .check_time(hub.clock.now())
                .map_err(|v| OAuthError::AccessDenied(v.to_string()))?;
        }
    }
    let servers = hub.store.mcp_servers().await?;
    let allowed: Vec<_> = servers
        .iter()
        .filter(|s| client.allowed_resources.contains(&s.id))
        .collect();
    let server = match params.get("resource")? {
        Some(resource) => allowed
            .iter()
            .find(|s| hub.resource_url(s) == resource)
            .copied()
            .ok_or_else(|| {
                OAuthError::InvalidTarget(format!(
                    "this client may not get tokens for `{resource}`"
                ))
            })?,
        None if allowed.len() == 1 => allowed[0],
        None => {
            return Err(OAuthError::InvalidTarget(
                "resource is required: this client is configured for several resources".into(),
            ))
        }
    };
    let permitted: Vec<String> = if hub.faults.on(Fault::SkipClientScopeLimit) {
        server.scopes.clone()
    } else {
        server
            .scopes
            .iter()
            .filter(|s| client.allowed_scopes.contains(s))
            .cloned()
            .collect()
    };
    let requested = split_scopes(params.get("scope")?);
    let scopes = if requested.is_empty() {
        permitted.clone()
    } else if hub.variants.on(Variant::NarrowUnallowedScope) {
        // RFC 6749 §3.3: grant the permitted part and name it in `scope`; a
        // request ignored entirely gets the default, as if it named no scope.
        let granted: Vec<String> = requested
            .iter()
            .filter(|s| permitted.contains(s))
            .cloned()
            .collect();
        if granted.is_empty() {
            permitted.clone()
        } else {
            granted
        }
    } else {
        if let Some(beyond) = requested.iter().find(|s| !permitted.contains(s)) {
            return Err(OAuthError::InvalidScope(format!(
                "scope `{beyond}` is not in this client's configuration for {}",
                server.name
            )));
        }
        requested.clone()
    };
    let scopes = if hub.faults.on(Fault::ApplyPoliciesToClientCredentials) {
        // The fault: judge an agent acting as itself by user policies, as if it were nobody.
        let nobody = crate::model::User {
            id: client.client_id.clone(),
            username: client.client_id.clone(),
            name: client.name.clone(),
            email: None,
            password_hash: String::new(),
            tenants: Vec::new(),
            roles: Vec::new(),
            permissions: Vec::new(),
            claims: Default::default(),
        };
        hub.scoping(&nobody, &client, server, &scopes)
            .await?
            .permitted
    } else {
        scopes
    };
    if scopes.is_empty() {
        return Err(OAuthError::InvalidScope(
            "this client has no scopes on that resource".into(),
        ));
    }
    let resource = hub.resource_url(server);
    let minted = hub
        .mint_access_token(TokenGrant {
            subject: &client.client_id,
            client_id: if hub.faults.on(Fault::CcTokenNamesClientByName) {
                &client.name
            } else {
                &client.client_id
            },
            resource: &resource,
            scopes: &scopes,
            tenant: client.tenant.as_deref(),
            act: None,
            authentication: None,
        })
        .await?;
    Ok(Issued {
        token: minted.token,
        expires_in: minted.expires_in,
        subject: client.client_id.clone(),
        user: None,
        tenant: client.tenant,
        client_id: client.client_id,
        resource,
        requested,
        scopes,
        correlation_id: None,
        refresh_token: None,
        act: None,
    })
}

/// The only token type this hub exchanges and issues (RFC 8693 §3).
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 §3: the token is a JWT (named so under [`Variant::ExchangeIssuesJwtType`]).
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// RFC 8693: an authenticated agent exchanges a user's access token for one
/// it may use itself, on a registered MCP server, with the same or fewer
/// scopes. The new token keeps `sub` = the user and records the agent in
/// `act`, nesting any earlier actor (agent to agent delegation). A subject
/// token that names who may act (`may_act`) is honoured.
async fn token_exchange(
    hub: &Hub,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Issued, OAuthError> {
    let caller = authenticate(hub, headers, params).await?;
    if !caller.authenticated {
        return Err(OAuthError::InvalidClient(
            "token exchange requires client authentication".into(),
        ));
    }
    let client = caller.client;
    if !client.allows_grant(TOKEN_EXCHANGE_GRANT) {
        return Err(OAuthError::UnauthorizedClient(
            "this client is not configured for token exchange".into(),
        ));
    }
    // RFC 8693 §2.2.2: a bad or unacceptable subject or actor token is invalid_request.
    let bad = |why: String| OAuthError::InvalidRequest(why);
    if params.require("subject_token_type")? != ACCESS_TOKEN_TYPE {
        return Err(bad(format!(
            "subject_token_type must be {ACCESS_TOKEN_TYPE}"
        )));
    }
    if params
        .get("requested_token_type")?
        .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
    {
        return Err(bad(format!("this hub issues only {ACCESS_TOKEN_TYPE}")));
    }
    let subject = hub
        .validate_access_token(params.require("subject_token")?, None)
        .await
        .map_err(|e| {
            bad(format!(
                "the subject_token is not acceptable: {}",
                e.description()
            ))
        })?;
    let user = hub
        .store
        .user_by_id(&subject.sub)
        .await?
        .ok_or_else(|| bad("the subject_token does not represent a user".into()))?;
    if let Some(may_act) = &subject.may_act {
        if may_act.get("sub").and_then(serde_json::Value::as_str) != Some(&client.client_id) {
            return Err(bad(
                "the subject_token's may_act does not name this client".into()
            ));
        }
    }
    if let Some(actor_token) = params.get("actor_token")? {
        if params.require("actor_token_type")? != ACCESS_TOKEN_TYPE {
            return Err(bad(format!("actor_token_type must be {ACCESS_TOKEN_TYPE}")));
        }
        let actor = hub
            .validate_access_token(actor_token, None)
            .await
            .map_err(|e| {
                bad(format!(
                    "the actor_token is not acceptable: {}",
                    e.description()
                ))
            })?;
        if actor.sub != client.client_id {
            return Err(bad(
                "the actor_token must be the authenticated client's own token".into(),
            ));
        }
    }
    let target = match (params.get("resource")?, params.get("audience")?) {
        (Some(r), _) | (None, Some(r)) => r.to_owned(),
        (None, None) => match &subject.aud {
            crate::oauth::access_token::Audience::One(aud) => aud.clone(),
            crate::oauth::access_token::Audience::Many(_) => {
                return Err(bad("resource is required".into()));
            }
        },
    };
    let server = hub.server_for_resource(&target).await?;
    let any_audience = hub.faults.on(Fault::ExchangeAnyAudience);
    let server_scopes: Vec<String> = match &server {
        Some(s)
            if client.allowed_resources.is_empty()
                || client.allowed_resources.contains(&s.id)
                || any_audience =>
        {
            s.scopes.clone()
        }
        None if any_audience => subject.scopes().map(str::to_owned).collect(),
        _ => {
            return Err(OAuthError::InvalidTarget(format!(
                "this client may not get tokens for `{target}`"
            )))
        }
    };
    let held: Vec<String> = subject.scopes().map(str::to_owned).collect();
    let requested = split_scopes(params.get("scope")?);
    let scopes: Vec<String> =
        if requested.is_empty() || hub.faults.on(Fault::ExchangeIgnoreRequestedScope) {
            held.iter()
                .filter(|s| server_scopes.contains(s))
                .cloned()
                .collect()
        } else {
            let requested: Vec<String> = if hub.variants.on(Variant::NarrowUnallowedScope)
                && !hub.faults.on(Fault::ExchangeAllowWidening)
            {
                // RFC 6749 §3.3: ignore what the subject token does not hold and
                // name what is granted in `scope`; a request ignored entirely
                // gets the default, as if it had named no scope.
                let kept: Vec<String> = requested
                    .iter()
                    .filter(|s| held.contains(s))
                    .cloned()
                    .collect();
                if kept.is_empty() {
                    held.iter()
                        .filter(|s| server_scopes.contains(s))
                        .cloned()
                        .collect()
                } else {
                    kept
                }
            } else {
                requested.clone()
            };
            if let Some(wider) = requested.iter().find(|s| !held.contains(s)) {
                if !hub.faults.on(Fault::ExchangeAllowWidening) {
                    return Err(OAuthError::InvalidScope(format!(
                        "scope `{wider}` is not in the subject_token; an exchange can only narrow"
                    )));
                }
            }
            if let Some(foreign) = requested.iter().find(|s| !server_scopes.contains(s)) {
                return Err(OAuthError::InvalidScope(format!(
                    "scope `{foreign}` does not exist on `{target}`"
                )));
            }
            requested.clone()
        };
    if scopes.is_empty() {
        return Err(OAuthError::InvalidScope(
            "the subject_token carries no scope usable on that resource".into(),
        ));
    }
    let act = if hub.faults.on(Fault::ExchangeDropAct) {
        None
    } else {
        let mut act = json!({ "sub": client.client_id });
        if let Some(previous) = subject.act.clone() {
            if !hub.faults.on(Fault::ExchangeFlatChain) {
                act["act"] = previous;
            }
        }
        Some(act)
    };
    let minted = hub
        .mint_access_token(TokenGrant {
            subject: &user.id,
            client_id: &client.client_id,
            resource: &target,
            scopes: &scopes,
            tenant: subject.tenant.as_deref(),
            act: act.clone(),
            authentication: subject.authentication(),
        })
        .await?;
    Ok(Issued {
        token: minted.token,
        expires_in: minted.expires_in,
        subject: user.id.clone(),
        user: Some(user.id),
        tenant: subject.tenant,
        client_id: client.client_id,
        resource: target,
        requested,
        scopes,
        correlation_id: None,
        refresh_token: None,
        act,
    })
}

/// Stores a new refresh token of `template`'s family and grant; returns the token.
async fn issue_refresh_token(hub: &Hub, template: &RefreshToken) -> Result<String, OAuthError> {
    let (token, stored) = successor(hub, template);
    hub.store
        .insert_refresh_token(&stored, hub.clock.now())
        .await?;
    Ok(token)
}

/// A new refresh token of the same grant as `template`, and its stored form.
fn successor(hub: &Hub, template: &RefreshToken) -> (String, RefreshToken) {
    let token = crate::random::secret();
    let stored = RefreshToken {
        token_hash: crate::random::sha256_b64url(&token),
        expires_at: hub.clock.now() + i64::from(hub.config.refresh_token_ttl),
        ..template.clone()
    };
    (token, stored)
}

/// A rotated refresh token came back: someone holds a copy. The whole family
/// is revoked (RFC 9700 §4.14.2), and the refusal says so.
async fn refresh_reused(
    hub: &Hub,
    caller: &crate::oauth::client_auth::Caller,
    stored: &RefreshToken,
    now: i64,
) -> Result<OAuthError, OAuthError> {
    if !hub.faults.on(Fault::RefreshReuseKeepsFamily) {
        let revoked = hub
            .store
            .revoke_refresh_family(&stored.family_id, now)
            .await?;
        hub.audit(
            AuditEvent::new("token.revoked", Outcome::Success)
                .actor("client", caller.client.client_id.clone())
                .user(stored.user_id.clone())
                .tenant(stored.tenant.clone())
                .client(caller.client.client_id.clone())
                .resource(stored.resource.clone())
                .reason(format!(
                    "refresh token reuse detected: revoked {revoked} live token(s) of family {}",
                    stored.family_id
                )),
        )
        .await?;
    }
    Ok(OAuthError::InvalidGrant(
        "the refresh token was already used; its family is revoked".into(),
    ))
}

/// RFC 6749 §6 with rotation and reuse detection (RFC 9700 §4.14.2): every
/// refresh rotates the token; presenting a rotated one revokes the family.
/// The request is validated in full before anything is written, and the
/// rotation is one transaction, so a refused refresh (a widened scope, a
/// wrong resource) or a crash leaves the presented token usable.
async fn refresh(hub: &Hub, headers: &HeaderMap, params: &Params) -> Result<Issued, OAuthError> {
    let caller = authenticate(hub, headers, params).await?;
    let presented = params.require("refresh_token")?;
    let hash = crate::random::sha256_b64url(presented);
    let now = hub.clock.now();
    let invalid = |why: &str| OAuthError::InvalidGrant(why.to_owned());
    let stored = hub
        .store
        .refresh_token(&hash)
        .await?
        .ok_or_else(|| invalid("the refresh token is unknown"))?;
    if stored.client_id != caller.client.client_id && !hub.faults.on(Fault::RefreshAnyClient) {
        return Err(invalid("the refresh token was issued to another client"));
    }
    if stored.revoked {
        return Err(invalid("the refresh token has been revoked"));
    }
    if stored.expires_at <= now {
        return Err(invalid("the refresh token has expired"));
    }
    let rotate = !hub.faults.on(Fault::NoRefreshRotation);
    // The fault: use the token up before the request is known to be good.
    let rotate_first = rotate && hub.faults.on(Fault::RefusedRefreshRotates);
    if (rotate_first && !hub.store.rotate_refresh_token(&hash, now).await?)
        || (rotate && !rotate_first && stored.rotated)
    {
        return Err(refresh_reused(hub, &caller, &stored, now).await?);
    }
    let requested = split_scopes(params.get("scope")?);
    let scopes = if requested.is_empty() {
        stored.scopes.clone()
    } else {
        let widening = requested.iter().find(|s| !stored.scopes.contains(s));
        match widening {
            Some(scope) if !hub.faults.on(Fault::RefreshAllowsWidening) => {
                return Err(OAuthError::InvalidScope(format!(
                    "scope `{scope}` was not granted; a refresh can only narrow"
                )))
            }
            _ => requested.clone(),
        }
    };
    if let Some(resource) = params.get("resource")? {
        if resource != stored.resource {
            return Err(OAuthError::InvalidTarget(
                "a refresh token is bound to the resource it was issued for".into(),
            ));
        }
    }
    let scopes = policy_recheck(
        hub,
        &stored.user_id,
        &caller.client,
        &stored.resource,
        &scopes,
    )
    .await?;
    let minted = hub
        .mint_access_token(TokenGrant {
            subject: &stored.user_id,
            client_id: &caller.client.client_id,
            resource: &stored.resource,
            scopes: &scopes,
            tenant: stored.tenant.as_deref(),
            act: None,
            authentication: stored.authentication.clone(),
        })
        .await?;
    // The new token keeps the original grant: narrowing applies to this access token only.
    let refresh_token = if rotate_first {
        issue_refresh_token(hub, &stored).await?
    } else if rotate && hub.faults.on(Fault::RefreshRotationRaces) {
        // The fault: the read above found the token unused, and the write
        // does not ask again, so every request that read it in time wins.
        hub.store.rotate_refresh_token(&hash, now).await?;
        issue_refresh_token(hub, &stored).await?
    } else if rotate {
        let (token, next) = successor(hub, &stored);
        if !hub.store.rotate_refresh_token_to(&hash, &next, now).await? {
            // Used concurrently by another request: a copy is in other hands.
            return Err(refresh_reused(hub, &caller, &stored, now).await?);
        }
        token
    } else {
        presented.to_owned()
    };
    Ok(Issued {
        token: minted.token,
        expires_in: minted.expires_in,
        subject: stored.user_id.clone(),
        user: Some(stored.user_id),
        tenant: stored.tenant,
        client_id: caller.client.client_id,
        resource: stored.resource,
        requested,
        scopes,
        correlation_id: None,
        refresh_token: Some(refresh_token),
        act: None,
    })
}
