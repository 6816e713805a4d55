//! The embedded default target: the reference hub started in-process.
//!
//! This is the only place the harness touches the reference-server crate, and
//! it uses exactly one door, `reference_server::embedded`: start a hub on an
//! ephemeral loopback port and learn its origin. The profile used to drive it
//! is the same file a user would point at a separately started hub
//! (`fixtures/profiles/reference.toml`), with `${base}` set to that origin.
//!
//! The door is the cargo feature `embedded` (on by default). Without it the
//! harness is a lean black box that cannot even name the reference hub
//! (`cargo tree -p harness --no-default-features` lists no
//! `reference-server`): [`start`] says so, and a run needs `--target`.

use std::path::{Path, PathBuf};

use crate::error::HarnessError;
use crate::profile::Profile;

/// Whether this build carries the reference hub.
pub const BUILT_IN: bool = cfg!(feature = "embedded");

/// The control and admin tokens the embedded hub is started with; they never leave the process.
const EMBEDDED_CONTROL_TOKEN: &str = "conform-embedded-control-token";
const EMBEDDED_ADMIN_TOKEN: &str = "conform-embedded-admin-token";

/// A running embedded hub and the profile that drives it.
pub struct EmbeddedTarget {
    pub profile: Profile,
    #[cfg(feature = "embedded")]
    hub: reference_server::RunningHub,
}

impl EmbeddedTarget {
    pub async fn stop(self) {
        #[cfg(feature = "embedded")]
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

/// Every fault the reference hub can switch on, with its description (none
/// without the hub).
pub fn faults() -> Vec<(&'static str, &'static str)> {
    #[cfg(feature = "embedded")]
    return reference_server::embedded::fault_catalogue();
    #[cfg(not(feature = "embedded"))]
    return Vec::new();
}

/// Every compliant variant the reference hub can switch on, with its
/// description (none without the hub).
pub fn variants() -> Vec<(&'static str, &'static str)> {
    #[cfg(feature = "embedded")]
    return reference_server::embedded::variant_catalogue();
    #[cfg(not(feature = "embedded"))]
    return Vec::new();
}

/// Starts the reference hub with the fixtures under `fixtures_dir` and the
/// named faults and variants.
pub async fn start(
    fixtures_dir: &Path,
    faults: &[String],
    variants: &[String],
) -> Result<EmbeddedTarget, HarnessError> {
    #[cfg(not(feature = "embedded"))]
    {
        let _ = (fixtures_dir, faults, variants);
        Err(HarnessError::NoEmbeddedHub)
    }
    #[cfg(feature = "embedded")]
    {
        let hub = reference_server::embedded::start(
            &fixtures_dir.join("hub"),
            faults,
            variants,
            EMBEDDED_CONTROL_TOKEN,
            EMBEDDED_ADMIN_TOKEN,
        )
        .await
        .map_err(|e| HarnessError::Embedded(e.to_string()))?;
        let profile = profile(fixtures_dir, &hub.base_url, faults, variants)?;
        Ok(EmbeddedTarget { profile, hub })
    }
}

/// The reference profile with `${base}` set to the hub's origin and the
/// embedded tokens in place.
#[cfg_attr(not(feature = "embedded"), allow(dead_code))]
fn profile(
    fixtures_dir: &Path,
    base_url: &str,
    faults: &[String],
    variants: &[String],
) -> Result<Profile, HarnessError> {
    let mut profile = Profile::load(
        &fixtures_dir.join("profiles/reference.toml"),
        Some(base_url),
    )?;
    // The reference profile's recipes send these as `${secrets.…}`.
    for (name, token) in [
        ("control_token", EMBEDDED_CONTROL_TOKEN),
        ("admin_token", EMBEDDED_ADMIN_TOKEN),
    ] {
        if let Some(secret) = profile.secrets.get_mut(name) {
            *secret = token.to_owned();
        }
    }
    profile.name = "embedded reference hub".to_owned();
    for (kind, names) in [("faults", faults), ("variants", variants)] {
        if !names.is_empty() {
            profile
                .name
                .push_str(&format!(" with {kind}: {}", names.join(", ")));
        }
    }
    Ok(profile)
}
