//! Dynamic Client Registration (RFC 7591), as the MCP client does it, and
//! the registration budget per source address (RFC 6585 §4).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::act::{Act, ActionInfo};
use super::budget;
use super::defaults::self_name;
use super::evidence::{succeeded, Evidence};
use super::failure::{precondition, undeclared, StepError};
use super::parties::Registered;
use super::run::Run;

/// MCP client: register through DCR (RFC 7591). Extra fields are sent as metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Register {
    /// Name under which later steps refer to this client.
    #[serde(default = "self_name", rename = "as")]
    pub name: String,
    #[serde(default)]
    pub redirect_uris: Option<Vec<String>>,
    /// Instead of `redirect_uris`: this many distinct loopback callback URIs (a hostile registration).
    #[serde(default)]
    pub redirect_uri_count: Option<u32>,
    #[serde(default)]
    pub metadata: BTreeMap<String, toml::Value>,
}

impl Act for Register {
    const INFO: ActionInfo = ActionInfo::new(
        "MCP client",
        "The MCP client registers itself by Dynamic Client Registration: it posts its metadata (name, redirect URIs) and gets a client_id back. A public client gets no secret: PKCE protects its codes instead.",
        "RFC 7591 §3",
        "https://www.rfc-editor.org/rfc/rfc7591#section-3",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        let generated = self.redirect_uri_count.map(|n| {
            (0..n)
                .map(|i| format!("{}/{i}", run.profile.callback.trim_end_matches('/')))
                .collect::<Vec<_>>()
        });
        run.register(
            &self.name,
            generated.as_deref().or(self.redirect_uris.as_deref()),
            &self.metadata,
        )
        .await
    }

    fn oblige(&self, facts: &Value, run: &Run<'_>, evidence: &mut Evidence) {
        if !succeeded(facts) {
            return;
        }
        if let Some(id) = facts["body"]["client_id"].as_str() {
            evidence.own_clients.insert(id.to_owned());
        }
        // A pre-registered or reused client was not registered now: the
        // target has nothing to audit for it.
        if facts["pre_registered"] == true || facts["reused"] == true {
            return;
        }
        evidence.oblige(
            format!("registering `{}`", self.name),
            vec!["client.registered"],
            run.registered_id(&self.name),
            "success",
        );
    }
}

/// MCP client: register up to `count` times in a row, stopping at the first
/// refusal. From 127.0.0.2 when the target is on loopback, so the budget of
/// the harness's ordinary address is untouched.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterBurst {
    pub count: u32,
}

impl Act for RegisterBurst {
    const INFO: ActionInfo = ActionInfo::new(
        "MCP client",
        "Registrations in a row from one source address: open registration is budgeted per source, and beyond the budget the hub answers 429 Too Many Requests with Retry-After.",
        "RFC 6585 §4",
        "https://www.rfc-editor.org/rfc/rfc6585#section-4",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.register_burst(self.count).await
    }
}

