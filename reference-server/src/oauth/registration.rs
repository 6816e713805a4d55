//! Dynamic Client Registration (RFC 7591) for public MCP clients.
//!
//! Deprecated by MCP 2026-07-28 (Authorization, Client Registration: "Dynamic
//! Client Registration is deprecated. New implementations should use Client ID
//! Metadata Documents instead."), and kept for clients that still use it: the
//! endpoint, its metadata (`registration_endpoint`) and its behaviour are
//! unchanged; only the audit event says the registration used a deprecated way.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::audit::event::{AuditEvent, Outcome};
use crate::error::OAuthError;
use crate::fault::Fault;
use crate::hub::Hub;
use crate::model::{AuthMethod, Client, TrustLevel};
use crate::oauth::redirect_uri::validate_redirect_uri;
use crate::variant::Variant;

/// How many redirect URIs one registration may carry.
const MAX_REDIRECT_URIS: usize = 10;

/// The largest registration request accepted: real client metadata is a few hundred bytes.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// What a successful registration's audit event says after the client's name:
/// the way it registered, and that MCP 2026-07-28 deprecates it in favour of
/// Client ID Metadata Documents (a CIMD client is never labelled so).
const DCR_DEPRECATED: &str =
    "deprecated since MCP 2026-07-28: clients should use a Client ID Metadata Document";

/// The reason of a successful dynamic registration's `client.registered` event.
fn registered_reason(name: &str) -> String {
    format!("dynamic client registration (RFC 7591) of `{name}`, {DCR_DEPRECATED}")
}

fn string_list(meta: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, OAuthError> {
    match meta.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    OAuthError::InvalidClientMetadata(format!(
                        "`{key}` must be an array of strings"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(OAuthError::InvalidClientMetadata(format!(
            "`{key}` must be an array of strings"
        ))),
    }
}

fn optional_string(meta: &Map<String, Value>, key: &str) -> Result<Option<String>, OAuthError> {
    match meta.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(OAuthError::InvalidClientMetadata(format!(
            "`{key}` must be a string"
        ))),
    }
}

/// Validates a registration request and builds the client it describes.
async fn build_client(hub: &Hub, body: &[u8]) -> Result<Client, OAuthError> {
    if body.len() > MAX_METADATA_BYTES && !hub.faults.on(Fault::DcrNoMetadataCaps) {
        return Err(OAuthError::InvalidClientMetadata(format!(
            "the registration request is larger than {} KiB",
            MAX_METADATA_BYTES / 1024
        )));
    }
    let mut meta: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|_| OAuthError::InvalidClientMetadata("the body must be a JSON object".into()))?;

    let method = match optional_string(&meta, "token_endpoint_auth_method")? {
        // RFC 7591 §2 defaults to client_secret_basic; this endpoint registers public
        // clients only, and §3.2.1 lets the server replace the value it will use.
        None => AuthMethod::None,
        Some(m) if m == "none" => AuthMethod::None,
        Some(m) => {
            return Err(OAuthError::InvalidClientMetadata(format!(
                "token_endpoint_auth_method `{m}` is not supported for dynamic registration; use `none`"
            )))
        }
    };
    let grant_types =
        string_list(&meta, "grant_types")?.unwrap_or_else(|| vec!["authorization_code".into()]);
    if let Some(g) = grant_types
        .iter()
        .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
    {
        return Err(OAuthError::InvalidClientMetadata(format!(
            "grant type `{g}` is not supported"
        )));
    }
    if !grant_types.iter().any(|g| g == "authorization_code") {
        return Err(OAuthError::InvalidClientMetadata(
            "a dynamically registered client needs the authorization_code grant".into(),
        ));
    }
    let response_types =
        string_list(&meta, "response_types")?.unwrap_or_else(|| vec!["code".into()]);
    if response_types.iter().any(|r| r != "code") {
        return Err(OAuthError::InvalidClientMetadata(
            "only the `code` response type is supported".into(),
        ));
    }
    let redirect_uris = string_list(&meta, "redirect_uris")?.unwrap_or_default();
    if redirect_uris.is_empty() {
        return Err(OAuthError::InvalidRedirectUri(
            "at least one redirect URI is required for the authorization_code grant".into(),
        ));
    }
    if redirect_uris.len() > MAX_REDIRECT_URIS && !hub.faults.on(Fault::DcrNoMetadataCaps) {
        return Err(OAuthError::InvalidRedirectUri(format!(
            "at most {MAX_REDIRECT_URIS} redirect URIs may be registered"
        )));
    }
    for uri in &redirect_uris {
        validate_redirect_uri(hub, uri)?;
    }
    // Shown to users on the consent page: only real https pages and images,
    // never `javascript:` or `data:` (RFC 7591 §2: they MUST point to a valid web page / image).
    for key in ["client_uri", "logo_uri", "tos_uri", "policy_uri"] {
        if let Some(value) = optional_string(&meta, key)? {
            let https =
                url::Url::parse(&value).is_ok_and(|u| u.scheme() == "https" && u.host().is_some());
            if https || hub.faults.on(Fault::DcrAcceptScriptUris) {
                continue;
            }
            if hub.variants.on(Variant::DcrDropsUnsafeUris) {
                // RFC 7591 §3.2.1: the server may replace a value; it keeps none.
                meta.remove(key);
            } else {
                return Err(OAuthError::InvalidClientMetadata(format!(
                    "{key} must be an https URL"
                )));
            }
        }
    }
    if let Some(kind) = optional_string(&meta, "application_type")? {
        if kind != "web" && kind != "native" {
            return Err(OAuthError::InvalidClientMetadata(
                "application_type must be web or native".into(),
            ));
        }
    }
    let name =
        optional_string(&meta, "client_name")?.unwrap_or_else(|| "Unnamed MCP client".into());
    // Shown on the consent page: a bidirectional override or another
    // invisible control would let one client's name read as another's.
    if let Some(c) = name
        .chars()
        .find(|c| is_disguising(*c))
        .filter(|_| !hub.faults.on(crate::fault::Fault::ClientNameAllowsBidi))
    {
        return Err(OAuthError::InvalidClientMetadata(format!(
            "client_name contains the control character U+{:04X}",
            u32::from(c)
        )));
    }
    if name.chars().count() > 200 {
        return Err(OAuthError::InvalidClientMetadata(
            "client_name is longer than 200 characters".into(),
        ));
    }
    if let Some(scope) = optional_string(&meta, "scope")? {
        let servers = hub.store.mcp_servers().await?;
        if let Some(unknown) = scope
            .split_ascii_whitespace()
            .find(|s| !servers.iter().any(|srv| srv.scopes.iter().any(|k| k == s)))
        {
            return Err(OAuthError::InvalidClientMetadata(format!(
                "scope `{unknown}` is unknown"
            )));
        }
    }

    let now = hub.clock.now();
    let client_id = crate::random::id("dcr");
    let mut registered = meta.clone();
    registered.insert("client_id".into(), json!(client_id));
    registered.insert("client_id_issued_at".into(), json!(now));
    registered.insert("client_name".into(), json!(name));
    registered.insert("redirect_uris".into(), json!(redirect_uris));
    registered.insert("grant_types".into(), json!(grant_types));
    registered.insert("response_types".into(), json!(response_types));
    registered.insert("token_endpoint_auth_method".into(), json!(method.as_str()));
    Ok(Client {
        client_id,
        name,
        trust_level: TrustLevel::Dcr,
        secret_hash: None,
        token_endpoint_auth_method: method,
        redirect_uris,
        grant_types,
        allowed_resources: Vec::new(),
        allowed_scopes: Vec::new(),
        tags: Vec::new(),
        tenant: None,
        jwks: None,
        metadata: Value::Object(registered),
        created_at: now,
    })
}

