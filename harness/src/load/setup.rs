//! What a mix needs before the clock starts, done the way a scenario does
//! it: built-in scenario steps on a [`Run`], so a load run meets a target
//! through the same profile, recipes and user as the suite does. The mixes'
//! races run here too, outside the measured load: the vault's before it,
//! the refresh races after it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::plan::{LoadError, LoadOptions, Mix};
use super::report::LoadCheck;
use super::session::{Flows, Start, TokenRequest};
use crate::engine::run_step;
use crate::profile::{PreRegisteredClient, Profile};
use crate::scenario::Step;
use crate::steps::Run;
use crate::verdict::Status;

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A public client that may refresh, as `refresh.rotation` registers it.
const REGISTER: &str = r#"
[[steps]]
do = "register"
metadata = { grant_types = ["authorization_code", "refresh_token"] }
expect = { status = 201 }
"#;

/// One full code flow: the user signs in and consents, the client redeems the code.
pub(super) const CODE_FLOW: &str = r#"
[[steps]]
do = "authorize"
expect = { outcome = "code" }

[[steps]]
do = "token"
expect = { status = 200 }
"#;

/// A code flow that must end with a refresh token (RFC 6749 §1.5 lets a
/// server issue none; then the refresh mix does not apply).
const REFRESH_GRANT: &str = r#"
[[steps]]
do = "authorize"
expect = { outcome = "code" }

[[steps]]
do = "token"
only_if = { refresh_token_issued = true }
expect = { status = 200 }
"#;

const AGENT_TOKEN: &str = r#"
[[steps]]
do = "client_credentials"
expect = { status = 200 }
"#;

/// An agent's connection whose stored token has expired, and a provider
/// slow enough that concurrent retrievals overlap (as
/// `connection.refresh-single-flight` sets it up).
const EXPIRED_CONNECTION: &str = r#"
[[steps]]
do = "create_connection"
allowed_clients = ["${clients.agent.client_id}"]
expect = { ok = true }

[[steps]]
do = "store_connection_token"
owner = "agent:${clients.agent.client_id}"
expires_in = 0
expect = { ok = true }

[[steps]]
do = "client_credentials"
expect = { status = 200 }

[[steps]]
do = "provider_mode"
delay_ms = 500
expect = { equals = { delay_ms = 500 } }
"#;

/// How many retrievals race for the expired token.
const VAULT_RACERS: u32 = 20;

/// The race itself: every retrieval gets the one refreshed token.
fn vault_race() -> String {
    format!(
        r#"
[[steps]]
do = "connection_token"
client = "agent"
concurrent = {VAULT_RACERS}
[steps.expect]
status = 200
equals = {{ ok_count = {VAULT_RACERS}, distinct_tokens = 1, refreshes = 1 }}

[[steps]]
do = "provider_mode"
delay_ms = 0
expect = {{ equals = {{ delay_ms = 0 }} }}
"#
    )
}

/// How many refresh races, and how many refreshes of one token in each.
const REFRESH_RACES: usize = 3;
const REFRESH_RACERS: usize = 8;

#[derive(Deserialize)]
struct Script {
    steps: Vec<Step>,
}

/// A built-in script's steps.
pub(super) fn script(text: &str) -> Result<Vec<Step>, LoadError> {
    toml::from_str::<Script>(text)
        .map(|s| s.steps)
        .map_err(|e| LoadError::Setup(format!("a built-in script does not parse: {e}")))
}

/// Runs `steps` in order; the first that does not pass ends it, with its
/// action and why (secrets scrubbed).
pub(super) async fn perform(run: &mut Run<'_>, steps: &[Step]) -> Result<(), String> {
    for (i, step) in steps.iter().enumerate() {
        let result = run_step(run, i + 1, step, Status::Fail).await;
        if result.status != Status::Pass {
            let mut why = result.messages.join("; ");
            crate::http::scrub(&mut why, &run.evidence.secrets);
            return Err(format!(
                "{} ({}): {why}",
                result.action,
                result.status.as_str()
            ));
        }
    }
    Ok(())
}

async fn setup(run: &mut Run<'_>, text: &str) -> Result<(), LoadError> {
    perform(run, &script(text)?).await.map_err(LoadError::Setup)
}

async fn endpoint(run: &mut Run<'_>, name: &'static str) -> Result<String, LoadError> {
    run.endpoint(name)
        .await
        .map_err(|_| LoadError::NoEndpoint(name))
}

/// What the workers start from, the checks already made, and the race to
/// run once the load is over.
pub(super) struct Prepared {
    pub starts: Vec<Start>,
    pub checks: Vec<LoadCheck>,
    pub after: Option<RefreshRace>,
}

/// Refresh races, run after the load: a server that answers a replayed
/// refresh token by revoking the whole grant (RFC 9700 §4.14.2 allows it)
/// may revoke the workers' chains with it when they share one grant.
pub(super) struct RefreshRace {
    endpoint: Arc<str>,
    client_id: Arc<str>,
}

