//! Client authentication with a signed JWT: `private_key_jwt` (RFC 7523 §2.2,
//! validated per RFC 7523 §3).
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
use crate::model::{AuthMethod, Client};
use crate::state::Hub;
use crate::tokens::Audience;

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

fn reject(why: &str) -> OAuthError {
    OAuthError::InvalidClient(format!("client assertion rejected: {why}"))
}

/// Reads the claims without verifying them, only to learn which client's keys to use.
fn peek_issuer(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// Verifies a client assertion and returns the client it authenticates.
pub async fn verify(
    hub: &Hub,
    assertion: &str,
    client_id: Option<&str>,
) -> Result<Client, OAuthError> {
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
    let client = hub
        .store
        .client(&issuer)
        .await?
        .ok_or_else(|| reject("unknown client"))?;
    if client.token_endpoint_auth_method != AuthMethod::PrivateKeyJwt {
        return Err(reject(
            "this client does not authenticate with private_key_jwt",
        ));
    }
    let jwks: JwkSet = client
        .jwks
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| reject("the client has no usable registered keys"))?;
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
    let claims = decode::<AssertionClaims>(assertion, &key, &validation)
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
