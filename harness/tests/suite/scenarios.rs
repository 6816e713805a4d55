//! `scenario::<id>`: every scenario, as its own test, against one embedded reference hub
//! (or a hub of its own when it is exclusive).

use harness::engine::{run_scenario, RunOptions};
use harness::scenario::Scenario;
use harness::verdict::Status;
use libtest_mimic::Trial;

use crate::support::*;

pub fn scenario_trial(scenario: Scenario) -> Trial {
    let id = scenario.id.clone();
    Trial::test(format!("scenario::{id}"), move || {
        let options = RunOptions::new(true);
        // A scenario that moves the clock gets a hub of its own.
        let result = if scenario.exclusive() {
            runtime().block_on(async {
                let own = harness::embedded::start(&root().join("fixtures"), &[], &[])
                    .await
                    .expect("hub");
                let result = run_scenario(&own.profile, &scenario, &options).await;
                own.stop().await;
                result
            })
        } else {
            runtime().block_on(run_scenario(shared_target(), &scenario, &options))
        };
        check(result.status == Status::Pass, || {
            format!(
                "{} is {}: {}\n{}",
                result.id,
                result.status.as_str(),
                result.reason.clone().unwrap_or_default(),
                serde_json::to_string_pretty(&result.steps).unwrap_or_default()
            )
        })
    })
}
