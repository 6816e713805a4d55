//! The harness's error policy.
//!
//! A [`HarnessError`] is about the *harness's own inputs*: a bad target
//! profile, a scenario file that does not parse, a glob that matches nothing,
//! a report that cannot be written. The binary turns these into exit code 2.
//!
//! Anything that goes wrong while talking to a target is *not* a
//! `HarnessError`: it becomes a check status (`fail` when the target broke a
//! requirement, `error` when the exchange could not be completed), recorded in
//! the reports with the HTTP exchange that shows it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("target profile {path} is invalid: {message}")]
    Profile { path: PathBuf, message: String },
    #[error("scenario file {path} is invalid: {message}")]
    Scenario { path: PathBuf, message: String },
    #[error("no scenario matches `{0}` (see --list)")]
    NoMatch(String),
    #[error("invalid scenario glob `{glob}`: {message}")]
    Glob { glob: String, message: String },
    #[error("baseline {path} is invalid: {message}")]
    Baseline { path: PathBuf, message: String },
    #[error("cannot write report {path}: {message}")]
    Report { path: PathBuf, message: String },
    #[error("cannot start the embedded reference hub: {0}")]
    Embedded(String),
    #[error("this conform was built without the reference hub (cargo feature `embedded`): give it a target profile with --target")]
    NoEmbeddedHub,
    #[error("cannot start the audit webhook collector: {0}")]
    AuditCollector(String),
}
