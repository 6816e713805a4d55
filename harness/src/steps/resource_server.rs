//! The resource server's side: validating an access token as an RFC 9068
//! JWT, and asking the hub about one (RFC 7662).

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::act::{Act, ActionInfo};
use super::credentials::unverified_claims;
use super::defaults::{introspector, primary, yes};
use super::failure::{precondition, undeclared, StepError};
use super::revocation::TokenKind;
use super::run::Run;
use crate::profile::AccessTokenFormat;

/// Resource server: validate the last access token as an RFC 9068 JWT.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidateToken {
    #[serde(default = "primary")]
    pub resource: String,
}

impl Act for ValidateToken {
    const INFO: ActionInfo = ActionInfo::new(
        "resource server",
        "The resource server validates the access token as an RFC 9068 JWT: the signature against the hub's JWKS, typ at+jwt, iss, aud equal to its own URL, and exp.",
        "RFC 9068 §4",
        "https://www.rfc-editor.org/rfc/rfc9068#section-4",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.validate_token(&self.resource).await
    }
}

/// Resource server: introspect the latest access or refresh token, or one the
/// target never issued (RFC 7662), authenticating as a pre-registered client
/// of the profile, or not at all.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Introspect {
    #[serde(default = "introspector")]
    pub client: String,
    pub token: TokenKind,
    /// false: send the token with no client authentication at all (no
    /// Authorization header, no client_id, no secret or assertion).
    #[serde(default = "yes")]
    pub authenticate: bool,
}

impl Act for Introspect {
    const INFO: ActionInfo = ActionInfo::new(
        "resource server",
        "A resource server asks the hub whether a token is still active, and for whom.",
        "RFC 7662 §2",
        "https://www.rfc-editor.org/rfc/rfc7662#section-2",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        let client = if self.authenticate {
            Some(self.client.as_str())
        } else {
            None
        };
        run.introspect(client, self.token).await
    }
}

impl Run<'_> {
    async fn validate_token(&mut self, resource: &str) -> Result<Value, StepError> {
        let token = self
            .client
            .last_token
            .clone()
            .ok_or_else(|| precondition("no access token has been obtained yet"))?;
        let expected_aud = self
            .resource_url(resource)?
            .ok_or_else(|| precondition("validate_token needs a resource"))?;
        let header = jsonwebtoken::decode_header(&token).ok();
        match self.profile.access_token_format {
            AccessTokenFormat::Opaque => {
                return Err(undeclared(
                    "the profile declares opaque access tokens (access_token_format = \"opaque\"): RFC 9068 checks do not apply",
                ))
            }
            AccessTokenFormat::Detect if header.is_none() => {
                return Err(undeclared(
                    "the access token is opaque (not a JWS): RFC 9068 checks do not apply; declare access_token_format = \"jwt\" to require JWTs",
                ))
            }
            _ => {}
        }
        let jwks_uri = self.endpoint("jwks_uri").await?;
        let response = self.http.send(self.http.get(&jwks_uri)).await?;
        let jwks: Option<JwkSet> = serde_json::from_slice(&response.body).ok();
        let claims = unverified_claims(&token);
        let mut errors: Vec<String> = Vec::new();

        let signature_valid = match (&header, &jwks) {
            (None, _) => {
                errors.push("the access token is not a JWT".into());
                false
            }
            (_, None) => {
                errors.push("the JWKS could not be read".into());
                false
            }
            (Some(header), Some(jwks)) => {
                let jwk = match &header.kid {
                    Some(kid) => jwks.find(kid),
                    None if jwks.keys.len() == 1 => jwks.keys.first(),
                    None => None,
                };
                let asymmetric = matches!(
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
                );
                match jwk.map(DecodingKey::from_jwk) {
                    _ if !asymmetric => {
                        errors.push(format!(
                            "{:?} is not an asymmetric signature algorithm",
                            header.alg
                        ));
                        false
                    }
                    Some(Ok(key)) => {
                        let mut validation = Validation::new(header.alg);
                        validation.validate_aud = false;
                        validation.validate_exp = false;
                        validation.required_spec_claims.clear();
                        match jsonwebtoken::decode::<Value>(&token, &key, &validation) {
                            Ok(_) => true,
                            Err(e) => {
                                errors.push(format!("signature does not verify: {e}"));
                                false
                            }
                        }
                    }
                    Some(Err(e)) => {
                        errors.push(format!("the JWK cannot be used: {e}"));
                        false
                    }
                    None => {
                        errors.push("no JWKS key matches the token's kid".into());
                        false
                    }
                }
            }
        };
        let claims = claims.unwrap_or(Value::Null);
        let aud = claims.get("aud");
        let aud_is_exactly_resource = match aud {
            Some(Value::String(a)) => *a == expected_aud,
            Some(Value::Array(items)) => {
                items.len() == 1 && items[0] == Value::String(expected_aud.clone())
            }
            _ => false,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let typ = header.as_ref().and_then(|h| h.typ.clone());
        let missing: Vec<&str> = ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"]
            .into_iter()
            .filter(|c| claims.get(*c).is_none())
            .collect();
        Ok(json!({
            "header": {
                "alg": header.as_ref().map(|h| format!("{:?}", h.alg)),
                "typ": typ,
                "kid": header.as_ref().and_then(|h| h.kid.clone()),
            },
            "claims": claims,
            "signature_valid": signature_valid,
            "issuer_matches": claims.get("iss").and_then(Value::as_str) == Some(self.profile.issuer.as_str()),
            "aud_is_exactly_resource": aud_is_exactly_resource,
            "unexpired": claims.get("exp").and_then(Value::as_i64).is_some_and(|exp| exp > now),
            "typ_is_at_jwt": typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")),
            "missing_claims": missing,
            "errors": errors,
        }))
    }

    /// Introspects as the confidential client `role`, or anonymously (`None`).
    async fn introspect(
        &mut self,
        role: Option<&str>,
        kind: TokenKind,
    ) -> Result<Value, StepError> {
        let client = role.map(|role| self.confidential(role)).transpose()?;
        let token = self.latest(kind)?;
        let endpoint = self.endpoint("introspection_endpoint").await?;
        let form = vec![("token", token)];
        let request = match &client {
            Some(client) => {
                self.confidential_post(&self.http, &endpoint, client, &client.client_secret, form)
            }
            None => self.http.post(&endpoint).form(&form),
        };
        let response = self.http.send(request).await?;
        let body = response.json();
        Ok(json!({
            "status": response.status,
            "refused": (400..500).contains(&response.status),
            "body": body,
            "error": body.as_ref().and_then(|b| b.get("error")).cloned(),
        }))
    }
}
