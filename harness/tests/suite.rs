//! The harness's one integration-test binary (libtest-mimic):
//!
//! * `scenario::<id>`: every scenario, as its own test, against one embedded reference hub;
//! * `sensitivity::matrix`: the clean hub passes everything and every fault is caught;
//! * `snapshot::*`: redacted token claims and the report summary, pinned with insta;
//! * `cli::*`: the `conform` binary's exit codes, baselines, profiles and bad targets.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use harness::engine::{run_all, run_scenario, RunOptions};
use harness::profile::Profile;
use harness::scenario::Scenario;
use harness::verdict::Status;
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().expect("tokio runtime"))
}

/// One reference hub shared by the scenario and snapshot tests.
fn shared_target() -> &'static Profile {
    static TARGET: OnceLock<(Profile, harness::embedded::EmbeddedTarget)> = OnceLock::new();
    &TARGET
        .get_or_init(|| {
            runtime().block_on(async {
                let t = harness::embedded::start(&root().join("fixtures"), &[])
                    .await
                    .expect("embedded hub starts");
                (t.profile.clone(), t)
            })
        })
        .0
}

fn scenarios() -> Vec<Scenario> {
    harness::scenario::load_dir(&root().join("scenarios")).expect("scenarios load")
}

fn check(condition: bool, message: impl FnOnce() -> String) -> Result<(), Failed> {
    if condition {
        Ok(())
    } else {
        Err(message().into())
    }
}

/// Replaces the embedded hub's origin so snapshots do not depend on the port.
fn without_origin(text: &str, profile: &Profile) -> String {
    text.replace(profile.base.as_deref().unwrap_or("<none>"), "http://[hub]")
}

fn scenario_trial(scenario: Scenario) -> Trial {
    let id = scenario.id.clone();
    Trial::test(format!("scenario::{id}"), move || {
        let options = RunOptions { strict: true };
        // A scenario that moves the clock gets a hub of its own.
        let result = if scenario.exclusive() {
            runtime().block_on(async {
                let own = harness::embedded::start(&root().join("fixtures"), &[])
                    .await
                    .expect("hub");
                let result = run_scenario(&own.profile, &scenario, &options).await;
                own.stop().await;
                result
            })
        } else {
            runtime().block_on(run_scenario(shared_target(), &scenario, &options))
        };
        check(result.status == Status::Pass, || {
            format!(
                "{} is {}: {}\n{}",
                result.id,
                result.status.as_str(),
                result.reason.clone().unwrap_or_default(),
                serde_json::to_string_pretty(&result.steps).unwrap_or_default()
            )
        })
    })
}

