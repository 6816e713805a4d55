//! The user role: signs in and consents, either by filling the hub's HTML
//! forms as a browser would, or through the profile's `decide_pending`
//! recipe (a control API).

use scraper::{Html, Selector};
use serde_json::{json, Value};
use url::Url;

use crate::expect::interpolate;
use crate::http::{Http, Response};
use crate::operation::OperationError;
use crate::profile::{FormRule, PageKind, Profile, UserMode};
use crate::recipe::Operation;

/// What the user did with one page.
pub enum Move {
    /// The browser goes to this URL next (a redirect).
    GoTo(String),
    /// The browser received this response after submitting a form (or
    /// following a deny link); `offered` lists the values of the `check_all`
    /// checkboxes the page showed (the scopes a consent page asked for).
    Submitted {
        response: Response,
        offered: Vec<String>,
        /// Of `offered`, those the page gave no box to untick (a hidden
        /// field of a `check_all` name): scopes shown as mandatory.
        mandatory: Vec<String>,
    },
}

/// What the user decides on a consent page.
#[derive(Debug, Clone, Copy, Default)]
pub struct Choices<'a> {
    /// Deny instead of approving.
    pub deny: bool,
    /// Scopes to untick: each must have its box on the page.
    pub uncheck: &'a [String],
    /// Scopes to leave out of the form as posted, box or not (a tampered form).
    pub withhold: &'a [String],
}

/// Why the user could not go on.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("no [[user.forms]] rule matches the page at {0} (by url_contains and page_has)")]
    NoRule(String),
    /// Pressing approve instead would get a code and blame the server for it.
    #[error("the scenario denies consent, but {rule} (the page at {url}) has no `deny` button, `deny_link` or `deny_form`; the harness will not approve instead")]
    NoDenyRule { rule: String, url: String },
    #[error("the page at {url} has no link matching deny_link `{selector}`")]
    NoDenyLink { url: String, selector: String },
    /// Submitting with the scope still ticked would grant it and blame the server.
    #[error("the scenario unticks `{scope}`, but the consent page at {url} ({rule}) has no checkbox with that value; if the server's consent is all or nothing, set [user] per_scope_consent = false")]
    NoCheckbox {
        scope: String,
        rule: String,
        url: String,
    },
    #[error("the profile says the server shows the user no page ([user] mode = \"none\"), but it showed one at {0}")]
    UnexpectedPage(String),
    #[error("the scenario unticks {0:?}, but in `control` mode the user can only approve or deny")]
    UntickByControl(Vec<String>),
    #[error("the page at {url} has no form matching `{selector}`")]
    NoForm { url: String, selector: String },
    #[error("the page URL {0} carries no pending-request parameter for the control API")]
    NoRequestId(String),
    /// The `decide_pending` operation did not say where the browser goes next.
    #[error("deciding through the control API: {0}")]
    Control(String),
    #[error("{0}")]
    Transport(#[from] crate::http::TransportError),
    #[error("{0}")]
    Profile(String),
}

/// Acts on a page the hub showed at `page_url`.
pub async fn act(
    http: &Http,
    profile: &Profile,
    vars: &Value,
    page_url: &str,
    page: &Response,
    choices: Choices<'_>,
) -> Result<Move, UserError> {
    let Choices {
        deny,
        uncheck,
        withhold,
    } = choices;
    match profile.user.mode {
        UserMode::Form => {
            let html = page.text();
            let rule = matching_rule(profile, page_url, &html)
                .ok_or_else(|| UserError::NoRule(page_url.to_owned()))?;
            let consent = rule.page_kind() == PageKind::Consent;
            if deny && consent && rule.deny.is_none() && rule.deny_link.is_none() {
                if let Some(form) = &rule.deny_form {
                    // A form of its own (with its own hidden fields), submitted as it is.
                    let mut denial = rule.clone();
                    denial.form = form.clone();
                    denial.submit = None;
                    denial.check_all.clear();
                    return submit_form(http, vars, &denial, page_url, &html, Choices::default())
                        .await
                        .map(|(response, _, _)| Move::Submitted {
                            response,
                            offered: Vec::new(),
                            mandatory: Vec::new(),
                        });
                }
            }
            if deny && consent && rule.deny.is_none() {
                let Some(selector) = &rule.deny_link else {
                    return Err(UserError::NoDenyRule {
                        rule: rule.describe(),
                        url: page_url.to_owned(),
                    });
                };
                let link = link_target(&html, selector, page_url)?;
                let response = http.send(http.get(link.as_str())).await?;
                return Ok(Move::Submitted {
                    response,
                    offered: Vec::new(),
                    mandatory: Vec::new(),
                });
            }
            let (uncheck, withhold) = if consent {
                (uncheck, withhold)
            } else {
                (&[][..], &[][..])
            };
            let choices = Choices {
                deny,
                uncheck,
                withhold,
            };
            submit_form(http, vars, rule, page_url, &html, choices)
                .await
                .map(|(response, offered, mandatory)| Move::Submitted {
                    response,
                    offered,
                    mandatory,
                })
        }
        UserMode::Control if !uncheck.is_empty() => {
            Err(UserError::UntickByControl(uncheck.to_vec()))
        }
        UserMode::Control => decide_by_control(http, profile, vars, page_url, deny)
            .await
            .map(Move::GoTo),
        UserMode::None => Err(UserError::UnexpectedPage(page_url.to_owned())),
    }
}

