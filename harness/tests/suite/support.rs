//! Helpers shared by the suite's modules: the repository root, the runtime,
//! the shared embedded hub, the `conform` and `hub` binaries, temporary profiles.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use harness::profile::Profile;
use harness::scenario::Scenario;
use libtest_mimic::Failed;
use serde_json::Value;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().expect("tokio runtime"))
}

/// One reference hub shared by the scenario and snapshot tests.
pub fn shared_target() -> &'static Profile {
    static TARGET: OnceLock<(Profile, harness::embedded::EmbeddedTarget)> = OnceLock::new();
    &TARGET
        .get_or_init(|| {
            runtime().block_on(async {
                let t = harness::embedded::start(&root().join("fixtures"), &[], &[])
                    .await
                    .expect("embedded hub starts");
                (t.profile.clone(), t)
            })
        })
        .0
}

pub fn scenarios() -> Vec<Scenario> {
    harness::scenario::load_dir(&root().join("scenarios")).expect("scenarios load")
}

pub fn check(condition: bool, message: impl FnOnce() -> String) -> Result<(), Failed> {
    if condition {
        Ok(())
    } else {
        Err(message().into())
    }
}

/// Replaces the embedded hub's origin so snapshots do not depend on the port.
pub fn without_origin(text: &str, profile: &Profile) -> String {
    text.replace(profile.base.as_deref().unwrap_or("<none>"), "http://[hub]")
}

pub fn conform(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_conform"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("conform runs")
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("conform-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub fn code(output: &std::process::Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

pub fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A profile file for a target at `base`, derived from the reference profile.
pub fn profile_file(dir: &Path, base: &str, extra: &str) -> PathBuf {
    let reference =
        std::fs::read_to_string(root().join("fixtures/profiles/reference.toml")).expect("profile");
    let mut text = reference.replace(
        "base = \"http://127.0.0.1:8080\"",
        &format!("base = \"{base}\""),
    );
    text.push_str(extra);
    let path = dir.join("target.toml");
    std::fs::write(&path, text).expect("write profile");
    path
}

/// A hub running on its own (here in this process, reached only through a
/// profile): the reference profile for its origin, edited by `edit`, in `dir`.
pub fn separate_hub(
    dir: &Path,
    edit: impl Fn(String) -> String,
) -> Result<(harness::embedded::EmbeddedTarget, PathBuf), Failed> {
    let hub = runtime().block_on(async {
        harness::embedded::start(&root().join("fixtures"), &[], &[])
            .await
            .expect("hub")
    });
    let base = hub.profile.base.clone().unwrap_or_default();
    let path = profile_file(dir, &base, "");
    // The embedded door sets its own control and admin tokens; tell the profile.
    let text = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .replace(
            "control_token = \"dev-control-token\"",
            "control_token = \"conform-embedded-control-token\"",
        )
        .replace(
            "admin_token = \"dev-admin-token\"",
            "admin_token = \"conform-embedded-admin-token\"",
        );
    std::fs::write(&path, edit(text)).map_err(|e| Failed::from(e.to_string()))?;
    Ok((hub, path))
}

/// The reference hub's own binary. `cargo test -p harness` does not build it,
/// so the first caller asks cargo to (a no-op when it is up to date).
pub fn hub_binary() -> Result<PathBuf, Failed> {
    static HUB: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    HUB.get_or_init(|| {
        let output = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--message-format=json"])
            .args(["-p", "reference-server", "--bin", "hub"])
            .current_dir(root())
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "building the hub failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "hub")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .ok_or_else(|| "cargo did not report the hub executable".to_owned())
    })
    .clone()
    .map_err(Failed::from)
}

/// A reference hub running as a process of its own, killed when dropped.
pub struct HubProcess {
    pub child: std::process::Child,
    pub base: String,
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `hub` on 127.0.0.1 port 0 with the fixtures, test mode, the admin
/// API and the reference profile's tokens, without the demo (whose provider
/// has a fixed port), plus `extra` arguments; returns once it says where it listens.
pub fn hub_process(extra: &[&str]) -> Result<HubProcess, Failed> {
    use std::io::BufRead;
    let seed = root().join("fixtures/hub");
    let mut command = Command::new(hub_binary()?);
    command
        .args(["--bind", "127.0.0.1:0", "--database", ":memory:"])
        .args(["--seed-dir", seed.to_str().unwrap_or_default()])
        .args(["--test-mode", "--control-token", "dev-control-token"])
        .args(["--admin-token", "dev-admin-token"])
        .args(["--registration-rate-exempt", "127.0.0.1", "--no-demo"])
        .args(extra)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info,sqlx=warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // Only the arguments above configure it.
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("HUB_")) {
        command.env_remove(name);
    }
    let mut child = command
        .spawn()
        .map_err(|e| Failed::from(format!("cannot start the hub: {e}")))?;
    let stdout = child.stdout.take().ok_or("no hub stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads the log to its end, so the hub never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some((_, rest)) = line.split_once("hub listening on ") {
                let addr = rest.split_whitespace().next().unwrap_or_default();
                let _ = tx.send(format!("http://{addr}"));
            }
        }
    });
    let mut hub = HubProcess {
        child,
        base: String::new(),
    };
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(base) => {
            hub.base = base;
            Ok(hub)
        }
        Err(_) => {
            // It exited, or hangs: say what it said on stderr.
            use std::io::Read;
            let _ = hub.child.kill();
            let mut stderr = String::new();
            if let Some(mut pipe) = hub.child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            Err(format!("the hub did not say where it listens within 30s: {stderr}").into())
        }
    }
}

/// A mock authorization server on 127.0.0.1 with RFC 8414 metadata only
/// (authorization, token and registration endpoints, PKCE S256); each
/// test mounts the endpoints it drives.
pub async fn mock_authorization_server() -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let issuer = server.uri();
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "registration_endpoint": format!("{issuer}/register"),
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
        })))
        .mount(&server)
        .await;
    server
}

/// How many requests, of any method, a mock server received at `at`.
pub async fn requests_to(server: &wiremock::MockServer, at: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == at)
        .count()
}
