//! The MCP client at a protected MCP server: a bare call that draws the
//! challenge (RFC 6750, RFC 9728 §5.1), and a tool call over Streamable HTTP.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::act::{Act, ActionInfo};
use super::defaults::{agenda, primary};
use super::evidence::{status, succeeded, Evidence};
use super::failure::{precondition, StepError};
use super::run::Run;
use crate::mcp_client::HarnessHttp;
use crate::mcp_wire::{rpc_message, McpWire};

/// MCP client: call a protected resource, with no token or with the last
/// token, framed as the run's MCP revision frames it (`crate::mcp_wire`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallResource {
    #[serde(default = "primary")]
    pub resource: String,
    #[serde(default)]
    pub with_token: bool,
    /// Call this tool (JSON-RPC `tools/call`) instead of opening (legacy
    /// `initialize`, modern `server/discover`).
    #[serde(default)]
    pub tool: Option<String>,
    /// Send this JSON-RPC method (with empty params) instead, e.g. `ping`.
    #[serde(default)]
    pub method: Option<String>,
    /// Send this `Origin` header, as a web page of that origin would (a
    /// header value only; nothing connects to it).
    #[serde(default)]
    pub origin: Option<String>,
    /// Claim this protocol version (header and `_meta`) instead of the
    /// run's, in the run's framing: how a server answers one it lacks.
    #[serde(default)]
    pub protocol_version: Option<String>,
    /// Headers to send in place of the framing's (a mismatch probe).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Framing headers to leave out.
    #[serde(default)]
    pub omit_headers: Vec<String>,
    /// Modern `_meta` fields to leave out, by their short name
    /// (`clientCapabilities`, `protocolVersion`, `clientInfo`).
    #[serde(default)]
    pub drop_meta: Vec<String>,
}

impl Act for CallResource {
    const INFO: ActionInfo = ActionInfo::new(
        "MCP client",
        "The MCP client calls the protected MCP server. Without a valid token the answer is 401 with a WWW-Authenticate Bearer challenge whose resource_metadata points at the Protected Resource Metadata; a token for another server, or without the tool's scope, is refused too (403 insufficient_scope).",
        "RFC 6750 §3, RFC 9728 §5.1",
        "https://www.rfc-editor.org/rfc/rfc6750#section-3",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.call_resource(self).await
    }

    fn oblige(&self, facts: &Value, _run: &Run<'_>, evidence: &mut Evidence) {
        if let (Some(tool), true, true) = (&self.tool, self.with_token, succeeded(facts)) {
            let id = evidence.latest_token_client();
            evidence.oblige(
                format!("running the tool `{tool}`"),
                vec!["tool.executed"],
                id,
                "success",
            );
        }
    }
}

/// MCP client: call a tool of a protected MCP server through Streamable
/// HTTP, in the run's revision, with the latest access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct McpTool {
    #[serde(default = "agenda")]
    pub resource: String,
    pub tool: String,
    #[serde(default)]
    pub arguments: BTreeMap<String, toml::Value>,
}

impl Act for McpTool {
    const INFO: ActionInfo = ActionInfo::new(
        "MCP client",
        "The MCP client calls a tool over Streamable HTTP with its access token: after initialize up to MCP 2025-11-25, statelessly with the version in every request from 2026-07-28. The MCP server checks the token's audience and the tool's scope, takes the user's provider token from the hub's vault, and never passes the client's token upstream.",
        "MCP 2025-11-25 authorization §Access Token Privilege Restriction",
        "https://modelcontextprotocol.io/specification/2025-11-25/basic/authorization#access-token-privilege-restriction",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.mcp_tool(&self.resource, &self.tool, &self.arguments)
            .await
    }

    /// The tool ran (or failed) and, when it ran, used a connection token (docs/connections.md).
    fn oblige(&self, facts: &Value, _run: &Run<'_>, evidence: &mut Evidence) {
        if facts["stage"] != "tools/call" || status(facts) != 200 {
            return;
        }
        let tool = &self.tool;
        let subject_client = evidence.latest_token_client();
        let failed = facts["is_error"] == json!(true);
        evidence.oblige(
            format!("running the tool `{tool}`"),
            vec!["tool.executed"],
            subject_client.clone(),
            if failed { "failure" } else { "success" },
        );
        if !failed {
            evidence.oblige(
                format!("the connection token `{tool}` used"),
                vec!["connection.token.issued"],
                subject_client,
                "success",
            );
        }
    }
}

