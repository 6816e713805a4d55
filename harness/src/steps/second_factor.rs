//! The user's second factor: an authenticator the administrator enrols
//! (`enrol_second_factor`, operation `enrol_second_factor`) or the profile
//! gives (`[users.<name>] totp_secret`, `recovery_codes`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::act::{Act, ActionInfo};
use super::authenticator::Authenticator;
use super::evidence::Evidence;
use super::failure::{precondition, undeclared, StepError};
use super::run::Run;
use crate::recipe::Operation;

/// Admin: give a user an authenticator (operation `enrol_second_factor`,
/// which answers its TOTP secret and recovery codes), or take the one the
/// profile declares for them when the target has no such operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrolSecondFactor {
    /// A `[users]` name; the `[user]` when absent.
    #[serde(default)]
    pub user: Option<String>,
}

impl Act for EnrolSecondFactor {
    const INFO: ActionInfo = ActionInfo::new(
        "admin",
        "The administrator enrols a TOTP authenticator (RFC 6238) for a user and hands over its secret and recovery codes; the user adds the secret to an authenticator app. The hub keeps the secret sealed and the recovery codes as digests.",
        "Product model: second factors",
        "docs/mfa.md",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.enrol_second_factor(self.user.as_deref()).await
    }

    fn oblige(&self, facts: &Value, _run: &Run<'_>, evidence: &mut Evidence) {
        if facts["source"] == "operation" && facts["ok"] == true {
            evidence.oblige(
                "enrolling the user's authenticator".to_owned(),
                vec!["user.second_factor.enrolled"],
                None,
                "success",
            );
        }
    }
}

impl Run<'_> {
    async fn enrol_second_factor(&mut self, user: Option<&str>) -> Result<Value, StepError> {
        let (username, declared_secret, declared_codes) = match user {
            None => (
                self.profile.user.username.clone(),
                self.profile.user.totp_secret.clone(),
                self.profile.user.recovery_codes.clone(),
            ),
            Some(name) => {
                let other =
                    self.profile.users.get(name).ok_or_else(|| {
                        undeclared(format!("the profile declares no [users.{name}]"))
                    })?;
                (
                    other.username.clone(),
                    other.totp_secret.clone(),
                    other.recovery_codes.clone(),
                )
            }
        };
        let key = user.unwrap_or_default().to_owned();
        if self
            .profile
            .operations
            .contains_key(Operation::EnrolSecondFactor.name())
        {
            let answer = self
                .operation(Operation::EnrolSecondFactor, json!({"user": username}))
                .await?;
            let secret = answer
                .need_ok("secret")?
                .as_str()
                .ok_or_else(|| precondition("the enrolment's `secret` is not a string"))?
                .to_owned();
            let codes: Vec<String> = answer
                .output("recovery_codes")
                .and_then(Value::as_array)
                .map(|codes| {
                    codes
                        .iter()
                        .filter_map(|c| c.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            self.evidence.keep_secret(&secret);
            for code in &codes {
                self.evidence.keep_secret(code);
            }
            let facts = json!({
                "source": "operation",
                "status": answer.status,
                "ok": answer.ok,
                "recovery_codes": codes.len(),
            });
            self.authenticators.insert(
                key,
                Authenticator {
                    secret,
                    recovery_codes: codes,
                    ..Authenticator::default()
                },
            );
            return Ok(facts);
        }
        let Some(secret) = declared_secret else {
            return Err(undeclared(format!(
                "neither an `enrol_second_factor` operation nor a `totp_secret` for {username}"
            )));
        };
        let facts =
            json!({"source": "profile", "ok": true, "recovery_codes": declared_codes.len()});
        self.authenticators.insert(
            key,
            Authenticator {
                secret,
                recovery_codes: declared_codes,
                ..Authenticator::default()
            },
        );
        Ok(facts)
    }

    /// The authenticator of `user` (a `[users]` name, or the `[user]`).
    pub(super) fn authenticator(
        &mut self,
        user: Option<&str>,
    ) -> Result<&mut Authenticator, StepError> {
        self.authenticators
            .get_mut(user.unwrap_or_default())
            .ok_or_else(|| {
                precondition(
                    "the server asks for a second factor, and no `enrol_second_factor` step gave this user an authenticator",
                )
            })
    }
}
