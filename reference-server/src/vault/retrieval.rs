//! Handing out Connection tokens: the RFC 8693 token exchange whose
//! `resource` names a Connection, and the refresh that keeps stored tokens
//! usable (docs/connections.md).
//!
//! Who gets what is decided here: Connections Policies for user tokens, the
//! connection's `allowed_clients` for agents (never policies). A stored OAuth
//! token that is expired or about to be is refreshed at the provider first,
//! once per stored token however many requests wait for it (single flight),
//! and a rotated refresh token is sealed and committed before the new access
//! token leaves the hub.

use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    ClientId, ClientSecret, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use serde_json::json;

use crate::audit::event::DroppedScope;
use crate::audit::event::{AuditEvent, Outcome};
use crate::error::OAuthError;
use crate::fault::Fault;
use crate::hub::Hub;
use crate::oauth::client_auth::authenticate;
use crate::oauth::grants::TOKEN_EXCHANGE_GRANT;
use crate::params::Params;
use crate::policy::matching::Subject;
use crate::vault::connection::{
    Connection, ConnectionKind, Credential, Owner, TokenRow, RESOURCE_PREFIX,
};

const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The `issued_token_type` of an API key: not an OAuth token (RFC 8693 §3 allows other URIs).
const API_KEY_TYPE: &str = "urn:hub:token-type:api-key";
/// A stored token this close to expiry is refreshed before it is handed out.
const EXPIRY_SKEW_SECS: i64 = 30;

/// The HTTP client for provider calls: bounded by `timeout` and never
/// following redirects (a token endpoint that redirects is misconfigured).
pub fn provider_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// Whether the token exchange request asks for a Connection's token.
pub fn names_connection(params: &Params) -> bool {
    params
        .all("resource")
        .iter()
        .any(|r| r.starts_with(RESOURCE_PREFIX))
}

/// What is known about a request as it is decided, for its audit event.
#[derive(Debug, Default)]
struct Attempt {
    connection: Option<String>,
    /// `mcp_server` for a resource server fetching for its caller, else `client`.
    actor_kind: &'static str,
    actor: Option<String>,
    client: Option<String>,
    user: Option<String>,
    tenant: Option<String>,
    requested: Vec<String>,
    granted: Vec<String>,
    dropped: Vec<DroppedScope>,
    policies: Vec<String>,
    act: Option<serde_json::Value>,
}

impl Attempt {
    fn event(&self, kind: &str, outcome: Outcome, correlation: &str, ip: &str) -> AuditEvent {
        AuditEvent::new(kind, outcome)
            .actor(
                if self.actor_kind.is_empty() {
                    "client"
                } else {
                    self.actor_kind
                },
                self.actor.clone(),
            )
            .client(self.client.clone())
            .user(self.user.clone())
            .tenant(self.tenant.clone())
            .resource(
                self.connection
                    .as_ref()
                    .map(|c| format!("{RESOURCE_PREFIX}{c}")),
            )
            .scopes(&self.requested, &self.granted)
            .dropped(self.dropped.clone())
            .policies(self.policies.clone())
            .act(self.act.clone())
            .correlation(correlation.to_owned())
            .source_ip(ip.to_owned())
    }
}

/// `POST /oauth/token` with the token-exchange grant and a connection
/// `resource`: hands out the Connection's token, or says precisely why not.
pub async fn exchange(
    hub: &Hub,
    headers: &HeaderMap,
    params: &Params,
    source_ip: &str,
    correlation: &str,
) -> Result<Response, OAuthError> {
    let mut attempt = Attempt::default();
    match decide(hub, headers, params, &mut attempt, source_ip, correlation).await {
        Ok(issued) => {
            if !hub.faults.on(Fault::DropConnectionAudit) {
                let mut event = attempt.event(
                    "connection.token.issued",
                    Outcome::Success,
                    correlation,
                    source_ip,
                );
                let mut reason = format!(
                    "{} token of connection {} handed out",
                    issued.owner_label,
                    attempt.connection.as_deref().unwrap_or_default()
                );
                if hub.faults.on(Fault::LeakConnectionTokenInAudit) {
                    reason.push_str(&format!(": {}", issued.token));
                }
                event = event.reason(reason);
                hub.audit(event).await?;
            }
            Ok(issued.response)
        }
        Err(err) => {
            hub.audit(
                attempt
                    .event(
                        "connection.token.denied",
                        Outcome::Failure,
                        correlation,
                        source_ip,
                    )
                    .reason(err.description().to_owned()),
            )
            .await?;
            Err(err)
        }
    }
}

