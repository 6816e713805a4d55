//! The MCP framing the hub's own MCP endpoints speak: dual-era, as MCP
//! 2026-07-28 (versioning, Backward Compatibility) lets a server be.
//!
//! - A request that carries modern per-request `_meta`, or claims a version
//!   no `initialize` negotiates, is served statelessly by 2026-07-28: its
//!   `_meta` and its `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name`
//!   headers are checked (transports, Server Validation), a version the hub
//!   lacks is refused naming the ones it has (`-32022`), `server/discover`
//!   answers, results carry `resultType` and cache hints, and a method the
//!   revision lacks is 404 (`-32601`).
//! - Anything else is a legacy client (2025-03-26 to 2025-11-25): it opens
//!   with `initialize`, which answers with the version it asked for when the
//!   hub has it and with the newest legacy one otherwise (2025-11-25
//!   lifecycle, Version Negotiation). The hub keeps no session, which those
//!   revisions allow ("MAY assign a session ID").
//!
//! Every refusal here is a JSON-RPC error with its HTTP status: a dual-era
//! client tells a modern server from a legacy one by that body.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::fault::{Fault, Faults};

/// The modern revision: no handshake, version in every request.
pub const MODERN: &str = "2026-07-28";
/// The legacy revisions an `initialize` may agree to, newest first.
pub const LEGACY: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

/// `_meta` fields of a modern request (MCP 2026-07-28, basic §_meta).
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

/// JSON-RPC codes of MCP 2026-07-28 (basic, Error Codes).
pub const HEADER_MISMATCH: i64 = -32020;
pub const UNSUPPORTED_VERSION: i64 = -32022;
pub const INVALID_PARAMS: i64 = -32602;
pub const METHOD_NOT_FOUND: i64 = -32601;

/// How long a client may cache discovery and tool lists (MCP 2026-07-28
/// caching: `ttlMs` is required and `>= 0`). The tools of a hub MCP server
/// change only when an administrator edits it.
const TTL_MS: u64 = 60_000;

/// Which era a request is in, once its framing checks out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Era {
    Legacy,
    Modern,
}

/// A request whose framing the endpoint accepted.
#[derive(Debug)]
pub struct Incoming {
    pub id: Value,
    pub method: String,
    pub params: Value,
    pub era: Era,
    /// A notification (no `id`): accepted with 202 and no body.
    pub notification: bool,
}

/// A JSON-RPC error answer with its HTTP status.
pub fn rpc_error(
    status: StatusCode,
    id: Value,
    code: i64,
    message: &str,
    data: Option<Value>,
) -> Response {
    let mut error = json!({"code": code, "message": message});
    if let Some(data) = data {
        error["data"] = data;
    }
    (
        status,
        Json(json!({"jsonrpc": "2.0", "id": id, "error": error})),
    )
        .into_response()
}

/// Every version the hub serves, for `-32022` and `server/discover`.
pub fn supported_versions() -> Vec<&'static str> {
    std::iter::once(MODERN).chain(LEGACY).collect()
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A header value as the body has it: `=?base64?…?=` decoded (transports,
/// Value Encoding), else as sent. `None` for a sentinel that does not decode.
fn decoded(value: &str) -> Option<String> {
    match value
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
        None => Some(value.to_owned()),
    }
}

/// Reads a POSTed message and checks its framing for its era; a refusal is
/// the answer to send (boxed: a response is large beside a request).
pub fn read(headers: &HeaderMap, body: &[u8], faults: &Faults) -> Result<Incoming, Box<Response>> {
    let request: Value = serde_json::from_slice(body).map_err(|_| {
        Box::new(rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            -32700,
            "parse error: the body is not JSON",
            None,
        ))
    })?;
    let Some(method) = request.get("method").and_then(Value::as_str) else {
        return Err(Box::new(rpc_error(
            StatusCode::BAD_REQUEST,
            request.get("id").cloned().unwrap_or(Value::Null),
            -32600,
            "invalid request: a JSON-RPC request names its method",
            None,
        )));
    };
    let id = request.get("id").cloned();
    let params = request.get("params").cloned().unwrap_or(Value::Null);
    let header_version = header(headers, "mcp-protocol-version");
    let modern = params
        .pointer("/_meta")
        .and_then(|m| m.get(META_VERSION))
        .is_some()
        || header_version.is_some_and(|v| !LEGACY.contains(&v) && method != "initialize");
    if modern {
        let id = id.clone().unwrap_or(Value::Null);
        check_modern(headers, method, &params, faults).map_err(|(code, message, data)| {
            Box::new(rpc_error(StatusCode::BAD_REQUEST, id, code, &message, data))
        })?;
    }
    Ok(Incoming {
        notification: id.is_none(),
        id: id.unwrap_or(Value::Null),
        method: method.to_owned(),
        params,
        era: if modern { Era::Modern } else { Era::Legacy },
    })
}

