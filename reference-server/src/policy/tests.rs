//! The policy engine's unit tests: validation, matching, evaluation and the index.

use serde_json::{json, Value};

use crate::model::{AuthMethod, Client, McpServer, Tool, TrustLevel, User};
use std::cell::Cell;

use crate::policy::evaluation::{evaluate, evaluate_connection, Decision, PolicyRef};
use crate::policy::index::PolicySet;
use crate::policy::matching::{
    failed_condition, failure, first_failure, holds, matches, Subject, TESTED,
};
use crate::policy::rules::{
    Condition, ConditionKey, Grant, KnownConnection, Operator, Policy, MAX_CONDITIONS,
};
use crate::policy::validation::{validate, PolicyError};

fn user() -> User {
    let claims = json!({
        "department": "engineering",
        "level": 3,
        "verified": true,
        "groups": ["alpha", "beta"],
        "org": {"unit": "platform", "cost_center": {"code": "CC-42"}},
        "https://example.com/region": "eu",
        "nothing": null
    });
    User {
        id: "usr_1".into(),
        username: "alice".into(),
        name: "Alice".into(),
        email: Some("alice@example.com".into()),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$x$y".into(),
        tenants: vec!["acme".into(), "globex".into()],
        roles: vec!["engineer".into(), "viewer".into()],
        permissions: vec!["calendar:read".into()],
        claims: claims.as_object().unwrap().clone(),
    }
}

fn client() -> Client {
    Client {
        client_id: "cli_1".into(),
        name: "Claude Desktop".into(),
        trust_level: TrustLevel::Verified,
        secret_hash: None,
        token_endpoint_auth_method: AuthMethod::None,
        redirect_uris: vec!["http://127.0.0.1/cb".into()],
        grant_types: vec!["authorization_code".into()],
        allowed_resources: vec![],
        allowed_scopes: vec![],
        tags: vec!["internal".into(), "desktop".into()],
        tenant: None,
        jwks: None,
        metadata: json!({}),
        created_at: 0,
    }
}

fn servers() -> Vec<McpServer> {
    vec![
        McpServer {
            required_scopes: Vec::new(),
            id: "calendar".into(),
            name: "Calendar".into(),
            path: "/mcp/calendar".into(),
            scopes: vec![
                "calendar.read".into(),
                "calendar.write".into(),
                "calendar.admin".into(),
            ],
            tools: vec![Tool {
                name: "list_events".into(),
                scope: "calendar.read".into(),
                description: String::new(),
            }],
        },
        McpServer {
            required_scopes: Vec::new(),
            id: "drive".into(),
            name: "Drive".into(),
            path: "/mcp/drive".into(),
            scopes: vec!["drive.read".into(), "drive.write".into()],
            tools: vec![],
        },
    ]
}

fn cond(key: &str, operator: &str, value: Value) -> Condition {
    Condition {
        key: key.parse().unwrap(),
        operator: operator.parse().unwrap(),
        value,
    }
}

fn policy(id: &str, name: &str, conditions: Vec<Condition>, grants: &[(&str, &[&str])]) -> Policy {
    Policy {
        id: id.into(),
        name: name.into(),
        description: String::new(),
        conditions,
        grants: grants
            .iter()
            .map(|(server, scopes)| Grant {
                mcp_server: (*server).into(),
                connection: None,
                scopes: scopes.iter().map(|s| (*s).into()).collect(),
            })
            .collect(),
        created_at: 0,
    }
}

/// Evaluates one condition against the default user and client.
fn check(key: &str, operator: &str, value: Value) -> bool {
    let (u, c) = (user(), client());
    let subject = Subject {
        user: &u,
        client: &c,
    };
    holds(&cond(key, operator, value), &subject)
}

fn scopes(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).into()).collect()
}

// --- keys and operators ------------------------------------------------

#[test]
fn keys_round_trip_as_strings() {
    for key in [
        "user.roles",
        "user.tenantIds",
        "user.permissions",
        "jwtClaims.org.unit",
        "client.tags",
        "client.name",
    ] {
        let parsed: ConditionKey = key.parse().unwrap();
        assert_eq!(parsed.to_string(), key);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), json!(key));
        let back: ConditionKey = serde_json::from_value(json!(key)).unwrap();
        assert_eq!(back, parsed);
    }
    assert_eq!(
        "jwtClaims.org.unit".parse::<ConditionKey>().unwrap(),
        ConditionKey::JwtClaim("org.unit".into())
    );
    for bad in [
        "jwtClaims.",
        "jwtClaims",
        "jwtClaims.a..b",
        "user.role",
        "User.roles",
    ] {
        assert!(bad.parse::<ConditionKey>().is_err(), "{bad}");
    }
    assert!(serde_json::from_value::<ConditionKey>(json!("user.nope")).is_err());
}

#[test]
fn operators_round_trip_as_strings() {
    for op in ["equal", "not_equal", "in", "not_in", "contains"] {
        let parsed: Operator = op.parse().unwrap();
        assert_eq!(parsed.to_string(), op);
        assert_eq!(serde_json::to_value(parsed).unwrap(), json!(op));
        assert_eq!(
            serde_json::from_value::<Operator>(json!(op)).unwrap(),
            parsed
        );
    }
    assert!("eq".parse::<Operator>().is_err());
}

#[test]
fn policy_serializes_with_string_keys_and_operators() {
    let p = policy(
        "pol_1",
        "Engineers",
        vec![cond("jwtClaims.org.unit", "not_in", json!(["sales"]))],
        &[("calendar", &["calendar.read"])],
    );
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["conditions"][0]["key"], json!("jwtClaims.org.unit"));
    assert_eq!(v["conditions"][0]["operator"], json!("not_in"));
    let back: Policy = serde_json::from_value(v).unwrap();
    assert_eq!(back, p);
}

#[test]
fn user_roles_all_operators() {
    // user.roles = ["engineer", "viewer"]
    assert!(check("user.roles", "equal", json!(["viewer", "engineer"])));
    assert!(check(
        "user.roles",
        "equal",
        json!(["viewer", "engineer", "viewer"])
    ));
    assert!(!check("user.roles", "equal", json!(["engineer"])));
    assert!(!check("user.roles", "equal", json!("engineer")));
    assert!(check("user.roles", "not_equal", json!(["engineer"])));
    assert!(!check(
        "user.roles",
        "not_equal",
        json!(["engineer", "viewer"])
    ));
    assert!(check("user.roles", "in", json!(["admin", "engineer"])));
    assert!(!check("user.roles", "in", json!(["admin"])));
    assert!(check("user.roles", "not_in", json!(["admin"])));
    assert!(!check("user.roles", "not_in", json!(["viewer"])));
    assert!(check("user.roles", "contains", json!("engineer")));
    assert!(!check("user.roles", "contains", json!("engine")));
}

