//! The admin API: what an operator of the hub manages, over HTTP with JSON.
//! Every call needs the admin token as a bearer credential (`--admin-token`);
//! without one configured the API is not mounted. Documented in
//! `docs/admin-api.md`. Every change is audited with an `admin` actor.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::agents::{decommission, find_agents, AgentQuery};
use crate::audit::event::{AuditEvent, Outcome};
use crate::audit::trail::{audit_sse, query_audit};
use crate::error::OAuthError;
use crate::fault::Fault;
use crate::hub::Hub;
use crate::model::{AuthMethod, Client, TrustLevel};
use crate::params::json_body;
use crate::policy::changes::{add_policy, remove_policy};

/// Refuses any call without the admin token.
pub async fn require_admin_token(
    State(hub): State<Arc<Hub>>,
    request: Request,
    next: Next,
) -> Response {
    if crate::credentials::bearer_matches(request.headers(), hub.config.admin_token.as_deref()) {
        next.run(request).await
    } else {
        OAuthError::InvalidToken("the admin API needs the admin token".into()).into_response()
    }
}

/// Resolves a user given by id or username.
async fn user_id(hub: &Hub, user: &str) -> Result<String, OAuthError> {
    if let Some(u) = hub.store.user_by_id(user).await? {
        return Ok(u.id);
    }
    hub.store
        .user_by_username(user)
        .await?
        .map(|u| u.id)
        .ok_or_else(|| OAuthError::InvalidRequest(format!("unknown user `{user}`")))
}

#[derive(Debug, Deserialize)]
pub struct ConsentQuery {
    user: Option<String>,
    client_id: Option<String>,
}