impl Run<'_> {
    async fn call_resource(&mut self, call: &CallResource) -> Result<Value, StepError> {
        let with_token = call.with_token;
        let url = self.served_resource_url(&call.resource)?;
        let mut wire = McpWire::new(self.revision);
        if let Some(version) = &call.protocol_version {
            wire = wire.claiming(&self.text(version)?);
        }
        let mut framed = match (&call.tool, &call.method) {
            (Some(tool), _) => {
                let mut params = Map::new();
                params.insert("name".into(), json!(self.text(tool)?));
                params.insert("arguments".into(), json!({}));
                wire.request(2, "tools/call", params)
            }
            (None, Some(method)) => wire.request(3, &self.text(method)?, Map::new()),
            (None, None) => wire.opening(1),
        };
        if let Some(meta) = framed
            .body
            .pointer_mut("/params/_meta")
            .and_then(Value::as_object_mut)
        {
            for field in &call.drop_meta {
                meta.remove(&format!("io.modelcontextprotocol/{field}"));
            }
        }
        for name in &call.omit_headers {
            framed.remove_header(name);
        }
        for (name, value) in &call.headers {
            framed.set_header(name, &self.text(value)?);
        }
        let id = framed.body["id"].as_u64();
        let mut request = self.http.post(&url).json(&framed.body);
        for (name, value) in &framed.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(origin) = &call.origin {
            request = request.header("origin", self.text(origin)?);
        }
        if with_token {
            let token = self
                .client
                .last_token
                .clone()
                .ok_or_else(|| precondition("no access token has been obtained yet"))?;
            request = request.bearer_auth(token);
        }
        let response = self.http.send(request).await?;
        let challenge = response
            .header("www-authenticate")
            .map(crate::challenge::parse);
        if let Some(url) = challenge
            .as_ref()
            .and_then(|c| c.pointer("/params/resource_metadata"))
            .and_then(Value::as_str)
        {
            self.client.resource_metadata_url = Some(url.to_owned());
        }
        Ok(json!({
            "status": response.status,
            "www_authenticate": challenge,
            "error": challenge.as_ref().and_then(|c| c.pointer("/params/error")).cloned(),
            // Streamable HTTP may answer in JSON or as Server-Sent Events.
            "body": id.and_then(|id| rpc_message(&response, id)).or_else(|| response.json()),
        }))
    }

    /// The official Rust SDK's MCP client (rmcp, [`crate::mcp_client`])
    /// calling one tool in the run's revision: legacy `initialize` offering
    /// it, then `tools/call` in the session if the server gives one; modern
    /// `server/discover`, `tools/list` (for the tool's `x-mcp-header`
    /// parameters), then `tools/call`, each request carrying its `_meta` and
    /// headers. Every exchange is in the transcript.
    async fn mcp_tool(
        &mut self,
        resource: &str,
        tool: &str,
        arguments: &BTreeMap<String, toml::Value>,
    ) -> Result<Value, StepError> {
        use rmcp::model::{
            CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation,
        };
        use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
        use rmcp::transport::StreamableHttpClientTransport;
        use rmcp::{ClientLifecycleMode, ClientServiceExt};

        let url = self.served_resource_url(resource)?;
        let token = self
            .client
            .last_token
            .clone()
            .ok_or_else(|| precondition("no access token has been obtained yet"))?;
        let tool = self.text(tool)?;
        let mut args = Map::new();
        for (key, value) in arguments {
            args.insert(key.clone(), self.scenario_json(value)?);
        }
        let carrier = HarnessHttp::new(self.http.clone());
        let transport = StreamableHttpClientTransport::with_client(
            carrier.clone(),
            StreamableHttpClientTransportConfig::with_uri(url.as_str()).auth_header(token),
        );
        let version = crate::mcp_client::protocol_version(self.revision);
        let info = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("conform", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(version.clone());
        let lifecycle = if self.revision.is_stateless() {
            ClientLifecycleMode::Discover {
                preferred_versions: vec![version],
            }
        } else {
            ClientLifecycleMode::Initialize
        };
        let outcome = match info.serve_with_lifecycle(transport, lifecycle).await {
            Err(opening) => Err(json!({"message": opening.to_string()})),
            Ok(client) => {
                if self.revision.is_stateless() {
                    // Fills rmcp's cache of x-mcp-header parameters; a server
                    // that will not list its tools may still run one.
                    let _ = client.peer().list_tools(None).await;
                }
                let call = CallToolRequestParams::new(tool.clone()).with_arguments(args);
                let outcome = client.peer().call_tool(call).await;
                let _ = client.cancel().await;
                outcome
                    .map(|result| serde_json::to_value(&result).unwrap_or_default())
                    .map_err(|e| match e {
                        // The server's JSON-RPC error, as it sent it.
                        rmcp::ServiceError::McpError(error) => serde_json::to_value(&error)
                            .unwrap_or_else(|e| json!({"message": e.to_string()})),
                        other => json!({"message": other.to_string()}),
                    })
            }
        };
        let last = carrier.last();
        let challenge = last
            .www_authenticate
            .as_deref()
            .map(crate::challenge::parse);
        let (result, rpc_error) = match outcome {
            Ok(result) => (Some(result), None),
            Err(error) => (None, Some(error)),
        };
        let text: String = result
            .as_ref()
            .and_then(|r| r["content"].as_array())
            .map(|items| {
                items
                    .iter()
                    .filter_map(|c| c["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        Ok(json!({
            // The last message sent: where the call stopped.
            "stage": last.method,
            "status": last.status,
            "www_authenticate": challenge,
            "error": challenge.as_ref().and_then(|c| c.pointer("/params/error")).cloned(),
            "result": result,
            "rpc_error": rpc_error,
            "is_error": result.as_ref().and_then(|r| r["isError"].as_bool()).unwrap_or(false),
            "text": text,
            "session": last.session.is_some(),
            "revision": self.revision.as_str(),
        }))
    }
}