#[test]
fn user_tenant_ids_all_operators() {
    // user.tenants = ["acme", "globex"]
    assert!(check("user.tenantIds", "equal", json!(["globex", "acme"])));
    assert!(!check("user.tenantIds", "equal", json!(["acme"])));
    assert!(check("user.tenantIds", "not_equal", json!("acme")));
    assert!(!check(
        "user.tenantIds",
        "not_equal",
        json!(["acme", "globex"])
    ));
    assert!(check("user.tenantIds", "in", json!(["globex"])));
    assert!(!check("user.tenantIds", "in", json!(["initech"])));
    assert!(check("user.tenantIds", "not_in", json!(["initech"])));
    assert!(!check(
        "user.tenantIds",
        "not_in",
        json!(["acme", "initech"])
    ));
    assert!(check("user.tenantIds", "contains", json!("acme")));
    assert!(!check("user.tenantIds", "contains", json!("initech")));
}

#[test]
fn user_permissions_all_operators_and_single_string_equal() {
    // user.permissions = ["calendar:read"]
    assert!(check("user.permissions", "equal", json!("calendar:read")));
    assert!(check("user.permissions", "equal", json!(["calendar:read"])));
    assert!(!check("user.permissions", "equal", json!("calendar:write")));
    assert!(check(
        "user.permissions",
        "not_equal",
        json!("calendar:write")
    ));
    assert!(!check(
        "user.permissions",
        "not_equal",
        json!("calendar:read")
    ));
    assert!(check(
        "user.permissions",
        "in",
        json!(["calendar:read", "x"])
    ));
    assert!(!check("user.permissions", "in", json!(["calendar:write"])));
    assert!(check(
        "user.permissions",
        "not_in",
        json!(["calendar:write"])
    ));
    assert!(!check(
        "user.permissions",
        "not_in",
        json!(["calendar:read"])
    ));
    assert!(check(
        "user.permissions",
        "contains",
        json!("calendar:read")
    ));
    assert!(!check("user.permissions", "contains", json!("calendar")));
}

#[test]
fn empty_list_equals_only_empty_array() {
    let mut u = user();
    u.roles.clear();
    let c = client();
    let subject = Subject {
        user: &u,
        client: &c,
    };
    assert!(holds(&cond("user.roles", "equal", json!([])), &subject));
    assert!(!holds(
        &cond("user.roles", "equal", json!("viewer")),
        &subject
    ));
    assert!(!holds(
        &cond("user.roles", "in", json!(["viewer"])),
        &subject
    ));
    assert!(holds(
        &cond("user.roles", "not_in", json!(["viewer"])),
        &subject
    ));
    assert!(!holds(
        &cond("user.roles", "contains", json!("viewer")),
        &subject
    ));
}

#[test]
fn client_tags_all_operators() {
    // client.tags = ["internal", "desktop"]
    assert!(check(
        "client.tags",
        "equal",
        json!(["desktop", "internal"])
    ));
    assert!(!check("client.tags", "equal", json!(["desktop"])));
    assert!(check("client.tags", "not_equal", json!(["desktop"])));
    assert!(!check(
        "client.tags",
        "not_equal",
        json!(["internal", "desktop"])
    ));
    assert!(check("client.tags", "in", json!(["internal"])));
    assert!(!check("client.tags", "in", json!(["external"])));
    assert!(check("client.tags", "not_in", json!(["external"])));
    assert!(!check("client.tags", "not_in", json!(["desktop"])));
    assert!(check("client.tags", "contains", json!("desktop")));
    assert!(!check("client.tags", "contains", json!("mobile")));
}

#[test]
fn client_name_all_operators() {
    // client.name = "Claude Desktop"
    assert!(check("client.name", "equal", json!("Claude Desktop")));
    assert!(!check("client.name", "equal", json!("claude desktop")));
    assert!(!check("client.name", "equal", json!(["Claude Desktop"])));
    assert!(check("client.name", "not_equal", json!("Other")));
    assert!(!check("client.name", "not_equal", json!("Claude Desktop")));
    assert!(check(
        "client.name",
        "in",
        json!(["Claude Desktop", "Cursor"])
    ));
    assert!(!check("client.name", "in", json!(["Cursor"])));
    assert!(check("client.name", "not_in", json!(["Cursor"])));
    assert!(!check("client.name", "not_in", json!(["Claude Desktop"])));
    assert!(check("client.name", "contains", json!("Desktop")));
    assert!(!check("client.name", "contains", json!("Mobile")));
}

#[test]
fn jwt_claims_scalar_all_operators() {
    assert!(check("jwtClaims.department", "equal", json!("engineering")));
    assert!(!check("jwtClaims.department", "equal", json!("sales")));
    assert!(check("jwtClaims.department", "not_equal", json!("sales")));
    assert!(!check(
        "jwtClaims.department",
        "not_equal",
        json!("engineering")
    ));
    assert!(check(
        "jwtClaims.department",
        "in",
        json!(["sales", "engineering"])
    ));
    assert!(!check("jwtClaims.department", "in", json!(["sales"])));
    assert!(check("jwtClaims.department", "not_in", json!(["sales"])));
    assert!(!check(
        "jwtClaims.department",
        "not_in",
        json!(["engineering"])
    ));
    assert!(check("jwtClaims.department", "contains", json!("engine")));
    assert!(!check("jwtClaims.department", "contains", json!("sales")));
    // Numbers and booleans compare by JSON value; numbers numerically.
    assert!(check("jwtClaims.level", "equal", json!(3)));
    assert!(check("jwtClaims.level", "equal", json!(3.0)));
    assert!(!check("jwtClaims.level", "equal", json!("3")));
    assert!(check("jwtClaims.level", "in", json!([1, 2, 3])));
    assert!(!check("jwtClaims.level", "contains", json!("3")));
    assert!(check("jwtClaims.verified", "equal", json!(true)));
    assert!(check("jwtClaims.verified", "not_equal", json!(false)));
}

