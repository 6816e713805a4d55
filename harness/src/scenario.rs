//! Scenario files: one requirement each, with its spec references, level,
//! the steps that exercise it and the expectations that decide it.
//! The format is documented in `scenarios/README.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::HarnessError;
pub use crate::expect::Expect;
pub use crate::provider::TokenMode;
use crate::revision::Revision;
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
    /// Why the level stands although no ref quotes a BCP 14 keyword that
    /// strong (see [`level_lint`]): the exception, stated in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_exception: Option<String>,
    /// Where the requirement comes from, quoted: the sources that do not
    /// change with the MCP revision (RFCs, drafts, the product model).
    #[serde(default)]
    pub refs: Vec<SpecRef>,
    /// Where the requirement stands in each MCP revision, when MCP is a
    /// source: one entry per revision the suite knows (see [`Scenario::under`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp: Vec<McpRef>,
    /// Capabilities the target must have (see the profile's `[capabilities]`).
    #[serde(default)]
    pub requires: Vec<String>,
    /// Reference-hub faults this scenario must catch (the sensitivity test proves it).
    pub catches: Vec<String>,
    /// Reference-hub variants this scenario must pass on, each giving another
    /// answer its "one of" expectations allow (the acceptance proof in
    /// [`crate::sensitivity`] runs them). Required when an expectation offers a choice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<String>,
    pub steps: Vec<Step>,
    /// Where the file was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

impl Scenario {
    /// Scenarios that move the target's clock, rotate its keys or change its
    /// policies must not share a target with others; each action declares
    /// whether it does (see `steps::act::Act::exclusive`).
    /// Whether a step waits out one of the target's timeouts (see `Act::waits`).
    pub fn waits(&self) -> bool {
        self.steps.iter().any(|s| s.action.waits())
    }

    /// The resource roles whose decisions alone make the scenario exclusive
    /// (see `steps::catalogue::exclusive_for_resources`).
    pub fn exclusive_for_resources(&self) -> Option<BTreeSet<String>> {
        let actions: Vec<&Action> = self.steps.iter().map(|s| &s.action).collect();
        crate::steps::catalogue::exclusive_for_resources(&actions)
    }

    /// Which of the resource `roles` the scenario names anywhere: in
    /// `requires`, as a step's resource, or in a `${resources.<role>…}` value.
    pub fn mentioned_resources<'r>(&self, roles: &'r BTreeSet<String>) -> BTreeSet<&'r str> {
        let steps = serde_json::to_string(&self.steps).unwrap_or_default();
        roles
            .iter()
            .filter(|role| {
                let named = format!("resources.{role}");
                self.requires.contains(&named)
                    || steps.contains(&named)
                    || steps.contains(&format!("\"{role}\""))
            })
            .map(String::as_str)
            .collect()
    }

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

/// The requirement in one MCP revision: quoted with its level, or absent
/// with the reason (the feature arrived later, or was removed).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpRef {
    pub revision: Revision,
    /// The level in this revision; without it, the scenario's `level`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// As `SpecRef`: the section, its link in this revision, the sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
    /// Why the requirement does not apply under this revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absent: Option<String>,
}

impl McpRef {
    /// The reference it quotes, when the revision has the requirement.
    fn spec_ref(&self) -> Option<SpecRef> {
        Some(SpecRef {
            id: self.id.clone()?,
            url: self.url.clone()?,
            quote: self.quote.clone()?,
        })
    }

    /// Either quoted (id, url and quote) or absent with a reason, not both.
    fn problem(&self) -> Option<String> {
        let quoted = [&self.id, &self.url, &self.quote];
        let revision = self.revision;
        match (&self.absent, quoted.iter().filter(|f| f.is_some()).count()) {
            (Some(why), 0) if !why.trim().is_empty() => None,
            (Some(_), 0) => Some(format!("[[mcp]] {revision}: `absent` needs a reason")),
            (Some(_), _) => Some(format!(
                "[[mcp]] {revision}: `absent` and a quote exclude each other"
            )),
            (None, 3)
                if self
                    .url
                    .as_deref()
                    .is_some_and(|u| u.contains(revision.as_str())) =>
            {
                None
            }
            (None, 3) => Some(format!(
                "[[mcp]] {revision}: the url must be the {revision} text's"
            )),
            (None, _) => Some(format!(
                "[[mcp]] {revision}: needs `id`, `url` and `quote`, or `absent`"
            )),
        }
    }
}

