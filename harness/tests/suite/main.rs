//! The harness's one integration-test binary (libtest-mimic):
//!
//! * `scenario::<id>`: every scenario, as its own test, against one embedded reference hub;
//! * `sensitivity::matrix`: the clean hub passes everything and every fault is caught;
//! * `snapshot::*`: redacted token claims and the report summary, pinned with insta;
//! * `cli::*`: the `conform` binary's exit codes, baselines, profiles and bad targets.
//! * `webhook::*`: the audit collector on a webhook stream;
//! * `user_driver::*`: the user driver and profile extras against controlled mock pages;
//! * `html::*`, `narrate::*`: report.html and `conform --narrate`;
//! * `init::*`: `conform init` and the starter profile it writes;
//! * `profile_docs::*`: every profile key and operation documented in docs/profile.md;
//! * `recipes::*`: operations as the profile's recipes: bad ones refused, missing ones skipped, other shapes driven;
//! * `load::*`: `conform load`'s smoke run on the embedded hub and its jti check;
//! * `robustness::*`: the robustness pass on the embedded hub (no findings), a finding sent again from its seed;
//! * `identity::*`: only the user's browser sends cookies; the back channel never does;
//! * `any_server::*`: not applicable is `skip`, rate limits never cascade, pinned verdicts catch drift;
//! * `revisions::*`: judging by one MCP revision or each (`--spec`), docs/revisions.md current;
//! * `schedule::*`: who shares the target at once, and the resource locks;
//! * `architecture::*`: no import loops, the black box, no private API path, the documented actions.

mod any_server;
mod architecture;
mod cli;
mod html;
mod identity;
mod init;
mod load;
mod profile_docs;
mod recipes;
mod revisions;
mod robustness;
mod scenarios;
mod schedule;
mod sensitivity;
mod snapshots;
mod support;
mod user_driver;
mod webhook;

use libtest_mimic::{Arguments, Trial};

fn main() {
    let args = Arguments::from_args();
    let mut trials: Vec<Trial> = support::scenarios()
        .into_iter()
        .map(scenarios::scenario_trial)
        .collect();
    trials.extend(sensitivity::trials());
    trials.extend(snapshots::snapshot_trials());
    trials.extend(cli::cli_trials());
    trials.extend(webhook::webhook_trials());
    trials.extend(html::html_and_narration_trials());
    trials.extend(init::trials());
    trials.extend(user_driver::trials());
    trials.extend(architecture::trials());
    trials.extend(profile_docs::trials());
    trials.extend(recipes::trials());
    trials.extend(load::trials());
    trials.extend(robustness::trials());
    trials.extend(schedule::trials());
    trials.extend(revisions::trials());
    trials.extend(identity::identity_trials());
    trials.extend(any_server::trials());
    libtest_mimic::run(&args, trials).exit();
}
