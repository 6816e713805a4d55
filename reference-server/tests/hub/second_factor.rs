//! Second factors (docs/mfa.md) through the pages, as a browser meets them:
//! enrolment at the first sign-in, the code each time after, replays and
//! recovery codes, the back-off on wrong codes, the binding to the browser
//! that gave the password, the token's `acr`/`amr`, and the admin API.

use serde_json::Value;
use totp_rs::{Algorithm, Secret, TOTP};

use reference_server::RunningHub;

use crate::support::*;

/// An authorization request for the calendar from `browser`; where it goes.
async fn authorize(browser: &reqwest::Client, hub: &RunningHub, client_id: &str) -> String {
    authorize_calendar(browser, hub, client_id, Some("calendar.read")).await
}

fn request_of(url: &str) -> String {
    url.split("request=")
        .nth(1)
        .expect("a request id")
        .to_owned()
}

/// Posts the login form for `user`; where the hub sends the browser next.
async fn password(browser: &reqwest::Client, hub: &RunningHub, login: &str, user: &str) -> String {
    let response = browser
        .post(format!("{}/login", hub.issuer))
        .form(&[
            ("request", request_of(login).as_str()),
            ("username", user),
            ("password", &format!("{user}-password")),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 303, "the password is right");
    location(&response)
}

/// Posts the second-factor form: `field` is `code` or `recovery_code`.
async fn second_factor(
    browser: &reqwest::Client,
    hub: &RunningHub,
    request: &str,
    field: &str,
    value: &str,
) -> reqwest::Response {
    browser
        .post(format!("{}/login/second-factor", hub.issuer))
        .form(&[("request", request), (field, value)])
        .send()
        .await
        .expect("second factor")
}

/// The hub's time, as its TOTP codes are computed.
async fn hub_now(hub: &RunningHub) -> u64 {
    let body = json_of(
        client()
            .get(format!("{}/control/clock", hub.base_url))
            .bearer_auth(CONTROL),
    )
    .await;
    body["now"].as_u64().expect("now")
}

async fn code_now(hub: &RunningHub, base32: &str) -> String {
    let secret = Secret::Encoded(base32.to_owned())
        .to_bytes()
        .expect("base32");
    TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, secret).generate(hub_now(hub).await)
}

/// The text between `start` and the next `<` on a page.
fn text_after(page: &str, start: &str) -> String {
    let at = page
        .find(start)
        .unwrap_or_else(|| panic!("{start} in {page}"))
        + start.len();
    page[at..].split('<').next().unwrap_or_default().to_owned()
}

/// Approves the consent page of `request` and redeems the code: the token response.
async fn consent_and_redeem(
    browser: &reqwest::Client,
    hub: &RunningHub,
    request: &str,
    client_id: &str,
) -> Value {
    let response = browser
        .post(format!("{}/consent", hub.issuer))
        .form(&[
            ("request", request),
            ("scope", "calendar.read"),
            ("decision", "approve"),
        ])
        .send()
        .await
        .expect("consent");
    let back = location(&response);
    let code = url::Url::parse(&back)
        .expect("a redirect back")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("a code in {back}"));
    redeem(hub, &code, client_id, VERIFIER)
        .await
        .json()
        .await
        .expect("a token response")
}

