//! `revisions::*`: judging by one MCP revision, or each (`conform --spec`).
//!
//! * docs/revisions.md holds the table the scenario files give;
//! * under a revision that lacks a requirement, its scenario is `skip` with why;
//! * a scenario's level and reference follow the revision;
//! * `--spec all` writes each revision's reports and the matrix;
//! * the MCP client (rmcp's) speaks each revision on the wire: `initialize`
//!   offering it up to 2025-11-25, `server/discover` and per-request
//!   `_meta` and headers from 2026-07-28;
//! * the 2026-07-28 transport checks pass an MCP server the hub did not
//!   frame: the Agenda server, on rmcp's own implementation of the revision.

use harness::engine::{run_scenario, RunOptions};
use harness::revision::Revision;
use harness::verdict::{Level, Status};
use libtest_mimic::{Failed, Trial};

use crate::support::*;

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("revisions::doc-is-current", doc_is_current),
        Trial::test("revisions::absent-is-skipped-with-why", absent_is_skipped),
        Trial::test("revisions::level-follows-the-revision", level_follows),
        Trial::test(
            "revisions::spec-all-writes-the-matrix",
            spec_all_writes_matrix,
        ),
        Trial::test(
            "revisions::mcp-client-speaks-each-revision",
            mcp_client_speaks_each_revision,
        ),
        Trial::test(
            "revisions::transport-checks-pass-rmcp",
            transport_checks_pass_rmcp,
        ),
    ]
}

fn scenario(id: &str) -> Result<harness::scenario::Scenario, Failed> {
    scenarios()
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| Failed::from(format!("no scenario {id}")))
}

fn doc_is_current() -> Result<(), Failed> {
    let doc = std::fs::read_to_string(root().join("docs/revisions.md"))?;
    let marker = "<!-- generated -->\n";
    let generated = doc
        .split_once(marker)
        .map(|(_, table)| table)
        .ok_or("docs/revisions.md lacks its `<!-- generated -->` marker")?;
    let table = harness::revision_matrix::requirements_table(&scenarios());
    check(generated == table, || {
        "docs/revisions.md is out of date: regenerate it as its header says \
         (`conform --list --spec all`)"
            .into()
    })
}

fn absent_is_skipped() -> Result<(), Failed> {
    let ping = scenario("resource.ping-answered")?;
    let profile = shared_target();
    let options = RunOptions::new(true).under(Revision::R2026_07_28);
    let result = runtime().block_on(run_scenario(profile, &ping, &options));
    check(result.status == Status::Skip, || {
        format!("ping under 2026-07-28 should skip: {:?}", result.status)
    })?;
    let reason = result.reason.unwrap_or_default();
    check(
        reason.contains("not in MCP 2026-07-28") && reason.contains("ping"),
        || format!("the reason should name the revision and why: {reason}"),
    )?;
    let older = RunOptions::new(true).under(Revision::R2025_11_25);
    let result = runtime().block_on(run_scenario(profile, &ping, &older));
    check(result.status == Status::Pass, || {
        format!(
            "ping under 2025-11-25 should pass: {:?} {:?}",
            result.status, result.reason
        )
    })
}

fn level_follows() -> Result<(), Failed> {
    let challenge = scenario("prm.challenge-names-metadata")?;
    for (revision, level) in [
        (Revision::R2025_06_18, Level::Must),
        (Revision::R2025_11_25, Level::Info),
        (Revision::R2026_07_28, Level::Info),
    ] {
        let resolved = challenge.under(revision).map_err(Failed::from)?;
        check(resolved.level == level, || {
            format!("{revision}: level {:?}, expected {level:?}", resolved.level)
        })?;
        let cites = resolved
            .refs
            .iter()
            .filter(|r| r.url.contains("modelcontextprotocol.io"))
            .collect::<Vec<_>>();
        check(
            cites.len() == 1 && cites[0].url.contains(revision.as_str()),
            || format!("{revision}: should cite its own text: {cites:?}"),
        )?;
    }
    Ok(())
}

