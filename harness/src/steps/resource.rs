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

/// MCP client: call a protected resource, with no token or with the last token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallResource {
    #[serde(default = "primary")]
    pub resource: String,
    #[serde(default)]
    pub with_token: bool,
    /// Call this tool (JSON-RPC `tools/call`) instead of `initialize`.
    #[serde(default)]
    pub tool: Option<String>,
    /// Send this JSON-RPC method (with empty params) instead, e.g. `ping`.
    #[serde(default)]
    pub method: Option<String>,
    /// Send this `Origin` header, as a web page of that origin would (a
    /// header value only; nothing connects to it).
    #[serde(default)]
    pub origin: Option<String>,
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
/// HTTP (initialize, notifications/initialized, tools/call) with the latest access token.
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
        "The MCP client calls a tool over Streamable HTTP (initialize, then tools/call) with its access token. The MCP server checks the token's audience and the tool's scope, takes the user's provider token from the hub's vault, and never passes the client's token upstream.",
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
        let body = match (&call.tool, &call.method) {
            (Some(tool), _) => {
                json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": self.text(tool)?, "arguments": {}}})
            }
            (None, Some(method)) => {
                json!({"jsonrpc": "2.0", "id": 3, "method": self.text(method)?, "params": {}})
            }
            (None, None) => json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "conform", "version": env!("CARGO_PKG_VERSION")}
            }}),
        };
        let mut request = self
            .http
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body);
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

    /// An MCP client over Streamable HTTP (MCP 2025-11-25): initialize,
    /// notifications/initialized, then tools/call, with the session id if the
    /// server gives one; answers may be JSON or SSE.
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
        let mut session: Option<String> = None;
        let messages = [
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "conform", "version": env!("CARGO_PKG_VERSION")}
            }}),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": args}}),
        ];
        let mut last = None;
        for (stage, message) in ["initialize", "notifications/initialized", "tools/call"]
            .into_iter()
            .zip(messages)
        {
            let mut request = self
                .http
                .post(&url)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-11-25")
                .bearer_auth(&token)
                .json(&message);
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
        }))
    }
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