/// RFC 7591 §3: `POST /register`.
pub async fn register(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let event = AuditEvent::new("client.registered", Outcome::Success)
        .actor("anonymous", None)
        .source_ip(peer.ip().to_string());
    let admission = if hub.faults.on(Fault::NoRegistrationRateLimit) {
        crate::throttle::Admission::Allowed
    } else {
        hub.registrations.admit(peer.ip(), hub.clock.now())
    };
    let built = match admission {
        crate::throttle::Admission::Allowed => build_client(&hub, &body).await,
        crate::throttle::Admission::Refused { retry_after } => Err(OAuthError::TooManyRequests {
            description: "too many registrations from this address; retry later".into(),
            retry_after,
        }),
    };
    let client = match built {
        Ok(client) => client,
        Err(err) => {
            hub.audit(
                AuditEvent {
                    outcome: Outcome::Failure.as_str().into(),
                    ..event
                }
                .reason(err.to_string()),
            )
            .await?;
            if matches!(err, OAuthError::TooManyRequests { .. })
                && hub.variants.on(Variant::RegistrationLimit503)
            {
                // RFC 9110 §15.6.4: 503 with Retry-After is another way to say "later".
                let mut response = err.into_response();
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                return Ok(response);
            }
            if let OAuthError::TooManyRequests { retry_after, .. } = &err {
                if hub.faults.on(Fault::BareRateLimitRefusal) {
                    let retry_after = retry_after.max(&1).to_string();
                    return Ok((
                        StatusCode::TOO_MANY_REQUESTS,
                        [(axum::http::header::RETRY_AFTER, retry_after)],
                    )
                        .into_response());
                }
            }
            return Err(err);
        }
    };
    hub.store.upsert_client(&client).await?;
    hub.audit(
        event
            .client(client.client_id.clone())
            .reason(registered_reason(&client.name)),
    )
    .await?;
    let mut response = client.metadata.clone();
    if hub.faults.on(Fault::DcrOmitRegisteredMetadata) {
        if let Some(obj) = response.as_object_mut() {
            obj.remove("redirect_uris");
            obj.remove("grant_types");
            obj.remove("token_endpoint_auth_method");
        }
    }
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(response),
    )
        .into_response())
}

/// Characters that change how a name is shown without being seen: C0 and C1
/// controls, bidirectional embeddings, overrides and isolates, and the
/// zero-width and direction marks.
pub(crate) fn is_disguising(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}'   // zero-width space, joiners, LRM, RLM
            | '\u{202A}'..='\u{202E}' // embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // isolates
            | '\u{FEFF}'               // zero-width no-break space
        )
}

#[cfg(test)]
mod tests {
    use super::{is_disguising, registered_reason};

    #[test]
    fn a_dynamic_registration_is_audited_as_deprecated() {
        assert_eq!(
            registered_reason("Demo MCP client"),
            "dynamic client registration (RFC 7591) of `Demo MCP client`, deprecated since MCP 2026-07-28: clients should use a Client ID Metadata Document"
        );
    }

    #[test]
    fn names_that_could_disguise_a_client_are_recognised() {
        for c in [
            '\u{202E}', '\u{2066}', '\u{200F}', '\u{0007}', '\u{FEFF}', '\n',
        ] {
            assert!(is_disguising(c), "U+{:04X}", u32::from(c));
        }
        for c in ['a', 'é', '日', ' ', '-', '\u{05D0}'] {
            assert!(!is_disguising(c), "U+{:04X}", u32::from(c));
        }
    }
}
