//! The autonomous agent at the token endpoint, acting as itself
//! (client_credentials, RFC 6749 §4.4; the JWT bearer grant, RFC 7523 §2.1)
//! or for a user (token exchange, RFC 8693).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::act::{Act, ActionInfo};
use super::credentials::{basic_post, AssertionVariant};
use super::defaults::{agent, keyed_agent};
use super::evidence::Evidence;
use super::failure::{precondition, StepError};
use super::run::Run;
use super::token::TokenObligation;

/// Autonomous agent: client_credentials with a pre-registered client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientCredentials {
    #[serde(default = "agent")]
    pub client: String,
    #[serde(default)]
    pub scope: Option<String>,
    /// Send this secret instead of the configured one.
    #[serde(default)]
    pub wrong_secret: bool,
    /// For a private_key_jwt client: what is wrong with the assertion, if anything.
    #[serde(default)]
    pub assertion: AssertionVariant,
    /// Send from this local address (e.g. `127.0.0.2`) when the target is on loopback.
    #[serde(default)]
    pub source: Option<String>,
    /// Ask for this resource (a role or URL) instead of the client's configured one.
    #[serde(default)]
    pub resource: Option<String>,
}

impl Act for ClientCredentials {
    const INFO: ActionInfo = ActionInfo::new(
        "agent",
        "An autonomous agent authenticates with its own credentials (a client secret or a private_key_jwt assertion) and gets a token for itself, with no user. Its configuration decides the resource and scopes; its conditions (source address ranges, UTC time windows) decide whether it gets one at all.",
        "RFC 6749 §4.4",
        "https://www.rfc-editor.org/rfc/rfc6749#section-4.4",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.client_credentials(
            &self.client,
            self.scope.as_deref(),
            self.wrong_secret,
            self.assertion,
            self.source.as_deref(),
            self.resource.as_deref(),
        )
        .await
    }

    fn oblige(&self, facts: &Value, run: &Run<'_>, evidence: &mut Evidence) {
        own_token(&self.client, run).oblige(facts, evidence);
    }
}

/// Autonomous agent: the JWT bearer authorization grant (RFC 7523 §2.1),
/// signed with the key of a pre-registered `private_key_jwt` client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JwtBearer {
    #[serde(default = "keyed_agent")]
    pub client: String,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub assertion: AssertionVariant,
}

impl Act for JwtBearer {
    const INFO: ActionInfo = ActionInfo::new(
        "agent",
        "An autonomous agent presents a JWT it signed with its registered key as the authorization grant, and gets a token for itself with no user.",
        "RFC 7523 §2.1",
        "https://www.rfc-editor.org/rfc/rfc7523#section-2.1",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.jwt_bearer(&self.client, self.scope.as_deref(), self.assertion)
            .await
    }

    fn oblige(&self, facts: &Value, run: &Run<'_>, evidence: &mut Evidence) {
        own_token(&self.client, run).oblige(facts, evidence);
    }
}

/// Agent: exchange the latest access token (RFC 8693) for one of its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenExchange {
    #[serde(default = "agent")]
    pub client: String,
    #[serde(default)]
    pub scope: Option<String>,
    /// A role or URL; the subject token's audience when absent.
    #[serde(default)]
    pub resource: Option<String>,
}

impl Act for TokenExchange {
    const INFO: ActionInfo = ActionInfo::new(
        "agent",
        "An agent exchanges the user's access token (the subject_token) for one of its own: the user stays the sub, the agent is named in the act claim, and the scope can only narrow.",
        "RFC 8693 §2.1, §4.1",
        "https://www.rfc-editor.org/rfc/rfc8693#section-2.1",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.token_exchange(
            &self.client,
            self.scope.as_deref(),
            self.resource.as_deref(),
        )
        .await
    }

    /// The exchanged token's event names the agent in its delegation chain.
    fn oblige(&self, facts: &Value, run: &Run<'_>, evidence: &mut Evidence) {
        let exchanged = TokenObligation {
            client: &self.client,
            client_id: run.confidential_id(&self.client),
            types: vec!["token.exchanged"],
            needs_act: true,
            same_flow_as: None,
        };
        exchanged.oblige(facts, evidence);
    }
}

/// How a `token_request` step presents its client's credentials.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PresentedAuth {
    /// As the profile configures the client (`auth_method`).
    #[default]
    Configured,
    /// HTTP Basic with the client's id and secret (RFC 6749 §2.3.1), whatever
    /// the profile configures: the client authenticates through the
    /// `Authorization` header.
    Basic,
}

/// A confidential client: a token request of any grant type, carrying
/// nothing but the grant type and the client's authentication.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRequest {
    #[serde(default = "agent")]
    pub client: String,
    /// The `grant_type` sent, e.g. one the server does not know.
    pub grant_type: String,
    /// Present a wrong secret (or, configured for private_key_jwt, an
    /// assertion whose signature does not verify).
    #[serde(default)]
    pub wrong_secret: bool,
    #[serde(default)]
    pub auth: PresentedAuth,
}

impl Act for TokenRequest {
    const INFO: ActionInfo = ActionInfo::new(
        "agent",
        "A confidential client sends the token endpoint a request of the grant type the step names, authenticated with its own credentials (as configured, or by HTTP Basic; right or wrong). A grant type the server does not support is unsupported_grant_type; failed client authentication through the Authorization header is 401 invalid_client with a WWW-Authenticate challenge of the scheme the client used.",
        "RFC 6749 §5.2",
        "https://www.rfc-editor.org/rfc/rfc6749#section-5.2",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.token_request(&self.client, &self.grant_type, self.wrong_secret, self.auth)
            .await
    }

