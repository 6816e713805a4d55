//! Enterprise single sign-on: the administrator points a tenant at the
//! harness's own OpenID Provider (`configure_sso`, operation
//! `configure_sso`), which the harness plays as the tenant's identity
//! provider (`crate::idp`): who signs in there, with which groups, and what
//! its answers get wrong on purpose.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::act::{Act, ActionInfo, InScenario};
use super::evidence::Evidence;
use super::failure::{precondition, undeclared, StepError};
use super::run::Run;
use crate::idp::{Behaviour, IdTokenMode, StateMode, UpstreamIdp};
use crate::recipe::Operation;

/// One group of the provider and the target roles it gives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMapping {
    pub group: String,
    pub roles: Vec<String>,
}

/// Admin: the profile's `[sso] tenant` signs in through the harness's
/// provider from now on. Exclusive: every scenario shares the tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigureSso {
    /// The groups the provider says the user is in.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Groups to the target roles they give.
    #[serde(default)]
    pub role_mappings: Vec<RoleMapping>,
    /// The methods the provider says it used (RFC 8176); by default a
    /// password and a one-time code, so a tenant that requires a second
    /// factor is satisfied.
    #[serde(default = "two_factors")]
    pub amr: Vec<String>,
    /// What the ID token gets wrong, if anything.
    #[serde(default)]
    pub id_token: IdTokenMode,
    /// Which `state` the redirect back carries.
    #[serde(default)]
    pub state: StateMode,
}

fn two_factors() -> Vec<String> {
    vec!["pwd".to_owned(), "otp".to_owned()]
}

impl Act for ConfigureSso {
    const INFO: ActionInfo = ActionInfo::new(
        "admin",
        "The administrator connects a tenant to its own OpenID Provider (played by the harness): users of the tenant's e-mail domain sign in there, and the groups in the ID token map to roles the policies read.",
        "Seed: Using SSO Groups with Policies",
        "docs/sso.md",
    )
    .answered_elsewhere_by("identity provider");

    fn exclusive(&self, _scenario: &InScenario<'_>) -> bool {
        true
    }

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.configure_sso(self).await
    }

    fn oblige(&self, facts: &Value, _run: &Run<'_>, evidence: &mut Evidence) {
        if facts["ok"] == true {
            evidence.oblige(
                "connecting the tenant to its identity provider".to_owned(),
                vec!["tenant.sso.configured"],
                None,
                "success",
            );
        }
    }
}

impl Run<'_> {
    async fn configure_sso(&mut self, step: &ConfigureSso) -> Result<Value, StepError> {
        let settings = self
            .profile
            .sso
            .clone()
            .ok_or_else(|| undeclared("the profile has no [sso] tenant"))?;
        let email = self
            .profile
            .users
            .get(&settings.user)
            .ok_or_else(|| {
                undeclared(format!("the profile declares no [users.{}]", settings.user))
            })?
            .username
            .clone();
        let domain = email
            .rsplit_once('@')
            .map(|(_, d)| d.to_owned())
            .ok_or_else(|| precondition(format!("[sso] user {email} is not an e-mail address")))?;
        if self.upstream_idp.is_none() {
            self.upstream_idp = Some(UpstreamIdp::start().await.map_err(precondition)?);
        }
        let idp = self.upstream_idp.as_ref().expect("started above");
        idp.behave(Behaviour {
            id_token: step.id_token,
            state: step.state,
            email,
            groups: step.groups.clone(),
            amr: step.amr.clone(),
        });
        let inputs = json!({
            "tenant": settings.tenant,
            "issuer": idp.issuer(),
            "client_id": idp.client_id,
            "client_secret": idp.client_secret,
            "email_domains": [domain],
            "groups_claim": "groups",
            "role_mappings": step.role_mappings,
        });
        self.evidence.keep_secret(&idp.client_secret.clone());
        let answer = self.operation(Operation::ConfigureSso, inputs).await?;
        Ok(json!({"status": answer.status, "ok": answer.ok}))
    }

    /// The origin of the harness's identity provider, when one runs: the
    /// user's browser follows redirects there and back.
    pub(super) fn upstream_idp_origin(&self) -> Option<url::Origin> {
        let idp = self.upstream_idp.as_ref()?;
        url::Url::parse(&idp.issuer()).ok().map(|u| u.origin())
    }
}
