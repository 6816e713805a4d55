//! `conform load`: load on any target a profile describes, and correctness
//! under that load.
//!
//! A *mix* is what each request does: a `client_credentials` grant, an
//! introspection, a refresh of the worker's own token chain, a full code
//! flow with the profile's user, or a retrieval from the vault. Workers,
//! one per connection, send until the duration or the request budget is
//! spent; with `--rate` the load is open-loop: request `i` is due at
//! `start + i / rate`, and its latency counts from then, so a server that
//! falls behind is not flattered by the workers waiting for it.
//!
//! Setup is scenario steps on a run of the suite's own (`setup.rs`), so a
//! mix meets the target through the profile exactly as the scenarios do,
//! and what it creates is torn down afterwards. Latencies go into an HDR
//! histogram per worker (microseconds, merged at the end). The checks are
//! what a fast answer must still be: no 5xx, every issued `jti` unique,
//! every introspection of a live token `active`, one winner per refresh
//! race, one upstream refresh per expired vault token. Only the profile's
//! issuer and the endpoints its metadata names are contacted, besides the
//! harness's own loopback provider.

mod plan;
mod report;
mod session;
mod setup;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use plan::{LoadError, LoadOptions, Mix, MAX_CONNECTIONS, MAX_DURATION};
pub use report::{Latency, LoadCheck, LoadReport};

use plan::{new_histogram, Plan};

use crate::profile::Profile;
use crate::steps::Run;

/// Runs the load and its checks against the target the profile describes.
pub async fn run(profile: &Profile, options: &LoadOptions) -> Result<LoadReport, LoadError> {
    if options.connections == 0 || options.connections > MAX_CONNECTIONS {
        return Err(LoadError::Bounds(format!(
            "--connections must be 1 to {MAX_CONNECTIONS}"
        )));
    }
    if options.duration.is_zero() || options.duration > MAX_DURATION {
        return Err(LoadError::Bounds(
            "--duration must be above 0 and at most 600 s".into(),
        ));
    }
    // One client for the load and the races after it.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(profile.http.timeout_secs))
        .connect_timeout(Duration::from_secs(profile.http.connect_timeout_secs))
        .pool_max_idle_per_host(options.connections)
        .pool_idle_timeout(crate::http::POOL_IDLE)
        .build()
        .map_err(|e| LoadError::Setup(e.to_string()))?;
    let shared = Arc::new(profile.clone());
    let mut run = Run::new(profile);
    let outcome = match setup::prepare(&mut run, &shared, options).await {
        Ok(mut prepared) => {
            let after = prepared.after.take();
            let mut report = drive(&shared, options, prepared, &http).await;
            if let Some(race) = after {
                report.checks.push(match race.run(&mut run, &http).await {
                    Ok(check) => check,
                    Err(e) => LoadCheck {
                        name: "refresh-race-one-winner",
                        passed: false,
                        detail: format!("the race could not be set up after the load: {e}"),
                    },
                });
            }
            Ok(report)
        }
        Err(e) => Err(e),
    };
    run.teardown().await;
    outcome
}

/// The load itself, from the prepared starts.
async fn drive(
    profile: &Arc<Profile>,
    options: &LoadOptions,
    prepared: setup::Prepared,
    http: &reqwest::Client,
) -> LoadReport {
    let started = Instant::now();
    let plan = Arc::new(Plan {
        mix: options.mix,
        deadline: started + options.duration,
        started,
        budget: options.requests.unwrap_or(u64::MAX),
        rate: options.rate.filter(|r| *r > 0),
        next: AtomicU64::new(0),
    });
    let progress = options
        .progress
        .then(|| tokio::spawn(show_progress(plan.clone())));
    let workers: Vec<_> = prepared
        .starts
        .into_iter()
        .map(|start| {
            tokio::spawn(session::work(
                plan.clone(),
                http.clone(),
                start,
                profile.clone(),
            ))
        })
        .collect();
    let mut histogram = new_histogram();
    let mut tally = report::Tally::default();
    for worker in workers {
        let Ok((h, t)) = worker.await else { continue };
        let _ = histogram.add(&h);
        tally.add(t);
    }
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let elapsed = started.elapsed();
    let requests = tally.succeeded + tally.errors.values().sum::<u64>();
    let ms = |v: u64| v as f64 / 1000.0;
    let mut checks = report::checks(options.mix, &mut tally);
    checks.extend(prepared.checks);
    LoadReport {
        target: profile.issuer.clone(),
        mix: options.mix,
        connections: options.connections,
        rate: plan.rate,
        requests,
        succeeded: tally.succeeded,
        elapsed_ms: elapsed.as_millis() as u64,
        throughput_per_s: requests as f64 / elapsed.as_secs_f64().max(0.001),
        latency: Latency {
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
        },
        checks,
        errors: tally.errors,
    }
}

/// A progress line every second on stderr: elapsed, requests, rate.
async fn show_progress(plan: Arc<Plan>) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let sent = plan.next.load(Ordering::Relaxed).min(plan.budget);
        let secs = plan.started.elapsed().as_secs_f64();
        eprint!(
            "\r{secs:5.1} s  {sent} requests  {:.0} req/s   ",
            sent as f64 / secs.max(0.001)
        );
    }
}
