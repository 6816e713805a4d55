//! Sequence diagrams of a scenario's exchanges, drawn by the harness as
//! inline SVG (no script, no external asset) for report.html.
//!
//! Participants are the parties: on the left the harness roles that sent the
//! requests (MCP client, user's browser, agent, admin…, from each step's
//! action), on the right what answered: the hub's admin or test-mode API
//! for a request one of the profile's recipes made (whatever its URL), and
//! from each other request's URL the hub's authorization server, each MCP
//! server (`/mcp/<name>` and its Protected Resource Metadata), and any other
//! host (the third-party provider during `connect`).

use std::fmt::Write as _;

use crate::http::Exchange;
use crate::recipe::Operation;
use crate::verdict::Status;

/// One step's exchanges, as the diagram draws them.
#[derive(Debug, Clone)]
pub struct DiagramStep<'a> {
    pub index: usize,
    /// The action's name (`register`, `token`…): decides who sent the requests.
    pub action: &'a str,
    pub status: Status,
    pub exchanges: Vec<&'a Exchange>,
    /// Exchanges of the step not drawn (the transcript keeps the first ones).
    pub omitted: usize,
}

const LANE_W: usize = 200;
const MARGIN: usize = 16;
const HEADER_H: usize = 54;
const ROW: usize = 22;
const STEP_ROW: usize = 22;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Lane {
    rank: u8,
    title: String,
    subtitle: String,
}

/// Escapes text for XML and HTML (text and attribute values).
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn origin(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

/// The origin of the hub, from its issuer (`http://127.0.0.1:8080/oauth` → `http://127.0.0.1:8080`).
pub fn hub_origin(issuer: &str) -> String {
    url::Url::parse(issuer)
        .map(|u| origin(&u))
        .unwrap_or_default()
}

fn actor_lane(action: &str) -> Lane {
    Lane {
        rank: 0,
        title: crate::steps::info(action).actor.to_owned(),
        subtitle: "harness".to_owned(),
    }
}

/// `/mcp/<name>` of a path, for the MCP server lanes.
fn mcp_server(path: &str) -> Option<String> {
    let rest = path
        .strip_prefix("/.well-known/oauth-protected-resource")
        .unwrap_or(path);
    let name = rest.strip_prefix("/mcp/")?.split('/').next()?;
    (!name.is_empty()).then(|| format!("/mcp/{name}"))
}

fn target_lane(exchange: &Exchange, hub: &str, action: &str) -> Lane {
    let Ok(parsed) = url::Url::parse(&exchange.url) else {
        return Lane {
            rank: 4,
            title: "unknown".into(),
            subtitle: String::new(),
        };
    };
    let here = origin(&parsed);
    let path = parsed.path();
    let host = match (parsed.host_str(), parsed.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => here.clone(),
    };
    // A recipe's request: the hub's admin or test-mode API, wherever it is.
    if let Some(operation) = exchange.operation.as_deref().and_then(Operation::by_name) {
        let title = if operation.is_test_mode() {
            "hub test-mode API"
        } else {
            "hub admin API"
        };
        let subtitle = if here == hub {
            let first = path
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or_default();
            format!("/{first}")
        } else {
            host
        };
        return Lane {
            rank: 2,
            title: title.into(),
            subtitle,
        };
    }
    if here == hub {
        if let Some(server) = mcp_server(path) {
            return Lane {
                rank: 3,
                title: "MCP server".into(),
                subtitle: server,
            };
        }
        return Lane {
            rank: 1,
            title: "hub".into(),
            subtitle: "authorization server".into(),
        };
    }
    Lane {
        rank: 4,
        title: crate::steps::info(action).elsewhere.into(),
        subtitle: host,
    }
}

/// `POST /oauth/token`, `GET /oauth/authorize?…`.
fn request_label(e: &Exchange) -> String {
    match url::Url::parse(&e.url) {
        Ok(u) => format!(
            "{} {}{}",
            e.method,
            u.path(),
            if u.query().is_some() { "?…" } else { "" }
        ),
        Err(_) => format!("{} {}", e.method, e.url),
    }
}

/// `200`, `400 invalid_grant`, `302 → /callback`, `✕ timed out`.
fn response_label(e: &Exchange) -> (String, &'static str) {
    let Some(status) = e.status else {
        let why = e.transport_error.as_deref().unwrap_or("no response");
        let short = if why.contains("timed out") {
            "timed out"
        } else if why.contains("connect") {
            "could not connect"
        } else {
            "transport error"
        };
        return (format!("✕ {short}"), "#cf222e");
    };
    let mut label = status.to_string();
    let error = e
        .response_body
        .as_deref()
        .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .and_then(|v| v.get("error").and_then(|x| x.as_str()).map(str::to_owned));
    if let Some(error) = error {
        label.push(' ');
        label.push_str(&error);
    }
    if (300..400).contains(&status) {
        let location = e
            .response_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("location"))
            .map(|(_, v)| v.as_str());
        if let Some(location) = location {
            let path = url::Url::parse(location)
                .map(|u| u.path().to_owned())
                .unwrap_or_else(|_| location.split('?').next().unwrap_or_default().to_owned());
            label.push_str(&format!(" → {path}"));
        }
    }
    let colour = match status {
        200..=299 => "#1a7f37",
        300..=399 => "#0969da",
        400..=499 => "#bc4c00",
        _ => "#cf222e",
    };
    (label, colour)
}

