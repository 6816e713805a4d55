//! `user_driver::*`: the user driver and the profile against controlled pages.
//!
//! A loopback wiremock server plays an authorization server we did not
//! write: its metadata, registration endpoint and pages are exactly what
//! each test needs. The harness must never do something other than what a
//! scenario asked (approve instead of deny, keep a scope it was told to
//! untick), must report a refusal page as `not_redirected`, and must send
//! what the profile adds to every request.

use harness::engine::{run_scenario, RunOptions, StepResult};
use harness::profile::Profile;
use harness::scenario::Scenario;
use harness::verdict::Status;
use libtest_mimic::{Failed, Trial};
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("user_driver::deny-without-deny-rule-is-error", || {
            runtime().block_on(deny_without_deny_rule())
        }),
        Trial::test("user_driver::untick-without-checkbox-is-error", || {
            runtime().block_on(untick_without_checkbox())
        }),
        Trial::test("user_driver::error-page-is-not-redirected", || {
            runtime().block_on(error_page_not_redirected())
        }),
        Trial::test("user_driver::login-and-consent-share-a-url", || {
            runtime().block_on(login_and_consent_share_a_url())
        }),
        Trial::test("user_driver::deny-link-followed", || {
            runtime().block_on(deny_link_followed())
        }),
        Trial::test("user_driver::deny-form-submitted", || {
            runtime().block_on(deny_form_submitted())
        }),
        Trial::test("user_driver::extra-params-and-metadata-sent", || {
            runtime().block_on(extras_sent())
        }),
        Trial::test("user_driver::refused-sign-in-is-error", || {
            runtime().block_on(refused_sign_in())
        }),
        Trial::test("user_driver::undeclared-is-skipped", undeclared_is_skipped),
        Trial::test("user_driver::undeclared-client-is-skipped", || {
            runtime().block_on(undeclared_client_is_skipped())
        }),
        Trial::test(
            "user_driver::bad-profile-keys-refused",
            bad_profile_keys_refused,
        ),
    ]
}

const CONSENT_NO_DENY: &str = r#"<html><body><form id="consent" method="post" action="/decide">
<input type="checkbox" name="scope" value="a" checked><input type="checkbox" name="scope" value="b" checked>
<button type="submit" name="decision" value="approve">Allow</button></form></body></html>"#;

const CONSENT_NO_BOXES: &str = r#"<html><body><form id="consent" method="post" action="/decide">
<p>Allow a and b?</p>
<button type="submit" name="decision" value="approve">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button></form></body></html>"#;

const LOGIN: &str = r#"<html><body><form id="login" method="post" action="/authorize">
<input name="username"><input type="password" name="password">
<button type="submit">Sign in</button></form></body></html>"#;

const CONSENT_DENY_LINK: &str = r#"<html><body><form id="consent" method="post" action="/decide">
<input type="checkbox" name="scope" value="a" checked>
<button type="submit" name="decision" value="approve">Allow</button></form>
<a id="deny" href="/deny">No thanks</a></body></html>"#;

const CONSENT_RULE: &str = r#"
[[user.forms]]
url_contains = "/authorize"
form = "form#consent"
check_all = ["scope"]
submit = { name = "decision", value = "approve" }
"#;

/// A mock authorization server: metadata and registration; pages are added per test.
async fn server() -> MockServer {
    let server = mock_authorization_server().await;
    Mock::given(method("POST"))
        .and(path("/register"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "client_id": "mock-client",
            "redirect_uris": ["http://127.0.0.1:8976/conform/callback"],
        })))
        .mount(&server)
        .await;
    // Approving (from any consent form) redirects back with a code.
    Mock::given(method("POST"))
        .and(path("/decide"))
        .respond_with(ResponseTemplate::new(302).insert_header(
            "location",
            "http://127.0.0.1:8976/conform/callback?code=mock-code&state=s",
        ))
        .mount(&server)
        .await;
    server
}

