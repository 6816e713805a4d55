//! A browser-based MCP client's view of the authorization server: before a
//! cross-origin `POST` with a JSON or form body, the browser asks with a CORS
//! preflight (`OPTIONS`, Fetch standard) whether the page's origin may read
//! the answer.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::act::{Act, ActionInfo};
use super::failure::StepError;
use super::run::Run;

/// The origin of the browser-based client's page: a header value only,
/// never connected to.
const PAGE_ORIGIN: &str = "https://mcp-client.example";

/// Browser: a CORS preflight to an endpoint the metadata names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Preflight {
    /// The metadata member naming the endpoint: `token_endpoint`,
    /// `registration_endpoint`, `authorization_endpoint`, `jwks_uri`, …
    pub endpoint: String,
    /// The method the page wants to send.
    #[serde(default = "post")]
    pub method: String,
}

fn post() -> String {
    "POST".to_owned()
}

impl Act for Preflight {
    const INFO: ActionInfo = ActionInfo::new(
        "browser",
        "A browser-based MCP client's page, on another origin, asks the authorization server with a CORS preflight (OPTIONS) whether it may call an endpoint. Endpoints clients call directly (token, registration, metadata, JWKS) may allow it; the authorization endpoint, which is only ever navigated to, must not.",
        "RFC 9700 §2.6",
        "https://www.rfc-editor.org/rfc/rfc9700#section-2.6",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        let url = run.endpoint(&self.endpoint).await?;
        let request = run
            .http
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", PAGE_ORIGIN)
            .header("access-control-request-method", &self.method)
            .header("access-control-request-headers", "content-type");
        let response = run.http.send(request).await?;
        let allow_origin = response
            .header("access-control-allow-origin")
            .map(str::to_owned);
        let allow_methods = response
            .header("access-control-allow-methods")
            .unwrap_or_default()
            .to_ascii_uppercase();
        let method = self.method.to_ascii_uppercase();
        // The preflight succeeds for the page when the answer is 2xx, names
        // its origin (or `*`), and allows its method (simple methods need not
        // be listed).
        let origin_ok = allow_origin
            .as_deref()
            .is_some_and(|o| o == "*" || o == PAGE_ORIGIN);
        let method_ok = matches!(method.as_str(), "GET" | "HEAD" | "POST")
            || allow_methods
                .split(',')
                .any(|m| m.trim() == method || m.trim() == "*");
        Ok(json!({
            "status": response.status,
            "allow_origin": allow_origin,
            "allow_methods": allow_methods,
            "allowed": (200..300).contains(&response.status) && origin_ok && method_ok,
            "page_origin": PAGE_ORIGIN,
        }))
    }
}
