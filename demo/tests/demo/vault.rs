//! The Agenda MCP server's vault retrieval and audit reporting: tool calls
//! exchange the caller's token at the hub for the stored provider token,
//! pass on the hub's refusal with its connect link, report every execution
//! without tokens, and the `token_passthrough` fault that leaks the hub token.

use demo::agenda::AgendaFaults;
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{
    basic, call, forbid_token_exchange, http, mcp, mount_audit, provider, provider_tokens,
    result_of, setup, str_of, text_of, tools_list, Mount, PROTOCOL,
};

#[tokio::test]
async fn agenda_reads_the_calendar_with_the_vault_token_and_reports_it() {
    let provider = provider().await;
    let client = http();
    let vault = provider_tokens(&client, &provider, "calendar.read calendar.write").await;
    let setup = setup(AgendaFaults::default(), None, Mount::NestService).await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(header(
            "authorization",
            basic("mcp-agenda", "agenda secret/+").as_str(),
        ))
        .and(body_string_contains(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": vault["access_token"],
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": 3599,
            "scope": "calendar.read",
            "connection": "demo-calendar",
            "api_base_url": provider.api_base_url(),
        })))
        .expect(2)
        .mount(&setup.hub)
        .await;
    mount_audit(&setup.hub, 2).await;
    let token = setup.token("agenda.read agenda.write");

    // initialize and tools/list work over the same endpoint; no session.
    let init = mcp(
        &setup.mcp_url,
        Some(&token),
        &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL, "capabilities": {},
            "clientInfo": {"name": "demo-test", "version": "1"}}}),
    )
    .await;
    assert!(init.headers().get("mcp-session-id").is_none());
    let init = result_of(init).await;
    assert_eq!(str_of(&init, "protocolVersion"), PROTOCOL);
    assert_eq!(init["serverInfo"]["name"], "agenda");
    assert!(init["capabilities"]["tools"].is_object());
    let initialized = mcp(
        &setup.mcp_url,
        Some(&token),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(initialized.status(), 202);
    let tools = result_of(mcp(&setup.mcp_url, Some(&token), &tools_list(1)).await).await;
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| str_of(t, "name"))
        .collect();
    assert_eq!(names, ["calendar_read", "calendar_write"]);

    // The transport's rules, as the module docs state them.
    let get = http()
        .get(&setup.mcp_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    let json_only = http()
        .post(&setup.mcp_url)
        .bearer_auth(&token)
        .header("accept", "application/json")
        .json(&tools_list(9))
        .send()
        .await
        .unwrap();
    assert_eq!(json_only.status(), 406);
    let no_version = http()
        .post(&setup.mcp_url)
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .json(&tools_list(9))
        .send()
        .await
        .unwrap();
    assert_eq!(
        result_of(no_version).await["tools"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The read: the calendar answered the vault token (the hub token would be refused).
    let read = result_of(
        mcp(
            &setup.mcp_url,
            Some(&token),
            &call(2, "calendar_read", json!({})),
        )
        .await,
    )
    .await;
    assert_eq!(read["isError"], false, "{read}");
    let events: Value = serde_json::from_str(text_of(&read)).unwrap();
    assert_eq!(events.as_array().unwrap().len(), 3, "{events}");
    assert_eq!(str_of(&events[0], "title"), "Team stand-up");
    assert_eq!(
        (
            provider.stats().api_authorized,
            provider.stats().api_refused
        ),
        (1, 0)
    );

    // The write, through the trailing-slash form of the mount point.
    let write = result_of(
        mcp(
            &format!("{}/", setup.mcp_url),
            Some(&token),
            &call(
                3,
                "calendar_write",
                json!({"title": "Lunch with Bo", "start": "2026-03-01T12:00:00Z"}),
            ),
        )
        .await,
    )
    .await;
    assert_eq!(write["isError"], false, "{write}");
    let created: Value = serde_json::from_str(text_of(&write)).unwrap();
    assert_eq!(str_of(&created, "title"), "Lunch with Bo");
    assert_eq!(
        (
            provider.stats().api_authorized,
            provider.stats().api_refused
        ),
        (2, 0)
    );

    // The exchanges named the caller's token, the connection and the tool's scope.
    let exchanges = setup.requests_to("/oauth/token").await;
    let forms: Vec<Vec<(String, String)>> = exchanges
        .iter()
        .map(|r| url::form_urlencoded::parse(&r.body).into_owned().collect())
        .collect();
    let get = |form: &Vec<(String, String)>, key: &str| {
        form.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    for (form, scope) in forms.iter().zip(["calendar.read", "calendar.write"]) {
        assert_eq!(get(form, "subject_token"), token);
        assert_eq!(
            get(form, "subject_token_type"),
            "urn:ietf:params:oauth:token-type:access_token"
        );
        assert_eq!(get(form, "resource"), "urn:hub:connection:demo-calendar");
        assert_eq!(get(form, "scope"), scope);
    }

    // The hub heard about both executions. Each report carries the hub's own
    // token the tool ran under, back to the hub that issued it (which takes
    // who the tool ran for from it), and never the provider's vault token.
    let reports = setup.audit_reports().await;
    assert_eq!(
        reports[0],
        json!({"tool": "calendar_read", "resource": setup.config.resource, "client_id": "mcp-inspector",
               "user": "user-alice", "tenant": "tenant-acme", "outcome": "success",
               "act": {"sub": "agent-planner"}, "token": token})
    );
    assert_eq!(str_of(&reports[1], "tool"), "calendar_write");
    for report in &reports {
        assert_eq!(str_of(report, "token"), token);
        assert!(!report.to_string().contains(str_of(&vault, "access_token")));
    }
    setup.hub.verify().await;
}

#[tokio::test]
async fn agenda_passes_on_the_hubs_refusal_with_the_connect_link() {
    let setup = setup(AgendaFaults::default(), None, Mount::NestService).await;
    let connect_uri = format!(
        "{}/oauth/connections/demo-calendar/connect",
        setup.hub.uri()
    );
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "reauthorization_required",
            "error_description": "nothing is stored for this user",
            "connect_uri": connect_uri,
        })))
        .mount(&setup.hub)
        .await;
    mount_audit(&setup.hub, 1).await;
    let result = result_of(
        mcp(
            &setup.mcp_url,
            Some(&setup.token("agenda.read")),
            &call(1, "calendar_read", json!({})),
        )
        .await,
    )
    .await;
    assert_eq!(result["isError"], true, "{result}");
    let text = text_of(&result);
    assert!(
        text.contains("reauthorization_required") && text.contains(&connect_uri),
        "{text}"
    );
    let report = setup.audit_reports().await.remove(0);
    assert_eq!(str_of(&report, "outcome"), "failure");
    assert_eq!(
        str_of(&report, "reason"),
        "token exchange refused: reauthorization_required"
    );
    setup.hub.verify().await;
}

#[tokio::test]
async fn agenda_fault_token_passthrough_sends_the_hub_token_upstream() {
    let upstream = MockServer::start().await;
    let faults = AgendaFaults {
        token_passthrough: true,
        ..AgendaFaults::default()
    };
    let setup = setup(faults, Some(format!("{}/api", upstream.uri())), Mount::Nest).await;
    let token = setup.token("agenda.read");
    Mock::given(method("GET"))
        .and(path("/api/calendar/events"))
        .and(header("authorization", format!("Bearer {token}").as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([{"id": "evt-9", "title": "Leaked", "start": "x"}])),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    forbid_token_exchange(&setup.hub).await;
    mount_audit(&setup.hub, 1).await;
    let result = result_of(
        mcp(
            &setup.mcp_url,
            Some(&token),
            &call(1, "calendar_read", json!({})),
        )
        .await,
    )
    .await;
    assert_eq!(result["isError"], false, "{result}");
    assert!(text_of(&result).contains("Leaked"));
    upstream.verify().await;
    setup.hub.verify().await;
}
