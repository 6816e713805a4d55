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
            .block_on(harness::sensitivity::run(
                &root().join("fixtures"),
                &all,
                harness::sensitivity::Coverage::Claimed,
            ))
            .map_err(|e| Failed::from(e.to_string()))?;
        harness::artifacts::write_sensitivity(&matrix, &root().join("reports"))
            .map_err(|e| Failed::from(e.to_string()))?;
        println!("{}", matrix.headline());
        check(matrix.clean_failures.is_empty(), || {
            format!(
                "against the clean hub these failed: {:?}",
                matrix.clean_failures
            )
        })?;
        let missed = matrix.misses();
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

// ---- the audit webhook: a hub process delivering to the harness's collector --------

/// The reference hub's own binary. `cargo test -p harness` does not build it,
/// so the first caller asks cargo to (a no-op when it is up to date).
fn hub_binary() -> Result<PathBuf, Failed> {
    static HUB: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    HUB.get_or_init(|| {
        let output = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--message-format=json"])
            .args(["-p", "reference-server", "--bin", "hub"])
            .current_dir(root())
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "building the hub failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "hub")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .ok_or_else(|| "cargo did not report the hub executable".to_owned())
    })
    .clone()
    .map_err(Failed::from)
}

/// A reference hub running as a process of its own, killed when dropped.
struct HubProcess {
    child: std::process::Child,
    base: String,
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `hub` on 127.0.0.1 port 0 with the fixtures, test mode, the admin
/// API and the reference profile's tokens, without the demo (whose provider
/// has a fixed port), plus `extra` arguments; returns once it says where it listens.
fn hub_process(extra: &[&str]) -> Result<HubProcess, Failed> {
    use std::io::BufRead;
    let seed = root().join("fixtures/hub");
    let mut command = Command::new(hub_binary()?);
    command
        .args(["--bind", "127.0.0.1:0", "--database", ":memory:"])
        .args(["--seed-dir", seed.to_str().unwrap_or_default()])
        .args(["--test-mode", "--control-token", "dev-control-token"])
        .args(["--admin-token", "dev-admin-token"])
        .args(["--registration-rate-exempt", "127.0.0.1", "--no-demo"])
        .args(extra)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info,sqlx=warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // Only the arguments above configure it.
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("HUB_")) {
        command.env_remove(name);
    }
    let mut child = command
        .spawn()
        .map_err(|e| Failed::from(format!("cannot start the hub: {e}")))?;
    let stdout = child.stdout.take().ok_or("no hub stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads the log to its end, so the hub never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some((_, rest)) = line.split_once("hub listening on ") {
                let addr = rest.split_whitespace().next().unwrap_or_default();
                let _ = tx.send(format!("http://{addr}"));
            }
        }
    });
    let mut hub = HubProcess {
        child,
        base: String::new(),
    };
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(base) => {
            hub.base = base;
            Ok(hub)
        }
        Err(_) => {
            // It exited, or hangs: say what it said on stderr.
            use std::io::Read;
            let _ = hub.child.kill();
            let mut stderr = String::new();
            if let Some(mut pipe) = hub.child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            Err(format!("the hub did not say where it listens within 30s: {stderr}").into())
        }
    }
}

/// The reference profile for a hub at `base`, auditing through the webhook at `listen`.
fn webhook_profile_file(dir: &Path, base: &str, listen: &str) -> PathBuf {
    profile_file(
        dir,
        base,
        &format!("\n[audit]\nsource = \"webhook\"\nwebhook_listen = \"{listen}\"\n"),
    )
}

