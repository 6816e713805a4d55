//! The embedded default target: the reference hub started in-process.
//!
//! This is the only place the harness touches the reference-server crate, and
//! it uses exactly one door, `reference_server::embedded`: start a hub on an
//! ephemeral loopback port and learn its origin. The profile used to drive it
//! is the same file a user would point at a separately started hub
//! (`fixtures/profiles/reference.toml`), with `${base}` set to that origin.

use std::path::{Path, PathBuf};

use crate::error::HarnessError;
use crate::profile::Profile;

/// The control and admin tokens the embedded hub is started with; they never leave the process.
const EMBEDDED_CONTROL_TOKEN: &str = "conform-embedded-control-token";
const EMBEDDED_ADMIN_TOKEN: &str = "conform-embedded-admin-token";

/// A running embedded hub and the profile that drives it.
pub struct EmbeddedTarget {
    pub profile: Profile,
    hub: reference_server::RunningHub,
}

impl EmbeddedTarget {
    pub async fn stop(self) {
        self.hub.stop().await;
    }
}

/// The repository root: the working directory if it holds the suite, else the source tree.
pub fn repo_root() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_default();
    if cwd.join("scenarios").is_dir() && cwd.join("fixtures").is_dir() {
        return cwd;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every fault the reference hub can switch on, with its description.
pub fn faults() -> Vec<(&'static str, &'static str)> {
    reference_server::embedded::fault_catalogue()
}

/// Starts the reference hub with the fixtures under `fixtures_dir` and the named faults.
pub async fn start(fixtures_dir: &Path, faults: &[String]) -> Result<EmbeddedTarget, HarnessError> {
    let hub = reference_server::embedded::start(
        &fixtures_dir.join("hub"),
        faults,
        EMBEDDED_CONTROL_TOKEN,
        EMBEDDED_ADMIN_TOKEN,
    )
    .await
    .map_err(|e| HarnessError::Embedded(e.to_string()))?;
    let mut profile = Profile::load(
        &fixtures_dir.join("profiles/reference.toml"),
        Some(&hub.base_url),
    )?;
    if let Some(control) = profile.control.as_mut() {
        control.token = EMBEDDED_CONTROL_TOKEN.to_owned();
    }
    if let Some(admin) = profile.admin.as_mut() {
        admin.token = EMBEDDED_ADMIN_TOKEN.to_owned();
    }
    profile.name = if faults.is_empty() {
        "embedded reference hub".to_owned()
    } else {
        format!("embedded reference hub with faults: {}", faults.join(", "))
    };
    Ok(EmbeddedTarget { profile, hub })
}