/// `GET /admin/consents?user=…&client_id=…`: consent records, live or not.
pub async fn list_consents(
    State(hub): State<Arc<Hub>>,
    Query(query): Query<ConsentQuery>,
) -> Result<Response, OAuthError> {
    let user = match &query.user {
        Some(u) => Some(user_id(&hub, u).await?),
        None => None,
    };
    let now = hub.clock.now();
    let consents = hub
        .store
        .consents(user.as_deref(), query.client_id.as_deref())
        .await?;
    let items: Vec<_> = consents
        .iter()
        .map(|c| {
            let status = if c.revoked_at.is_some() {
                "revoked"
            } else if c.expires_at.is_some_and(|e| e <= now) {
                "expired"
            } else {
                "active"
            };
            json!({
                "user_id": c.user_id,
                "client_id": c.client_id,
                "resource": c.resource,
                "scopes": c.scopes,
                "granted_at": c.granted_at,
                "expires_at": c.expires_at,
                "revoked_at": c.revoked_at,
                "status": status,
            })
        })
        .collect();
    Ok(Json(json!({ "consents": items })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeConsent {
    /// User id or username.
    user: String,
    client_id: String,
    /// One resource; all of the client's resources when absent.
    resource: Option<String>,
}

/// `POST /admin/consents/revoke`: the user will be asked again, and refresh
/// tokens issued under the consent stop working at once.
pub async fn revoke_consent(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let revoke: RevokeConsent = json_body(&body)?;
    let user = user_id(&hub, &revoke.user).await?;
    let now = hub.clock.now();
    let (consents, refresh_tokens) = if hub.faults.on(Fault::ConsentRevocationIgnored) {
        (1, 0)
    } else {
        hub.store
            .revoke_consent(&user, &revoke.client_id, revoke.resource.as_deref(), now)
            .await?
    };
    hub.audit(
        AuditEvent::new("consent.revoked", Outcome::Success)
            .actor("admin", None)
            .user(user.clone())
            .client(revoke.client_id.clone())
            .resource(revoke.resource.clone())
            .source_ip(peer.ip().to_string())
            .reason(format!(
                "revoked {consents} consent(s) and {refresh_tokens} refresh token(s)"
            )),
    )
    .await?;
    Ok(Json(json!({
        "consents_revoked": consents,
        "refresh_tokens_revoked": refresh_tokens,
    }))
    .into_response())
}

// ---- second factors -------------------------------------------------------------

/// `POST /admin/users/{user}/second-factor`: enrols a fresh TOTP factor for
/// the user (replacing any earlier one and its recovery codes) and hands the
/// operator what the user needs: the secret, as base32 and as an
/// `otpauth://` URI, and the recovery codes. Shown once; the hub keeps the
/// secret sealed and the codes as digests.
pub async fn enrol_second_factor(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(user): Path<String>,
) -> Result<Response, OAuthError> {
    let id = user_id(&hub, &user).await?;
    let user = hub
        .store
        .user_by_id(&id)
        .await?
        .ok_or_else(|| OAuthError::InvalidRequest(format!("unknown user `{id}`")))?;
    let provisioned = crate::oauth::second_factor::provision(&hub, &user).await?;
    hub.audit(
        AuditEvent::new("user.second_factor.enrolled", Outcome::Success)
            .actor("admin", None)
            .user(user.id.clone())
            .tenant(user.primary_tenant().map(str::to_owned))
            .source_ip(peer.ip().to_string())
            .reason("a TOTP authenticator provisioned by an administrator; recovery codes issued"),
    )
    .await?;
    let mut response = (
        StatusCode::CREATED,
        Json(json!({
            "user_id": user.id,
            "secret": provisioned.secret,
            "otpauth_uri": provisioned.otpauth_uri,
            "recovery_codes": provisioned.recovery_codes,
        })),
    )
        .into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// `DELETE /admin/users/{user}/second-factor`: a lost device; the user
/// enrols afresh at the next sign-in that needs a second factor.
pub async fn remove_second_factor(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(user): Path<String>,
) -> Result<Response, OAuthError> {
    let id = user_id(&hub, &user).await?;
    let removed = hub.store.remove_second_factor(&id).await?;
    hub.audit(
        AuditEvent::new("user.second_factor.removed", Outcome::Success)
            .actor("admin", None)
            .user(id.clone())
            .source_ip(peer.ip().to_string())
            .reason(if removed {
                "the TOTP authenticator and recovery codes removed"
            } else {
                "the user had no second factor"
            }),
    )
    .await?;
    Ok(Json(json!({ "user_id": id, "removed": removed })).into_response())
}

// ---- single sign-on ------------------------------------------------------------

/// `PUT /admin/tenants/{tenant}/sso`: the tenant's users sign in through
/// this OpenID Provider from now on (docs/sso.md); the body is the seed's
/// `[tenants.sso]` as JSON. The client secret is sealed and never shown back.
pub async fn configure_sso(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let config: crate::model::SsoConfig = json_body(&body)?;
    let issuer = url::Url::parse(&config.issuer)
        .ok()
        .filter(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some());
    if issuer.is_none() {
        return Err(OAuthError::InvalidRequest(
            "issuer must be an absolute http(s) URL".into(),
        ));
    }
    if config.client_id.is_empty() || config.client_secret.is_empty() {
        return Err(OAuthError::InvalidRequest(
            "client_id and client_secret are required".into(),
        ));
    }
    let sealed = crate::oauth::sso::seal_secret(&hub, &tenant, &config.client_secret);
    if !hub
        .store
        .set_tenant_sso(&tenant, Some((&config, &sealed)))
        .await?
    {
        return Err(OAuthError::InvalidRequest(format!(
            "unknown tenant `{tenant}`"
        )));
    }
    hub.audit(
        AuditEvent::new("tenant.sso.configured", Outcome::Success)
            .actor("admin", None)
            .tenant(Some(tenant.clone()))
            .source_ip(peer.ip().to_string())
            .reason(format!(
                "signs in at {} for {}; {} group mapping(s)",
                config.issuer,
                config.email_domains.join(", "),
                config.role_mappings.len()
            )),
    )
    .await?;
    Ok(Json(json!({ "tenant": tenant, "issuer": config.issuer })).into_response())
}

/// `DELETE /admin/tenants/{tenant}/sso`: back to passwords at the hub.
pub async fn remove_sso(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(tenant): Path<String>,
) -> Result<Response, OAuthError> {
    if !hub.store.set_tenant_sso(&tenant, None).await? {
        return Err(OAuthError::InvalidRequest(format!(
            "unknown tenant `{tenant}`"
        )));
    }
    hub.audit(
        AuditEvent::new("tenant.sso.removed", Outcome::Success)
            .actor("admin", None)
            .tenant(Some(tenant.clone()))
            .source_ip(peer.ip().to_string()),
    )
    .await?;
    Ok(Json(json!({ "tenant": tenant })).into_response())
}

fn admin_error(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    let mut response = (
        status,
        Json(json!({"error": error, "error_description": description.into()})),
    )
        .into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

// ---- policies -----------------------------------------------------------------

/// `GET /admin/policies`.
pub async fn list_policies(State(hub): State<Arc<Hub>>) -> Result<Response, OAuthError> {
    let policies = hub.store.policies().await?;
    Ok(Json(json!({ "policies": policies })).into_response())
}

/// `POST /admin/policies`: validated, stored, and in force for the very next request.
/// An invalid policy gets 400 `invalid_policy` naming what is wrong.
pub async fn create_policy(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let draft: serde_json::Value = json_body(&body)?;
    match add_policy(&hub, &draft, None, &peer.ip().to_string()).await? {
        Ok(policy) => Ok((StatusCode::CREATED, Json(json!(policy))).into_response()),
        Err(err) => Ok(admin_error(
            StatusCode::BAD_REQUEST,
            "invalid_policy",
            err.to_string(),
        )),
    }
}

/// `DELETE /admin/policies/{id}`: gone for the very next request (there is no disabled state).
pub async fn delete_policy(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
) -> Result<Response, OAuthError> {
    if !remove_policy(&hub, &id, None, &peer.ip().to_string()).await? {
        return Ok(admin_error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no policy `{id}`"),
        ));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- agents -------------------------------------------------------------------

/// Grant types an agent may be configured for.
const AGENT_GRANTS: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    crate::oauth::grants::JWT_BEARER_GRANT,
    crate::oauth::grants::TOKEN_EXCHANGE_GRANT,
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    name: String,
    #[serde(default = "default_agent_grants")]
    grant_types: Vec<String>,
    /// MCP server ids.
    #[serde(default)]
    allowed_resources: Vec<String>,
    #[serde(default)]
    allowed_scopes: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    tenant: Option<String>,
    /// The user the agent is associated with (id or username).
    user: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    conditions: Option<crate::policy::conditions::AgentConditions>,
    /// `client_secret_basic` (default: a secret is generated and shown once) or `private_key_jwt` with `jwks`.
    token_endpoint_auth_method: Option<String>,
    jwks: Option<serde_json::Value>,
}

fn default_agent_grants() -> Vec<String> {
    vec!["client_credentials".into()]
}

fn invalid_agent(why: impl Into<String>) -> Response {
    admin_error(StatusCode::BAD_REQUEST, "invalid_agent", why)
}

/// `POST /admin/agents`: an agent created just in time: a manual client with
/// its grant types, allowed servers and scopes, tags, tenant and user.
pub async fn create_agent(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    let new: NewAgent = json_body(&body)?;
    if new.name.trim().is_empty() {
        return Ok(invalid_agent("name is required"));
    }
    if let Some(g) = new
        .grant_types
        .iter()
        .find(|g| !AGENT_GRANTS.contains(&g.as_str()))
    {
        return Ok(invalid_agent(format!("grant type `{g}` is not supported")));
    }
    let servers = hub.store.mcp_servers().await?;
    if let Some(unknown) = new
        .allowed_resources
        .iter()
        .find(|r| !servers.iter().any(|s| &s.id == *r))
    {
        return Ok(invalid_agent(format!("unknown MCP server `{unknown}`")));
    }
    if let Some(unknown) = new.allowed_scopes.iter().find(|scope| {
        !servers
            .iter()
            .filter(|s| new.allowed_resources.contains(&s.id))
            .any(|s| s.scopes.contains(scope))
    }) {
        return Ok(invalid_agent(format!(
            "scope `{unknown}` is not offered by the agent's MCP servers"
        )));
    }
    for uri in &new.redirect_uris {
        if let Err(e) = crate::oauth::redirect_uri::validate_redirect_uri(&hub, uri) {
            return Ok(invalid_agent(e.description().to_owned()));
        }
    }
    if let Some(conditions) = &new.conditions {
        if let Err(why) = conditions.validate() {
            return Ok(invalid_agent(why));
        }
    }
    let user = match &new.user {
        Some(u) => Some(user_id(&hub, u).await?),
        None => None,
    };
    let (method, secret, jwks) = match new.token_endpoint_auth_method.as_deref() {
        None | Some("client_secret_basic") => (
            AuthMethod::ClientSecretBasic,
            Some(crate::random::secret()),
            None,
        ),
        Some("private_key_jwt") if new.jwks.is_some() => {
            (AuthMethod::PrivateKeyJwt, None, new.jwks)
        }
        Some("private_key_jwt") => return Ok(invalid_agent("private_key_jwt needs jwks")),
        Some(other) => {
            return Ok(invalid_agent(format!(
                "token_endpoint_auth_method `{other}` is not supported for agents"
            )))
        }
    };
    // The hub generated it: 256 random bits, stored as a digest.
    let secret_hash = secret
        .as_deref()
        .map(crate::credentials::digest_generated_secret);
    let now = hub.clock.now();
    let client_id = crate::random::id("agent");
    let mut metadata = json!({
        "client_name": new.name,
        "redirect_uris": new.redirect_uris,
        "grant_types": new.grant_types,
    });
    if let Some(user) = &user {
        metadata["user_id"] = json!(user);
    }
    if let Some(conditions) = &new.conditions {
        metadata["conditions"] = json!(conditions);
    }
    let client = Client {
        client_id: client_id.clone(),
        name: new.name.trim().to_owned(),
        trust_level: TrustLevel::Manual,
        secret_hash,
        token_endpoint_auth_method: method,
        redirect_uris: new.redirect_uris,
        grant_types: new.grant_types,
        allowed_resources: new.allowed_resources,
        allowed_scopes: new.allowed_scopes,
        tags: new.tags,
        tenant: new.tenant,
        jwks,
        metadata,
        created_at: now,
    };
    hub.store.upsert_client(&client).await?;
    hub.audit(
        AuditEvent::new("agent.created", Outcome::Success)
            .actor("admin", None)
            .user(user.clone())
            .tenant(client.tenant.clone())
            .client(client.client_id.clone())
            .source_ip(peer.ip().to_string())
            .reason(format!("agent \"{}\" created", client.name)),
    )
    .await?;
    let mut body = agent_json(&client, None);
    if let Some(secret) = secret {
        // Shown once; only its argon2 hash is kept.
        body["client_secret"] = json!(secret);
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

fn agent_json(client: &Client, decommissioned_at: Option<i64>) -> serde_json::Value {
    json!({
        "client_id": client.client_id,
        "name": client.name,
        "trust_level": client.trust_level.as_str(),
        "tags": client.tags,
        "tenant": client.tenant,
        "user_id": client.metadata.get("user_id"),
        "mcp_servers": client.allowed_resources,
        "scopes": client.allowed_scopes,
        "grant_types": client.grant_types,
        "token_endpoint_auth_method": client.token_endpoint_auth_method.as_str(),
        "conditions": client.metadata.get("conditions"),
        "created_at": client.created_at,
        "status": if decommissioned_at.is_some() { "decommissioned" } else { "active" },
        "decommissioned_at": decommissioned_at,
    })
}

/// `GET /admin/agents?tag=…&tenant=…&trust_level=…`: manual and verified clients.
pub async fn list_agents(
    State(hub): State<Arc<Hub>>,
    Query(query): Query<AgentQuery>,
) -> Result<Response, OAuthError> {
    let agents: Vec<_> = find_agents(&hub, &query)
        .await?
        .iter()
        .map(|(c, at)| agent_json(c, *at))
        .collect();
    Ok(Json(json!({ "agents": agents })).into_response())
}

/// `POST /admin/agents/{id}/decommission`: every access and refresh token the
/// agent holds stops working at once, and it can no longer authenticate.
pub async fn decommission_agent(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
) -> Result<Response, OAuthError> {
    let Some(refresh_tokens) = decommission(&hub, &id, None, &peer.ip().to_string()).await? else {
        return Ok(admin_error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no agent `{id}` in service"),
        ));
    };
    Ok(Json(json!({"client_id": id, "refresh_tokens_revoked": refresh_tokens})).into_response())
}

// ---- audit --------------------------------------------------------------------

/// `GET /admin/audit?from=…&to=…&type=…&client_id=…&user=…&tenant=…&correlation_id=…&after=…&limit=…`
/// (also `GET /control/audit` in test mode): events oldest first, paged by
/// `after` (a sequence number), with the newest sequence number in the trail
/// (`last_seq`) so a reader can start from "now".
pub async fn audit(
    State(hub): State<Arc<Hub>>,
    Query(filter): Query<crate::store::audit::AuditFilter>,
) -> Result<Response, OAuthError> {
    let (events, last_seq) = query_audit(&hub, filter).await?;
    let next = events.last().map(|(seq, _)| *seq);
    let events: Vec<_> = events
        .into_iter()
        .map(|(seq, e)| {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            v["seq"] = json!(seq);
            v
        })
        .collect();
    Ok(Json(json!({
        "schema_version": crate::audit::event::AUDIT_SCHEMA_VERSION,
        "events": events,
        "next_after": next,
        "last_seq": last_seq,
    }))
    .into_response())
}

/// `GET /admin/audit/stream`: every event as it is written, as Server-Sent
/// Events (`event: audit`, the event JSON as data). A reader that falls more
/// than 1,024 events behind is told how many it missed (`event: lagged`) and
/// should catch up through `GET /admin/audit`.
pub async fn audit_stream(State(hub): State<Arc<Hub>>) -> Response {
    audit_sse(&hub, |_| true, None)
}