/// The first form rule whose `url_contains` is in the page URL and whose
/// `page_has` (if any) matches something on the page.
pub fn matching_rule<'p>(profile: &'p Profile, page_url: &str, html: &str) -> Option<&'p FormRule> {
    rule_for(profile, page_url, &Html::parse_document(html))
}

/// The matching rule, when the page also holds its form: a login or consent
/// page the user can act on (read from one parse of the page).
pub fn form_page_rule<'p>(
    profile: &'p Profile,
    page_url: &str,
    html: &str,
) -> Option<&'p FormRule> {
    let document = Html::parse_document(html);
    rule_for(profile, page_url, &document).filter(|rule| shows(&document, &rule.form))
}

fn rule_for<'p>(profile: &'p Profile, page_url: &str, document: &Html) -> Option<&'p FormRule> {
    profile.user.forms.iter().find(|rule| {
        page_url.contains(&rule.url_contains)
            && rule
                .page_has
                .as_deref()
                .is_none_or(|selector| shows(document, selector))
    })
}

/// Whether the page is the server's own error page (`[user] error_page_has`).
pub fn is_error_page(profile: &Profile, html: &str) -> bool {
    profile
        .user
        .error_page_has
        .as_deref()
        .is_some_and(|selector| shows(&Html::parse_document(html), selector))
}

fn shows(document: &Html, selector: &str) -> bool {
    Selector::parse(selector).is_ok_and(|s| document.select(&s).next().is_some())
}

/// Where the deny link on the page leads, resolved against the page URL.
fn link_target(html: &str, selector: &str, page_url: &str) -> Result<Url, UserError> {
    let missing = || UserError::NoDenyLink {
        url: page_url.to_owned(),
        selector: selector.to_owned(),
    };
    let href = {
        let document = Html::parse_document(html);
        let parsed = Selector::parse(selector).map_err(|_| missing())?;
        let href = document
            .select(&parsed)
            .find_map(|a| a.value().attr("href").map(str::to_owned));
        href.ok_or_else(missing)?
    };
    Url::parse(page_url)
        .and_then(|base| base.join(&href))
        .map_err(|e| UserError::Profile(e.to_string()))
}