async fn page(server: &MockServer, http_method: &str, at: &str, status: u16, html: &str) {
    Mock::given(method(http_method))
        .and(path(at))
        .respond_with(
            ResponseTemplate::new(status)
                .insert_header("content-type", "text/html")
                .set_body_string(html),
        )
        .mount(server)
        .await;
}

fn profile(server: &MockServer, extra: &str) -> Result<Profile, Failed> {
    let forms = if extra.contains("[[user.forms]]") {
        ""
    } else {
        CONSENT_RULE
    };
    let text = format!(
        "name = \"mock\"\nissuer = \"{}\"\n[user]\nmode = \"form\"\nusername = \"u\"\npassword = \"p\"\n{forms}\n{extra}",
        server.uri(),
    );
    Profile::parse(&text, None).map_err(|e| Failed::from(format!("profile: {e}")))
}

/// A scenario that registers, then runs the given `authorize` step.
fn scenario(authorize: &str) -> Result<Scenario, Failed> {
    let text = format!(
        r#"id = "mock.flow"
title = "t"
suite = "standard"
level = "MUST"
catches = []
[[refs]]
id = "r"
url = "u"
quote = "q"
[[steps]]
do = "register"
setup = true
{authorize}"#
    );
    toml::from_str(&text).map_err(|e| Failed::from(format!("scenario: {e}")))
}

async fn authorize_step(profile: &Profile, step: &str) -> Result<StepResult, Failed> {
    let scenario = scenario(step)?;
    let result = run_scenario(profile, &scenario, &RunOptions::new(false)).await;
    result
        .steps
        .get(1)
        .cloned()
        .ok_or_else(|| Failed::from(format!("no authorize step ran: {:?}", result.reason)))
}

fn messages(step: &StepResult) -> String {
    step.messages.join(" | ")
}

/// A consent page with no deny button: pressing approve would get a code
/// and blame the server for it. It must be an error naming the rule.
async fn deny_without_deny_rule() -> Result<(), Failed> {
    let server = server().await;
    page(&server, "GET", "/authorize", 200, CONSENT_NO_DENY).await;
    let profile = profile(&server, "")?;
    let step = authorize_step(
        &profile,
        "[[steps]]\ndo = \"authorize\"\nresource = \"omit\"\nscope = \"a b\"\ndeny = true\nexpect = { outcome = \"error\" }\n",
    )
    .await?;
    check(step.status == Status::Error, || {
        format!("expected error, got {:?}: {}", step.status, messages(&step))
    })?;
    check(
        messages(&step).contains("no `deny` button")
            && messages(&step).contains("url_contains = \"/authorize\""),
        || {
            format!(
                "the error does not name the missing deny rule: {}",
                messages(&step)
            )
        },
    )?;
    let approved = received(&server, "/decide").await;
    check(approved.is_empty(), || {
        format!("the harness submitted the consent form anyway: {approved:?}")
    })
}

/// A consent page without per-scope checkboxes: unticking is impossible,
/// and approving would grant the scope the scenario declined.
async fn untick_without_checkbox() -> Result<(), Failed> {
    let server = server().await;
    page(&server, "GET", "/authorize", 200, CONSENT_NO_BOXES).await;
    let profile = profile(
        &server,
        r#"[[user.forms]]
url_contains = "/authorize"
form = "form#consent"
check_all = ["scope"]
submit = { name = "decision", value = "approve" }
deny = { name = "decision", value = "deny" }
"#,
    )?;
    let step = authorize_step(
        &profile,
        "[[steps]]\ndo = \"authorize\"\nresource = \"omit\"\nscope = \"a b\"\nuncheck = [\"b\"]\nexpect = { outcome = \"code\" }\n",
    )
    .await?;
    check(step.status == Status::Error, || {
        format!("expected error, got {:?}: {}", step.status, messages(&step))
    })?;
    check(
        messages(&step).contains("unticks `b`") && messages(&step).contains("per_scope_consent"),
        || format!("the error does not name the checkbox: {}", messages(&step)),
    )
}