fn sensitivity_trial() -> Trial {
    Trial::test("sensitivity::matrix", || {
        let all = scenarios();
        let matrix = runtime()
            .block_on(harness::sensitivity::run(&root().join("fixtures"), &all))
            .map_err(|e| Failed::from(e.to_string()))?;
        let out = root().join("reports");
        std::fs::create_dir_all(&out).map_err(|e| Failed::from(e.to_string()))?;
        std::fs::write(out.join("sensitivity.md"), matrix.markdown())
            .map_err(|e| Failed::from(e.to_string()))?;
        std::fs::write(
            out.join("sensitivity.json"),
            serde_json::to_string_pretty(&matrix).unwrap_or_default(),
        )
        .map_err(|e| Failed::from(e.to_string()))?;
        check(matrix.clean_failures.is_empty(), || {
            format!(
                "against the clean hub these failed: {:?}",
                matrix.clean_failures
            )
        })?;
        check(matrix.unknown_claims.is_empty(), || {
            format!(
                "scenarios claim faults the hub does not know: {:?}",
                matrix.unknown_claims
            )
        })?;
        let missed: Vec<String> = matrix
            .rows
            .iter()
            .filter(|r| !r.caught)
            .map(|r| {
                if r.claimed_by.is_empty() {
                    format!("{}: no scenario claims it", r.fault)
                } else {
                    format!("{}: missed by {:?}", r.fault, r.missed_by)
                }
            })
            .collect();
        check(missed.is_empty(), || {
            format!("faults not caught:\n{}", missed.join("\n"))
        })
    })
}

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
        &RunOptions { strict: true },
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
        let own = harness::embedded::start(&root().join("fixtures"), &[])
            .await
            .map_err(|e| Failed::from(e.to_string()))?;
        let profile = own.profile.clone();
        let mut claims = serde_json::Map::new();
        let mut decisions = serde_json::Map::new();
        let control = profile.control.clone().ok_or("no control API")?;
        let mut seen = 0;
        // One at a time, so each scenario's decisions are its own.
        for scenario in &chosen {
            let result = run_scenario(&profile, scenario, &RunOptions { strict: true }).await;
            check(result.status == Status::Pass, || {
                format!("{} did not pass: {:?}", result.id, result.reason)
            })?;
            claims.insert(result.id.clone(), Value::Array(result.token_claims));
            let events: Value = reqwest::Client::new()
                .get(format!(
                    "{}/audit?type=policy.evaluated&limit=1000",
                    control.url
                ))
                .bearer_auth(&control.token)
                .send()
                .await
                .map_err(|e| Failed::from(e.to_string()))?
                .json()
                .await
                .map_err(|e| Failed::from(e.to_string()))?;
            let all = events["events"].as_array().cloned().unwrap_or_default();
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

fn snapshot_trials() -> Vec<Trial> {
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
                &RunOptions { strict: false },
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

fn conform(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_conform"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("conform runs")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("conform-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn code(output: &std::process::Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A profile file for a target at `base`, derived from the reference profile.
fn profile_file(dir: &Path, base: &str, extra: &str) -> PathBuf {
    let reference =
        std::fs::read_to_string(root().join("fixtures/profiles/reference.toml")).expect("profile");
    let mut text = reference.replace(
        "base = \"http://127.0.0.1:8080\"",
        &format!("base = \"{base}\""),
    );
    text.push_str(extra);
    let path = dir.join("target.toml");
    std::fs::write(&path, text).expect("write profile");
    path
}

/// A hub running on its own (here in this process, reached only through a
/// profile): the reference profile for its origin, edited by `edit`, in `dir`.
fn separate_hub(
    dir: &Path,
    edit: impl Fn(String) -> String,
) -> Result<(harness::embedded::EmbeddedTarget, PathBuf), Failed> {
    let hub = runtime().block_on(async {
        harness::embedded::start(&root().join("fixtures"), &[])
            .await
            .expect("hub")
    });
    let base = hub.profile.base.clone().unwrap_or_default();
    let path = profile_file(dir, &base, "");
    // The embedded door sets its own control and admin tokens; tell the profile.
    let text = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .replace(
            "token = \"dev-control-token\"",
            "token = \"conform-embedded-control-token\"",
        )
        .replace(
            "token = \"dev-admin-token\"",
            "token = \"conform-embedded-admin-token\"",
        );
    std::fs::write(&path, edit(text)).map_err(|e| Failed::from(e.to_string()))?;
    Ok((hub, path))
}

fn cli_trials() -> Vec<Trial> {
    vec![
        Trial::test("cli::default-run-passes-and-writes-reports", || {
            let out = temp_dir("default");
            let output = conform(&["--out", out.to_str().unwrap_or_default()]);
            check(code(&output) == 0, || {
                format!("exit {}: {}", code(&output), text(&output))
            })?;
            for file in ["report.json", "junit.xml", "summary.md"] {
                check(out.join(file).is_file(), || {
                    format!("{file} was not written")
                })?;
            }
            let report: Value = serde_json::from_str(
                &std::fs::read_to_string(out.join("report.json")).unwrap_or_default(),
            )
            .map_err(|e| Failed::from(e.to_string()))?;
            check(report["schema"] == "conform-report/1", || {
                "wrong schema".into()
            })?;
            let passed = report["summary"]["pass"].as_u64().unwrap_or_default();
            check(passed >= 12, || format!("only {passed} scenarios passed"))
        }),
        Trial::test("cli::unknown-glob-exits-2", || {
            let output = conform(&["--scenario", "no-such-group.*"]);
            check(code(&output) == 2, || {
                format!("exit {}: {}", code(&output), text(&output))
            })?;
            check(text(&output).contains("no scenario matches"), || {
                text(&output)
            })
        }),
        Trial::test("cli::bad-profile-exits-2", || {
            let dir = temp_dir("bad-profile");
            let path = dir.join("bad.toml");
            std::fs::write(&path, "name = \"broken\"\nissuer = 42\n")
                .map_err(|e| Failed::from(e.to_string()))?;
            let output = conform(&["--target", path.to_str().unwrap_or_default()]);
            check(code(&output) == 2, || {
                format!("exit {}: {}", code(&output), text(&output))
            })?;
            check(text(&output).contains("target profile"), || text(&output))
        }),
        Trial::test("cli::failing-fault-exits-1-with-exchange", || {
            let out = temp_dir("fault");
            let output = conform(&[
                "--fault",
                "accept-plain-pkce",
                "--scenario",
                "pkce.*",
                "--out",
                out.to_str().unwrap_or_default(),
            ]);
            check(code(&output) == 1, || {
                format!("exit {}: {}", code(&output), text(&output))
            })?;
            let report = std::fs::read_to_string(out.join("report.json")).unwrap_or_default();
            let report: Value =
                serde_json::from_str(&report).map_err(|e| Failed::from(e.to_string()))?;
            let failing = report["scenarios"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["id"] == "pkce.plain-refused"))
                .cloned()
                .unwrap_or_default();
            check(failing["status"] == "fail", || format!("{failing}"))?;
            let exchanges = failing["steps"]
                .as_array()
                .and_then(|s| s.last())
                .map(|s| s["exchanges"].clone())
                .unwrap_or_default();
            check(exchanges.as_array().is_some_and(|e| !e.is_empty()), || {
                "the failing step carries no HTTP exchange".into()
            })?;
            let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap_or_default();
            check(junit.contains("<failure"), || {
                "junit.xml has no failure".into()
            })?;
            // The user's password and the codes the harness saw never reach a report.
            check(!report.to_string().contains("alice-password"), || {
                "password leaked into report".into()
            })
        }),
        Trial::test("cli::baseline-tolerates-known-and-flags-stale", || {
            let dir = temp_dir("baseline");
            let known = dir.join("known.toml");
            std::fs::write(&known, "expected_failures = [\"pkce.plain-refused\"]\n")
                .map_err(|e| Failed::from(e.to_string()))?;
            let with_fault = conform(&[
                "--fault",
                "accept-plain-pkce",
                "--scenario",
                "pkce.*",
                "--baseline",
                known.to_str().unwrap_or_default(),
                "--out",
                dir.join("a").to_str().unwrap_or_default(),
            ]);
            check(code(&with_fault) == 0, || {
                format!("known failure not tolerated: {}", text(&with_fault))
            })?;
            let clean = conform(&[
                "--scenario",
                "pkce.*",
                "--baseline",
                known.to_str().unwrap_or_default(),
                "--out",
                dir.join("b").to_str().unwrap_or_default(),
            ]);
            check(code(&clean) == 1, || {
                format!("stale baseline entry not flagged: {}", text(&clean))
            })?;
            let summary = std::fs::read_to_string(dir.join("b/summary.md")).unwrap_or_default();
            check(summary.contains("Stale entries (now passing): 1"), || {
                summary
            })
        }),
        Trial::test("cli::target-profile-gives-the-same-verdicts", || {
            let dir = temp_dir("profile");
            let (hub, path) = separate_hub(&dir, |profile| profile)?;
            let output = conform(&[
                "--target",
                path.to_str().unwrap_or_default(),
                "--out",
                dir.join("r").to_str().unwrap_or_default(),
            ]);
            runtime().block_on(hub.stop());
            check(code(&output) == 0, || {
                format!("exit {}: {}", code(&output), text(&output))
            })?;
            let report: Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join("r/report.json")).unwrap_or_default(),
            )
            .map_err(|e| Failed::from(e.to_string()))?;
            let total = report["summary"]["total"].as_u64().unwrap_or_default();
            let pass = report["summary"]["pass"].as_u64().unwrap_or_default();
            check(total == scenarios().len() as u64 && pass == total, || {
                format!("{pass}/{total} passed")
            })
        }),
        Trial::test("cli::declared-block-is-checked-as-block", || {
            // The reference hub filters a partly permitted request; a profile
            // declaring `block` must make the check fail, so the block branch is live.
            let dir = temp_dir("block");
            let (hub, path) = separate_hub(&dir, |profile| {
                profile.replace("partial = \"filter\"", "partial = \"block\"")
            })?;
            let output = conform(&[
                "--target",
                path.to_str().unwrap_or_default(),
                "--scenario",
                "policy.partial-request",
                "--out",
                dir.join("r").to_str().unwrap_or_default(),
            ]);
            runtime().block_on(hub.stop());
            check(code(&output) == 1, || {
                format!("exit {}: {}", code(&output), text(&output))
            })?;
            check(text(&output).contains("access_denied"), || text(&output))
        }),
        Trial::test("cli::unreachable-target-gives-errors-not-a-hang", || {
            let dir = temp_dir("unreachable");
            // Nothing listens on port 1 of loopback.
            let path = profile_file(&dir, "http://127.0.0.1:1", "");
            let started = Instant::now();
            let output = conform(&[
                "--target",
                path.to_str().unwrap_or_default(),
                "--scenario",
                "metadata.*",
                "--out",
                dir.join("r").to_str().unwrap_or_default(),
            ]);
            check(code(&output) == 1, || {
                format!("exit {}: {}", code(&output), text(&output))
            })?;
            check(started.elapsed() < Duration::from_secs(30), || {
                "took too long".into()
            })?;
            check(text(&output).contains("ERROR"), || text(&output))
        }),
        Trial::test("cli::hanging-target-times-out", || {
            // A listener that accepts connections and never answers.
            let listener = std::net::TcpListener::bind("127.0.0.1:0")
                .map_err(|e| Failed::from(e.to_string()))?;
            let port = listener
                .local_addr()
                .map_err(|e| Failed::from(e.to_string()))?
                .port();
            let holder = std::thread::spawn(move || {
                let mut held = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(20);
                listener.set_nonblocking(true).ok();
                while Instant::now() < deadline && held.len() < 16 {
                    match listener.accept() {
                        Ok((stream, _)) => held.push(stream),
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            });
            let dir = temp_dir("hanging");
            let path = profile_file(&dir, &format!("http://127.0.0.1:{port}"), "");
            let text_profile = std::fs::read_to_string(&path)
                .unwrap_or_default()
                .replace("timeout_secs = 10", "timeout_secs = 1");
            std::fs::write(&path, text_profile).map_err(|e| Failed::from(e.to_string()))?;
            let started = Instant::now();
            let output = conform(&[
                "--target",
                path.to_str().unwrap_or_default(),
                "--scenario",
                "metadata.issuer-exact",
                "--out",
                dir.join("r").to_str().unwrap_or_default(),
            ]);
            let elapsed = started.elapsed();
            drop(holder);
            check(code(&output) == 1, || {
                format!("exit {}: {}", code(&output), text(&output))
            })?;
            check(elapsed < Duration::from_secs(15), || {
                format!("took {elapsed:?}")
            })?;
            check(text(&output).contains("timed out"), || text(&output))
        }),
    ]
}

fn main() {
    let args = Arguments::from_args();
    let mut trials: Vec<Trial> = scenarios().into_iter().map(scenario_trial).collect();
    trials.push(sensitivity_trial());
    trials.extend(snapshot_trials());
    trials.extend(cli_trials());
    libtest_mimic::run(&args, trials).exit();
}
