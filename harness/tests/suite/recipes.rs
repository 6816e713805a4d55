//! `recipes::*`: the operations no standard defines, as the profile's recipes.
//!
//! * `bad-profiles-exit-2`: an unknown operation, a `${…}` that is neither an
//!   input nor a profile value, a bad method, a `read` that is not a JSON
//!   pointer, an unknown key in a recipe or in the profile: `conform` exits 2
//!   naming the file, the key and its line.
//! * `missing-recipe-skips`: a step needing an operation the profile has no
//!   recipe for ends its scenario as `skip`, with the reason.
//! * `another-shape`: against a mock admin API of another shape than the
//!   reference hub's, a recipe drives a real scenario step and its teardown;
//!   a secret it sends never reaches a report.
//! * `unexpected-answer-is-error`: an answer without the output the harness
//!   needs is an `error` quoting the exchange.

use harness::engine::{run_scenario, RunOptions, ScenarioResult};
use harness::profile::Profile;
use harness::scenario::Scenario;
use harness::verdict::Status;
use libtest_mimic::{Failed, Trial};
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("recipes::bad-profiles-exit-2", bad_profiles_exit_2),
        Trial::test("recipes::missing-recipe-skips", missing_recipe_skips),
        Trial::test("recipes::another-shape", || {
            runtime().block_on(another_shape())
        }),
        Trial::test("recipes::unexpected-answer-is-error", || {
            runtime().block_on(unexpected_answer_is_error())
        }),
    ]
}

/// A valid profile of eight lines; what a case adds starts on line 9.
const BASE: &str = "name = \"x\"\nbase = \"http://127.0.0.1:1\"\nissuer = \"${base}/oauth\"\n[user]\nmode = \"form\"\nusername = \"u\"\n[[user.forms]]\nurl_contains = \"/\"\n";

fn bad_profiles_exit_2() -> Result<(), Failed> {
    check(Profile::parse(BASE, None).is_ok(), || {
        "the base profile is invalid".into()
    })?;
    let dir = temp_dir("bad-recipes");
    // (what the profile adds, what the error must name)
    let cases: [(&str, &[&str]); 6] = [
        (
            "[operations.create_polcy]\nmethod = \"POST\"\nurl = \"${base}/p\"\n",
            &["line 9", "operations.create_polcy", "no such operation", "create_policy"],
        ),
        (
            "[operations.delete_policy]\nmethod = \"DELETE\"\nurl = \"${base}/p/${policy_id}\"\n",
            &["line 11", "operations.delete_policy.url", "${policy_id}", "(id)"],
        ),
        (
            "[operations.rotate_keys]\nmethod = \"FETCH\"\nurl = \"${base}/k\"\n",
            &["line 10", "operations.rotate_keys.method", "FETCH"],
        ),
        (
            "[operations.create_policy]\nmethod = \"POST\"\nurl = \"${base}/p\"\nread = { id = \"id\" }\n",
            &["line 12", "operations.create_policy.read.id", "JSON pointer"],
        ),
        (
            "[operations.rotate_keys]\nmethod = \"POST\"\nurl = \"${base}/k\"\nbodyy = {}\n",
            &["line 12", "unknown field `bodyy`"],
        ),
        (
            "[control]\nurl = \"${base}/control\"\ntoken = \"t\"\n",
            &["line 9", "unknown field `control`"],
        ),
    ];
    for (i, (extra, named)) in cases.iter().enumerate() {
        let file = dir.join(format!("bad-{i}.toml"));
        std::fs::write(&file, format!("{BASE}{extra}")).map_err(|e| Failed::from(e.to_string()))?;
        let output = conform(&[
            "--target",
            file.to_str().unwrap_or_default(),
            "--scenario",
            "metadata.issuer-exact",
        ]);
        let said = text(&output);
        check(code(&output) == 2, || {
            format!("case {i}: exit {}: {said}", code(&output))
        })?;
        let file_name = file.display().to_string();
        for wanted in named.iter().copied().chain([file_name.as_str()]) {
            check(said.contains(wanted), || {
                format!("case {i}: `{wanted}` not in: {said}")
            })?;
        }
    }
    Ok(())
}

fn scenario(id: &str) -> Result<Scenario, Failed> {
    scenarios()
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| Failed::from(format!("no scenario {id}")))
}

