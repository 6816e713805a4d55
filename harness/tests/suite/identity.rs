//! `identity::*`: each party has its own HTTP identity. The user's browser
//! holds cookies; the MCP client, agents, resource servers, the admin and the
//! test driver talk on the back channel, which holds none. Real scenarios of
//! the authorization-code flow (token, refresh, revocation, introspection)
//! run against the embedded hub, and every step's transcript is read.
//!
//! The reference hub sets no cookie on its authorization, login and consent
//! pages, so on its own a shared cookie jar would go unnoticed there.
//! `identity::browser-cookie-stays-in-the-browser` therefore first lets the
//! browser receive a session cookie for the hub's host (from a loopback
//! server on the same host: cookies ignore ports), then runs the scenarios'
//! steps: the browser's requests to the hub carry it, and no back-channel
//! request may. `steps::run::tests` proves the same against a server that
//! sets the cookie on its own authorization page.

use harness::engine::{run_scenario, run_step, RunOptions, StepResult};
use harness::http::{Exchange, Identity};
use harness::profile::Profile;
use harness::scenario::Scenario;
use harness::steps::Run;
use harness::verdict::Status;
use libtest_mimic::{Failed, Trial};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

pub fn identity_trials() -> Vec<Trial> {
    vec![
        Trial::test("identity::back-channel-sends-no-cookie", || {
            // The shared hub starts on its own runtime, outside this one.
            let profile = shared_target();
            runtime().block_on(back_channel_sends_no_cookie(profile))
        }),
        Trial::test("identity::browser-cookie-stays-in-the-browser", || {
            let profile = shared_target();
            runtime().block_on(browser_cookie_stays_in_the_browser(profile))
        }),
    ]
}

/// The value of the session cookie the browser receives.
const SESSION: &str = "browser-session-0c7f3a";

/// Scenarios of the authorization-code flow with token, refresh, revocation
/// and introspection requests, none exclusive (they share the embedded hub).
fn flows() -> Vec<Scenario> {
    let wanted = ["authcode.", "refresh.", "revocation.", "introspection."];
    scenarios()
        .into_iter()
        .filter(|s| wanted.iter().any(|w| s.id.starts_with(w)) && !s.exclusive())
        .collect()
}

fn header<'a>(e: &'a Exchange, name: &str) -> Option<&'a str> {
    e.request_headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The actions the user performs in a browser; every other action's party
/// (MCP client, agent, resource server, admin, test driver) is on the back channel.
const BROWSER_ACTIONS: &[&str] = &["authorize", "connect"];

/// Every exchange of every step, each with the identity that sent it (read
/// from the `user-agent` it really sent); fails when a step's transcript
/// dropped exchanges, an exchange has no known identity, or a step whose
/// party is not the user sent anything as the browser.
fn by_identity<'a>(
    scenario: &str,
    steps: &'a [StepResult],
) -> Result<Vec<(Identity, &'a Exchange)>, Failed> {
    let mut seen = Vec::new();
    for step in steps {
        check(step.transcript.omitted == 0, || {
            format!(
                "{scenario} step {}: the transcript dropped exchanges",
                step.index
            )
        })?;
        for r in &step.transcript.exchanges {
            let agent = header(&r.exchange, "user-agent");
            let identity = [Identity::Browser, Identity::BackChannel]
                .into_iter()
                .find(|i| agent == Some(i.user_agent()))
                .ok_or_else(|| {
                    Failed::from(format!(
                        "{scenario} step {}: {} {} sent by no party's identity ({agent:?})",
                        step.index, r.exchange.method, r.exchange.url
                    ))
                })?;
            check(
                identity == Identity::BackChannel || BROWSER_ACTIONS.contains(&&*step.action),
                || {
                    format!(
                        "{scenario} step {} ({}): {} {} was sent as the browser",
                        step.index, step.action, r.exchange.method, r.exchange.url
                    )
                },
            )?;
            seen.push((identity, &r.exchange));
        }
    }
    Ok(seen)
}

/// No back-channel exchange carries a `cookie` header.
fn no_back_channel_cookie(scenario: &str, seen: &[(Identity, &Exchange)]) -> Result<(), Failed> {
    for (identity, e) in seen {
        check(
            *identity == Identity::Browser || header(e, "cookie").is_none(),
            || {
                format!(
                    "{scenario}: the back channel sent a cookie: {} {} cookie: {:?}",
                    e.method,
                    e.url,
                    header(e, "cookie")
                )
            },
        )?;
    }
    Ok(())
}

