//! `any_server::*`: verdicts against servers we did not write. What a
//! standard lets a server leave out, or what the profile says the target
//! does not have, is `skip` with the reason, never an `error` or a `fail`;
//! a registration rate limit never cascades; a pinned-verdicts baseline
//! catches any drift. Each test drives a small scenario against a wiremock
//! authorization server on 127.0.0.1.

use harness::engine::{run_scenario, RunOptions, ScenarioResult};
use harness::profile::Profile;
use harness::scenario::Scenario;
use harness::verdict::Status;
use libtest_mimic::{Failed, Trial};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("any_server::rate-limited-registration-skips", || {
            runtime().block_on(rate_limited_registration_skips())
        }),
        Trial::test(
            "any_server::setup-registration-reuses-a-pooled-client",
            || runtime().block_on(setup_registration_reuses_a_pooled_client()),
        ),
        Trial::test(
            "any_server::only-if-makes-a-scenario-not-applicable",
            || runtime().block_on(only_if_makes_a_scenario_not_applicable()),
        ),
        Trial::test("any_server::unreachable-resource-skips", || {
            runtime().block_on(unreachable_resource_skips())
        }),
        Trial::test("any_server::no-page-user-cannot-deny", || {
            runtime().block_on(no_page_user_cannot_deny())
        }),
        Trial::test("any_server::missing-scope-probe-skips", || {
            runtime().block_on(missing_scope_probe_skips())
        }),
        Trial::test(
            "any_server::pre-registered-public-client-comes-first",
            || runtime().block_on(pre_registered_public_client_comes_first()),
        ),
        Trial::test("any_server::cimd-host-serves-https", || {
            runtime().block_on(cimd_host_serves_https())
        }),
        Trial::test(
            "any_server::pinned-verdicts-catch-drift",
            pinned_verdicts_catch_drift,
        ),
        Trial::test(
            "any_server::skip-if-makes-a-scenario-not-applicable",
            || runtime().block_on(skip_if_makes_a_scenario_not_applicable()),
        ),
        Trial::test("any_server::info-is-noted-never-failed", || {
            runtime().block_on(info_is_noted_never_failed())
        }),
    ]
}

/// An authorization server with metadata and the given answer to registration.
async fn server(registration: ResponseTemplate) -> MockServer {
    let server = mock_authorization_server().await;
    Mock::given(method("POST"))
        .and(path("/register"))
        .respond_with(registration)
        .mount(&server)
        .await;
    server
}

fn registered() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "client_id": "pooled-client",
        "redirect_uris": ["http://127.0.0.1:8976/conform/callback"],
    }))
}

fn rate_limited() -> ResponseTemplate {
    ResponseTemplate::new(429)
        .insert_header("retry-after", "3600")
        .set_body_json(json!({"error": "too_many_requests"}))
}

fn profile(server: &MockServer, extra: &str) -> Result<Profile, Failed> {
    let text = format!(
        "name = \"mock\"\nissuer = \"{}\"\n[capabilities]\ndcr = true\n[user]\nmode = \"none\"\nusername = \"u\"\n{extra}",
        server.uri(),
    );
    Profile::parse(&text, None).map_err(|e| Failed::from(format!("profile: {e}")))
}

fn scenario(steps: &str) -> Result<Scenario, Failed> {
    scenario_at("MUST", steps)
}

fn scenario_at(level: &str, steps: &str) -> Result<Scenario, Failed> {
    let text = format!(
        "id = \"mock.any\"\ntitle = \"t\"\nsuite = \"standard\"\nlevel = \"{level}\"\ncatches = []\n[[refs]]\nid = \"r\"\nurl = \"u\"\nquote = \"q\"\n{steps}"
    );
    toml::from_str(&text).map_err(|e| Failed::from(format!("scenario: {e}")))
}

async fn run(profile: &Profile, steps: &str) -> Result<ScenarioResult, Failed> {
    Ok(run_scenario(profile, &scenario(steps)?, &RunOptions::new(false)).await)
}

fn skipped_because(result: &ScenarioResult, why: &str) -> Result<(), Failed> {
    let reason = result.reason.clone().unwrap_or_default();
    check(
        result.status == Status::Skip && reason.contains(why),
        || {
            format!(
                "expected skip because `{why}`, got {:?}: {reason}",
                result.status
            )
        },
    )
}

const REGISTER_SETUP: &str =
    "[[steps]]\ndo = \"register\"\nsetup = true\nexpect = { status = 201 }\n";
const REGISTER_CHECK: &str = "[[steps]]\ndo = \"register\"\nexpect = { status = 201 }\n";
const METADATA_CHECK: &str = "[[steps]]\ndo = \"fetch_as_metadata\"\nexpect = { status = 200 }\n";

