//! The catalogue: every action a scenario file can name, one line each.
//!
//! Each line gives the name scenario files use (`do = "<name>"`) and the
//! parameter type that declares the rest (see [`Act`]). The macro turns the
//! list into the `Action` enum the scenario format deserialises, and into
//! every question asked of an action (its name, declaration, exclusivity,
//! performance, audit obligations) as one exhaustive match each, so an
//! action cannot be added without all of them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::act::{Act, ActionInfo, InScenario};
use super::evidence::Evidence;
use super::failure::StepError;
use super::run::Run;
use super::{
    admin, agent, agents, authorize, cimd, connect, connections, control, cors, discovery,
    registration, resource, resource_server, revocation, robustness, second_factor, signout,
    slow_client, sso, third_party, token, vault,
};

/// An action's name in scenario files, and its declaration.
#[derive(Debug, Clone, Copy)]
pub struct CatalogueEntry {
    pub name: &'static str,
    pub info: ActionInfo,
}

macro_rules! catalogue {
    ($($name:literal => $variant:ident($party:ident::$ty:ident),)*) => {
        /// What the harness does in one step: `do = "<name>"` and the
        /// parameters of that action's type. Each action records facts (a
        /// JSON object) that expectations are evaluated against; the facts
        /// are listed in scenarios/README.md.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(tag = "do")]
        pub enum Action {
            $(#[serde(rename = $name)] $variant($party::$ty),)*
        }

        /// Every action, in the catalogue's order.
        const CATALOGUE: &[CatalogueEntry] = &[
            $(CatalogueEntry { name: $name, info: <$party::$ty as Act>::INFO },)*
        ];

        impl Action {
            /// The name scenario files use for it.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Action::$variant(_) => $name,)*
                }
            }

            /// Who acts, what it shows, where it is specified.
            pub fn info(&self) -> ActionInfo {
                match self {
                    $(Action::$variant(_) => <$party::$ty as Act>::INFO,)*
                }
            }

            fn exclusive_in(&self, scenario: &InScenario<'_>) -> bool {
                match self {
                    $(Action::$variant(action) => action.exclusive(scenario),)*
                }
            }

            /// Whether performing it waits out one of the target's timeouts.
            pub fn waits(&self) -> bool {
                match self {
                    $(Action::$variant(action) => action.waits(),)*
                }
            }

            async fn perform_as_declared(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
                match self {
                    $(Action::$variant(action) => action.perform(run).await,)*
                }
            }

            fn oblige_as_declared(&self, facts: &Value, run: &Run<'_>, evidence: &mut Evidence) {
                match self {
                    $(Action::$variant(action) => action.oblige(facts, run, evidence),)*
                }
            }
        }
    };
}

catalogue! {
    "fetch_as_metadata" => FetchAsMetadata(discovery::FetchAsMetadata),
    "call_resource" => CallResource(resource::CallResource),
    "fetch_resource_metadata" => FetchResourceMetadata(discovery::FetchResourceMetadata),
    "register" => Register(registration::Register),
    "register_burst" => RegisterBurst(registration::RegisterBurst),
    "authorize" => Authorize(authorize::Authorize),
    "sign_out" => SignOut(signout::SignOut),
    "token" => Token(token::Token),
    "validate_token" => ValidateToken(resource_server::ValidateToken),
    "refresh" => Refresh(token::Refresh),
    "revoke" => Revoke(revocation::Revoke),
    "introspect" => Introspect(resource_server::Introspect),
    "host_client_metadata" => HostClientMetadata(cimd::HostClientMetadata),
    "cimd_fetch_count" => CimdFetchCount(cimd::CimdFetchCount),
    "listen_for_ssrf" => ListenForSsrf(cimd::ListenForSsrf),
    "ssrf_connections" => SsrfConnections(cimd::SsrfConnections),
    "revoke_consent" => RevokeConsent(admin::RevokeConsent),
    "enrol_second_factor" => EnrolSecondFactor(second_factor::EnrolSecondFactor),
    "configure_sso" => ConfigureSso(sso::ConfigureSso),
    "jwt_bearer" => JwtBearer(agent::JwtBearer),
    "rotate_keys" => RotateKeys(control::RotateKeys),
    "advance_clock" => AdvanceClock(control::AdvanceClock),
    "audit_failure" => AuditFailure(control::AuditFailure),
    "set_clock" => SetClock(control::SetClock),
    "client_credentials" => ClientCredentials(agent::ClientCredentials),
    "token_request" => TokenRequest(agent::TokenRequest),
    "create_policy" => CreatePolicy(admin::CreatePolicy),
    "delete_policy" => DeletePolicy(admin::DeletePolicy),
    "create_agent" => CreateAgent(agents::CreateAgent),
    "decommission_agent" => DecommissionAgent(agents::DecommissionAgent),
    "list_agents" => ListAgents(agents::ListAgents),
    "token_exchange" => TokenExchange(agent::TokenExchange),
    "audit_events" => AuditEvents(control::AuditEvents),
    "create_connection" => CreateConnection(connections::CreateConnection),
    "store_connection_token" => StoreConnectionToken(connections::StoreConnectionToken),
    "connection_token" => ConnectionToken(vault::ConnectionToken),
    "provider_mode" => ProviderMode(third_party::ProviderMode),
    "provider_log" => ProviderLog(third_party::ProviderLog),
    "get_connection" => GetConnection(connections::GetConnection),
    "connect" => Connect(connect::Connect),
    "mcp_tool" => McpTool(resource::McpTool),
    "preflight" => Preflight(cors::Preflight),
    "robustness" => Robustness(robustness::Robustness),
    "slow_request" => SlowRequest(slow_client::SlowRequest),
}

