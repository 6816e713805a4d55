//! `html::*` and `narrate::*`: report.html (verdicts, diagrams, transcripts,
//! the sensitivity matrix) and `conform --narrate`.

use std::sync::Arc;

use harness::engine::{run_all, RunOptions};
use harness::scenario::Scenario;
use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::support::*;

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
        operation: None,
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

/// Whether `text` holds a compact JWS: `eyJ…` (a base64url JSON header), a dot,
/// a payload and another dot. A bare `eyJ` is not enough: random base64url
/// values the harness sends (a `state`, a PKCE verifier) hold it by chance.
fn holds_jwt(text: &str) -> bool {
    let segment = |s: &str| {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(s.len())
    };
    text.match_indices("eyJ").any(|(at, _)| {
        let header = &text[at..];
        let header_end = segment(header);
        let Some(payload) = header[header_end..].strip_prefix('.') else {
            return false;
        };
        let payload_end = segment(payload);
        payload_end > 0 && payload[payload_end..].starts_with('.')
    })
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
    check(!holds_jwt(html), || "a JWT is in report.html".into())?;
    check(
        !html.contains("alice-password")
            && !html.contains("euSlRbqh6T69AmeW5x8AoQ6WQtXybpSSYlI0BRcWwfE"),
        || "a password or client secret is in report.html".into(),
    )?;
    check(!html.contains("<script"), || {
        "report.html has a <script> element (nothing escaped it?)".into()
    })
}

pub fn html_and_narration_trials() -> Vec<Trial> {
    vec![
        Trial::test("report::jwt-detector", || {
            check(
                holds_jwt("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln end")
                    && !holds_jwt("state=FOHIgRW9P2meyJEnLNexAA&amp;code=x")
                    && !holds_jwt("eyJ. and eyJabc."),
                || "holds_jwt misjudges a JWT or a random value".into(),
            )
        }),
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
            // A recipe's request is drawn at the hub's admin API.
            let policy = harness::http::Exchange {
                operation: Some("create_policy".into()),
                ..exchange(
                    "POST",
                    "http://127.0.0.1:8080/admin/policies",
                    Some(201),
                    Some("{}"),
                )
            };
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
                &RunOptions::new(true),
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
                revision: harness::revision::Revision::LATEST,
                strict: true,
                duration_ms: 0,
                summary: harness::report::Summary::of(&results),
                gate_passed: true,
                baseline: None,
                scenarios: results.clone(),
            };
            let dir = temp_dir("report-html");
            harness::artifacts::write_run(&report, &dir)
                .map_err(|e| Failed::from(e.to_string()))?;
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
                variants: vec![harness::acceptance::VariantRow {
                    variant: "invalid-client-400".into(),
                    description: "answers <400>".into(),
                    named_by: vec!["agent.assertion-expired".into()],
                    accepted_by: vec!["agent.assertion-expired: step 2: status 400".into()],
                    refused_by: Vec::new(),
                    unexercised_by: Vec::new(),
                    proven: true,
                }],
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
                    && with_matrix.contains("Variants accepted: 1 of 1")
                    && with_matrix.contains("<code>invalid-client-400</code>")
                    && with_matrix.contains("answers &lt;400&gt;")
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
            check(!holds_jwt(&out), || format!("a JWT was printed:\n{out}"))?;
            check(
                out.lines()
                    .any(|l| l.contains("grant_type") && l.contains("client_credentials")),
                || format!("the grant type is not shown:\n{out}"),
            )?;
            check(
                !out.contains("euSlRbqh6T69AmeW5x8AoQ6WQtXybpSSYlI0BRcWwfE"),
                || "the client secret was printed".into(),
            )
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
            check(!holds_jwt(&out), || "a JWT was printed".into())?;
            let unknown = conform(&["--narrate", "no-such-walkthrough"]);
            check(code(&unknown) == 2, || {
                format!("exit {}: {}", code(&unknown), text(&unknown))
            })
        }),
    ]
}
