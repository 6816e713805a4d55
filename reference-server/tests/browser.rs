//! The hub in a real browser: headless Chromium (Debian's `chromium`) driven
//! over WebDriver (`chromedriver`, with the `fantoccini` client). It signs in
//! to the console and creates a policy through the three-step form, runs a
//! consent flow on the login and consent pages (unticking one scope), watches
//! the console's live audit feed and flow drill-down show it, signs in
//! through the demo tenant's identity provider (the `demo` crate's Demo IdP:
//! single sign-on) and enrols and types a TOTP second factor, and opens a
//! report.html written by `conform` to check that its sequence diagrams
//! render. Screenshots of every page go to `reports/screenshots/`.
//!
//! Built only with the `browser-tests` feature, which `cargo test --workspace`
//! leaves off (the house rule is one integration-test binary per crate; this
//! one needs a browser):
//!
//! ```sh
//! sudo apt-get install chromium chromium-driver
//! cargo test -p reference-server --features browser-tests --test browser
//! ```
//!
//! `CHROMEDRIVER` and `CHROMIUM` override `/usr/bin/chromedriver` and
//! `/usr/bin/chromium`; `CONFORM_BIN` names a built `conform` to write the
//! report with (otherwise `cargo run --bin conform`). A missing browser fails
//! the test; it never passes without having run.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use fantoccini::{Client, ClientBuilder, Locator};
use reference_server::store::Database;
use reference_server::{HubConfig, RunningHub};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const CONTROL: &str = "browser-control-token";
/// How long any page, element or event may take to appear.
const PATIENCE: Duration = Duration::from_secs(20);
/// How long the whole walk through the pages may take (it takes seconds).
const WHOLE_WALK: Duration = Duration::from_secs(300);
/// Never fetched: Chromium refuses port 9 (discard) outright, so the redirect
/// with the code goes nowhere, and the test reads it from the address bar.
const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace")
        .to_path_buf()
}

fn screenshots_dir() -> PathBuf {
    workspace().join("reports/screenshots")
}

