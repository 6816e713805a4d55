//! Enterprise single sign-on (docs/sso.md): the hub as an OpenID Connect
//! relying party of a tenant's own identity provider, with the
//! `openidconnect` crate doing discovery, PKCE, and ID token validation
//! (signature by the provider's JWKS, `iss`, `aud`, `exp`, `nonce`).
//!
//! The login page sends a user whose e-mail domain a tenant claims to that
//! tenant's provider (home-realm discovery). The browser gets a cookie of
//! its own for the sign-in; the redirect back completes it only in that
//! browser and only with the `state` sent (RFC 6749 §10.12). The user is
//! created on the first sign-in (just in time) and brought up to date on
//! every one after: name, e-mail, and the roles the ID token's groups map
//! to, which is what policies read. Then the hub's own rules apply: a
//! second factor when the tenant requires one and the provider's `amr`
//! shows none, and consent.

use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};

use crate::audit::event::{AuditEvent, Outcome};
use crate::error::{HubError, OAuthError};
use crate::fault::Fault;
use crate::hub::Hub;
use crate::model::{Authentication, SsoConfig, User};
use crate::oauth::sso_flights::SsoFlight;
use crate::pages::error_page;
use crate::params::Params;
use crate::store::authorizations::AuthorizationRequest;
use crate::vault::sealing::Sealed;
use crate::web_guard::read_cookie;

/// The cookie that ties a sign-in at a provider to the browser sent there.
pub const COOKIE: &str = "hub_sso";

/// The methods (RFC 8176) that are a factor besides a password: a provider
/// whose `amr` shows one of them with `pwd`, or `mfa`, proved two.
const SECOND_FACTORS: &[&str] = &[
    "otp", "hwk", "swk", "sms", "tel", "face", "fpt", "iris", "pin",
];

/// A tenant with a provider, ready to use: its settings and the hub's
/// client secret at it (opened).
pub struct TenantProvider {
    pub tenant: String,
    pub config: SsoConfig,
    secret: String,
}

/// Seals a tenant's client secret for storage.
pub fn seal_secret(hub: &Hub, tenant: &str, secret: &str) -> String {
    hub.vault
        .seal(secret.as_bytes(), &format!("sso:{tenant}"))
        .to_text()
}

fn open_secret(hub: &Hub, tenant: &str, sealed: &str) -> Result<String, HubError> {
    let sealed = Sealed::from_text(sealed)
        .ok_or_else(|| HubError::Key(format!("tenant {tenant}'s SSO secret is unreadable")))?;
    let bytes = hub.vault.open(&sealed, &format!("sso:{tenant}"))?;
    String::from_utf8(bytes)
        .map_err(|_| HubError::Key(format!("tenant {tenant}'s SSO secret is not text")))
}

/// The seeded tenant the demo identity provider serves.
pub const DEMO_TENANT: &str = "initech";

/// Points the demo tenant's provider at where the demo identity provider
/// actually listens (`--demo-idp-bind`); nothing when the seed has no such tenant.
pub async fn point_demo_tenant(hub: &Hub, issuer: &str) -> Result<(), HubError> {
    if let Some((tenant, mut config, sealed)) = hub
        .store
        .sso_tenants()
        .await?
        .into_iter()
        .find(|(id, _, _)| id == DEMO_TENANT)
    {
        config.issuer = issuer.to_owned();
        hub.store
            .set_tenant_sso(&tenant, Some((&config, &sealed)))
            .await?;
    }
    Ok(())
}

/// The first tenant with a provider that `matches`, its secret opened.
async fn find_provider(
    hub: &Hub,
    matches: impl Fn(&str, &SsoConfig) -> bool,
) -> Result<Option<TenantProvider>, HubError> {
    let Some((tenant, config, sealed)) = hub
        .store
        .sso_tenants()
        .await?
        .into_iter()
        .find(|(tenant, config, _)| matches(tenant, config))
    else {
        return Ok(None);
    };
    let secret = open_secret(hub, &tenant, &sealed)?;
    Ok(Some(TenantProvider {
        tenant,
        config,
        secret,
    }))
}

