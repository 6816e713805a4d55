//! Scenario files: one requirement each, with its spec references, level,
//! the steps that exercise it and the expectations that decide it.
//! The format is documented in `scenarios/README.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::HarnessError;
pub use crate::expect::Expect;
pub use crate::provider::TokenMode;
pub use crate::steps::authorize::Pkce;
pub use crate::steps::catalogue::Action;
pub use crate::steps::cimd::CimdVariant;
pub use crate::steps::parties::ConnectionKind;
pub use crate::steps::revocation::TokenKind;
pub use crate::steps::token::{ClientAuth, RefreshPick, Verifier};
pub use crate::steps::AssertionVariant;
use crate::verdict::{Level, Suite};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Stable id, `<group>.<name>`; the file lives at `scenarios/<group>/<name>.toml`.
    pub id: String,
    pub title: String,
    /// A standard's requirement, or the hub product model's.
    pub suite: Suite,
    pub level: Level,
    /// Where the requirement comes from, quoted.
    pub refs: Vec<SpecRef>,
    /// Capabilities the target must have (see the profile's `[capabilities]`).
    #[serde(default)]
    pub requires: Vec<String>,
    /// Reference-hub faults this scenario must catch (the sensitivity test proves it).
    pub catches: Vec<String>,
    pub steps: Vec<Step>,
    /// Where the file was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