#[test]
fn jwt_claims_nested_paths() {
    assert!(check("jwtClaims.org.unit", "equal", json!("platform")));
    assert!(!check("jwtClaims.org.unit", "equal", json!("sales")));
    assert!(check(
        "jwtClaims.org.cost_center.code",
        "in",
        json!(["CC-42"])
    ));
    assert!(check(
        "jwtClaims.org.cost_center.code",
        "not_in",
        json!(["CC-1"])
    ));
    assert!(check("jwtClaims.org.unit", "contains", json!("plat")));
    // A namespaced claim whose name contains dots.
    assert!(check(
        "jwtClaims.https://example.com/region",
        "equal",
        json!("eu")
    ));
}

#[test]
fn jwt_claims_array_is_a_list() {
    // claims.groups = ["alpha", "beta"]
    assert!(check("jwtClaims.groups", "equal", json!(["beta", "alpha"])));
    assert!(!check("jwtClaims.groups", "equal", json!("alpha")));
    assert!(check("jwtClaims.groups", "in", json!(["beta"])));
    assert!(check("jwtClaims.groups", "not_in", json!(["gamma"])));
    assert!(check("jwtClaims.groups", "contains", json!("alpha")));
    assert!(!check("jwtClaims.groups", "contains", json!("alp")));
}

#[test]
fn jwt_claims_missing() {
    for key in [
        "jwtClaims.absent",
        "jwtClaims.org.absent",
        "jwtClaims.department.inner", // traverses a string
        "jwtClaims.nothing",          // JSON null
    ] {
        assert!(!check(key, "equal", json!("x")), "{key}");
        assert!(!check(key, "in", json!(["x"])), "{key}");
        assert!(!check(key, "contains", json!("x")), "{key}");
        assert!(check(key, "not_equal", json!("x")), "{key}");
        assert!(check(key, "not_in", json!(["x"])), "{key}");
    }
}

// --- matching -------------------------------------------------------------

#[test]
fn conditions_are_anded_and_first_failure_reported() {
    let (u, c) = (user(), client());
    let subject = Subject {
        user: &u,
        client: &c,
    };
    let both = policy(
        "pol_1",
        "Both",
        vec![
            cond("user.roles", "contains", json!("engineer")),
            cond("client.tags", "contains", json!("internal")),
        ],
        &[("calendar", &["calendar.read"])],
    );
    assert_eq!(matches(&both, &subject), Ok(()));

    let one_fails = policy(
        "pol_2",
        "One fails",
        vec![
            cond("user.roles", "contains", json!("engineer")),
            cond("client.tags", "contains", json!("external")),
            cond("user.roles", "contains", json!("nobody")),
        ],
        &[("calendar", &["calendar.read"])],
    );
    let failed = matches(&one_fails, &subject).unwrap_err();
    assert_eq!(failed.index, 1);
    assert_eq!(failed.actual, json!(["internal", "desktop"]));
    assert_eq!(
        failed.to_string(),
        r#"client.tags contains "external" is false (client.tags = ["internal","desktop"])"#
    );

    let missing = policy(
        "pol_3",
        "Missing",
        vec![cond("jwtClaims.org.team", "equal", json!("a"))],
        &[("calendar", &["calendar.read"])],
    );
    let failed = matches(&missing, &subject).unwrap_err();
    assert_eq!(failed.actual, Value::Null);
    assert!(failed.to_string().contains("jwtClaims.org.team is missing"));

    let everyone = policy(
        "pol_4",
        "Everyone",
        vec![],
        &[("calendar", &["calendar.read"])],
    );
    assert_eq!(matches(&everyone, &subject), Ok(()));
}

// --- evaluation -------------------------------------------------------------

#[test]
fn union_across_matching_policies() {
    let (u, c, s) = (user(), client(), servers());
    let subject = Subject {
        user: &u,
        client: &c,
    };
    let policies = vec![
        policy(
            "pol_1",
            "Readers",
            vec![cond("user.roles", "in", json!(["viewer"]))],
            &[("calendar", &["calendar.read"]), ("drive", &["drive.read"])],
        ),
        policy(
            "pol_2",
            "Writers",
            vec![cond("jwtClaims.org.unit", "equal", json!("platform"))],
            &[("calendar", &["calendar.write"])],
        ),
        policy(
            "pol_3",
            "Admins",
            vec![cond("user.roles", "contains", json!("admin"))],
            &[("calendar", &["calendar.admin"])],
        ),
    ];
    let requested = scopes(&[
        "calendar.write",
        "calendar.read",
        "calendar.admin",
        "calendar.read",
    ]);
    let decision = evaluate(&policies, &subject, &s[0], &requested);
    assert_eq!(
        decision.permitted,
        scopes(&["calendar.write", "calendar.read"])
    );
    assert_eq!(
        decision.matched,
        vec![
            PolicyRef {
                id: "pol_1".into(),
                name: "Readers".into()
            },
            PolicyRef {
                id: "pol_2".into(),
                name: "Writers".into()
            },
        ]
    );
    assert_eq!(decision.considered, 3);
    assert_eq!(decision.dropped.len(), 1);
    let dropped = &decision.dropped[0];
    assert_eq!(dropped.scope, "calendar.admin");
    assert!(
        dropped.reason.starts_with(
            r#"matching policies ("Readers", "Writers") do not allow calendar.admin on calendar"#
        ),
        "{}",
        dropped.reason
    );
    assert!(
        dropped.reason.contains(
            r#"policy "Admins" (pol_3): user.roles contains "admin" is false (user.roles = ["engineer","viewer"])"#
        ),
        "{}",
        dropped.reason
    );

    // Grants are per server: drive.read is granted on drive, not calendar.
    let on_drive = evaluate(
        &policies,
        &subject,
        &s[1],
        &scopes(&["drive.read", "drive.write"]),
    );
    assert_eq!(on_drive.permitted, scopes(&["drive.read"]));
    assert_eq!(on_drive.dropped[0].scope, "drive.write");
}

