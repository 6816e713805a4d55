//! Which scenarios may share the target at once.
//!
//! Most scenarios cannot see each other: each registers its own clients and
//! acts as its own users. Some change what every other scenario would see
//! (they move the target's clock, rotate its keys, make its audit store
//! fail): those run *alone*, one at a time, after the rest. Between the two
//! are the scenarios exclusive only for some resources: a policy that grants
//! only on `resources.lab` changes the decisions on that MCP server and no
//! other. Such a scenario holds its resources' *write* lock while it runs,
//! and every concurrent scenario that names one of those resources holds its
//! *read* lock, so the two never overlap while everything else runs beside
//! them.
//!
//! No deadlock: a scenario takes its locks in one order (the roles'
//! names) and only then its place among the concurrent ones, so whoever holds
//! a place already holds every lock it needs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use crate::profile::Profile;
use crate::scenario::Scenario;

/// The run's plan: who runs concurrently (under which resource locks) and
/// who alone afterwards.
#[derive(Debug, Default)]
pub struct Schedule {
    /// Run concurrently, writers of a resource first so that the scenarios
    /// reading it wait for them once instead of delaying them.
    pub concurrent: Vec<(Scenario, Claims)>,
    /// Run one at a time after the concurrent ones, the robustness suite
    /// last (it floods the target: rate limits, back-off).
    pub alone: Vec<Scenario>,
}

/// The resource roles a scenario locks while it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// Roles whose decisions the scenario changes (its policies grant there).
    pub write: BTreeSet<String>,
    /// Roles the scenario uses whose decisions another scenario changes.
    pub read: BTreeSet<String>,
}

impl Schedule {
    /// The plan for `scenarios` on the target `profile` describes.
    pub fn plan(profile: &Profile, scenarios: &[Scenario]) -> Schedule {
        let mut writers = Vec::new();
        let mut shared = Vec::new();
        let mut alone = Vec::new();
        for scenario in scenarios {
            if !scenario.exclusive() {
                shared.push(scenario.clone());
                continue;
            }
            match scenario.exclusive_for_resources() {
                Some(roles) if roles.iter().all(|r| has_own_url(profile, r)) => {
                    writers.push((scenario.clone(), roles))
                }
                _ => alone.push(scenario.clone()),
            }
        }
        // A scenario that waits out a target's timeout holds its read locks
        // for seconds: a writer of those roles would keep every other reader
        // waiting behind it, so it runs alone instead.
        let all_written: BTreeSet<String> = writers.iter().flat_map(|(_, r)| r.clone()).collect();
        let waited_on: BTreeSet<&str> = shared
            .iter()
            .filter(|s| s.waits())
            .flat_map(|s| s.mentioned_resources(&all_written))
            .collect();
        let (writers, held_up): (Vec<_>, Vec<_>) = writers
            .into_iter()
            .partition(|(_, roles)| roles.iter().all(|r| !waited_on.contains(r.as_str())));
        alone.extend(held_up.into_iter().map(|(s, _)| s));
        let written: BTreeSet<String> = writers.iter().flat_map(|(_, r)| r.clone()).collect();
        let reads = |scenario: &Scenario, write: &BTreeSet<String>| -> BTreeSet<String> {
            scenario
                .mentioned_resources(&written)
                .into_iter()
                .filter(|role| !write.contains(*role))
                .map(str::to_owned)
                .collect()
        };
        let mut concurrent = Vec::with_capacity(writers.len() + shared.len());
        for (scenario, write) in writers {
            let read = reads(&scenario, &write);
            concurrent.push((scenario, Claims { write, read }));
        }
        for scenario in shared {
            let read = reads(&scenario, &BTreeSet::new());
            concurrent.push((
                scenario,
                Claims {
                    write: BTreeSet::new(),
                    read,
                },
            ));
        }
        alone.sort_by_key(|s| s.suite == crate::verdict::Suite::Robustness);
        Schedule { concurrent, alone }
    }
}

/// Whether no other resource of the profile shares this role's URL: a
/// policy on it could otherwise change the decisions on that other role too.
fn has_own_url(profile: &Profile, role: &str) -> bool {
    let Some(url) = profile.resources.get(role).map(|r| r.url.as_str()) else {
        return false;
    };
    profile
        .resources
        .iter()
        .all(|(other, r)| other == role || r.url != url)
}

/// One lock per resource role that some scenario writes.
#[derive(Debug, Default, Clone)]
pub struct ResourceLocks {
    locks: BTreeMap<String, Arc<RwLock<()>>>,
}

/// What a running scenario holds; dropping it lets the others in.
#[derive(Debug)]
pub enum Held {
    Read(OwnedRwLockReadGuard<()>),
    Write(OwnedRwLockWriteGuard<()>),
}

impl ResourceLocks {
    pub fn for_schedule(schedule: &Schedule) -> ResourceLocks {
        let locks = schedule
            .concurrent
            .iter()
            .flat_map(|(_, claims)| claims.write.iter())
            .map(|role| (role.clone(), Arc::new(RwLock::new(()))))
            .collect();
        ResourceLocks { locks }
    }

    /// Takes the claimed locks in the roles' order (the one order every
    /// scenario takes them in).
    pub async fn acquire(&self, claims: &Claims) -> Vec<Held> {
        let roles: BTreeSet<&String> = claims.write.iter().chain(&claims.read).collect();
        let mut held = Vec::with_capacity(roles.len());
        for role in roles {
            let Some(lock) = self.locks.get(role) else {
                continue;
            };
            held.push(if claims.write.contains(role) {
                Held::Write(lock.clone().write_owned().await)
            } else {
                Held::Read(lock.clone().read_owned().await)
            });
        }
        held
    }
}
