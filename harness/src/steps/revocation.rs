//! The run's latest tokens, as actions pick them, and revoking one
//! (RFC 7009): from then on it must not work.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::act::{Act, ActionInfo};
use super::defaults::self_name;
use super::failure::{precondition, StepError};
use super::run::Run;

/// Which of the run's tokens an action uses.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// The latest access token received.
    Access,
    /// The latest refresh token received.
    Refresh,
    /// A fresh random string: a token the target never issued.
    Unknown,
}

/// MCP client: revoke its latest access or refresh token (RFC 7009), or one
/// the target never issued.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revoke {
    #[serde(default = "self_name")]
    pub client: String,
    pub token: TokenKind,
}

impl Act for Revoke {
    const INFO: ActionInfo = ActionInfo::new(
        "MCP client",
        "The client revokes one of its tokens; from then on it must not work.",
        "RFC 7009 §2.1",
        "https://www.rfc-editor.org/rfc/rfc7009#section-2.1",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.revoke(&self.client, self.token).await
    }
}

impl Run<'_> {
    /// The latest access or refresh token received, or a token never issued.
    pub(super) fn latest(&self, kind: TokenKind) -> Result<String, StepError> {
        match kind {
            TokenKind::Access => self.client.last_token.clone(),
            TokenKind::Refresh => self.client.refresh_tokens.last().cloned(),
            TokenKind::Unknown => Some(format!("conform-unknown-{}", crate::random_token())),
        }
        .ok_or_else(|| precondition(format!("no {kind:?} token has been obtained yet")))
    }

    async fn revoke(&mut self, client: &str, kind: TokenKind) -> Result<Value, StepError> {
        let client = self.registered(client)?;
        let token = self.latest(kind)?;
        let endpoint = self.endpoint("revocation_endpoint").await?;
        let mut form = vec![("token", token.as_str())];
        match kind {
            TokenKind::Access => form.push(("token_type_hint", "access_token")),
            TokenKind::Refresh => form.push(("token_type_hint", "refresh_token")),
            TokenKind::Unknown => {}
        }
        form.push(("client_id", client.client_id.as_str()));
        let response = self
            .http
            .send(self.http.post(&endpoint).form(&form))
            .await?;
        let body = response.json();
        Ok(json!({
            "status": response.status,
            "body": body,
            "error": body.as_ref().and_then(|b| b.get("error")).cloned(),
        }))
    }
}
