//! `conform`: a black-box conformance suite for agentic identity hubs.
//!
//! The harness plays every party but the hub (MCP client, user, autonomous
//! agent, resource server) and talks to the target over HTTP only. See
//! `ARCHITECTURE.md` for the map.

pub mod acceptance;
pub mod artifacts;
pub mod audit;
pub mod baseline;
pub mod challenge;
pub mod diagram;
pub mod embedded;
pub mod engine;
pub mod error;
pub mod expect;
pub mod hostile;
pub mod html;
pub mod http;
pub mod idp;
pub mod init;
pub mod load;
pub mod mcp_client;
pub mod mcp_wire;
pub mod narrate;
pub mod operation;
pub mod profile;
pub mod provider;
pub mod recipe;
pub mod report;
pub mod revision;
pub mod revision_matrix;
pub mod robustness;
pub mod scenario;
pub mod schedule;
pub mod sensitivity;
pub mod steps;
pub mod tls_front;
pub mod transcript;
pub mod user;
pub mod verdict;
pub mod well_known;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

use crate::baseline::Baseline;
use crate::engine::{run_all, RunOptions};
use crate::error::HarnessError;
use crate::profile::Profile;
use crate::report::{RunReport, Summary, TargetInfo};

/// 128 random bits, base64url: for `state` values.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Which hub a run is against.
#[derive(Debug, Clone)]
pub enum Target {
    /// Start the reference hub in-process, with these faults and compliant
    /// variants switched on.
    Embedded {
        faults: Vec<String>,
        variants: Vec<String>,
    },
    /// A profile file describing any hub.
    Profile(PathBuf),
}

/// Everything a run needs, from the command line or a test.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub target: Target,
    pub scenarios_dir: PathBuf,
    pub fixtures_dir: PathBuf,
    pub glob: Option<String>,
    pub strict: bool,
    pub baseline: Option<PathBuf>,
    pub out_dir: Option<PathBuf>,
    /// Replaces a target profile's `base` (`conform --base`): one profile
    /// for a server started on any port.
    pub base: Option<String>,
    /// Replaces the profile's robustness seed (`conform --seed`).
    pub seed: Option<u64>,
    /// The MCP revision(s) to judge by (`conform --spec`); without it, the
    /// profile's `spec`, else the latest.
    pub spec: Option<revision::SpecChoice>,
}

impl RunConfig {
    /// The embedded default with the repository's scenarios and fixtures.
    pub fn embedded_default() -> RunConfig {
        let root = embedded::repo_root();
        RunConfig {
            target: Target::Embedded {
                faults: Vec::new(),
                variants: Vec::new(),
            },
            scenarios_dir: root.join("scenarios"),
            fixtures_dir: root.join("fixtures"),
            glob: None,
            strict: false,
            baseline: None,
            out_dir: None,
            base: None,
            seed: None,
            spec: None,
        }
    }
}

/// Loads and filters the scenarios of a run.
pub fn load_scenarios(config: &RunConfig) -> Result<Vec<scenario::Scenario>, HarnessError> {
    let all = scenario::load_dir(&config.scenarios_dir)?;
    match &config.glob {
        Some(glob) => scenario::filter(all, glob),
        None => Ok(all),
    }
}

/// Runs the suite once per revision asked for and writes the reports: for
/// one revision into `out_dir`; for several, each revision's into
/// `out_dir/<revision>/` and the matrix (scenario × revision) into
/// `out_dir`. Each report says whether its gate passed.
pub async fn run(config: &RunConfig) -> Result<Vec<RunReport>, HarnessError> {
    let all = scenario::load_dir(&config.scenarios_dir)?;
    let baseline = config.baseline.as_deref().map(Baseline::load).transpose()?;
    if let (Some(b), Some(path)) = (&baseline, &config.baseline) {
        if let Some(unknown) = b.ids().find(|id| !all.iter().any(|s| &s.id == *id)) {
            return Err(HarnessError::Baseline {
                path: path.clone(),
                message: format!("`{unknown}` is not a scenario id"),
            });
        }
    }
    let scenarios = match &config.glob {
        Some(glob) => scenario::filter(all, glob)?,
        None => all,
    };

    let (mut profile, embedded) = match &config.target {
        Target::Embedded { faults, variants } => {
            let target = embedded::start(&config.fixtures_dir, faults, variants).await?;
            (target.profile.clone(), Some(target))
        }
        Target::Profile(path) => (Profile::load(path, config.base.as_deref())?, None),
    };
    if let Some(seed) = config.seed {
        profile.robustness.seed = seed;
    }
    // A webhook-mode audit collector listens before the first scenario acts.
    audit::start_collector(&mut profile)
        .await
        .map_err(HarnessError::AuditCollector)?;
    let revisions = config
        .spec
        .or(profile.spec.map(revision::SpecChoice::One))
        .unwrap_or(revision::SpecChoice::One(revision::Revision::LATEST))
        .revisions();
    let profile = Arc::new(profile);
    let mut reports = Vec::new();
    for revision in &revisions {
        let started = Instant::now();
        let options = RunOptions::new(config.strict).under(*revision);
        let results = run_all(profile.clone(), &scenarios, &options).await;
        let outcome = baseline::compare(&results, &baseline.clone().unwrap_or_default());
        reports.push(RunReport {
            schema: report::REPORT_SCHEMA,
            tool: concat!("conform ", env!("CARGO_PKG_VERSION")).to_owned(),
            target: TargetInfo {
                name: profile.name.clone(),
                issuer: profile.issuer.clone(),
                embedded: matches!(config.target, Target::Embedded { .. }),
            },
            revision: *revision,
            strict: config.strict,
            duration_ms: started.elapsed().as_millis() as u64,
            summary: Summary::of(&results),
            gate_passed: outcome.gate_passes(),
            baseline: baseline.clone().map(|_| outcome),
            scenarios: results,
        });
    }
    if let Some(target) = embedded {
        target.stop().await;
    }
    if let Some(dir) = &config.out_dir {
        match reports.as_slice() {
            [one] => artifacts::write_run(one, dir)?,
            several => artifacts::write_revisions(
                several,
                &revision_matrix::RevisionMatrix::of(several, &scenarios),
                dir,
            )?,
        }
    }
    Ok(reports)
}
