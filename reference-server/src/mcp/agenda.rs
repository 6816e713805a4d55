//! The Agenda MCP server from the demo crate, mounted beside the hub and
//! reaching it over HTTP like any other resource server would.

use crate::error::HubError;
use crate::hub::Hub;

/// The Agenda MCP server, configured for this hub, and the path to mount it at.
pub async fn router(
    hub: &Hub,
    settings: &crate::config::AgendaSettings,
) -> Result<(String, axum::Router), HubError> {
    let server = hub
        .store
        .mcp_servers()
        .await?
        .into_iter()
        .find(|s| s.id == settings.server_id)
        .ok_or_else(|| {
            HubError::Config(format!(
                "the Agenda MCP server needs the MCP server `{}` in the seed",
                settings.server_id
            ))
        })?;
    let config = demo::agenda::AgendaConfig {
        resource: hub.resource_url(&server),
        resource_metadata: hub.resource_metadata_url(&server.path),
        issuer: hub.issuer.clone(),
        jwks_uri: hub.endpoint("/jwks.json"),
        token_endpoint: hub.endpoint("/token"),
        audit_endpoint: hub.endpoint("/audit/tool-executions"),
        introspection_endpoint: Some(hub.endpoint("/introspect")),
        allowed_origins: Vec::new(),
        client_id: settings.client_id.clone(),
        client_secret: settings.client_secret.clone(),
        connection: settings.connection.clone(),
        api_base_url: None,
        faults: demo::agenda::AgendaFaults {
            token_passthrough: hub.faults.on(crate::fault::Fault::McpTokenPassthrough),
            skip_tool_scope: hub.faults.on(crate::fault::Fault::AgendaSkipToolScope),
            ignore_origin: hub.faults.on(crate::fault::Fault::McpIgnoresOrigin),
            accept_revoked: hub
                .faults
                .on(crate::fault::Fault::AgendaAcceptsRevokedToken),
            challenge_drops_held_scopes: hub
                .faults
                .on(crate::fault::Fault::ChallengeDropsHeldScopes),
        },
    };
    Ok((server.path, demo::agenda::router(config)))
}