impl Run<'_> {
    async fn register(
        &mut self,
        name: &str,
        redirect_uris: Option<&[String]>,
        extra: &BTreeMap<String, toml::Value>,
    ) -> Result<Value, StepError> {
        if self.setup_step {
            if let Some(facts) = self.pre_registered(name, redirect_uris, extra)? {
                return Ok(facts);
            }
        }
        let endpoint = self.endpoint("registration_endpoint").await?;
        let redirect_uris = match redirect_uris {
            Some(uris) => uris
                .iter()
                .map(|u| self.text(u))
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![self.profile.callback.clone()],
        };
        let mut body = json!({
            "client_name": format!("conform test client ({name})"),
            "redirect_uris": redirect_uris,
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        });
        // The profile's metadata first, so a scenario's own `metadata` wins.
        self.merge_metadata(&mut body, &self.profile.registration.extra_metadata)?;
        self.merge_metadata(&mut body, extra)?;
        if self.setup_step && self.profile.registration.reuse {
            if let Some(pooled) = self.pooled(&body) {
                return Ok(self.reuse_registration(name, &body, pooled));
            }
        }
        let mut response = self
            .http
            .send(self.http.post(&endpoint).json(&body))
            .await?;
        if response.status == 429 {
            let wait = budget::retry_after_secs(response.header("retry-after"));
            if let Some(secs) =
                wait.filter(|w| *w <= self.profile.registration.retry_after_max_secs)
            {
                tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
                response = self
                    .http
                    .send(self.http.post(&endpoint).json(&body))
                    .await?;
            }
        }
        if response.status == 429 {
            return self.registration_refused_by_budget(name, &body);
        }
        let json = response.json();
        if matches!(response.status, 200 | 201) {
            if let Some(client_id) = json
                .as_ref()
                .and_then(|b| b.get("client_id"))
                .and_then(Value::as_str)
            {
                let registered = Registered {
                    client_id: client_id.to_owned(),
                    redirect_uri: redirect_uris.first().cloned().unwrap_or_default(),
                };
                self.profile.registrations.keep(
                    &body,
                    registered.clone(),
                    json!({"status": response.status, "body": json}),
                );
                self.client.registered.insert(name.to_owned(), registered);
            }
        }
        Ok(json!({
            "status": response.status,
            "body": json,
            "error": json.as_ref().and_then(|b| b.get("error")).cloned(),
            "sent": body,
        }))
    }

    /// The registration endpoint is still refusing with `429`: a setup step
    /// reuses a client registered earlier in the run with the same metadata;
    /// anything else is not applicable under the server's budget (`skip`).
    fn registration_refused_by_budget(
        &mut self,
        name: &str,
        body: &Value,
    ) -> Result<Value, StepError> {
        let pooled = self.setup_step.then(|| self.pooled(body)).flatten();
        let Some(pooled) = pooled else {
            return Err(undeclared(format!(
                "the registration endpoint refused with 429 (its rate limit, RFC 6585 §4) beyond the {} s the profile waits ([registration] retry_after_max_secs), and no client registered earlier in this run has this metadata",
                self.profile.registration.retry_after_max_secs
            )));
        };
        Ok(self.reuse_registration(name, body, pooled))
    }

    /// The first way to acquire a client (MCP authorization, Client
    /// Registration Approaches): a public client the profile says the
    /// server has pre-registered for this role. Only for a setup
    /// registration that asks for nothing a pre-registered client may lack
    /// (its own redirect URIs, metadata other than grant and response
    /// types); without one, and without dynamic registration, the scenario
    /// does not apply (`skip`).
    fn pre_registered(
        &mut self,
        name: &str,
        redirect_uris: Option<&[String]>,
        extra: &BTreeMap<String, toml::Value>,
    ) -> Result<Option<Value>, StepError> {
        const ANY_CLIENT: [&str; 2] = ["grant_types", "response_types"];
        let plain =
            redirect_uris.is_none() && extra.keys().all(|k| ANY_CLIENT.contains(&k.as_str()));
        let Some(client) = self.profile.public_clients.get(name).filter(|_| plain) else {
            // A profile that pre-registers clients but declares no dynamic
            // registration has none for this role: not applicable.
            if !self.profile.capabilities.dcr && !self.profile.public_clients.is_empty() {
                return Err(undeclared(format!(
                    "no public client for role `{name}`: the profile has no [public_clients.{name}] fit for this registration, and no dynamic registration (dcr)"
                )));
            }
            return Ok(None);
        };
        let redirect_uri = client
            .redirect_uri
            .clone()
            .unwrap_or_else(|| self.profile.callback.clone());
        self.client.registered.insert(
            name.to_owned(),
            Registered {
                client_id: client.client_id.clone(),
                redirect_uri: redirect_uri.clone(),
            },
        );
        let body = json!({"client_id": client.client_id, "redirect_uris": [redirect_uri]});
        Ok(Some(json!({
            "status": 201,
            "body": body,
            "error": null,
            "pre_registered": true,
        })))
    }

    /// A pooled client with this metadata that the scenario does not hold yet.
    fn pooled(&self, body: &Value) -> Option<(Registered, Value)> {
        let taken: Vec<&str> = self
            .client
            .registered
            .values()
            .map(|r| r.client_id.as_str())
            .collect();
        self.profile.registrations.find(body, &taken)
    }

    /// A client from the run's pool stands in for a fresh registration.
    fn reuse_registration(
        &mut self,
        name: &str,
        body: &Value,
        (registered, answer): (Registered, Value),
    ) -> Value {
        self.client.registered.insert(name.to_owned(), registered);
        let json = answer["body"].clone();
        json!({
            "status": answer["status"],
            "body": json,
            "error": json.get("error").cloned(),
            "sent": body,
            "reused": true,
        })
    }

    /// A client for a probe that only wants the authorization endpoint to
    /// look past `client_id` (the robustness pass): acquired as a setup
    /// registration, or none when the target offers no way to get one.
    pub(super) async fn probe_client(&mut self) -> Option<(String, String)> {
        let was_setup = std::mem::replace(&mut self.setup_step, true);
        let registered = self
            .register("probe", None, &BTreeMap::new())
            .await
            .ok()
            .and_then(|_| self.registered("probe").ok());
        self.setup_step = was_setup;
        registered.map(|r| (r.client_id, r.redirect_uri))
    }

    pub(super) fn registered(&self, name: &str) -> Result<Registered, StepError> {
        self.client.registered.get(name).cloned().ok_or_else(|| {
            precondition(format!("no client registered as `{name}` in this scenario"))
        })
    }

    /// The client id of a client registered (or hosted, or created) under `name`.
    pub(super) fn registered_id(&self, name: &str) -> Option<String> {
        self.client
            .registered
            .get(name)
            .map(|r| r.client_id.clone())
    }

    /// Sets each field of `extra` in a registration body, `${…}` resolved.
    fn merge_metadata(
        &self,
        body: &mut Value,
        extra: &BTreeMap<String, toml::Value>,
    ) -> Result<(), StepError> {
        for (key, value) in extra {
            let value = serde_json::to_value(value).map_err(|e| precondition(e.to_string()))?;
            body[key] = match value {
                Value::String(s) => Value::String(self.text(&s)?),
                other => other,
            };
        }
        Ok(())
    }

    /// Registers up to `count` clients in a row; stops at the first answer that is not a success.
    async fn register_burst(&mut self, count: u32) -> Result<Value, StepError> {
        let endpoint = self.endpoint("registration_endpoint").await?;
        let (http, source) = if super::browser::on_loopback(&endpoint) {
            let second = super::browser::SECOND_SOURCE;
            (
                self.http.with_local_address(&self.profile.http, second),
                second.to_string(),
            )
        } else {
            (self.http.clone(), "default".to_owned())
        };
        let mut body = json!({
            "client_name": "conform rate-limit probe",
            "redirect_uris": [self.profile.callback],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        });
        // Without the metadata the server needs, every refusal would look
        // like the rate limit.
        self.merge_metadata(&mut body, &self.profile.registration.extra_metadata)?;
        let mut accepted = 0;
        for _ in 0..count {
            let response = http.send(http.post(&endpoint).json(&body)).await?;
            if matches!(response.status, 200 | 201) {
                accepted += 1;
                continue;
            }
            let json = response.json();
            return Ok(json!({
                "status": response.status,
                "accepted_before_refusal": accepted,
                "retry_after": response.header("retry-after"),
                "error": json.as_ref().and_then(|b| b.get("error")).cloned(),
                "body": json,
                // RFC 6585 §4: a 429 SHOULD carry details; any non-blank body counts.
                "explained": response.body.iter().any(|b| !b.is_ascii_whitespace()),
                "source_address": source,
            }));
        }
        Ok(json!({
            "status": 201,
            "accepted_before_refusal": accepted,
            "source_address": source,
        }))
    }
}
