//! The user connects a provider in a browser (docs/connections.md,
//! Connecting a user in a browser): the hub is the provider's OAuth client,
//! with PKCE S256 and a single-use state, and seals the tokens it gets.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use url::Url;

use super::act::{Act, ActionInfo};
use super::browser::{not_redirected, redirect_location};
use super::defaults::self_name;
use super::evidence::{succeeded, Evidence};
use super::failure::{precondition, StepError};
use super::run::Run;
use crate::user::{self, Move};

/// The site a cross-site form post claims to come from: a header value
/// only, never connected to.
const FOREIGN_ORIGIN: &str = "https://attacker.example";

/// User: connect a connection in a browser (log in at the target, approve
/// at the provider, come back to the target's callback); with
/// `forge_state`, come back with a state the target never issued.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connect {
    #[serde(default = "self_name")]
    pub connection: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub forge_state: bool,
    /// Post the sign-in form from a page of another site (`Origin` of that
    /// site, `Sec-Fetch-Site: cross-site`), as a login-CSRF page would.
    #[serde(default)]
    pub foreign_origin: bool,
}

impl Act for Connect {
    const INFO: ActionInfo = ActionInfo::new(
        "user (browser)",
        "The user connects the provider in the browser: the hub acts as the provider's OAuth client (authorization code with PKCE S256 and a single-use state) and seals the tokens it gets.",
        "Connections contract: Connecting a user in a browser",
        "docs/connections.md#connecting-a-user-in-a-browser",
    )
    .answered_elsewhere_by("provider");

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.connect(
            &self.connection,
            self.user.as_deref(),
            self.forge_state,
            self.foreign_origin,
        )
        .await
    }

    /// The provider's code redeemed: the hub stored the user's token.
    fn oblige(&self, facts: &Value, _run: &Run<'_>, evidence: &mut Evidence) {
        if facts["code_redeemed"] == json!(true) && succeeded(facts) {
            evidence.oblige(
                format!("connecting `{}`", self.connection),
                vec!["connection.token.stored"],
                None,
                "success",
            );
        }
    }
}

impl Run<'_> {
    /// The user connects in a browser: the target's login page, the
    /// provider's authorization endpoint (which approves at once), the
    /// target's callback.
    async fn connect(
        &mut self,
        connection: &str,
        user: Option<&str>,
        forge_state: bool,
        foreign_origin: bool,
    ) -> Result<Value, StepError> {
        let created = self.connection(connection)?;
        let template = self
            .profile
            .connections
            .connect_url
            .clone()
            .ok_or_else(|| precondition("the profile has no connections.connect_url"))?;
        let start = template.replace("{connection}", &created.id);
        let hub_origin = Url::parse(&start)
            .map_err(|e| precondition(format!("connect_url `{start}`: {e}")))?
            .origin();
        let provider_origin = Url::parse(&self.provider().await.uri())
            .map_err(|e| precondition(e.to_string()))?
            .origin();
        let vars = self.vars_as(user)?;

        // At the target: sign in until the browser is sent to the provider.
        let mut current = start;
        let mut response = self.browser.send(self.browser.get(&current)).await?;
        let mut to_provider = None;
        // A page elsewhere posts the sign-in form; the browser's cookies go along.
        let poster = if foreign_origin {
            self.browser.posting_from(FOREIGN_ORIGIN)
        } else {
            self.browser.clone()
        };
        for _ in 0..8 {
            let next = match redirect_location(&response, &current) {
                Some(location) => Some(location),
                None if response.status == 200 => {
                    match user::act(
                        &poster,
                        self.profile,
                        &vars,
                        &current,
                        &response,
                        user::Choices::default(),
                    )
                    .await?
                    {
                        Move::GoTo(location) => Some(location),
                        Move::Submitted { response: next, .. } => {
                            response = next;
                            continue;
                        }
                    }
                }
                None => None,
            };
            let Some(location) = next else {
                return Ok(not_redirected(&response, &current));
            };
            let target = Url::parse(&location).map_err(|e| precondition(e.to_string()))?;
            if target.origin() == provider_origin {
                to_provider = Some(location);
                break;
            }
            if target.origin() != hub_origin {
                return Ok(json!({"outcome": "left_elsewhere", "redirected_to": location}));
            }
            current = location;
            response = self.browser.send(self.browser.get(&current)).await?;
        }
        let to_provider = to_provider.ok_or_else(|| {
            precondition("the connect flow did not reach the provider within 8 pages")
        })?;

        // At the provider: it records the request and approves at once.
        let at_provider = self.browser.send(self.browser.get(&to_provider)).await?;
        let sent = self
            .started_provider()?
            .last_authorize()
            .unwrap_or_default();
        let mut facts = json!({
            "authorize": sent,
            "pkce_s256": sent.get("code_challenge_method").map(String::as_str) == Some("S256")
                && sent.get("code_challenge").is_some_and(|c| !c.is_empty()),
            "state_sent": sent.get("state").is_some_and(|s| !s.is_empty()),
        });
        let Some(back) = redirect_location(&at_provider, &to_provider) else {
            facts["outcome"] = json!("provider_refused");
            facts["status"] = json!(at_provider.status);
            return Ok(facts);
        };
        let mut callback = Url::parse(&back).map_err(|e| precondition(e.to_string()))?;
        if forge_state {
            let forged = crate::random_token();
            let pairs: Vec<(String, String)> = callback
                .query_pairs()
                .into_owned()
                .map(|(k, v)| {
                    if k == "state" {
                        (k, forged.clone())
                    } else {
                        (k, v)
                    }
                })
                .collect();
            callback.query_pairs_mut().clear().extend_pairs(pairs);
        }
        self.sync_provider_secrets();

        // Back at the target's callback.
        let seen_before = self.started_provider()?.token_requests().len();
        let mut current = callback.to_string();
        let mut response = self.browser.send(self.browser.get(&current)).await?;
        let callback_status = response.status;
        for _ in 0..4 {
            let Some(location) = redirect_location(&response, &current) else {
                break;
            };
            let target = Url::parse(&location).map_err(|e| precondition(e.to_string()))?;
            if target.origin() != hub_origin {
                break;
            }
            current = location;
            response = self.browser.send(self.browser.get(&current)).await?;
        }
        let redeemed: Vec<_> = self
            .started_provider()?
            .token_requests()
            .into_iter()
            .skip(seen_before)
            .filter(|r| r.grant_type == "authorization_code")
            .collect();
        self.sync_provider_secrets();
        facts["outcome"] = json!("returned");
        facts["status"] = json!(callback_status);
        facts["final_status"] = json!(response.status);
        facts["refused"] = json!((400..500).contains(&callback_status));
        facts["code_redeemed"] = json!(redeemed.iter().any(|r| r.status == 200));
        facts["verifier_matched"] =
            json!(redeemed.iter().any(|r| r.verifier_matched == Some(true)));
        facts["error"] = json!(response.json().and_then(|b| b.get("error").cloned()));
        Ok(facts)
    }
}