fn webhook_trials() -> Vec<Trial> {
    vec![
        Trial::test("cli::audit-webhook-collects-the-trail", || {
            // The collector listens first (port 0), so the hub is told its real
            // URL before it writes anything.
            let collector = runtime()
                .block_on(harness::audit::webhook_collector(
                    "127.0.0.1:0".parse().expect("address"),
                ))
                .map_err(|e| Failed::from(e.to_string()))?;
            let url = collector.url();
            check(url.ends_with("/audit-webhook"), || url.clone())?;
            let hub = hub_process(&["--audit-webhook", &url])?;
            let dir = temp_dir("audit-webhook");
            let path = webhook_profile_file(&dir, &hub.base, &collector.address().to_string());
            // No [control]: the control API cannot be where the trail came from.
            let text = std::fs::read_to_string(&path)
                .unwrap_or_default()
                .replace(
                    "[control]\nurl = \"${base}/control\"\ntoken = \"dev-control-token\"\n",
                    "",
                )
                .replace("control_api = true", "control_api = false");
            std::fs::write(&path, text).map_err(|e| Failed::from(e.to_string()))?;
            let mut profile =
                Profile::load(&path, None).map_err(|e| Failed::from(e.to_string()))?;
            check(profile.control.is_none(), || {
                "the profile still has a [control] section".into()
            })?;
            let ids = [
                "authcode.oauth2-client-flow",
                "consent.denial-redirects",
                "exchange.act-present",
                "cc.token-bound",
            ];
            let chosen: Vec<Scenario> = scenarios()
                .into_iter()
                .filter(|s| ids.contains(&s.id.as_str()))
                .collect();
            check(chosen.len() == ids.len(), || {
                format!("missing scenarios among {ids:?}")
            })?;
            let results = runtime().block_on(async {
                harness::audit::start_collector(&mut profile).await?;
                Ok::<_, String>(
                    run_all(
                        Arc::new(profile.clone()),
                        &chosen,
                        &RunOptions { strict: true },
                    )
                    .await,
                )
            })?;
            drop(hub);
            for r in &results {
                let audit = r.audit.as_ref().ok_or("no audit check")?;
                check(r.status == Status::Pass, || {
                    format!(
                        "{} is {}: {:?} {audit:?}",
                        r.id,
                        r.status.as_str(),
                        r.reason
                    )
                })?;
                check(
                    audit.status == Status::Pass
                        && audit.source == harness::profile::AuditSource::Webhook
                        && audit.endpoint.as_deref() == Some(url.as_str())
                        && audit.events_expected > 0
                        && audit.events_read >= audit.events_expected,
                    || format!("{}: {audit:?}", r.id),
                )?;
            }
            // The events came over the webhook, each once.
            let events = collector.events();
            let mut ids: Vec<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
            let received = ids.len();
            ids.sort_unstable();
            ids.dedup();
            check(ids.len() == received && received == events.len(), || {
                format!(
                    "{received} ids among {} events, some repeated",
                    events.len()
                )
            })?;
            for wanted in [
                "client.registered",
                "consent.granted",
                "consent.denied",
                "token.issued",
                "token.exchanged",
            ] {
                check(events.iter().any(|e| e["type"] == wanted), || {
                    format!("no `{wanted}` event arrived over the webhook")
                })?;
            }
            Ok(())
        }),
        Trial::test("cli::audit-webhook-catches-a-dropped-consent-event", || {
            // The conform binary hosts the collector on a port chosen here (free
            // a moment ago); the hub writes nothing until conform acts.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| Failed::from(e.to_string()))?
                .port();
            let url = format!("http://127.0.0.1:{port}/audit-webhook");
            let hub = hub_process(&["--audit-webhook", &url, "--fault", "drop-consent-audit"])?;
            let dir = temp_dir("audit-webhook-fault");
            let path = webhook_profile_file(&dir, &hub.base, &format!("127.0.0.1:{port}"));
            let output = conform(&[
                "--target",
                path.to_str().unwrap_or_default(),
                "--scenario",
                "consent.denial-redirects",
                "--out",
                dir.join("r").to_str().unwrap_or_default(),
            ]);
            drop(hub);
            check(code(&output) == 1, || {
                format!("exit {}: {}", code(&output), text(&output))
            })?;
            let report: Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join("r/report.json")).unwrap_or_default(),
            )
            .map_err(|e| Failed::from(e.to_string()))?;
            let audit = report["scenarios"][0]["audit"].clone();
            check(
                report["scenarios"][0]["status"] == "fail"
                    && audit["status"] == "fail"
                    && audit["source"] == "webhook"
                    && audit["endpoint"] == url.as_str(),
                || format!("{audit}"),
            )?;
            // The stream worked (the registration arrived); the consent event never did.
            check(
                audit["events_read"].as_u64().unwrap_or_default() > 0,
                || format!("nothing arrived: {audit}"),
            )?;
            check(
                audit["messages"].to_string().contains("consent.denied"),
                || format!("{audit}"),
            )
        }),
        Trial::test("cli::audit-webhook-profile-needs-listen", || {
            let dir = temp_dir("audit-webhook-profile");
            let path = profile_file(
                &dir,
                "http://127.0.0.1:8080",
                "\n[audit]\nsource = \"webhook\"\n",
            );
            let output = conform(&["--target", path.to_str().unwrap_or_default()]);
            check(code(&output) == 2, || {
                format!("exit {}: {}", code(&output), text(&output))
            })?;
            check(text(&output).contains("webhook_listen"), || text(&output))
        }),
    ]
}

