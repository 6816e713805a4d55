//! The hub console: sign-in and its cookie, CSRF refusals, policies,
//! agents, Connections and the audit flow, as a browser sees them.

use reference_server::store::Database;
use reference_server::RunningHub;
use serde_json::{json, Value};

use crate::support::*;

/// The value of the first field named `name` (hidden inputs), unescaped.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name}"))
        + marker.len();
    let end = html[start..].find('"').expect("end of value") + start;
    unescape(&html[start..end])
}

/// The text of the element with `id` up to the end of its section.
fn section(html: &str, id: &str) -> String {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element {id} in {html}"));
    let end = html[start..]
        .find("</section>")
        .map_or(html.len(), |e| e + start);
    html[start..end].to_owned()
}

/// Posts a console form with the session's CSRF token.
async fn post_form(
    browser: &reqwest::Client,
    hub: &RunningHub,
    path: &str,
    csrf: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut fields = vec![("csrf", csrf)];
    fields.extend_from_slice(form);
    browser
        .post(format!("{}{path}", hub.base_url))
        .form(&fields)
        .send()
        .await
        .unwrap()
}

/// Signs in as the seeded administrator; returns the browser and the session's CSRF token.
async fn console_login(hub: &RunningHub) -> (reqwest::Client, String) {
    let browser = browser();
    let form = browser
        .get(format!("{}/console/login", hub.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let signed_in = browser
        .post(format!("{}/console/login", hub.base_url))
        .form(&[
            ("csrf", field(&form, "csrf").as_str()),
            ("username", "admin"),
            ("password", "admin-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303, "sign-in");
    let (status, home) = page(&browser, hub, "/console").await;
    assert_eq!(status, 200, "{home}");
    let csrf = field(&home, "csrf");
    (browser, csrf)
}

async fn audit_events(hub: &RunningHub, query: &str) -> Vec<Value> {
    let body: Value = client()
        .get(format!("{}/control/audit?{query}", hub.base_url))
        .bearer_auth(CONTROL)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["events"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn the_console_needs_a_signed_in_admin_and_its_session_cookie_is_locked_down() {
    let hub = start().await;
    // Signed out: every page sends the browser to the sign-in page, and back afterwards.
    let (status, _) = page(&browser(), &hub, "/console/agents?tag=autonomous").await;
    assert_eq!(status, 303);
    let away = client()
        .get(format!("{}/console/agents?tag=autonomous", hub.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        away.headers()["location"],
        "/console/login?next=%2Fconsole%2Fagents%3Ftag%3Dautonomous"
    );
    for path in [
        "/console",
        "/console/policies/what-if",
        "/console/connections",
        "/console/audit/stream",
    ] {
        let r = client()
            .get(format!("{}{path}", hub.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert!(r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/console/login"));
    }

    // A wrong password is refused and audited with the administrator's name.
    let b = browser();
    let (status, form) = page(&b, &hub, "/console/login").await;
    assert_eq!(status, 200);
    assert!(
        form.contains("<label for=\"username\">Username</label>"),
        "{form}"
    );
    let refused = b
        .post(format!("{}/console/login", hub.base_url))
        .form(&[
            ("csrf", field(&form, "csrf").as_str()),
            ("username", "admin"),
            ("password", "not-the-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused
        .headers()
        .get_all("set-cookie")
        .iter()
        .all(|c| !c.to_str().unwrap().starts_with("hub_console=")));
    let again = unescape(&refused.text().await.unwrap());
    assert!(again.contains("Wrong username or password."), "{again}");
    let failures: Vec<_> = audit_events(&hub, "type=admin.login")
        .await
        .into_iter()
        .filter(|e| e["outcome"] == "failure")
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        failures[0]["actor"],
        json!({"type": "admin", "id": "admin"})
    );
    assert!(failures[0]["reason"]
        .as_str()
        .unwrap()
        .contains("wrong password"));
    assert!(!failures[0].to_string().contains("not-the-password"));

    // The sign-in form's own token is checked too: without its cookie, refused.
    let stray = client()
        .post(format!("{}/console/login", hub.base_url))
        .form(&[
            ("csrf", field(&again, "csrf").as_str()),
            ("username", "admin"),
            ("password", "admin-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(stray.status(), 403);

    // The right password: a session cookie that scripts and other sites never see.
    let signed_in = b
        .post(format!("{}/console/login", hub.base_url))
        .form(&[
            ("csrf", field(&again, "csrf").as_str()),
            ("username", "admin"),
            ("password", "admin-password"),
            ("next", "/console/agents?tag=autonomous"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(
        signed_in.headers()["location"],
        "/console/agents?tag=autonomous"
    );
    let session = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("hub_console="))
        .expect("a session cookie");
    for attribute in ["; HttpOnly", "; SameSite=Strict", "; Path=/console"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(!session.contains("Secure"), "plain http: {session}");
    let value = session
        .trim_start_matches("hub_console=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (status, agents) = page(&b, &hub, "/console/agents?tag=autonomous").await;
    assert_eq!(status, 200);
    assert!(agents.contains("agent-reporter"), "{agents}");
    let success = audit_events(&hub, "type=admin.login").await;
    assert!(success.iter().any(
        |e| e["outcome"] == "success" && e["actor"] == json!({"type": "admin", "id": "admin"})
    ));
    assert!(!success.iter().any(|e| e.to_string().contains(&value)));

    // Sign out: the session ends on the server, not only in the browser.
    let csrf = field(&agents, "csrf");
    let out = post_form(&b, &hub, "/console/logout", &csrf, &[]).await;
    assert_eq!(out.status(), 303);
    let replayed = client()
        .get(format!("{}/console/agents", hub.base_url))
        .header("cookie", format!("hub_console={value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 303, "a signed-out session is gone");
    assert!(!audit_events(&hub, "type=admin.logout").await.is_empty());

    // Sessions expire on the hub clock.
    let (b, _) = console_login(&hub).await;
    assert_eq!(page(&b, &hub, "/console/agents").await.0, 200);
    advance_clock(&hub, 8 * 3600 + 1).await;
    assert_eq!(page(&b, &hub, "/console/agents").await.0, 303);
    hub.stop().await;

    // Behind https, the cookies are Secure.
    let mut config = config(Database::Memory);
    config.public_url = Some("https://hub.example".into());
    let hub = reference_server::spawn(config).await.unwrap();
    let form = client()
        .get(format!("http://{}/console/login", hub.local_addr))
        .send()
        .await
        .unwrap();
    let login_cookie = form.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(login_cookie.contains("; Secure"), "{login_cookie}");
    let token = field(&form.text().await.unwrap(), "csrf");
    let signed_in = client()
        .post(format!("http://{}/console/login", hub.local_addr))
        .header("cookie", format!("hub_console_login={token}"))
        .header("origin", "https://hub.example")
        .form(&[
            ("csrf", token.as_str()),
            ("username", "admin"),
            ("password", "admin-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let session = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("hub_console="))
        .expect("a session cookie");
    assert!(session.contains("; Secure"), "{session}");
    hub.stop().await;
}

#[tokio::test]
async fn console_forms_are_refused_without_the_session_csrf_token_or_from_another_site() {
    let hub = start().await;
    let (b, csrf) = console_login(&hub).await;
    let (status, confirm) = page(&b, &hub, "/console/policies/pol-globex-readers/delete").await;
    assert_eq!(status, 200);
    assert!(
        confirm.contains("Delete the policy \"Globex: read-only calendar\"?"),
        "{confirm}"
    );
    let delete = format!(
        "{}/console/policies/pol-globex-readers/delete",
        hub.base_url
    );
    let without = b
        .post(&delete)
        .form(&[("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 403);
    let text = unescape(&without.text().await.unwrap());
    assert!(text.contains("The form carried no CSRF token"), "{text}");
    let wrong = post_form(
        &b,
        &hub,
        "/console/policies/pol-globex-readers/delete",
        "x",
        &[],
    )
    .await;
    assert_eq!(wrong.status(), 403);
    let cross_site = b
        .post(&delete)
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let other_origin = b
        .post(&delete)
        .header("origin", "http://attacker.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(other_origin.status(), 403);
    // A page under a rebound DNS name sends that name as both Origin and
    // Host: only the hub's configured origin counts, never the Host.
    let port = hub.local_addr.port();
    let rebound = b
        .post(&delete)
        .header("origin", format!("http://rebound.example:{port}"))
        .header("host", format!("rebound.example:{port}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    let (_, policies) = page(&b, &hub, "/console/policies").await;
    assert!(
        policies.contains("pol-globex-readers"),
        "nothing was deleted"
    );
    let refusals = audit_events(&hub, "type=admin.request_refused").await;
    assert_eq!(refusals.len(), 5, "{refusals:?}");
    assert!(refusals.iter().all(|e| e["actor"]["id"] == "admin"));

    // The same form from the console's own page, with its token: done.
    let done = b
        .post(&delete)
        .header("origin", &hub.base_url)
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    let (_, policies) = page(&b, &hub, "/console/policies?deleted=pol-globex-readers").await;
    assert!(
        !policies.contains("id=\"policy-pol-globex-readers\""),
        "{policies}"
    );
    let deleted = audit_events(&hub, "type=policy.deleted").await;
    assert_eq!(deleted[0]["actor"], json!({"type": "admin", "id": "admin"}));
    assert_eq!(deleted[0]["policies"], json!(["pol-globex-readers"]));
    hub.stop().await;
}

#[tokio::test]
async fn a_policy_created_in_three_steps_takes_effect_and_bad_drafts_get_precise_errors() {
    let hub = start().await;
    let (b, csrf) = console_login(&hub).await;
    let client_id = register(&hub).await;
    let what_if = |user: &str| format!("/console/policies/what-if?user={user}&client={client_id}");
    let (status, before) = page(&b, &hub, &what_if("user-alice")).await;
    assert_eq!(status, 200);
    let lab = section(&before, "server-lab");
    assert!(
        lab.contains("<strong>Effective scopes:</strong> <span class=\"effective\">none"),
        "{lab}"
    );
    assert!(
        lab.contains("none of the 5 policies allows lab.read on lab"),
        "{lab}"
    );
    assert!(lab.contains("Policy decision: matched: none"), "{lab}");

    // Step 1: conditions. A bad operator is named precisely.
    let steps = "/console/policies/new";
    let (status, first) = page(&b, &hub, steps).await;
    assert_eq!(status, 200);
    assert!(first.contains("<label for=\"key_0\">"), "{first}");
    let bad = post_form(
        &b,
        &hub,
        steps,
        &csrf,
        &[
            ("step", "1"),
            ("action", "next"),
            ("key_0", "user.roles"),
            ("operator_0", "resembles"),
            ("value_0", "engineer"),
        ],
    )
    .await;
    assert_eq!(bad.status(), 422);
    let text = unescape(&bad.text().await.unwrap());
    assert!(text.contains("conditions[0]: unknown operator \"resembles\"; expected one of equal, not_equal, in, not_in, contains"), "{text}");
    assert!(
        text.contains("value=\"engineer\""),
        "what was typed is kept: {text}"
    );
    let second = post_form(
        &b,
        &hub,
        steps,
        &csrf,
        &[
            ("step", "1"),
            ("action", "next"),
            ("key_0", "user.roles"),
            ("operator_0", "contains"),
            ("value_0", "engineer"),
        ],
    )
    .await;
    assert_eq!(second.status(), 200);
    let second = second.text().await.unwrap();
    let conditions = field(&second, "conditions");
    assert_eq!(
        serde_json::from_str::<Value>(&conditions).unwrap(),
        json!([{"key": "user.roles", "operator": "contains", "value": "engineer"}])
    );

    // Step 2: servers and scopes. An unknown scope is named precisely.
    let unknown = post_form(
        &b,
        &hub,
        steps,
        &csrf,
        &[
            ("step", "2"),
            ("action", "next"),
            ("conditions", &conditions),
            ("grant", "server lab lab.nuke"),
        ],
    )
    .await;
    assert_eq!(unknown.status(), 422);
    let text = unescape(&unknown.text().await.unwrap());
    assert!(
        text.contains("grants[0]: MCP server \"lab\" has no scope \"lab.nuke\""),
        "{text}"
    );
    let third = post_form(
        &b,
        &hub,
        steps,
        &csrf,
        &[
            ("step", "2"),
            ("action", "next"),
            ("conditions", &conditions),
            ("grant", "server lab lab.read"),
        ],
    )
    .await;
    assert_eq!(third.status(), 200);
    let third = third.text().await.unwrap();
    let grants = field(&third, "grants");
    assert_eq!(
        serde_json::from_str::<Value>(&grants).unwrap(),
        json!([{"mcp_server": "lab", "scopes": ["lab.read"]}])
    );
    assert!(unescape(&third).contains("MCP server lab: lab.read"));

    // Step 3: name and description. No name, no policy.
    let nameless = post_form(
        &b,
        &hub,
        steps,
        &csrf,
        &[
            ("step", "3"),
            ("action", "create"),
            ("conditions", &conditions),
            ("grants", &grants),
            ("name", " "),
        ],
    )
    .await;
    assert_eq!(nameless.status(), 422);
    assert!(unescape(&nameless.text().await.unwrap()).contains("the policy needs a name"));
    let created = post_form(
        &b,
        &hub,
        steps,
        &csrf,
        &[
            ("step", "3"),
            ("action", "create"),
            ("conditions", &conditions),
            ("grants", &grants),
            ("name", "Engineers read the lab"),
            ("description", "made in the console"),
        ],
    )
    .await;
    assert_eq!(created.status(), 303);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let id = location
        .split("created=")
        .nth(1)
        .and_then(|rest| rest.split('#').next())
        .expect("the new policy's id")
        .to_owned();
    let (_, list) = page(&b, &hub, &location).await;
    let card = section(&list, &format!("policy-{id}"));
    assert!(card.contains("Engineers read the lab"), "{card}");
    assert!(card.contains("user.roles contains \"engineer\""), "{card}");
    assert!(card.contains("lab.read"), "{card}");

    // In force at once: alice (an engineer) gets lab.read, bob (a viewer) does not.
    let (_, after) = page(&b, &hub, &what_if("user-alice")).await;
    let lab = section(&after, "server-lab");
    assert!(
        lab.contains("<span class=\"effective\"><code>lab.read</code>"),
        "{lab}"
    );
    assert!(lab.contains("matched: \"Engineers read the lab\""), "{lab}");
    assert!(
        lab.contains("lab.write"),
        "the other scopes are still dropped, with why: {lab}"
    );
    let (_, bob) = page(&b, &hub, &what_if("user-bob")).await;
    let lab = section(&bob, "server-lab");
    assert!(lab.contains("<span class=\"effective\">none"), "{lab}");
    assert!(
        lab.contains("user.roles contains \"engineer\""),
        "the failed condition is named: {lab}"
    );

    let audited = audit_events(&hub, "type=policy.created").await;
    let outcomes: Vec<_> = audited.iter().map(|e| e["outcome"].clone()).collect();
    assert_eq!(
        outcomes,
        vec![json!("success")],
        "invalid drafts never reach the store"
    );
    assert_eq!(audited[0]["actor"], json!({"type": "admin", "id": "admin"}));
    assert_eq!(audited[0]["policies"], json!([id]));
    hub.stop().await;
}

#[tokio::test]
async fn an_agent_is_listed_by_its_attributes_and_decommissioned_after_a_confirmation() {
    let hub = start_with_admin().await;
    let agent: Value = client()
        .post(format!("{}/admin/agents", hub.base_url))
        .bearer_auth(ADMIN)
        .json(
            &json!({"name": "Nightly inventory agent", "allowed_resources": ["calendar"],
                      "allowed_scopes": ["calendar.read"], "tags": ["nightly"],
                      "tenant": "globex", "user": "bob"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = agent["client_id"].as_str().unwrap().to_owned();
    let secret = agent["client_secret"].as_str().unwrap().to_owned();
    let token = || {
        client()
            .post(format!("{}/token", hub.issuer))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    assert_eq!(token().await.unwrap().status(), 200);

    let (b, csrf) = console_login(&hub).await;
    let (_, tagged) = page(
        &b,
        &hub,
        "/console/agents?tag=nightly&tenant=globex&trust_level=manual",
    )
    .await;
    let rows = section(&tagged, "agents");
    assert!(rows.contains(&id), "{rows}");
    assert!(!rows.contains("agent-reporter"), "{rows}");
    let (_, acme) = page(&b, &hub, "/console/agents?tenant=acme").await;
    assert!(!section(&acme, "agents").contains(&id));
    assert!(section(&acme, "agents").contains("agent-reporter"));

    let (status, show) = page(&b, &hub, &format!("/console/agents/{id}")).await;
    assert_eq!(status, 200);
    let attributes = section(&show, "attributes");
    for expected in [
        &id,
        "nightly",
        "bob (Bob Builder)",
        "globex",
        "Calendar MCP server",
        "calendar.read",
        "active",
    ] {
        assert!(attributes.contains(expected), "{expected} in {attributes}");
    }
    assert!(!show.contains(&secret));

    // The confirmation changes nothing by itself.
    let (status, confirm) = page(&b, &hub, &format!("/console/agents/{id}/decommission")).await;
    assert_eq!(status, 200);
    assert!(
        confirm.contains("Decommission Nightly inventory agent?"),
        "{confirm}"
    );
    assert!(confirm.contains(&format!("action=\"/console/agents/{id}/decommission\"")));
    assert_eq!(token().await.unwrap().status(), 200);

    let done = post_form(
        &b,
        &hub,
        &format!("/console/agents/{id}/decommission"),
        &csrf,
        &[("confirm", "yes")],
    )
    .await;
    assert_eq!(done.status(), 303);
    let location = done.headers()["location"].to_str().unwrap().to_owned();
    let (_, after) = page(&b, &hub, &location).await;
    assert!(
        after.contains("Decommissioned: 0 refresh token(s) revoked"),
        "{after}"
    );
    assert!(section(&after, "attributes").contains("decommissioned since"));
    assert_eq!(
        token().await.unwrap().status(),
        401,
        "it can no longer authenticate"
    );
    let events = audit_events(&hub, "type=agent.decommissioned").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor"], json!({"type": "admin", "id": "admin"}));
    assert_eq!(events[0]["client_id"], json!(id));
    // Twice is not found, and changes nothing.
    let again = post_form(
        &b,
        &hub,
        &format!("/console/agents/{id}/decommission"),
        &csrf,
        &[],
    )
    .await;
    assert_eq!(again.status(), 404);
    hub.stop().await;
}

#[tokio::test]
async fn the_connections_page_shows_who_holds_tokens_and_never_a_token_value() {
    let hub = start_with_admin().await;
    let admin = |method: reqwest::Method, path: &str, body: Value| {
        client()
            .request(method, format!("{}/admin{path}", hub.base_url))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
    };
    let stored = admin(
        reqwest::Method::PUT,
        "/connections/demo-calendar/tokens",
        json!({
        "owner": {"user": "alice"}, "access_token": "MARKER-access-token",
        "refresh_token": "MARKER-refresh-token", "expires_in": 3600,
        "scopes": ["calendar.read"]}),
    )
    .await
    .unwrap();
    assert_eq!(stored.status(), 200);
    let stored = admin(
        reqwest::Method::PUT,
        "/connections/demo-calendar/tokens",
        json!({
        "owner": {"tenant": "globex"}, "access_token": "MARKER-tenant-token", "expires_in": 0}),
    )
    .await
    .unwrap();
    assert_eq!(stored.status(), 200);
    let created = admin(
        reqwest::Method::PUT,
        "/connections/weather-api",
        json!({
        "name": "Weather API", "type": "api_key", "allowed_clients": ["agent-reporter"]}),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let stored = admin(
        reqwest::Method::PUT,
        "/connections/weather-api/tokens",
        json!({
        "owner": {"agent": "agent-reporter"}, "api_key": "MARKER-api-key"}),
    )
    .await
    .unwrap();
    assert_eq!(stored.status(), 200);

    let (b, _) = console_login(&hub).await;
    let (status, html) = page(&b, &hub, "/console/connections").await;
    assert_eq!(status, 200);
    let calendar = section(&html, "connection-demo-calendar");
    for expected in [
        "OAuth 2.0",
        "/token",
        "agent-reporter",
        "user: alice (Alice Liddell)",
        "status-active",
        "tenant: globex",
        "expired (refreshed on next use)",
        "pol-acme-demo-calendar",
        "a client secret is stored, sealed",
    ] {
        assert!(calendar.contains(expected), "{expected} in {calendar}");
    }
    assert!(!calendar.contains("needs re-authorization"), "{calendar}");
    let weather = section(&html, "connection-weather-api");
    assert!(
        weather.contains("API key") && weather.contains("agent: "),
        "{weather}"
    );
    // Never a value: not the tokens, not the key, not the provider client secret.
    for path in [
        "/console/connections",
        "/console/agents/agent-reporter",
        "/console/audit",
        "/console/servers",
    ] {
        let (_, html) = page(&b, &hub, path).await;
        assert!(!html.contains("MARKER"), "{path} shows a secret");
        assert!(
            !html.contains("hub-demo-secret"),
            "{path} shows the client secret"
        );
    }
    hub.stop().await;
}

#[tokio::test]
async fn the_flow_drill_down_shows_one_flow_in_order_and_the_live_feed_filters() {
    let hub = start().await;
    let (b, _) = console_login(&hub).await;
    let mut feed = b
        .get(format!(
            "{}/console/audit/stream?type=tool.executed",
            hub.base_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    assert!(feed.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));

    let client_id = register(&hub).await;
    let token = access_token_for(&hub, &client_id, &"v".repeat(43)).await;
    let called = client()
        .post(format!("{}/mcp/calendar", hub.base_url))
        .bearer_auth(&token)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "calendar_list", "arguments": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(called.status(), 200);

    // The live feed carries the tool call, and nothing its filter leaves out.
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.contains("tool.executed") {
        let chunk = tokio::time::timeout_at(deadline, feed.chunk())
            .await
            .expect("an event within the deadline")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: audit"), "{seen}");
    for other in ["client.registered", "consent.granted", "token.issued"] {
        assert!(!seen.contains(other), "{other} passed the filter: {seen}");
    }
    drop(feed);

    let issued = audit_events(&hub, &format!("type=token.issued&client_id={client_id}")).await;
    let correlation = issued[0]["correlation_id"].as_str().unwrap().to_owned();
    let in_flow: Vec<String> = audit_events(&hub, &format!("correlation_id={correlation}"))
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        in_flow.contains(&"consent.granted".to_owned()),
        "{in_flow:?}"
    );

    let (status, html) = page(&b, &hub, &format!("/console/audit/flow/{correlation}")).await;
    assert_eq!(status, 200);
    let timeline = &html[html.find("id=\"timeline\"").expect("a timeline")..];
    let mut expected = vec!["client.registered".to_owned()];
    expected.extend(in_flow);
    expected.push("tool.executed".to_owned());
    let mut at = 0;
    for kind in &expected {
        let found = timeline[at..]
            .find(&format!("data-type=\"{kind}\""))
            .unwrap_or_else(|| panic!("{kind} after position {at} in {timeline}"));
        at += found + 1;
    }
    for stage in ["Registration:", "Consent:", "Token:", "Tool call:"] {
        assert!(timeline.contains(stage), "{stage} in {timeline}");
    }
    assert!(!html.contains(&token), "never a token");

    // The list, filtered by correlation id, links each event to its flow.
    let (_, list) = page(
        &b,
        &hub,
        &format!("/console/audit?correlation_id={correlation}"),
    )
    .await;
    let rows = section(&list, "events");
    assert!(
        rows.contains("consent.granted") && !rows.contains("client.registered"),
        "{rows}"
    );
    assert!(
        rows.contains(&format!("href=\"/console/audit/flow/{correlation}\"")),
        "{rows}"
    );
    assert!(
        list.contains(&format!(
            "data-stream=\"/console/audit/stream?correlation_id={correlation}\""
        )),
        "{list}"
    );
    let script = b
        .get(format!("{}/console/feed.js", hub.base_url))
        .send()
        .await
        .unwrap();
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script.text().await.unwrap().contains("EventSource"));
    let (status, _) = page(&b, &hub, "/console/audit/flow/flow_unknown").await;
    assert_eq!(status, 404);
    hub.stop().await;
}

/// Users: who signs in how, and their live sign-in sessions, one of which
/// the administrator ends: that browser signs in again at its next
/// authorization, and the trail says who ended it.
#[tokio::test]
async fn the_users_page_lists_sessions_and_ends_one() {
    let hub = start().await;
    let (b, csrf) = console_login(&hub).await;
    let client_id = register(&hub).await;
    // alice signs in at the authorization pages in a browser of her own.
    let alice = browser();
    let login = authorize_calendar(&alice, &hub, &client_id, None).await;
    let request = login.split("request=").nth(1).unwrap().to_owned();
    let signed_in = alice
        .post(format!("{}/login", hub.issuer))
        .form(&[
            ("request", request.as_str()),
            ("username", "alice"),
            ("password", "alice-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert!(
        authorize_calendar(&alice, &hub, &client_id, None)
            .await
            .contains("/consent?"),
        "signed in"
    );

    let (status, list) = page(&b, &hub, "/console/users").await;
    assert_eq!(status, 200);
    let users = section_of_table(&list, "users");
    assert!(
        users.contains("mona") && users.contains("a password here"),
        "{users}"
    );
    let (status, alice_page) = page(&b, &hub, "/console/users/user-alice").await;
    assert_eq!(status, 200);
    let sessions = section(&alice_page, "sessions-heading");
    assert!(sessions.contains("<code>pwd</code>"), "{sessions}");
    let end = sessions
        .split("href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an End session link")
        .to_owned();
    let (status, confirm) = page(&b, &hub, &end).await;
    assert_eq!(status, 200);
    assert!(confirm.contains("End this sign-in session?"), "{confirm}");
    let ended = post_form(&b, &hub, &end, &csrf, &[("confirm", "yes")]).await;
    assert_eq!(ended.status(), 303);
    // The browser is signed out: its next authorization asks again.
    assert!(
        authorize_calendar(&alice, &hub, &client_id, None)
            .await
            .contains("/login?"),
        "signed out"
    );
    let (_, after) = page(&b, &hub, "/console/users/user-alice").await;
    assert!(
        after.contains("No browser is signed in as this user."),
        "{after}"
    );
    let trail = audit(&hub, "user.session.ended").await;
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!(trail[0]["actor"]["id"], "admin");
    // Ending it twice changes nothing.
    let again = post_form(&b, &hub, &end, &csrf, &[("confirm", "yes")]).await;
    assert_eq!(again.status(), 404);
    hub.stop().await;
}

/// The table with `id` on a page.
fn section_of_table(html: &str, id: &str) -> String {
    let start = html
        .find(&format!("<table id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table {id} in {html}"));
    let end = html[start..]
        .find("</table>")
        .map_or(html.len(), |e| e + start);
    html[start..end].to_owned()
}
