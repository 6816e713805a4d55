//! report.html: the run for people. One self-contained file (inline CSS and
//! SVG, no script, no external asset): the verdicts, the sensitivity matrix
//! when the run had one, and per scenario its requirement with spec links,
//! the audit check, a sequence diagram of its exchanges, the HTTP transcript
//! (secrets redacted, long bodies cut) and the decoded claims of every JWT
//! the exchanges carried (never the token itself).

use std::fmt::Write as _;

use crate::diagram::{esc, hub_origin, sequence_svg, DiagramStep};
use crate::engine::{ScenarioResult, StepResult};
use crate::report::RunReport;
use crate::sensitivity::{Coverage, Matrix};
use crate::transcript::{mask_jwts, Recorded};
use crate::verdict::Status;

/// Characters of a body shown for a step that passed (a failing step shows all the transcript kept).
const PASSING_BODY: usize = 1024;
/// Characters of an HTML page (login, consent) shown for a step that passed.
const PASSING_PAGE: usize = 400;

/// GET responses already shown (URL and body): metadata documents and JWK
/// Sets are fetched in nearly every scenario, and shown once.
type Seen = std::collections::HashSet<(String, String)>;

/// Headers that say nothing about the protocol.
const QUIET_HEADERS: &[&str] = &[
    "user-agent",
    "accept-encoding",
    "content-length",
    "date",
    "connection",
    "host",
    "vary",
    "transfer-encoding",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
];