#[test]
fn no_match_permits_nothing_with_reasons() {
    let (u, c, s) = (user(), client(), servers());
    let subject = Subject {
        user: &u,
        client: &c,
    };
    let policies = vec![
        policy(
            "pol_1",
            "Engineers",
            vec![cond("user.roles", "in", json!(["admin"]))],
            &[("calendar", &["calendar.read", "calendar.write"])],
        ),
        policy(
            "pol_2",
            "Partners",
            vec![
                cond("client.name", "equal", json!("Claude Desktop")),
                cond("user.tenantIds", "contains", json!("partner")),
            ],
            &[("calendar", &["calendar.read"])],
        ),
        policy(
            "pol_3",
            "Drive only",
            vec![cond("client.tags", "contains", json!("nope"))],
            &[("drive", &["drive.read"])],
        ),
    ];
    let decision = evaluate(
        &policies,
        &subject,
        &s[0],
        &scopes(&["calendar.read", "calendar.admin"]),
    );
    assert!(decision.permitted.is_empty());
    assert!(decision.matched.is_empty());
    assert_eq!(decision.dropped.len(), 2);

    let read = &decision.dropped[0];
    assert_eq!(read.scope, "calendar.read");
    assert_eq!(
        read.reason,
        concat!(
            r#"no policy matched: policy "Engineers" (pol_1): user.roles in ["admin"] is false (user.roles = ["engineer","viewer"]); "#,
            r#"policy "Partners" (pol_2): user.tenantIds contains "partner" is false (user.tenantIds = ["acme","globex"])"#
        )
    );
    let admin = &decision.dropped[1];
    assert_eq!(
        admin.reason,
        "no policy matched: none of the 3 policies allows calendar.admin on calendar"
    );

    let nothing = evaluate(&[], &subject, &s[0], &scopes(&["calendar.read"]));
    assert!(nothing.permitted.is_empty());
    assert_eq!(nothing.considered, 0);
    assert_eq!(
        nothing.dropped[0].reason,
        "no policy matched: no policies are defined"
    );
}

#[test]
fn reasons_are_bounded() {
    let (u, c, s) = (user(), client(), servers());
    let subject = Subject {
        user: &u,
        client: &c,
    };
    let policies: Vec<Policy> = (0..8)
        .map(|i| {
            policy(
                &format!("pol_{i}"),
                &format!("P{i}"),
                vec![cond("user.roles", "contains", json!(format!("role{i}")))],
                &[("calendar", &["calendar.read"])],
            )
        })
        .collect();
    let decision = evaluate(&policies, &subject, &s[0], &scopes(&["calendar.read"]));
    let reason = &decision.dropped[0].reason;
    assert!(reason.contains("(pol_4)"), "{reason}");
    assert!(!reason.contains("(pol_5)"), "{reason}");
    assert!(reason.ends_with("; and 3 more"), "{reason}");

    // Long actual values are cut.
    let mut big = user();
    big.roles = (0..500).map(|i| format!("role-number-{i}")).collect();
    let subject = Subject {
        user: &big,
        client: &c,
    };
    let decision = evaluate(&policies[..1], &subject, &s[0], &scopes(&["calendar.read"]));
    let reason = &decision.dropped[0].reason;
    assert!(reason.len() < 600, "{reason}");
    assert!(reason.contains('…'), "{reason}");
}

#[test]
fn unknown_requested_scope_is_dropped_and_explained() {
    let (u, c, s) = (user(), client(), servers());
    let subject = Subject {
        user: &u,
        client: &c,
    };
    let policies = vec![policy(
        "pol_1",
        "All",
        vec![],
        &[("calendar", &["calendar.read"])],
    )];
    let decision = evaluate(
        &policies,
        &subject,
        &s[0],
        &scopes(&["calendar.read", "bogus"]),
    );
    assert_eq!(decision.permitted, scopes(&["calendar.read"]));
    assert!(decision.dropped[0]
        .reason
        .contains("bogus is not a scope of MCP server calendar"));
}

