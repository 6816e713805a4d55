//! Signed JWT assertions (RFC 7523, validated per §3): client authentication
//! with `private_key_jwt` (§2.2) and the JWT bearer authorization grant (§2.1).
//! Keys come from the client's registered `jwks` or its `jwks_uri`.
//!
//! Accepted audiences: the issuer identifier or the token endpoint URL, as
//! RFC 7523 §3 item 3 allows either to identify the authorization server.
//! Assertions must carry `exp` no more than ten minutes ahead and a `jti`
//! that this client has not used before.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::error::OAuthError;
use crate::fault::Fault;
use crate::hub::Hub;
use crate::model::{AuthMethod, Client};
use crate::oauth::access_token::Audience;

/// `client_assertion_type` for JWT client authentication (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest an assertion may live: it is a one-shot credential.
const MAX_ASSERTION_LIFETIME: i64 = 600;

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: Option<i64>,
    jti: Option<String>,
}

/// Why an assertion was refused; the caller decides the error code:
/// `invalid_client` for client authentication (RFC 7523 §3.2), `invalid_grant`
/// for an authorization grant (RFC 7523 §3.1).
struct Rejection(String);

fn reject(why: &str) -> Rejection {
    Rejection(why.to_owned())
}

impl From<crate::error::HubError> for Rejection {
    fn from(err: crate::error::HubError) -> Self {
        tracing::error!(error = %err, "internal error while checking an assertion");
        Rejection("it could not be checked".into())
    }
}

/// Reads the claims without verifying them, only to learn which client's keys to use.
fn peek_issuer(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// Verifies a client assertion (`private_key_jwt`) and returns the client it authenticates.
pub async fn verify(
    hub: &Hub,
    assertion: &str,
    client_id: Option<&str>,
) -> Result<Client, OAuthError> {
    verify_jwt(hub, assertion, client_id)
        .await
        .map_err(|r| OAuthError::InvalidClient(format!("client assertion rejected: {}", r.0)))
}

/// Verifies a JWT authorization grant (RFC 7523 §2.1). This hub accepts
/// self-issued grants only: an autonomous agent with registered keys asserts
/// itself (`iss` = `sub` = its client id) and gets a token as itself.
pub async fn verify_grant(hub: &Hub, assertion: &str) -> Result<Client, OAuthError> {
    verify_jwt(hub, assertion, None)
        .await
        .map_err(|r| OAuthError::InvalidGrant(format!("the JWT grant was rejected: {}", r.0)))
}

/// The client's public keys: registered inline, or fetched from its `jwks_uri`
/// (again when the assertion's `kid` is not in the cached set).
async fn client_keys(hub: &Hub, client: &Client, kid: Option<&str>) -> Result<JwkSet, Rejection> {
    if let Some(jwks) = client.jwks.clone() {
        return serde_json::from_value(jwks)
            .map_err(|_| reject("the client has no usable registered keys"));
    }
    let Some(uri) = client.jwks_uri() else {
        return Err(reject("the client has no registered keys"));
    };
    let fetch = |refresh| async move {
        crate::oauth::cimd::client_jwks(hub, uri, refresh)
            .await
            .map_err(|e| Rejection(format!("its jwks_uri could not be used: {e}")))
    };
    let keys = fetch(false).await?;
    match kid {
        Some(kid) if keys.find(kid).is_none() => fetch(true).await,
        _ => Ok(keys),
    }
}

async fn verify_jwt(
    hub: &Hub,
    assertion: &str,
    client_id: Option<&str>,
) -> Result<Client, Rejection> {
    let header = decode_header(assertion)
        .map_err(|_| reject("it is not a signed JWT with a supported algorithm"))?;
    if !matches!(
        header.alg,
        Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::EdDSA
    ) {
        return Err(reject("the signing algorithm must be asymmetric"));
    }
    let issuer = peek_issuer(assertion).ok_or_else(|| reject("it has no iss"))?;
    if client_id.is_some_and(|id| id != issuer) {
        return Err(reject("iss differs from client_id"));
    }
    let client = match hub.store.client(&issuer).await? {
        Some(client) => client,
        // A metadata-document client may not have been seen yet.
        None if crate::oauth::cimd::is_metadata_url(&issuer) => {
            crate::oauth::cimd::resolve(hub, &issuer)
                .await
                .map_err(|e| Rejection(e.to_string()))?
        }
        None => return Err(reject("unknown client")),
    };
    if client.token_endpoint_auth_method != AuthMethod::PrivateKeyJwt {
        return Err(reject(
            "this client does not authenticate with private_key_jwt",
        ));
    }
    let jwks = client_keys(hub, &client, header.kid.as_deref()).await?;
    let jwk = match &header.kid {
        Some(kid) => jwks.find(kid),
        None if jwks.keys.len() == 1 => jwks.keys.first(),
        None => None,
    }
    .ok_or_else(|| reject("no registered key matches the assertion's kid"))?;
    let key =
        DecodingKey::from_jwk(jwk).map_err(|_| reject("the registered key cannot be used"))?;
    let mut validation = Validation::new(header.alg);
    validation.validate_aud = false;
    // Time is judged on the hub's clock below.
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let decoded = if hub.faults.on(Fault::SkipAssertionSignatureCheck) {
        jsonwebtoken::dangerous::insecure_decode::<AssertionClaims>(assertion)
    } else {
        decode::<AssertionClaims>(assertion, &key, &validation)
    };
    let claims = decoded
        .map_err(|_| reject("the signature does not verify"))?
        .claims;

    if claims.iss != client.client_id || claims.sub != client.client_id {
        return Err(reject("iss and sub must both be the client_id"));
    }
    let token_endpoint = hub.endpoint("/token");
    let aud_ok = claims.aud.contains(&hub.issuer) || claims.aud.contains(&token_endpoint);
    if !aud_ok && !hub.faults.on(Fault::SkipAssertionAudCheck) {
        return Err(reject("aud must be the issuer or the token endpoint"));
    }
    let now = hub.clock.now();
    let exp = claims.exp.ok_or_else(|| reject("exp is required"))?;
    if exp <= now && !hub.faults.on(Fault::SkipAssertionExpCheck) {
        return Err(reject("it has expired"));
    }
    if exp > now + MAX_ASSERTION_LIFETIME {
        return Err(reject("exp is more than ten minutes ahead"));
    }
    let jti = claims.jti.ok_or_else(|| reject("jti is required"))?;
    let first_use = hub
        .store
        .use_assertion(&client.client_id, &jti, exp)
        .await?;
    if !first_use && !hub.faults.on(Fault::AllowAssertionReplay) {
        return Err(reject("this jti was already used"));
    }
    Ok(client)
}