/// A server that will not redirect to an unknown redirect URI shows its own
/// page: with 400 that is `not_redirected`; with 200 it is too when the
/// profile names the page, and otherwise an error naming the missing rule.
async fn error_page_not_redirected() -> Result<(), Failed> {
    let error_page = r#"<html><body><h1 id="oauth-error">Invalid redirect_uri</h1></body></html>"#;
    let step = "[[steps]]\ndo = \"authorize\"\nresource = \"omit\"\nscope = \"a\"\nexpect = { outcome = \"not_redirected\" }\n";

    let server_400 = server().await;
    page(&server_400, "GET", "/authorize", 400, error_page).await;
    let result = authorize_step(&profile(&server_400, "")?, step).await?;
    check(result.status == Status::Pass, || {
        format!("400 page: {:?}: {}", result.status, messages(&result))
    })?;

    let server_200 = server().await;
    page(&server_200, "GET", "/authorize", 200, error_page).await;
    let mut named = profile(&server_200, "")?;
    named.user.error_page_has = Some("h1#oauth-error".into());
    let result = authorize_step(&named, step).await?;
    check(result.status == Status::Pass, || {
        format!(
            "200 page named by error_page_has: {:?}: {}",
            result.status,
            messages(&result)
        )
    })?;

    let unnamed = profile(
        &server_200,
        &CONSENT_RULE.replace("form = ", "page_has = \"form#consent\"\nform = "),
    )?;
    let result = authorize_step(&unnamed, step).await?;
    check(
        result.status == Status::Error && messages(&result).contains("no [[user.forms]] rule"),
        || {
            format!(
                "200 page matching no rule: {:?}: {}",
                result.status,
                messages(&result)
            )
        },
    )
}

/// A sign-in the server refuses re-shows the login form with a 401: the
/// harness could not sign in, which is no verdict on the server's
/// redirects. It is an error naming the rule, not `not_redirected`.
async fn refused_sign_in() -> Result<(), Failed> {
    let server = server().await;
    page(&server, "GET", "/authorize", 200, LOGIN).await;
    page(&server, "POST", "/authorize", 401, LOGIN).await;
    let profile = profile(
        &server,
        r#"[[user.forms]]
url_contains = "/authorize"
page_has = "form#login"
form = "form#login"
fill = { username = "${user.username}", password = "${user.password}" }
"#,
    )?;
    let step = authorize_step(
        &profile,
        "[[steps]]\ndo = \"authorize\"\nresource = \"omit\"\nscope = \"a\"\nexpect = { outcome = \"code\" }\n",
    )
    .await?;
    check(
        step.status == Status::Error
            && messages(&step).contains("again after the user submitted it"),
        || format!("{:?}: {}", step.status, messages(&step)),
    )?;
    let attempts = received(&server, "/authorize").await;
    check(attempts.len() == 1, || {
        format!("the login form was submitted {} times", attempts.len())
    })
}

/// A step that needs a client the profile does not declare ends the
/// scenario as `skip`, naming it: the requirement does not apply to the
/// target as described, and nothing is blamed on it.
async fn undeclared_client_is_skipped() -> Result<(), Failed> {
    let server = server().await;
    let profile = profile(&server, "")?;
    let scenario: Scenario = toml::from_str(
        r#"id = "mock.agent"
title = "t"
suite = "standard"
level = "MUST"
catches = []
[[refs]]
id = "r"
url = "u"
quote = "q"
[[steps]]
do = "client_credentials"
expect = { status = 200 }
"#,
    )
    .map_err(|e| Failed::from(format!("scenario: {e}")))?;
    let result = run_scenario(&profile, &scenario, &RunOptions::new(false)).await;
    let reason = result.reason.clone().unwrap_or_default();
    check(
        result.status == Status::Skip && reason.contains("declares no [clients.agent]"),
        || format!("{:?}: {reason}", result.status),
    )
}

