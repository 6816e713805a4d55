//! The Agenda MCP server's tool scopes: a tool call needs the agenda scope
//! before any calendar scope is asked of the hub, its challenge names what
//! the token holds as well, and the faults that let a read token attempt a
//! write or drop the held scopes from the challenge.

use demo::agenda::AgendaFaults;
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::{
    call, forbid_token_exchange, mcp, mount_audit, result_of, setup, str_of, text_of,
    www_authenticate, Mount,
};

#[tokio::test]
async fn agenda_asks_for_agenda_write_before_calendar_write() {
    let setup = setup(AgendaFaults::default(), None, Mount::NestService).await;
    forbid_token_exchange(&setup.hub).await;
    let token = setup.token("agenda.read");
    let write = call(
        1,
        "calendar_write",
        json!({"title": "Lunch", "start": "2026-03-01T12:00:00Z"}),
    );
    // A batch is challenged for every scope it needs, so one new token covers
    // it; and the challenge keeps the scope the token already holds, so a
    // client asking for exactly it keeps its read tool.
    let batch = json!([call(2, "calendar_read", json!({})), write]);
    for (body, scope) in [
        (write.clone(), "agenda.read agenda.write"),
        (batch, "agenda.read agenda.write"),
    ] {
        let response = mcp(&setup.mcp_url, Some(&token), &body).await;
        assert_eq!(response.status(), 403, "{body}");
        let challenge = www_authenticate(&response);
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{challenge}"
        );
        assert!(
            challenge.contains(&format!("scope=\"{scope}\"")),
            "{challenge}"
        );
        assert!(
            challenge.contains(&format!(
                "resource_metadata=\"{}\"",
                setup.config.resource_metadata
            )),
            "{challenge}"
        );
        assert!(challenge.contains("error_description=\""), "{challenge}");
        assert_eq!(
            str_of(&response.json::<Value>().await.unwrap(), "error"),
            "insufficient_scope"
        );
    }
    setup.hub.verify().await;
}

#[tokio::test]
async fn agenda_fault_skip_tool_scope_lets_a_read_token_write() {
    let faults = AgendaFaults {
        skip_tool_scope: true,
        ..AgendaFaults::default()
    };
    let setup = setup(faults, None, Mount::Nest).await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_string_contains("scope=calendar.write"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_scope", "error_description": "no policy permits calendar.write"})))
        .expect(1)
        .mount(&setup.hub)
        .await;
    mount_audit(&setup.hub, 1).await;
    let response = mcp(
        &setup.mcp_url,
        Some(&setup.token("agenda.read")),
        &call(
            1,
            "calendar_write",
            json!({"title": "Sneaky", "start": "2026-03-01T12:00:00Z"}),
        ),
    )
    .await;
    let result = result_of(response).await;
    assert_eq!(result["isError"], true, "{result}");
    assert!(text_of(&result).contains("invalid_scope"));
    setup.hub.verify().await;
}

#[tokio::test]
async fn agenda_fault_challenge_drops_held_scopes_names_only_the_missing_one() {
    let faults = AgendaFaults {
        challenge_drops_held_scopes: true,
        ..AgendaFaults::default()
    };
    let setup = setup(faults, None, Mount::NestService).await;
    forbid_token_exchange(&setup.hub).await;
    let token = setup.token("agenda.read");
    let write = call(
        1,
        "calendar_write",
        json!({"title": "Lunch", "start": "2026-03-01T12:00:00Z"}),
    );
    let response = mcp(&setup.mcp_url, Some(&token), &write).await;
    assert_eq!(response.status(), 403);
    let challenge = www_authenticate(&response);
    assert!(challenge.contains("scope=\"agenda.write\""), "{challenge}");
}