#[test]
fn explanation_mentions_matched_permitted_and_dropped() {
    let (u, c, s) = (user(), client(), servers());
    let subject = Subject {
        user: &u,
        client: &c,
    };
    let policies = vec![
        policy(
            "pol_1",
            "Engineers",
            vec![cond("user.roles", "contains", json!("engineer"))],
            &[("calendar", &["calendar.read"])],
        ),
        policy(
            "pol_2",
            "Admins",
            vec![cond("user.roles", "contains", json!("admin"))],
            &[("calendar", &["calendar.write"])],
        ),
    ];
    let decision = evaluate(
        &policies,
        &subject,
        &s[0],
        &scopes(&["calendar.read", "calendar.write"]),
    );
    let text = decision.explanation();
    assert!(
        text.starts_with(
            r#"matched: "Engineers" (pol_1); permitted: calendar.read; dropped: calendar.write ("#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"matching policies ("Engineers") do not allow calendar.write on calendar"#),
        "{text}"
    );
    assert!(text.contains(r#"policy "Admins" (pol_2)"#), "{text}");

    let empty = evaluate(&[], &subject, &s[0], &[]);
    assert_eq!(
        empty.explanation(),
        "matched: none; permitted: none; dropped: none"
    );
}

/// Three decisions whose explanations are pinned to the text the eager
/// implementation wrote (captured before the index existed).
fn pinned_cases() -> Vec<(Vec<Policy>, usize, Vec<String>)> {
    let long_name = format!("{}…and more", "é".repeat(130));
    let many: Vec<String> = (0..40).map(|i| format!("role-number-{i}")).collect();
    let mut a = vec![
        policy(
            "pol_a0",
            &long_name,
            vec![cond("jwtClaims.org.team", "equal", json!("a"))],
            &[("calendar", &["calendar.read"])],
        ),
        policy(
            "pol_a1",
            "Many roles",
            vec![cond("user.roles", "in", json!(many))],
            &[("calendar", &["calendar.read"])],
        ),
        policy(
            "pol_a2",
            "Agents",
            vec![cond("client.name", "contains", json!("Agent"))],
            &[("calendar", &["calendar.read"]), ("drive", &["drive.read"])],
        ),
    ];
    for i in 3..7 {
        a.push(policy(
            &format!("pol_a{i}"),
            &format!("Tenant \"{i}\""),
            vec![cond("user.tenantIds", "contains", json!(format!("t{i}")))],
            &[("calendar", &["calendar.read"])],
        ));
    }

    let mut b: Vec<Policy> = (0..7)
        .map(|i| {
            policy(
                &format!("pol_b{i}"),
                &format!("M{i}"),
                vec![cond("user.roles", "contains", json!("engineer"))],
                &[("calendar", &["calendar.read"])],
            )
        })
        .collect();
    b.push(policy(
        "pol_b7",
        "External",
        vec![
            cond("user.roles", "contains", json!("engineer")),
            cond("client.tags", "contains", json!("external")),
        ],
        &[("calendar", &["calendar.write"])],
    ));

    let mut c = vec![
        policy(
            "pol_c0",
            "Viewers",
            vec![cond("user.roles", "contains", json!("viewer"))],
            &[],
        ),
        policy(
            "pol_c1",
            "Low levels",
            vec![cond("jwtClaims.level", "in", json!([1, 2]))],
            &[],
        ),
        policy(
            "pol_c2",
            "Calendar writers",
            vec![],
            &[("calendar", &["events.write"])],
        ),
    ];
    c[0].grants.push(Grant {
        mcp_server: String::new(),
        connection: Some("demo-calendar".into()),
        scopes: scopes(&["events.read"]),
    });
    c[1].grants.push(Grant {
        mcp_server: String::new(),
        connection: Some("demo-calendar".into()),
        scopes: scopes(&["events.write"]),
    });

    vec![
        (
            a,
            0,
            scopes(&["calendar.read", "calendar.read", "bogus.scope"]),
        ),
        (b, 0, scopes(&["calendar.write", "calendar.read"])),
        (c, 2, scopes(&["events.write", "events.read", "nope"])),
    ]
}

fn demo_calendar() -> KnownConnection {
    KnownConnection {
        id: "demo-calendar".into(),
        scopes: scopes(&["events.read", "events.write"]),
    }
}

// --- the index -------------------------------------------------------------

/// The decision through a [`PolicySet`], checked against the scan
/// ([`evaluate`]) before it is returned.
fn indexed(
    policies: &[Policy],
    subject: &Subject,
    server: &McpServer,
    requested: &[String],
) -> Decision {
    let set = PolicySet::new(policies.to_vec());
    let decision = set.decide(subject, server, requested).explain();
    assert_eq!(decision, evaluate(policies, subject, server, requested));
    decision
}

/// How many conditions `f` tests.
fn tested<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = TESTED.with(Cell::get);
    let out = f();
    (out, TESTED.with(Cell::get) - before)
}

#[test]
fn the_index_tests_only_policies_with_a_grant_on_the_target() {
    let (u, c, s) = (user(), client(), servers());
    let subject = Subject {
        user: &u,
        client: &c,
    };
    // A negation has no anchor: without the target index, every one of
    // these would be tested.
    let mut policies: Vec<Policy> = (0..50)
        .map(|i| {
            policy(
                &format!("pol_d{i}"),
                "Drive",
                vec![cond("user.roles", "not_in", json!([format!("r{i}")]))],
                &[("drive", &["drive.read"])],
            )
        })
        .collect();
    policies.insert(
        25,
        policy(
            "pol_c",
            "Calendar",
            vec![cond("user.roles", "not_in", json!(["admin"]))],
            &[("calendar", &["calendar.read"])],
        ),
    );
    let set = PolicySet::new(policies);
    let requested = scopes(&["calendar.read"]);
    let (verdict, count) = tested(|| set.decide(&subject, &s[0], &requested));
    assert_eq!(count, 1, "only the calendar policy's condition is tested");
    assert_eq!(verdict.permitted(), ["calendar.read"]);
    assert_eq!(
        verdict.matched().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["pol_c"]
    );

    // Nothing at all has a grant on this server.
    let mail = McpServer {
        required_scopes: Vec::new(),
        id: "mail".into(),
        ..s[1].clone()
    };
    let (verdict, count) = tested(|| set.decide(&subject, &mail, &requested));
    assert_eq!(count, 0);
    assert!(verdict.permitted().is_empty() && verdict.matched().len() == 0);
}

#[test]
fn the_index_skips_policies_whose_anchor_the_subject_lacks() {
    let (u, c, s) = (user(), client(), servers());
    let subject = Subject {
        user: &u,
        client: &c,
    };
    let anchored = [
        cond("user.roles", "contains", json!("admin")),
        cond("user.tenantIds", "in", json!(["initech", "umbrella"])),
        cond("jwtClaims.org.unit", "equal", json!("sales")),
        cond("jwtClaims.groups", "equal", json!(["gamma", "alpha"])),
        // No byte of "xyz" is in "Claude Desktop".
        cond("client.name", "contains", json!("xyz")),
    ];
    let mut policies: Vec<Policy> = anchored
        .iter()
        .enumerate()
        .map(|(i, anchor)| {
            policy(
                &format!("pol_{i}"),
                "Never",
                // The unanchored negation comes first: a scan would test it.
                vec![cond("user.roles", "not_in", json!(["x"])), anchor.clone()],
                &[("calendar", &["calendar.admin"])],
            )
        })
        .collect();
    // Ten policies with one and the same condition, which holds.
    for i in 0..10 {
        policies.push(policy(
            &format!("pol_same_{i}"),
            "Internal",
            vec![cond("client.tags", "contains", json!("internal"))],
            &[("calendar", &["calendar.read"])],
        ));
    }
    let set = PolicySet::new(policies);
    let requested = scopes(&["calendar.read", "calendar.admin"]);
    let (verdict, count) = tested(|| set.decide(&subject, &s[0], &requested));
    assert_eq!(count, 1, "one distinct condition tested once");
    assert_eq!(verdict.permitted(), ["calendar.read"]);
    assert_eq!(verdict.dropped(), ["calendar.admin"]);
    assert_eq!(verdict.matched().len(), 10);
    // The explanation still names the skipped policies and their failures.
    let decision = verdict.explain();
    assert_eq!(decision, evaluate(&set, &subject, &s[0], &requested));
    assert!(
        decision.dropped[0]
            .reason
            .contains(r#"policy "Never" (pol_4): client.name contains "xyz" is false"#),
        "{}",
        decision.dropped[0].reason
    );
}

#[test]
fn the_index_keeps_policy_order() {
    let (u, c, s) = (user(), client(), servers());
    let subject = Subject {
        user: &u,
        client: &c,
    };
    // Each found through a different list of the index, all matching.
    let conditions = [
        cond("client.tags", "contains", json!("internal")),
        cond("user.permissions", "not_in", json!(["admin:all"])),
        cond("user.roles", "equal", json!(["viewer", "engineer"])),
        cond("client.name", "contains", json!("Desk")),
        cond("jwtClaims.groups", "in", json!(["beta"])),
        cond("jwtClaims.department", "equal", json!("engineering")),
    ];
    let mut policies: Vec<Policy> = conditions
        .iter()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            policy(
                &format!("pol_{i}"),
                &format!("P{i}"),
                vec![c.clone()],
                &[("calendar", &["calendar.read"])],
            )
        })
        .collect();
    policies.insert(
        3,
        policy(
            "pol_no",
            "No",
            vec![cond("user.roles", "contains", json!("admin"))],
            &[("calendar", &["calendar.write"])],
        ),
    );
    let requested = scopes(&["calendar.read", "calendar.write"]);
    let decision = indexed(&policies, &subject, &s[0], &requested);
    let ids: Vec<&str> = decision.matched.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["pol_0", "pol_1", "pol_2", "pol_3", "pol_4", "pol_5"]);
}