impl Scenario {
    /// Scenarios that move the target's clock, rotate its keys or change its
    /// policies must not share a target with others; each action declares
    /// whether it does (see `steps::act::Act::exclusive`).
    pub fn exclusive(&self) -> bool {
        let actions: Vec<&Action> = self.steps.iter().map(|s| &s.action).collect();
        crate::steps::catalogue::exclusive(&actions)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecRef {
    /// e.g. `RFC 7636 §4.6`.
    pub id: String,
    pub url: String,
    /// The requirement, one line, verbatim.
    pub quote: String,
}

impl SpecRef {
    /// A reference to this repository's product documents (the seeds'
    /// words, `docs/…`) rather than to a published standard.
    pub fn is_product_model(&self) -> bool {
        self.url.starts_with("docs/") || self.id.starts_with("Seed")
    }
}

/// One action by one of the parties the harness plays, and what must follow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    #[serde(flatten)]
    pub action: Action,
    /// A setup step only prepares the check: its failure is an `error`, not a `fail`.
    #[serde(default)]
    pub setup: bool,
    /// Run the step only when these profile values hold (e.g. `{ "policy.partial" = "block" }`),
    /// so one scenario checks whichever behaviour the target declares.
    #[serde(default)]
    pub when: BTreeMap<String, toml::Value>,
    /// The scenario applies only if the step's facts hold these values: an
    /// optional behaviour the standard lets a server leave out (e.g.
    /// `{ refresh_token_issued = true }`: RFC 6749 §1.5 lets a server issue
    /// no refresh token). Otherwise the scenario ends as `skip`, not applicable.
    #[serde(default)]
    pub only_if: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub expect: Expect,
}

impl Scenario {
    pub fn group(&self) -> &str {
        self.id.split('.').next().unwrap_or(&self.id)
    }
}

/// Reads every `*.toml` under `dir/<group>/`, sorted by id.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, HarnessError> {
    let mut scenarios = Vec::new();
    let groups = std::fs::read_dir(dir).map_err(|source| HarnessError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for group in groups.filter_map(Result::ok).filter(|e| e.path().is_dir()) {
        let files = std::fs::read_dir(group.path()).map_err(|source| HarnessError::Read {
            path: group.path(),
            source,
        })?;
        for file in files.filter_map(Result::ok).map(|e| e.path()) {
            if file.extension().is_some_and(|e| e == "toml") {
                scenarios.push(load_file(&file)?);
            }
        }
    }
    scenarios.sort_by(|a, b| a.id.cmp(&b.id));
    for pair in scenarios.windows(2) {
        if pair[0].id == pair[1].id {
            return Err(HarnessError::Scenario {
                path: pair[1].path.clone(),
                message: format!("duplicate scenario id `{}`", pair[1].id),
            });
        }
    }
    Ok(scenarios)
}

pub fn load_file(path: &Path) -> Result<Scenario, HarnessError> {
    let err = |message: String| HarnessError::Scenario {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|source| HarnessError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut scenario: Scenario = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
    scenario.path = path.to_path_buf();
    if scenario.refs.is_empty() {
        return Err(err("a scenario needs at least one spec reference".into()));
    }
    if let Some(r) = scenario
        .refs
        .iter()
        .find(|r| r.quote.trim().is_empty() || r.quote.contains('\n'))
    {
        return Err(err(format!("reference `{}` needs a one-line quote", r.id)));
    }
    if scenario.steps.is_empty() {
        return Err(err("a scenario needs at least one step".into()));
    }
    if scenario.steps.iter().all(|s| s.setup) {
        return Err(err(
            "a scenario needs at least one step that is not setup".into()
        ));
    }
    if scenario.catches.is_empty() {
        return Err(err(
            "a scenario must name the reference-hub fault(s) it catches".into(),
        ));
    }
    if scenario.suite == Suite::Standard {
        if let Some(r) = scenario.refs.iter().find(|r| r.is_product_model()) {
            return Err(err(format!(
                "suite = \"standard\" but `{}` is the product model's: a standard's requirement cites standards only",
                r.id
            )));
        }
    }
    // The fault names are known only where the hub is built in; a lean build
    // cannot run the sensitivity proof, so it has nothing to check them against.
    if crate::embedded::BUILT_IN {
        let known = crate::embedded::faults();
        if let Some(unknown) = scenario
            .catches
            .iter()
            .find(|c| !known.iter().any(|(name, _)| name == c))
        {
            return Err(err(format!(
                "`catches` names `{unknown}`, which is not a fault of the reference hub (`hub --list-faults`)"
            )));
        }
    }
    Ok(scenario)
}

/// Keeps the scenarios whose id matches the glob.
pub fn filter(scenarios: Vec<Scenario>, glob: &str) -> Result<Vec<Scenario>, HarnessError> {
    let pattern = glob::Pattern::new(glob).map_err(|e| HarnessError::Glob {
        glob: glob.to_owned(),
        message: e.to_string(),
    })?;
    let kept: Vec<_> = scenarios
        .into_iter()
        .filter(|s| pattern.matches(&s.id))
        .collect();
    if kept.is_empty() {
        return Err(HarnessError::NoMatch(glob.to_owned()));
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(steps: &str) -> Scenario {
        let text = format!(
            "id = \"t.t\"\ntitle = \"t\"\nsuite = \"standard\"\nlevel = \"MUST\"\ncatches = [\"x\"]\n\
             [[refs]]\nid = \"r\"\nurl = \"u\"\nquote = \"q\"\n{steps}"
        );
        toml::from_str(&text).expect("a scenario")
    }

    #[test]
    fn only_policies_on_this_scenarios_connections_run_alongside_others() {
        let own = scenario(
            "[[steps]]\ndo = \"create_connection\"\n\
             [[steps]]\ndo = \"create_policy\"\nas = \"p\"\n[steps.policy]\nname = \"p\"\n\
             grants = [{ connection = \"${conn.self.id}\", scopes = [\"calendar.read\"] }]\n\
             [[steps]]\ndo = \"delete_policy\"\nname = \"p\"\n",
        );
        assert!(!own.exclusive());
        let shared = scenario(
            "[[steps]]\ndo = \"create_policy\"\n[steps.policy]\nname = \"p\"\n\
             grants = [{ connection = \"demo-calendar\", scopes = [\"calendar.read\"] }]\n",
        );
        assert!(shared.exclusive());
        let server = scenario(
            "[[steps]]\ndo = \"create_policy\"\n[steps.policy]\nname = \"p\"\n\
             grants = [{ connection = \"${conn.self.id}\", scopes = [] }, { mcp_server = \"lab\", scopes = [\"lab.read\"] }]\n",
        );
        assert!(server.exclusive());
        let unknown_delete = scenario("[[steps]]\ndo = \"delete_policy\"\nname = \"elsewhere\"\n");
        assert!(unknown_delete.exclusive());
        let agenda = scenario("[[steps]]\ndo = \"create_connection\"\nagenda = true\n");
        assert!(agenda.exclusive());
    }
}