const STYLE: &str = r#"
:root{--pass:#1a7f37;--fail:#cf222e;--warn:#9a6700;--info:#0969da;--skip:#57606a;--error:#8250df;--line:#d0d7de;--muted:#57606a}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;padding:16px 24px;color:#24292f}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:#f6f8fa;border:1px solid var(--line);border-radius:6px;padding:8px;white-space:pre-wrap;word-break:break-all;margin:4px 0;max-height:28em;overflow:auto}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:3px 8px;border-bottom:1px solid var(--line);vertical-align:top}
.badge{display:inline-block;min-width:3.6em;text-align:center;border-radius:10px;padding:0 6px;color:#fff;font-weight:600;font-size:12px}
.pass{background:var(--pass)}.fail{background:var(--fail)}.warn{background:var(--warn)}.info{background:var(--info)}.skip{background:var(--skip)}.error{background:var(--error)}
.level{font-size:11px;color:var(--muted);border:1px solid var(--line);border-radius:4px;padding:0 4px}
details.scenario{border:1px solid var(--line);border-radius:8px;margin:8px 0;padding:0 12px}
details.scenario>summary{cursor:pointer;padding:8px 0;font-weight:500}
details.scenario.st-fail,details.scenario.st-error{border-color:var(--fail)}
blockquote{margin:6px 0;padding:4px 12px;border-left:4px solid var(--line);color:#32383f}
blockquote footer{font-size:12px;color:var(--muted)}
.reason{color:var(--fail);font-weight:500}
.muted{color:var(--muted)}
figure{margin:8px 0;overflow-x:auto}figure svg{max-width:none;height:auto;background:#fff}
ol.steps{padding-left:20px}ol.steps>li{margin:6px 0}
details.exchange{margin:4px 0 4px 8px}details.exchange>summary{cursor:pointer;font:12px ui-monospace,Menlo,monospace}
.claims{margin-left:8px}.claims h4{margin:4px 0;font-size:12px}
"#;

fn badge(status: Status) -> String {
    format!(
        r#"<span class="badge {}">{}</span>"#,
        status.as_str(),
        status.as_str().to_uppercase()
    )
}

/// A spec link when the reference is a web address; repository paths stay text.
fn spec_link(id: &str, url: &str) -> String {
    if url.starts_with("https://") || url.starts_with("http://") {
        format!(r#"<a href="{}">{}</a>"#, esc(url), esc(id))
    } else {
        format!(
            r#"{} <span class="muted">(<code>{}</code> in the conform repository)</span>"#,
            esc(id),
            esc(url)
        )
    }
}

fn clip(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} bytes not shown]", &text[..end], text.len() - end)
}

fn pretty_body(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .filter(|v| v.is_object() || v.is_array())
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| body.to_owned())
}

fn headers_text(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .filter(|(k, _)| !QUIET_HEADERS.contains(&k.to_ascii_lowercase().as_str()))
        .map(|(k, v)| format!("{k}: {}\n", mask_jwts(v)))
        .collect()
}

fn exchange_html(r: &Recorded, passed: bool, seen: &mut Seen) -> String {
    let e = &r.exchange;
    let limit = if passed { PASSING_BODY } else { usize::MAX };
    let status = match e.status {
        Some(s) => s.to_string(),
        None => "✕".into(),
    };
    let path = url::Url::parse(&e.url)
        .map(|u| u.path().to_owned())
        .unwrap_or_else(|_| e.url.clone());
    let mut out = format!(
        r#"<details class="exchange"{}><summary>{} {} → {}</summary>"#,
        if passed { "" } else { " open" },
        esc(&e.method),
        esc(&path),
        esc(&status)
    );
    let mut request = format!(
        "{} {}\n{}",
        e.method,
        mask_jwts(&e.url),
        headers_text(&e.request_headers)
    );
    if let Some(body) = &e.request_body {
        request.push('\n');
        request.push_str(&clip(&mask_jwts(body), limit));
    }
    let _ = write!(out, "<pre>{}</pre>", esc(&request));
    let response = match e.status {
        Some(s) => {
            let reason = reqwest::StatusCode::from_u16(s)
                .ok()
                .and_then(|c| c.canonical_reason())
                .unwrap_or_default();
            let mut text = format!("HTTP {s} {reason}\n{}", headers_text(&e.response_headers));
            if let Some(body) = &e.response_body {
                text.push('\n');
                let page = body.trim_start().starts_with('<');
                if e.method == "GET" && !seen.insert((e.url.clone(), body.clone())) {
                    text.push_str("(the same body as this URL's first response in this report)");
                } else if passed && page {
                    text.push_str(&clip(&mask_jwts(body), PASSING_PAGE));
                } else {
                    text.push_str(&clip(&pretty_body(&mask_jwts(body)), limit));
                }
            }
            text
        }
        None => format!(
            "no response: {}",
            e.transport_error.as_deref().unwrap_or("transport error")
        ),
    };
    let _ = write!(out, "<pre>{}</pre>", esc(&response));
    for t in &r.tokens {
        let claims = serde_json::to_string_pretty(&t.claims).unwrap_or_default();
        let header = serde_json::to_string(&t.header).unwrap_or_default();
        let _ = write!(
            out,
            r#"<div class="claims"><h4>JWT in the {}: decoded claims (unverified; the token is never shown)</h4><pre>header {}
{}</pre></div>"#,
            esc(&t.place),
            esc(&mask_jwts(&header)),
            esc(&mask_jwts(&claims))
        );
    }
    out.push_str("</details>");
    out
}

fn step_html(step: &StepResult, seen: &mut Seen) -> String {
    let info = crate::steps::info(&step.action);
    let passed = matches!(step.status, Status::Pass | Status::Skip);
    let mut out = format!(
        r#"<li>{} <b>{}</b> <span class="muted">by the {}{}</span>"#,
        badge(step.status),
        esc(&step.action),
        esc(info.actor),
        if step.setup { " · setup" } else { "" }
    );
    for m in &step.messages {
        let _ = write!(out, r#"<div class="reason">{}</div>"#, esc(&mask_jwts(m)));
    }
    for r in &step.transcript.exchanges {
        out.push_str(&exchange_html(r, passed, seen));
    }
    if step.transcript.omitted > 0 {
        let _ = write!(
            out,
            r#"<div class="muted">… {} more exchange(s) of this step not recorded</div>"#,
            step.transcript.omitted
        );
    }
    out.push_str("</li>");
    out
}

fn scenario_html(r: &ScenarioResult, hub: &str, seen: &mut Seen) -> String {
    let open = !matches!(r.status, Status::Pass | Status::Skip);
    let mut out = format!(
        r#"<details class="scenario st-{}" id="s-{}"{}><summary>{} <span class="level">{}</span> <code>{}</code> {}</summary>"#,
        r.status.as_str(),
        esc(&r.id),
        if open { " open" } else { "" },
        badge(r.status),
        r.level.as_str(),
        esc(&r.id),
        esc(&r.title)
    );
    if let Some(reason) = &r.reason {
        let _ = write!(out, r#"<p class="reason">{}</p>"#, esc(&mask_jwts(reason)));
    }
    for x in &r.refs {
        let _ = write!(
            out,
            "<blockquote><p>“{}”</p><footer>{}</footer></blockquote>",
            esc(&x.quote),
            spec_link(&x.id, &x.url)
        );
    }
    let _ = write!(
        out,
        r#"<p class="muted">{} ms · catches the reference hub's fault(s) {}</p>"#,
        r.duration_ms,
        r.catches
            .iter()
            .map(|c| format!("<code>{}</code>", esc(c)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(audit) = &r.audit {
        let source = serde_json::to_value(audit.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<p>Audit check {} · {} events read, {} expected · source <code>{}</code>{}</p>",
            badge(audit.status),
            audit.events_read,
            audit.events_expected,
            esc(&source),
            audit
                .endpoint
                .as_deref()
                .map(|e| format!(" at <code>{}</code>", esc(e)))
                .unwrap_or_default()
        );
        if !audit.messages.is_empty() {
            out.push_str("<ul>");
            for m in &audit.messages {
                let _ = write!(out, "<li>{}</li>", esc(&mask_jwts(m)));
            }
            out.push_str("</ul>");
        }
    }
    let steps: Vec<DiagramStep<'_>> = r
        .steps
        .iter()
        .map(|s| DiagramStep {
            index: s.index,
            action: &s.action,
            status: s.status,
            exchanges: s.transcript.exchanges.iter().map(|x| &x.exchange).collect(),
            omitted: s.transcript.omitted,
        })
        .collect();
    if let Some(svg) = sequence_svg(hub, &steps) {
        let count: usize = steps.iter().map(|s| s.exchanges.len()).sum();
        let _ = write!(
            out,
            "<figure>{svg}<figcaption class=\"muted\">The scenario's {count} HTTP exchange(s), drawn by the harness.</figcaption></figure>"
        );
    }
    if !r.steps.is_empty() {
        out.push_str(r#"<ol class="steps">"#);
        for s in &r.steps {
            out.push_str(&step_html(s, seen));
        }
        out.push_str("</ol>");
    }
    out.push_str("</details>");
    out
}

fn sensitivity_html(m: &Matrix) -> String {
    let full = m.coverage == Coverage::Full;
    let mut out = format!(
        r#"<section id="sensitivity"><h2>Sensitivity matrix</h2><p>Every check can fail: the suite ran against the clean reference hub and once per named fault, {}. A claim is proven only when the scenario's own requirement fails; the audit check is a column of its own. {}</p>"#,
        if full {
            "running every scenario under every fault"
        } else {
            "running the scenarios that claim it"
        },
        esc(&m.headline())
    );
    out.push_str("<table><tr><th>Fault</th><th>Caught</th><th>What it breaks</th><th>Claimed by</th><th>Audit check tripped</th>");
    if full {
        out.push_str("<th>Collateral</th>");
    }
    out.push_str("</tr>");
    let codes = |ids: &[String]| {
        ids.iter()
            .map(|c| format!("<code>{}</code>", esc(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for r in &m.rows {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td class=\"muted\">{}</td>",
            esc(&r.fault),
            if r.caught {
                badge(Status::Pass).replace("PASS", "yes")
            } else {
                badge(Status::Fail).replace("FAIL", "NO")
            },
            esc(&r.description),
            codes(&r.claimed_by),
            codes(&r.audit_tripped),
        );
        if full {
            let _ = write!(out, "<td class=\"muted\">{}</td>", codes(&r.collateral));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    if !m.variants.is_empty() {
        out.push_str(r#"<h3>Acceptance of allowed answers</h3><p>Each variant is a compliant hub giving another answer a standard allows; the scenarios that name it must pass with that answer.</p><table><tr><th>Variant</th><th>Accepted</th><th>What it answers</th><th>Scenarios and the answer they saw</th></tr>"#);
        for v in &m.variants {
            let mut seen: Vec<String> = v.accepted_by.iter().map(|a| esc(a)).collect();
            seen.extend(
                v.refused_by
                    .iter()
                    .map(|id| format!("{} refused it", esc(id))),
            );
            seen.extend(
                v.unexercised_by
                    .iter()
                    .map(|id| format!("{} saw the clean hub's answer", esc(id))),
            );
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&v.variant),
                if v.proven {
                    badge(Status::Pass).replace("PASS", "yes")
                } else {
                    badge(Status::Fail).replace("FAIL", "NO")
                },
                esc(&v.description),
                seen.join("<br>"),
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</section>");
    out
}

/// The whole report.html; `sensitivity` when the run computed the matrix.
pub fn render(report: &RunReport, sensitivity: Option<&Matrix>) -> String {
    let s = &report.summary;
    let hub = hub_origin(&report.target.issuer);
    let mut out = format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>conform report: {}</title><style>{STYLE}</style></head>
<body><header><h1>conform report: {}</h1><p>Issuer <code>{}</code>{} · MCP {} · {} · {}{} · {} ms</p>
<p>{} {} {} {} {} {} of {} scenarios · gate <b>{}</b></p></header>
"#,
        esc(&report.target.name),
        esc(&report.target.name),
        esc(&report.target.issuer),
        if report.target.embedded {
            " (embedded)"
        } else {
            ""
        },
        report.revision,
        esc(&report.tool),
        esc(report.schema),
        if report.strict { " · strict" } else { "" },
        report.duration_ms,
        badge_count(Status::Pass, s.pass),
        badge_count(Status::Fail, s.fail),
        badge_count(Status::Warn, s.warn),
        badge_count(Status::Info, s.info),
        badge_count(Status::Skip, s.skip),
        badge_count(Status::Error, s.error),
        s.total,
        if report.gate_passed {
            "passed"
        } else {
            "FAILED"
        },
    );
    if let Some(b) = &report.baseline {
        let _ = write!(
            out,
            "<p>Baseline: expected failures still failing {}, new failures {}, stale entries (now passing) {}.</p>",
            esc(&b.still_failing.join(", ")),
            esc(&b.new_failures.join(", ")),
            esc(&b.stale.join(", "))
        );
    }
    if let Some(m) = sensitivity {
        out.push_str(&sensitivity_html(m));
    }
    out.push_str(r#"<section id="index"><h2>Scenarios</h2><table><tr><th>Status</th><th>Level</th><th>Scenario</th><th>Reference</th></tr>"#);
    for r in &report.scenarios {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td><a href=\"#s-{}\"><code>{}</code></a> {}</td><td>{}</td></tr>",
            badge(r.status),
            r.level.as_str(),
            esc(&r.id),
            esc(&r.id),
            esc(&r.title),
            r.refs
                .iter()
                .map(|x| spec_link(&x.id, &x.url))
                .collect::<Vec<_>>()
                .join("<br>")
        );
    }
    out.push_str("</table></section><section id=\"details\"><h2>Details</h2>");
    let mut seen = Seen::new();
    for r in &report.scenarios {
        out.push_str(&scenario_html(r, &hub, &mut seen));
    }
    let _ = writeln!(
        out,
        r#"</section><footer class="muted"><p>Transcripts hold every exchange of every step (the first {} of a step; bodies cut at {} bytes, and for steps that passed at {}, or {} for HTML pages; a document fetched again is shown once). Every secret the harness saw is replaced by <code>[redacted]</code>, <code>Authorization</code> and <code>Cookie</code> headers keep only their scheme, and tokens appear only as their decoded claims. report.json has the same verdicts, with the exchanges of failing steps.</p></footer></body></html>"#,
        crate::transcript::MAX_EXCHANGES,
        crate::transcript::BODY_LIMIT,
        PASSING_BODY,
        PASSING_PAGE
    );
    out
}

fn badge_count(status: Status, n: usize) -> String {
    format!(
        r#"<span class="badge {}">{n} {}</span>"#,
        status.as_str(),
        status.as_str()
    )
}

/// The report of the clean run of a sensitivity matrix, with the matrix.
pub fn render_sensitivity(matrix: &Matrix) -> Option<String> {
    matrix.clean_run.as_ref().map(|r| render(r, Some(matrix)))
}

/// report.html of `conform --spec all`: each revision's gate and the
/// scenario × revision matrix; every cell links to the scenario in that
/// revision's own report.
pub fn render_revisions(m: &crate::revision_matrix::RevisionMatrix) -> String {
    let mut out = format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>conform by MCP revision: {}</title><style>{STYLE}</style></head>
<body><header><h1>conform by MCP revision: {}</h1><p>Issuer <code>{}</code> · one run per revision</p></header>
<section id="revisions"><table><tr><th>Revision</th><th>Gate</th><th>Applicable</th><th>Failed</th></tr>"#,
        esc(&m.target),
        esc(&m.target),
        esc(&m.issuer)
    );
    for c in &m.revisions {
        let _ = write!(
            out,
            r#"<tr><td><a href="{r}/report.html">{r}</a></td><td><b>{}</b></td><td>{}</td><td>{}</td></tr>"#,
            if c.gate_passed { "passed" } else { "FAILED" },
            c.applicable,
            c.failed,
            r = c.revision
        );
    }
    out.push_str(r#"</table></section><section id="matrix"><h2>Scenario × revision</h2><p class="muted">n/a: the requirement is not in that revision.</p><table><tr><th>Scenario</th>"#);
    for c in &m.revisions {
        let _ = write!(out, "<th>{}</th>", c.revision);
    }
    out.push_str("</tr>");
    for row in &m.rows {
        let _ = write!(
            out,
            "<tr><td><code>{}</code> {}</td>",
            esc(&row.id),
            esc(&row.title)
        );
        for (cell, column) in row.cells.iter().zip(&m.revisions) {
            match cell {
                Some(c) => {
                    let _ = write!(
                        out,
                        r#"<td><a href="{}/report.html#s-{}">{}</a> <span class="level">{}</span></td>"#,
                        column.revision,
                        esc(&row.id),
                        badge(c.status),
                        c.level.as_str()
                    );
                }
                None => out.push_str(r#"<td class="muted">n/a</td>"#),
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</table></section></body></html>\n");
    out
}
