//! `conform`: run the agentic identity conformance suite.
//!
//! Exit codes: 0 the gate passed; 1 a requirement failed (or the baseline
//! did not match); 2 the command line, a profile, a scenario or a baseline
//! is invalid, or `conform init` could not discover its target.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use harness::sensitivity::Coverage;
use harness::{RunConfig, Target};

/// Conformance suite for agentic identity hubs and MCP authorization servers.
///
/// With no --target, starts the reference hub in-process and runs every scenario against it.
#[derive(Debug, Parser)]
#[command(name = "conform", version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Target profile (TOML) describing the hub under test.
    #[arg(long)]
    target: Option<PathBuf>,
    /// With --target: the origin that replaces the profile's `base`, for a
    /// server started on a port chosen at run time.
    #[arg(long, requires = "target", value_name = "URL")]
    base: Option<String>,
    /// Run only scenarios whose id matches this glob, e.g. 'pkce.*'.
    #[arg(long = "scenario")]
    glob: Option<String>,
    /// Run only the robustness pass (the `robustness.*` scenarios): seeded
    /// hostile requests to every endpoint the metadata and PRM name.
    #[arg(long, conflicts_with_all = ["glob", "sensitivity", "narrate"])]
    robustness: bool,
    /// The robustness pass's seed (else the profile's `[robustness] seed`,
    /// 1): every finding names the seed and request number that reproduce it.
    #[arg(long)]
    seed: Option<u64>,
    /// List the scenarios (after --scenario filtering) and exit.
    #[arg(long)]
    list: bool,
    /// Treat SHOULD failures as failures.
    #[arg(long)]
    strict: bool,
    /// Baseline (TOML): `expected_failures = [...]` tolerates known failures;
    /// `[verdicts]` pins every scenario's verdict, and any drift fails the gate.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Directory for report.json, junit.xml and summary.md.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Directory of scenario files.
    #[arg(long)]
    scenarios: Option<PathBuf>,
    /// Directory of fixtures (hub seed and profiles) for the embedded hub.
    #[arg(long)]
    fixtures: Option<PathBuf>,
    /// Embedded hub only: switch on a named fault (repeatable), to watch a check fail.
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// Embedded hub only: switch on a compliant variant (repeatable), another
    /// answer a standard allows; every scenario still passes.
    #[arg(long = "variant")]
    variants: Vec<String>,
    /// Prove every check can fail: the clean hub, then one hub per fault with
    /// the scenarios that claim it; writes sensitivity.md/json and report.html
    /// (the clean run with the matrix).
    #[arg(long, conflicts_with = "target")]
    sensitivity: bool,
    /// With --sensitivity: run every scenario under every fault (slow) and
    /// report collateral trips too.
    #[arg(long, requires = "sensitivity")]
    full: bool,
    /// Run one scenario (an id or a glob), or a walkthrough (`delegated-agent`,
    /// `autonomous-agent`), step by step and explain every exchange.
    #[arg(long, value_name = "SCENARIO|WALKTHROUGH", conflicts_with_all = ["sensitivity", "list", "glob", "baseline"])]
    narrate: Option<String>,
    /// With --narrate: wait for Enter between steps (only when stdin is a terminal).
    #[arg(long, requires = "narrate")]
    pause: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Discover a server (an MCP server URL or an issuer) and write a starter
    /// profile: the capabilities its metadata proves, a TODO for the rest.
    Init {
        /// An MCP server's URL, or an authorization server's issuer.
        #[arg(long)]
        target: String,
        /// Where to write the profile.
        #[arg(long, default_value = "conform-profile.toml")]
        output: PathBuf,
        /// Replace the output file if it exists.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("conform: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("conform: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(Command::Init {
        target,
        output,
        force,
    }) = &args.command
    {
        return init(target, output, *force).await;
    }
    let mut config = RunConfig::embedded_default();
    if let Some(dir) = args.scenarios {
        config.scenarios_dir = dir;
    }
    if let Some(dir) = args.fixtures {
        config.fixtures_dir = dir;
    }
    config.glob = if args.robustness {
        Some("robustness.*".to_owned())
    } else {
        args.glob
    };
    config.seed = args.seed;
    config.strict = args.strict;
    config.baseline = args.baseline;
    config.out_dir = Some(args.out.clone());
    config.base = args.base;
    if let Some(path) = args.target {
        anyhow::ensure!(
            args.faults.is_empty() && args.variants.is_empty(),
            "--fault and --variant apply to the embedded hub only, not to --target"
        );
        config.target = Target::Profile(path);
    } else {
        for (kind, names, known) in [
            ("fault", &args.faults, harness::embedded::faults()),
            ("variant", &args.variants, harness::embedded::variants()),
        ] {
            if let Some(bad) = names.iter().find(|f| !known.iter().any(|(k, _)| k == f)) {
                anyhow::bail!(
                    "unknown {kind} `{bad}`; known: {}",
                    known.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
                );
            }
        }
        config.target = Target::Embedded {
            faults: args.faults,
            variants: args.variants,
        };
    }

    if args.list {
        for s in harness::load_scenarios(&config)? {
            println!("{:<40} {:<6} {}", s.id, s.level.as_str(), s.title);
        }
        return Ok(ExitCode::SUCCESS);
    }

    if let Some(name) = &args.narrate {
        let mut stdout = std::io::stdout();
        let passed = harness::narrate::run(&config, name, args.pause, &mut stdout).await?;
        return Ok(if passed {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }

    if args.sensitivity {
        let scenarios = harness::load_scenarios(&config)?;
        let coverage = if args.full {
            Coverage::Full
        } else {
            Coverage::Claimed
        };
        let matrix = harness::sensitivity::run(&config.fixtures_dir, &scenarios, coverage).await?;
        harness::artifacts::write_sensitivity(&matrix, &args.out)?;
        print!("{}", matrix.markdown());
        return Ok(if matrix.all_caught() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }

    let report = harness::run(&config).await?;
    print!("{}", harness::report::console_table(&report));
    println!("reports written to {}", args.out.display());
    // A pinned-verdicts baseline decides alone: an expected `error` (a
    // target's real transport failure) is part of what it pins.
    let pinned = report.baseline.as_ref().is_some_and(|b| b.pinned);
    Ok(
        if report.gate_passed && (pinned || report.summary.error == 0) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

/// `conform init`: discovery, then the starter profile.
async fn init(target: &str, output: &std::path::Path, force: bool) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        force || !output.exists(),
        "{} exists; pass --force to replace it",
        output.display()
    );
    let found = harness::init::discover(target).await?;
    std::fs::write(output, found.profile_toml(target))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", output.display()))?;
    println!(
        "issuer     {} (metadata {})",
        found.issuer, found.metadata_url
    );
    if let Some(resource) = &found.resource {
        println!(
            "resource   {} (metadata {})",
            resource.url, resource.metadata_url
        );
    }
    for capability in found.capabilities() {
        println!(
            "{:<19}{:<6} {}",
            capability.name, capability.present, capability.why
        );
    }
    println!("profile written to {}; fill in its TODOs", output.display());
    Ok(ExitCode::SUCCESS)
}
