//! `sensitivity::*`: the proof that every check can fail, and that only a
//! scenario's own requirement proves a claim.

use harness::sensitivity::{Coverage, PROVEN_BY_OWN_TESTS};
use libtest_mimic::{Failed, Trial};

use crate::support::*;

pub fn trials() -> Vec<Trial> {
    vec![
        matrix(),
        audit_trip_is_not_a_catch(),
        proving_tests_exist(),
        unknown_fault_refused(),
        choice_needs_a_variant(),
    ]
}

/// The clean hub passes everything; each fault, run with the scenarios that
/// claim it, fails every claiming scenario's own requirement.
fn matrix() -> Trial {
    Trial::test("sensitivity::matrix", || {
        let all = scenarios();
        let matrix = runtime()
            .block_on(harness::sensitivity::run(
                &root().join("fixtures"),
                &all,
                Coverage::Claimed,
            ))
            .map_err(|e| Failed::from(e.to_string()))?;
        harness::artifacts::write_sensitivity(&matrix, &root().join("reports"))
            .map_err(|e| Failed::from(e.to_string()))?;
        println!("{}", matrix.headline());
        check(matrix.clean_failures.is_empty(), || {
            format!(
                "against the clean hub these failed: {:?}",
                matrix.clean_failures
            )
        })?;
        let missed = matrix.misses();
        check(missed.is_empty(), || {
            format!("faults not caught:\n{}", missed.join("\n"))
        })?;
        let unaccepted = matrix.unaccepted();
        check(unaccepted.is_empty(), || {
            format!("allowed answers not accepted:\n{}", unaccepted.join("\n"))
        })?;
        check(
            matrix.variants.len() == harness::embedded::variants().len()
                && matrix.variants.iter().all(|v| v.proven),
            || format!("variants: {:?}", matrix.variants),
        )?;
        check(
            matrix.proven_pairs == matrix.claimed_pairs && matrix.claimed_pairs > 100,
            || {
                format!(
                    "{} of {} claimed pairs proven",
                    matrix.proven_pairs, matrix.claimed_pairs
                )
            },
        )
    })
}

/// A fault that breaks only the audit trail trips a non-audit scenario's
/// audit check, but that scenario's own requirement holds, so its claim is
/// not proven; the audit scenario that reads the trail proves it.
fn audit_trip_is_not_a_catch() -> Trial {
    Trial::test("sensitivity::audit-trip-is-not-a-catch", || {
        let fault = "leak-token-in-audit";
        let description = harness::embedded::faults()
            .into_iter()
            .find(|(name, _)| *name == fault)
            .map(|(_, d)| d)
            .ok_or("the hub has no leak-token-in-audit fault")?;
        let mut claims: Vec<_> = scenarios()
            .into_iter()
            .filter(|s| s.id == "token.jwt-profile" || s.id == "audit.no-token-in-trail")
            .collect();
        check(claims.len() == 2, || "the two scenarios exist".into())?;
        // A claim the scenario cannot prove: its steps never look at the trail.
        for s in claims.iter_mut().filter(|s| s.id == "token.jwt-profile") {
            s.catches = vec![fault.to_owned()];
        }
        let matrix = runtime()
            .block_on(harness::sensitivity::prove(
                &root().join("fixtures"),
                &claims,
                &[(fault, description)],
                &[],
                Coverage::Claimed,
            ))
            .map_err(|e| Failed::from(e.to_string()))?;
        let row = matrix.rows.first().ok_or("no row for the fault")?;
        check(!row.caught, || format!("counted as caught: {row:?}"))?;
        check(row.missed_by == ["token.jwt-profile"], || {
            format!("token.jwt-profile should have missed it: {row:?}")
        })?;
        check(row.caught_by == ["audit.no-token-in-trail"], || {
            format!("the audit scenario should have caught it: {row:?}")
        })?;
        check(
            row.audit_tripped.iter().any(|id| id == "token.jwt-profile"),
            || format!("the audit check of token.jwt-profile should have tripped: {row:?}"),
        )
    })
}

/// Each fault proven by a test of its own names a test that exists.
fn proving_tests_exist() -> Trial {
    Trial::test("sensitivity::proving-tests-exist", || {
        for (fault, test) in PROVEN_BY_OWN_TESTS {
            let (file, name) = test.split_once("::").ok_or("`file::test` expected")?;
            let text = std::fs::read_to_string(root().join(file))
                .map_err(|e| Failed::from(format!("{fault}: {file}: {e}")))?;
            check(text.contains(&format!("fn {name}(")), || {
                format!("{fault}: no test `{name}` in {file}")
            })?;
            check(
                harness::embedded::faults().iter().any(|(f, _)| f == fault),
                || format!("{fault} is not a fault of the hub"),
            )?;
        }
        Ok(())
    })
}

/// The loader refuses a scenario that claims a fault the hub does not have.
fn unknown_fault_refused() -> Trial {
    Trial::test("sensitivity::unknown-fault-refused", || {
        let dir = temp_dir("unknown-fault").join("made-up");
        std::fs::create_dir_all(&dir).map_err(|e| Failed::from(e.to_string()))?;
        let original = std::fs::read_to_string(root().join("scenarios/pkce/wrong-verifier.toml"))
            .map_err(|e| Failed::from(e.to_string()))?;
        std::fs::write(
            dir.join("claim.toml"),
            original
                .replace("pkce.wrong-verifier", "made-up.claim")
                .replace("\"skip-pkce-verify\"", "\"no-such-fault\""),
        )
        .map_err(|e| Failed::from(e.to_string()))?;
        match harness::scenario::load_dir(dir.parent().ok_or("no parent")?) {
            Ok(_) => Err("a scenario claiming `no-such-fault` loaded".into()),
            Err(e) => check(e.to_string().contains("no-such-fault"), || {
                format!("the error does not name the fault: {e}")
            }),
        }
    })
}

/// The loader refuses a scenario whose expectation allows several answers
/// but names no variant, and one naming a variant the hub does not have.
fn choice_needs_a_variant() -> Trial {
    Trial::test("sensitivity::choice-needs-a-variant", || {
        let original = std::fs::read_to_string(root().join("scenarios/cc/scope-limit.toml"))
            .map_err(|e| Failed::from(e.to_string()))?;
        for (case, text, wanted) in [
            (
                "none",
                original.replace("variants = [\"narrow-unallowed-scope\"]\n", ""),
                "must name the reference-hub variant",
            ),
            (
                "unknown",
                original.replace("\"narrow-unallowed-scope\"", "\"no-such-variant\""),
                "no-such-variant",
            ),
        ] {
            check(text != original, || {
                format!("{case}: the fixture did not change")
            })?;
            let dir = temp_dir(&format!("variant-{case}")).join("cc");
            std::fs::create_dir_all(&dir).map_err(|e| Failed::from(e.to_string()))?;
            std::fs::write(dir.join("scope-limit.toml"), text)
                .map_err(|e| Failed::from(e.to_string()))?;
            match harness::scenario::load_dir(dir.parent().ok_or("no parent")?) {
                Ok(_) => return Err(format!("{case}: the scenario loaded").into()),
                Err(e) => check(e.to_string().contains(wanted), || {
                    format!("{case}: the error does not say `{wanted}`: {e}")
                })?,
            }
        }
        Ok(())
    })
}