/// The tenant whose provider signs in `username` (an e-mail address whose
/// domain the tenant claims), if any: home-realm discovery.
pub async fn provider_for(hub: &Hub, username: &str) -> Result<Option<TenantProvider>, HubError> {
    let Some((_, domain)) = username.trim().rsplit_once('@') else {
        return Ok(None);
    };
    find_provider(hub, |_, config| {
        config
            .email_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    })
    .await
}

/// The provider of `tenant`, if it has one.
pub async fn provider_of_tenant(
    hub: &Hub,
    tenant: &str,
) -> Result<Option<TenantProvider>, HubError> {
    find_provider(hub, |id, _| id == tenant).await
}

/// Why a sign-in through a provider did not complete: the user sees
/// [`SsoError::user_message`], the audit trail the detail.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error(
        "the identity provider could not be reached or its discovery document is unusable: {0}"
    )]
    Discovery(String),
    #[error("the redirect back does not belong to a sign-in this browser started (unknown or expired, or another browser's)")]
    NoFlight,
    #[error("the state sent back differs from the one sent (RFC 6749 §10.12)")]
    StateMismatch,
    #[error("the identity provider answered with an error: {0}")]
    ProviderError(String),
    #[error("the code could not be redeemed at the provider's token endpoint: {0}")]
    TokenRequest(String),
    #[error("the token response carries no ID token")]
    NoIdToken,
    #[error("the ID token is not valid: {0}")]
    IdToken(String),
    #[error("{0}")]
    Account(String),
    #[error(transparent)]
    Hub(#[from] HubError),
}

impl SsoError {
    /// What the sign-in error page says: enough to act on, no detail an
    /// attacker could use.
    fn user_message(&self) -> &'static str {
        match self {
            SsoError::Discovery(_) | SsoError::TokenRequest(_) => {
                "Your organisation's sign-in service could not be reached. Try again later."
            }
            SsoError::NoFlight | SsoError::StateMismatch => {
                "This sign-in was not started in this browser, or it took too long. Start again from the application."
            }
            SsoError::ProviderError(_) => {
                "Your organisation's sign-in service did not sign you in."
            }
            SsoError::NoIdToken | SsoError::IdToken(_) => {
                "Your organisation's sign-in service sent an answer the hub cannot trust. Nothing was signed in."
            }
            SsoError::Account(_) => {
                "Your account cannot be signed in here. Ask your administrator."
            }
            SsoError::Hub(_) => "The sign-in failed. Try again later.",
        }
    }
}

/// The hub's redirect URI at every provider.
fn callback_url(hub: &Hub) -> String {
    hub.endpoint("/sso/callback")
}

async fn client(
    hub: &Hub,
    provider: &TenantProvider,
) -> Result<
    CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    SsoError,
> {
    let issuer = IssuerUrl::new(provider.config.issuer.clone())
        .map_err(|e| SsoError::Discovery(e.to_string()))?;
    let metadata = CoreProviderMetadata::discover_async(issuer, &hub.provider_http)
        .await
        .map_err(|e| SsoError::Discovery(error_chain(&e)))?;
    let redirect =
        RedirectUrl::new(callback_url(hub)).map_err(|e| SsoError::Discovery(e.to_string()))?;
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(provider.config.client_id.clone()),
        Some(ClientSecret::new(provider.secret.clone())),
    )
    .set_redirect_uri(redirect))
}

/// An error and its causes, on one line, for the audit trail.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Sends the browser to the tenant's provider for `request`, with PKCE,
/// `state` and `nonce`, and a cookie that ties the sign-in to it.
pub async fn start(
    hub: &Hub,
    request: &AuthorizationRequest,
    provider: &TenantProvider,
    login_hint: &str,
    source: std::net::IpAddr,
) -> Result<Response, OAuthError> {
    let client = match client(hub, provider).await {
        Ok(client) => client,
        Err(err) => {
            refused(hub, request, &provider.tenant, source, &err).await?;
            return Ok(sign_in_error(hub, &err));
        }
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut authorize = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in provider.config.scopes.iter().filter(|s| *s != "openid") {
        authorize = authorize.add_scope(Scope::new(scope.clone()));
    }
    if !login_hint.is_empty() {
        authorize = authorize.add_extra_param("login_hint", login_hint.to_owned());
    }
    let (url, state, nonce) = authorize.url();
    let binding = crate::random::secret();
    hub.sso_flights.push(
        SsoFlight {
            binding: crate::random::sha256_b64url(&binding),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            request_id: request.id.clone(),
            tenant: provider.tenant.clone(),
            created_at: hub.clock.now(),
        },
        hub.clock.now(),
    );
    let mut response = Redirect::to(url.as_str()).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        crate::oauth::signin::flow_cookie(
            hub,
            COOKIE,
            Some(&binding),
            crate::oauth::sso_flights::SSO_TTL_SECS,
        ),
    );
    Ok(response)
}

