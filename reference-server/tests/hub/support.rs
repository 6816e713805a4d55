//! What every test module shares: starting a hub, the HTTP client, and the
//! steps of a flow driven through the control API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use reference_server::store::Database;
use reference_server::{HubConfig, RunningHub};
use serde_json::{json, Value};

pub const CONTROL: &str = "test-control-token";

pub fn seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/hub")
}

pub fn config(database: Database) -> HubConfig {
    HubConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        database,
        seed_dir: Some(seed_dir()),
        test_mode: true,
        control_token: Some(CONTROL.into()),
        ..HubConfig::default()
    }
}

pub async fn start() -> RunningHub {
    reference_server::spawn(config(Database::Memory))
        .await
        .expect("hub starts")
}

/// A hub with `faults` on: a hub test that proves its check catches one.
pub async fn start_with_faults(faults: Vec<reference_server::Fault>) -> RunningHub {
    let mut config = config(Database::Memory);
    config.faults = reference_server::Faults::new(faults);
    reference_server::spawn(config).await.expect("hub starts")
}

/// The JSON answer to `request` (a test's request is expected to be answered).
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("a JSON body")
}

/// A fresh, empty directory for one test's files.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hub-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub async fn audit(hub: &RunningHub, event_type: &str) -> Vec<Value> {
    let body: Value = client()
        .get(format!("{}/control/audit?type={event_type}", hub.base_url))
        .bearer_auth(CONTROL)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    body["events"].as_array().cloned().unwrap_or_default()
}

pub async fn register(hub: &RunningHub) -> String {
    let body: Value = client()
        .post(format!("{}/register", hub.issuer))
        .json(&json!({"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": "test"}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    body["client_id"].as_str().expect("client_id").to_owned()
}

/// Drives an authorization request through the control API and returns the code.
pub async fn code_for(hub: &RunningHub, client_id: &str, verifier: &str) -> String {
    code_for_resource(hub, client_id, verifier, "/mcp/calendar").await
}

/// [`code_for`], for the MCP server at `path`.
pub async fn code_for_resource(
    hub: &RunningHub,
    client_id: &str,
    verifier: &str,
    path: &str,
) -> String {
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()))
    };
    let resource = format!("{}{path}", hub.base_url);
    let response = client()
        .get(format!("{}/authorize", hub.issuer))
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", &resource),
            ("state", "s1"),
        ])
        .send()
        .await
        .expect("authorize");
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let request = location
        .split("request=")
        .nth(1)
        .expect("request id")
        .to_owned();
    let decided: Value = client()
        .post(format!(
            "{}/control/authorizations/{request}/decision",
            hub.base_url
        ))
        .bearer_auth(CONTROL)
        .json(&json!({"username": "alice", "decision": "approve"}))
        .send()
        .await
        .expect("decide")
        .json()
        .await
        .expect("json");
    let redirect =
        url::Url::parse(decided["redirect_to"].as_str().expect("redirect_to")).expect("url");
    redirect
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code")
}

/// Moves the hub's test clock forward; answers the control API's body.
pub async fn advance_clock(hub: &RunningHub, seconds: u32) -> Value {
    client()
        .post(format!("{}/control/clock", hub.base_url))
        .bearer_auth(CONTROL)
        .json(&json!({ "advance_seconds": seconds }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A user access token from a full code flow (login and consent through the control API).
pub async fn access_token_for(hub: &RunningHub, client_id: &str, verifier: &str) -> String {
    let code = code_for(hub, client_id, verifier).await;
    let body: Value = redeem(hub, &code, client_id, verifier)
        .await
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Redeems a code as the public test client would.
pub async fn redeem(
    hub: &RunningHub,
    code: &str,
    client_id: &str,
    verifier: &str,
) -> reqwest::Response {
    client()
        .post(format!("{}/token", hub.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("client_id", client_id),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .expect("token request")
}

pub const ADMIN: &str = "test-admin-token";

pub async fn start_with_admin() -> RunningHub {
    let mut config = config(Database::Memory);
    config.admin_token = Some(ADMIN.into());
    reference_server::spawn(config).await.expect("hub starts")
}

/// The seeded agent `agent-reporter` and its generated secret.
pub const REPORTER: (&str, &str) = (
    "agent-reporter",
    "euSlRbqh6T69AmeW5x8AoQ6WQtXybpSSYlI0BRcWwfE",
);

pub async fn exchange(hub: &RunningHub, subject: &str) -> (u16, Value) {
    let response = client()
        .post(format!("{}/token", hub.issuer))
        .basic_auth(REPORTER.0, Some(REPORTER.1))
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", subject),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A browser: a cookie jar, no redirects followed.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Undoes the pages' HTML escaping, to look for text in them.
pub fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

pub async fn page(browser: &reqwest::Client, hub: &RunningHub, path: &str) -> (u16, String) {
    let response = browser
        .get(format!("{}{path}", hub.base_url))
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        unescape(&response.text().await.unwrap()),
    )
}

/// The `hub` binary as a process of its own on a free loopback port (for
/// tests that measure it or kill it), killed when dropped.
pub struct HubProcess {
    pub child: std::process::Child,
    /// `http://127.0.0.1:<port>`, as the hub logged it.
    pub base: String,
}

impl HubProcess {
    /// Starts `hub --bind 127.0.0.1:0 --no-demo --seed-dir <fixtures>` plus `args`.
    pub fn start(args: &[&std::ffi::OsStr]) -> HubProcess {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hub"))
            .args(["--bind", "127.0.0.1:0", "--no-demo", "--seed-dir"])
            .arg(seed_dir())
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the hub binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let base = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                let rest = line.split("hub listening on ").nth(1)?.to_owned();
                let addr: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                Some(format!("http://{addr}"))
            })
            .expect("the hub says where it listens");
        HubProcess { child, base }
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PKCE verifier for tests that drive the pages, and its S256 challenge:
/// BASE64URL(SHA-256(VERIFIER)).
pub const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K9bN8x1Jbql5lT8V6OorUY8WQt";
pub const CHALLENGE: &str = "Y0QpZb2wtKo9XaW_ehn-V1_f0s2tu1zOu0YrN2rK5ho";

/// A redirect's `Location`, or "" for none.
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The claims of a JWT, unverified (the test's own token).
pub fn jwt_claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("JSON")
}

/// An authorization request for the calendar from `browser`, with PKCE
/// ([`CHALLENGE`]) and the redirect URI the test clients register; where the
/// hub sends the browser (the login page, consent, or back).
pub async fn authorize_calendar(
    browser: &reqwest::Client,
    hub: &RunningHub,
    client_id: &str,
    scope: Option<&str>,
) -> String {
    let resource = format!("{}/mcp/calendar", hub.base_url);
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", "http://127.0.0.1:9/cb"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("resource", &resource),
        ("state", "s1"),
    ];
    if let Some(scope) = scope {
        query.push(("scope", scope));
    }
    let response = browser
        .get(format!("{}/authorize", hub.issuer))
        .query(&query)
        .send()
        .await
        .expect("authorize");
    location(&response)
}