/// Login and consent on one URL, told apart by what the page shows.
async fn login_and_consent_share_a_url() -> Result<(), Failed> {
    let server = server().await;
    page(&server, "GET", "/authorize", 200, LOGIN).await;
    Mock::given(method("POST"))
        .and(path("/authorize"))
        .and(body_string_contains("username=u"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/html")
                .set_body_string(CONSENT_NO_DENY),
        )
        .mount(&server)
        .await;
    let profile = profile(
        &server,
        r#"[[user.forms]]
url_contains = "/authorize"
page_has = "form#login"
form = "form#login"
fill = { username = "${user.username}", password = "${user.password}" }

[[user.forms]]
url_contains = "/authorize"
page_has = "form#consent"
form = "form#consent"
check_all = ["scope"]
submit = { name = "decision", value = "approve" }
"#,
    )?;
    let step = authorize_step(
        &profile,
        "[[steps]]\ndo = \"authorize\"\nresource = \"omit\"\nscope = \"a b\"\nexpect = { outcome = \"code\", equals = { consent_offered = [\"a\", \"b\"] } }\n",
    )
    .await?;
    check(step.status == Status::Pass, || {
        format!("{:?}: {}", step.status, messages(&step))
    })?;
    let decided = received(&server, "/decide").await;
    check(
        decided.len() == 1 && decided[0].contains("decision=approve"),
        || format!("the consent form was not submitted once with approve: {decided:?}"),
    )
}

/// A consent page whose deny is a link: the driver follows it.
async fn deny_link_followed() -> Result<(), Failed> {
    let server = server().await;
    page(&server, "GET", "/authorize", 200, CONSENT_DENY_LINK).await;
    Mock::given(method("GET"))
        .and(path("/deny"))
        .respond_with(access_denied())
        .mount(&server)
        .await;
    denies_without_approving(&server, "deny_link = \"a#deny\"", "following the link").await
}

/// A consent page whose deny is a form of its own, with its own hidden field.
async fn deny_form_submitted() -> Result<(), Failed> {
    let server = server().await;
    page(
        &server,
        "GET",
        "/authorize",
        200,
        r#"<html><body><form id="consent" method="post" action="/decide">
<input type="checkbox" name="scope" value="a" checked>
<button type="submit" name="decision" value="approve">Allow</button></form>
<form id="refuse" method="post" action="/refuse"><input type="hidden" name="csrf" value="t1">
<button type="submit">Refuse</button></form></body></html>"#,
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/refuse"))
        .and(body_string_contains("csrf=t1"))
        .respond_with(access_denied())
        .mount(&server)
        .await;
    denies_without_approving(
        &server,
        "deny_form = \"form#refuse\"",
        "submitting the deny form",
    )
    .await
}

/// The server's redirect back to the client with `access_denied`.
fn access_denied() -> ResponseTemplate {
    ResponseTemplate::new(302).insert_header(
        "location",
        "http://127.0.0.1:8976/conform/callback?error=access_denied&state=s",
    )
}

/// With a consent rule whose deny is `deny`, a denial reaches the client as
/// `access_denied` and the approve form is never submitted.
async fn denies_without_approving(
    server: &MockServer,
    deny: &str,
    how: &str,
) -> Result<(), Failed> {
    let profile = profile(
        server,
        &format!(
            "[[user.forms]]\nurl_contains = \"/authorize\"\nform = \"form#consent\"\ncheck_all = [\"scope\"]\nsubmit = {{ name = \"decision\", value = \"approve\" }}\n{deny}\n"
        ),
    )?;
    let step = authorize_step(
        &profile,
        "[[steps]]\ndo = \"authorize\"\nresource = \"omit\"\nscope = \"a\"\ndeny = true\nexpect = { outcome = \"error\", error = \"access_denied\" }\n",
    )
    .await?;
    check(step.status == Status::Pass, || {
        format!("{:?}: {}", step.status, messages(&step))
    })?;
    let approved = received(server, "/decide").await;
    check(approved.is_empty(), || {
        format!("the harness approved instead of {how}: {approved:?}")
    })
}

/// `[authorization]` extras reach the authorization request and
/// `[registration] extra_metadata` the registration, under the scenario's own metadata.
async fn extras_sent() -> Result<(), Failed> {
    let server = server().await;
    page(&server, "GET", "/authorize", 200, CONSENT_NO_DENY).await;
    let profile = profile(
        &server,
        r#"[authorization]
extra_params = { audience = "api://mock", prompt = "login" }
extra_scopes = ["openid"]
[authorization.clients.self]
extra_params = { prompt = "consent" }
[registration]
extra_metadata = { application_type = "native", client_name = "from the profile" }
"#,
    )?;
    let scenario: Scenario = toml::from_str(
        r#"id = "mock.extras"
title = "t"
suite = "standard"
level = "MUST"
catches = []
[[refs]]
id = "r"
url = "u"
quote = "q"
[[steps]]
do = "register"
metadata = { client_name = "from the scenario" }
expect = { status = 201 }
[[steps]]
do = "authorize"
resource = "omit"
scope = "a"
expect = { outcome = "code" }
"#,
    )
    .map_err(|e| Failed::from(e.to_string()))?;
    let result = run_scenario(&profile, &scenario, &RunOptions::new(false)).await;
    check(
        result.steps.iter().all(|s| s.status == Status::Pass),
        || {
            format!(
                "{:?}",
                result.steps.iter().map(messages).collect::<Vec<_>>()
            )
        },
    )?;
    let registrations = received(&server, "/register").await;
    let body: Value = serde_json::from_str(registrations.first().map_or("", String::as_str))
        .map_err(|e| Failed::from(format!("registration body: {e}")))?;
    check(body["application_type"] == "native", || {
        format!("no application_type from the profile: {body}")
    })?;
    check(body["client_name"] == "from the scenario", || {
        format!("the profile's metadata won over the scenario's: {body}")
    })?;
    let requests = server.received_requests().await.unwrap_or_default();
    let authorize = requests
        .iter()
        .find(|r| r.method.as_str() == "GET" && r.url.path() == "/authorize")
        .ok_or_else(|| Failed::from("no authorization request"))?;
    let query: std::collections::BTreeMap<String, String> =
        authorize.url.query_pairs().into_owned().collect();
    check(
        query.get("audience").map(String::as_str) == Some("api://mock"),
        || format!("no audience: {query:?}"),
    )?;
    check(
        query.get("prompt").map(String::as_str) == Some("consent"),
        || format!("the client's own prompt did not replace the common one: {query:?}"),
    )?;
    check(
        query.get("scope").map(String::as_str) == Some("a openid"),
        || format!("the extra scope was not appended: {query:?}"),
    )
}

/// Bodies of the requests the mock received at `at`.
async fn received(server: &MockServer, at: &str) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == at && r.method.as_str() == "POST")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

/// Capabilities are off unless declared, a scenario needing a resource role
/// the profile lacks is skipped, and so is unticking when the consent page
/// is all or nothing.
fn undeclared_is_skipped() -> Result<(), Failed> {
    let text = r#"name = "bare"
issuer = "http://127.0.0.1:9/"
[user]
mode = "form"
username = "u"
per_scope_consent = false
[[user.forms]]
url_contains = "/"
"#;
    let profile = Profile::parse(text, None).map_err(Failed::from)?;
    for capability in ["dcr", "cimd", "rfc9207", "revocation", "introspection"] {
        check(profile.capabilities.has(capability) == Some(false), || {
            format!("`{capability}` is on though the profile does not declare it")
        })?;
    }
    // A `[capabilities]` section that declares one declares only that one.
    let one = Profile::parse(
        &text.replace("[user]", "[capabilities]\ncontrol_api = true\n[user]"),
        None,
    )
    .map_err(Failed::from)?;
    for capability in ["dcr", "cimd", "rfc9207", "revocation", "introspection"] {
        check(one.capabilities.has(capability) == Some(false), || {
            format!("`{capability}` is on though [capabilities] does not declare it")
        })?;
    }
    let scenarios = scenarios();
    for (id, wanted) in [
        ("prm.challenge", "resources.primary"),
        ("dcr.register-public-client", "dcr"),
        ("consent.user-declines-one", "[hub] product_model"),
    ] {
        let scenario = scenarios
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| Failed::from(format!("no scenario {id}")))?;
        let result = runtime().block_on(run_scenario(&profile, scenario, &RunOptions::new(false)));
        check(
            result.status == Status::Skip
                && result.reason.as_deref().unwrap_or("").contains(wanted),
            || format!("{id}: {:?} {:?}", result.status, result.reason),
        )?;
    }
    // With every other capability declared, the untick scenario still skips.
    let declared = text.replace(
        "[user]",
        "[resources.primary]\nurl = \"http://127.0.0.1:9/mcp\"\nscopes = [\"a\"]\n[capabilities]\ndcr = true\n[user]",
    );
    let scenario = scenarios
        .iter()
        .find(|s| s.id == "consent.user-declines-one")
        .ok_or_else(|| Failed::from("no consent.user-declines-one"))?;
    // A product-model requirement: skipped unless the profile declares the model.
    let plain = Profile::parse(&declared, None).map_err(Failed::from)?;
    let result = runtime().block_on(run_scenario(&plain, scenario, &RunOptions::new(false)));
    check(
        result.status == Status::Skip
            && result
                .reason
                .as_deref()
                .unwrap_or("")
                .contains("[hub] product_model"),
        || format!("without [hub]: {:?} {:?}", result.status, result.reason),
    )?;
    let declared = declared.replace(
        "[capabilities]",
        "[hub]\nproduct_model = true\n[capabilities]",
    );
    let profile = Profile::parse(&declared, None).map_err(Failed::from)?;
    let result = runtime().block_on(run_scenario(&profile, scenario, &RunOptions::new(false)));
    check(
        result.status == Status::Skip
            && result
                .reason
                .as_deref()
                .unwrap_or("")
                .contains("per_scope_consent"),
        || format!("{:?} {:?}", result.status, result.reason),
    )
}

