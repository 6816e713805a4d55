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
    /// The MCP revision to judge by: 2025-06-18, 2025-11-25 or 2026-07-28
    /// (else the profile's `spec`, else the latest), or `all`: one run per
    /// revision, each revision's reports in `--out/<revision>/` and the
    /// scenario × revision matrix in summary.md and report.html.
    #[arg(long, value_name = "REVISION|all")]
    spec: Option<harness::revision::SpecChoice>,
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
    /// Load-test a target: throughput, latency percentiles and errors by
    /// kind, and correctness under the load (no 5xx, unique `jti`s, live
    /// tokens introspected as active, one winner per refresh race, one
    /// upstream refresh per expired vault token). Writes load.json to --out.
    Load {
        /// Target profile (TOML); without it, the embedded reference hub.
        #[arg(long)]
        target: Option<PathBuf>,
        /// With --target: the origin that replaces the profile's `base`.
        #[arg(long, requires = "target", value_name = "URL")]
        base: Option<String>,
        /// What each request does.
        #[arg(long, value_enum, default_value = "client-credentials")]
        mix: harness::load::Mix,
        /// Connections, one worker each (1 to 1024).
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// How long to send: `20s`, `500ms`, `2m` (at most 10 minutes).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        duration: std::time::Duration,
        /// Stop after this many requests (or at --duration, whichever is first).
        #[arg(long)]
        requests: Option<u64>,
        /// Open-loop load: this many requests per second, whatever the answers' pace.
        #[arg(long)]
        rate: Option<u64>,
        /// Directory for load.json.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
    },
}

/// `20s`, `500ms`, `2m`, or a number of seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 20s, 500ms or 2m"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("`{text}`: the unit is ms, s or m")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("`{text}` is not a positive duration"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
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
    if let Some(Command::Load {
        target,
        base,
        mix,
        connections,
        duration,
        requests,
        rate,
        out,
    }) = &args.command
    {
        let options = harness::load::LoadOptions {
            mix: *mix,
            connections: *connections,
            duration: *duration,
            requests: *requests,
            rate: *rate,
            progress: true,
        };
        return load(target.as_deref(), base.as_deref(), &options, out).await;
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
    config.spec = args.spec;
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
        let scenarios = harness::load_scenarios(&config)?;
        match args.spec {
            Some(harness::revision::SpecChoice::All) => {
                print!(
                    "{}",
                    harness::revision_matrix::requirements_table(&scenarios)
                );
            }
            one => {
                let revision = match one {
                    Some(harness::revision::SpecChoice::One(r)) => r,
                    _ => harness::revision::Revision::LATEST,
                };
                for s in scenarios {
                    match s.under(revision) {
                        Ok(s) => println!("{:<40} {:<6} {}", s.id, s.level.as_str(), s.title),
                        Err(_) => println!("{:<40} {:<6} {}", s.id, "n/a", s.title),
                    }
                }
            }
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

    let reports = harness::run(&config).await?;
    for report in &reports {
        if reports.len() > 1 {
            println!("MCP {}:", report.revision);
        }
        print!("{}", harness::report::console_table(report));
    }
    println!("reports written to {}", args.out.display());
    // A pinned-verdicts baseline decides alone: an expected `error` (a
    // target's real transport failure) is part of what it pins.
    let passed = reports.iter().all(|report| {
        let pinned = report.baseline.as_ref().is_some_and(|b| b.pinned);
        report.gate_passed && (pinned || report.summary.error == 0)
    });
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `conform load`: the run, its summary, load.json; exit 1 when a check failed.
async fn load(
    target: Option<&std::path::Path>,
    base: Option<&str>,
    options: &harness::load::LoadOptions,
    out: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let (profile, embedded) = match target {
        Some(path) => (harness::profile::Profile::load(path, base)?, None),
        None => {
            let fixtures = harness::embedded::repo_root().join("fixtures");
            let hub = harness::embedded::start(&fixtures, &[], &[]).await?;
            (hub.profile.clone(), Some(hub))
        }
    };
    let report = harness::load::run(&profile, options).await;
    if let Some(hub) = embedded {
        hub.stop().await;
    }
    let report = report?;
    print!("{}", report.text());
    std::fs::create_dir_all(out)?;
    let path = out.join("load.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    println!("written to {}", path.display());
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
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
