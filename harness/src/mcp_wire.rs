//! How an MCP client of one revision frames a JSON-RPC request for
//! Streamable HTTP, for the requests the harness sends on purpose as no
//! well-behaved client would (`call_resource`: a version the server lacks, a
//! header that disagrees with the body, a `_meta` field left out); a
//! well-behaved call goes through the official SDK's client
//! ([`crate::mcp_client`]). Both speak the revision a run judges by.
//!
//! - **Legacy** (2025-06-18, 2025-11-25): a session opens with `initialize`
//!   (the version is negotiated in its body), then `notifications/initialized`;
//!   every later request carries `MCP-Protocol-Version` (MCP 2025-11-25
//!   transports, Protocol Version Header) and the session id the server gave.
//! - **Modern** (2026-07-28): no handshake and no session. Every request
//!   carries its version and the client's capabilities in `params._meta`
//!   (basic §_meta, Per-request protocol fields) and mirrors them into
//!   headers: `MCP-Protocol-Version`, `Mcp-Method`, and `Mcp-Name` for
//!   `tools/call`, `resources/read` and `prompts/get` (transports, Request
//!   Metadata), a value that is not plain ASCII Base64-encoded.
//!
//! Checked against the spec's own examples in the tests below.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::revision::Revision;

/// `_meta` key of the request's protocol version (MCP 2026-07-28).
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the client's capabilities for this request.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of the client's name and version (SHOULD on every request).
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";

/// One message ready to POST: its headers (besides `Authorization`) and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Framed {
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Framed {
    /// Sets `name` (case-insensitively replacing any earlier value).
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.remove_header(name);
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
    }

    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

/// The client side of one revision's framing.
#[derive(Debug, Clone)]
pub struct McpWire {
    /// The version string the client claims (normally the revision's own).
    version: String,
    stateless: bool,
}

impl McpWire {
    pub fn new(revision: Revision) -> McpWire {
        McpWire {
            version: revision.as_str().to_owned(),
            stateless: revision.is_stateless(),
        }
    }

    /// The same framing claiming another version, as a probe of how a
    /// server answers a version it may not implement.
    pub fn claiming(mut self, version: &str) -> McpWire {
        self.version = version.to_owned();
        self
    }

    /// A request. `params` is the method's own; the modern framing adds
    /// `_meta` and the request metadata headers.
    pub fn request(&self, id: u64, method: &str, params: Map<String, Value>) -> Framed {
        let mut headers = vec![
            (
                "accept".to_owned(),
                "application/json, text/event-stream".to_owned(),
            ),
            ("mcp-protocol-version".to_owned(), self.version.clone()),
        ];
        let mut params = params;
        if self.stateless {
            headers.push(("mcp-method".to_owned(), method.to_owned()));
            let name_field = match method {
                "tools/call" | "prompts/get" => Some("name"),
                "resources/read" => Some("uri"),
                _ => None,
            };
            if let Some(name) = name_field
                .and_then(|f| params.get(f))
                .and_then(Value::as_str)
            {
                headers.push(("mcp-name".to_owned(), header_value(name)));
            }
            let meta = params
                .entry("_meta")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(meta) = meta.as_object_mut() {
                meta.insert(META_PROTOCOL_VERSION.into(), json!(self.version));
                meta.insert(
                    META_CLIENT_INFO.into(),
                    json!({"name": "conform", "version": env!("CARGO_PKG_VERSION")}),
                );
                meta.insert(META_CLIENT_CAPABILITIES.into(), json!({}));
            }
        }
        Framed {
            headers,
            body: json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        }
    }

    /// Legacy only: the `initialize` request that opens a session, offering
    /// this version (the server answers with it or another it supports).
    fn initialize(&self, id: u64) -> Framed {
        Framed {
            headers: vec![(
                "accept".to_owned(),
                "application/json, text/event-stream".to_owned(),
            )],
            body: json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
                "protocolVersion": self.version,
                "capabilities": {},
                "clientInfo": {"name": "conform", "version": env!("CARGO_PKG_VERSION")}
            }}),
        }
    }

    /// The first message a client sends to reach a server at all: legacy
    /// `initialize`, modern `server/discover`.
    pub fn opening(&self, id: u64) -> Framed {
        if self.stateless {
            self.request(id, "server/discover", Map::new())
        } else {
            self.initialize(id)
        }
    }
}

/// A value as a header carries it (transports, Value Encoding): as is when
/// it is plain visible ASCII with inner spaces, else `=?base64?…?=` of its
/// UTF-8 (and so is a plain value that looks like the sentinel).
fn header_value(text: &str) -> String {
    let plain = text
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) || b == b' ' || b == b'\t')
        && !text.starts_with([' ', '\t'])
        && !text.ends_with([' ', '\t'])
        && !text.starts_with("=?base64?");
    if plain {
        text.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
        )
    }
}

/// The JSON-RPC message with `id` in a Streamable HTTP answer: one JSON
/// object, or Server-Sent Events whose `data` carry messages.
pub fn rpc_message(response: &crate::http::Response, id: u64) -> Option<Value> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_modern_tool_call_is_framed_as_the_spec_example() {
        // MCP 2026-07-28 transports, Request Metadata: the tools/call example.
        let wire = McpWire::new(Revision::R2026_07_28);
        let mut params = Map::new();
        params.insert("name".into(), json!("get_weather"));
        params.insert("arguments".into(), json!({"location": "Seattle, WA"}));
        let framed = wire.request(1, "tools/call", params);
        let header = |n: &str| {
            framed
                .headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("mcp-protocol-version"), Some("2026-07-28"));
        assert_eq!(header("mcp-method"), Some("tools/call"));
        assert_eq!(header("mcp-name"), Some("get_weather"));
        let meta = &framed.body["params"]["_meta"];
        assert_eq!(meta[META_PROTOCOL_VERSION], "2026-07-28");
        assert_eq!(meta[META_CLIENT_CAPABILITIES], json!({}));
        assert_eq!(meta[META_CLIENT_INFO]["name"], "conform");
        assert_eq!(
            framed.body["params"]["arguments"]["location"],
            "Seattle, WA"
        );
        assert_eq!(
            wire.opening(2).body["method"],
            "server/discover",
            "a modern client opens without a handshake"
        );
    }

    #[test]
    fn a_legacy_client_opens_a_session_and_sends_no_request_metadata() {
        let wire = McpWire::new(Revision::R2025_06_18);
        let open = wire.opening(1);
        assert_eq!(open.body["method"], "initialize");
        assert_eq!(open.body["params"]["protocolVersion"], "2025-06-18");
        let call = wire.request(2, "tools/list", Map::new());
        assert!(call.body["params"].get("_meta").is_none());
        assert!(call.headers.iter().all(|(k, _)| k != "mcp-method"));
        assert!(call
            .headers
            .contains(&("mcp-protocol-version".into(), "2025-06-18".into())));
    }

    #[test]
    fn header_values_follow_the_spec_encoding_examples() {
        // MCP 2026-07-28 transports, Value Encoding.
        assert_eq!(
            header_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(header_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(header_value("line1\nline2"), "=?base64?bGluZTEKbGluZTI=?=");
        assert_eq!(
            header_value("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
        assert_eq!(header_value("us-west1"), "us-west1");
        assert_eq!(
            header_value("file:///projects/myapp/config.json"),
            "file:///projects/myapp/config.json"
        );
    }

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