/// Unknown keys in the new sections, and extra parameters that would
/// override the harness's own, are refused by name (`conform` exits 2).
fn bad_profile_keys_refused() -> Result<(), Failed> {
    let base = "name = \"x\"\nissuer = \"http://127.0.0.1:9/\"\n[user]\nmode = \"form\"\nusername = \"u\"\n[[user.forms]]\nurl_contains = \"/\"\n";
    for (extra, named) in [
        ("[authorization]\nextra_parms = {}\n", "extra_parms"),
        ("[registration]\nmetadata = {}\n", "metadata"),
        (
            "[authorization]\nextra_params = { state = \"x\" }\n",
            "state",
        ),
        (
            "[authorization.clients.self]\nextra_params = { redirect_uri = \"x\" }\n",
            "redirect_uri",
        ),
        ("[[user.forms]]\npage_hass = \"form\"\n", "page_hass"),
        ("[[user.forms]]\ndeny_link = \"a[\"\n", "deny_link"),
    ] {
        match Profile::parse(&format!("{base}{extra}"), None) {
            Ok(_) => return Err(format!("accepted: {extra}").into()),
            Err(e) => check(e.contains(named), || format!("`{extra}` refused as: {e}"))?,
        }
    }
    let dir = temp_dir("bad-profile-key");
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        format!("{base}[authorization]\nextra_parms = {{}}\n"),
    )
    .map_err(|e| Failed::from(e.to_string()))?;
    let output = conform(&["--target", file.to_str().unwrap_or_default()]);
    check(
        code(&output) == 2 && text(&output).contains("extra_parms"),
        || format!("exit {}: {}", code(&output), text(&output)),
    )
}