fn clip(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_owned()
    } else {
        let kept: String = text.chars().take(chars.saturating_sub(1)).collect();
        format!("{kept}…")
    }
}

/// One arrow with its label above it, from lane centre `x1` to `x2`.
fn arrow(
    out: &mut String,
    x1: usize,
    x2: usize,
    y: usize,
    label: &str,
    colour: &str,
    dashed: bool,
) {
    let (x1, x2) = (x1 as i64, x2 as i64);
    let dir = if x2 >= x1 { 1 } else { -1 };
    let tip = x2 - dir * 2;
    // The shaft, then the head: one path, stroked and filled in the arrow's colour.
    let _ = write!(
        out,
        r#"<path d="M{x1} {y}H{tip}M{tip} {y}l{} -4v8z" stroke="{colour}" fill="{colour}"{}/>"#,
        -dir * 8,
        if dashed {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        }
    );
    let room = ((x2 - x1).unsigned_abs() as usize / 6)
        .saturating_sub(2)
        .max(12);
    let _ = write!(
        out,
        r#"<text class="l" x="{}" y="{}" fill="{colour}">{}</text>"#,
        (x1 + x2) / 2,
        y - 5,
        esc(&clip(label, room))
    );
}

/// The sequence diagram of these steps' exchanges, as an `<svg>` element;
/// `None` when there is no exchange to draw.
pub fn sequence_svg(hub_origin: &str, steps: &[DiagramStep<'_>]) -> Option<String> {
    if steps.iter().all(|s| s.exchanges.is_empty()) {
        return None;
    }
    // Lanes, ranked (roles, hub, hub APIs, MCP servers, other hosts), then in order of appearance.
    let mut lanes: Vec<Lane> = Vec::new();
    let mut add = |lane: Lane| {
        if !lanes.contains(&lane) {
            lanes.push(lane);
        }
    };
    for step in steps.iter().filter(|s| !s.exchanges.is_empty()) {
        add(actor_lane(step.action));
        for e in &step.exchanges {
            add(target_lane(e, hub_origin, step.action));
        }
    }
    lanes.sort_by_key(|l| l.rank);
    let x = |lane: &Lane| -> usize {
        let i = lanes.iter().position(|l| l == lane).unwrap_or_default();
        MARGIN + LANE_W / 2 + i * LANE_W
    };
    let width = MARGIN * 2 + lanes.len() * LANE_W;

    let mut rows = String::new();
    let mut y = HEADER_H + 6;
    for step in steps.iter().filter(|s| !s.exchanges.is_empty()) {
        let height =
            STEP_ROW + step.exchanges.len() * 2 * ROW + if step.omitted > 0 { STEP_ROW } else { 0 };
        let failed = !matches!(step.status, Status::Pass | Status::Skip);
        if failed {
            let _ = write!(
                rows,
                r##"<rect x="0" y="{y}" width="{width}" height="{height}" fill="#cf222e" fill-opacity="0.08"/>"##
            );
        }
        let _ = write!(
            rows,
            r##"<line x1="0" y1="{y}" x2="{width}" y2="{y}" stroke="#d0d7de" stroke-dasharray="2 3"/><text x="4" y="{}" font-weight="600" fill="{}">step {} · {}{}</text>"##,
            y + 15,
            if failed { "#cf222e" } else { "#57606a" },
            step.index,
            esc(step.action),
            if failed {
                format!(" · {}", step.status.as_str().to_uppercase())
            } else {
                String::new()
            }
        );
        y += STEP_ROW;
        let from = x(&actor_lane(step.action));
        for e in &step.exchanges {
            let to = x(&target_lane(e, hub_origin, step.action));
            y += ROW;
            arrow(&mut rows, from, to, y, &request_label(e), "#24292f", false);
            y += ROW;
            let (label, colour) = response_label(e);
            arrow(&mut rows, to, from, y, &label, colour, true);
        }
        if step.omitted > 0 {
            y += STEP_ROW;
            let _ = write!(
                rows,
                r##"<text x="{}" y="{}" font-style="italic" fill="#57606a">… {} more exchange(s) not recorded</text>"##,
                from + 10,
                y - 6,
                step.omitted
            );
        }
        y += 6;
    }
    let height = y + 10;

    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="sequence" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="11" stroke-width="1.4" role="img" aria-label="sequence diagram"><style>svg.sequence text.l,svg.sequence text.c{{text-anchor:middle}}svg.sequence text.l{{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}}</style>"##
    );
    for lane in &lanes {
        let cx = x(lane);
        let fill = match lane.rank {
            0 => "#ddf4ff",
            1 | 2 => "#fff8c5",
            3 => "#dafbe1",
            _ => "#f6f8fa",
        };
        let _ = write!(
            svg,
            r##"<line x1="{cx}" y1="{}" x2="{cx}" y2="{}" stroke="#8c959f" stroke-dasharray="4 4"/><rect x="{}" y="6" width="{}" height="40" rx="6" fill="{fill}" stroke="#8c959f"/><text class="c" x="{cx}" y="23" font-weight="600" font-size="12">{}</text><text class="c" x="{cx}" y="38" fill="#57606a">{}</text>"##,
            HEADER_H - 8,
            height - 4,
            cx - LANE_W / 2 + 10,
            LANE_W - 20,
            esc(&clip(&lane.title, 30)),
            esc(&clip(&lane.subtitle, 32)),
        );
    }
    svg.push_str(&rows);
    svg.push_str("</svg>");
    Some(svg)
}
