//! `webhook::*`: the audit collector reading the target's CloudEvents webhook stream.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use harness::engine::{run_all, RunOptions};
use harness::profile::Profile;
use harness::scenario::Scenario;
use harness::verdict::Status;
use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::support::*;

/// The reference profile for a hub at `base`, auditing through the webhook at `listen`.
fn webhook_profile_file(dir: &Path, base: &str, listen: &str) -> PathBuf {
    profile_file(
        dir,
        base,
        &format!("\n[audit]\nsource = \"webhook\"\nwebhook_listen = \"{listen}\"\n"),
    )
}

pub fn webhook_trials() -> Vec<Trial> {
    vec![
        Trial::test("cli::audit-webhook-collects-the-trail", || {
            // The collector listens first (port 0), so the hub is told its real
            // URL before it writes anything.
            let collector = runtime()
                .block_on(harness::audit::webhook_collector(
                    "127.0.0.1:0".parse().expect("address"),
                ))
                .map_err(|e| Failed::from(e.to_string()))?;
            let url = collector.url();
            check(url.ends_with("/audit-webhook"), || url.clone())?;
            let hub = hub_process(&["--audit-webhook", &url])?;
            let dir = temp_dir("audit-webhook");
            let path = webhook_profile_file(&dir, &hub.base, &collector.address().to_string());
            let mut profile =
                Profile::load(&path, None).map_err(|e| Failed::from(e.to_string()))?;
            // No recipe reads the trail: the webhook must be where it came from.
            profile.operations.retain(|name, _| !name.contains("audit"));
            profile.capabilities.control_api = false;
            check(
                !profile.operations.contains_key("read_audit")
                    && !profile.operations.contains_key("audit_position"),
                || "the profile still has a recipe that reads the trail".into(),
            )?;
            let ids = [
                "authcode.oauth2-client-flow",
                "consent.denial-redirects",
                "exchange.act-present",
                "cc.token-bound",
            ];
            let chosen: Vec<Scenario> = scenarios()
                .into_iter()
                .filter(|s| ids.contains(&s.id.as_str()))
                .collect();
            check(chosen.len() == ids.len(), || {
                format!("missing scenarios among {ids:?}")
            })?;
            let results = runtime().block_on(async {
                harness::audit::start_collector(&mut profile).await?;
                Ok::<_, String>(
                    run_all(Arc::new(profile.clone()), &chosen, &RunOptions::new(true)).await,
                )
            })?;
            drop(hub);
            for r in &results {
                let audit = r.audit.as_ref().ok_or("no audit check")?;
                check(r.status == Status::Pass, || {
                    format!(
                        "{} is {}: {:?} {audit:?}",
                        r.id,
                        r.status.as_str(),
                        r.reason
                    )
                })?;
                check(
                    audit.status == Status::Pass
                        && audit.source == harness::profile::AuditSource::Webhook
                        && audit.endpoint.as_deref() == Some(url.as_str())
                        && audit.events_expected > 0
                        && audit.events_read >= audit.events_expected,
                    || format!("{}: {audit:?}", r.id),
                )?;
            }
            // The events came over the webhook, each once.
            let events = collector.events();
            let mut ids: Vec<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
            let received = ids.len();
            ids.sort_unstable();
            ids.dedup();
            check(ids.len() == received && received == events.len(), || {
                format!(
                    "{received} ids among {} events, some repeated",
                    events.len()
                )
            })?;
            for wanted in [
                "client.registered",
                "consent.granted",
                "consent.denied",
                "token.issued",
                "token.exchanged",
            ] {
                check(events.iter().any(|e| e["type"] == wanted), || {
                    format!("no `{wanted}` event arrived over the webhook")
                })?;
            }
            Ok(())
        }),
        Trial::test("cli::audit-webhook-catches-a-dropped-consent-event", || {
            // The conform binary hosts the collector on a port chosen here (free
            // a moment ago); the hub writes nothing until conform acts.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| Failed::from(e.to_string()))?
                .port();
            let url = format!("http://127.0.0.1:{port}/audit-webhook");
            let hub = hub_process(&["--audit-webhook", &url, "--fault", "drop-consent-audit"])?;
            let dir = temp_dir("audit-webhook-fault");
            let path = webhook_profile_file(&dir, &hub.base, &format!("127.0.0.1:{port}"));
            let output = conform(&[
                "--target",
                path.to_str().unwrap_or_default(),
                "--scenario",
                "consent.denial-redirects",
                "--out",
                dir.join("r").to_str().unwrap_or_default(),
            ]);
            drop(hub);
            check(code(&output) == 1, || {
                format!("exit {}: {}", code(&output), text(&output))
            })?;
            let report: Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join("r/report.json")).unwrap_or_default(),
            )
            .map_err(|e| Failed::from(e.to_string()))?;
            let audit = report["scenarios"][0]["audit"].clone();
            check(
                report["scenarios"][0]["status"] == "fail"
                    && audit["status"] == "fail"
                    && audit["source"] == "webhook"
                    && audit["endpoint"] == url.as_str(),
                || format!("{audit}"),
            )?;
            // The stream worked (the registration arrived); the consent event never did.
            check(
                audit["events_read"].as_u64().unwrap_or_default() > 0,
                || format!("nothing arrived: {audit}"),
            )?;
            check(
                audit["messages"].to_string().contains("consent.denied"),
                || format!("{audit}"),
            )
        }),
        Trial::test("cli::audit-webhook-profile-needs-listen", || {
            let dir = temp_dir("audit-webhook-profile");
            let path = profile_file(
                &dir,
                "http://127.0.0.1:8080",
                "\n[audit]\nsource = \"webhook\"\n",
            );
            let output = conform(&["--target", path.to_str().unwrap_or_default()]);
            check(code(&output) == 2, || {
                format!("exit {}: {}", code(&output), text(&output))
            })?;
            check(text(&output).contains("webhook_listen"), || text(&output))
        }),
    ]
}