/// Steps the engine records that no action performed (a scenario that timed out).
const HARNESS: ActionInfo = ActionInfo::new(
    "harness",
    "A step of the scenario.",
    "MCP 2025-11-25 authorization",
    "https://modelcontextprotocol.io/specification/2025-11-25/basic/authorization",
);

/// Every action a scenario file can name, with its declaration.
pub fn catalogue() -> &'static [CatalogueEntry] {
    CATALOGUE
}

/// The declaration of the action a step result names (`StepResult::action`);
/// the harness's own for the engine's steps (`timeout`).
pub fn info(name: &str) -> ActionInfo {
    CATALOGUE
        .iter()
        .find(|entry| entry.name == name)
        .map_or(HARNESS, |entry| entry.info)
}

/// Whether a scenario of these actions must not share the target with others.
pub fn exclusive(actions: &[&Action]) -> bool {
    let scenario = in_scenario(actions);
    actions.iter().any(|a| a.exclusive_in(&scenario))
}

/// When a scenario of these actions is exclusive only because it changes
/// policies, each granting only on MCP servers it names by resource role
/// (`${resources.<role>.id}`): those roles. It then conflicts only with the
/// scenarios that use those resources.
pub fn exclusive_for_resources(actions: &[&Action]) -> Option<std::collections::BTreeSet<String>> {
    let scenario = in_scenario(actions);
    let mut roles = std::collections::BTreeSet::new();
    for action in actions.iter().filter(|a| a.exclusive_in(&scenario)) {
        let name = match action {
            Action::CreatePolicy(created) => created.name.as_str(),
            Action::DeletePolicy(deleted) => deleted.name.as_str(),
            _ => return None,
        };
        let policy = scenario.policies.get(name)?;
        roles.extend(super::admin::granted_resource_roles(policy)?);
    }
    (!roles.is_empty()).then_some(roles)
}

/// The policies a scenario creates, by name, for its actions' `exclusive`.
fn in_scenario<'a>(actions: &[&'a Action]) -> InScenario<'a> {
    let mut scenario = InScenario::default();
    for action in actions {
        if let Action::CreatePolicy(created) = action {
            scenario
                .policies
                .entry(created.name.as_str())
                .or_insert(&created.policy);
        }
    }
    scenario
}

impl Action {
    /// Performs the action as its party; whatever the provider issued and
    /// every cookie a target set meanwhile is a secret the scenario saw.
    pub async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        let facts = self.perform_as_declared(run).await;
        run.sync_provider_secrets();
        run.sync_cookie_secrets();
        facts
    }

    /// Records the audit events the target owes for this action and its facts.
    pub fn oblige(&self, facts: &Value, run: &mut Run<'_>) {
        // Obligations read the parties' state and write only the evidence.
        let mut evidence = std::mem::take(&mut run.evidence);
        self.oblige_as_declared(facts, run, &mut evidence);
        run.evidence = evidence;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_named_once_and_found_by_its_name() {
        let mut names: Vec<&str> = catalogue().iter().map(|e| e.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a name is listed twice");
        for entry in catalogue() {
            assert_eq!(info(entry.name).actor, entry.info.actor);
        }
        assert_eq!(info("timeout").actor, "harness");
    }

    #[test]
    fn scenario_files_name_actions_as_the_catalogue_does() {
        for name in ["rotate_keys", "ssrf_connections", "provider_log"] {
            let action: Action =
                toml::from_str(&format!("do = \"{name}\"")).expect("an action without parameters");
            assert_eq!(action.name(), name);
        }
        let register: Action =
            toml::from_str("do = \"register\"\nas = \"other\"").expect("a registration");
        assert!(matches!(&register, Action::Register(r) if r.name == "other"));
        assert_eq!(register.info().actor, "MCP client");
    }
}
