//! The MCP client at the token endpoint: redeeming a code (RFC 6749 §4.1.3,
//! RFC 7636 §4.5) and refreshing (§6); and the audit obligations every token
//! request leaves, whoever sent it.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthorizationCode, ClientId, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, TokenResponse,
    TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::act::{Act, ActionInfo};
use super::credentials::{unverified_claims, AssertionVariant, CIMD_CLIENT_KEY, CIMD_CLIENT_KID};
use super::defaults::{primary, self_name};
use super::evidence::{status, Evidence};
use super::failure::{precondition, StepError};
use super::run::Run;
use crate::audit::AuditExpectation;
use crate::http::Response;

/// How a `token` step authenticates the client.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    #[default]
    None,
    PrivateKeyJwt,
}

/// Which refresh token a `refresh` step presents.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RefreshPick {
    #[default]
    Latest,
    Previous,
}

/// Which code_verifier the token request sends.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verifier {
    #[default]
    Correct,
    Wrong,
    Omit,
}

/// MCP client: redeem the last authorization code.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Token {
    #[serde(default = "self_name")]
    pub client: String,
    #[serde(default)]
    pub verifier: Verifier,
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// Resource to name in the token request: a role, a URL, or `omit`.
    #[serde(default = "primary")]
    pub resource: String,
    #[serde(default)]
    pub oauth2_crate: bool,
    /// How the client authenticates: `none` (a public client) or
    /// `private_key_jwt` (with the key of its hosted metadata document).
    #[serde(default)]
    pub auth: ClientAuth,
    /// Present this code instead of the one the authorization gave (a code
    /// the server never issued); the flow's PKCE verifier is kept.
    #[serde(default)]
    pub code: Option<String>,
}

impl Act for Token {
    const INFO: ActionInfo = ActionInfo::new(
        "MCP client",
        "The MCP client redeems the code at the token endpoint with its PKCE code_verifier and the resource it wants a token for. The access token is a JWT whose aud is that resource and whose scope is what the user granted and policy allows.",
        "RFC 6749 §4.1.3, RFC 7636 §4.5",
        "https://www.rfc-editor.org/rfc/rfc6749#section-4.1.3",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.token(self).await
    }

    /// A code's token belongs to the flow of the consent that gave the code.
    fn oblige(&self, facts: &Value, run: &Run<'_>, evidence: &mut Evidence) {
        let issued = TokenObligation {
            client: &self.client,
            client_id: run.registered_id(&self.client),
            types: vec!["token.issued"],
            needs_act: false,
            same_flow_as: evidence.last_consent,
        };
        issued.oblige(facts, evidence);
    }
}

/// MCP client: use a refresh token (RFC 6749 §6).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refresh {
    #[serde(default = "self_name")]
    pub client: String,
    /// `latest` (the newest refresh token) or `previous` (the one before it),
    /// of every refresh token the run received, whichever client it was
    /// issued to: `client = "other"` presents another client's token.
    #[serde(default)]
    pub token: RefreshPick,
    #[serde(default)]
    pub scope: Option<String>,
    /// Resource to name: a role, a URL, or `omit`.
    #[serde(default = "primary")]
    pub resource: String,
}

impl Act for Refresh {
    const INFO: ActionInfo = ActionInfo::new(
        "MCP client",
        "The MCP client trades its refresh token for a new access token. A public client's refresh token is rotated, a reused one revokes the family, and the scope can only shrink.",
        "RFC 6749 §6",
        "https://www.rfc-editor.org/rfc/rfc6749#section-6",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.refresh(
            &self.client,
            self.token,
            self.scope.as_deref(),
            &self.resource,
        )
        .await
    }

    fn oblige(&self, facts: &Value, run: &Run<'_>, evidence: &mut Evidence) {
        let refreshed = TokenObligation {
            client: &self.client,
            client_id: run.registered_id(&self.client),
            types: vec!["token.refreshed"],
            needs_act: false,
            same_flow_as: None,
        };
        refreshed.oblige(facts, evidence);
    }
}