struct Issued {
    response: Response,
    token: String,
    owner_label: String,
}

async fn decide(
    hub: &Hub,
    headers: &HeaderMap,
    params: &Params,
    attempt: &mut Attempt,
    source_ip: &str,
    correlation: &str,
) -> Result<Issued, OAuthError> {
    let caller = authenticate(hub, headers, params).await?;
    attempt.actor = Some(caller.client.client_id.clone());
    if caller.client.tags.iter().any(|t| t == "resource_server") {
        attempt.actor_kind = "mcp_server";
    }
    if !caller.authenticated {
        return Err(OAuthError::InvalidClient(
            "retrieving a connection token requires client authentication".into(),
        ));
    }
    if !caller.client.allows_grant(TOKEN_EXCHANGE_GRANT) {
        return Err(OAuthError::UnauthorizedClient(
            "this client is not configured for token exchange".into(),
        ));
    }
    if params.require("subject_token_type")? != ACCESS_TOKEN_TYPE {
        return Err(OAuthError::InvalidRequest(format!(
            "subject_token_type must be {ACCESS_TOKEN_TYPE}"
        )));
    }
    if let Some(t) = params.get("requested_token_type")? {
        if t != ACCESS_TOKEN_TYPE && t != API_KEY_TYPE {
            return Err(OAuthError::InvalidRequest(format!(
                "requested_token_type must be {ACCESS_TOKEN_TYPE} or {API_KEY_TYPE}"
            )));
        }
    }
    let resources = params.all("resource");
    let [resource] = resources.as_slice() else {
        return Err(OAuthError::InvalidTarget(
            "name exactly one connection as the resource".into(),
        ));
    };
    let connection_id = resource
        .strip_prefix(RESOURCE_PREFIX)
        .ok_or_else(|| OAuthError::InvalidTarget("the resource is not a connection".into()))?;
    attempt.connection = Some(connection_id.to_owned());

    let subject = hub
        .validate_access_token(params.require("subject_token")?, None)
        .await
        .map_err(|e| {
            OAuthError::InvalidRequest(format!(
                "the subject_token is not acceptable: {}",
                e.description()
            ))
        })?;
    attempt.client = Some(subject.client_id.clone());
    attempt.tenant = subject.tenant.clone();
    attempt.act = subject.act.clone();

    // The caller is the client the token was issued to, or the MCP server it is for.
    if caller.client.client_id != subject.client_id {
        let is_audience = caller.client.tags.iter().any(|t| t == "resource_server")
            && hub
                .store
                .mcp_servers()
                .await?
                .iter()
                .filter(|s| caller.client.allowed_resources.contains(&s.id))
                .any(|s| subject.aud.contains(&hub.resource_url(s)));
        if !is_audience {
            return Err(OAuthError::InvalidGrant(
                "the subject_token was not issued to this client or to its MCP server".into(),
            ));
        }
    }

    let connection = hub.connection(connection_id).await?.ok_or_else(|| {
        OAuthError::InvalidTarget(format!("there is no connection `{connection_id}`"))
    })?;
    let requested: Vec<String> = match params.get("scope")? {
        Some(scope) => {
            let mut out: Vec<String> = Vec::new();
            for s in scope.split_ascii_whitespace() {
                if !out.iter().any(|o| o == s) {
                    out.push(s.to_owned());
                }
            }
            out
        }
        None => connection.scopes.clone(),
    };
    attempt.requested = requested.clone();
    if let Some(unknown) = requested.iter().find(|s| !connection.scopes.contains(s)) {
        return Err(OAuthError::InvalidScope(format!(
            "`{unknown}` is not a scope of connection {connection_id}"
        )));
    }

    let token_client = hub.store.client(&subject.client_id).await?;
    let is_agent = subject.sub == subject.client_id;
    let (permitted, candidates) = if is_agent {
        let client = token_client.ok_or_else(|| {
            OAuthError::InvalidRequest("the subject_token's client no longer exists".into())
        })?;
        if hub.faults.on(Fault::ConnectionPolicyOnAgents) {
            return Err(OAuthError::InvalidTarget(format!(
                "no Connections Policy allows agent {} connection {connection_id}",
                client.client_id
            )));
        }
        let listed = connection.allowed_clients.contains(&client.client_id);
        if !listed && !hub.faults.on(Fault::IgnoreAllowedClients) {
            return Err(OAuthError::InvalidTarget(format!(
                "agent {} is not among the allowed clients of connection {connection_id}",
                client.client_id
            )));
        }
        let mut candidates = vec![Owner::Agent(client.client_id.clone())];
        if let Some(tenant) = &client.tenant {
            candidates.push(Owner::Tenant(tenant.clone()));
        }
        (requested.clone(), candidates)
    } else {
        let user = hub.store.user_by_id(&subject.sub).await?.ok_or_else(|| {
            OAuthError::InvalidRequest(
                "the subject_token represents neither a user nor an agent".into(),
            )
        })?;
        attempt.user = Some(user.id.clone());
        let token_client = token_client.ok_or_else(|| {
            OAuthError::InvalidRequest("the subject_token's client no longer exists".into())
        })?;
        let permitted =
            policy_permits(hub, &connection, &user, &token_client, &requested, attempt).await?;
        let tenant = subject
            .tenant
            .clone()
            .or_else(|| user.tenants.first().cloned());
        attempt.tenant = tenant.clone();
        let mut candidates = vec![Owner::User(user.id.clone())];
        if let Some(tenant) = tenant {
            candidates.push(Owner::Tenant(tenant));
        }
        (permitted, candidates)
    };
    attempt.granted = permitted.clone();

    let row = find_token(hub, &connection, &candidates).await?;
    let connect_uri = hub.endpoint(&format!("/connections/{connection_id}/connect"));
    let Some(row) = row else {
        return Err(OAuthError::ReauthorizationRequired {
            description: format!(
                "no token of connection {connection_id} is stored for this user, tenant or agent; connect first"
            ),
            connect_uri,
        });
    };
    if row.needs_reauth {
        return Err(reauthorization(connection_id, connect_uri));
    }
    let owner_label = row.owner.to_string();

    if connection.kind == ConnectionKind::ApiKey {
        let key = row.credential.api_key.clone().unwrap_or_default();
        attempt.granted = Vec::new();
        let as_bearer = hub.faults.on(Fault::ApiKeyAsBearer);
        let body = json!({
            "access_token": key,
            "issued_token_type": if as_bearer { ACCESS_TOKEN_TYPE } else { API_KEY_TYPE },
            "token_type": if as_bearer { "Bearer" } else { "N_A" },
            "connection": connection.id,
            "api_base_url": connection.api_base_url,
        });
        return Ok(Issued {
            response: no_store(Json(body).into_response()),
            token: key,
            owner_label,
        });
    }

    let credential = obtain(
        hub,
        &connection,
        row,
        &permitted,
        attempt,
        source_ip,
        correlation,
    )
    .await?;
    let token = credential.access_token.clone().unwrap_or_default();
    attempt.granted = credential.scopes.clone();
    let mut body = json!({
        "access_token": token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "scope": credential.scopes.join(" "),
        "connection": connection.id,
        "api_base_url": connection.api_base_url,
    });
    if let Some(expires_at) = credential.expires_at {
        body["expires_in"] = json!((expires_at - hub.clock.now()).max(0));
    }
    Ok(Issued {
        response: no_store(Json(body).into_response()),
        token,
        owner_label,
    })
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn reauthorization(connection_id: &str, connect_uri: String) -> OAuthError {
    OAuthError::ReauthorizationRequired {
        description: format!(
            "the provider refused the stored refresh token of connection {connection_id}; the owner must connect again"
        ),
        connect_uri,
    }
}

/// The requested scopes the Connections Policies permit this user (through
/// the client the token was issued to); no matching policy is a denial.
async fn policy_permits(
    hub: &Hub,
    connection: &Connection,
    user: &crate::model::User,
    client: &crate::model::Client,
    requested: &[String],
    attempt: &mut Attempt,
) -> Result<Vec<String>, OAuthError> {
    let policies = hub.policies().await?;
    let subject = Subject { user, client };
    let known = connection.known();
    let decision = policies
        .decide_connection(&subject, &known, requested)
        .explain();
    // `matched` holds only policies with a grant on this connection.
    let granting: Vec<String> = decision.matched.iter().map(|m| m.id.clone()).collect();
    attempt.policies = granting.clone();
    attempt.dropped = decision
        .dropped
        .iter()
        .map(|d| DroppedScope {
            scope: d.scope.clone(),
            reason: d.reason.clone(),
        })
        .collect();
    if hub.faults.on(Fault::IgnoreConnectionPolicy) && granting.is_empty() {
        attempt.dropped.clear();
        return Ok(requested.to_vec());
    }
    if granting.is_empty() {
        return Err(OAuthError::InvalidTarget(format!(
            "no Connections Policy allows user {} connection {}: {}",
            user.username,
            connection.id,
            decision.explanation()
        )));
    }
    if connection.kind == ConnectionKind::ApiKey {
        return Ok(Vec::new());
    }
    if decision.permitted.is_empty() {
        return Err(OAuthError::InvalidScope(format!(
            "the Connections Policies allow none of the requested scopes: {}",
            decision.explanation()
        )));
    }
    if hub.faults.on(Fault::ConnectionPolicyIgnoresScopes) {
        attempt.dropped.clear();
        return Ok(requested.to_vec());
    }
    Ok(decision.permitted)
}

/// The first stored token among the owners, in order (own, then tenant).
async fn find_token(
    hub: &Hub,
    connection: &Connection,
    candidates: &[Owner],
) -> Result<Option<TokenRow>, OAuthError> {
    let mut candidates = candidates.to_vec();
    if hub.faults.on(Fault::TenantTokenBeforeOwn) {
        candidates.reverse();
    }
    for owner in &candidates {
        if let Some(row) = hub.connection_token(&connection.id, owner, "").await? {
            return Ok(Some(row));
        }
        // Deliberate isolation failures, for the sensitivity matrix.
        let leak_kind = match owner {
            Owner::User(_) if hub.faults.on(Fault::CrossUserConnection) => Some("user"),
            Owner::Tenant(_) if hub.faults.on(Fault::CrossTenantConnection) => Some("tenant"),
            _ => None,
        };
        if let Some(kind) = leak_kind {
            if let Some(row) = hub
                .connection_tokens(&connection.id, Some(kind))
                .await?
                .into_iter()
                .next()
            {
                return Ok(Some(row));
            }
        }
    }
    Ok(None)
}

fn expiring(credential: &Credential, now: i64) -> bool {
    credential
        .expires_at
        .is_some_and(|e| e <= now + EXPIRY_SKEW_SECS)
}

/// A usable access token carrying exactly `permitted ∩ stored` scopes:
/// the stored one (refreshed if needed) or a narrower one derived from it.
async fn obtain(
    hub: &Hub,
    connection: &Connection,
    row: TokenRow,
    permitted: &[String],
    attempt: &Attempt,
    source_ip: &str,
    correlation: &str,
) -> Result<Credential, OAuthError> {
    let stored = &row.credential.scopes;
    let wanted: Vec<String> = if stored.is_empty() {
        permitted.to_vec()
    } else {
        permitted
            .iter()
            .filter(|s| stored.contains(s))
            .cloned()
            .collect()
    };
    if wanted.is_empty() {
        return Err(OAuthError::InvalidScope(format!(
            "the stored token of connection {} carries none of the permitted scopes",
            connection.id
        )));
    }
    let narrowed = !stored.is_empty() && stored.iter().any(|s| !wanted.contains(s));
    let now = hub.clock.now();
    let ctx = RefreshContext {
        hub,
        connection,
        attempt,
        source_ip,
        correlation,
    };
    if !narrowed {
        if !expiring(&row.credential, now) || hub.faults.on(Fault::NoVaultRefresh) {
            return Ok(row.credential);
        }
        let lock = hub.connection_flights.lock_for(row.id);
        let _guard = if hub.faults.on(Fault::RefreshWithoutSingleFlight) {
            None
        } else {
            Some(lock.lock().await)
        };
        // Whoever held the lock may have refreshed it meanwhile.
        let row = if _guard.is_some() {
            hub.connection_token(&connection.id, &row.owner, "")
                .await?
                .ok_or_else(|| reauthorization(&connection.id, ctx.connect_uri()))?
        } else {
            row
        };
        if row.needs_reauth {
            return Err(reauthorization(&connection.id, ctx.connect_uri()));
        }
        if !expiring(&row.credential, hub.clock.now()) {
            return Ok(row.credential);
        }
        return ctx.refresh(&row, None).await;
    }

    let mut key = wanted.clone();
    key.sort();
    let scope_key = key.join(" ");
    if let Some(derived) = hub
        .connection_token(&connection.id, &row.owner, &scope_key)
        .await?
    {
        if !expiring(&derived.credential, now) {
            return Ok(derived.credential);
        }
    }
    let lock = hub.connection_flights.lock_for(row.id);
    let _guard = lock.lock().await;
    if let Some(derived) = hub
        .connection_token(&connection.id, &row.owner, &scope_key)
        .await?
    {
        if !expiring(&derived.credential, hub.clock.now()) {
            return Ok(derived.credential);
        }
    }
    let row = hub
        .connection_token(&connection.id, &row.owner, "")
        .await?
        .ok_or_else(|| reauthorization(&connection.id, ctx.connect_uri()))?;
    if row.needs_reauth {
        return Err(reauthorization(&connection.id, ctx.connect_uri()));
    }
    let fresh = ctx.refresh(&row, Some(&wanted)).await?;
    hub.put_connection_token(
        &connection.id,
        &row.owner,
        &scope_key,
        &fresh,
        Some(hub.clock.now()),
    )
    .await?;
    Ok(fresh)
}

struct RefreshContext<'a> {
    hub: &'a Hub,
    connection: &'a Connection,
    attempt: &'a Attempt,
    source_ip: &'a str,
    correlation: &'a str,
}