/// What the provider said about the user, after validation.
struct Vouched {
    issuer: String,
    subject: String,
    email: Option<String>,
    email_verified: bool,
    name: Option<String>,
    groups: Vec<String>,
    amr: Vec<String>,
}

/// Redeems the code and validates the ID token.
async fn redeem(
    hub: &Hub,
    provider: &TenantProvider,
    flight: &SsoFlight,
    code: &str,
) -> Result<Vouched, SsoError> {
    let client = client(hub, provider).await?;
    let response = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|e| SsoError::TokenRequest(e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(flight.pkce_verifier.clone()))
        .request_async(&hub.provider_http)
        .await
        .map_err(|e| SsoError::TokenRequest(error_chain(&e)))?;
    let id_token = response.id_token().ok_or(SsoError::NoIdToken)?;
    let now = hub.clock.now();
    let mut verifier = client
        .id_token_verifier()
        .set_time_fn(move || chrono::DateTime::from_timestamp(now, 0).unwrap_or_default());
    if hub.faults.on(Fault::SsoIssuerUnchecked) {
        verifier = verifier.require_issuer_match(false);
    }
    let expected = Nonce::new(flight.nonce.clone());
    let nonce_unchecked = hub.faults.on(Fault::SsoNonceUnchecked);
    let claims = id_token
        .claims(&verifier, |presented: Option<&Nonce>| {
            if nonce_unchecked {
                return Ok(());
            }
            match presented {
                Some(n) if n.secret() == expected.secret() => Ok(()),
                Some(_) => Err("the nonce differs from the one sent".to_owned()),
                None => Err("the nonce sent is missing".to_owned()),
            }
        })
        .map_err(|e| SsoError::IdToken(error_chain(&e)))?;
    // Claims the crate does not model (the groups), read from the payload
    // whose signature was just verified.
    let payload = id_token
        .to_string()
        .split('.')
        .nth(1)
        .and_then(|p| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .unwrap_or_default();
    let groups = payload[provider.config.groups_claim.as_str()]
        .as_array()
        .map(|groups| {
            groups
                .iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .take(256)
                .collect()
        })
        .unwrap_or_default();
    Ok(Vouched {
        issuer: claims.issuer().as_str().to_owned(),
        subject: claims.subject().as_str().to_owned(),
        email: claims.email().map(|e| e.as_str().to_owned()),
        email_verified: claims.email_verified().unwrap_or(false),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned()),
        groups,
        amr: claims
            .auth_method_refs()
            .map(|amr| amr.iter().map(|m| m.as_str().to_owned()).collect())
            .unwrap_or_default(),
    })
}

