//! The authorization request (OAuth 2.1 §4.1.1): the MCP client sends the
//! user's browser to the hub, which signs the user in, asks for consent and
//! redirects back with a code.

use oauth2::basic::BasicClient;
use oauth2::{AuthUrl, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use url::Url;

use super::act::{Act, ActionInfo};
use super::browser::{not_redirected, redirect_location, without_query};
use super::defaults::{primary, self_name};
use super::evidence::Evidence;
use super::failure::{precondition, StepError};
use super::parties::PendingCode;
use super::run::Run;
use crate::http::Response;
use crate::user::{self, Move};

/// How the authorization request carries PKCE.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Pkce {
    #[default]
    S256,
    Plain,
    None,
}

/// MCP client and user: authorization request, login and consent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Authorize {
    #[serde(default = "self_name")]
    pub client: String,
    #[serde(default)]
    pub pkce: Pkce,
    /// Redirect URI to present; the registered one by default.
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// Resource to request: a role name, a URL, or `omit`.
    #[serde(default = "primary")]
    pub resource: String,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub deny: bool,
    /// Log in as this user of the profile's `[users]` instead of `[user]`.
    #[serde(default)]
    pub user: Option<String>,
    /// Untick these scopes on the consent page (the user declines them).
    #[serde(default)]
    pub uncheck: Vec<String>,
    /// Build the request with the oauth2 crate (the happy path) instead of by hand.
    #[serde(default)]
    pub oauth2_crate: bool,
    /// Present this client_id instead of the registered client's: a client
    /// the server does not know (the registered one's redirect URI is kept).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Approve the consent page from another HTTP client with no cookies: a
    /// party that learnt the page's form (its request handle and fields) but
    /// is not the user's browser. The step ends with that party's answer.
    #[serde(default)]
    pub consent_elsewhere: bool,
    /// Before signing in, submit the login form this many times with a wrong
    /// password for the same account (online guessing). The browser then
    /// leaves from 127.0.0.2 when the target is on loopback, so the
    /// harness's own address keeps its sign-in budget. The step reports
    /// whether the right password was still accepted at once.
    #[serde(default)]
    pub wrong_passwords: u32,
    /// Send `prompt` (OpenID Connect Core §3.1.2.1): `login`, `none`, …
    #[serde(default)]
    pub prompt: Option<String>,
    /// Send `max_age`: the longest ago, in seconds, the user may have signed in.
    #[serde(default)]
    pub max_age: Option<u64>,
    /// Leave these scopes out of the consent form as posted, even ones the
    /// page gave no box to untick (a tampered form): how a server takes a
    /// declined mandatory scope.
    #[serde(default)]
    pub withhold: Vec<String>,
    /// What the user types when the server asks for a second factor: the
    /// authenticator's current code (default), a wrong one, the code typed
    /// before, a recovery code, or the recovery code typed before.
    #[serde(default)]
    pub second_factor: super::authenticator::SecondFactorEntry,
}

impl Act for Authorize {
    const INFO: ActionInfo = ActionInfo::new(
        "user (browser)",
        "The user's browser follows the MCP client's authorization request (response_type=code, a PKCE S256 code_challenge, state, and the resource the token is for), signs in and answers the per-scope consent page. Only scopes the user's policies allow are offered; the hub redirects back with a code, the state and its iss.",
        "draft-ietf-oauth-v2-1-13 §4.1.1",
        "https://datatracker.ietf.org/doc/html/draft-ietf-oauth-v2-1-13#section-4.1.1",
    );

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        let uncheck = self
            .uncheck
            .iter()
            .map(|s| run.text(s))
            .collect::<Result<Vec<_>, _>>()?;
        let facts = run.authorize(self, &uncheck).await;
        // What the tenant's identity provider issued on the way (codes, ID
        // tokens) is secret too.
        let issued = run.upstream_idp.as_ref().map(|idp| idp.secrets());
        for secret in issued.into_iter().flatten() {
            run.evidence.keep_secret(&secret);
        }
        facts
    }

    /// A code means the user consented; `access_denied`, that they refused.
    fn oblige(&self, facts: &Value, run: &Run<'_>, evidence: &mut Evidence) {
        let client = &self.client;
        let id = run.registered_id(client);
        if let Some(id) = &id {
            evidence.own_clients.insert(id.clone());
        }
        match (facts["outcome"].as_str(), facts["error"].as_str()) {
            (Some("code"), _) => {
                let i = evidence.oblige(
                    format!("the consent given to `{client}`"),
                    vec!["consent.granted"],
                    id,
                    "success",
                );
                evidence.last_consent = Some(i);
            }
            (Some("error"), Some("access_denied")) => {
                evidence.oblige(
                    format!("the consent refused to `{client}`"),
                    vec!["consent.denied"],
                    id,
                    "failure",
                );
            }
            _ => {}
        }
    }
}

