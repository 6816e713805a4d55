//! The user signs out of the target in their browser: a POST to the
//! profile's `[user] sign_out_url`, as the sign-out button's form sends it,
//! with the browser's cookies. From then on the browser is not signed in.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::act::{Act, ActionInfo};
use super::evidence::Evidence;
use super::failure::{undeclared, StepError};
use super::run::Run;

/// User (browser): sign out of the target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignOut {
    /// Whose browser: a `[users]` name, else the `[user]`'s.
    #[serde(default)]
    pub user: Option<String>,
}

impl Act for SignOut {
    const INFO: ActionInfo = ActionInfo::new(
        "user (browser)",
        "The user signs out of the server in their browser; the sign-in session ends, so the next authorization asks for the password again.",
        "OpenID Connect RP-Initiated Logout 1.0 §2",
        "https://openid.net/specs/openid-connect-rpinitiated-1_0.html#RPLogout",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        let Some(url) = run.profile.user.sign_out_url.clone() else {
            return Err(undeclared(
                "the profile declares no [user] sign_out_url: the harness cannot sign the user out",
            ));
        };
        let url = run.text(&url)?;
        let browser = run.browser_of(self.user.as_deref());
        let response = browser
            .send(
                browser
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("action=signout"),
            )
            .await?;
        Ok(json!({
            "status": response.status,
            "signed_out": (200..400).contains(&response.status),
        }))
    }

    /// A sign-out is a session event the trail records.
    fn oblige(&self, facts: &Value, _run: &Run<'_>, evidence: &mut Evidence) {
        if facts["signed_out"] == json!(true) {
            evidence.oblige("the sign-out".into(), vec!["user.logout"], None, "success");
        }
    }
}
