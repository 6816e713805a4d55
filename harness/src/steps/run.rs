//! The state of one scenario run: the parties' memories and the evidence.

use serde_json::{json, Map, Value};

use super::evidence::Evidence;
use super::failure::StepError;
use super::parties::{AgentState, CimdHost, ClientState, Created, Driver, ThirdParty};
use crate::expect::interpolate;
use crate::http::Http;
use crate::operation::Answer;
use crate::profile::Profile;
use crate::provider::Provider;
use crate::recipe::Operation;

/// One scenario run against a target: what the parties have learned so far,
/// and the evidence the verdict and reports read.
pub struct Run<'p> {
    pub profile: &'p Profile,
    /// The back channel: the MCP client, agents, resource servers, the admin,
    /// the test driver and the audit collector. It holds no cookies, so no
    /// server-to-server request carries the user's session.
    pub http: Http,
    /// The user's browser (authorization requests, login and consent pages,
    /// the connect flow): the only party with a cookie jar. It records into
    /// the back channel's transcript, so each step's exchanges stay in order.
    pub browser: Http,
    /// The browsers of the profile's other users (`[users]`), by name, each
    /// with its own cookies, recording into the same transcript.
    pub other_browsers: std::collections::BTreeMap<String, Http>,
    pub client: ClientState,
    pub agent: AgentState,
    pub cimd: CimdHost,
    pub third_party: ThirdParty,
    pub created: Created,
    pub driver: Driver,
    pub evidence: Evidence,
    /// Whether the step being performed is a setup step: a setup
    /// registration refused by a rate limit may reuse a pooled client.
    pub setup_step: bool,
    /// The allowed answer each earlier step reported (by step number), as
    /// `${answers.N}` and for `when = { "answers.N" = "…" }`: later steps can
    /// follow the branch the server took.
    pub answers: Map<String, Value>,
    /// The profile as variables, serialized once per run (the profile is
    /// borrowed for the run's life, so it cannot change meanwhile): in
    /// full for recipes, and without secrets and recipes for `${…}`.
    profile_vars: std::sync::OnceLock<(Value, Value)>,
    /// The MCP revision the run judges by, which the MCP client speaks on
    /// the wire (the profile's `spec`, else the latest, until the engine
    /// sets the scenario's).
    pub revision: crate::revision::Revision,
    /// The authenticators users were given (`enrol_second_factor`), by
    /// `[users]` name ("" for the `[user]`).
    pub authenticators: std::collections::BTreeMap<String, super::authenticator::Authenticator>,
    /// The tenant's identity provider the harness plays, started by the
    /// first `configure_sso`.
    pub upstream_idp: Option<crate::idp::UpstreamIdp>,
}

/// The first `${…}` in `template` that names an optional profile section
/// (`resources`, `clients`, `users`) the profile does not fill in.
fn undeclared_profile_value(template: &str, vars: &Value) -> Option<String> {
    const OPTIONAL: [&str; 3] = ["resources.", "clients.", "users."];
    template
        .split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .find(|name| {
            OPTIONAL.iter().any(|p| name.starts_with(p))
                && crate::expect::lookup(vars, name).is_none()
        })
        .map(str::to_owned)
}