/// What a token request obliges the target to audit: the token issued (as
/// one of `types`) to the client, or the refusal.
pub(super) struct TokenObligation<'a> {
    /// The client's name in the scenario, for messages.
    pub client: &'a str,
    pub client_id: Option<String>,
    pub types: Vec<&'static str>,
    /// An exchanged token's event must carry the delegation chain (`act`).
    pub needs_act: bool,
    pub same_flow_as: Option<usize>,
}

impl TokenObligation<'_> {
    pub(super) fn oblige(self, facts: &Value, evidence: &mut Evidence) {
        let client = self.client;
        let status = status(facts);
        if (200..300).contains(&status) {
            evidence.oblige_exactly(AuditExpectation {
                because: format!("the token issued to `{client}`"),
                types: self.types,
                client_id: self.client_id,
                outcome: "success",
                needs_act: self.needs_act,
                same_flow_as: self.same_flow_as,
            });
        } else if (400..500).contains(&status) {
            evidence.oblige(
                format!("the token request refused to `{client}`"),
                vec!["token.refused"],
                None,
                "failure",
            );
        }
    }
}

impl Run<'_> {
    async fn token(&mut self, request: &Token) -> Result<Value, StepError> {
        let (client, verifier, redirect_uri) = (
            request.client.as_str(),
            request.verifier,
            request.redirect_uri.as_deref(),
        );
        let (resource, oauth2_crate, auth, code) = (
            request.resource.as_str(),
            request.oauth2_crate,
            request.auth,
            request.code.as_deref(),
        );
        let client = self.registered(client)?;
        let mut pending = self
            .client
            .pending
            .clone()
            .ok_or_else(|| precondition("no authorization code has been obtained yet"))?;
        if let Some(code) = code {
            pending.code = self.text(code)?;
        }
        let endpoint = self.endpoint("token_endpoint").await?;
        let redirect_uri = match redirect_uri {
            Some(r) => self.text(r)?,
            None => pending.redirect_uri.clone(),
        };
        let resource_url = self.resource_url(resource)?;
        let verifier_value = match verifier {
            Verifier::Correct => Some(pending.verifier.clone()),
            Verifier::Wrong => {
                let wrong = PkceCodeChallenge::new_random_sha256().1.secret().clone();
                self.evidence.keep_secret(&wrong);
                Some(wrong)
            }
            Verifier::Omit => None,
        };

        if oauth2_crate {
            let oauth = BasicClient::new(ClientId::new(client.client_id.clone()))
                .set_token_uri(TokenUrl::new(endpoint).map_err(|e| precondition(e.to_string()))?)
                .set_redirect_uri(
                    RedirectUrl::new(redirect_uri).map_err(|e| precondition(e.to_string()))?,
                );
            let mut request = oauth.exchange_code(AuthorizationCode::new(pending.code.clone()));
            if let Some(v) = verifier_value {
                request = request.set_pkce_verifier(PkceCodeVerifier::new(v));
            }
            if let Some(r) = resource_url {
                request = request.add_extra_param("resource", r);
            }
            let http = self.http.clone();
            let call = move |req| {
                let http = http.clone();
                async move { http.oauth2_call(req).await }
            };
            return Ok(match request.request_async(&call).await {
                Ok(token) => {
                    let access_token = token.access_token().secret().clone();
                    self.received_token(&access_token);
                    json!({
                        "status": 200,
                        "body": {
                            "token_type": token.token_type().as_ref(),
                            "expires_in": token.expires_in().map(|d| d.as_secs()),
                            "scope": token.scopes().map(|s| s.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ")),
                            "access_token": "[redacted]",
                        },
                    })
                }
                Err(oauth2::RequestTokenError::ServerResponse(err)) => {
                    json!({"status": null, "error": err.error().as_ref(), "body": {"error_description": err.error_description()}})
                }
                Err(oauth2::RequestTokenError::Request(e)) => return Err(StepError::Transport(e)),
                Err(other) => {
                    json!({"status": null, "error": null, "crate_error": other.to_string()})
                }
            });
        }

        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", pending.code.clone()),
            ("redirect_uri", redirect_uri),
            ("client_id", client.client_id.clone()),
        ];
        if let Some(v) = verifier_value {
            form.push(("code_verifier", v));
        }
        if let Some(r) = resource_url {
            form.push(("resource", r));
        }
        if auth == ClientAuth::PrivateKeyJwt {
            let assertion = self.sign_assertion(
                &client.client_id,
                CIMD_CLIENT_KEY,
                Some(CIMD_CLIENT_KID),
                &endpoint,
                AssertionVariant::Valid,
            )?;
            form.push((
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
            ));
            form.push(("client_assertion", assertion));
        }
        let response = self
            .http
            .send(self.http.post(&endpoint).form(&form))
            .await?;
        Ok(self.token_facts(&response))
    }

    pub(super) fn received_token(&mut self, token: &str) {
        self.evidence.keep_secret(token);
        self.client.last_token = Some(token.to_owned());
        if let Some(claims) = unverified_claims(token) {
            self.evidence.token_claims.push(claims);
        }
    }

    pub(super) fn token_facts(&mut self, response: &Response) -> Value {
        let body = response.json();
        let refresh_token = body
            .as_ref()
            .and_then(|b| b.get("refresh_token"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if response.status == 200 {
            if let Some(token) = body
                .as_ref()
                .and_then(|b| b.get("access_token"))
                .and_then(Value::as_str)
            {
                self.received_token(token);
            }
            if let Some(refresh) = &refresh_token {
                self.evidence.keep_secret(refresh);
                self.client.refresh_tokens.push(refresh.clone());
            }
        }
        let challenges: Vec<&str> = response
            .headers
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        json!({
            "status": response.status,
            "headers": {
                "cache_control": response.header("cache-control"),
                "pragma": response.header("pragma"),
                "content_type": response.header("content-type"),
                "www_authenticate": (!challenges.is_empty()).then(|| challenges.join(", ")),
            },
            "challenge_schemes": crate::challenge::schemes(challenges.iter().copied()),
            "body": body,
            "error": body.as_ref().and_then(|b| b.get("error")).cloned(),
            "refresh_token_issued": refresh_token.is_some(),
            // The granted scope as a list, for exact membership checks.
            "scopes": body
                .as_ref()
                .and_then(|b| b.get("scope"))
                .and_then(Value::as_str)
                .map(|s| s.split_whitespace().collect::<Vec<_>>()),
        })
    }

    async fn refresh(
        &mut self,
        client: &str,
        pick: RefreshPick,
        scope: Option<&str>,
        resource: &str,
    ) -> Result<Value, StepError> {
        let client = self.registered(client)?;
        let presented = match pick {
            RefreshPick::Latest => self.client.refresh_tokens.last(),
            RefreshPick::Previous => self.client.refresh_tokens.iter().rev().nth(1),
        }
        .cloned()
        .ok_or_else(|| precondition("no such refresh token has been received"))?;
        let endpoint = self.endpoint("token_endpoint").await?;
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", presented.clone()),
            ("client_id", client.client_id.clone()),
        ];
        if let Some(scope) = scope {
            form.push(("scope", self.text(scope)?));
        }
        if let Some(r) = self.resource_url(resource)? {
            form.push(("resource", r));
        }
        let response = self
            .http
            .send(self.http.post(&endpoint).form(&form))
            .await?;
        let mut facts = self.token_facts(&response);
        let rotated = facts["refresh_token_issued"] == Value::Bool(true)
            && self
                .client
                .refresh_tokens
                .last()
                .is_some_and(|latest| *latest != presented);
        facts["refresh_token_rotated"] = Value::Bool(rotated);
        Ok(facts)
    }
}