fn main() {
    let args = Arguments::from_args();
    let mut trials: Vec<Trial> = scenarios().into_iter().map(scenario_trial).collect();
    trials.push(sensitivity_trial());
    trials.extend(snapshot_trials());
    trials.extend(cli_trials());
    trials.extend(webhook_trials());
    trials.extend(html_and_narration_trials());
    libtest_mimic::run(&args, trials).exit();
}

// ---- report.html and --narrate ---------------------------------------------------

/// A fixed exchange for the diagram snapshot.
fn exchange(
    method: &str,
    url: &str,
    status: Option<u16>,
    body: Option<&str>,
) -> harness::http::Exchange {
    harness::http::Exchange {
        method: method.into(),
        url: url.into(),
        request_headers: Vec::new(),
        request_body: None,
        status,
        response_headers: match status {
            Some(s) if (300..400).contains(&s) => vec![(
                "location".into(),
                "http://127.0.0.1:3000/callback?code=[redacted]&state=s".into(),
            )],
            _ => Vec::new(),
        },
        response_body: body.map(str::to_owned),
        transport_error: status
            .is_none()
            .then(|| "timed out: operation timed out".into()),
    }
}

/// Every `href="…"` and `src="…"` value of an HTML document.
fn links(html: &str, attribute: &str) -> Vec<String> {
    let needle = format!("{attribute}=\"");
    html.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            rest[..rest.find('"').unwrap_or(rest.len())].to_owned()
        })
        .collect()
}

