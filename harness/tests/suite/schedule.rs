//! `schedule::*`: which scenarios share the target at once (`harness::schedule`).
//!
//! * every scenario is planned once, concurrently or alone;
//! * the policy scenarios that grant only on `resources.lab` write-lock it,
//!   and the scenario that needs no policy on it read-locks it;
//! * a writer of a resource a waiting scenario reads runs alone;
//! * the locks: readers share, a writer excludes readers and writers.

use std::collections::BTreeSet;

use futures_util::FutureExt;
use harness::profile::Profile;
use harness::schedule::{Claims, ResourceLocks, Schedule};
use libtest_mimic::{Failed, Trial};

use crate::support::*;

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("schedule::every-scenario-once", every_scenario_once),
        Trial::test("schedule::resource-locks-claimed", resource_locks_claimed),
        Trial::test("schedule::locks-exclude", locks_exclude),
    ]
}

fn plan() -> Result<(Vec<harness::scenario::Scenario>, Schedule), Failed> {
    let profile = Profile::load(
        &root().join("fixtures/profiles/reference.toml"),
        Some("http://127.0.0.1:9"),
    )
    .map_err(|e| Failed::from(e.to_string()))?;
    let scenarios = scenarios();
    let schedule = Schedule::plan(&profile, &scenarios);
    Ok((scenarios, schedule))
}

fn every_scenario_once() -> Result<(), Failed> {
    let (scenarios, schedule) = plan()?;
    let mut planned: Vec<&str> = schedule
        .concurrent
        .iter()
        .map(|(s, _)| s.id.as_str())
        .chain(schedule.alone.iter().map(|s| s.id.as_str()))
        .collect();
    planned.sort_unstable();
    let mut all: Vec<&str> = scenarios.iter().map(|s| s.id.as_str()).collect();
    all.sort_unstable();
    check(planned == all, || {
        format!("planned {planned:?}\nscenarios {all:?}")
    })?;
    for (scenario, claims) in &schedule.concurrent {
        check(!scenario.exclusive() || !claims.write.is_empty(), || {
            format!(
                "{} is exclusive but runs concurrently with no write lock",
                scenario.id
            )
        })?;
    }
    let last = schedule.alone.last().map(|s| s.suite);
    check(last == Some(harness::verdict::Suite::Robustness), || {
        format!("the robustness suite must run last; the last alone is {last:?}")
    })
}

fn resource_locks_claimed() -> Result<(), Failed> {
    let (_, schedule) = plan()?;
    let claims = |id: &str| {
        schedule
            .concurrent
            .iter()
            .find(|(s, _)| s.id == id)
            .map(|(_, c)| c.clone())
    };
    let lab: BTreeSet<String> = ["lab".to_owned()].into();
    let writer = claims("policy.and-within");
    check(
        writer
            .as_ref()
            .is_some_and(|c| c.write == lab && c.read.is_empty()),
        || format!("policy.and-within should write-lock lab only: {writer:?}"),
    )?;
    let reader = claims("policy.least-privilege");
    check(
        reader
            .as_ref()
            .is_some_and(|c| c.read == lab && c.write.is_empty()),
        || format!("policy.least-privilege should read-lock lab: {reader:?}"),
    )?;
    let unrelated = claims("pkce.plain-refused");
    check(
        unrelated.as_ref().is_some_and(|c| *c == Claims::default()),
        || format!("pkce.plain-refused should lock nothing: {unrelated:?}"),
    )?;
    // Its policy grants on `agenda`, which connection.provider-timeout reads
    // while it waits out the provider: it would hold up every agenda reader.
    check(
        schedule
            .alone
            .iter()
            .any(|s| s.id == "connection.cross-tenant-denied"),
        || "connection.cross-tenant-denied should run alone".into(),
    )
}

fn locks_exclude() -> Result<(), Failed> {
    let lab = || -> BTreeSet<String> { ["lab".to_owned()].into() };
    let write = Claims {
        write: lab(),
        read: BTreeSet::new(),
    };
    let read = Claims {
        write: BTreeSet::new(),
        read: lab(),
    };
    let (_, schedule) = plan()?;
    let locks = ResourceLocks::for_schedule(&schedule);
    runtime().block_on(async {
        let first_reader = locks.acquire(&read).await;
        check(locks.acquire(&read).now_or_never().is_some(), || {
            "two readers of lab should share it".into()
        })?;
        check(locks.acquire(&write).now_or_never().is_none(), || {
            "a writer of lab should wait for its reader".into()
        })?;
        drop(first_reader);
        let writer = locks.acquire(&write).await;
        check(locks.acquire(&read).now_or_never().is_none(), || {
            "a reader of lab should wait for its writer".into()
        })?;
        check(locks.acquire(&write).now_or_never().is_none(), || {
            "a second writer of lab should wait for the first".into()
        })?;
        drop(writer);
        check(locks.acquire(&write).now_or_never().is_some(), || {
            "lab should be free once its writer is done".into()
        })
    })
}