fn missing_recipe_skips() -> Result<(), Failed> {
    for (id, operation) in [
        ("policy.and-within", "create_policy"),
        ("code.expired-refused", "advance_clock"),
        ("keys.rotation-overlap", "rotate_keys"),
    ] {
        let mut profile = shared_target().clone();
        profile.operations.remove(operation);
        let scenario = scenario(id)?;
        let result = runtime().block_on(run_scenario(&profile, &scenario, &RunOptions::new(true)));
        let wanted = format!("the profile has no recipe for operation {operation}");
        check(
            result.status == Status::Skip
                && result.reason.as_deref().unwrap_or("").contains(&wanted),
            || format!("{id}: {:?} {:?}", result.status, result.reason),
        )?;
    }
    Ok(())
}

const SECRET: &str = "recipe-secret-4711";

/// A target whose admin API is nothing like the reference hub's: rules under
/// a tenant, created by PUT with the policy wrapped, an API-key header, the
/// id deep in the answer, deletion by POST to `…:delete`.
fn mock_profile(server: &MockServer) -> Result<Profile, Failed> {
    let text = format!(
        r#"name = "another shape"
base = "{uri}"
issuer = "{uri}"
[hub]
product_model = true
[capabilities]
dcr = true
policy_admin = true
[resources.lab]
url = "{uri}/mcp/lab"
id = "lab"
scopes = ["lab.read"]
[user]
mode = "form"
username = "u"
[[user.forms]]
url_contains = "/"
[secrets]
key = "{SECRET}"
[operations.create_policy]
method = "PUT"
url = "${{base}}/v1/tenants/${{user.username}}/rules"
headers = {{ x-api-key = "${{secrets.key}}" }}
body = {{ rule = "${{policy}}", source = "conform" }}
ok = [200]
read = {{ id = "/data/rule_id" }}
[operations.delete_policy]
method = "POST"
url = "${{base}}/v1/rules/${{id}}:delete"
headers = {{ x-api-key = "${{secrets.key}}" }}
"#,
        uri = server.uri()
    );
    Profile::parse(&text, None).map_err(Failed::from)
}

async fn run_against(server: &MockServer) -> Result<ScenarioResult, Failed> {
    let profile = mock_profile(server)?;
    let scenario = scenario("policy.and-within")?;
    Ok(run_scenario(&profile, &scenario, &RunOptions::new(true)).await)
}

async fn another_shape() -> Result<(), Failed> {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v1/tenants/u/rules"))
        .and(header("x-api-key", SECRET))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {"rule_id": "r-1"}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/rules/r-1:delete"))
        .and(header("x-api-key", SECRET))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let result = run_against(&server).await?;
    // The recipe's step passed; the next (a registration this mock cannot do) did not.
    let first = result.steps.first().ok_or("no step ran")?;
    check(
        first.action == "create_policy" && first.status == Status::Pass,
        || format!("{first:?}"),
    )?;
    let received = server.received_requests().await.unwrap_or_default();
    let created = received
        .iter()
        .find(|r| r.method.as_str() == "PUT")
        .ok_or("no PUT received")?;
    let body: Value =
        serde_json::from_slice(&created.body).map_err(|e| Failed::from(e.to_string()))?;
    check(
        body["source"] == "conform"
            && body["rule"]["name"] == "scenario policy"
            && body["rule"]["grants"][0]["mcp_server"] == "lab",
        || format!("the body was {body}"),
    )?;
    // Teardown deleted the policy by the id the recipe read (`expect(1)` above).
    server.verify().await;
    let report = serde_json::to_string(&result).map_err(|e| Failed::from(e.to_string()))?;
    check(!report.contains(SECRET), || {
        "the secret reached the report".into()
    })
}

async fn unexpected_answer_is_error() -> Result<(), Failed> {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v1/tenants/u/rules"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {}})))
        .mount(&server)
        .await;
    let result = run_against(&server).await?;
    let first = result.steps.first().ok_or("no step ran")?;
    let message = first.messages.join(" ");
    check(
        result.status == Status::Error && first.status == Status::Error,
        || format!("{:?}: {message}", result.status),
    )?;
    for wanted in [
        "operation create_policy",
        "PUT",
        "/v1/tenants/u/rules",
        "answered 200",
        r#"{"data":{}}"#,
        "read.id",
    ] {
        check(message.contains(wanted), || {
            format!("`{wanted}` not quoted in: {message}")
        })?;
    }
    check(!first.exchanges.is_empty(), || {
        "the error carries no exchange".into()
    })?;
    let shown = serde_json::to_string(&first.exchanges).map_err(|e| Failed::from(e.to_string()))?;
    check(
        !shown.contains(SECRET) && shown.contains("x-api-key"),
        || format!("the secret header is not redacted: {shown}"),
    )
}
