//! Client authentication (RFC 6749 §2.3), shared by every endpoint a client
//! calls with its credentials: token, revocation, introspection, tool-execution
//! reports and Connection token retrieval.

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::error::OAuthError;
use crate::fault::Fault;
use crate::hub::Hub;
use crate::model::{AuthMethod, Client};
use crate::params::Params;

/// The client making a token request, and how sure we are of it.
pub(crate) struct Caller {
    pub(crate) client: Client,
    /// True when a secret was verified (a confidential client).
    pub(crate) authenticated: bool,
}

fn form_decode(s: &str) -> String {
    // RFC 6749 §2.3.1: client id and secret are form-urlencoded inside Basic credentials.
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
        .ok()
        .and_then(|mut v| v.pop())
        .map(|(_, v)| v)
        .unwrap_or_else(|| s.to_owned())
}

fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || {
        OAuthError::InvalidClient("the Authorization header is not valid Basic credentials".into())
    };
    let value = value.to_str().map_err(|_| bad())?;
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Err(bad());
    };
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    Ok(Some((form_decode(id), form_decode(secret))))
}

/// Client authentication (RFC 6749 §2.3): Basic, body secret, or a public client's id alone.
pub(crate) async fn authenticate(
    hub: &Hub,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Caller, OAuthError> {
    let basic = basic_credentials(headers)?;
    let body_secret = params.get("client_secret")?;
    if let Some(assertion_type) = params.get("client_assertion_type")? {
        if basic.is_some() || body_secret.is_some() {
            return Err(OAuthError::InvalidRequest(
                "use exactly one client authentication method".into(),
            ));
        }
        if assertion_type != crate::oauth::assertion::JWT_BEARER_ASSERTION {
            return Err(OAuthError::InvalidClient(format!(
                "client_assertion_type `{assertion_type}` is not supported"
            )));
        }
        let assertion = params.require("client_assertion")?;
        let client =
            crate::oauth::assertion::verify(hub, assertion, params.get("client_id")?).await?;
        return Ok(Caller {
            client,
            authenticated: true,
        });
    }
    if basic.is_some() && body_secret.is_some() {
        return Err(OAuthError::InvalidRequest(
            "use exactly one client authentication method".into(),
        ));
    }
    let (client_id, secret, method) = match (&basic, body_secret) {
        (Some((id, secret)), None) => {
            if params
                .get("client_id")?
                .is_some_and(|body_id| body_id != id)
            {
                return Err(OAuthError::InvalidRequest(
                    "client_id does not match the credentials".into(),
                ));
            }
            (
                id.clone(),
                Some(secret.clone()),
                AuthMethod::ClientSecretBasic,
            )
        }
        (None, Some(secret)) => (
            params.require("client_id")?.to_owned(),
            Some(secret.to_owned()),
            AuthMethod::ClientSecretPost,
        ),
        _ => (
            params.require("client_id")?.to_owned(),
            None,
            AuthMethod::None,
        ),
    };
    let unknown = || OAuthError::InvalidClient("client authentication failed".into());
    let Some(client) = hub.store.client(&client_id).await? else {
        // As long as a wrong secret for a known client with a generated
        // secret (client ids are not secrets, RFC 6749 §2.2).
        if let Some(secret) = &secret {
            crate::credentials::verify_client_secret(secret, crate::credentials::DUMMY_DIGEST)
                .await?;
        }
        return Err(unknown());
    };
    match (client.token_endpoint_auth_method, secret) {
        (AuthMethod::None, None) => Ok(Caller {
            client,
            authenticated: false,
        }),
        (registered, Some(secret)) if registered == method => {
            let ok = match &client.secret_hash {
                _ if hub.faults.on(Fault::SkipClientSecretVerify) => true,
                Some(hash) => crate::credentials::verify_client_secret(&secret, hash).await?,
                None => false,
            };
            if let Some(stored) = client
                .secret_hash
                .as_deref()
                .filter(|stored| ok && crate::credentials::needs_rehash(&secret, stored))
            {
                let digest = crate::credentials::digest_generated_secret(&secret);
                if hub
                    .store
                    .rehash_client_secret(&client.client_id, stored, &digest)
                    .await?
                {
                    tracing::info!(client = %client.client_id, "a generated client secret is now stored as a digest");
                }
            }
            if ok {
                Ok(Caller {
                    client,
                    authenticated: true,
                })
            } else {
                Err(unknown())
            }
        }
        _ => Err(unknown()),
    }
}
