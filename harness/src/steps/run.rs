//! The state of one scenario run: the parties' memories and the evidence.

use serde_json::{json, Map, Value};

use super::evidence::Evidence;
use super::failure::StepError;
use super::parties::{AgentState, CimdHost, ClientState, Created, Driver, ThirdParty};
use crate::expect::interpolate;
use crate::http::Http;
use crate::profile::Profile;
use crate::provider::Provider;

/// One scenario run against a target: what the parties have learned so far,
/// and the evidence the verdict and reports read.
pub struct Run<'p> {
    pub profile: &'p Profile,
    pub http: Http,
    pub client: ClientState,
    pub agent: AgentState,
    pub cimd: CimdHost,
    pub third_party: ThirdParty,
    pub created: Created,
    pub driver: Driver,
    pub evidence: Evidence,
}

impl<'p> Run<'p> {
    pub fn new(profile: &'p Profile) -> Run<'p> {
        let mut evidence = Evidence::default();
        evidence.secrets.push(profile.user.password.clone());
        evidence
            .secrets
            .extend(profile.users.values().map(|u| u.password.clone()));
        evidence
            .secrets
            .extend(profile.clients.values().map(|c| c.client_secret.clone()));
        evidence
            .secrets
            .extend(profile.control.iter().map(|c| c.token.clone()));
        evidence
            .secrets
            .extend(profile.admin.iter().map(|c| c.token.clone()));
        Run {
            profile,
            http: Http::new(&profile.http),
            client: ClientState::default(),
            agent: AgentState::default(),
            cimd: CimdHost::default(),
            third_party: ThirdParty::default(),
            created: Created::default(),
            driver: Driver::default(),
            evidence,
        }
    }

    /// Variables for `${…}` in scenario files: the profile (without secrets) and the run's state.
    pub fn vars(&self) -> Value {
        let mut profile = serde_json::to_value(self.profile).unwrap_or_default();
        if let Some(clients) = profile.get_mut("clients").and_then(Value::as_object_mut) {
            for client in clients.values_mut() {
                if let Some(c) = client.as_object_mut() {
                    c.remove("client_secret");
                    c.remove("private_key_pem");
                }
            }
        }
        if let Some(p) = profile.as_object_mut() {
            p.remove("control");
            p.remove("admin");
        }
        let registered: Map<String, Value> = self
            .client
            .registered
            .iter()
            .map(|(k, r)| {
                (
                    k.clone(),
                    json!({"client_id": r.client_id, "redirect_uri": r.redirect_uri}),
                )
            })
            .collect();
        profile["registered"] = Value::Object(registered);
        profile["state"] = json!(self.client.state_sent);
        let (conn, provider) = self.connection_vars();
        profile["conn"] = conn;
        profile["provider"] = provider;
        profile
    }

    /// `conn.<name>.id`, `conn.<name>.resource` and `provider.url`, for `${…}`.
    fn connection_vars(&self) -> (Value, Value) {
        let prefix = &self.profile.connections.resource_prefix;
        let conn: Map<String, Value> = self
            .created
            .connections
            .iter()
            .map(|(name, c)| {
                (
                    name.clone(),
                    json!({"id": c.id, "resource": format!("{prefix}{}", c.id)}),
                )
            })
            .collect();
        let provider = json!({"url": self.third_party.server.as_ref().map(Provider::uri)});
        (Value::Object(conn), provider)
    }

    /// A scenario string with its `${…}` resolved.
    pub(super) fn text(&self, template: &str) -> Result<String, StepError> {
        interpolate(template, &self.vars()).map_err(StepError::Precondition)
    }

    /// A resource role of the profile, a URL, or `omit` (none).
    pub(super) fn resource_url(&self, role_or_url: &str) -> Result<Option<String>, StepError> {
        if role_or_url == "omit" {
            return Ok(None);
        }
        if let Some(r) = self.profile.resources.get(role_or_url) {
            return Ok(Some(r.url.clone()));
        }
        Ok(Some(self.text(role_or_url)?))
    }
}