#[tokio::test]
async fn an_auditor_enrols_at_the_first_sign_in_and_each_code_works_once() {
    let hub = start().await;
    let registered = json_of(client().post(format!("{}/register", hub.issuer)).json(
        &serde_json::json!({
            "redirect_uris": ["http://127.0.0.1:9/cb"],
            "client_name": "second factor test",
            "grant_types": ["authorization_code", "refresh_token"],
        }),
    ))
    .await;
    let client_id = registered["client_id"]
        .as_str()
        .expect("a client")
        .to_owned();
    let browser = browser();

    // The password alone starts no session: on to the second factor.
    let login = authorize(&browser, &hub, &client_id).await;
    let next = password(&browser, &hub, &login, "mona").await;
    assert!(next.contains("/login/second-factor?"), "{next}");
    let request = request_of(&next);
    let (status, page) =
        crate::support::page(&browser, &hub, next.trim_start_matches(&hub.base_url)).await;
    assert_eq!(status, 200);
    // No factor yet: the page offers a secret to enrol.
    let secret = text_after(&page, "<code id=\"totp-secret\">");
    assert_eq!(secret.len(), 32, "160 bits in base32: {secret}");
    assert!(page.contains("otpauth://totp/"), "{page}");

    let wrong = second_factor(&browser, &hub, &request, "code", "000000").await;
    assert_eq!(wrong.status(), 401);
    let code = code_now(&hub, &secret).await;
    let enrolled = second_factor(&browser, &hub, &request, "code", &code).await;
    assert_eq!(enrolled.status(), 200, "the recovery codes, once");
    let set_cookies: Vec<String> = enrolled
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .collect();
    assert!(
        set_cookies.iter().any(|c| c.starts_with("hub_signin=")),
        "{set_cookies:?}"
    );
    let codes_page = unescape(&enrolled.text().await.unwrap());
    let recovery: Vec<String> = codes_page
        .split("<li><code>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10, "{codes_page}");

    // The token says how she signed in, and a refreshed one says the same.
    let tokens = consent_and_redeem(&browser, &hub, &request, &client_id).await;
    let first = jwt_claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(first["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(first["acr"], "urn:agentic-hub:acr:mfa");
    assert!(first["auth_time"].is_i64());
    let refreshed = json_of(client().post(format!("{}/token", hub.issuer)).form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ("client_id", &client_id),
    ]))
    .await;
    let again = jwt_claims(
        refreshed["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{refreshed}")),
    );
    for claim in ["amr", "acr", "auth_time"] {
        assert_eq!(again[claim], first[claim], "{claim} after a refresh");
    }

    // The session proved two factors: the next authorization reuses it.
    let reused = authorize(&browser, &hub, &client_id).await;
    assert!(!reused.contains("/login"), "{reused}");

    // Another browser: the password, then the same code again is refused.
    let other = crate::support::browser();
    let login = authorize(&other, &hub, &client_id).await;
    let next = password(&other, &hub, &login, "mona").await;
    let request = request_of(&next);
    let (_, page) =
        crate::support::page(&other, &hub, next.trim_start_matches(&hub.base_url)).await;
    assert!(!page.contains("totp-secret"), "enrolled: no secret offered");
    let replayed = second_factor(&other, &hub, &request, "code", &code).await;
    assert_eq!(replayed.status(), 401, "RFC 6238 §5.2: a code works once");
    // A recovery code works, once.
    let recovered = second_factor(&other, &hub, &request, "recovery_code", &recovery[0]).await;
    assert_eq!(recovered.status(), 303);
    assert!(location(&recovered).contains("/consent?"));
    let third = crate::support::browser();
    let login = authorize(&third, &hub, &client_id).await;
    let next = password(&third, &hub, &login, "mona").await;
    let lower = recovery[0].to_lowercase().replace('-', " ");
    let reused = second_factor(&third, &hub, &request_of(&next), "recovery_code", &lower).await;
    assert_eq!(reused.status(), 401, "a recovery code works once");

    let refused = audit(&hub, "user.second_factor.refused").await;
    let reasons: Vec<&str> = refused
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(reasons.contains(&"wrong code"), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("RFC 6238 §5.2")),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"this recovery code was already used"),
        "{reasons:?}"
    );
    assert_eq!(audit(&hub, "user.second_factor.enrolled").await.len(), 1);
    let verified = audit(&hub, "user.second_factor.verified").await;
    assert_eq!(verified.len(), 1, "{verified:?}");
    assert_eq!(verified[0]["reason"], "a recovery code; 9 left");
    hub.stop().await;
}

#[tokio::test]
async fn wrong_codes_are_throttled_and_the_page_answers_only_its_browser() {
    let hub = start_with_admin().await;
    let client_id = register(&hub).await;
    let provisioned = json_of(
        client()
            .post(format!("{}/admin/users/nadia/second-factor", hub.base_url))
            .bearer_auth(ADMIN),
    )
    .await;
    let secret = provisioned["secret"].as_str().expect("a secret").to_owned();
    assert_eq!(provisioned["recovery_codes"].as_array().unwrap().len(), 10);

    let browser = browser();
    let login = authorize(&browser, &hub, &client_id).await;
    let next = password(&browser, &hub, &login, "nadia").await;
    let request = request_of(&next);

    // Another browser that learnt the request's handle gets nowhere.
    let stranger = crate::support::browser();
    let (status, _) =
        crate::support::page(&stranger, &hub, next.trim_start_matches(&hub.base_url)).await;
    assert_eq!(status, 400);
    let code = code_now(&hub, &secret).await;
    let posted = second_factor(&stranger, &hub, &request, "code", &code).await;
    assert_eq!(posted.status(), 400);

    // Five wrong codes are free; the sixth closes the gate, and then even
    // the right one waits.
    for _ in 0..6 {
        let wrong = second_factor(&browser, &hub, &request, "code", "123456x").await;
        assert_eq!(wrong.status(), 401);
    }
    let throttled = second_factor(&browser, &hub, &request, "code", &code).await;
    assert_eq!(throttled.status(), 429);
    // After the back-off, the right code is let through.
    advance_clock(&hub, 60).await;
    let code = code_now(&hub, &secret).await;
    let accepted = second_factor(&browser, &hub, &request, "code", &code).await;
    assert_eq!(accepted.status(), 303);

    // An administrator removes the factor: the next sign-in enrols afresh.
    let removed = json_of(
        client()
            .delete(format!("{}/admin/users/nadia/second-factor", hub.base_url))
            .bearer_auth(ADMIN),
    )
    .await;
    assert_eq!(removed["removed"], true);
    let fresh = crate::support::browser();
    let login = authorize(&fresh, &hub, &client_id).await;
    let next = password(&fresh, &hub, &login, "nadia").await;
    let (_, page) =
        crate::support::page(&fresh, &hub, next.trim_start_matches(&hub.base_url)).await;
    assert!(page.contains("totp-secret"), "enrolment again: {page}");
    hub.stop().await;
}