/// A modern request's framing (MCP 2026-07-28): its headers, its `_meta`
/// and its version; the JSON-RPC error of the first thing wrong.
fn check_modern(
    headers: &HeaderMap,
    method: &str,
    params: &Value,
    faults: &Faults,
) -> Result<(), (i64, String, Option<Value>)> {
    let meta = params.get("_meta").and_then(Value::as_object);
    let meta_version = meta.and_then(|m| m.get(META_VERSION));
    let headers_checked = !faults.on(Fault::McpHeadersUnchecked);
    let mismatch = |message: String| Err((HEADER_MISMATCH, message, None));
    let Some(header_version) = header(headers, "mcp-protocol-version") else {
        return mismatch("Header mismatch: the MCP-Protocol-Version header is required".into());
    };
    if !faults.on(Fault::RequestMetaUnchecked) {
        if let Some(field) = [META_VERSION, META_CAPABILITIES]
            .into_iter()
            .find(|field| meta.and_then(|m| m.get(*field)).is_none())
        {
            return Err((
                INVALID_PARAMS,
                format!("Invalid params: request _meta lacks the required `{field}`"),
                None,
            ));
        }
    }
    if headers_checked && meta_version.is_some_and(|v| v != header_version) {
        return mismatch(format!(
            "Header mismatch: MCP-Protocol-Version header value '{header_version}' does not match body value '{}'",
            meta_version.and_then(Value::as_str).unwrap_or_default()
        ));
    }
    if header_version != MODERN && !faults.on(Fault::UnsupportedVersionServed) {
        return Err((
            UNSUPPORTED_VERSION,
            "Unsupported protocol version".into(),
            Some(json!({"supported": supported_versions(), "requested": header_version})),
        ));
    }
    if !headers_checked {
        return Ok(());
    }
    match header(headers, "mcp-method") {
        Some(m) if m == method => {}
        Some(m) => {
            return mismatch(format!(
            "Header mismatch: Mcp-Method header value '{m}' does not match body value '{method}'"
        ))
        }
        None => return mismatch("Header mismatch: the Mcp-Method header is required".into()),
    }
    let name_field = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return Ok(()),
    };
    let body_value = params
        .get(name_field)
        .and_then(Value::as_str)
        .unwrap_or_default();
    match header(headers, "mcp-name").map(decoded) {
        Some(Some(v)) if v == body_value => Ok(()),
        Some(_) => mismatch(format!(
            "Header mismatch: the Mcp-Name header does not match body value '{body_value}'"
        )),
        None => mismatch("Header mismatch: the Mcp-Name header is required".into()),
    }
}

/// The legacy `initialize` result: the version asked for when the hub has
/// it, else its newest legacy one (2025-11-25 lifecycle, Version Negotiation).
pub fn initialize_result(params: &Value, name: &str) -> Value {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = asked.filter(|v| LEGACY.contains(v)).unwrap_or(LEGACY[0]);
    json!({
        "protocolVersion": version,
        "capabilities": {"tools": {}},
        "serverInfo": server_info(name),
    })
}

fn server_info(name: &str) -> Value {
    json!({"name": name, "version": env!("CARGO_PKG_VERSION")})
}

/// `server/discover` (MCP 2026-07-28: servers MUST implement it).
pub fn discover_result(name: &str) -> Value {
    let result = json!({
        "supportedVersions": supported_versions(),
        "capabilities": {"tools": {}},
        "ttlMs": TTL_MS,
        "cacheScope": "public",
    });
    complete(result, name)
}

/// Adds what a modern result carries: `resultType` (basic, Result
/// Responses), the server's identity in `_meta` (SHOULD), and the cache
/// hints a listing needs (caching: `tools/list` among them).
pub fn modern_result(mut result: Value, method: &str, name: &str, faults: &Faults) -> Value {
    if method == "tools/list" && !faults.on(Fault::ToolsListWithoutCacheHints) {
        if let Some(r) = result.as_object_mut() {
            r.insert("ttlMs".into(), json!(TTL_MS));
            r.insert("cacheScope".into(), json!("private"));
        }
    }
    complete(result, name)
}

