//! `load::*`: `conform load`'s CI-sized smoke run of every mix on the
//! embedded hub (its correctness checks gate CI; its numbers are printed,
//! never asserted), each check catching its fault, and the bounds.

use std::time::Duration;

use harness::load::{LoadOptions, LoadReport, Mix};
use libtest_mimic::{Failed, Trial};

use crate::support::*;

async fn load_on_own_hub(faults: &[&str], options: LoadOptions) -> Result<LoadReport, Failed> {
    let faults: Vec<String> = faults.iter().map(|f| (*f).to_owned()).collect();
    let hub = harness::embedded::start(&root().join("fixtures"), &faults, &[])
        .await
        .map_err(|e| Failed::from(e.to_string()))?;
    let report = harness::load::run(&hub.profile, &options).await;
    hub.stop().await;
    report.map_err(|e| Failed::from(e.to_string()))
}

fn smoke(mix: Mix) -> LoadOptions {
    LoadOptions {
        mix,
        connections: 8,
        duration: Duration::from_secs(1),
        requests: Some(2_000),
        rate: None,
        progress: false,
    }
}

/// Runs `mix` on a hub with `fault` and checks that the check `name` failed.
fn caught(fault: &str, mix: Mix, requests: u64, name: &str) -> Result<(), Failed> {
    runtime().block_on(async {
        let mut options = smoke(mix);
        // Enough requests for a fault that breaks one in 100, however slow the machine.
        options.requests = Some(requests);
        options.duration = Duration::from_secs(30);
        let report = load_on_own_hub(&[fault], options).await?;
        let found = report.checks.iter().find(|c| c.name == name);
        check(found.is_some_and(|c| !c.passed), || {
            format!("{name} passed under {fault}:\n{}", report.text())
        })
    })
}

fn a_refresh_race_with_two_winners_is_caught() -> Result<(), Failed> {
    caught(
        "refresh-rotation-races",
        Mix::Refresh,
        50,
        "refresh-race-one-winner",
    )
}

fn a_server_error_under_load_is_caught() -> Result<(), Failed> {
    caught(
        "token-server-error-under-load",
        Mix::ClientCredentials,
        300,
        "no-server-error",
    )
}

fn a_live_token_introspected_inactive_is_caught() -> Result<(), Failed> {
    caught(
        "introspection-forgets-live-tokens",
        Mix::Introspection,
        300,
        "introspection-active",
    )
}

fn a_second_upstream_refresh_is_caught() -> Result<(), Failed> {
    caught(
        "refresh-without-single-flight",
        Mix::Vault,
        50,
        "vault-single-refresh",
    )
}

fn a_repeated_jti_is_caught() -> Result<(), Failed> {
    caught("jti-repeats", Mix::ClientCredentials, 2_000, "jti-unique")
}

pub fn trials() -> Vec<Trial> {
    let mut trials = vec![
        Trial::test(
            "load::refresh-race-caught",
            a_refresh_race_with_two_winners_is_caught,
        ),
        Trial::test(
            "load::server-error-caught",
            a_server_error_under_load_is_caught,
        ),
        Trial::test(
            "load::inactive-live-token-caught",
            a_live_token_introspected_inactive_is_caught,
        ),
        Trial::test(
            "load::second-upstream-refresh-caught",
            a_second_upstream_refresh_is_caught,
        ),
        Trial::test("load::repeated-jti-caught", a_repeated_jti_is_caught),
        Trial::test("load::bad-bounds-refused", || {
            runtime().block_on(async {
                let mut options = smoke(Mix::ClientCredentials);
                options.connections = 0;
                let hub = harness::embedded::start(&root().join("fixtures"), &[], &[])
                    .await
                    .map_err(|e| Failed::from(e.to_string()))?;
                let refused = harness::load::run(&hub.profile, &options).await.is_err();
                options.connections = 4;
                options.duration = Duration::from_secs(3_600);
                let too_long = harness::load::run(&hub.profile, &options).await.is_err();
                hub.stop().await;
                check(refused && too_long, || {
                    "a run out of bounds was not refused".into()
                })
            })
        }),
    ];
    for mix in [
        Mix::ClientCredentials,
        Mix::Introspection,
        Mix::Refresh,
        Mix::CodeFlow,
        Mix::Vault,
    ] {
        trials.push(Trial::test(
            format!("load::smoke-{}-passes-its-checks", mix.name()),
            move || {
                runtime().block_on(async {
                    let report = load_on_own_hub(&[], smoke(mix)).await?;
                    eprint!("{}", report.text());
                    check(report.passed() && report.errors.is_empty(), || {
                        format!("the smoke run failed:\n{}", report.text())
                    })?;
                    check(
                        report.requests > 0 && report.succeeded == report.requests,
                        || format!("nothing succeeded:\n{}", report.text()),
                    )
                })
            },
        ));
    }
    trials
}