/// A `429` beyond `retry_after_max_secs` with nothing pooled: both a setup
/// and a judged registration end as `skip` naming the rate limit, with no wait.
async fn rate_limited_registration_skips() -> Result<(), Failed> {
    let server = server(rate_limited()).await;
    let profile = profile(&server, "[registration]\nretry_after_max_secs = 1\n")?;
    let setup = run(&profile, &format!("{REGISTER_SETUP}{METADATA_CHECK}")).await?;
    skipped_because(&setup, "refused with 429")?;
    let judged = run(&profile, REGISTER_CHECK).await?;
    skipped_because(&judged, "refused with 429")
}

/// With `reuse = true`, a setup registration takes a client registered
/// earlier in the run with the same metadata; two roles of one scenario
/// never share one, and a judged registration always goes to the server.
async fn setup_registration_reuses_a_pooled_client() -> Result<(), Failed> {
    let server = server(registered()).await;
    let profile = profile(&server, "[registration]\nreuse = true\n")?;
    let first = run(&profile, &format!("{REGISTER_SETUP}{METADATA_CHECK}")).await?;
    check(first.status == Status::Pass, || format!("{first:?}"))?;
    let second = run(&profile, &format!("{REGISTER_SETUP}{METADATA_CHECK}")).await?;
    check(second.status == Status::Pass, || format!("{second:?}"))?;
    let two_roles = format!(
        "{REGISTER_SETUP}[[steps]]\ndo = \"register\"\nas = \"other\"\nsetup = true\nexpect = {{ status = 201 }}\n{METADATA_CHECK}"
    );
    let both = run(&profile, &two_roles).await?;
    check(both.status == Status::Pass, || format!("{both:?}"))?;
    let judged = run(&profile, REGISTER_CHECK).await?;
    check(judged.status == Status::Pass, || format!("{judged:?}"))?;
    let posts = requests_to(&server, "/register").await;
    // One for the first scenario (reused by the second), one more for the
    // second role, and one for the judged registration.
    check(posts == 3, || {
        format!("{posts} registrations reached the server, expected 3")
    })
}

/// A setup step whose expectations hold but whose facts miss `only_if`
/// ends the scenario as `skip`; one whose expectations fail is still `error`.
async fn only_if_makes_a_scenario_not_applicable() -> Result<(), Failed> {
    let server = server(registered()).await;
    let profile = profile(&server, "")?;
    let optional = run(
        &profile,
        &format!("[[steps]]\ndo = \"fetch_as_metadata\"\nsetup = true\nonly_if = {{ \"body.revocation_endpoint\" = \"x\" }}\nexpect = {{ status = 200 }}\n{METADATA_CHECK}"),
    )
    .await?;
    skipped_because(&optional, "not applicable")?;
    let broken = run(
        &profile,
        &format!("[[steps]]\ndo = \"fetch_as_metadata\"\nsetup = true\nonly_if = {{ \"body.revocation_endpoint\" = \"x\" }}\nexpect = {{ status = 500 }}\n{METADATA_CHECK}"),
    )
    .await?;
    check(broken.status == Status::Error, || format!("{broken:?}"))
}

/// A resource declared `reachable = false` is a resource indicator only:
/// calling it is not applicable.
async fn unreachable_resource_skips() -> Result<(), Failed> {
    let server = server(registered()).await;
    let profile = profile(
        &server,
        "[resources.primary]\nurl = \"https://rs.invalid/mcp\"\nscopes = [\"a\"]\nreachable = false\n",
    )?;
    let result = run(
        &profile,
        "[[steps]]\ndo = \"call_resource\"\nexpect = { status = 401 }\n",
    )
    .await?;
    skipped_because(&result, "not reachable")
}

/// A server that approves with no page (`mode = "none"`): a denial is not
/// applicable, and nothing is sent to the authorization endpoint.
async fn no_page_user_cannot_deny() -> Result<(), Failed> {
    let server = server(registered()).await;
    let profile = profile(&server, "")?;
    let result = run(
        &profile,
        &format!("{REGISTER_SETUP}[[steps]]\ndo = \"authorize\"\nresource = \"omit\"\ndeny = true\nexpect = {{ outcome = \"error\" }}\n"),
    )
    .await?;
    skipped_because(&result, "approves with no page")?;
    let asked = requests_to(&server, "/authorize").await;
    check(asked == 0, || {
        format!("{asked} authorization requests were sent")
    })
}

