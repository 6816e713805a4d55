//! Sign-in sessions (docs/signin.md): what the scenarios cannot see because it
//! depends on the hub's own settings: the idle timeout and the lifetime on
//! the test clock, the cookie's attributes, a sign-out posted from another
//! site, and malformed `prompt` and `max_age`.

use reference_server::store::Database;
use reference_server::RunningHub;

use crate::support::*;

const RESOURCE: &str = "/mcp/calendar";

/// Where an authorization request from `browser` goes first: the login
/// page, the consent page, or back to the client (the redirect's URL).
async fn first_stop(
    browser: &reqwest::Client,
    hub: &RunningHub,
    client_id: &str,
    extra: &[(&str, &str)],
) -> String {
    let resource = format!("{}{RESOURCE}", hub.base_url);
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", "http://127.0.0.1:9/cb"),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ),
        ("code_challenge_method", "S256"),
        ("resource", &resource),
        ("state", "s1"),
    ];
    query.extend_from_slice(extra);
    let response = browser
        .get(format!("{}/authorize", hub.issuer))
        .query(&query)
        .send()
        .await
        .expect("authorize");
    response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Signs alice in through the login form of the request `login_url` names;
/// answers the `Set-Cookie` of the sign-in.
async fn sign_in(browser: &reqwest::Client, login_url: &str) -> String {
    let request = login_url.split("request=").nth(1).expect("a request id");
    let login = login_url.split('?').next().expect("the login URL");
    let response = browser
        .post(login)
        .form(&[
            ("request", request),
            ("username", "alice"),
            ("password", "alice-password"),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 303, "the sign-in goes on to consent");
    response
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_sign_in_ends_when_left_idle_and_at_its_lifetime() {
    let mut config = config(Database::Memory);
    config.signin_idle_timeout = 600;
    config.signin_lifetime = 1800;
    let hub = reference_server::spawn(config).await.expect("hub starts");
    let client_id = register(&hub).await;
    let browser = browser();

    let first = first_stop(&browser, &hub, &client_id, &[]).await;
    assert!(first.contains("/login?"), "{first}");
    let cookie = sign_in(&browser, &first).await;
    assert!(cookie.starts_with("hub_signin="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/oauth", "Max-Age=1800"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }

    // Used every 500 s, the session outlives the 600 s idle timeout...
    for _ in 0..3 {
        advance_clock(&hub, 500).await;
        let next = first_stop(&browser, &hub, &client_id, &[]).await;
        assert!(
            next.contains("/consent?"),
            "within the idle timeout: {next}"
        );
    }
    // ...but not its 1800 s lifetime (1500 s so far, then 2000 s).
    advance_clock(&hub, 500).await;
    let late = first_stop(&browser, &hub, &client_id, &[]).await;
    assert!(late.contains("/login?"), "past the lifetime: {late}");

    // A fresh sign-in left alone for longer than the idle timeout ends too.
    sign_in(&browser, &late).await;
    advance_clock(&hub, 601).await;
    let idle = first_stop(&browser, &hub, &client_id, &[]).await;
    assert!(idle.contains("/login?"), "after the idle timeout: {idle}");

    // max_age on the clock: two minutes after a sign-in, one minute is too old.
    sign_in(&browser, &idle).await;
    advance_clock(&hub, 120).await;
    let stale = first_stop(&browser, &hub, &client_id, &[("max_age", "60")]).await;
    assert!(stale.contains("/login?"), "older than max_age: {stale}");
    let fresh = first_stop(&browser, &hub, &client_id, &[("max_age", "3600")]).await;
    assert!(fresh.contains("/consent?"), "younger than max_age: {fresh}");
    let reuses = audit(&hub, "user.session.reused").await;
    assert_eq!(reuses.len(), 4, "each reuse is audited: {reuses:?}");
    hub.stop().await;
}

#[tokio::test]
async fn sign_out_from_another_site_is_refused_and_the_session_stays() {
    let hub = start().await;
    let client_id = register(&hub).await;
    let browser = browser();
    let first = first_stop(&browser, &hub, &client_id, &[]).await;
    sign_in(&browser, &first).await;

    let foreign = browser
        .post(format!("{}/logout", hub.issuer))
        .header("origin", "https://attacker.example")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("sign-out");
    assert!(foreign.status().is_client_error(), "{}", foreign.status());
    let still = first_stop(&browser, &hub, &client_id, &[]).await;
    assert!(still.contains("/consent?"), "the session survives: {still}");

    let own = browser
        .post(format!("{}/logout", hub.issuer))
        .send()
        .await
        .expect("sign-out");
    assert_eq!(own.status(), 200);
    let cleared = own
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        cleared.contains("hub_signin=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let after = first_stop(&browser, &hub, &client_id, &[]).await;
    assert!(after.contains("/login?"), "signed out: {after}");
    let events = audit(&hub, "user.logout").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["outcome"], "success");
    hub.stop().await;
}

#[tokio::test]
async fn malformed_prompt_and_max_age_are_invalid_request_at_the_client() {
    let hub = start().await;
    let client_id = register(&hub).await;
    let browser = browser();
    for extra in [
        [("prompt", "none login")],
        [("max_age", "-1")],
        [("max_age", "soon")],
    ] {
        let back = first_stop(&browser, &hub, &client_id, &extra).await;
        assert!(
            back.starts_with("http://127.0.0.1:9/cb?") && back.contains("error=invalid_request"),
            "{extra:?}: {back}"
        );
        assert!(back.contains("state=s1") && back.contains("iss="), "{back}");
    }
    hub.stop().await;
}