/// `resultType: "complete"` and the server's identity in `_meta`.
fn complete(mut result: Value, name: &str) -> Value {
    if let Some(r) = result.as_object_mut() {
        r.insert("resultType".into(), json!("complete"));
        let meta = r
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert(
                "io.modelcontextprotocol/serverInfo".into(),
                server_info(name),
            );
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modern_headers(method: &str, name: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("mcp-protocol-version", MODERN.parse().expect("a value"));
        h.insert("mcp-method", method.parse().expect("a value"));
        if let Some(name) = name {
            h.insert("mcp-name", name.parse().expect("a value"));
        }
        h
    }

    fn body(method: &str, params: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .expect("JSON")
    }

    fn meta() -> Value {
        json!({META_VERSION: MODERN, META_CAPABILITIES: {}})
    }

    fn code(response: Response) -> (u16, i64) {
        let status = response.status().as_u16();
        let body = futures_body(response);
        (status, body["error"]["code"].as_i64().unwrap_or_default())
    }

    fn futures_body(response: Response) -> Value {
        let bytes = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 16))
            .expect("a body");
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[test]
    fn the_spec_tool_call_example_is_accepted_as_modern() {
        let faults = Faults::default();
        let params = json!({"name": "get_weather", "arguments": {"location": "Seattle, WA"}, "_meta": meta()});
        let incoming = read(
            &modern_headers("tools/call", Some("get_weather")),
            &body("tools/call", params),
            &faults,
        )
        .expect("accepted");
        assert_eq!(incoming.era, Era::Modern);
        // The same name, Base64-encoded as Value Encoding allows.
        let params = json!({"name": "get_weather", "arguments": {}, "_meta": meta()});
        assert!(read(
            &modern_headers("tools/call", Some("=?base64?Z2V0X3dlYXRoZXI=?=")),
            &body("tools/call", params),
            &faults
        )
        .is_ok());
    }

    #[test]
    fn modern_framing_faults_get_their_codes() {
        let faults = Faults::default();
        let with = |h: HeaderMap, method: &str, params: Value| {
            code(*read(&h, &body(method, params), &faults).unwrap_err())
        };
        // Mcp-Method differs from the body.
        assert_eq!(
            with(
                modern_headers("tools/list", None),
                "server/discover",
                json!({"_meta": meta()})
            ),
            (400, HEADER_MISMATCH)
        );
        // Mcp-Name differs.
        assert_eq!(
            with(
                modern_headers("tools/call", Some("other")),
                "tools/call",
                json!({"name": "x", "_meta": meta()})
            ),
            (400, HEADER_MISMATCH)
        );
        // No clientCapabilities.
        assert_eq!(
            with(
                modern_headers("tools/list", None),
                "tools/list",
                json!({"_meta": {META_VERSION: MODERN}})
            ),
            (400, INVALID_PARAMS)
        );
        // A version the hub lacks, named the same in header and body.
        let mut h = modern_headers("tools/list", None);
        h.insert(
            "mcp-protocol-version",
            "1900-01-01".parse().expect("a value"),
        );
        let response = read(
            &h,
            &body(
                "tools/list",
                json!({"_meta": {META_VERSION: "1900-01-01", META_CAPABILITIES: {}}}),
            ),
            &faults,
        )
        .unwrap_err();
        let answer = futures_body(*response);
        assert_eq!(answer["error"]["code"], UNSUPPORTED_VERSION);
        assert_eq!(answer["error"]["data"]["requested"], "1900-01-01");
        assert!(answer["error"]["data"]["supported"]
            .as_array()
            .expect("a list")
            .contains(&json!(MODERN)));
    }

    #[test]
    fn a_legacy_client_negotiates_its_version() {
        let faults = Faults::default();
        let init = body(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}}),
        );
        let incoming = read(&HeaderMap::new(), &init, &faults).expect("accepted");
        assert_eq!(incoming.era, Era::Legacy);
        assert_eq!(
            initialize_result(&incoming.params, "x")["protocolVersion"],
            "2025-06-18"
        );
        assert_eq!(
            initialize_result(&json!({"protocolVersion": "2099-01-01"}), "x")["protocolVersion"],
            LEGACY[0]
        );
    }
}