/// A scenario naming `scope_probe` on a resource without one is `skip`.
async fn missing_scope_probe_skips() -> Result<(), Failed> {
    let server = server(registered()).await;
    let profile = profile(
        &server,
        "[resources.primary]\nurl = \"https://rs.invalid/mcp\"\nscopes = [\"a\"]\n",
    )?;
    let result = run(
        &profile,
        &format!("{REGISTER_SETUP}[[steps]]\ndo = \"authorize\"\nscope = \"${{resources.primary.scope_probe.token_scope}}\"\nexpect = {{ outcome = \"code\" }}\n"),
    )
    .await?;
    skipped_because(
        &result,
        "does not declare `resources.primary.scope_probe.token_scope`",
    )
}

/// Client acquisition in the MCP order: a setup registration of a role the
/// profile has a pre-registered public client for uses it, and nothing is
/// sent to the registration endpoint; a role without one, on a server
/// without dynamic registration, makes the scenario not applicable. A
/// registration the scenario judges is always dynamic.
async fn pre_registered_public_client_comes_first() -> Result<(), Failed> {
    let server = server(registered()).await;
    let text = format!(
        "name = \"mock\"\nissuer = \"{}\"\n[user]\nmode = \"none\"\nusername = \"u\"\n[public_clients.self]\nclient_id = \"admin-made\"\n",
        server.uri()
    );
    let profile = Profile::parse(&text, None).map_err(|e| Failed::from(format!("profile: {e}")))?;
    check(
        profile.capabilities.has("public_client") == Some(true),
        || "a pre-registered public client is a public client".into(),
    )?;
    let with_refresh = "[[steps]]\ndo = \"register\"\nsetup = true\nmetadata = { grant_types = [\"authorization_code\", \"refresh_token\"] }\nexpect = { status = 201, equals = { \"body.client_id\" = \"admin-made\", pre_registered = true } }\n";
    let used = run(&profile, &format!("{with_refresh}{METADATA_CHECK}")).await?;
    check(used.status == Status::Pass, || format!("{used:?}"))?;
    let second_role = format!(
        "{REGISTER_SETUP}[[steps]]\ndo = \"register\"\nas = \"other\"\nsetup = true\nexpect = {{ status = 201 }}\n{METADATA_CHECK}"
    );
    let other = run(&profile, &second_role).await?;
    skipped_because(&other, "no public client for role `other`")?;
    let posts = requests_to(&server, "/register").await;
    check(posts == 0, || {
        format!("{posts} registrations reached the server")
    })
}

/// With `[cimd_host]` TLS the harness serves Client ID Metadata Documents
/// over https, with the profile's certificate: a client trusting its issuer
/// fetches the document, and its `client_id` is the https URL. No trust
/// recipe is needed (the target needs no allow-list).
async fn cimd_host_serves_https() -> Result<(), Failed> {
    let server = server(registered()).await;
    let keys = root().join("fixtures/keys");
    let profile = profile(
        &server,
        &format!(
            "[cimd_host]\ntls_certificate = \"{}\"\ntls_key = \"{}\"\n",
            keys.join("cimd-host.crt.pem").display(),
            keys.join("cimd-host.key.pem").display()
        ),
    )?;
    let scenario = scenario(
        "[[steps]]\ndo = \"host_client_metadata\"\nexpect = { ok = true, present = [\"url\"] }\n",
    )?;
    let mut run = harness::steps::Run::new(&profile);
    let step = harness::engine::run_step(&mut run, 1, &scenario.steps[0], Status::Fail).await;
    check(step.status == Status::Pass, || format!("{step:?}"))?;
    let url = run.vars()["registered"]["self"]["client_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    check(url.starts_with("https://127.0.0.1:"), || {
        format!("client_id {url}")
    })?;
    let ca =
        std::fs::read(keys.join("cimd-ca.crt.pem")).map_err(|e| Failed::from(e.to_string()))?;
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&ca).map_err(|e| Failed::from(e.to_string()))?,
        )
        .build()
        .map_err(|e| Failed::from(e.to_string()))?;
    let document: serde_json::Value = client
        .get(&url)
        .send()
        .await
        .map_err(|e| Failed::from(format!("GET {url}: {e}")))?
        .json()
        .await
        .map_err(|e| Failed::from(e.to_string()))?;
    check(document["client_id"] == url.as_str(), || {
        format!("{document}")
    })?;
    // The front speaks TLS only.
    let plain = url.replacen("https://", "http://", 1);
    let refused = reqwest::get(&plain).await.map(|r| r.status().is_success());
    check(!matches!(refused, Ok(true)), || {
        format!("plain http at {plain} was served")
    })
}