#[test]
fn lazy_reasons_read_as_the_eager_ones_did() {
    let (u, c, s) = (user(), client(), servers());
    let subject = Subject {
        user: &u,
        client: &c,
    };
    let connection = demo_calendar();
    let want = [
        concat!(
            r#"matched: none; permitted: none; dropped: calendar.read (no policy matched: policy "éééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé…" (pol_a0): jwtClaims.org.team equal "a" is false (jwtClaims.org.team is missing); "#,
            r#"policy "Many roles" (pol_a1): user.roles in ["role-number-0","role-number-1","role-number-2","role-number-3","role-number-4","role-number-5","role-number-6","role-n… is false (user.roles = ["engineer","viewer"]); "#,
            r#"policy "Agents" (pol_a2): client.name contains "Agent" is false (client.name = "Claude Desktop"); "#,
            r#"policy "Tenant \"3\"" (pol_a3): user.tenantIds contains "t3" is false (user.tenantIds = ["acme","globex"]); "#,
            r#"policy "Tenant \"4\"" (pol_a4): user.tenantIds contains "t4" is false (user.tenantIds = ["acme","globex"]); "#,
            r#"and 2 more), bogus.scope (no policy matched: none of the 7 policies allows bogus.scope on calendar (bogus.scope is not a scope of MCP server calendar))"#
        ),
        concat!(
            r#"matched: "M0" (pol_b0), "M1" (pol_b1), "M2" (pol_b2), "M3" (pol_b3), "M4" (pol_b4), "M5" (pol_b5), "M6" (pol_b6); "#,
            r#"permitted: calendar.read; dropped: calendar.write (matching policies ("M0", "M1", "M2", "M3", "M4" and 2 more) do not allow calendar.write on calendar; "#,
            r#"policies that would allow it did not match: policy "External" (pol_b7): client.tags contains "external" is false (client.tags = ["internal","desktop"]))"#
        ),
        concat!(
            r#"matched: "Viewers" (pol_c0); permitted: events.read; dropped: events.write (matching policies ("Viewers") do not allow events.write on connection demo-calendar; "#,
            r#"policies that would allow it did not match: policy "Low levels" (pol_c1): jwtClaims.level in [1,2] is false (jwtClaims.level = 3)), nope (matching policies ("Viewers") do not allow nope on connection demo-calendar (nope is not a scope of connection demo-calendar))"#
        ),
    ];
    for ((policies, target, requested), want) in pinned_cases().into_iter().zip(want) {
        let set = PolicySet::new(policies.clone());
        let (lazy, eager) = if target == 2 {
            (
                set.decide_connection(&subject, &connection, &requested),
                evaluate_connection(&policies, &subject, &connection, &requested),
            )
        } else {
            (
                set.decide(&subject, &s[target], &requested),
                evaluate(&policies, &subject, &s[target], &requested),
            )
        };
        let lazy = lazy.explain();
        assert_eq!(lazy, eager);
        assert_eq!(lazy.explanation(), want);
    }
}

/// A small deterministic generator (no dependency on `rand`'s algorithms).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn strings(&mut self, max: usize) -> Vec<String> {
        (0..self.below(max + 1))
            .map(|_| self.pick(WORDS).to_owned())
            .collect()
    }
}

const WORDS: &[&str] = &[
    "a",
    "b",
    "ab",
    "engineer",
    "Claude Desktop",
    "",
    "é",
    "x.y",
    "1",
    "quote\"back\\slash\u{1}\u{2028}",
    // Longer than a reason renders: cut, in the middle of the é's.
    "éééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé",
];

fn random_value(rng: &mut Lcg) -> Value {
    match rng.below(8) {
        0 => json!(rng.below(3)),
        1 => json!(1.0),
        2 => json!(true),
        3 => json!([]),
        4 => json!(rng.strings(3)),
        5 => json!([rng.pick(WORDS), rng.below(3)]),
        _ => json!(rng.pick(WORDS)),
    }
}