/// Fills and submits the rule's form: `uncheck` unticks boxes the page
/// shows; `withhold` leaves values of a `check_all` field out of the post
/// whatever the page made of them (a tampered form, as a user agent could).
async fn submit_form(
    http: &Http,
    vars: &Value,
    rule: &FormRule,
    page_url: &str,
    html: &str,
    choices: Choices<'_>,
) -> Result<(Response, Vec<String>, Vec<String>), UserError> {
    let Choices {
        deny,
        uncheck,
        withhold,
    } = choices;
    // scraper's types are not Send: extract everything before the next await.
    let (action, method, fields, offered, mandatory) = {
        let document = Html::parse_document(html);
        let no_form = || UserError::NoForm {
            url: page_url.to_owned(),
            selector: rule.form.clone(),
        };
        let form_selector = Selector::parse(&rule.form).map_err(|_| no_form())?;
        let form = document.select(&form_selector).next().ok_or_else(no_form)?;
        let inputs = Selector::parse("input").map_err(|_| no_form())?;
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut offered: Vec<String> = Vec::new();
        let mut mandatory: Vec<String> = Vec::new();
        let mut boxes: Vec<String> = Vec::new();
        for input in form.select(&inputs) {
            let el = input.value();
            let Some(name) = el.attr("name") else {
                continue;
            };
            let value = el.attr("value").unwrap_or_default().to_owned();
            match el
                .attr("type")
                .unwrap_or("text")
                .to_ascii_lowercase()
                .as_str()
            {
                "submit" | "button" | "image" | "reset" => {}
                "checkbox" | "radio" => {
                    boxes.push(value.clone());
                    let check_all = rule.check_all.iter().any(|n| n == name);
                    if check_all {
                        offered.push(value.clone());
                    }
                    if uncheck.contains(&value) {
                        continue;
                    }
                    if el.attr("checked").is_some() || check_all {
                        fields.push((name.to_owned(), value));
                    }
                }
                "hidden" if rule.check_all.iter().any(|n| n == name) => {
                    offered.push(value.clone());
                    mandatory.push(value.clone());
                    fields.push((name.to_owned(), value));
                }
                _ => fields.push((name.to_owned(), value)),
            }
        }
        fields.retain(|(name, value)| {
            !(rule.check_all.iter().any(|n| n == name) && withhold.contains(value))
        });
        if let Some(scope) = uncheck.iter().find(|s| !boxes.contains(s)) {
            return Err(UserError::NoCheckbox {
                scope: scope.clone(),
                rule: rule.describe(),
                url: page_url.to_owned(),
            });
        }
        for (name, template) in &rule.fill {
            let value = interpolate(template, vars).map_err(UserError::Profile)?;
            match fields.iter_mut().find(|(n, _)| n == name) {
                Some(field) => field.1 = value,
                None => fields.push((name.clone(), value)),
            }
        }
        // `act` has already refused a denial the consent rule cannot make;
        // on a login page the user signs in either way.
        let button = match (&rule.deny, deny && rule.page_kind() == PageKind::Consent) {
            (Some(deny_button), true) => Some(deny_button),
            _ => rule.submit.as_ref(),
        };
        if let Some(button) = button {
            fields.push((button.name.clone(), button.value.clone()));
        }
        let base = Url::parse(page_url).map_err(|e| UserError::Profile(e.to_string()))?;
        let action = match form.value().attr("action").filter(|a| !a.is_empty()) {
            Some(a) => base
                .join(a)
                .map_err(|e| UserError::Profile(e.to_string()))?,
            None => base,
        };
        let method = form
            .value()
            .attr("method")
            .unwrap_or("get")
            .to_ascii_lowercase();
        (action, method, fields, offered, mandatory)
    };
    let request = if method == "post" {
        http.post(action.as_str()).form(&fields)
    } else {
        http.get(action.as_str()).query(&fields)
    };
    Ok((http.send(request).await?, offered, mandatory))
}

async fn decide_by_control(
    http: &Http,
    profile: &Profile,
    vars: &Value,
    page_url: &str,
    deny: bool,
) -> Result<String, UserError> {
    let param = profile.user.request_param.as_deref().unwrap_or("request");
    let url = Url::parse(page_url).map_err(|e| UserError::Profile(e.to_string()))?;
    let request_id = url
        .query_pairs()
        .find(|(k, _)| k == param)
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| UserError::NoRequestId(page_url.to_owned()))?;
    let username = vars["user"]["username"]
        .as_str()
        .unwrap_or(&profile.user.username);
    let inputs = json!({
        "request": request_id,
        "username": username,
        "decision": if deny { "deny" } else { "approve" },
        "approve": !deny,
    });
    // The test driver decides on the back channel: no browser cookie goes with it.
    let answer = crate::operation::perform(
        &http.back_channel(),
        profile,
        &profile.vars(),
        Operation::DecidePending,
        inputs,
    )
    .await
    .map_err(|e| match e {
        OperationError::Transport(e) => UserError::Transport(e),
        other => UserError::Control(other.to_string()),
    })?;
    let redirect = answer
        .need_ok("redirect_to")
        .map_err(|e| UserError::Control(e.to_string()))?;
    redirect.as_str().map(str::to_owned).ok_or_else(|| {
        UserError::Control(answer.unexpected("`redirect_to` is not a URL").to_string())
    })
}
