//! `cli::*`: the `conform` binary's exit codes, baselines, profiles and bad targets.

use std::time::{Duration, Instant};

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::support::*;

pub fn cli_trials() -> Vec<Trial> {
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
        Trial::test("cli::variant-runs-and-unknown-variant-exits-2", || {
            let out = temp_dir("variant");
            let output = conform(&[
                "--variant",
                "invalid-client-400",
                "--scenario",
                "agent.assertion-expired",
                "--out",
                out.to_str().unwrap_or_default(),
            ]);
            check(code(&output) == 0, || {
                format!("exit {}: {}", code(&output), text(&output))
            })?;
            check(
                text(&output).contains("allowed answer: step 2: status 400"),
                || format!("the variant's answer is not reported: {}", text(&output)),
            )?;
            let unknown = conform(&["--variant", "no-such-variant"]);
            check(code(&unknown) == 2, || {
                format!("exit {}: {}", code(&unknown), text(&unknown))
            })?;
            check(
                text(&unknown).contains("unknown variant `no-such-variant`")
                    && text(&unknown).contains("invalid-client-400"),
                || text(&unknown),
            )
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
        Trial::test(
            "cli::target-profile-with-base-gives-the-same-verdicts",
            || {
                // The file's `base` names no server: `--base` moves it to the hub.
                let dir = temp_dir("profile");
                let (hub, path) = separate_hub(&dir, |profile| profile)?;
                let origin = hub.profile.base.clone().unwrap_or_default();
                let moved = std::fs::read_to_string(&path).unwrap_or_default().replace(
                    &format!("base = \"{origin}\""),
                    "base = \"http://127.0.0.1:9\"",
                );
                std::fs::write(&path, moved).map_err(|e| Failed::from(e.to_string()))?;
                let output = conform(&[
                    "--target",
                    path.to_str().unwrap_or_default(),
                    "--base",
                    &origin,
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
                // All but the scenarios whose requirement the latest MCP revision lacks.
                let applicable = scenarios()
                    .iter()
                    .filter(|s| s.under(harness::revision::Revision::LATEST).is_ok())
                    .count() as u64;
                check(
                    total == scenarios().len() as u64 && pass == applicable,
                    || format!("{pass}/{total} passed, {applicable} apply"),
                )
            },
        ),
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
