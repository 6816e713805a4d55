//! `robustness::*`: the robustness pass against the embedded reference hub,
//! and a finding sent again from its seed and request number.

use std::time::Instant;

use harness::robustness::{build, Check, Pass};
use harness::steps::Run;
use libtest_mimic::{Failed, Trial};

use crate::support::*;

/// A pass of `requests` against a hub of its own with `faults` on, and the
/// pass's inputs (so a test can rebuild a request).
async fn pass_on_own_hub(
    faults: &[String],
    requests: usize,
    then: impl AsyncFnOnce(
        &Pass,
        &[harness::robustness::Endpoint],
        &harness::robustness::Known,
    ) -> Result<(), Failed>,
) -> Result<Pass, Failed> {
    let hub = harness::embedded::start(&root().join("fixtures"), faults, &[])
        .await
        .map_err(|e| Failed::from(e.to_string()))?;
    let mut profile = hub.profile.clone();
    profile.robustness.requests = requests;
    let mut run = Run::new(&profile);
    let outcome = async {
        let (endpoints, known) = run
            .robustness_targets()
            .await
            .map_err(|e| Failed::from(e.to_string()))?;
        let pass = harness::robustness::run(
            &profile.robustness,
            &profile.http,
            endpoints.clone(),
            &known,
        )
        .await;
        then(&pass, &endpoints, &known).await?;
        Ok(pass)
    }
    .await;
    hub.stop().await;
    outcome
}

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("robustness::embedded-hub-has-no-findings", || {
            runtime().block_on(async {
                let started = Instant::now();
                let pass = pass_on_own_hub(&[], 2_000, async |_, _, _| Ok(())).await?;
                // Measured, never asserted (timing belongs to benchmarks).
                eprintln!(
                    "robustness pass: {} requests to {} endpoints in {} ms ({} ms with the hub's start), statuses {:?}",
                    pass.requests,
                    pass.endpoints.len(),
                    pass.elapsed_ms,
                    started.elapsed().as_millis(),
                    pass.statuses
                );
                check(pass.requests >= 2_000, || format!("only {} requests", pass.requests))?;
                let names: Vec<&str> = pass.endpoints.iter().map(|e| e.name.as_str()).collect();
                for wanted in [
                    "authorization_endpoint",
                    "token_endpoint",
                    "registration_endpoint",
                    "revocation_endpoint",
                    "introspection_endpoint",
                    "jwks_uri",
                    "authorization_server_metadata",
                    "resource_metadata",
                    "resource",
                ] {
                    check(names.contains(&wanted), || format!("no {wanted} among {names:?}"))?;
                }
                check(pass.counts.values().all(|n| *n == 0), || {
                    format!(
                        "findings {:?}: {}",
                        pass.counts,
                        serde_json::to_string_pretty(&pass.findings).unwrap_or_default()
                    )
                })
            })
        }),
        Trial::test("robustness::a-finding-is-sent-again-from-its-seed", || {
            runtime().block_on(async {
                let fault = "error-page-reflects-request".to_owned();
                pass_on_own_hub(&[fault], 600, async |pass, endpoints, known| {
                    let finding = pass
                        .findings
                        .iter()
                        .find(|f| f.check == Check::Reflection)
                        .ok_or_else(|| Failed::from("the fault gave no reflection finding"))?;
                    let endpoint = endpoints
                        .iter()
                        .find(|e| e.name == finding.endpoint)
                        .ok_or_else(|| Failed::from("the finding's endpoint is gone"))?;
                    let again = build(finding.seed, finding.request, endpoint, known);
                    check(
                        again
                            .url
                            .starts_with(&finding.exchange.url.replace("… ", "")[..40]),
                        || format!("rebuilt {} is not {}", again.url, finding.exchange.url),
                    )?;
                    let answer = reqwest::Client::new()
                        .get(&again.url)
                        .send()
                        .await
                        .map_err(|e| Failed::from(e.to_string()))?
                        .text()
                        .await
                        .unwrap_or_default();
                    let marked = harness::hostile::markup(finding.request);
                    check(marked.iter().any(|m| answer.contains(m.as_str())), || {
                        format!(
                            "request {} sent again was not reflected: {answer}",
                            finding.request
                        )
                    })
                })
                .await
                .map(|_| ())
            })
        }),
    ]
}
