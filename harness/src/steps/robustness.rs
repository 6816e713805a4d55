//! The attacker: the robustness pass ([`crate::robustness`]) against every
//! endpoint the target's metadata and Protected Resource Metadata name.
//!
//! One pass serves the four `robustness.*` scenarios, each judging one of
//! its checks: the first to run sends the requests, the others read its
//! outcome (kept per target, seed and size for the life of the process).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::OnceCell;

use super::act::{Act, ActionInfo, InScenario};
use super::failure::StepError;
use super::run::Run;
use crate::robustness::{Check, Endpoint, Known, Pass, Shape};

/// Attacker: hostile requests to every endpoint; the step judges one check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Robustness {
    /// `server_error`, `slow`, `reflection` or `secret`.
    pub check: Check,
}

type Passes = Mutex<HashMap<String, Arc<OnceCell<Arc<Pass>>>>>;

/// The passes run so far, by target, seed and size.
static PASSES: LazyLock<Passes> = LazyLock::new(Passes::default);

impl Act for Robustness {
    const INFO: ActionInfo = ActionInfo::new(
        "attacker",
        "An attacker sends a seeded stream of hostile requests (injection strings, bidirectional and control characters, huge and nested JSON, repeated parameters, bad encodings, malformed JWTs, redirect-URI tricks) to every endpoint the metadata and the Protected Resource Metadata name. Each answer must be a client error, not a server error; come within the timeout; not reflect the payload's markup unescaped; and hold no secret the attacker planted.",
        "RFC 6749 §10.14",
        "https://www.rfc-editor.org/rfc/rfc6749#section-10.14",
    );

    /// The pass floods every endpoint: nothing else may share the target
    /// (rate limits, back-off, registrations would leak into other scenarios).
    fn exclusive(&self, _scenario: &InScenario<'_>) -> bool {
        true
    }

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        let settings = &run.profile.robustness;
        let key = format!(
            "{} {} {}",
            run.profile.issuer, settings.seed, settings.requests
        );
        let cell = PASSES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone();
        let pass = match cell.get() {
            Some(pass) => pass.clone(),
            None => {
                let (endpoints, known) = run.robustness_targets().await?;
                let pass = cell
                    .get_or_init(|| async {
                        Arc::new(
                            crate::robustness::run(
                                &run.profile.robustness,
                                &run.profile.http,
                                endpoints,
                                &known,
                            )
                            .await,
                        )
                    })
                    .await;
                pass.clone()
            }
        };
        // Each finding of this check is an exchange of the step, labelled
        // with the seed and request number that reproduce it.
        for finding in pass.findings.iter().filter(|f| f.check == self.check) {
            let mut exchange = finding.exchange.clone();
            exchange.operation = Some(format!(
                "robustness finding: {} (seed {}, request {}, {}): {}",
                finding.check.as_str(),
                finding.seed,
                finding.request,
                finding.generator,
                finding.detail
            ));
            run.http.record_exchange(exchange);
        }
        Ok(pass.facts(self.check))
    }
}

impl Run<'_> {
    /// The endpoints to send to, on the hosts the profile names only (the
    /// issuer's and its resources'), and what the pass may know (a client
    /// is registered for it, as a setup registration).
    pub async fn robustness_targets(&mut self) -> Result<(Vec<Endpoint>, Known), StepError> {
        let metadata = self.metadata().await?;
        let host = |url: &str| {
            url::Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
        };
        let mut hosts: Vec<String> = host(&self.profile.issuer).into_iter().collect();
        let resources: Vec<String> = self
            .profile
            .resources
            .values()
            .filter(|r| r.reachable)
            .map(|r| r.url.clone())
            .collect();
        hosts.extend(resources.iter().filter_map(|r| host(r)));
        let ours = |url: &str| host(url).is_some_and(|h| hosts.contains(&h));

        let mut endpoints: Vec<Endpoint> = metadata
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(name, value)| Endpoint::from_metadata(name, value.as_str()?))
            .filter(|e| ours(&e.url))
            .collect();
        if let Some(url) =
            crate::well_known::authorization_server_metadata_urls(&self.profile.issuer)
                .ok()
                .and_then(|urls| urls.into_iter().next())
        {
            endpoints.push(Endpoint {
                name: "authorization_server_metadata".into(),
                url,
                shape: Shape::Query,
            });
        }
        for resource in resources.iter().filter(|r| ours(r)) {
            if let Ok(prm) = crate::well_known::protected_resource_metadata_url(resource) {
                endpoints.push(Endpoint {
                    name: "resource_metadata".into(),
                    url: prm,
                    shape: Shape::Query,
                });
            }
            endpoints.push(Endpoint {
                name: "resource".into(),
                url: resource.clone(),
                shape: Shape::Mcp,
            });
        }
        endpoints.sort_by(|a, b| (&a.name, &a.url).cmp(&(&b.name, &b.url)));
        endpoints.dedup_by(|a, b| a.url == b.url && a.shape == b.shape);

        let profile = self.profile;
        let mut users = vec![(profile.user.username.clone(), profile.user.password.clone())];
        users.extend(
            profile
                .users
                .values()
                .map(|u| (u.username.clone(), u.password.clone())),
        );
        let known = Known {
            client: self.probe_client().await,
            confidential: profile
                .clients
                .values()
                .filter(|c| !c.client_secret.is_empty())
                .map(|c| (c.client_id.clone(), c.client_secret.clone()))
                .collect(),
            users,
            // Short values ("x", "true") would be found by chance in any answer.
            secrets: profile
                .secret_values()
                .into_iter()
                .filter(|s| s.len() >= 8)
                .collect(),
            scopes: profile
                .resources
                .values()
                .next()
                .map(|r| r.scopes.clone())
                .unwrap_or_default(),
        };
        Ok((endpoints, known))
    }
}