impl<'p> Run<'p> {
    pub fn new(profile: &'p Profile) -> Run<'p> {
        let mut evidence = Evidence::default();
        for secret in profile.secret_values() {
            evidence.keep_secret(&secret);
        }
        let http = Http::new(&profile.http);
        Run {
            profile,
            browser: http.browser(&profile.http),
            other_browsers: std::collections::BTreeMap::new(),
            http,
            client: ClientState::default(),
            agent: AgentState::default(),
            cimd: CimdHost::default(),
            third_party: ThirdParty::default(),
            created: Created::default(),
            driver: Driver::default(),
            evidence,
            setup_step: false,
            answers: Map::new(),
            profile_vars: std::sync::OnceLock::new(),
            revision: profile.spec.unwrap_or(crate::revision::Revision::LATEST),
            authenticators: std::collections::BTreeMap::new(),
            upstream_idp: None,
        }
    }

    /// The browser of `user` (a `[users]` name), or the `[user]`'s.
    pub fn browser_of(&mut self, user: Option<&str>) -> Http {
        match user {
            None => self.browser.clone(),
            Some(name) => {
                let (http, settings) = (&self.http, &self.profile.http);
                self.other_browsers
                    .entry(name.to_owned())
                    .or_insert_with(|| http.browser(settings))
                    .clone()
            }
        }
    }

    /// The profile as variables: in full (for recipes) and as scenarios see it.
    fn profile_vars(&self) -> &(Value, Value) {
        self.profile_vars.get_or_init(|| {
            let full = serde_json::to_value(self.profile).unwrap_or_default();
            let mut public = full.clone();
            if let Some(clients) = public.get_mut("clients").and_then(Value::as_object_mut) {
                for client in clients.values_mut() {
                    if let Some(c) = client.as_object_mut() {
                        c.remove("client_secret");
                        c.remove("private_key_pem");
                    }
                }
            }
            // Recipes are how the harness reaches the target, not scenario values.
            if let Some(p) = public.as_object_mut() {
                p.remove("operations");
                p.remove("secrets");
            }
            (full, public)
        })
    }

    /// Variables for `${…}` in scenario files: the profile (without secrets) and the run's state.
    pub fn vars(&self) -> Value {
        let mut profile = self.profile_vars().1.clone();
        let registered: Map<String, Value> = self
            .client
            .registered
            .iter()
            .map(|(k, r)| {
                (
                    k.clone(),
                    json!({"client_id": r.client_id, "redirect_uri": r.redirect_uri}),
                )
            })
            .collect();
        profile["registered"] = Value::Object(registered);
        profile["state"] = json!(self.client.state_sent);
        profile["answers"] = Value::Object(self.answers.clone());
        let (conn, provider) = self.connection_vars();
        profile["conn"] = conn;
        profile["provider"] = provider;
        profile
    }

    /// `conn.<name>.id`, `conn.<name>.resource` and `provider.url`, for `${…}`.
    fn connection_vars(&self) -> (Value, Value) {
        let prefix = &self.profile.connections.resource_prefix;
        let conn: Map<String, Value> = self
            .created
            .connections
            .iter()
            .map(|(name, c)| {
                (
                    name.clone(),
                    json!({"id": c.id, "resource": format!("{prefix}{}", c.id)}),
                )
            })
            .collect();
        let provider = json!({"url": self.third_party.server.as_ref().map(Provider::uri)});
        (Value::Object(conn), provider)
    }

    /// Every cookie a target set in this run is a secret the scenario saw.
    pub(super) fn sync_cookie_secrets(&mut self) {
        for value in self.http.cookie_values() {
            self.evidence.keep_secret(&value);
        }
    }

    /// A scenario string with its `${…}` resolved.
    ///
    /// A variable that names an optional part of the profile the target's
    /// profile leaves out (`${resources.primary.scope_probe.tool}` with no
    /// `scope_probe`) makes the scenario not applicable: `skip`, naming it.
    pub(super) fn text(&self, template: &str) -> Result<String, StepError> {
        if !template.contains("${") {
            return Ok(template.to_owned());
        }
        let vars = self.vars();
        interpolate(template, &vars).map_err(|message| {
            match undeclared_profile_value(template, &vars) {
                Some(name) => super::failure::undeclared(format!(
                    "the profile does not declare `{name}`, which this scenario needs"
                )),
                None => StepError::Precondition(message),
            }
        })
    }

    /// Performs an operation through the profile's recipe, on the back channel.
    pub(super) async fn operation(
        &mut self,
        operation: Operation,
        inputs: Value,
    ) -> Result<Answer, StepError> {
        let vars = &self.profile_vars().0;
        Ok(crate::operation::perform(&self.http, self.profile, vars, operation, inputs).await?)
    }

    /// An operation whose facts are its answer's (`status`, `ok`, `body`, `text`).
    pub(super) async fn operation_facts(
        &mut self,
        operation: Operation,
        inputs: Value,
    ) -> Result<Value, StepError> {
        Ok(self.operation(operation, inputs).await?.facts())
    }

    /// A resource role of the profile, a URL, or `omit` (none).
    pub(super) fn resource_url(&self, role_or_url: &str) -> Result<Option<String>, StepError> {
        if role_or_url == "omit" {
            return Ok(None);
        }
        if let Some(r) = self.profile.resources.get(role_or_url) {
            return Ok(Some(r.url.clone()));
        }
        Ok(Some(self.text(role_or_url)?))
    }

    /// Like [`Run::resource_url`], for a step that talks to the MCP server
    /// itself: a role the profile declares unreachable makes the scenario
    /// not applicable (`skip`), not an error against a server that is not there.
    pub(super) fn served_resource_url(&self, role_or_url: &str) -> Result<String, StepError> {
        if let Some(r) = self.profile.resources.get(role_or_url) {
            if !r.reachable {
                return Err(super::failure::undeclared(format!(
                    "[resources.{role_or_url}] is not reachable (reachable = false): no MCP server to call"
                )));
            }
        }
        self.resource_url(role_or_url)?
            .ok_or_else(|| super::failure::precondition("this step needs a resource"))
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderMap;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::Run;
    use crate::http::{Exchange, Identity};
    use crate::profile::Profile;

    const SESSION: &str = "hub-session-value-4711";

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn received_cookie(headers: &HeaderMap) -> Option<String> {
        headers
            .get("cookie")
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    }

    /// A target that sets a session cookie on its authorization page, as a
    /// hub with a login session and a CSRF check does. The browser must send
    /// it back on its next page; no back-channel request of the same run, to
    /// the same origin, may carry it; the transcript shows exactly the
    /// `cookie` headers the target received; and its value is redacted.
    #[tokio::test]
    async fn only_the_browser_sends_the_cookies_it_received() {
        let target = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/oauth/authorize"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("set-cookie", format!("sid={SESSION}; Path=/; HttpOnly"))
                    .set_body_string("<form method=post action=/oauth/login></form>"),
            )
            .mount(&target)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
            .mount(&target)
            .await;
        let reference = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/profiles/reference.toml"
        );
        let profile = Profile::load(reference.as_ref(), Some(&target.uri())).expect("profile");
        let mut run = Run::new(&profile);
        let url = |p: &str| format!("{}{p}", target.uri());

        // The user's browser: the authorization page, then the login form.
        run.browser
            .send(run.browser.get(&url("/oauth/authorize")))
            .await
            .expect("authorize");
        run.browser
            .send(
                run.browser
                    .post(&url("/oauth/login"))
                    .form(&[("u", "alice")]),
            )
            .await
            .expect("login");
        // The MCP client's token request, and the test driver beside the browser.
        run.http
            .send(
                run.http
                    .post(&url("/oauth/token"))
                    .form(&[("grant_type", "x")]),
            )
            .await
            .expect("token");
        let driver = run.browser.back_channel();
        driver
            .send(driver.post(&url("/control/decision")).json(&"approve"))
            .await
            .expect("decision");

        let exchanges: Vec<Exchange> = run.http.take_transcript();
        let paths: Vec<&str> = exchanges
            .iter()
            .map(|e| e.url.rsplit_once(&target.uri()).map_or("", |(_, p)| p))
            .collect();
        assert_eq!(
            paths,
            [
                "/oauth/authorize",
                "/oauth/login",
                "/oauth/token",
                "/control/decision"
            ],
            "one transcript across both identities, in request order"
        );
        let cookies: Vec<Option<&str>> = exchanges
            .iter()
            .map(|e| header(&e.request_headers, "cookie"))
            .collect();
        let session = format!("sid={SESSION}");
        assert_eq!(
            cookies,
            [None, Some(session.as_str()), None, None],
            "the browser sends its cookie back; the back channel never does"
        );

        let agents: Vec<Option<&str>> = exchanges
            .iter()
            .map(|e| header(&e.request_headers, "user-agent"))
            .collect();
        let browser = Some(Identity::Browser.user_agent());
        let back = Some(Identity::BackChannel.user_agent());
        assert_eq!(agents, [browser, browser, back, back]);

        // What was recorded is what the target received, cookie for cookie.
        let received = target.received_requests().await.expect("recording on");
        let on_the_wire: Vec<Option<String>> = received
            .iter()
            .map(|r| received_cookie(&r.headers))
            .collect();
        let recorded: Vec<Option<String>> = cookies.iter().map(|c| c.map(str::to_owned)).collect();
        assert_eq!(on_the_wire, recorded);

        // The value is a secret the scenario saw: reports show the name only.
        run.sync_cookie_secrets();
        assert!(run.evidence.secrets.iter().any(|s| s == SESSION));
        for mut exchange in exchanges {
            exchange.redact(&run.evidence.secrets);
            let shown = serde_json::to_string(&exchange).expect("serializes");
            assert!(!shown.contains(SESSION), "cookie value left in {shown}");
        }
    }
}
