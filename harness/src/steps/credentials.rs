//! Credentials the parties present: confidential clients of the profile (or
//! agents the scenario created) and their secrets or private_key_jwt
//! assertions (RFC 7523), and the claims of a JWT read without verifying it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::failure::{precondition, undeclared, StepError};
use super::run::Run;
use crate::http::Http;
use crate::profile::PreRegisteredClient;

/// The harness's own test key for metadata-document clients that use
/// private_key_jwt (CIMD §6.2). Test-only: it signs nothing but assertions to
/// targets under test.
pub(super) const CIMD_CLIENT_KEY: &str = include_str!("../../keys/cimd-client.pem");
pub(super) const CIMD_CLIENT_KID: &str = "conform-cimd-client-1";

/// How a private_key_jwt assertion (RFC 7523 §2.2) is built.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AssertionVariant {
    /// Fresh, for the token endpoint, valid for a minute.
    #[default]
    Valid,
    /// Sent again, exactly as the previous one.
    Replay,
    /// Addressed to another server.
    WrongAudience,
    /// Expired two minutes ago.
    Expired,
    /// Signed, then one signature byte changed.
    BadSignature,
}

/// Changes one character in the middle of a JWT's signature, keeping it valid base64url.
fn tamper_signature(jwt: &str) -> String {
    let Some(dot) = jwt.rfind('.') else {
        return jwt.to_owned();
    };
    let (head, signature) = jwt.split_at(dot + 1);
    let mut chars: Vec<char> = signature.chars().collect();
    if let Some(c) = chars.get_mut(signature.len() / 2) {
        *c = if *c == 'A' { 'B' } else { 'A' };
    }
    format!("{head}{}", chars.into_iter().collect::<String>())
}

/// The payload of a JWT without verifying it (verification is `validate_token`'s job).
pub fn unverified_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

impl Run<'_> {
    /// A confidential client by role: the profile's `[clients]`, or an agent created in this scenario.
    pub(super) fn confidential(&self, role: &str) -> Result<PreRegisteredClient, StepError> {
        self.profile
            .clients
            .get(role)
            .or_else(|| self.created.agents.get(role))
            .cloned()
            .ok_or_else(|| {
                undeclared(format!(
                    "the profile declares no [clients.{role}] (and no agent `{role}` was created)"
                ))
            })
    }

    /// The client id of a confidential client by role, when there is one.
    pub(super) fn confidential_id(&self, role: &str) -> Option<String> {
        self.confidential(role).ok().map(|c| c.client_id)
    }

    /// An HTTP client whose connections leave from `source` when the target is on loopback.
    pub(super) fn http_from(&self, source: Option<&str>) -> Result<Http, StepError> {
        match source {
            None => Ok(self.http.clone()),
            Some(address) => {
                let ip: std::net::IpAddr = address
                    .parse()
                    .map_err(|_| precondition(format!("`{address}` is not an IP address")))?;
                Ok(self.http.with_local_address(&self.profile.http, ip))
            }
        }
    }

    /// A private_key_jwt client assertion (RFC 7523 §2.2, §3), signed with the profile's key.
    pub(super) fn assertion(
        &mut self,
        client: &PreRegisteredClient,
        token_endpoint: &str,
        variant: AssertionVariant,
    ) -> Result<String, StepError> {
        self.sign_assertion(
            &client.client_id,
            client.private_key_pem.as_deref().unwrap_or_default(),
            client.key_id.as_deref(),
            token_endpoint,
            variant,
        )
    }

    /// A JWT with `iss` = `sub` = `client_id` for the token endpoint (RFC 7523 §3),
    /// for client authentication or as an authorization grant.
    pub(super) fn sign_assertion(
        &mut self,
        client_id: &str,
        pem: &str,
        key_id: Option<&str>,
        token_endpoint: &str,
        variant: AssertionVariant,
    ) -> Result<String, StepError> {
        if variant == AssertionVariant::Replay {
            return self
                .agent
                .last_assertion
                .clone()
                .ok_or_else(|| precondition("no assertion has been sent yet to replay"));
        }
        let pem = pem.trim();
        let key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes())
            .or_else(|_| jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()))
            .map_err(|e| precondition(format!("the profile's private key cannot be read: {e}")))?;
        let algorithm = if pem.contains("RSA") {
            Algorithm::RS256
        } else {
            Algorithm::ES256
        };
        let mut header = jsonwebtoken::Header::new(algorithm);
        header.kid = key_id.map(str::to_owned);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let (iat, exp) = match variant {
            AssertionVariant::Expired => (now - 180, now - 120),
            _ => (now, now + 60),
        };
        let aud = match variant {
            AssertionVariant::WrongAudience => {
                "https://conform.invalid/another-authorization-server".to_owned()
            }
            _ => token_endpoint.to_owned(),
        };
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": aud,
            "iat": iat,
            "exp": exp,
            "jti": crate::random_token(),
        });
        let mut assertion = jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|e| precondition(format!("cannot sign the assertion: {e}")))?;
        if variant == AssertionVariant::BadSignature {
            assertion = tamper_signature(&assertion);
        }
        self.evidence.keep_secret(&assertion);
        self.agent.last_assertion = Some(assertion.clone());
        Ok(assertion)
    }

    /// A form POST authenticated as a pre-registered confidential client:
    /// a secret (RFC 6749 §2.3.1) or, for private_key_jwt, the assertion in `secret`.
    pub(super) fn confidential_post(
        &self,
        http: &Http,
        endpoint: &str,
        client: &PreRegisteredClient,
        secret: &str,
        mut form: Vec<(&'static str, String)>,
    ) -> reqwest::RequestBuilder {
        match client.auth_method.as_str() {
            "private_key_jwt" => {
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                ));
                form.push(("client_assertion", secret.to_owned()));
            }
            "client_secret_post" => {
                form.push(("client_id", client.client_id.clone()));
                form.push(("client_secret", secret.to_owned()));
            }
            _ => return basic_post(http, endpoint, &client.client_id, secret, &form),
        }
        http.post(endpoint).form(&form)
    }
}

/// A form POST with HTTP Basic client authentication (RFC 6749 §2.3.1): id
/// and secret are form-encoded before the Basic encoding.
pub(super) fn basic_post(
    http: &Http,
    endpoint: &str,
    client_id: &str,
    secret: &str,
    form: &[(&'static str, String)],
) -> reqwest::RequestBuilder {
    basic_auth(http.post(endpoint), client_id, secret).form(form)
}

/// HTTP Basic client authentication as RFC 6749 §2.3.1 asks: the id and
/// secret are form-encoded before the Basic encoding.
pub fn basic_auth(
    request: reqwest::RequestBuilder,
    client_id: &str,
    secret: &str,
) -> reqwest::RequestBuilder {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    request.basic_auth(enc(client_id), Some(enc(secret)))
}
