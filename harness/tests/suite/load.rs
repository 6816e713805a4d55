//! `load::*`: `conform load`'s CI-sized smoke run on the embedded hub (its
//! correctness checks gate CI; its numbers are printed, never asserted), and
//! the jti check catching its fault.

use std::time::Duration;

use harness::load::{LoadOptions, LoadReport, Mix};
use libtest_mimic::{Failed, Trial};

use crate::support::*;

async fn load_on_own_hub(faults: &[String], options: LoadOptions) -> Result<LoadReport, Failed> {
    let hub = harness::embedded::start(&root().join("fixtures"), faults, &[])
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

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("load::smoke-run-passes-its-checks", || {
            runtime().block_on(async {
                for mix in [Mix::ClientCredentials, Mix::Introspection] {
                    let report = load_on_own_hub(&[], smoke(mix)).await?;
                    eprint!("{}", report.text());
                    check(report.passed() && report.errors.is_empty(), || {
                        format!("the smoke run failed:\n{}", report.text())
                    })?;
                    check(
                        report.requests > 0 && report.succeeded == report.requests,
                        || format!("nothing succeeded:\n{}", report.text()),
                    )?;
                }
                Ok(())
            })
        }),
        Trial::test("load::repeated-jti-is-caught", || {
            runtime().block_on(async {
                let report =
                    load_on_own_hub(&["jti-repeats".to_owned()], smoke(Mix::ClientCredentials))
                        .await?;
                let jti = report.checks.iter().find(|c| c.name == "jti-unique");
                check(jti.is_some_and(|c| !c.passed), || {
                    format!("the jti check passed under jti-repeats:\n{}", report.text())
                })
            })
        }),
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
    ]
}