/// The hub user behind `vouched`: created on the first sign-in, brought up
/// to date on every one (name, e-mail, tenant, and roles from the groups).
async fn just_in_time_user(
    hub: &Hub,
    provider: &TenantProvider,
    vouched: &Vouched,
) -> Result<(User, Option<&'static str>), SsoError> {
    let roles = if hub.faults.on(Fault::SsoGroupsNotMapped) {
        Vec::new()
    } else {
        provider.config.roles_for(&vouched.groups)
    };
    let linked = hub
        .store
        .identity_user(&vouched.issuer, &vouched.subject)
        .await?;
    let existing = match &linked {
        Some(id) => hub.store.user_by_id(id).await?,
        None => None,
    };
    // What linking this identity did, if it is new: made a user, or found
    // the one the tenant's single sign-on made before.
    let mut linked = None;
    let mut user = match existing {
        Some(user) => user,
        None => {
            let username = match (&vouched.email, vouched.email_verified) {
                (Some(email), true) => email.to_ascii_lowercase(),
                _ => format!("{}@{}", vouched.subject, provider.tenant),
            };
            match hub.store.user_by_username(&username).await? {
                // An account this tenant's single sign-on made, now vouched
                // for by the tenant's provider under another issuer (the
                // tenant moved providers): the same person, by verified
                // e-mail within the tenant.
                Some(made)
                    if made.password_hash == NO_PASSWORD
                        && made.tenants.contains(&provider.tenant)
                        && vouched.email_verified =>
                {
                    linked = Some("linked to the account this tenant's single sign-on made before, by its verified e-mail");
                    made
                }
                // A local account (a password here) or another tenant's is
                // never taken over by an e-mail address alone.
                Some(_) => {
                    return Err(SsoError::Account(format!(
                        "an account is already named {username}; an administrator must link it, the hub does not by e-mail alone"
                    )))
                }
                None => {
                    linked = Some("created just in time");
                    User {
                id: crate::random::id("user"),
                username,
                name: String::new(),
                email: None,
                // Never a password: the account signs in through its provider.
                password_hash: crate::oauth::sso::NO_PASSWORD.to_owned(),
                tenants: Vec::new(),
                roles: Vec::new(),
                    permissions: Vec::new(),
                    claims: serde_json::Map::new(),
                    }
                }
            }
        }
    };
    user.name = vouched
        .name
        .clone()
        .unwrap_or_else(|| user.username.clone());
    if vouched.email_verified {
        user.email = vouched.email.clone();
    }
    if !user.tenants.contains(&provider.tenant) {
        user.tenants.insert(0, provider.tenant.clone());
    }
    user.roles = roles;
    user.claims
        .insert("groups".into(), serde_json::json!(vouched.groups));
    user.claims
        .insert("idp".into(), serde_json::json!(vouched.issuer));
    hub.store.upsert_user(&user).await?;
    hub.store
        .record_identity_sign_in(
            &vouched.issuer,
            &vouched.subject,
            &user.id,
            &provider.tenant,
            hub.clock.now(),
        )
        .await?;
    Ok((user, linked))
}

/// The password hash of an account made by single sign-on: no PHC string,
/// so no password ever matches it.
pub const NO_PASSWORD: &str = "!sso";

/// How the provider's `amr` reads at the hub: its methods, and `mfa` when
/// they show a factor besides the password.
fn upstream_authentication(now: i64, amr: &[String]) -> Authentication {
    let mut methods: Vec<String> = amr.iter().take(16).cloned().collect();
    let second = methods.iter().any(|m| SECOND_FACTORS.contains(&m.as_str()));
    if second && !methods.iter().any(|m| m == "mfa") {
        methods.push("mfa".to_owned());
    }
    if methods.is_empty() {
        // The provider vouched without saying how: one factor, federated.
        methods.push("fed".to_owned());
    }
    Authentication::new(now, methods)
}

async fn refused(
    hub: &Hub,
    request: &AuthorizationRequest,
    tenant: &str,
    source: std::net::IpAddr,
    err: &SsoError,
) -> Result<(), HubError> {
    hub.audit(
        AuditEvent::new("user.sso.refused", Outcome::Failure)
            .actor("anonymous", None)
            .tenant(Some(tenant.to_owned()))
            .client(request.client_id.clone())
            .resource(request.resource.clone())
            .correlation(request.correlation_id.clone())
            .source_ip(source.to_string())
            .reason(err.to_string()),
    )
    .await
}

fn sign_in_error(hub: &Hub, err: &SsoError) -> Response {
    error_page(
        &hub.pages,
        &OAuthError::AccessDenied(err.user_message().to_owned()),
    )
}

/// `GET /sso/callback`: the provider's redirect back.
pub async fn callback(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let source = hub.source_address(peer.ip(), &headers);
    match complete(&hub, &headers, &uri, source).await {
        Ok(response) => response,
        Err(Refusal::Page(err)) => error_page(&hub.pages, &err),
        Err(Refusal::Sso(err)) => sign_in_error(&hub, &err),
    }
}

enum Refusal {
    Page(OAuthError),
    Sso(SsoError),
}

impl From<OAuthError> for Refusal {
    fn from(err: OAuthError) -> Self {
        Refusal::Page(err)
    }
}