/// Policies, subjects and requests mixing every key, operator and kind of
/// value (including ones validation refuses), on servers and a Connection.
#[test]
fn the_index_decides_as_the_scan_does() {
    const KEYS: &[&str] = &[
        "user.roles",
        "user.tenantIds",
        "client.tags",
        "client.name",
        "jwtClaims.s",
        "jwtClaims.n",
        "jwtClaims.list",
        "jwtClaims.x.y",
        "jwtClaims.missing",
    ];
    const OPERATORS: &[&str] = &["equal", "not_equal", "in", "not_in", "contains"];
    const SCOPES: &[&str] = &["calendar.read", "calendar.write", "drive.read", "bogus"];
    let s = servers();
    let connection = KnownConnection {
        id: "conn".into(),
        scopes: scopes(&["calendar.read"]),
    };
    for seed in 0..300 {
        let mut rng = Lcg(seed);
        let policies: Vec<Policy> = (0..rng.below(25))
            .map(|i| {
                let mut p = policy(&format!("pol_{i}"), &format!("P{i}"), vec![], &[]);
                for _ in 0..rng.below(4) {
                    let (key, operator) = (rng.pick(KEYS), rng.pick(OPERATORS));
                    p.conditions
                        .push(cond(key, operator, random_value(&mut rng)));
                }
                for _ in 0..1 + rng.below(2) {
                    let scopes = (0..1 + rng.below(2))
                        .map(|_| rng.pick(SCOPES).into())
                        .collect();
                    let (mcp_server, connection) = match rng.below(3) {
                        0 => (String::new(), Some("conn".to_owned())),
                        1 => ("drive".to_owned(), None),
                        _ => ("calendar".to_owned(), None),
                    };
                    p.grants.push(Grant {
                        mcp_server,
                        connection,
                        scopes,
                    });
                }
                p
            })
            .collect();
        let set = PolicySet::new(policies.clone());
        for _ in 0..4 {
            let mut u = user();
            u.roles = rng.strings(3);
            u.tenants = rng.strings(2);
            u.claims = json!({
                "s": rng.pick(WORDS),
                "n": rng.below(3),
                "list": [rng.pick(WORDS), rng.below(2), rng.pick(WORDS)],
                "x": {"y": rng.pick(WORDS)},
            })
            .as_object()
            .cloned()
            .unwrap_or_default();
            let mut c = client();
            c.name = rng.pick(WORDS).to_owned();
            c.tags = rng.strings(2);
            let subject = Subject {
                user: &u,
                client: &c,
            };
            // A reason renders a failed condition as `matches` reports it.
            for p in &policies {
                if let Some(index) = first_failure(p, &subject) {
                    let reported = failed_condition(p, index, &subject).to_string();
                    assert_eq!(failure(p, index, &subject).to_string(), reported);
                }
            }
            let requested: Vec<String> =
                (0..rng.below(4)).map(|_| rng.pick(SCOPES).into()).collect();
            for server in &s {
                let by_index = set.decide(&subject, server, &requested).explain();
                assert_eq!(
                    by_index,
                    evaluate(&policies, &subject, server, &requested),
                    "seed {seed}"
                );
            }
            let by_index = set
                .decide_connection(&subject, &connection, &requested)
                .explain();
            let scanned = evaluate_connection(&policies, &subject, &connection, &requested);
            assert_eq!(by_index, scanned, "seed {seed}");
        }
    }
}

// --- validation ----------------------------------------------------------

fn valid_draft() -> Value {
    json!({
        "name": "  Engineers  ",
        "description": "Engineers may read the calendar",
        "conditions": [
            {"key": "user.roles", "operator": "in", "value": ["engineer"]},
            {"key": "jwtClaims.org.unit", "operator": "equal", "value": "platform"}
        ],
        "grants": [
            {"mcp_server": "calendar", "scopes": ["calendar.read", "calendar.read", "calendar.write"]}
        ]
    })
}

/// `draft` with the value at `pointer` replaced, or added to its parent object.
fn with(mut draft: Value, pointer: &str, value: Value) -> Value {
    if let Some(slot) = draft.pointer_mut(pointer) {
        *slot = value;
    } else {
        let (parent, field) = pointer.rsplit_once('/').unwrap();
        let parent = draft.pointer_mut(parent).unwrap().as_object_mut().unwrap();
        parent.insert(field.to_owned(), value);
    }
    draft
}

fn refused(draft: Value) -> PolicyError {
    validate(&draft, &servers()).unwrap_err()
}

#[test]
fn validate_accepts_a_good_draft() {
    let spec = validate(&valid_draft(), &servers()).unwrap();
    assert_eq!(spec.name, "Engineers");
    assert_eq!(spec.description, "Engineers may read the calendar");
    assert_eq!(spec.conditions.len(), 2);
    assert_eq!(
        spec.conditions[1].key,
        ConditionKey::JwtClaim("org.unit".into())
    );
    assert_eq!(
        spec.grants,
        vec![Grant {
            mcp_server: "calendar".into(),
            connection: None,
            scopes: scopes(&["calendar.read", "calendar.write"]),
        }]
    );
    let policy = spec.clone().into_policy("pol_9".into(), 1234);
    assert_eq!(policy.id, "pol_9");
    assert_eq!(policy.created_at, 1234);
    assert_eq!(policy.name, spec.name);
    assert_eq!(policy.grants, spec.grants);

    // Conditions and description are optional: a policy for everyone.
    let minimal =
        json!({"name": "All", "grants": [{"mcp_server": "drive", "scopes": ["drive.read"]}]});
    let spec = validate(&minimal, &servers()).unwrap();
    assert!(spec.conditions.is_empty());
    assert_eq!(spec.description, "");
}

#[test]
fn validate_refuses_malformed_drafts() {
    let cases = [
        (json!("not an object"), "must be a JSON object"),
        (
            with(valid_draft(), "/name", json!(7)),
            "`name` must be a string",
        ),
        (
            with(valid_draft(), "/conditions", json!({})),
            "`conditions` must be an array",
        ),
        (
            with(valid_draft(), "/conditions/0", json!("x")),
            "conditions[0] must be a JSON object",
        ),
        (
            with(valid_draft(), "/conditions/1/key", json!(1)),
            "conditions[1].key must be a string",
        ),
        (
            with(valid_draft(), "/grants/0/scopes", json!("calendar.read")),
            "grants[0].scopes must be an array",
        ),
        (
            with(valid_draft(), "/grants/0/scopes/1", json!(5)),
            "grants[0].scopes[1] must be a string",
        ),
        (
            with(valid_draft(), "/grants/0/mcp_server", json!(5)),
            "grants[0].mcp_server must be a string",
        ),
        (
            with(valid_draft(), "/extra", json!(1)),
            r#"unknown field "extra" in the policy"#,
        ),
        (
            with(valid_draft(), "/conditions/1/values", json!(1)),
            r#"unknown field "values" in conditions[1]"#,
        ),
        (
            with(valid_draft(), "/grants/0/scope", json!(1)),
            r#"unknown field "scope" in grants[0]"#,
        ),
    ];
    for (draft, expected) in cases {
        match refused(draft) {
            PolicyError::Malformed(message) => {
                assert!(message.contains(expected), "{message:?} lacks {expected:?}")
            }
            other => panic!("expected Malformed({expected:?}), got {other:?}"),
        }
    }
}

