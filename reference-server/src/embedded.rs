//! The one door the `conform` harness may use into this crate: start a hub
//! in-process on an ephemeral loopback port and learn its URLs. Everything
//! else the harness does goes over HTTP.

use std::net::SocketAddr;
use std::path::Path;

use crate::config::HubConfig;
use crate::error::HubError;
use crate::fault::{Fault, Faults};
use crate::server::RunningHub;
use crate::store::Database;
use crate::variant::{Variant, Variants};

/// Every fault name the hub accepts, with its one-line description.
pub fn fault_catalogue() -> Vec<(&'static str, &'static str)> {
    Fault::ALL
        .iter()
        .map(|f| (f.name(), f.description()))
        .collect()
}

/// Every variant name the hub accepts, with its one-line description.
pub fn variant_catalogue() -> Vec<(&'static str, &'static str)> {
    Variant::ALL
        .iter()
        .map(|v| (v.name(), v.description()))
        .collect()
}

/// Parses switch names the harness passed through, as a configuration error.
fn parse_all<T: std::str::FromStr>(names: &[String]) -> Result<Vec<T>, HubError>
where
    T::Err: std::fmt::Display,
{
    names
        .iter()
        .map(|name| {
            name.parse::<T>()
                .map_err(|e| HubError::Config(e.to_string()))
        })
        .collect()
}

/// Starts a hub on 127.0.0.1 port 0 with an in-memory database, the seed
/// directory given, test mode on with `control_token`, the admin API on with
/// `admin_token`, and the named faults and variants.
///
/// The harness's ordinary traffic comes from 127.0.0.1 and is exempt from the
/// registration rate limit; its rate-limit probe registers from 127.0.0.2.
pub async fn start(
    seed_dir: &Path,
    faults: &[String],
    variants: &[String],
    control_token: &str,
    admin_token: &str,
) -> Result<RunningHub, HubError> {
    let faults: Vec<Fault> = parse_all(faults)?;
    let variants: Vec<Variant> = parse_all(variants)?;
    crate::server::spawn(HubConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        database: Database::Memory,
        seed_dir: Some(seed_dir.to_path_buf()),
        test_mode: true,
        control_token: Some(control_token.to_owned()),
        admin_token: Some(admin_token.to_owned()),
        faults: Faults::new(faults),
        variants: Variants::new(variants),
        registration_rate_exempt: vec![std::net::IpAddr::from([127, 0, 0, 1])],
        // Timeout scenarios wait this long; keep them short.
        provider_timeout: std::time::Duration::from_secs(2),
        // A half-sent request is dropped after 2 s (the hub binary's default
        // is 10 s), so the slow-client scenario is quick; the harness's
        // clients drop idle connections sooner, so none races the close.
        limits: crate::serve::Limits {
            header_read_timeout: std::time::Duration::from_secs(2),
            ..crate::serve::Limits::default()
        },
        agenda: Some(crate::config::AgendaSettings::demo(
            "s20CX9_QyYGV8dHbXnN9b5hEpvFFudFja05vksJZ4_U",
        )),
        ..HubConfig::default()
    })
    .await
}