impl RefreshRace {
    pub async fn run(
        &self,
        run: &mut Run<'_>,
        http: &reqwest::Client,
    ) -> Result<LoadCheck, LoadError> {
        refresh_race(run, http, &self.endpoint, &self.client_id).await
    }
}

/// Prepares `options.mix` on the target with `run`, which stays alive (its
/// provider serving) until the load is over and then tears down what it made.
pub(super) async fn prepare(
    run: &mut Run<'_>,
    profile: &Arc<Profile>,
    options: &LoadOptions,
) -> Result<Prepared, LoadError> {
    let workers = options.connections;
    let fixed = |request: TokenRequest| Prepared {
        starts: (0..workers)
            .map(|_| Start::Fixed(Arc::new(request.clone())))
            .collect(),
        checks: Vec::new(),
        after: None,
    };
    match options.mix {
        Mix::ClientCredentials => {
            let agent = secret_client(profile, "agent")?;
            let form = grant_form(profile, &agent);
            let endpoint = endpoint(run, "token_endpoint").await?;
            Ok(fixed(TokenRequest::new(endpoint, agent, form)))
        }
        Mix::Introspection => {
            let introspector = secret_client(profile, "introspector")?;
            secret_client(profile, "agent")?;
            setup(run, AGENT_TOKEN).await?;
            let token =
                run.client.last_token.clone().ok_or_else(|| {
                    LoadError::Setup("the agent's grant gave no access token".into())
                })?;
            let endpoint = endpoint(run, "introspection_endpoint").await?;
            let form = vec![("token".to_owned(), token)];
            Ok(fixed(TokenRequest::new(endpoint, introspector, form)))
        }
        Mix::Vault => {
            require(profile, "connections", "the hub's Connections")?;
            let agent = secret_client(profile, "agent")?;
            setup(run, EXPIRED_CONNECTION).await?;
            let check = race_for_the_vault(run).await?;
            let subject =
                run.client.last_token.clone().ok_or_else(|| {
                    LoadError::Setup("the agent's grant gave no access token".into())
                })?;
            let id = run
                .created
                .connections
                .values()
                .next()
                .map(|c| c.id.clone())
                .ok_or_else(|| LoadError::Setup("no connection was created".into()))?;
            let form = vec![
                ("grant_type".to_owned(), TOKEN_EXCHANGE.to_owned()),
                ("subject_token".to_owned(), subject),
                (
                    "subject_token_type".to_owned(),
                    ACCESS_TOKEN_TYPE.to_owned(),
                ),
                (
                    "resource".to_owned(),
                    format!("{}{id}", profile.connections.resource_prefix),
                ),
            ];
            let endpoint = endpoint(run, "token_endpoint").await?;
            let mut prepared = fixed(TokenRequest::new(endpoint, agent, form));
            prepared.checks.push(check);
            Ok(prepared)
        }
        Mix::Refresh => {
            require(profile, "public_client", "a public client")?;
            setup(run, REGISTER).await?;
            let endpoint: Arc<str> = endpoint(run, "token_endpoint").await?.into();
            let client_id: Arc<str> = registered_id(run)?.into();
            let mut starts = Vec::with_capacity(workers);
            for _ in 0..workers {
                starts.push(Start::Chain {
                    endpoint: endpoint.clone(),
                    client_id: client_id.clone(),
                    token: refresh_token(run).await?,
                });
            }
            Ok(Prepared {
                starts,
                checks: Vec::new(),
                after: Some(RefreshRace {
                    endpoint,
                    client_id,
                }),
            })
        }
        Mix::CodeFlow => {
            require(profile, "public_client", "a public client")?;
            setup(run, REGISTER).await?;
            let flows = Arc::new(Flows {
                registered: run.client.registered.clone(),
                metadata: run.client.metadata.clone(),
                steps: script(CODE_FLOW)?,
            });
            Ok(Prepared {
                starts: (0..workers).map(|_| Start::Flow(flows.clone())).collect(),
                checks: Vec::new(),
                after: None,
            })
        }
    }
}

fn require(profile: &Profile, capability: &str, what: &str) -> Result<(), LoadError> {
    match profile.capabilities.has(capability) {
        Some(true) => Ok(()),
        _ => Err(LoadError::Unsupported(format!(
            "this mix needs {what} (the profile's `{capability}` capability)"
        ))),
    }
}

fn registered_id(run: &Run<'_>) -> Result<String, LoadError> {
    run.client
        .registered
        .values()
        .next()
        .map(|r| r.client_id.clone())
        .ok_or_else(|| LoadError::Setup("no client was registered".into()))
}