fn spec_all_writes_matrix() -> Result<(), Failed> {
    let out = temp_dir("spec-all");
    let dir = out.to_string_lossy().to_string();
    let output = conform(&[
        "--scenario",
        "resource.ping-*",
        "--spec",
        "all",
        "--out",
        &dir,
    ]);
    check(code(&output) == 0, || {
        format!("conform failed: {}", text(&output))
    })?;
    let summary = std::fs::read_to_string(out.join("summary.md"))?;
    check(
        summary.contains("| `resource.ping-answered` ◆ | PASS (MUST) | PASS (MUST) | n/a |"),
        || format!("the matrix row is not as expected:\n{summary}"),
    )?;
    for revision in Revision::ALL {
        let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
            out.join(revision.as_str()).join("report.json"),
        )?)?;
        check(report["revision"] == revision.as_str(), || {
            format!("{revision}/report.json names {}", report["revision"])
        })?;
    }
    let html = std::fs::read_to_string(out.join("report.html"))?;
    check(
        html.contains(r#"<a href="2025-06-18/report.html#s-resource.ping-answered">"#),
        || "report.html should link each cell to its revision's report".into(),
    )?;
    let one = conform(&[
        "--scenario",
        "resource.ping-*",
        "--spec",
        "2026-07-28",
        "--out",
        &dir,
    ]);
    check(code(&one) == 0 && text(&one).contains("SKIP"), || {
        format!("under 2026-07-28 ping is skipped: {}", text(&one))
    })?;
    let bad = conform(&["--spec", "2024-11-05", "--list"]);
    check(
        code(&bad) == 2 && text(&bad).contains("unknown MCP revision `2024-11-05`"),
        || format!("an unknown revision is a usage error: {}", text(&bad)),
    )
}

/// The `transport.*` scenarios, pointed at the Agenda server instead of the
/// hub's own endpoint, pass: the checks take the answers of an independent
/// implementation of MCP 2026-07-28 (rmcp), not only the hub's.
fn transport_checks_pass_rmcp() -> Result<(), Failed> {
    let dir = temp_dir("transport-rmcp");
    let mut count = 0;
    for entry in std::fs::read_dir(root().join("scenarios/transport"))? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?
            .replace("resource = \"primary\"", "resource = \"agenda\"")
            .replace("\"resources.primary\"", "\"resources.agenda\"");
        let copy = dir.join(path.file_name().ok_or("a file name")?);
        std::fs::write(&copy, text)?;
        count += 1;
    }
    check(count >= 6, || format!("only {count} transport scenarios"))?;
    let scenarios = harness::scenario::load_dir(&dir).map_err(|e| Failed::from(e.to_string()))?;
    let options = RunOptions::new(true).under(Revision::R2026_07_28);
    for scenario in &scenarios {
        let result = runtime().block_on(run_scenario(shared_target(), scenario, &options));
        check(result.status == Status::Pass, || {
            format!(
                "{} against the Agenda server: {:?} {:?}",
                scenario.id, result.status, result.reason
            )
        })?;
    }
    Ok(())
}

/// A tool call at the Agenda server under each revision: the first MCP
/// exchange is the revision's opening, and every modern request carries its
/// version in the header and in `_meta`.
fn mcp_client_speaks_each_revision() -> Result<(), Failed> {
    let call = scenario("connection.agenda-insufficient-scope")?;
    for revision in Revision::ALL {
        let options = RunOptions::new(true).under(revision);
        let result = runtime().block_on(run_scenario(shared_target(), &call, &options));
        check(result.status == Status::Pass, || {
            format!(
                "{} under {revision}: {:?} {:?}",
                call.id, result.status, result.reason
            )
        })?;
        let mcp: Vec<_> = result
            .steps
            .iter()
            .filter(|s| s.action == "mcp_tool")
            .flat_map(|s| s.transcript.exchanges.iter().map(|r| &r.exchange))
            .collect();
        let body = |i: usize| -> serde_json::Value {
            mcp.get(i)
                .and_then(|e| e.request_body.as_deref())
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or_default()
        };
        let header = |i: usize, name: &str| {
            mcp.get(i).and_then(|e| {
                e.request_headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            })
        };
        let opening = body(0);
        if revision.is_stateless() {
            check(opening["method"] == "server/discover", || {
                format!("under {revision} the client opened with {opening}")
            })?;
            for i in 0..mcp.len() {
                let sent = body(i);
                check(
                    sent["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"]
                        == revision.as_str()
                        && header(i, "mcp-protocol-version").as_deref() == Some(revision.as_str())
                        && header(i, "mcp-method").as_deref() == sent["method"].as_str(),
                    || format!("under {revision} request {i} lacks its metadata: {sent}"),
                )?;
            }
        } else {
            check(
                opening["method"] == "initialize"
                    && opening["params"]["protocolVersion"] == revision.as_str(),
                || format!("under {revision} the client opened with {opening}"),
            )?;
        }
    }
    Ok(())
}
