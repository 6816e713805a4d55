//! `snapshot::*`: redacted token claims, the policy matrix and the report
//! summary, pinned with insta.

use std::sync::Arc;

use harness::engine::{run_all, run_scenario, RunOptions};
use harness::operation::perform;
use harness::recipe::Operation;
use harness::scenario::Scenario;
use harness::verdict::Status;
use libtest_mimic::{Failed, Trial};
use serde_json::{json, Value};

use crate::support::*;

/// Runs the named scenarios and returns the token claims they saw, with dynamic values redacted.
fn token_claims(ids: &[&str]) -> Result<Value, Failed> {
    let profile = shared_target();
    let all = scenarios();
    let chosen: Vec<Scenario> = all
        .into_iter()
        .filter(|s| ids.contains(&s.id.as_str()))
        .collect();
    check(chosen.len() == ids.len(), || {
        format!("missing scenarios among {ids:?}")
    })?;
    let results = runtime().block_on(run_all(
        Arc::new(profile.clone()),
        &chosen,
        &RunOptions::new(true),
    ));
    let mut out = serde_json::Map::new();
    for r in results {
        check(r.status == Status::Pass, || {
            format!("{} did not pass: {:?}", r.id, r.reason)
        })?;
        out.insert(r.id.clone(), Value::Array(r.token_claims));
    }
    let text = without_origin(&Value::Object(out).to_string(), profile);
    serde_json::from_str(&text).map_err(|e| Failed::from(e.to_string()))
}

/// Random ids (policies, DCR clients, agents) replaced by their kind, for snapshots.
fn redact_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let kind = ["pol_", "dcr_", "agent_", "flow_", "evt_"]
            .into_iter()
            .find(|p| word.starts_with(p));
        match kind {
            Some(p) => out.push_str(&format!("[{}]", p.trim_end_matches('_'))),
            None => out.push_str(word),
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Runs policy scenarios on a hub of their own and returns the token claims
/// and every policy decision's explanation, as the audit trail recorded them.
fn policy_matrix(ids: &[&str]) -> Result<Value, Failed> {
    let chosen: Vec<Scenario> = scenarios()
        .into_iter()
        .filter(|s| ids.contains(&s.id.as_str()))
        .collect();
    check(chosen.len() == ids.len(), || {
        format!("missing scenarios among {ids:?}")
    })?;
    runtime().block_on(async {
        let own = harness::embedded::start(&root().join("fixtures"), &[], &[])
            .await
            .map_err(|e| Failed::from(e.to_string()))?;
        let profile = own.profile.clone();
        let mut claims = serde_json::Map::new();
        let mut decisions = serde_json::Map::new();
        // The trail, read as the harness reads it: the profile's recipe.
        let http = harness::http::Http::new(&profile.http);
        let mut seen = 0;
        // One at a time, so each scenario's decisions are its own.
        for scenario in &chosen {
            let result = run_scenario(&profile, scenario, &RunOptions::new(true)).await;
            check(result.status == Status::Pass, || {
                format!("{} did not pass: {:?}", result.id, result.reason)
            })?;
            claims.insert(result.id.clone(), Value::Array(result.token_claims));
            let events = perform(
                &http,
                &profile,
                &profile.vars(),
                Operation::ReadAudit,
                json!({"type": "policy.evaluated"}),
            )
            .await
            .map_err(|e| Failed::from(e.to_string()))?;
            let all = events
                .need_ok("events")
                .map_err(|e| Failed::from(e.to_string()))?
                .as_array()
                .cloned()
                .unwrap_or_default();
            let reasons: Vec<Value> = all[seen.min(all.len())..]
                .iter()
                .map(|e| {
                    json!({
                        "outcome": e["outcome"],
                        "requested": e["scopes_requested"],
                        "permitted": e["scopes_granted"],
                        "matched_policies": e["policies"].as_array().map(Vec::len),
                        "explanation": e["reason"],
                    })
                })
                .collect();
            seen = all.len();
            decisions.insert(result.id.clone(), Value::Array(reasons));
        }
        own.stop().await;
        let text = without_origin(
            &json!({"token_claims": claims, "decisions": decisions}).to_string(),
            &profile,
        );
        serde_json::from_str(&redact_ids(&text)).map_err(|e| Failed::from(e.to_string()))
    })
}

pub fn snapshot_trials() -> Vec<Trial> {
    vec![
        Trial::test("snapshot::policy-matrix", || {
            let matrix = policy_matrix(&[
                "policy.union",
                "policy.partial-request",
                "policy.and-within",
                "policy.permissions-not-in",
                "policy.claims-nested-not-equal",
                "policy.client-name-contains",
                "exchange.nested-chain",
            ])?;
            insta::assert_json_snapshot!("policy-matrix", matrix, {
                ".token_claims.*[].iat" => "[iat]",
                ".token_claims.*[].exp" => "[exp]",
                ".token_claims.*[].auth_time" => "[auth_time]",
                ".token_claims.*[].jti" => "[jti]",
            });
            Ok(())
        }),
        Trial::test("snapshot::token-claims", || {
            let claims = token_claims(&[
                "authcode.oauth2-client-flow",
                "cc.token-bound",
                "refresh.rotation",
                "keys.rotation-overlap",
                "agent.assertion-replay-refused",
                "agent.jwt-bearer-grant",
                "consent.step-up-union",
            ])?;
            insta::assert_json_snapshot!("token-claims", claims, {
                ".*[].iat" => "[iat]",
                ".*[].exp" => "[exp]",
                ".*[].auth_time" => "[auth_time]",
                ".*[].jti" => "[jti]",
                ".*[].client_id" => insta::dynamic_redaction(|value, _| {
                    // DCR client ids are random; pre-registered ones are fixtures.
                    match value.as_str() {
                        Some(id) if id.starts_with("dcr_") => "[dcr client_id]".into(),
                        _ => value,
                    }
                }),
            });
            Ok(())
        }),
        Trial::test("snapshot::report-summary", || {
            let profile = shared_target();
            let all = scenarios();
            let results = runtime().block_on(run_all(
                Arc::new(profile.clone()),
                &all,
                &RunOptions::new(false),
            ));
            let outcome = harness::baseline::compare(&results, &Default::default());
            let report = harness::report::RunReport {
                schema: harness::report::REPORT_SCHEMA,
                tool: "conform".into(),
                target: harness::report::TargetInfo {
                    name: "embedded reference hub".into(),
                    issuer: profile.issuer.clone(),
                    embedded: true,
                },
                revision: harness::revision::Revision::LATEST,
                strict: false,
                duration_ms: 0,
                summary: harness::report::Summary::of(&results),
                gate_passed: outcome.gate_passes(),
                baseline: None,
                scenarios: results,
            };
            insta::assert_snapshot!(
                "report-summary",
                without_origin(&harness::report::markdown(&report), profile)
            );
            Ok(())
        }),
    ]
}

// ---- the conform binary --------------------------------------------------------