    /// With no grant parameters, a token issued is the client's own
    /// (client_credentials, or an extension grant that needs nothing more).
    fn oblige(&self, facts: &Value, run: &Run<'_>, evidence: &mut Evidence) {
        own_token(&self.client, run).oblige(facts, evidence);
    }
}

/// A token an agent obtains for itself.
fn own_token<'a>(client: &'a str, run: &Run<'_>) -> TokenObligation<'a> {
    TokenObligation {
        client,
        client_id: run.confidential_id(client),
        types: vec!["token.issued"],
        needs_act: false,
        same_flow_as: None,
    }
}

impl Run<'_> {
    /// RFC 7523 §2.1: the agent presents a JWT it signed as the grant, without
    /// other client authentication.
    async fn jwt_bearer(
        &mut self,
        role: &str,
        scope: Option<&str>,
        variant: AssertionVariant,
    ) -> Result<Value, StepError> {
        let client = self.confidential(role)?;
        if client.auth_method != "private_key_jwt" {
            return Err(precondition(format!(
                "[clients.{role}] must be a private_key_jwt client to sign a JWT grant"
            )));
        }
        let endpoint = self.endpoint("token_endpoint").await?;
        let assertion = self.assertion(&client, &endpoint, variant)?;
        let mut form = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
            ),
            ("assertion", assertion),
        ];
        if let Some(scope) = scope {
            form.push(("scope", self.text(scope)?));
        }
        if let Some(url) = self.resource_url(&client.resource)? {
            form.push(("resource", url));
        }
        let response = self
            .http
            .send(self.http.post(&endpoint).form(&form))
            .await?;
        Ok(self.token_facts(&response))
    }

    async fn client_credentials(
        &mut self,
        role: &str,
        scope: Option<&str>,
        wrong_secret: bool,
        variant: AssertionVariant,
        source: Option<&str>,
        resource: Option<&str>,
    ) -> Result<Value, StepError> {
        let client = self.confidential(role)?;
        let http = self.http_from(source)?;
        let endpoint = self.endpoint("token_endpoint").await?;
        let secret = if client.auth_method == "private_key_jwt" {
            self.assertion(&client, &endpoint, variant)?
        } else if wrong_secret {
            format!("{}-wrong", client.client_secret)
        } else {
            client.client_secret.clone()
        };
        let mut form = vec![("grant_type", "client_credentials".to_owned())];
        if let Some(scope) = scope {
            form.push(("scope", self.text(scope)?));
        }
        if let Some(url) = self.resource_url(resource.unwrap_or(&client.resource))? {
            form.push(("resource", url));
        }
        let request = self.confidential_post(&http, &endpoint, &client, &secret, form);
        let response = http.send(request).await?;
        Ok(self.token_facts(&response))
    }

    /// A token request of `grant_type` with nothing but client authentication.
    async fn token_request(
        &mut self,
        role: &str,
        grant_type: &str,
        wrong_secret: bool,
        auth: PresentedAuth,
    ) -> Result<Value, StepError> {
        let client = self.confidential(role)?;
        let endpoint = self.endpoint("token_endpoint").await?;
        let form = vec![("grant_type", self.text(grant_type)?)];
        let wrong = |secret: &str| format!("{secret}-wrong");
        let request = match auth {
            PresentedAuth::Basic => {
                let secret = if wrong_secret {
                    wrong(&client.client_secret)
                } else {
                    client.client_secret.clone()
                };
                basic_post(&self.http, &endpoint, &client.client_id, &secret, &form)
            }
            PresentedAuth::Configured => {
                let secret = if client.auth_method == "private_key_jwt" {
                    let variant = if wrong_secret {
                        AssertionVariant::BadSignature
                    } else {
                        AssertionVariant::Valid
                    };
                    self.assertion(&client, &endpoint, variant)?
                } else if wrong_secret {
                    wrong(&client.client_secret)
                } else {
                    client.client_secret.clone()
                };
                self.confidential_post(&self.http, &endpoint, &client, &secret, form)
            }
        };
        let response = self.http.send(request).await?;
        Ok(self.token_facts(&response))
    }

    /// RFC 8693: the agent exchanges the latest access token for one of its own.
    async fn token_exchange(
        &mut self,
        role: &str,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Result<Value, StepError> {
        let client = self.confidential(role)?;
        let subject = self
            .client
            .last_token
            .clone()
            .ok_or_else(|| precondition("no access token has been received to exchange"))?;
        let endpoint = self.endpoint("token_endpoint").await?;
        let secret = if client.auth_method == "private_key_jwt" {
            self.assertion(&client, &endpoint, AssertionVariant::Valid)?
        } else {
            client.client_secret.clone()
        };
        let mut form = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange".to_owned(),
            ),
            ("subject_token", subject),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token".to_owned(),
            ),
        ];
        if let Some(scope) = scope {
            form.push(("scope", self.text(scope)?));
        }
        if let Some(resource) = resource {
            if let Some(url) = self.resource_url(resource)? {
                form.push(("resource", url));
            }
        }
        let request = self.confidential_post(&self.http, &endpoint, &client, &secret, form);
        let response = self.http.send(request).await?;
        Ok(self.token_facts(&response))
    }
}
