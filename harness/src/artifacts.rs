//! The files a run leaves in `--out`: report.json, junit.xml, summary.md and
//! report.html for a run; sensitivity.md, sensitivity.json and report.html for
//! a sensitivity proof. Rendering lives with each format (`report.rs`,
//! `html.rs`, `sensitivity.rs`); this module only writes, so that none of
//! them needs another to be written.

use std::path::Path;

use crate::error::HarnessError;
use crate::report::RunReport;
use crate::sensitivity::Matrix;

fn write(path: &Path, contents: &str) -> Result<(), HarnessError> {
    std::fs::write(path, contents).map_err(|e| HarnessError::Report {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn create(dir: &Path) -> Result<(), HarnessError> {
    std::fs::create_dir_all(dir).map_err(|e| HarnessError::Report {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })
}

fn json(path: &Path, value: &impl serde::Serialize) -> Result<(), HarnessError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| HarnessError::Report {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write(path, &text)
}

/// Writes report.json, junit.xml, summary.md and report.html into `dir`.
pub fn write_run(report: &RunReport, dir: &Path) -> Result<(), HarnessError> {
    create(dir)?;
    json(&dir.join("report.json"), report)?;
    write(&dir.join("junit.xml"), &crate::report::junit(report)?)?;
    write(&dir.join("summary.md"), &crate::report::markdown(report))?;
    write(&dir.join("report.html"), &crate::html::render(report, None))?;
    Ok(())
}

/// Writes each revision's reports into `dir/<revision>/`, and their matrix
/// (summary.md, report.html, matrix.json) into `dir`.
pub fn write_revisions(
    reports: &[RunReport],
    matrix: &crate::revision_matrix::RevisionMatrix,
    dir: &Path,
) -> Result<(), HarnessError> {
    create(dir)?;
    for report in reports {
        write_run(report, &dir.join(report.revision.as_str()))?;
    }
    write(&dir.join("summary.md"), &matrix.markdown())?;
    write(
        &dir.join("report.html"),
        &crate::html::render_revisions(matrix),
    )?;
    json(&dir.join("matrix.json"), matrix)?;
    Ok(())
}

/// Writes sensitivity.md, sensitivity.json and report.html (the clean run
/// with the matrix on top) into `dir`.
pub fn write_sensitivity(matrix: &Matrix, dir: &Path) -> Result<(), HarnessError> {
    create(dir)?;
    write(&dir.join("sensitivity.md"), &matrix.markdown())?;
    json(&dir.join("sensitivity.json"), matrix)?;
    if let Some(html) = crate::html::render_sensitivity(matrix) {
        write(&dir.join("report.html"), &html)?;
    }
    Ok(())
}
