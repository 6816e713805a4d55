//! `conform --spec all`: one run per MCP revision, and the matrix of
//! scenario × revision → verdict, so an implementer sees at a glance which
//! revision their server meets. Each revision's full reports sit beside it
//! in a directory named for the revision.

use std::fmt::Write;

use serde::Serialize;

use crate::report::RunReport;
use crate::revision::Revision;
use crate::scenario::Scenario;
use crate::verdict::{Level, Status};

/// The verdicts of several runs of one target, one per revision.
#[derive(Debug, Clone, Serialize)]
pub struct RevisionMatrix {
    pub target: String,
    pub issuer: String,
    pub revisions: Vec<RevisionColumn>,
    pub rows: Vec<MatrixRow>,
}

/// One revision's run, summed up.
#[derive(Debug, Clone, Serialize)]
pub struct RevisionColumn {
    pub revision: Revision,
    pub gate_passed: bool,
    /// Scenarios that apply under the revision, and how many of them failed
    /// (or errored).
    pub applicable: usize,
    pub failed: usize,
}

/// One scenario across the revisions.
#[derive(Debug, Clone, Serialize)]
pub struct MatrixRow {
    pub id: String,
    pub title: String,
    /// In the revisions' order: the verdict and level, or `None` where the
    /// requirement is not in that revision.
    pub cells: Vec<Option<MatrixCell>>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct MatrixCell {
    pub status: Status,
    pub level: Level,
}

impl RevisionMatrix {
    /// The matrix of the runs of `scenarios`, one report per revision. Where
    /// a requirement is not in a revision comes from the scenario files
    /// (`Scenario::under`), not from the runs' skip reasons.
    pub fn of(reports: &[RunReport], scenarios: &[Scenario]) -> RevisionMatrix {
        let not_in = |id: &str, revision: Revision| {
            scenarios
                .iter()
                .find(|s| s.id == id)
                .is_some_and(|s| !s.revisions().contains(&revision))
        };
        let revisions = reports
            .iter()
            .map(|report| {
                let applicable: Vec<_> = report
                    .scenarios
                    .iter()
                    .filter(|r| !not_in(&r.id, report.revision))
                    .collect();
                RevisionColumn {
                    revision: report.revision,
                    gate_passed: report.gate_passed,
                    applicable: applicable.len(),
                    failed: applicable
                        .iter()
                        .filter(|r| matches!(r.status, Status::Fail | Status::Error))
                        .count(),
                }
            })
            .collect();
        let rows = reports
            .first()
            .map(|first| {
                first
                    .scenarios
                    .iter()
                    .map(|scenario| MatrixRow {
                        id: scenario.id.clone(),
                        title: scenario.title.clone(),
                        cells: reports
                            .iter()
                            .map(|report| {
                                report
                                    .scenarios
                                    .iter()
                                    .find(|r| {
                                        r.id == scenario.id && !not_in(&r.id, report.revision)
                                    })
                                    .map(|r| MatrixCell {
                                        status: r.status,
                                        level: r.level,
                                    })
                            })
                            .collect(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (target, issuer) = reports
            .first()
            .map(|r| (r.target.name.clone(), r.target.issuer.clone()))
            .unwrap_or_default();
        RevisionMatrix {
            target,
            issuer,
            revisions,
            rows,
        }
    }

    /// Whether every revision's gate passed (`conform`'s exit code).
    pub fn gate_passed(&self) -> bool {
        self.revisions.iter().all(|c| c.gate_passed)
    }

    /// Rows whose verdict or level is not the same in every revision, or
    /// that some revision lacks: the ones worth a look.
    fn differs(row: &MatrixRow) -> bool {
        let cells: Vec<Option<(Status, Level)>> = row
            .cells
            .iter()
            .map(|c| c.map(|c| (c.status, c.level)))
            .collect();
        cells.windows(2).any(|w| w[0] != w[1])
    }

    /// summary.md: each revision's gate, then the matrix.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "# conform: {} by MCP revision\n\nIssuer: `{}`. One run per revision; each revision's reports are in the directory named for it.\n\n| Revision | Gate | Applicable | Failed |\n|---|---|---|---|\n",
            self.target, self.issuer
        );
        for c in &self.revisions {
            let _ = writeln!(
                out,
                "| [{r}]({r}/summary.md) | {} | {} | {} |",
                if c.gate_passed { "passed" } else { "FAILED" },
                c.applicable,
                c.failed,
                r = c.revision
            );
        }
        out.push_str("\n## Scenario × revision\n\n`n/a`: the requirement is not in that revision. Rows whose verdict or level differs between revisions are marked ◆.\n\n| Scenario |");
        for c in &self.revisions {
            let _ = write!(out, " {} |", c.revision);
        }
        out.push_str("\n|---|");
        out.push_str(&"---|".repeat(self.revisions.len()));
        out.push('\n');
        for row in &self.rows {
            let _ = write!(
                out,
                "| `{}`{} |",
                row.id,
                if Self::differs(row) { " ◆" } else { "" }
            );
            for cell in &row.cells {
                match cell {
                    Some(c) => {
                        let _ = write!(
                            out,
                            " {} ({}) |",
                            c.status.as_str().to_uppercase(),
                            c.level.as_str()
                        );
                    }
                    None => out.push_str(" n/a |"),
                }
            }
            out.push('\n');
        }
        out
    }
}

/// The requirements by revision, from the scenario files alone (no run):
/// each MCP-sourced scenario's level in each revision, or `—` where the
/// revision lacks it, with the section it cites. `docs/revisions.md` is
/// this table (`conform --list --spec all`), and a test keeps it current.
pub fn requirements_table(scenarios: &[crate::scenario::Scenario]) -> String {
    let mut out = String::from("| Scenario |");
    for revision in Revision::ALL {
        let _ = write!(out, " {revision} |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(Revision::ALL.len()));
    out.push('\n');
    for scenario in scenarios.iter().filter(|s| !s.mcp.is_empty()) {
        let _ = write!(out, "| `{}` |", scenario.id);
        for revision in Revision::ALL {
            match scenario.under(revision) {
                Ok(resolved) => {
                    let cited = resolved
                        .mcp
                        .first()
                        .and_then(|m| m.url.as_deref().zip(m.id.as_deref()));
                    match cited {
                        Some((url, id)) => {
                            let section = id.split('§').nth(1).unwrap_or(id);
                            let _ = write!(
                                out,
                                " {} [{}]({}) |",
                                resolved.level.as_str(),
                                section.replace('|', "\\|"),
                                url
                            );
                        }
                        None => {
                            let _ = write!(out, " {} |", resolved.level.as_str());
                        }
                    }
                }
                Err(_) => out.push_str(" — |"),
            }
        }
        out.push('\n');
    }
    let others = scenarios.iter().filter(|s| s.mcp.is_empty()).count();
    let _ = write!(
        out,
        "\nThe other {others} scenarios cite no MCP text (RFCs, drafts, the product model): the same under every revision.\n"
    );
    out
}