impl RefreshContext<'_> {
    fn connect_uri(&self) -> String {
        self.hub
            .endpoint(&format!("/connections/{}/connect", self.connection.id))
    }

    async fn audit(&self, kind: &str, outcome: Outcome, reason: String) -> Result<(), OAuthError> {
        if self.hub.faults.on(Fault::DropConnectionAudit) {
            return Ok(());
        }
        self.hub
            .audit(
                self.attempt
                    .event(kind, outcome, self.correlation, self.source_ip)
                    .reason(reason),
            )
            .await?;
        Ok(())
    }

    /// Refreshes the stored token `row` at the provider (narrowed to
    /// `narrow` when given) and commits the outcome before returning it:
    /// the rotated refresh token, or the need to re-authorize.
    async fn refresh(
        &self,
        row: &TokenRow,
        narrow: Option<&[String]>,
    ) -> Result<Credential, OAuthError> {
        let hub = self.hub;
        let connection = self.connection;
        let Some(refresh_token) = row.credential.refresh_token.clone() else {
            hub.mark_needs_reauth(row.id).await?;
            self.audit(
                "connection.refresh_failed",
                Outcome::Failure,
                format!(
                    "the stored token of {} expired and has no refresh token",
                    row.owner
                ),
            )
            .await?;
            return Err(OAuthError::ReauthorizationRequired {
                description: format!(
                    "the stored token of connection {} expired and cannot be refreshed; connect again",
                    connection.id
                ),
                connect_uri: self.connect_uri(),
            });
        };
        let token_url = connection
            .token_endpoint
            .clone()
            .and_then(|u| TokenUrl::new(u).ok())
            .ok_or(OAuthError::ServerError)?;
        let mut client = BasicClient::new(ClientId::new(
            connection.client_id.clone().unwrap_or_default(),
        ))
        .set_token_uri(token_url);
        if let Some(secret) = &connection.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.clone()));
        }
        let rt = RefreshToken::new(refresh_token.clone());
        let mut request = client.exchange_refresh_token(&rt);
        if let Some(scopes) = narrow {
            request = request.add_scopes(scopes.iter().cloned().map(Scope::new));
        }
        let http = if hub.faults.on(Fault::UnboundedProviderTimeout) {
            &hub.provider_http_unbounded
        } else {
            &hub.provider_http
        };
        let result = request.request_async(http).await;
        let now = hub.clock.now();
        let response = match result {
            Ok(response) => response,
            Err(err) => return Err(self.refresh_failed(row, err).await?),
        };
        let new_refresh = match response.refresh_token() {
            Some(rotated) if !hub.faults.on(Fault::DropRotatedRefreshToken) => {
                rotated.secret().clone()
            }
            _ => refresh_token,
        };
        let scopes: Vec<String> = match response.scopes() {
            Some(s) => s.iter().map(|s| s.to_string()).collect(),
            None => narrow
                .map(<[String]>::to_vec)
                .unwrap_or_else(|| row.credential.scopes.clone()),
        };
        let fresh = Credential {
            access_token: Some(response.access_token().secret().clone()),
            refresh_token: None,
            api_key: None,
            expires_at: response.expires_in().map(|d| now + d.as_secs() as i64),
            scopes,
            metadata: row.credential.metadata.clone(),
        };
        // Commit the rotated refresh token before anything is handed out.
        let stored = if narrow.is_some() {
            Credential {
                refresh_token: Some(new_refresh),
                ..row.credential.clone()
            }
        } else {
            Credential {
                refresh_token: Some(new_refresh),
                ..fresh.clone()
            }
        };
        hub.put_connection_token(&connection.id, &row.owner, "", &stored, Some(now))
            .await?;
        self.audit(
            "connection.refreshed",
            Outcome::Success,
            format!(
                "token of {} refreshed at the provider{}",
                row.owner,
                if narrow.is_some() { " (narrowed)" } else { "" }
            ),
        )
        .await?;
        Ok(fresh)
    }

    async fn refresh_failed(
        &self,
        row: &TokenRow,
        err: RequestTokenError<
            oauth2::HttpClientError<reqwest::Error>,
            oauth2::basic::BasicErrorResponse,
        >,
    ) -> Result<OAuthError, OAuthError> {
        let hub = self.hub;
        let (reason, error) = match &err {
            RequestTokenError::ServerResponse(e)
                if *e.error() == BasicErrorResponseType::InvalidGrant =>
            {
                if !hub.faults.on(Fault::RetryAfterInvalidGrant) {
                    hub.mark_needs_reauth(row.id).await?;
                }
                (
                    "the provider answered invalid_grant: the refresh token is no longer valid"
                        .to_owned(),
                    reauthorization(&self.connection.id, self.connect_uri()),
                )
            }
            RequestTokenError::ServerResponse(e)
                if *e.error() == BasicErrorResponseType::InvalidScope =>
            {
                (
                    "the provider refused to narrow the token's scopes".to_owned(),
                    OAuthError::InvalidScope(
                        "the provider cannot issue a token with only the permitted scopes".into(),
                    ),
                )
            }
            RequestTokenError::ServerResponse(e) => (
                format!("the provider refused the refresh: {}", e.error()),
                self.unavailable(
                    format!("the provider refused the refresh ({})", e.error()),
                    false,
                ),
            ),
            RequestTokenError::Request(oauth2::HttpClientError::Reqwest(e)) if e.is_timeout() => (
                "the provider did not answer in time".to_owned(),
                self.unavailable(
                    format!(
                        "the provider of connection {} did not answer within {} s",
                        self.connection.id,
                        hub.config.provider_timeout.as_secs()
                    ),
                    true,
                ),
            ),
            RequestTokenError::Request(e) => (
                format!("the provider could not be reached: {e}"),
                self.unavailable("the provider could not be reached".into(), false),
            ),
            RequestTokenError::Parse(e, _) => (
                format!("the provider's token response is not a valid OAuth token response: {e}"),
                self.unavailable(
                    "the provider's token response is not a valid OAuth token response".into(),
                    false,
                ),
            ),
            RequestTokenError::Other(why) => (
                format!("the provider's answer is unusable: {why}"),
                self.unavailable(
                    "the provider's answer is not a JSON token response".into(),
                    false,
                ),
            ),
        };
        tracing::warn!(connection = %self.connection.id, owner = %row.owner, %reason, "connection refresh failed");
        self.audit("connection.refresh_failed", Outcome::Failure, reason)
            .await?;
        Ok(error)
    }

    fn unavailable(&self, description: String, timed_out: bool) -> OAuthError {
        if !timed_out && self.hub.faults.on(Fault::ProviderErrorsAs500) {
            return OAuthError::ServerError;
        }
        OAuthError::ProviderUnavailable {
            description,
            timed_out,
        }
    }
}
