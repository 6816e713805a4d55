//! A Connection's definition as drafted (admin API, seed): validated field by
//! field with precise errors, and the demo connection pointed at the demo
//! provider's actual address.

use serde_json::{Map, Value};

use crate::error::{HubError, OAuthError};
use crate::fault::Fault;
use crate::hub::Hub;
use crate::vault::connection::{Connection, ConnectionKind};

const CONNECTION_FIELDS: &[&str] = &[
    "id",
    "name",
    "type",
    "authorization_endpoint",
    "token_endpoint",
    "api_base_url",
    "client_id",
    "client_secret",
    "scopes",
    "allowed_clients",
];

pub(crate) fn bad(message: impl Into<String>) -> OAuthError {
    OAuthError::InvalidRequest(message.into())
}

/// A connection id: 1–64 of `a-z 0-9 - _ .`.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

pub(crate) fn optional_string(
    obj: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, OAuthError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Some(Value::String(_)) => Err(bad(format!("`{field}` must not be empty"))),
        Some(_) => Err(bad(format!("`{field}` must be a string"))),
    }
}

pub(crate) fn string_list(
    obj: &Map<String, Value>,
    field: &str,
) -> Result<Vec<String>, OAuthError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            let mut out: Vec<String> = Vec::with_capacity(items.len());
            for item in items {
                let s = item
                    .as_str()
                    .filter(|s| !s.is_empty() && !s.chars().any(char::is_whitespace))
                    .ok_or_else(|| {
                        bad(format!(
                            "`{field}` must be an array of non-empty strings without spaces"
                        ))
                    })?;
                if !out.iter().any(|o| o == s) {
                    out.push(s.to_owned());
                }
            }
            Ok(out)
        }
        Some(_) => Err(bad(format!("`{field}` must be an array of strings"))),
    }
}

/// An absolute http(s) URL with a host, or a precise error naming the field.
fn endpoint(
    hub: &Hub,
    obj: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, OAuthError> {
    let Some(raw) = optional_string(obj, field)? else {
        return Ok(None);
    };
    if hub.faults.on(Fault::AcceptMalformedConnectionEndpoint) {
        return Ok(Some(raw));
    }
    let url = url::Url::parse(&raw)
        .map_err(|e| bad(format!("`{field}` is not an absolute URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad(format!(
            "`{field}` must be an http or https URL with a host"
        )));
    }
    if url.fragment().is_some() {
        return Err(bad(format!("`{field}` must not have a fragment")));
    }
    Ok(Some(raw))
}

/// Validates a definition draft for connection `id`.
pub(crate) async fn parse_connection(
    hub: &Hub,
    id: &str,
    draft: &Value,
) -> Result<Connection, OAuthError> {
    if !valid_id(id) {
        return Err(bad("a connection id is 1-64 of a-z 0-9 - _ ."));
    }
    let obj = draft
        .as_object()
        .ok_or_else(|| bad("a connection must be a JSON object"))?;
    if let Some(field) = obj
        .keys()
        .find(|k| !CONNECTION_FIELDS.contains(&k.as_str()))
    {
        return Err(bad(format!(
            "unknown field `{field}`; expected {}",
            CONNECTION_FIELDS.join(", ")
        )));
    }
    let kind = match obj.get("type").and_then(Value::as_str) {
        Some("oauth2") => ConnectionKind::Oauth2,
        Some("api_key") => ConnectionKind::ApiKey,
        _ => return Err(bad("`type` must be \"oauth2\" or \"api_key\"")),
    };
    let allowed_clients = string_list(obj, "allowed_clients")?;
    for client in &allowed_clients {
        if hub.store.client(client).await?.is_none() {
            return Err(bad(format!("allowed_clients: unknown client `{client}`")));
        }
    }
    let now = hub.clock.now();
    let mut connection = Connection {
        id: id.to_owned(),
        name: optional_string(obj, "name")?.unwrap_or_else(|| id.to_owned()),
        kind,
        authorization_endpoint: None,
        token_endpoint: None,
        api_base_url: endpoint(hub, obj, "api_base_url")?,
        client_id: None,
        client_secret: None,
        scopes: Vec::new(),
        allowed_clients,
        created_at: now,
        updated_at: now,
    };
    match kind {
        ConnectionKind::ApiKey => {
            if let Some(field) = [
                "authorization_endpoint",
                "token_endpoint",
                "client_id",
                "client_secret",
                "scopes",
            ]
            .into_iter()
            .find(|f| obj.get(*f).is_some_and(|v| !v.is_null()))
            {
                return Err(bad(format!(
                    "an api_key connection has no `{field}`; only oauth2 connections do"
                )));
            }
        }
        ConnectionKind::Oauth2 => {
            connection.token_endpoint = Some(
                endpoint(hub, obj, "token_endpoint")?
                    .ok_or_else(|| bad("an oauth2 connection needs `token_endpoint`"))?,
            );
            connection.authorization_endpoint = endpoint(hub, obj, "authorization_endpoint")?;
            connection.client_id = Some(
                optional_string(obj, "client_id")?
                    .ok_or_else(|| bad("an oauth2 connection needs `client_id`"))?,
            );
            connection.client_secret = optional_string(obj, "client_secret")?;
            connection.scopes = string_list(obj, "scopes")?;
        }
    }
    Ok(connection)
}

/// Upserts a connection from the seed, validated like the admin API's.
pub(crate) async fn seed_connection(hub: &Hub, id: &str, draft: Value) -> Result<(), OAuthError> {
    let mut connection = parse_connection(hub, id, &draft).await?;
    if let Some(existing) = hub.connection(id).await? {
        connection.created_at = existing.created_at;
    }
    hub.put_connection(&connection).await?;
    Ok(())
}

/// Points the seeded `demo-calendar` connection at the demo provider's
/// actual address (`hub --demo-provider-bind`).
pub(crate) async fn point_demo_connection(hub: &Hub, provider_url: &str) -> Result<(), HubError> {
    let Some(mut connection) = hub.connection("demo-calendar").await? else {
        return Ok(());
    };
    let base = provider_url.trim_end_matches('/');
    connection.authorization_endpoint = Some(format!("{base}/authorize"));
    connection.token_endpoint = Some(format!("{base}/token"));
    connection.api_base_url = Some(format!("{base}/api"));
    hub.put_connection(&connection).await?;
    Ok(())
}
