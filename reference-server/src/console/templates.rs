//! The console's templates and filters, registered with the hub's page
//! environment alongside the OAuth pages.

use minijinja::Environment;

/// The console's templates, registered with the hub's page environment.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "console/layout.html",
        include_str!("../../templates/console/layout.html"),
    ),
    (
        "console/login.html",
        include_str!("../../templates/console/login.html"),
    ),
    (
        "console/home.html",
        include_str!("../../templates/console/home.html"),
    ),
    (
        "console/message.html",
        include_str!("../../templates/console/message.html"),
    ),
    (
        "console/confirm.html",
        include_str!("../../templates/console/confirm.html"),
    ),
    (
        "console/agents.html",
        include_str!("../../templates/console/agents.html"),
    ),
    (
        "console/agent.html",
        include_str!("../../templates/console/agent.html"),
    ),
    (
        "console/servers.html",
        include_str!("../../templates/console/servers.html"),
    ),
    (
        "console/connections.html",
        include_str!("../../templates/console/connections.html"),
    ),
    (
        "console/policies.html",
        include_str!("../../templates/console/policies.html"),
    ),
    (
        "console/policy_new.html",
        include_str!("../../templates/console/policy_new.html"),
    ),
    (
        "console/what_if.html",
        include_str!("../../templates/console/what_if.html"),
    ),
    (
        "console/audit.html",
        include_str!("../../templates/console/audit.html"),
    ),
    (
        "console/flow.html",
        include_str!("../../templates/console/flow.html"),
    ),
    (
        "console/users.html",
        include_str!("../../templates/console/users.html"),
    ),
    (
        "console/user.html",
        include_str!("../../templates/console/user.html"),
    ),
];

/// Adds the console's templates and its filters, `utc` (seconds since the
/// epoch as `2026-11-24 09:00:00 UTC`) and `iso` (RFC 3339), to the hub's
/// page environment.
pub fn register(env: &mut Environment<'static>) {
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("built-in template {name} does not parse: {e}"));
    }
    env.add_filter("utc", |t: i64| utc(t));
    env.add_filter("iso", |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    });
}

/// `2026-11-24 09:00:00 UTC`.
pub fn utc(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}