/// Checks a report.html: self-contained (no `src=`, no http(s) link but the
/// scenarios' spec references), with no token, password or raw markup from the run.
fn check_html(html: &str, report: &Value) -> Result<(), Failed> {
    check(
        html.starts_with("<!DOCTYPE html>") && html.contains("</html>"),
        || "not a whole HTML document".into(),
    )?;
    check(links(html, "src").is_empty(), || {
        format!("report.html loads something: {:?}", links(html, "src"))
    })?;
    let spec_urls: Vec<String> = report["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["refs"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["url"].as_str().map(|u| u.replace('&', "&amp;")))
        .collect();
    for href in links(html, "href") {
        check(href.starts_with('#') || spec_urls.contains(&href), || {
            format!("report.html links to `{href}`, which is not a spec reference")
        })?;
    }
    check(!html.contains("eyJ"), || "a JWT is in report.html".into())?;
    check(
        !html.contains("alice-password") && !html.contains("reporter-secret"),
        || "a password or client secret is in report.html".into(),
    )?;
    check(!html.contains("<script"), || {
        "report.html has a <script> element (nothing escaped it?)".into()
    })
}

fn html_and_narration_trials() -> Vec<Trial> {
    vec![
        Trial::test("snapshot::sequence-diagram", || {
            use harness::diagram::{sequence_svg, DiagramStep};
            use harness::verdict::Status;
            let hub = "http://127.0.0.1:8080";
            let metadata = exchange(
                "GET",
                "http://127.0.0.1:8080/.well-known/oauth-authorization-server/oauth",
                Some(200),
                Some("{}"),
            );
            let register = exchange(
                "POST",
                "http://127.0.0.1:8080/oauth/register",
                Some(201),
                Some("{}"),
            );
            let authorize = exchange(
                "GET",
                "http://127.0.0.1:8080/oauth/authorize?response_type=code&client_id=dcr_x",
                Some(303),
                None,
            );
            let token = exchange(
                "POST",
                "http://127.0.0.1:8080/oauth/token",
                Some(400),
                Some(r#"{"error":"invalid_grant"}"#),
            );
            let policy = exchange(
                "POST",
                "http://127.0.0.1:8080/admin/policies",
                Some(201),
                Some("{}"),
            );
            let prm = exchange(
                "GET",
                "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp/agenda",
                Some(200),
                Some("{}"),
            );
            let tool = exchange("POST", "http://127.0.0.1:8080/mcp/agenda", Some(403), None);
            let provider = exchange("GET", "http://127.0.0.1:9999/authorize?state=s", None, None);
            let steps = vec![
                DiagramStep {
                    index: 1,
                    action: "create_policy",
                    status: Status::Pass,
                    exchanges: vec![&policy],
                    omitted: 0,
                },
                DiagramStep {
                    index: 2,
                    action: "register",
                    status: Status::Pass,
                    exchanges: vec![&metadata, &register],
                    omitted: 3,
                },
                DiagramStep {
                    index: 3,
                    action: "authorize",
                    status: Status::Pass,
                    exchanges: vec![&authorize],
                    omitted: 0,
                },
                DiagramStep {
                    index: 4,
                    action: "connect",
                    status: Status::Pass,
                    exchanges: vec![&provider],
                    omitted: 0,
                },
                DiagramStep {
                    index: 5,
                    action: "mcp_tool",
                    status: Status::Pass,
                    exchanges: vec![&prm, &tool],
                    omitted: 0,
                },
                DiagramStep {
                    index: 6,
                    action: "token",
                    status: Status::Fail,
                    exchanges: vec![&token],
                    omitted: 0,
                },
                DiagramStep {
                    index: 7,
                    action: "provider_log",
                    status: Status::Pass,
                    exchanges: Vec::new(),
                    omitted: 0,
                },
            ];
            let svg = sequence_svg(hub, &steps).ok_or("no diagram for exchanges")?;
            check(sequence_svg(hub, &steps[6..]).is_none(), || {
                "a diagram for a step without exchanges".into()
            })?;
            // One element a line, so a change reads as a diff.
            insta::assert_snapshot!("sequence-diagram", svg.replace("><", ">\n<"));
            Ok(())
        }),
        Trial::test("report::html-is-self-contained-and-escaped", || {
            let profile = shared_target();
            let ids = [
                "authcode.oauth2-client-flow",
                "exchange.act-present",
                "prm.challenge",
            ];
            let chosen: Vec<Scenario> = scenarios()
                .into_iter()
                .filter(|s| ids.contains(&s.id.as_str()))
                .collect();
            check(chosen.len() == ids.len(), || {
                format!("missing scenarios among {ids:?}")
            })?;
            let mut results = runtime().block_on(run_all(
                Arc::new(profile.clone()),
                &chosen,
                &RunOptions { strict: true },
            ));
            // Text a target controls (here: planted in a title and a reason) is escaped.
            results[0].title.push_str(" <script>alert('x')</script>");
            results[0].reason = Some("<script>alert(\"x\")</script> & more".into());
            let report = harness::report::RunReport {
                schema: harness::report::REPORT_SCHEMA,
                tool: "conform".into(),
                target: harness::report::TargetInfo {
                    name: "embedded <reference> hub".into(),
                    issuer: profile.issuer.clone(),
                    embedded: true,
                },
                strict: true,
                duration_ms: 0,
                summary: harness::report::Summary::of(&results),
                gate_passed: true,
                baseline: None,
                scenarios: results.clone(),
            };
            let dir = temp_dir("report-html");
            harness::artifacts::write_run(&report, &dir).map_err(|e| Failed::from(e.to_string()))?;
            let html = std::fs::read_to_string(dir.join("report.html"))
                .map_err(|e| Failed::from(format!("report.html was not written: {e}")))?;
            let json: Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join("report.json")).unwrap_or_default(),
            )
            .map_err(|e| Failed::from(e.to_string()))?;
            check_html(&html, &json)?;
            check(
                html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;")
                    && html
                        .contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more")
                    && html.contains("embedded &lt;reference&gt; hub"),
                || "the planted markup is not escaped as text".into(),
            )?;
            // Every scenario with exchanges has its diagram; all three have some.
            let with_exchanges = results
                .iter()
                .filter(|r| r.steps.iter().any(|s| !s.transcript.exchanges.is_empty()))
                .count();
            let diagrams = html.matches("<svg").count();
            check(
                with_exchanges == ids.len() && diagrams == with_exchanges,
                || format!("{diagrams} diagrams for {with_exchanges} scenarios with exchanges"),
            )?;
            // Passing scenarios carry their transcript too, and their tokens as claims:
            // the exchange's act claim names the agent.
            check(
                html.contains("POST /oauth/token") && html.contains("&quot;act&quot;"),
                || "no token request, or no decoded act claim, in report.html".into(),
            )?;
            check(
                html.contains("<a href=\"https://www.rfc-editor.org/rfc/rfc8693#section-4.1\">RFC 8693 §4.1</a>"),
                || "the spec reference is not linked".into(),
            )?;
            // With a sensitivity matrix (as `conform --sensitivity` writes it), its rows are shown.
            let matrix = harness::sensitivity::Matrix {
                coverage: harness::sensitivity::Coverage::Full,
                clean_failures: Vec::new(),
                rows: vec![harness::sensitivity::FaultRow {
                    fault: "skip-pkce-verify".into(),
                    description: "accepts any <code_verifier>".into(),
                    claimed_by: vec!["pkce.wrong-verifier".into()],
                    caught_by: vec!["pkce.wrong-verifier".into()],
                    missed_by: Vec::new(),
                    audit_tripped: vec!["audit.refusal-recorded".into()],
                    collateral: vec!["token.no-store".into()],
                    caught: true,
                }],
                proven_pairs: 1,
                claimed_pairs: 1,
                clean_run: Some(report.clone()),
            };
            let with_matrix =
                harness::html::render_sensitivity(&matrix).ok_or("no report for the clean run")?;
            check_html(&with_matrix, &json)?;
            check(
                with_matrix.contains("Faults caught: 1 of 1. Claimed pairs proven: 1 of 1")
                    && with_matrix.contains("<code>skip-pkce-verify</code>")
                    && with_matrix.contains("accepts any &lt;code_verifier&gt;")
                    && with_matrix.contains("<th>Audit check tripped</th>")
                    && with_matrix.contains("<code>audit.refusal-recorded</code>")
                    && with_matrix.contains("<th>Collateral</th>")
                    && with_matrix.contains("<code>token.no-store</code>")
                    && !html.contains("Sensitivity matrix"),
                || {
                    "the sensitivity matrix is not in report.html (or is in a run without one)"
                        .into()
                },
            )?;
            // report.json is unchanged: no transcript of passing steps.
            check(!json.to_string().contains("\"transcript\""), || {
                "report.json grew a transcript".into()
            })
        }),
        Trial::test(
            "cli::failing-run-writes-report-html-with-the-exchange",
            || {
                let out = temp_dir("report-html-fault");
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
                let html = std::fs::read_to_string(out.join("report.html"))
                    .map_err(|e| Failed::from(format!("report.html was not written: {e}")))?;
                let json: Value = serde_json::from_str(
                    &std::fs::read_to_string(out.join("report.json")).unwrap_or_default(),
                )
                .map_err(|e| Failed::from(e.to_string()))?;
                check_html(&html, &json)?;
                check(
                    html.contains(
                        r#"<details class="scenario st-fail" id="s-pkce.plain-refused" open>"#,
                    ),
                    || "the failing scenario is not shown open".into(),
                )?;
                let scenario_count = json["scenarios"]
                    .as_array()
                    .map(Vec::len)
                    .unwrap_or_default();
                check(html.matches("<svg").count() == scenario_count, || {
                    format!(
                        "{} diagrams for {scenario_count} scenarios",
                        html.matches("<svg").count()
                    )
                })?;
                check(html.contains("code_challenge_method=plain"), || {
                    "the failing authorization request is not in the transcript".into()
                })
            },
        ),
        Trial::test("cli::narrate-a-scenario", || {
            let output = conform(&["--narrate", "cc.token-bound"]);
            let out = String::from_utf8_lossy(&output.stdout).into_owned();
            check(code(&output) == 0, || {
                format!("exit {}: {}", code(&output), text(&output))
            })?;
            for wanted in [
                "→ POST http://127.0.0.1:",
                "/oauth/token",
                "form:",
                "← 200 OK",
                "authorization: Basic [redacted]",
                "client_id  agent-reporter",
                "Spec: RFC 6749 §4.4 <https://www.rfc-editor.org/rfc/rfc6749#section-4.4>",
                "RFC 8707 §2",
                "This step checks the requirement",
                "Verdict: PASS",
            ] {
                check(out.contains(wanted), || format!("no `{wanted}` in:\n{out}"))?;
            }
            check(!out.contains("eyJ"), || {
                format!("a JWT was printed:\n{out}")
            })?;
            check(
                out.lines()
                    .any(|l| l.contains("grant_type") && l.contains("client_credentials")),
                || format!("the grant type is not shown:\n{out}"),
            )?;
            check(!out.contains("reporter-secret"), || {
                "the client secret was printed".into()
            })
        }),
        Trial::test("cli::narrate-walkthroughs", || {
            // Not a terminal: --pause must not wait.
            let output = conform(&["--narrate", "autonomous-agent", "--pause"]);
            let out = String::from_utf8_lossy(&output.stdout).into_owned();
            check(code(&output) == 0, || {
                format!("exit {}: {}", code(&output), text(&output))
            })?;
            for w in harness::narrate::WALKTHROUGHS {
                for (id, _) in w.parts {
                    check(scenarios().iter().any(|s| s.id == *id), || {
                        format!("walkthrough {} names the unknown scenario {id}", w.name)
                    })?;
                }
            }
            let parts = harness::narrate::WALKTHROUGHS
                .iter()
                .find(|w| w.name == "autonomous-agent")
                .map(|w| w.parts.len())
                .unwrap_or_default();
            check(out.matches("Verdict: PASS").count() == parts, || {
                out.clone()
            })?;
            check(
                out.contains("outside this agent's allowed source ranges")
                    && out.contains("outside this agent's allowed time windows")
                    && out.contains("event connection.token.issued"),
                || out.clone(),
            )?;
            check(!out.contains("eyJ"), || "a JWT was printed".into())?;
            let unknown = conform(&["--narrate", "no-such-walkthrough"]);
            check(code(&unknown) == 2, || {
                format!("exit {}: {}", code(&unknown), text(&unknown))
            })
        }),
    ]
}
