//! JWT access tokens per RFC 9068, bound to one resource.

use jsonwebtoken::{decode_header, encode, Algorithm, Header};
use serde::{Deserialize, Serialize};

use crate::error::{HubError, OAuthError};
use crate::fault::Fault;
use crate::hub::Hub;
use crate::model::Authentication;

/// The `aud` claim: one resource, or (only under the `ignore-resource` fault) several.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, resource: &str) -> bool {
        match self {
            Audience::One(aud) => aud == resource,
            Audience::Many(auds) => auds.iter().any(|a| a == resource),
        }
    }
}

/// Claims of an access token (RFC 9068 §2.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub client_id: String,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The delegation chain (RFC 8693 §4.1): the current actor, with the
    /// previous ones nested under `act`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<serde_json::Value>,
    /// Who may act for the subject (RFC 8693 §4.4), when the subject token said so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub may_act: Option<serde_json::Value>,
    /// How the user signed in (RFC 9068 §2.2.1), on tokens a user's
    /// authorization yields: when, at what level, by which methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
}

impl AccessTokenClaims {
    /// The sign-in this token reflects, which an exchanged token keeps
    /// (RFC 9068 §2.2.1: the values remain the same across exchanges).
    pub fn authentication(&self) -> Option<Authentication> {
        Some(Authentication {
            auth_time: self.auth_time?,
            acr: self.acr.clone()?,
            amr: self.amr.clone()?,
        })
    }

    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_ascii_whitespace()
    }
}

/// What a token is for; the hub fills in issuer, times and id.
pub struct TokenGrant<'a> {
    pub subject: &'a str,
    pub client_id: &'a str,
    pub resource: &'a str,
    pub scopes: &'a [String],
    pub tenant: Option<&'a str>,
    /// The delegation chain, for exchanged tokens.
    pub act: Option<serde_json::Value>,
    /// How the user signed in, when a user's sign-in is behind the token.
    pub authentication: Option<Authentication>,
}

/// A freshly minted token and the facts the token response needs.
pub struct MintedToken {
    pub token: String,
    pub expires_in: i64,
    pub jti: String,
}

impl Hub {
    pub async fn mint_access_token(&self, grant: TokenGrant<'_>) -> Result<MintedToken, HubError> {
        let now = self.clock.now();
        let ttl = i64::from(self.config.access_token_ttl);
        let aud = if self.faults.on(Fault::IgnoreResource) {
            let servers = self.store.mcp_servers().await?;
            Audience::Many(servers.iter().map(|s| self.resource_url(s)).collect())
        } else {
            Audience::One(grant.resource.to_owned())
        };
        let claims = AccessTokenClaims {
            iss: self.issuer.clone(),
            sub: grant.subject.to_owned(),
            aud,
            client_id: grant.client_id.to_owned(),
            scope: grant.scopes.join(" "),
            iat: now,
            exp: now + ttl,
            jti: if self.faults.on(Fault::JtiRepeats) {
                // The fault: a jti from the clock, shared by every token of a second.
                format!("at_{now}")
            } else {
                crate::random::id("at")
            },
            tenant: grant.tenant.map(str::to_owned),
            act: grant.act,
            may_act: None,
            auth_time: None,
            acr: None,
            amr: None,
        };
        let claims = match grant.authentication {
            Some(how) if !self.faults.on(Fault::AmrNotInToken) => AccessTokenClaims {
                auth_time: Some(how.auth_time),
                acr: Some(how.acr),
                amr: Some(how.amr),
                ..claims
            },
            _ => claims,
        };
        let keys = self.keys.read().await;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(keys.signing_kid().to_owned());
        header.typ = Some(
            if self.faults.on(Fault::PlainJwtTyp) {
                "JWT"
            } else {
                "at+jwt"
            }
            .to_owned(),
        );
        let token = if self.faults.on(Fault::SignWithUnpublishedKey) {
            let rogue = p256::SecretKey::random(&mut rand::rngs::OsRng);
            let pem =
                p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(&rogue, p256::pkcs8::LineEnding::LF)
                    .map_err(|e| HubError::Key(e.to_string()))?;
            encode(
                &header,
                &claims,
                &jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes())?,
            )?
        } else {
            keys.sign(&header, &claims)?
        };
        Ok(MintedToken {
            token,
            expires_in: ttl,
            jti: claims.jti,
        })
    }

    /// Validates an access token presented to a protected resource (RFC 9068 §4):
    /// signature, issuer, type, expiry, revocation, and the audience when given.
    pub async fn validate_access_token(
        &self,
        token: &str,
        audience: Option<&str>,
    ) -> Result<AccessTokenClaims, OAuthError> {
        let claims = self.verify_access_token(token).await?;
        if self.store.is_access_token_revoked(&claims.jti).await? {
            return Err(OAuthError::InvalidToken(
                "the token has been revoked".into(),
            ));
        }
        // A decommissioned agent's tokens die with it.
        if !self.faults.on(Fault::DecommissionKeepsTokens)
            && self.store.is_decommissioned(&claims.client_id).await?
        {
            return Err(OAuthError::InvalidToken(
                "the client this token was issued to has been decommissioned".into(),
            ));
        }
        if let Some(audience) = audience {
            if !claims.aud.contains(audience) {
                return Err(OAuthError::InvalidToken(
                    "the token was not issued for this resource".into(),
                ));
            }
        }
        Ok(claims)
    }

    /// Checks that this hub issued the token and that it has not expired;
    /// revocation and audience are the caller's business.
    pub async fn verify_access_token(&self, token: &str) -> Result<AccessTokenClaims, OAuthError> {
        let invalid = |why: &str| OAuthError::InvalidToken(why.to_owned());
        let header = decode_header(token).map_err(|_| invalid("the token is not a JWT"))?;
        if header.alg != Algorithm::ES256 {
            return Err(invalid("unexpected signing algorithm"));
        }
        let typ = header
            .typ
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if typ != "at+jwt" && typ != "application/at+jwt" {
            return Err(invalid("the token is not an RFC 9068 access token"));
        }
        let kid = header.kid.ok_or_else(|| invalid("the token has no kid"))?;
        if !self.keys.read().await.signature_holds(&kid, token) {
            return Err(invalid("the token signature or issuer is invalid"));
        }
        // The signature was verified above (ring); this only reads the claims.
        let data = jsonwebtoken::dangerous::insecure_decode::<AccessTokenClaims>(token)
            .map_err(|_| invalid("the token signature or issuer is invalid"))?;
        if data.claims.iss != self.issuer {
            return Err(invalid("the token signature or issuer is invalid"));
        }
        let claims = data.claims;
        if claims.exp <= self.clock.now() {
            return Err(invalid("the token has expired"));
        }
        Ok(claims)
    }
}
