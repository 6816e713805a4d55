//! Discovery, as the MCP client does it: the authorization server's metadata
//! (RFC 8414) and a protected resource's metadata (RFC 9728).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::act::{Act, ActionInfo};
use super::defaults::primary;
use super::failure::{precondition, StepError};
use super::run::Run;

/// MCP client: fetch Authorization Server Metadata by path insertion (RFC 8414 §3.1),
/// for the profile's issuer or, with `from_prm`, for the first authorization
/// server the last Protected Resource Metadata named (MCP discovery).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchAsMetadata {
    #[serde(default)]
    pub from_prm: bool,
}

impl Act for FetchAsMetadata {
    const INFO: ActionInfo = ActionInfo::new(
        "MCP client",
        "The MCP client discovers the authorization server: it inserts /.well-known/oauth-authorization-server into the issuer URL and reads the metadata (endpoints, grant types, PKCE methods). The issuer in the document must be exactly the one it was fetched for.",
        "RFC 8414 §3",
        "https://www.rfc-editor.org/rfc/rfc8414#section-3",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        let issuer = if self.from_prm {
            run.client.discovered_issuer.clone().ok_or_else(|| {
                precondition("no Protected Resource Metadata named an authorization server")
            })?
        } else {
            run.profile.issuer.clone()
        };
        run.fetch_as_metadata(&issuer).await
    }
}

/// MCP client: fetch Protected Resource Metadata, from the last challenge's
/// `resource_metadata` or by path insertion (RFC 9728 §3.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchResourceMetadata {
    #[serde(default = "primary")]
    pub resource: String,
}

impl Act for FetchResourceMetadata {
    const INFO: ActionInfo = ActionInfo::new(
        "MCP client",
        "The MCP client asks the MCP server which authorization server protects it: the Protected Resource Metadata names the resource exactly and lists its authorization_servers and scopes.",
        "RFC 9728 §3",
        "https://www.rfc-editor.org/rfc/rfc9728#section-3",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.fetch_resource_metadata(&self.resource).await
    }
}

impl Run<'_> {
    pub(super) async fn fetch_as_metadata(&mut self, issuer: &str) -> Result<Value, StepError> {
        let mut tried = Vec::new();
        let mut last = None;
        let urls = crate::well_known::authorization_server_metadata_urls(issuer)
            .map_err(|e| precondition(format!("issuer `{issuer}`: {e}")))?;
        for url in urls {
            let response = self.http.send(self.http.get(&url)).await?;
            tried.push(json!({"url": url, "status": response.status}));
            if response.status == 200 {
                if let Some(body) = response.json().filter(Value::is_object) {
                    self.client.metadata = Some(body.clone());
                    return Ok(
                        json!({"status": 200, "url": url, "issuer_used": issuer, "body": body, "tried": tried}),
                    );
                }
            }
            last = Some(response);
        }
        Ok(json!({
            "status": last.map(|r| r.status),
            "body": null,
            "tried": tried,
        }))
    }

    /// The AS metadata, discovered once per scenario.
    pub(super) async fn metadata(&mut self) -> Result<Value, StepError> {
        if self.client.metadata.is_none() {
            let issuer = self.profile.issuer.clone();
            self.fetch_as_metadata(&issuer).await?;
        }
        self.client.metadata.clone().ok_or_else(|| {
            precondition("the authorization server metadata could not be discovered")
        })
    }

    pub(crate) async fn endpoint(&mut self, name: &str) -> Result<String, StepError> {
        self.metadata()
            .await?
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| precondition(format!("the metadata has no `{name}`")))
    }

    async fn fetch_resource_metadata(&mut self, resource: &str) -> Result<Value, StepError> {
        let resource_url = self.served_resource_url(resource)?;
        let (url, source) = match &self.client.resource_metadata_url {
            Some(url) => (url.clone(), "challenge"),
            None => (
                crate::well_known::protected_resource_metadata_url(&resource_url)
                    .map_err(|e| precondition(e.to_string()))?,
                "well-known",
            ),
        };
        let response = self.http.send(self.http.get(&url)).await?;
        let body = response.json();
        self.client.discovered_issuer = body
            .as_ref()
            .and_then(|b| b.pointer("/authorization_servers/0"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(json!({"status": response.status, "url": url, "source": source, "body": body}))
    }
}