#[test]
fn validate_refuses_empty_names() {
    assert_eq!(
        refused(with(valid_draft(), "/name", json!("   "))),
        PolicyError::EmptyName
    );
    assert_eq!(
        refused(with(valid_draft(), "/name", Value::Null)),
        PolicyError::EmptyName
    );
    let mut draft = valid_draft();
    draft.as_object_mut().unwrap().remove("name");
    assert_eq!(refused(draft), PolicyError::EmptyName);
    assert_eq!(
        PolicyError::EmptyName.to_string(),
        "the policy needs a name"
    );
}

#[test]
fn validate_refuses_unknown_keys_and_operators() {
    let err = refused(with(valid_draft(), "/conditions/1/key", json!("user.role")));
    assert_eq!(
        err,
        PolicyError::UnknownConditionKey {
            index: 1,
            key: "user.role".into()
        }
    );
    assert!(err
        .to_string()
        .starts_with(r#"conditions[1]: unknown condition key "user.role""#));
    assert_eq!(
        refused(with(
            valid_draft(),
            "/conditions/0/key",
            json!("jwtClaims.")
        )),
        PolicyError::UnknownConditionKey {
            index: 0,
            key: "jwtClaims.".into()
        }
    );

    let err = refused(with(
        valid_draft(),
        "/conditions/0/operator",
        json!("equals"),
    ));
    assert_eq!(
        err,
        PolicyError::UnknownOperator {
            index: 0,
            operator: "equals".into()
        }
    );
    assert!(err.to_string().contains(r#"unknown operator "equals""#));
}

#[test]
fn validate_refuses_missing_and_mistyped_values() {
    let mut draft = valid_draft();
    draft["conditions"][0]
        .as_object_mut()
        .unwrap()
        .remove("value");
    let err = refused(draft);
    assert_eq!(
        err,
        PolicyError::MissingValue {
            index: 0,
            key: ConditionKey::UserRoles,
            operator: Operator::In
        }
    );
    assert_eq!(
        err.to_string(),
        "conditions[0]: `user.roles in` needs a value"
    );
    assert!(matches!(
        refused(with(valid_draft(), "/conditions/1/value", Value::Null)),
        PolicyError::MissingValue { index: 1, .. }
    ));

    let wrong = |operator: &str, value: Value| {
        let draft = with(valid_draft(), "/conditions/0/operator", json!(operator));
        refused(with(draft, "/conditions/0/value", value))
    };
    for (operator, value) in [
        ("in", json!("engineer")),
        ("in", json!([])),
        ("not_in", json!([{"a": 1}])),
        ("not_in", json!([null])),
        ("contains", json!(["engineer"])),
        ("contains", json!(3)),
        ("equal", json!({"a": 1})),
        ("not_equal", json!([1, 2])),
    ] {
        let op: Operator = operator.parse().unwrap();
        assert_eq!(
            wrong(operator, value.clone()),
            PolicyError::WrongValueType {
                index: 0,
                operator: op,
                expected: op.expected_value()
            },
            "{operator} {value}"
        );
    }
    assert_eq!(
        wrong("in", json!("x")).to_string(),
        "conditions[0]: operator `in` needs a non-empty array of strings, numbers or booleans as its value"
    );
    // Accepted shapes.
    assert!(validate(
        &with(
            with(valid_draft(), "/conditions/0/operator", json!("not_in")),
            "/conditions/0/value",
            json!([1, true, "x"])
        ),
        &servers()
    )
    .is_ok());
    assert!(validate(
        &with(valid_draft(), "/conditions/1/value", json!(false)),
        &servers()
    )
    .is_ok());
}

#[test]
fn validate_refuses_too_many_conditions() {
    let condition = json!({"key": "user.roles", "operator": "contains", "value": "x"});
    let ok = with(
        valid_draft(),
        "/conditions",
        Value::Array(vec![condition.clone(); MAX_CONDITIONS]),
    );
    assert!(validate(&ok, &servers()).is_ok());
    let too_many = with(
        valid_draft(),
        "/conditions",
        Value::Array(vec![condition; MAX_CONDITIONS + 1]),
    );
    let err = refused(too_many);
    assert_eq!(err, PolicyError::TooManyConditions { max: 64 });
    assert_eq!(err.to_string(), "a policy may have at most 64 conditions");
}

#[test]
fn validate_refuses_bad_grants() {
    assert_eq!(
        refused(with(valid_draft(), "/grants", json!([]))),
        PolicyError::NoGrants
    );
    let mut draft = valid_draft();
    draft.as_object_mut().unwrap().remove("grants");
    assert_eq!(refused(draft), PolicyError::NoGrants);

    let two = with(
        valid_draft(),
        "/grants",
        json!([
            {"mcp_server": "calendar", "scopes": ["calendar.read"]},
            {"mcp_server": "mail", "scopes": ["mail.read"]}
        ]),
    );
    let err = refused(two);
    assert_eq!(
        err,
        PolicyError::UnknownMcpServer {
            index: 1,
            mcp_server: "mail".into()
        }
    );
    assert_eq!(err.to_string(), r#"grants[1]: unknown MCP server "mail""#);

    let err = refused(with(
        valid_draft(),
        "/grants/0/scopes/1",
        json!("drive.read"),
    ));
    assert_eq!(
        err,
        PolicyError::UnknownScope {
            index: 0,
            mcp_server: "calendar".into(),
            scope: "drive.read".into()
        }
    );
    assert_eq!(
        err.to_string(),
        r#"grants[0]: MCP server "calendar" has no scope "drive.read""#
    );

    let err = refused(with(valid_draft(), "/grants/0/scopes", json!([])));
    assert_eq!(
        err,
        PolicyError::NoScopes {
            index: 0,
            mcp_server: "calendar".into()
        }
    );
    assert_eq!(
        err.to_string(),
        r#"grants[0]: no scopes listed for MCP server "calendar""#
    );
}

#[test]
fn validated_policy_evaluates() {
    let (u, c, s) = (user(), client(), servers());
    let subject = Subject {
        user: &u,
        client: &c,
    };
    let policy = validate(&valid_draft(), &s)
        .unwrap()
        .into_policy("pol_1".into(), 0);
    let decision = evaluate(
        std::slice::from_ref(&policy),
        &subject,
        &s[0],
        &scopes(&["calendar.write", "calendar.admin"]),
    );
    assert_eq!(decision.permitted, scopes(&["calendar.write"]));
    assert_eq!(decision.dropped[0].scope, "calendar.admin");
}