impl Scenario {
    /// The scenario as the revision words it: its level there and the
    /// revision's quote beside the other refs; `Err` with the reason when the
    /// requirement is not in that revision. A scenario that does not cite
    /// MCP is the same under every revision.
    pub fn under(&self, revision: Revision) -> Result<Scenario, String> {
        let Some(entry) = self.entry(revision)? else {
            return Ok(self.clone());
        };
        let mut resolved = self.clone();
        resolved.level = entry.level.unwrap_or(self.level);
        resolved.refs.extend(entry.spec_ref());
        resolved.mcp = vec![entry.clone()];
        Ok(resolved)
    }

    /// The revisions the requirement is in (every one for a scenario that
    /// does not cite MCP).
    pub fn revisions(&self) -> Vec<Revision> {
        Revision::ALL
            .into_iter()
            .filter(|r| self.entry(*r).is_ok())
            .collect()
    }

    /// The revision's `[[mcp]]` entry (`None` for a scenario that does not
    /// cite MCP), or why the requirement is not in that revision.
    fn entry(&self, revision: Revision) -> Result<Option<&McpRef>, String> {
        if self.mcp.is_empty() {
            return Ok(None);
        }
        let entry = self
            .mcp
            .iter()
            .find(|m| m.revision == revision)
            .ok_or_else(|| format!("the scenario says nothing of MCP {revision}"))?;
        match &entry.absent {
            Some(why) => Err(format!("not in MCP {revision}: {why}")),
            None => Ok(Some(entry)),
        }
    }
}