/// A fresh refresh token from a full code flow.
async fn refresh_token(run: &mut Run<'_>) -> Result<String, LoadError> {
    setup(run, REFRESH_GRANT).await?;
    run.client
        .refresh_tokens
        .last()
        .cloned()
        .ok_or_else(|| LoadError::Setup("the code flow gave no refresh token".into()))
}

/// Concurrent retrievals of one expired connection token cause one refresh
/// at the provider, and all get its result (docs/connections.md, Refresh:
/// single flight).
async fn race_for_the_vault(run: &mut Run<'_>) -> Result<LoadCheck, LoadError> {
    let race = perform(run, &script(&vault_race())?).await;
    Ok(LoadCheck {
        name: "vault-single-refresh",
        passed: race.is_ok(),
        detail: match race {
            Ok(()) => format!(
                "{VAULT_RACERS} concurrent retrievals of an expired connection token: one refresh at the provider, one token for all (docs/connections.md, Refresh)"
            ),
            Err(why) => format!(
                "{VAULT_RACERS} concurrent retrievals of an expired connection token: {why} (docs/connections.md, Refresh: single flight)"
            ),
        },
    })
}

/// Races of concurrent refreshes of one refresh token: in each, exactly one
/// succeeds, and the token presented is dead afterwards, so no race leaves
/// a second live token behind (RFC 9700 §4.14.2, OAuth 2.1 §4.3.1).
async fn refresh_race(
    run: &mut Run<'_>,
    http: &reqwest::Client,
    endpoint: &str,
    client_id: &str,
) -> Result<LoadCheck, LoadError> {
    let mut problems = Vec::new();
    for race in 1..=REFRESH_RACES {
        let token = refresh_token(run).await?;
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", token.as_str()),
            ("client_id", client_id),
        ];
        let answers = futures_util::future::join_all(
            (0..REFRESH_RACERS).map(|_| http.post(endpoint).form(&form).send()),
        )
        .await;
        let statuses: Vec<Option<u16>> = answers
            .iter()
            .map(|a| a.as_ref().ok().map(|r| r.status().as_u16()))
            .collect();
        let winners = statuses.iter().filter(|s| **s == Some(200)).count();
        if winners != 1 {
            problems.push(format!(
                "race {race}: {winners} of {REFRESH_RACERS} refreshes succeeded (statuses {})",
                describe(&statuses)
            ));
        }
        let again = http.post(endpoint).form(&form).send().await;
        let again = again.ok().map(|r| r.status().as_u16());
        if again == Some(200) {
            problems.push(format!(
                "race {race}: the raced refresh token still worked afterwards"
            ));
        }
    }
    Ok(LoadCheck {
        name: "refresh-race-one-winner",
        passed: problems.is_empty(),
        detail: if problems.is_empty() {
            format!("{REFRESH_RACES} races of {REFRESH_RACERS} concurrent refreshes of one token: one success each, the token dead afterwards (RFC 9700 §4.14.2)")
        } else {
            format!("{} (RFC 9700 §4.14.2: one use)", problems.join("; "))
        },
    })
}

fn describe(statuses: &[Option<u16>]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for s in statuses {
        let key = s.map_or("no answer".to_owned(), |s| s.to_string());
        *counts.entry(key).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, n)| format!("{k} × {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn secret_client(profile: &Profile, role: &'static str) -> Result<PreRegisteredClient, LoadError> {
    profile
        .clients
        .get(role)
        .filter(|c| {
            !c.client_secret.is_empty()
                && matches!(
                    c.auth_method.as_str(),
                    "client_secret_basic" | "client_secret_post"
                )
        })
        .cloned()
        .ok_or(LoadError::NoClient(role))
}

/// The agent's grant: its allowed scopes for its resource, as a scenario asks.
fn grant_form(profile: &Profile, agent: &PreRegisteredClient) -> Vec<(String, String)> {
    let mut form = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
    if !agent.allowed_scopes.is_empty() {
        form.push(("scope".into(), agent.allowed_scopes.join(" ")));
    }
    if let Some(resource) = profile.resources.get(&agent.resource) {
        form.push(("resource".into(), resource.url.clone()));
    }
    form
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every built-in script parses into steps the catalogue knows.
    #[test]
    fn the_scripts_parse() {
        for text in [
            REGISTER,
            CODE_FLOW,
            REFRESH_GRANT,
            AGENT_TOKEN,
            EXPIRED_CONNECTION,
            &vault_race(),
        ] {
            assert!(!script(text).expect("parses").is_empty());
        }
        let race = script(&vault_race()).expect("parses");
        assert!(format!("{:?}", race[0]).contains(&VAULT_RACERS.to_string()));
    }

    #[test]
    fn statuses_are_counted_by_kind() {
        assert_eq!(
            describe(&[Some(200), Some(400), Some(400), None]),
            "200 × 1, 400 × 2, no answer × 1"
        );
    }
}