/// What the user's browser was shown on the way through the pages, for the
/// step's facts.
#[derive(Debug, Default)]
struct Seen {
    /// A sign-in page.
    login: bool,
    /// A second-factor page, after the password.
    second_factor: bool,
    /// The tenant's identity provider (single sign-on).
    sso: bool,
    /// A consent page that asked for anything.
    consent: bool,
    /// The scopes each consent page asked for (none shown: empty).
    offered: Vec<String>,
    /// The scopes a consent page showed with no box to untick.
    mandatory: Vec<String>,
}

impl Seen {
    fn record(&self, facts: &mut Value) {
        facts["consent_offered"] = json!(self.offered);
        facts["consent_shown"] = json!(self.consent);
        facts["login_shown"] = json!(self.login);
        facts["second_factor_shown"] = json!(self.second_factor);
        facts["sso_shown"] = json!(self.sso);
        facts["consent_mandatory"] = json!(self.mandatory);
    }
}

impl Run<'_> {
    async fn authorize(
        &mut self,
        request: &Authorize,
        uncheck: &[String],
    ) -> Result<Value, StepError> {
        let (pkce, deny, oauth2_crate) = (request.pkce, request.deny, request.oauth2_crate);
        if self.profile.user.mode == crate::profile::UserMode::None && (deny || !uncheck.is_empty())
        {
            return Err(super::failure::undeclared(
                "the server approves with no page ([user] mode = \"none\"): the user cannot deny or untick a scope",
            ));
        }
        if request.consent_elsewhere && self.profile.user.mode != crate::profile::UserMode::Form {
            return Err(super::failure::undeclared(
                "the user does not consent on a page of the server's ([user] mode is not \"form\"), so there is no consent form another party could post",
            ));
        }
        let (redirect_uri, resource) = (request.redirect_uri.as_deref(), request.resource.as_str());
        let (scope, login_as) = (request.scope.as_deref(), request.user.as_deref());
        let mut client = self.registered(&request.client)?;
        if let Some(id) = &request.client_id {
            client.client_id = self.text(id)?;
        }
        let endpoint = self.endpoint("authorization_endpoint").await?;
        let presented_redirect = match redirect_uri {
            Some(r) => self.text(r)?,
            None => client.redirect_uri.clone(),
        };
        let resource_url = self.resource_url(resource)?;
        let scope = match scope {
            Some(s) => Some(self.text(s)?),
            None => self
                .profile
                .resources
                .get(resource)
                .map(|r| r.scopes.join(" ")),
        };
        // What the profile says this server needs on every request.
        let settings = &self.profile.authorization;
        let scope = scope.map(|s| {
            let mut scopes: Vec<&str> = s.split_ascii_whitespace().collect();
            for extra in &settings.extra_scopes {
                if !scopes.contains(&extra.as_str()) {
                    scopes.push(extra);
                }
            }
            scopes.join(" ")
        });
        let mut extra_params = settings.params_for(&request.client);
        if let Some(prompt) = &request.prompt {
            extra_params.insert("prompt".to_owned(), self.text(prompt)?);
        }
        if let Some(max_age) = request.max_age {
            extra_params.insert("max_age".to_owned(), max_age.to_string());
        }
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let verifier = verifier.secret().clone();
        self.evidence.keep_secret(&verifier);
        let state = crate::random_token();
        self.client.state_sent = Some(state.clone());

        let url = if oauth2_crate && pkce == Pkce::S256 {
            let oauth = BasicClient::new(ClientId::new(client.client_id.clone()))
                .set_auth_uri(
                    AuthUrl::new(endpoint.clone()).map_err(|e| precondition(e.to_string()))?,
                )
                .set_redirect_uri(
                    RedirectUrl::new(presented_redirect.clone())
                        .map_err(|e| precondition(e.to_string()))?,
                );
            let state_for_crate = state.clone();
            let mut request = oauth
                .authorize_url(move || CsrfToken::new(state_for_crate))
                .set_pkce_challenge(challenge);
            for s in scope.iter().flat_map(|s| s.split_ascii_whitespace()) {
                request = request.add_scope(Scope::new(s.to_owned()));
            }
            if let Some(r) = &resource_url {
                request = request.add_extra_param("resource", r.clone());
            }
            for (name, value) in &extra_params {
                request = request.add_extra_param(name.clone(), value.clone());
            }
            request.url().0
        } else {
            let mut url = Url::parse(&endpoint).map_err(|e| precondition(e.to_string()))?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("response_type", "code");
                q.append_pair("client_id", &client.client_id);
                q.append_pair("redirect_uri", &presented_redirect);
                q.append_pair("state", &state);
                match pkce {
                    Pkce::S256 => {
                        q.append_pair("code_challenge", challenge.as_str());
                        q.append_pair("code_challenge_method", "S256");
                    }
                    Pkce::Plain => {
                        q.append_pair("code_challenge", &verifier);
                        q.append_pair("code_challenge_method", "plain");
                    }
                    Pkce::None => {}
                }
                if let Some(scope) = &scope {
                    q.append_pair("scope", scope);
                }
                if let Some(r) = &resource_url {
                    q.append_pair("resource", r);
                }
                for (name, value) in &extra_params {
                    q.append_pair(name, value);
                }
            }
            url
        };

        let hub_origin = Url::parse(&endpoint)
            .map_err(|e| precondition(e.to_string()))?
            .origin();
        let mut vars = self.vars_as(login_as)?;
        let guessing = request.wrong_passwords > 0;
        // Each person has a browser of their own: a sign-in of one user's
        // must not carry over to another's authorization.
        let own_browser = self.browser_of(login_as);
        let browser = if guessing && super::browser::on_loopback(&endpoint) {
            own_browser.with_local_address(&self.profile.http, super::browser::SECOND_SOURCE)
        } else {
            own_browser
        };
        let mut guess_statuses: Vec<u16> = Vec::new();
        let mut current = url.to_string();
        let mut response = browser.send(browser.get(&current)).await?;
        let mut seen = Seen::default();
        // A `${…}` naming a list of scopes reads as them, space-separated.
        let mut withhold: Vec<String> = Vec::new();
        for scopes in &request.withhold {
            withhold.extend(
                self.text(scopes)?
                    .split_ascii_whitespace()
                    .map(str::to_owned),
            );
        }
        // The form rule the user last submitted a page with.
        let mut last_submitted: Option<&crate::profile::FormRule> = None;
        // The tenant's identity provider the harness plays, if one runs: the
        // browser goes there to sign in and comes back (single sign-on).
        let idp_origin = self.upstream_idp_origin();
        let leaves = |target: &Url| {
            (target.origin() != hub_origin && Some(target.origin()) != idp_origin)
                || without_query(target) == presented_redirect
        };
        for _ in 0..12 {
            if let Some(location) = redirect_location(&response, &current) {
                let target = Url::parse(&location).map_err(|e| precondition(e.to_string()))?;
                seen.sso |= Some(target.origin()) == idp_origin;
                if leaves(&target) {
                    let mut facts =
                        self.left_hub(&target, &presented_redirect, &verifier, &response);
                    seen.record(&mut facts);
                    if guessing {
                        facts["right_password_accepted"] = json!(true);
                        facts["guess_statuses"] = json!(guess_statuses);
                    }
                    return Ok(facts);
                }
                current = location;
                response = browser.send(browser.get(&current)).await?;
                continue;
            }
            // A page the user already submitted, shown again (a refused
            // sign-in re-shows the login form, often with a 4xx): the
            // harness cannot get further, and the server is not to blame.
            let page = response.text();
            let rule = user::form_page_rule(self.profile, &current, &page);
            if let (Some(rule), Some(submitted)) = (rule, last_submitted) {
                if std::ptr::eq(rule, submitted) && guessing {
                    // The right password, after the guesses, was not let through.
                    return Ok(json!({
                        "outcome": "sign_in_refused",
                        "status": response.status,
                        "page": current,
                        "right_password_accepted": false,
                        "guess_statuses": guess_statuses,
                    }));
                }
                if std::ptr::eq(rule, submitted)
                    && rule.page_kind() == crate::profile::PageKind::SecondFactor
                {
                    // The code typed was not accepted: the server's answer.
                    return Ok(json!({
                        "outcome": "second_factor_refused",
                        "status": response.status,
                        "page": current,
                        "login_shown": seen.login,
                        "second_factor_shown": true,
                    }));
                }
                if std::ptr::eq(rule, submitted) {
                    return Err(precondition(format!(
                        "the page at {current} (HTTP {}) shows the form of the [[user.forms]] rule `url_contains = {:?}` again after the user submitted it: the server did not accept it (check [user] username and password, and the rule's fill)",
                        response.status, rule.url_contains
                    )));
                }
            }
            // A server that will not redirect (RFC 6749 §4.1.2.1) shows its
            // own page: an answer other than 2xx that is no login or consent
            // page of the profile's, or a 200 page the profile names as the
            // server's error page. That is the scenario's to judge, not a
            // failure of the user driver.
            let error_page =
                (200..300).contains(&response.status) && user::is_error_page(self.profile, &page);
            if (!(200..300).contains(&response.status) && rule.is_none()) || error_page {
                let mut facts = not_redirected(&response, &current);
                facts["login_shown"] = json!(seen.login);
                facts["sso_shown"] = json!(seen.sso);
                return Ok(facts);
            }
            let login_page = rule.is_some_and(|r| r.page_kind() == crate::profile::PageKind::Login);
            seen.login |= login_page;
            if rule.is_some_and(|r| r.page_kind() == crate::profile::PageKind::SecondFactor) {
                seen.second_factor = true;
                let (code, recovery) =
                    self.authenticator(login_as)?.entry(request.second_factor)?;
                vars["user"]["one_time_code"] = json!(code);
                vars["user"]["recovery_code"] = json!(recovery);
            }
            if login_page && guessing && guess_statuses.is_empty() {
                let mut wrong = vars.clone();
                for _ in 0..request.wrong_passwords {
                    wrong["user"]["password"] = json!(format!("wrong-{}", crate::random_token()));
                    let Move::Submitted {
                        response: answer, ..
                    } = user::act(
                        &browser,
                        self.profile,
                        &wrong,
                        &current,
                        &response,
                        user::Choices::default(),
                    )
                    .await?
                    else {
                        return Err(precondition("the login form could not be posted"));
                    };
                    guess_statuses.push(answer.status);
                }
                // The login page is shown afresh for the real attempt.
                response = browser.send(browser.get(&current)).await?;
                continue;
            }
            if request.consent_elsewhere
                && rule.is_some_and(|r| r.page_kind() == crate::profile::PageKind::Consent)
            {
                // Another party posts the form the browser was shown; what
                // it gets back is the answer.
                let Move::Submitted { response, .. } = user::act(
                    &self.http,
                    self.profile,
                    &vars,
                    &current,
                    &response,
                    user::Choices::default(),
                )
                .await?
                else {
                    return Err(precondition(
                        "the consent form could not be posted as a page (control mode)",
                    ));
                };
                let mut facts = match redirect_location(&response, &current) {
                    Some(location) => {
                        let target =
                            Url::parse(&location).map_err(|e| precondition(e.to_string()))?;
                        self.left_hub(&target, &presented_redirect, &verifier, &response)
                    }
                    None => not_redirected(&response, &current),
                };
                facts["consent_from"] = json!("elsewhere");
                return Ok(facts);
            }
            match user::act(
                &browser,
                self.profile,
                &vars,
                &current,
                &response,
                user::Choices {
                    deny,
                    uncheck,
                    withhold: &withhold,
                },
            )
            .await?
            {
                Move::GoTo(location) => {
                    let target = Url::parse(&location).map_err(|e| precondition(e.to_string()))?;
                    seen.sso |= Some(target.origin()) == idp_origin;
                    if leaves(&target) {
                        let mut facts =
                            self.left_hub(&target, &presented_redirect, &verifier, &response);
                        seen.record(&mut facts);
                        return Ok(facts);
                    }
                    current = location;
                    response = browser.send(browser.get(&current)).await?;
                }
                Move::Submitted {
                    response: next,
                    offered: asked,
                    mandatory: required,
                } => {
                    last_submitted = rule;
                    if !asked.is_empty() {
                        seen.consent = true;
                        seen.offered.extend(asked);
                    }
                    seen.mandatory.extend(required);
                    response = next;
                }
            }
        }
        Err(precondition(
            "the authorization flow did not finish within 12 pages",
        ))
    }

    /// The browser is leaving the hub: record where to and with what.
    fn left_hub(
        &mut self,
        target: &Url,
        presented_redirect: &str,
        verifier: &str,
        response: &Response,
    ) -> Value {
        let params: Map<String, Value> = target
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        let destination = without_query(target);
        let code = params
            .get("code")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(code) = &code {
            self.evidence.keep_secret(code);
            self.client.pending = Some(PendingCode {
                code: code.clone(),
                verifier: verifier.to_owned(),
                redirect_uri: presented_redirect.to_owned(),
            });
        }
        let outcome = if code.is_some() {
            "code"
        } else if params.contains_key("error") {
            "error"
        } else {
            "redirected"
        };
        json!({
            "outcome": outcome,
            "status": response.status,
            "redirected_to": destination,
            "to_presented_redirect_uri": destination == presented_redirect,
            "params": params,
            "error": params.get("error").cloned(),
            "state_sent": self.client.state_sent,
        })
    }
}