/// An MCP-sourced scenario names every revision once, each quoted or
/// absent, and cites MCP nowhere else; each revision's level has its quote.
fn mcp_lint(scenario: &Scenario) -> Result<(), String> {
    if let Some(r) = scenario
        .refs
        .iter()
        .find(|r| r.url.contains("modelcontextprotocol.io"))
    {
        return Err(format!(
            "`{}` cites MCP in `refs`: MCP references go in `[[mcp]]`, one per revision",
            r.id
        ));
    }
    if scenario.mcp.is_empty() {
        return Ok(());
    }
    for revision in Revision::ALL {
        let entries = scenario
            .mcp
            .iter()
            .filter(|m| m.revision == revision)
            .count();
        if entries != 1 {
            return Err(format!(
                "[[mcp]] names {revision} {entries} times: name every revision once ({})",
                Revision::ALL.map(Revision::as_str).join(", ")
            ));
        }
    }
    if let Some(problem) = scenario.mcp.iter().find_map(McpRef::problem) {
        return Err(problem);
    }
    if let Some(r) = scenario.mcp.iter().find(|m| {
        m.quote
            .as_deref()
            .is_some_and(|q| q.trim().is_empty() || q.contains('\n'))
    }) {
        return Err(format!("[[mcp]] {}: needs a one-line quote", r.revision));
    }
    if scenario.revisions().is_empty() {
        return Err("[[mcp]]: the requirement is in no revision".into());
    }
    for revision in scenario.revisions() {
        let resolved = scenario.under(revision)?;
        level_lint(&resolved).map_err(|e| format!("under MCP {revision}: {e}"))?;
    }
    Ok(())
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
    /// The converse of `only_if`, with any expectation: when the step's
    /// expectations hold and its facts meet all of these too, the scenario
    /// does not apply (`skip`), e.g. `{ contains = {
    /// "body.code_challenge_methods_supported" = "plain" } }`: a server that
    /// announces plain PKCE is allowed it (OAuth 2.1 §4.1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_if: Option<Expect>,
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
    if scenario.refs.is_empty() && scenario.mcp.is_empty() {
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
    mcp_lint(&scenario).map_err(err)?;
    if scenario.mcp.is_empty() {
        level_lint(&scenario).map_err(err)?;
    }
    if scenario.suite == Suite::Standard {
        if let Some(r) = scenario.refs.iter().find(|r| r.is_product_model()) {
            return Err(err(format!(
                "suite = \"standard\" but `{}` is the product model's: a standard's requirement cites standards only",
                r.id
            )));
        }
    }
    let choice = scenario.steps.iter().any(|s| s.expect.offers_choice());
    if choice && scenario.variants.is_empty() {
        return Err(err(
            "an expectation allows several answers, so the scenario must name the reference-hub variant(s) that give another one (`variants = [...]`, `hub --list-variants`)".into(),
        ));
    }
    if !choice && !scenario.variants.is_empty() {
        return Err(err(
            "`variants` is for scenarios whose expectations allow several answers; this one allows one".into(),
        ));
    }
    // The fault and variant names are known only where the hub is built in; a
    // lean build cannot run the proofs, so it has nothing to check them against.
    if crate::embedded::BUILT_IN {
        for (field, names, known, list) in [
            (
                "catches",
                &scenario.catches,
                crate::embedded::faults(),
                "hub --list-faults",
            ),
            (
                "variants",
                &scenario.variants,
                crate::embedded::variants(),
                "hub --list-variants",
            ),
        ] {
            if let Some(unknown) = names
                .iter()
                .find(|c| !known.iter().any(|(name, _)| name == c))
            {
                return Err(err(format!(
                    "`{field}` names `{unknown}`, which the reference hub does not know (`{list}`)"
                )));
            }
        }
    }
    Ok(scenario)
}

/// BCP 14 keywords (RFC 8174: only in capitals) that carry a MUST.
const MUST_KEYWORDS: [&str; 3] = ["MUST", "REQUIRED", "SHALL"];
/// ... and those that carry a SHOULD (a MUST keyword carries one too).
const SHOULD_KEYWORDS: [&str; 2] = ["SHOULD", "RECOMMENDED"];

/// The strongest level a quote's BCP 14 keywords support: capitals only, as
/// whole words ("MUST NOT" and "NOT RECOMMENDED" contain their keyword);
/// lowercase "must" or "should" is prose, not a requirement.
pub fn quoted_level(quote: &str) -> Level {
    let words: Vec<&str> = quote
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let has = |keywords: &[&str]| words.iter().any(|w| keywords.contains(w));
    if has(&MUST_KEYWORDS) {
        Level::Must
    } else if has(&SHOULD_KEYWORDS) {
        Level::Should
    } else {
        Level::Info
    }
}

/// The level lint, run on every load: a MUST scenario quotes a MUST /
/// REQUIRED / SHALL (or cites a product source: the product model, the
/// Connections or audit contracts, a seed), a SHOULD one at least a SHOULD /
/// RECOMMENDED (or a product source); INFO needs nothing. Where the text
/// cannot show it, `level_exception` says why, and it must be needed.
pub fn level_lint(scenario: &Scenario) -> Result<(), String> {
    let strongest = |a: Level, b: Level| match (a, b) {
        (Level::Must, _) | (_, Level::Must) => Level::Must,
        (Level::Should, _) | (_, Level::Should) => Level::Should,
        _ => Level::Info,
    };
    let product = scenario.refs.iter().any(SpecRef::is_product_model);
    let quoted = scenario
        .refs
        .iter()
        .map(|r| quoted_level(&r.quote))
        .fold(Level::Info, strongest);
    let supported = product
        || match scenario.level {
            Level::Must => quoted == Level::Must,
            Level::Should => quoted != Level::Info,
            Level::Info => true,
        };
    match (&scenario.level_exception, supported) {
        (Some(why), _) if why.trim().is_empty() => Err("`level_exception` needs a reason".into()),
        (Some(_), true) => Err(format!(
            "`level_exception` is not needed: the refs already support level {}",
            scenario.level.as_str()
        )),
        (Some(_), false) | (None, true) => Ok(()),
        (None, false) => Err(format!(
            "level {} but no ref quotes {} in capitals (BCP 14; lowercase does not count) \
             nor cites a product source (docs/…, Seed): quote the text that makes it {}, \
             lower the level, or state `level_exception = \"…why…\"`",
            scenario.level.as_str(),
            match scenario.level {
                Level::Must => "MUST, MUST NOT, REQUIRED, SHALL or SHALL NOT",
                _ => "SHOULD, SHOULD NOT, RECOMMENDED (or a MUST keyword)",
            },
            scenario.level.as_str()
        )),
    }
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

    fn graded(level: &str, extra: &str, quotes: &[(&str, &str)]) -> Result<(), String> {
        let refs: String = quotes
            .iter()
            .map(|(url, q)| format!("[[refs]]\nid = \"r\"\nurl = \"{url}\"\nquote = \"{q}\"\n"))
            .collect();
        let text = format!(
            "id = \"t.t\"\ntitle = \"t\"\nsuite = \"standard\"\nlevel = \"{level}\"\n{extra}\
             catches = [\"x\"]\n{refs}[[steps]]\ndo = \"fetch_as_metadata\"\n"
        );
        level_lint(&toml::from_str(&text).expect("a scenario"))
    }

    #[test]
    fn the_level_lint_wants_the_keyword_in_capitals() {
        let rfc = "https://www.rfc-editor.org/rfc/rfc6749";
        assert!(graded("MUST", "", &[(rfc, "The server MUST NOT redirect.")]).is_ok());
        assert!(graded("MUST", "", &[(rfc, "This parameter is REQUIRED.")]).is_ok());
        assert!(graded("MUST", "", &[(rfc, "It SHALL be rejected.")]).is_ok());
        // Lowercase is prose (BCP 14, RFC 8174).
        let lower = graded("MUST", "", &[(rfc, "the server must reject it")]);
        assert!(lower.unwrap_err().contains("level MUST"));
        // A SHOULD does not carry a MUST; two refs together can.
        assert!(graded("MUST", "", &[(rfc, "It SHOULD be refused.")]).is_err());
        assert!(graded(
            "MUST",
            "",
            &[(rfc, "It SHOULD be refused."), (rfc, "It MUST be logged.")]
        )
        .is_ok());
        assert!(graded("SHOULD", "", &[(rfc, "It SHOULD be refused.")]).is_ok());
        assert!(graded("SHOULD", "", &[(rfc, "This is NOT RECOMMENDED.")]).is_ok());
        assert!(graded("SHOULD", "", &[(rfc, "It MUST be refused.")]).is_ok());
        assert!(graded("SHOULD", "", &[(rfc, "it should reject the request")]).is_err());
        assert!(graded("SHOULD", "", &[(rfc, "The server MAY refuse it.")]).is_err());
        // Whole words only.
        assert!(graded("MUST", "", &[(rfc, "MUSTARD and SHALLOW")]).is_err());
        // INFO (or its alias MAY) needs no keyword.
        assert!(graded("INFO", "", &[(rfc, "The server MAY refuse it.")]).is_ok());
        assert!(graded("MAY", "", &[(rfc, "it should reject")]).is_ok());
    }

    #[test]
    fn a_product_source_or_a_stated_exception_carries_the_level() {
        let rfc = "https://www.rfc-editor.org/rfc/rfc8693";
        let docs = "docs/product-model.md#audit";
        assert!(graded(
            "MUST",
            "",
            &[(rfc, "can be nested"), (docs, "the hub records it")]
        )
        .is_ok());
        let why = "level_exception = \"the only text is descriptive; see the issue\"\n";
        assert!(graded("MUST", why, &[(rfc, "can be nested")]).is_ok());
        let empty = graded(
            "MUST",
            "level_exception = \" \"\n",
            &[(rfc, "can be nested")],
        );
        assert!(empty.unwrap_err().contains("needs a reason"));
        // An exception the refs do not need is refused, so none lingers.
        let needless = graded("MUST", why, &[(rfc, "It MUST be refused.")]);
        assert!(needless.unwrap_err().contains("not needed"));
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
        assert_eq!(server.exclusive_for_resources(), None);
        let lab = scenario(
            "[[steps]]\ndo = \"create_policy\"\n[steps.policy]\nname = \"p\"\n\
             grants = [{ mcp_server = \"${resources.lab.id}\", scopes = [\"lab.read\"] }]\n\
             [[steps]]\ndo = \"authorize\"\nresource = \"lab\"\n",
        );
        assert!(lab.exclusive());
        assert_eq!(
            lab.exclusive_for_resources(),
            Some(BTreeSet::from(["lab".to_owned()]))
        );
        let roles = BTreeSet::from(["lab".to_owned(), "primary".to_owned()]);
        assert_eq!(lab.mentioned_resources(&roles), BTreeSet::from(["lab"]));
        let unknown_delete = scenario("[[steps]]\ndo = \"delete_policy\"\nname = \"elsewhere\"\n");
        assert!(unknown_delete.exclusive());
        let agenda = scenario("[[steps]]\ndo = \"create_connection\"\nagenda = true\n");
        assert!(agenda.exclusive());
    }

    /// A scenario citing MCP in `[[mcp]]` entries (each a TOML block).
    fn by_revision(entries: &str) -> Scenario {
        let text = format!(
            "id = \"t.t\"\ntitle = \"t\"\nsuite = \"standard\"\nlevel = \"SHOULD\"\n\
             catches = [\"x\"]\n{entries}[[steps]]\ndo = \"fetch_as_metadata\"\n"
        );
        toml::from_str(&text).expect("a scenario")
    }

    fn entry(revision: &str, body: &str) -> String {
        format!("[[mcp]]\nrevision = \"{revision}\"\n{body}\n")
    }

    fn quoted(revision: &str, quote: &str) -> String {
        entry(
            revision,
            &format!(
                "id = \"MCP {revision} §X\"\nurl = \"https://modelcontextprotocol.io/specification/{revision}/basic/authorization#x\"\nquote = \"{quote}\""
            ),
        )
    }

    #[test]
    fn each_revision_has_its_level_quote_and_link() {
        let s = by_revision(&format!(
            "{}{}{}",
            entry("2025-06-18", "absent = \"arrived in 2025-11-25\""),
            quoted("2025-11-25", "Servers SHOULD include it."),
            entry(
                "2026-07-28",
                "level = \"MUST\"\nid = \"MCP 2026-07-28 §X\"\nurl = \"https://modelcontextprotocol.io/specification/2026-07-28/basic/authorization#x\"\nquote = \"Servers MUST include it.\""
            ),
        ));
        assert_eq!(mcp_lint(&s), Ok(()));
        let old = s.under(Revision::R2025_06_18).unwrap_err();
        assert!(
            old.contains("not in MCP 2025-06-18: arrived in 2025-11-25"),
            "{old}"
        );
        let middle = s.under(Revision::R2025_11_25).expect("in 2025-11-25");
        assert_eq!(middle.level, Level::Should);
        assert!(middle.refs.iter().any(|r| r.url.contains("/2025-11-25/")));
        let latest = s.under(Revision::R2026_07_28).expect("in 2026-07-28");
        assert_eq!(latest.level, Level::Must);
        assert_eq!(latest.refs.len(), 1);
        assert!(latest.refs[0].quote.contains("MUST"));
        assert_eq!(
            s.revisions(),
            vec![Revision::R2025_11_25, Revision::R2026_07_28]
        );
    }

    #[test]
    fn the_mcp_lint_wants_every_revision_once_and_sound() {
        let all = |a: String, b: String, c: String| mcp_lint(&by_revision(&format!("{a}{b}{c}")));
        let ok = || quoted("2025-06-18", "It SHOULD be.");
        let mid = || quoted("2025-11-25", "It SHOULD be.");
        let new = || quoted("2026-07-28", "It SHOULD be.");
        assert_eq!(all(ok(), mid(), new()), Ok(()));
        // A revision missing, or named twice.
        let missing = mcp_lint(&by_revision(&format!("{}{}", ok(), mid()))).unwrap_err();
        assert!(missing.contains("2026-07-28 0 times"), "{missing}");
        assert!(all(ok(), ok(), new())
            .unwrap_err()
            .contains("2025-06-18 2 times"));
        // Absent and quoted at once; absent without a reason; half a quote.
        let both = entry("2025-06-18", "absent = \"no\"\nquote = \"It SHOULD be.\"");
        assert!(all(both, mid(), new())
            .unwrap_err()
            .contains("exclude each other"));
        let bare = entry("2025-06-18", "absent = \" \"");
        assert!(all(bare, mid(), new())
            .unwrap_err()
            .contains("needs a reason"));
        let half = entry("2025-06-18", "quote = \"It SHOULD be.\"");
        assert!(all(half, mid(), new())
            .unwrap_err()
            .contains("needs `id`, `url` and `quote`"));
        // Another revision's link.
        let wrong = quoted("2025-06-18", "It SHOULD be.")
            .replace("specification/2025-06-18/", "specification/2025-11-25/");
        assert!(all(wrong, mid(), new())
            .unwrap_err()
            .contains("2025-06-18 text's"));
        // Each revision's level needs its own quote.
        let weak = quoted("2026-07-28", "It MAY be.");
        assert!(all(ok(), mid(), weak)
            .unwrap_err()
            .contains("under MCP 2026-07-28"));
        // MCP in `refs` instead of `[[mcp]]`.
        let mut s = by_revision(&format!("{}{}{}", ok(), mid(), new()));
        s.refs.push(SpecRef {
            id: "MCP".into(),
            url: "https://modelcontextprotocol.io/specification/2025-11-25/x".into(),
            quote: "It SHOULD be.".into(),
        });
        assert!(mcp_lint(&s).unwrap_err().contains("go in `[[mcp]]`"));
    }
}