/// The scenarios as the engine runs them: they pass, both identities spoke,
/// the hub's sign-in set its session cookie, the browser sent it back, and
/// the back channel never did.
async fn back_channel_sends_no_cookie(profile: &Profile) -> Result<(), Failed> {
    let flows = flows();
    check(flows.len() >= 5, || {
        format!("only {} flow scenarios found", flows.len())
    })?;
    let options = RunOptions::new(true);
    let (mut browser, mut back, mut set_cookies, mut sent_back) = (0, 0, 0, 0);
    for scenario in &flows {
        let result = run_scenario(profile, scenario, &options).await;
        check(result.status == Status::Pass, || {
            format!(
                "{} is {}: {:?}",
                result.id,
                result.status.as_str(),
                result.reason
            )
        })?;
        let seen = by_identity(&result.id, &result.steps)?;
        no_back_channel_cookie(&result.id, &seen)?;
        browser += seen.iter().filter(|(i, _)| *i == Identity::Browser).count();
        back += seen
            .iter()
            .filter(|(i, _)| *i == Identity::BackChannel)
            .count();
        set_cookies += seen
            .iter()
            .flat_map(|(_, e)| &e.response_headers)
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .count();
        sent_back += seen
            .iter()
            .filter(|(i, e)| {
                *i == Identity::Browser
                    && header(e, "cookie").is_some_and(|c| c.contains("hub_signin="))
            })
            .count();
    }
    check(browser > 0 && back > 0, || {
        format!("browser requests: {browser}, back-channel requests: {back}")
    })?;
    // The sign-in session (the consent answers only to the browser that
    // signed in): set by the hub, held by the browser, sent back by it alone.
    check(set_cookies > 0 && sent_back > 0, || {
        format!(
            "the hub set {set_cookies} cookies and the browser sent its sign-in cookie back {sent_back} times"
        )
    })
}

/// The scenarios' steps, run one by one through the engine with a browser
/// that holds a session cookie for the hub's host: the browser sends it to
/// the hub, the back channel never does, and reports redact its value.
async fn browser_cookie_stays_in_the_browser(profile: &Profile) -> Result<(), Failed> {
    let issuer = url::Url::parse(&profile.issuer).map_err(|e| Failed::from(e.to_string()))?;
    check(issuer.host_str() == Some("127.0.0.1"), || {
        format!("the embedded hub is not on 127.0.0.1: {issuer}")
    })?;
    let cookie_host = MockServer::start().await;
    Mock::given(path("/login"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("set-cookie", format!("sid={SESSION}; Path=/; HttpOnly")),
        )
        .mount(&cookie_host)
        .await;

    let mut with_cookie = 0;
    for scenario in flows() {
        let mut run = Run::new(profile);
        run.browser
            .send(run.browser.get(&format!("{}/login", cookie_host.uri())))
            .await
            .map_err(|e| Failed::from(e.to_string()))?;
        let _ = run.http.take_transcript();
        let mut steps = Vec::new();
        for (i, step) in scenario.steps.iter().enumerate() {
            steps.push(run_step(&mut run, i + 1, step, Status::Fail).await);
        }
        run.teardown().await;
        let failed: Vec<_> = steps.iter().filter(|s| s.status != Status::Pass).collect();
        check(failed.is_empty(), || {
            format!(
                "{} fails with a browser cookie: {:?}",
                scenario.id,
                failed
                    .iter()
                    .map(|s| (s.index, &s.action, &s.messages))
                    .collect::<Vec<_>>()
            )
        })?;
        let seen = by_identity(&scenario.id, &steps)?;
        no_back_channel_cookie(&scenario.id, &seen)?;
        let expected = format!("sid={SESSION}");
        with_cookie += seen
            .iter()
            .filter(|(i, e)| *i == Identity::Browser && header(e, "cookie") == Some(&expected))
            .count();

        // The value is a secret the scenario saw: no transcript shows it.
        check(run.evidence.secrets.iter().any(|s| s == SESSION), || {
            format!(
                "{}: the cookie's value is not among the secrets",
                scenario.id
            )
        })?;
        for step in &mut steps {
            step.transcript.redact(&run.evidence.secrets);
            for r in &step.transcript.exchanges {
                let shown = serde_json::to_string(&r.exchange).unwrap_or_default();
                check(!shown.contains(SESSION), || {
                    format!("{}: the cookie's value in {shown}", scenario.id)
                })?;
            }
        }
    }
    // The browser really held the cookie and sent it to the hub: a shared jar
    // would have put it on the back channel's requests too.
    check(with_cookie > 0, || {
        "no browser request to the hub carried the session cookie".into()
    })
}