/// A program the test needs, from an environment variable or its Debian path;
/// missing: an actionable failure, never a silent pass.
fn program(var: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.is_file(),
        "the browser test needs {} (Debian package `{package}`), not found. Install Chromium and its \
         WebDriver with `sudo apt-get install -y chromium chromium-driver` (`.ci/run` does), or set \
         {var} to the program's path.",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// chromedriver and the Chromium it starts, in a process group of their own:
/// dropping this (at the end, or while a failed test unwinds) ends them all.
struct Browser {
    driver: Child,
    dir: PathBuf,
}

impl Browser {
    fn kill(&mut self) {
        let group = self.driver.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's process group; no memory is touched.
        unsafe { libc::kill(-group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.driver.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Chromium's helpers may outlive chromedriver by a moment: the whole group goes.
        // SAFETY: as above.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.driver.wait();
        // Until the last of them is gone (Chromium's crash handler, in a group of
        // its own, follows the browser it watches by itself).
        let deadline = Instant::now() + Duration::from_secs(5);
        // SAFETY: signal 0 only asks whether the group still has a process.
        while unsafe { libc::kill(-group, 0) } == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts chromedriver on a free port and a headless Chromium session through it.
async fn launch(chromedriver: &Path, chromium: &Path) -> (Browser, Client) {
    let dir = std::env::temp_dir().join(format!("hub-browser-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("profile")).expect("a temporary directory");
    let log = dir.join("chromedriver.log");
    let port = free_port();
    let driver = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
    let browser = Browser { driver, dir };
    let webdriver = format!("http://127.0.0.1:{port}");

    // chromedriver is ready when /status says so.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ready = match http.get(format!("{webdriver}/status")).send().await {
            Ok(r) => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["value"]["ready"].as_bool()),
            Err(_) => None,
        };
        if ready == Some(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not become ready on port {port}; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let profile = browser.dir.join("profile");
    let args = [
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--window-size=1280,900".into(),
        // Nothing leaves the machine: no first-run, sync, updates or background fetches.
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-quic".into(),
        "--disable-features=Translate,MediaRouter,OptimizationHints".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let capabilities = json!({
        "browserName": "chrome",
        "pageLoadStrategy": "normal",
        "goog:chromeOptions": { "binary": chromium, "args": args },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&webdriver)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "no Chromium session through chromedriver ({e}); is {} the Chromium that {} drives? Its log:\n{}",
                chromium.display(),
                chromedriver.display(),
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
    client
        .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
            Some(PATIENCE),
            Some(PATIENCE),
            None,
        ))
        .await
        .expect("WebDriver timeouts");
    (browser, client)
}

/// The hub, with the demo tenant's identity provider (the Demo IdP) beside it.
async fn start_hub() -> RunningHub {
    let (idp, _task) = demo::idp::spawn(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        demo::idp::IdpConfig::default(),
    )
    .await
    .expect("the demo identity provider starts");
    reference_server::spawn(HubConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        database: Database::Memory,
        seed_dir: Some(workspace().join("fixtures/hub")),
        test_mode: true,
        control_token: Some(CONTROL.into()),
        demo_idp_issuer: Some(idp),
        ..HubConfig::default()
    })
    .await
    .expect("the hub starts")
}

/// What the pages under test are checked with.
struct Page<'a> {
    client: &'a Client,
    base: &'a str,
}

impl Page<'_> {
    async fn goto(&self, path: &str) -> anyhow::Result<()> {
        let url = if path.starts_with('/') {
            format!("{}{path}", self.base)
        } else {
            path.to_string()
        };
        self.client
            .goto(&url)
            .await
            .with_context(|| format!("open {url}"))
    }

    async fn find(&self, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
        match self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => Ok(element),
            Err(err) => Err(anyhow!(err).context(format!("no `{css}` on {}", self.url().await))),
        }
    }

    async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let field = self.find(css).await?;
        field.clear().await?;
        field
            .send_keys(text)
            .await
            .with_context(|| format!("type into `{css}`"))
    }

    async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.find(css)
            .await?
            .click()
            .await
            .with_context(|| format!("click `{css}`"))
    }

    async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_else(|e| format!("(no URL: {e})"))
    }

    async fn text(&self, css: &str) -> anyhow::Result<String> {
        Ok(self.find(css).await?.text().await?)
    }

    /// Waits until the page's URL satisfies `ok`; returns it.
    async fn wait_url(
        &self,
        what: &str,
        ok: impl Fn(&url::Url) -> bool,
    ) -> anyhow::Result<url::Url> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(url) = self.client.current_url().await {
                if ok(&url) {
                    return Ok(url);
                }
            }
            if Instant::now() > deadline {
                bail!("waited for {what}; the browser is at {}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the text of `css` (all matches, joined) contains `needle`.
    async fn wait_text(&self, css: &str, needle: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut joined = String::new();
            for el in self.client.find_all(Locator::Css(css)).await? {
                joined.push_str(&el.text().await.unwrap_or_default());
                joined.push('\n');
            }
            if joined.contains(needle) {
                return Ok(joined);
            }
            if Instant::now() > deadline {
                bail!(
                    "no `{needle}` in `{css}` on {}; it reads:\n{joined}",
                    self.url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, name: &str) -> anyhow::Result<()> {
        let png = self.client.screenshot().await.context("screenshot")?;
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("{name}.png")), png)?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_consent_pages_and_report_html_work_in_a_real_browser() {
    let started = Instant::now();
    // Before anything slow: no browser, no test.
    let chromedriver = program("CHROMEDRIVER", "/usr/bin/chromedriver", "chromium-driver");
    let chromium = program("CHROMIUM", "/usr/bin/chromium", "chromium");
    for stale in ["failure.png", "failure.html"] {
        let _ = std::fs::remove_file(screenshots_dir().join(stale));
    }
    // report.html first: `conform` builds (if needed) and runs before the browser starts.
    let report = write_report();
    eprintln!(
        "report.html written by conform: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let hub = start_hub().await;
    let t = Instant::now();
    let (browser, client) = launch(&chromedriver, &chromium).await;
    eprintln!(
        "chromedriver and Chromium up: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let page = Page {
        client: &client,
        base: &hub.base_url,
    };

    let outcome = match tokio::time::timeout(WHOLE_WALK, walk(&page, &hub, &report)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(anyhow!("the browser did not finish within {WHOLE_WALK:?}")),
    };
    if let Err(err) = &outcome {
        // Leave the page the test failed on for whoever reads the log.
        let _ = page.screenshot("failure").await;
        if let Ok(source) = client.source().await {
            let _ = std::fs::write(screenshots_dir().join("failure.html"), source);
        }
        eprintln!("failed at {}: {err:#}", page.url().await);
    }
    // Ends the session: chromedriver quits Chromium; then the process group goes.
    let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
    drop(browser);
    drop(hub);
    let _ = std::fs::remove_dir_all(report.parent().expect("the report's directory"));
    if let Err(err) = outcome {
        panic!("{err:#}");
    }
    eprintln!(
        "browser test passed in {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        screenshots_dir().display()
    );
}

/// Everything the browser does, in order; the first failure ends it.
async fn walk(page: &Page<'_>, hub: &RunningHub, report: &Path) -> anyhow::Result<()> {
    let t = Instant::now();
    console_sign_in(page).await?;
    eprintln!("console sign-in: {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    create_policy(page).await?;
    eprintln!("policy in three steps: {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    consent_flow(page, hub).await?;
    eprintln!(
        "consent flow, live feed, drill-down: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    sso_and_second_factor(page, hub).await?;
    eprintln!(
        "single sign-on and a TOTP enrolment: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    report_html(page, report).await?;
    eprintln!("report.html: {:.1} s", t.elapsed().as_secs_f64());
    Ok(())
}

async fn console_sign_in(page: &Page<'_>) -> anyhow::Result<()> {
    page.goto("/console/policies").await?;
    page.wait_url("the console's sign-in page", |u| {
        u.path() == "/console/login"
    })
    .await?;
    page.screenshot("console-sign-in").await?;
    page.fill("#username", "admin").await?;
    page.fill("#password", "admin-password").await?;
    page.click("form#login button[type=submit]").await?;
    // Back where the browser was sent from.
    page.wait_url("the policies page after signing in", |u| {
        u.path() == "/console/policies"
    })
    .await?;
    page.goto("/console").await?;
    let heading = page.text("main h1").await?;
    ensure!(heading == "Overview", "the console's overview: {heading}");
    ensure!(
        page.text("header").await?.contains("admin"),
        "the header names the administrator signed in"
    );
    page.screenshot("console-overview").await?;
    Ok(())
}

const POLICY_NAME: &str = "Engineers read the lab (browser test)";

async fn create_policy(page: &Page<'_>) -> anyhow::Result<()> {
    page.goto("/console/policies/new").await?;
    // Step 1: conditions.
    page.fill("#key_0", "user.roles").await?;
    page.find("#operator_0")
        .await?
        .select_by_value("contains")
        .await
        .context("choose the operator")?;
    page.fill("#value_0", "engineer").await?;
    page.screenshot("console-policy-step1").await?;
    page.click("button[name=action][value=next]").await?;
    // Step 2: MCP servers and scopes.
    let lab_read = page
        .find(r#"input[name=grant][value="server lab lab.read"]"#)
        .await?;
    ensure!(
        page.text("main").await?.contains("user.roles"),
        "step 2 repeats the conditions"
    );
    lab_read.click().await?;
    page.screenshot("console-policy-step2").await?;
    page.click("button[name=action][value=next]").await?;
    // Step 3: name and description, with a summary.
    page.fill("#name", POLICY_NAME).await?;
    page.fill("#description", "Created by the headless-Chromium test.")
        .await?;
    let summary = page
        .text("section[aria-labelledby=summary-heading]")
        .await?;
    ensure!(
        summary.contains("lab.read"),
        "the summary names the grant: {summary}"
    );
    page.screenshot("console-policy-step3").await?;
    page.click("button[name=action][value=create]").await?;
    // Listed, with its conditions and grant; the browser lands on its card.
    let listed = page
        .wait_url("the policy list", |u| u.path() == "/console/policies")
        .await?;
    page.wait_text("p.notice", "created").await?;
    let anchor = listed
        .fragment()
        .filter(|f| f.starts_with("policy-"))
        .with_context(|| format!("the list is opened at the new policy: {listed}"))?;
    let card = page.find(&format!("section.card#{anchor}")).await?;
    let text = card.text().await?;
    for shown in [POLICY_NAME, "user.roles contains \"engineer\"", "lab.read"] {
        ensure!(
            text.contains(shown),
            "the new policy's card shows {shown}: {text}"
        );
    }
    page.client
        .execute(
            "arguments[0].scrollIntoView({block: 'center'})",
            vec![serde_json::to_value(&card)?],
        )
        .await?;
    page.screenshot("console-policies").await?;
    Ok(())
}

async fn register_client(hub: &RunningHub) -> anyhow::Result<String> {
    let body: Value = reqwest::Client::new()
        .post(format!("{}/register", hub.issuer))
        .json(&json!({"client_name": "Browser test MCP client", "redirect_uris": [REDIRECT_URI]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    body["client_id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no client_id in {body}"))
}

async fn consent_flow(page: &Page<'_>, hub: &RunningHub) -> anyhow::Result<()> {
    let client_id = register_client(hub).await?;
    // The console's audit page for this client, live feed connected, in a tab of its own.
    let console_tab = page.client.window().await?;
    page.goto(&format!("/console/audit?client_id={client_id}"))
        .await?;
    page.wait_text("#live-status", "Connected").await?;

    // The user's tab: the authorization request of an MCP client with PKCE.
    let user_tab = page.client.new_window(true).await?.handle;
    page.client.switch_to_window(user_tab).await?;
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
    let resource = hub
        .resources
        .iter()
        .find(|(id, _)| id == "calendar")
        .map(|(_, url)| url.clone())
        .context("the seed has the calendar MCP server")?;
    let mut authorize = url::Url::parse(&format!("{}/authorize", hub.issuer))?;
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", &resource)
        .append_pair("scope", "calendar.read calendar.write")
        .append_pair("state", &state);
    page.goto(authorize.as_str()).await?;

    // The login page.
    page.find("form#login").await?;
    ensure!(
        page.text("h1").await? == "Sign in",
        "the login page comes first"
    );
    page.fill("#username", "alice").await?;
    page.fill("#password", "alice-password").await?;
    page.screenshot("oauth-login").await?;
    page.click("form#login button[name=action][value=login]")
        .await?;

    // The consent page: calendar.read, which the Calendar server cannot work
    // without, listed as required with no box; calendar.write optional,
    // ticked; untick it.
    page.find("form#consent").await?;
    let required = page.wait_text("#mandatory", "calendar.read").await?;
    ensure!(required.contains("calendar.read"), "calendar.read required");
    ensure!(
        page.client
            .find_all(Locator::Css(
                r#"form#consent input[type=checkbox][value="calendar.read"]"#
            ))
            .await?
            .is_empty(),
        "no box to untick a required scope"
    );
    let write = page
        .find(r#"form#consent input[type=checkbox][name=scope][value="calendar.write"]"#)
        .await?;
    ensure!(
        write.is_selected().await?,
        "an optional scope starts ticked"
    );
    write.click().await?;
    ensure!(!write.is_selected().await?, "calendar.write unticked");
    page.screenshot("oauth-consent").await?;
    page.click("form#consent button[name=decision][value=approve]")
        .await?;

    // The redirect back to the client, which is never fetched: read from the address bar.
    let back = page
        .wait_url("the redirect to the client", |u| {
            u.as_str().starts_with(REDIRECT_URI)
        })
        .await?;
    let param = |name: &str| {
        back.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let code = param("code").filter(|c| !c.is_empty());
    ensure!(code.is_some(), "the redirect carries a code: {back}");
    ensure!(
        param("state").as_deref() == Some(state.as_str()),
        "the redirect carries the state: {back}"
    );
    ensure!(param("error").is_none(), "no error: {back}");

    // The client redeems the code: only the ticked scope was granted.
    let token: Value = reqwest::Client::new()
        .post(format!("{}/token", hub.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_deref().unwrap_or_default()),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
            ("resource", &resource),
        ])
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        token["scope"] == "calendar.read",
        "the token carries the scope left ticked only: {}",
        json!({"scope": token["scope"], "error": token["error"], "error_description": token["error_description"]})
    );

    // The console's live feed shows the flow as it happens.
    page.client.close_window().await?;
    page.client.switch_to_window(console_tab).await?;
    let live = page.wait_text("#live-events li", "consent.granted").await?;
    page.wait_text("#live-events li", "token.issued").await?;
    ensure!(
        live.contains(&client_id),
        "the live feed names the client: {live}"
    );
    page.screenshot("console-audit-live").await?;

    // The list, filtered, links the flow's drill-down.
    page.goto(&format!(
        "/console/audit?client_id={client_id}&type=consent.granted"
    ))
    .await?;
    let row = page.wait_text("#event-rows tr", "consent.granted").await?;
    ensure!(
        row.contains("calendar.read") && !row.contains("calendar.write"),
        "granted: calendar.read only: {row}"
    );
    page.click("#event-rows a[aria-label^='Flow ']").await?;
    page.wait_url("the flow drill-down", |u| {
        u.path().starts_with("/console/audit/flow/")
    })
    .await?;
    let timeline = page.wait_text("#timeline", "consent.granted").await?;
    for event in [
        "client.registered",
        "user.login",
        "policy.evaluated",
        "token.issued",
    ] {
        ensure!(
            timeline.contains(event),
            "the flow shows {event}: {timeline}"
        );
    }
    page.find(r#"#timeline li[data-type="consent.granted"]"#)
        .await?;
    page.screenshot("console-audit-flow").await?;
    Ok(())
}

/// Frank of Initech signs in through his organisation's identity provider
/// (home-realm discovery by his e-mail, the Demo IdP's page), and, his
/// provider having proved one factor where his tenant wants two, enrols an
/// authenticator at the hub and types its code; the recovery codes are shown
/// once; consent; the code comes back.
async fn sso_and_second_factor(page: &Page<'_>, hub: &RunningHub) -> anyhow::Result<()> {
    let client_id = register_client(hub).await?;
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let resource = format!("{}/mcp/calendar", hub.base_url);
    let mut authorize = url::Url::parse(&format!("{}/authorize", hub.issuer))?;
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", &resource)
        .append_pair("scope", "calendar.read")
        .append_pair("state", "sso-walk")
        // The browser is still signed in as alice from the consent flow.
        .append_pair("prompt", "login");
    page.goto(authorize.as_str()).await?;
    page.find("form#login").await?;
    page.fill("#username", "frank@initech.example").await?;
    page.click("form#login button[name=action][value=login]")
        .await?;

    // The organisation's own sign-in page, on the provider's origin.
    page.wait_text("h1", "Initech").await?;
    ensure!(
        !page.url().await.starts_with(&hub.base_url),
        "the provider's page is not the hub's"
    );
    page.fill("input[name=password]", "frank-password").await?;
    page.screenshot("sso-provider").await?;
    page.click("form button[name=decision][value=sign-in]")
        .await?;

    // Back at the hub: enrol an authenticator, the first time.
    page.find("form#second-factor").await?;
    let secret = page.text("#totp-secret").await?;
    page.screenshot("second-factor-enrol").await?;
    let bytes = totp_rs::Secret::Encoded(secret.trim().to_owned())
        .to_bytes()
        .map_err(|e| anyhow!("the page's secret is not base32: {e:?}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let code =
        totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes).generate(now);
    page.fill("#code", &code).await?;
    page.click("form#second-factor button[type=submit]").await?;
    let codes = page.wait_text("#recovery-codes", "-").await?;
    ensure!(
        codes.lines().filter(|l| !l.trim().is_empty()).count() == 10,
        "ten recovery codes: {codes}"
    );
    page.screenshot("recovery-codes").await?;
    page.click("a#continue").await?;

    // Consent, and the code back to the client.
    page.find("form#consent").await?;
    page.click("form#consent button[name=decision][value=approve]")
        .await?;
    let back = page
        .wait_url("the redirect to the client", |u| {
            u.as_str().starts_with(REDIRECT_URI)
        })
        .await?;
    ensure!(
        back.query_pairs()
            .any(|(k, v)| k == "code" && !v.is_empty()),
        "a code after single sign-on and a second factor: {back}"
    );
    Ok(())
}

/// Runs `conform` (the embedded hub, the authorization code scenarios) into a
/// fresh directory and returns its report.html. reference-server cannot
/// depend on the harness (the harness depends on it), so this runs the
/// `conform` binary named by `CONFORM_BIN` (`.ci/run` passes the debug
/// build its tests have just made), or else `cargo run --bin conform` from the
/// workspace root, in the profile this test was built in.
fn write_report() -> PathBuf {
    let out = std::env::temp_dir().join(format!("hub-browser-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut command = match std::env::var_os("CONFORM_BIN") {
        Some(bin) => Command::new(workspace().join(bin)),
        None => {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut command = Command::new(cargo);
            command.args(["run", "-q"]);
            // …/target/<profile>/deps/browser-<hash>
            let release = std::env::current_exe()
                .ok()
                .and_then(|exe| exe.ancestors().nth(2).map(|p| p.ends_with("release")))
                .unwrap_or(false);
            if release {
                command.arg("--release");
            }
            command.args(["--bin", "conform", "--"]);
            command
        }
    };
    let shown = format!("{command:?}");
    let status = command
        .current_dir(workspace())
        .args(["--scenario", "authcode.*", "--out"])
        .arg(&out)
        .env("CARGO_TERM_COLOR", "never")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let report = out.join("report.html");
    assert!(
        report.is_file(),
        "{shown} --scenario 'authcode.*' --out {} wrote no report.html ({status})",
        out.display()
    );
    report
}

async fn report_html(page: &Page<'_>, report: &Path) -> anyhow::Result<()> {
    let url = url::Url::from_file_path(report)
        .map_err(|()| anyhow!("not a path: {}", report.display()))?;
    page.goto(url.as_str()).await?;
    page.find("h1").await?;
    page.screenshot("report-html").await?;
    // The first scenario with a diagram: open it as a reader would, then measure.
    let svg = page.find("details.scenario svg").await?;
    let size = page
        .client
        .execute(
            r#"const svg = arguments[0];
               const details = svg.closest("details");
               if (details && !details.open) { details.querySelector("summary").click(); }
               svg.scrollIntoView({block: "start"});
               window.scrollBy(0, -48);
               const r = svg.getBoundingClientRect();
               return {width: r.width, height: r.height,
                       shapes: svg.querySelectorAll("line, path, rect, polygon, polyline").length,
                       labels: svg.querySelectorAll("text").length};"#,
            vec![serde_json::to_value(&svg)?],
        )
        .await?;
    let width = size["width"].as_f64().unwrap_or(0.0);
    let height = size["height"].as_f64().unwrap_or(0.0);
    ensure!(
        width > 100.0 && height > 50.0,
        "the sequence diagram renders with a size: {size}"
    );
    ensure!(
        size["shapes"].as_u64().unwrap_or(0) > 0 && size["labels"].as_u64().unwrap_or(0) > 0,
        "the diagram has arrows and labels: {size}"
    );
    ensure!(svg.is_displayed().await?, "the diagram is displayed");
    let all = page
        .client
        .execute(r#"return document.querySelectorAll("svg").length;"#, vec![])
        .await?;
    ensure!(all.as_u64().unwrap_or(0) > 0, "report.html has diagrams");
    page.screenshot("report-html-diagram").await?;
    Ok(())
}
