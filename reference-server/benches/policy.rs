//! How long one MCP Server Policy decision takes with 10, 100 and 1,000
//! policies: the decision alone (through the index, what a caller that needs
//! only the scopes pays), the same with its explanation (every dropped
//! scope's reason, what the consent page and the audit trail need), and the
//! explained decision without an index (`evaluate`, which looks at every
//! policy).
//!
//! Plain `fn main` (harness = false), timed with `std::time::Instant`.

use std::hint::black_box;
use std::time::Instant;

use reference_server::model::{AuthMethod, Client, McpServer, TrustLevel, User};
use reference_server::policy::evaluation::evaluate;
use reference_server::policy::index::PolicySet;
use reference_server::policy::matching::Subject;
use reference_server::policy::rules::Policy;
use reference_server::policy::validation::validate;
use serde_json::{json, Value};

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
            tools: vec![],
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

fn user() -> User {
    let claims = json!({
        "department": "engineering",
        "level": 3,
        "groups": ["alpha", "beta"],
        "org": {"unit": "platform", "region": "eu"}
    });
    User {
        id: "usr_1".into(),
        username: "alice".into(),
        name: "Alice".into(),
        email: Some("alice@example.com".into()),
        password_hash: String::new(),
        tenants: vec!["acme".into(), "globex".into()],
        roles: vec!["engineer".into(), "viewer".into(), "oncall".into()],
        permissions: vec!["calendar:read".into(), "drive:read".into()],
        claims: claims.as_object().cloned().unwrap_or_default(),
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

/// Three conditions over varied keys; about one policy in 25 matches the
/// benchmark's user and client (the first condition of the rest mostly fails,
/// some fail only at the second or third).
fn conditions(i: usize) -> Value {
    let matching = i % 25 == 0;
    let role = if matching {
        "engineer".to_owned()
    } else {
        format!("role-{}", i % 40)
    };
    let first = match i % 5 {
        0 => json!({"key": "user.roles", "operator": "in", "value": [role, "admin"]}),
        1 => json!({"key": "user.roles", "operator": "contains", "value": role}),
        2 => json!({"key": "jwtClaims.org.unit", "operator": "equal",
                    "value": if matching { "platform".to_owned() } else { format!("unit-{i}") }}),
        3 => json!({"key": "user.tenantIds", "operator": "in",
                    "value": [if matching { "acme".to_owned() } else { format!("tenant-{i}") }]}),
        _ => json!({"key": "client.name", "operator": "contains",
                    "value": if matching { "Claude".to_owned() } else { format!("Agent {i}") }}),
    };
    let second = match i % 3 {
        0 => json!({"key": "client.tags", "operator": "contains", "value": "internal"}),
        1 => json!({"key": "user.permissions", "operator": "not_in", "value": ["admin:all"]}),
        _ => json!({"key": "jwtClaims.groups", "operator": "in", "value": ["alpha", "gamma"]}),
    };
    let third = match i % 4 {
        0 => json!({"key": "jwtClaims.department", "operator": "not_equal", "value": "sales"}),
        1 => json!({"key": "jwtClaims.level", "operator": "in", "value": [1, 2, 3]}),
        2 => json!({"key": "client.name", "operator": "not_in", "value": ["Blocked App"]}),
        _ => json!({"key": "jwtClaims.org.missing", "operator": "not_equal", "value": "x"}),
    };
    json!([first, second, third])
}

fn policies(n: usize, servers: &[McpServer]) -> Vec<Policy> {
    (0..n)
        .map(|i| {
            // Matching policies never grant calendar.admin, so every decision
            // drops it and pays for its explanation.
            let calendar_scopes: &[&str] = match (i % 25 == 0, i % 3) {
                (true, 0) => &["calendar.read"],
                (true, _) => &["calendar.read", "calendar.write"],
                (false, 0) => &["calendar.read"],
                (false, 1) => &["calendar.read", "calendar.write"],
                (false, _) => &["calendar.admin"],
            };
            let draft = json!({
                "name": format!("Policy {i}"),
                "conditions": conditions(i),
                "grants": [
                    {"mcp_server": "calendar", "scopes": calendar_scopes},
                    {"mcp_server": "drive", "scopes": ["drive.read"]}
                ]
            });
            match validate(&draft, servers) {
                Ok(spec) => spec.into_policy(format!("pol_{i}"), 0),
                Err(err) => panic!("benchmark policy {i} is invalid: {err}"),
            }
        })
        .collect()
}

/// Seconds per call of `f`: the best of five rounds (the machine may be
/// busy with other work), after a round to warm up.
fn time<T>(iterations: u32, mut f: impl FnMut() -> T) -> f64 {
    let rounds = 5;
    let per_round = (iterations / rounds).max(1);
    let mut best = f64::INFINITY;
    for round in 0..=rounds {
        let start = Instant::now();
        for _ in 0..per_round {
            black_box(f());
        }
        let per = start.elapsed().as_secs_f64() / f64::from(per_round);
        if round > 0 {
            best = best.min(per);
        }
    }
    best
}

/// Seconds to build one index (not copying the policies, not dropping the set).
fn build_time(policies: &[Policy], builds: u32) -> f64 {
    let copies: Vec<Vec<Policy>> = (0..builds).map(|_| policies.to_vec()).collect();
    let start = Instant::now();
    let sets: Vec<PolicySet> = copies.into_iter().map(PolicySet::new).collect();
    let elapsed = start.elapsed().as_secs_f64();
    black_box(sets);
    elapsed / f64::from(builds)
}

fn bench(n: usize, iterations: u32) {
    let servers = servers();
    let list = policies(n, &servers);
    let set = PolicySet::new(list.clone());
    let (user, client) = (user(), client());
    let subject = Subject {
        user: &user,
        client: &client,
    };
    let requested: Vec<String> = ["calendar.read", "calendar.write", "calendar.admin"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let server = &servers[0];

    let once = set.decide(&subject, server, &requested).explain();
    assert_eq!(
        once,
        evaluate(&set, &subject, server, &requested),
        "the index decides as evaluate does"
    );

    let decision = time(iterations, || {
        black_box(&set).decide(
            black_box(&subject),
            black_box(server),
            black_box(&requested),
        )
    });
    let explained = time(iterations, || {
        black_box(&set)
            .decide(
                black_box(&subject),
                black_box(server),
                black_box(&requested),
            )
            .explain()
    });
    let scanned = time(iterations, || {
        evaluate(
            black_box(&set),
            black_box(&subject),
            black_box(server),
            black_box(&requested),
        )
    });
    let build = build_time(&list, 20);

    println!(
        "policy evaluation: {n:>5} policies: {:>6.2} µs per decision, {:>6.2} µs with explanation \
         ({} matched, {} permitted, {} dropped); without the index: {:>6.2} µs with explanation; \
         index built in {:>7.1} µs",
        decision * 1e6,
        explained * 1e6,
        once.matched.len(),
        once.permitted.len(),
        once.dropped.len(),
        scanned * 1e6,
        build * 1e6,
    );
}

fn main() {
    bench(10, 100_000);
    bench(100, 20_000);
    bench(1_000, 5_000);
}
