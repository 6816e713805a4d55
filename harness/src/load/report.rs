//! What a load run measured, what it checked, and how both read.

use std::collections::BTreeMap;

use serde::Serialize;

use super::plan::Mix;

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// One correctness check under load.
#[derive(Debug, Clone, Serialize)]
pub struct LoadCheck {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub target: String,
    pub mix: Mix,
    pub connections: usize,
    pub rate: Option<u64>,
    pub requests: u64,
    pub succeeded: u64,
    /// Failures by kind: `status 401`, `timeout`, `connection`, …
    pub errors: BTreeMap<String, u64>,
    pub elapsed_ms: u64,
    pub throughput_per_s: f64,
    pub latency: Latency,
    pub checks: Vec<LoadCheck>,
}

impl LoadReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The summary people read.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{} against {}: {} connections{}\n{} requests in {:.1} s: {:.0} req/s, {} succeeded\nlatency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
            self.mix.name(),
            self.target,
            self.connections,
            self.rate.map(|r| format!(", open loop at {r} req/s")).unwrap_or_default(),
            self.requests,
            self.elapsed_ms as f64 / 1000.0,
            self.throughput_per_s,
            self.succeeded,
            self.latency.p50_ms,
            self.latency.p90_ms,
            self.latency.p99_ms,
            self.latency.max_ms,
        );
        if self.errors.is_empty() {
            out.push_str("errors: none\n");
        } else {
            let errors: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            out.push_str(&format!("errors: {}\n", errors.join(", ")));
        }
        for check in &self.checks {
            out.push_str(&format!(
                "{} {}: {}\n",
                if check.passed { "PASS" } else { "FAIL" },
                check.name,
                check.detail
            ));
        }
        out
    }
}

/// What one worker saw.
#[derive(Default)]
pub(super) struct Tally {
    pub succeeded: u64,
    pub errors: BTreeMap<String, u64>,
    /// Each issued access token's `jti`, as a 128-bit digest: 16 bytes a
    /// token however long the run, and no collision in any run's lifetime.
    pub jtis: Vec<u128>,
    pub inactive: u64,
    pub server_errors: u64,
}

impl Tally {
    pub fn failed(&mut self, kind: String) {
        if kind.starts_with("status 5") {
            self.server_errors += 1;
        }
        *self.errors.entry(kind).or_default() += 1;
    }

    pub fn add(&mut self, other: Tally) {
        self.succeeded += other.succeeded;
        self.inactive += other.inactive;
        self.server_errors += other.server_errors;
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
        self.jtis.extend(other.jtis);
    }

    pub fn saw_jti(&mut self, jti: &str) {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(jti.as_bytes());
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        self.jtis.push(u128::from_le_bytes(first));
    }
}

/// The checks every run of `mix` makes of what the workers saw; the mix's
/// own races (run before the clock starts) come on top.
pub(super) fn checks(mix: Mix, tally: &mut Tally) -> Vec<LoadCheck> {
    let mut checks = vec![LoadCheck {
        name: "no-server-error",
        passed: tally.server_errors == 0,
        detail: format!("{} answers were 5xx", tally.server_errors),
    }];
    match mix {
        Mix::ClientCredentials | Mix::Refresh | Mix::CodeFlow => {
            let issued = tally.jtis.len();
            tally.jtis.sort_unstable();
            tally.jtis.dedup();
            let repeats = issued - tally.jtis.len();
            checks.push(LoadCheck {
                name: "jti-unique",
                // A run where nothing succeeded checked nothing: not a pass.
                passed: repeats == 0 && tally.succeeded > 0,
                detail: if tally.succeeded == 0 {
                    "no request succeeded: no token to compare".into()
                } else if issued == 0 {
                    "the tokens are opaque (no jti to compare)".into()
                } else {
                    format!("{issued} tokens, {repeats} repeated a jti (RFC 9068 §2.2: unique)")
                },
            });
        }
        Mix::Introspection => checks.push(LoadCheck {
            name: "introspection-active",
            passed: tally.inactive == 0 && tally.succeeded > 0,
            detail: if tally.succeeded == 0 {
                "no introspection succeeded: nothing to check".into()
            } else {
                format!(
                    "{} introspections of a live token said inactive (RFC 7662 §2.2)",
                    tally.inactive
                )
            },
        }),
        Mix::Vault => {}
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run where nothing succeeded checked nothing: its checks fail.
    #[test]
    fn nothing_succeeded_is_not_a_pass() {
        for mix in [Mix::ClientCredentials, Mix::Introspection, Mix::Refresh] {
            let mut tally = Tally::default();
            tally.failed("status 400 unsupported_token_type".into());
            let checks = checks(mix, &mut tally);
            assert!(checks[0].passed, "no 5xx: {:?}", checks[0]);
            assert!(!checks[1].passed, "{mix:?}: {:?}", checks[1]);
        }
        let mut tally = Tally {
            succeeded: 2,
            ..Tally::default()
        };
        tally.saw_jti("at_1");
        tally.saw_jti("at_1");
        let checks = checks(Mix::ClientCredentials, &mut tally);
        assert!(!checks[1].passed && checks[1].detail.contains("1 repeated"));
    }
}