/// `[verdicts]` pins every verdict: a changed verdict and an unlisted
/// scenario are drift, in either direction; an exact match passes the gate.
fn pinned_verdicts_catch_drift() -> Result<(), Failed> {
    let baseline: harness::baseline::Baseline =
        toml::from_str("[verdicts]\n\"a.one\" = \"pass\"\n\"a.two\" = \"fail\"\n")
            .map_err(|e| Failed::from(e.to_string()))?;
    let result = |id: &str, status: Status| -> Result<ScenarioResult, Failed> {
        let mut s = scenario("[[steps]]\ndo = \"fetch_as_metadata\"\n")?;
        s.id = id.to_owned();
        let mut r = ScenarioResult::of(&s);
        r.status = status;
        Ok(r)
    };
    let exact = [
        result("a.one", Status::Pass)?,
        result("a.two", Status::Fail)?,
    ];
    let outcome = harness::baseline::compare(&exact, &baseline);
    check(outcome.gate_passes() && outcome.pinned, || {
        format!("{outcome:?}")
    })?;
    let drifted = [
        result("a.one", Status::Pass)?,
        result("a.two", Status::Pass)?,
        result("a.three", Status::Skip)?,
    ];
    let outcome = harness::baseline::compare(&drifted, &baseline);
    let ids: Vec<&str> = outcome.drift.iter().map(|d| d.id.as_str()).collect();
    check(
        !outcome.gate_passes() && ids == ["a.two", "a.three"],
        || format!("{outcome:?}"),
    )
}

/// A step whose expectations hold and whose facts meet `skip_if` ends the
/// scenario as `skip`; facts that miss it leave the scenario running.
async fn skip_if_makes_a_scenario_not_applicable() -> Result<(), Failed> {
    let server = server(registered()).await;
    let profile = profile(&server, "")?;
    let announces = |method: &str| {
        format!(
            "[[steps]]\ndo = \"fetch_as_metadata\"\nsetup = true\nexpect = {{ status = 200 }}\n\
             skip_if = {{ contains = {{ \"body.code_challenge_methods_supported\" = \"{method}\" }} }}\n{METADATA_CHECK}"
        )
    };
    let skipped = run(&profile, &announces("S256")).await?;
    skipped_because(&skipped, "body.code_challenge_methods_supported")?;
    let ran = run(&profile, &announces("plain")).await?;
    check(ran.status == Status::Pass, || format!("{ran:?}"))
}

/// An INFO scenario whose check does not hold is `info`: counted apart,
/// a passing JUnit case, no failure for the baseline gate; `--strict` makes
/// it a `warn`, never a `fail`.
async fn info_is_noted_never_failed() -> Result<(), Failed> {
    let server = server(registered()).await;
    let profile = profile(&server, "")?;
    let info = scenario_at(
        "MAY",
        "[[steps]]\ndo = \"fetch_as_metadata\"\nexpect = { status = 500 }\n",
    )?;
    let noted = run_scenario(&profile, &info, &RunOptions::new(false)).await;
    check(
        noted.status == Status::Info && noted.requirement_broken(),
        || format!("{noted:?}"),
    )?;
    let strict = run_scenario(&profile, &info, &RunOptions::new(true)).await;
    check(strict.status == Status::Warn, || format!("{strict:?}"))?;
    let outcome = harness::baseline::compare(
        std::slice::from_ref(&noted),
        &harness::baseline::Baseline::default(),
    );
    check(outcome.gate_passes(), || format!("{outcome:?}"))?;
    let summary = harness::report::Summary::of([&noted]);
    check(
        summary.info == 1 && summary.fail == 0 && summary.warn == 0,
        || format!("{summary:?}"),
    )?;
    check(summary.counts().contains("1 noted"), || summary.counts())?;
    let report = harness::report::RunReport {
        schema: harness::report::REPORT_SCHEMA,
        tool: "conform test".into(),
        target: harness::report::TargetInfo {
            name: "mock".into(),
            issuer: server.uri(),
            embedded: false,
        },
        revision: harness::revision::Revision::LATEST,
        strict: false,
        duration_ms: 0,
        summary,
        baseline: Some(outcome),
        gate_passed: true,
        scenarios: vec![noted],
    };
    let junit = harness::report::junit(&report).map_err(|e| Failed::from(e.to_string()))?;
    check(
        !junit.contains("<failure") && !junit.contains("<error") && junit.contains("INFO"),
        || junit.clone(),
    )?;
    let table = harness::report::console_table(&report);
    check(table.contains("INFO") && table.contains("1 noted"), || {
        table.clone()
    })?;
    let html = harness::html::render(&report, None);
    check(html.contains("1 info"), || {
        "no info count in report.html".into()
    })
}
