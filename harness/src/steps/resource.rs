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
use crate::mcp_wire::{param_headers, Framed, McpWire};

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

/// The JSON-RPC message with `id` in a Streamable HTTP answer: one JSON
/// object, or Server-Sent Events whose `data` carry messages.
fn rpc_message(response: &crate::http::Response, id: u64) -> Option<Value> {
    let is_sse = response
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/event-stream"));
    if !is_sse {
        return response.json();
    }
    let text = response.text();
    let mut data = String::new();
    let mut found = None;
    for line in text.lines().chain(std::iter::once("")) {
        if let Some(rest) = line.strip_prefix("data:") {
            data.push_str(rest.trim_start());
            data.push('\n');
        } else if line.is_empty() && !data.is_empty() {
            if let Ok(message) = serde_json::from_str::<Value>(data.trim()) {
                if message["id"] == json!(id) {
                    found = Some(message);
                }
            }
            data.clear();
        }
    }
    found
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
        let body = framed.body.clone();
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
            "body": body["id"].as_u64().and_then(|id| rpc_message(&response, id)).or_else(|| response.json()),
        }))
    }

    /// An MCP client over Streamable HTTP calling one tool, in the run's
    /// revision: legacy `initialize`, `notifications/initialized`, then
    /// `tools/call` with the session id if the server gives one; modern
    /// `tools/list` (for the tool's `x-mcp-header` parameters) then
    /// `tools/call`, stateless. Answers may be JSON or SSE.
    async fn mcp_tool(
        &mut self,
        resource: &str,
        tool: &str,
        arguments: &BTreeMap<String, toml::Value>,
    ) -> Result<Value, StepError> {
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
        let wire = McpWire::new(self.revision);
        let mut session: Option<String> = None;
        let mut call_params = Map::new();
        call_params.insert("name".into(), json!(tool));
        call_params.insert("arguments".into(), Value::Object(args.clone()));
        let stages: Vec<(&str, Framed)> = if wire.stateless() {
            vec![
                ("tools/list", wire.request(1, "tools/list", Map::new())),
                ("tools/call", wire.request(2, "tools/call", call_params)),
            ]
        } else {
            vec![
                ("initialize", wire.initialize(1)),
                ("notifications/initialized", wire.initialized()),
                ("tools/call", wire.request(2, "tools/call", call_params)),
            ]
        };
        let mut last = None;
        for (stage, mut framed) in stages {
            if stage == "tools/call" {
                if let Some(schema) = last
                    .as_ref()
                    .filter(|(s, _)| *s == "tools/list")
                    .and_then(|(_, r)| rpc_message(r, 1))
                    .and_then(|m| input_schema(&m, &tool))
                {
                    framed.headers.extend(param_headers(&schema, &args));
                }
            }
            let mut request = self.http.post(&url).bearer_auth(&token).json(&framed.body);
            for (name, value) in &framed.headers {
                request = request.header(name.as_str(), value.as_str());
            }
            if let Some(id) = &session {
                request = request.header("mcp-session-id", id);
            }
            let response = self.http.send(request).await?;
            if stage == "initialize" {
                session = response.header("mcp-session-id").map(str::to_owned);
            }
            let failed = match stage {
                "notifications/initialized" => !(200..300).contains(&response.status),
                _ => response.status != 200,
            };
            last = Some((stage, response));
            if failed {
                break;
            }
        }
        let (stage, response) = last.ok_or_else(|| precondition("nothing was sent"))?;
        let challenge = response
            .header("www-authenticate")
            .map(crate::challenge::parse);
        let message = if stage == "tools/call" {
            rpc_message(&response, 2)
        } else {
            None
        };
        let result = message.as_ref().and_then(|m| m.get("result")).cloned();
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
            "stage": stage,
            "status": response.status,
            "www_authenticate": challenge,
            "error": challenge.as_ref().and_then(|c| c.pointer("/params/error")).cloned(),
            "result": result,
            "rpc_error": message.as_ref().and_then(|m| m.get("error")).cloned(),
            "is_error": result.as_ref().and_then(|r| r["isError"].as_bool()).unwrap_or(false),
            "text": text,
            "session": session.is_some(),
            "revision": wire.version(),
        }))
    }
}

/// The `inputSchema` of `tool` in a `tools/list` answer.
fn input_schema(message: &Value, tool: &str) -> Option<Value> {
    message
        .pointer("/result/tools")?
        .as_array()?
        .iter()
        .find(|t| t["name"] == tool)
        .and_then(|t| t.get("inputSchema").cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(content_type: &str, body: &str) -> crate::http::Response {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "content-type",
            content_type.parse().expect("a header value"),
        );
        crate::http::Response {
            status: 200,
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn finds_the_answer_in_json_or_in_server_sent_events() {
        let json = response(
            "application/json",
            r#"{"jsonrpc":"2.0","id":2,"result":{"isError":false}}"#,
        );
        assert_eq!(
            rpc_message(&json, 2).map(|m| m["result"]["isError"].clone()),
            Some(json!(false))
        );
        let sse = response(
            "text/event-stream",
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n\
             id: 7\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\ndata: \"result\":{\"content\":[]}}\n\n",
        );
        assert_eq!(
            rpc_message(&sse, 2).map(|m| m["result"].clone()),
            Some(json!({"content": []}))
        );
        assert_eq!(rpc_message(&sse, 3), None);
    }
}