impl From<HubError> for Refusal {
    fn from(err: HubError) -> Self {
        Refusal::Page(err.into())
    }
}

async fn complete(
    hub: &Hub,
    headers: &HeaderMap,
    uri: &Uri,
    source: std::net::IpAddr,
) -> Result<Response, Refusal> {
    let params = Params::from_query(uri.query())?;
    let now = hub.clock.now();
    let flight = read_cookie(headers, COOKIE)
        .map(crate::random::sha256_b64url)
        .and_then(|binding| hub.sso_flights.take(&binding, now));
    let Some(flight) = flight else {
        let err = SsoError::NoFlight;
        hub.audit(
            AuditEvent::new("user.sso.refused", Outcome::Failure)
                .actor("anonymous", None)
                .source_ip(source.to_string())
                .reason(err.to_string()),
        )
        .await?;
        return Err(Refusal::Sso(err));
    };
    let request = hub
        .store
        .authorization_request(&flight.request_id)
        .await?
        .filter(|r| !r.completed && r.expires_at > now)
        .ok_or_else(|| {
            OAuthError::AccessDenied(
                "the authorization this sign-in was for has ended; start again from the application"
                    .into(),
            )
        })?;
    let provider = provider_of_tenant(hub, &flight.tenant)
        .await?
        .ok_or_else(|| {
            OAuthError::AccessDenied("the organisation no longer signs in here".into())
        })?;
    let (state, error, code) = (
        params.get("state")?,
        params.get("error")?,
        params.get("code")?,
    );
    let outcome = async {
        if state != Some(flight.state.as_str()) && !hub.faults.on(Fault::SsoStateUnchecked) {
            return Err(SsoError::StateMismatch);
        }
        if let Some(error) = error {
            return Err(SsoError::ProviderError(error.chars().take(64).collect()));
        }
        let code =
            code.ok_or_else(|| SsoError::ProviderError("no code in the redirect back".into()))?;
        let vouched = redeem(hub, &provider, &flight, code).await?;
        let (user, linked) = just_in_time_user(hub, &provider, &vouched).await?;
        Ok((vouched, user, linked))
    }
    .await;
    let (vouched, user, linked) = match outcome {
        Ok(done) => done,
        Err(err) => {
            refused(hub, &request, &flight.tenant, source, &err).await?;
            return Err(Refusal::Sso(err));
        }
    };
    let event = |kind: &str| {
        AuditEvent::new(kind, Outcome::Success)
            .actor("user", user.id.clone())
            .user(user.id.clone())
            .tenant(Some(flight.tenant.clone()))
            .client(request.client_id.clone())
            .resource(request.resource.clone())
            .correlation(request.correlation_id.clone())
            .source_ip(source.to_string())
    };
    if let Some(how) = linked {
        hub.audit(event("user.sso.linked").reason(format!(
            "{how} for {} at {}",
            vouched.subject, vouched.issuer
        )))
        .await?;
    }
    hub.audit(event("user.login").reason(format!(
        "signed in through {} (single sign-on); groups [{}] gave roles [{}]",
        vouched.issuer,
        vouched.groups.join(", "),
        user.roles.join(", ")
    )))
    .await?;
    let how = upstream_authentication(now, &vouched.amr);
    let mut response =
        if !how.is_multi_factor() && crate::oauth::second_factor::required_for(hub, &user).await? {
            // The provider proved one factor; the tenant wants two.
            crate::oauth::second_factor::challenge(hub, &request, &user).await?
        } else {
            crate::oauth::signin::signed_in(hub, &request, &user.id, &how, None).await?
        };
    response.headers_mut().append(
        header::SET_COOKIE,
        crate::oauth::signin::flow_cookie(hub, COOKIE, None, 0),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_factor_upstream_counts_as_two() {
        let two = upstream_authentication(5, &["pwd".into(), "otp".into()]);
        assert!(two.is_multi_factor());
        assert_eq!(two.amr, ["pwd", "otp", "mfa"]);
        let one = upstream_authentication(5, &["pwd".into()]);
        assert!(!one.is_multi_factor());
        let unsaid = upstream_authentication(5, &[]);
        assert_eq!(unsaid.amr, ["fed"]);
        assert!(!unsaid.is_multi_factor());
    }
}
