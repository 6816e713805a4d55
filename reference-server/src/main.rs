//! `hub`: serve the reference agentic identity hub.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use reference_server::store::Database;
use reference_server::{Fault, Faults, HubConfig, Variant, Variants};

/// The reference agentic identity hub: an OAuth 2.1 authorization server for MCP servers and agents.
#[derive(Debug, Parser)]
#[command(name = "hub", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "HUB_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Public origin if behind a proxy (e.g. https://hub.example); defaults to http://<bind>.
    #[arg(long, env = "HUB_PUBLIC_URL")]
    public_url: Option<String>,
    /// SQLite database file, or `:memory:` for a throwaway in-memory database.
    #[arg(long, env = "HUB_DATABASE", default_value = "hub.sqlite")]
    database: Database,
    /// Directory of seed TOML files applied at start.
    #[arg(long, env = "HUB_SEED_DIR", default_value = "fixtures/hub")]
    seed_dir: PathBuf,
    /// Access token lifetime, in seconds.
    #[arg(long, env = "HUB_ACCESS_TOKEN_TTL", default_value_t = 300)]
    access_token_ttl: u32,
    /// Refresh token lifetime, in seconds.
    #[arg(long, env = "HUB_REFRESH_TOKEN_TTL", default_value_t = 30 * 24 * 3600)]
    refresh_token_ttl: u32,
    /// Authorization code lifetime, in seconds (60 at most).
    #[arg(long, env = "HUB_CODE_TTL", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=60))]
    code_ttl: u32,
    /// Trust this origin's client metadata documents over http and on loopback (repeatable).
    #[arg(
        long = "cimd-trust-origin",
        env = "HUB_CIMD_TRUST_ORIGINS",
        value_delimiter = ','
    )]
    cimd_trust_origins: Vec<String>,
    /// Dynamic registrations allowed per source address per minute (0: no limit).
    #[arg(long, env = "HUB_REGISTRATION_RATE_LIMIT", default_value_t = 20)]
    registration_rate_limit: u32,
    /// Source addresses exempt from the registration limit (repeatable), e.g. a trusted gateway.
    #[arg(
        long = "registration-rate-exempt",
        env = "HUB_REGISTRATION_RATE_EXEMPT",
        value_delimiter = ','
    )]
    registration_rate_exempt: Vec<std::net::IpAddr>,
    /// Reverse proxies whose X-Forwarded-For is believed (repeatable); others' is ignored.
    #[arg(
        long = "trusted-proxy",
        env = "HUB_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// Deliver every audit event to this URL as CloudEvents batches (at least once, in order, resumable).
    #[arg(long, env = "HUB_AUDIT_WEBHOOK")]
    audit_webhook: Option<String>,
    /// Also append every audit event to this JSON Lines file.
    #[arg(long, env = "HUB_AUDIT_JSONL")]
    audit_jsonl: Option<PathBuf>,
    /// How long a sign-in at the authorization pages lasts, in seconds.
    #[arg(long, env = "HUB_SIGNIN_LIFETIME", default_value_t = 8 * 3600)]
    signin_lifetime: u32,
    /// A sign-in unused for this many seconds ends early.
    #[arg(long, env = "HUB_SIGNIN_IDLE_TIMEOUT", default_value_t = 3600)]
    signin_idle_timeout: u32,
    /// How long a user's consent is remembered, in seconds.
    #[arg(long, env = "HUB_CONSENT_TTL", default_value_t = 90 * 24 * 3600)]
    consent_ttl: u32,
    /// Enable the control API under /control (never in production).
    #[arg(long, env = "HUB_TEST_MODE")]
    test_mode: bool,
    /// Bearer token the control API requires.
    #[arg(long, env = "HUB_CONTROL_TOKEN", hide_env_values = true)]
    control_token: Option<String>,
    /// Bearer token the admin API (/admin) requires; without it the admin API is off.
    #[arg(long, env = "HUB_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A vault key sealing Connection secrets, `<id>:<base64 of 32 bytes>` (repeatable; the first seals).
    /// Without one the hub uses `vault-dev.key` from the seed directory, or refuses to start.
    #[arg(
        long = "vault-key",
        env = "HUB_VAULT_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    vault_keys: Vec<String>,
    /// Upper bound, in seconds, on every call to a Connection's provider.
    #[arg(long, env = "HUB_PROVIDER_TIMEOUT", default_value_t = 10)]
    provider_timeout: u64,
    /// Do not start the offline demo (the mock Demo Calendar provider and the Agenda MCP server).
    #[arg(long, env = "HUB_NO_DEMO")]
    no_demo: bool,
    /// Where the demo's mock third-party provider listens.
    #[arg(long, env = "HUB_DEMO_PROVIDER_BIND", default_value = "127.0.0.1:8090")]
    demo_provider_bind: SocketAddr,
    /// Where the demo's identity provider (the `initech` tenant's single sign-on) listens.
    #[arg(long, env = "HUB_DEMO_IDP_BIND", default_value = "127.0.0.1:8091")]
    demo_idp_bind: SocketAddr,
    /// The Agenda MCP server's client secret at the hub (client `rs-agenda` in the seed).
    #[arg(
        long,
        env = "HUB_AGENDA_CLIENT_SECRET",
        default_value = "s20CX9_QyYGV8dHbXnN9b5hEpvFFudFja05vksJZ4_U",
        hide_env_values = true
    )]
    agenda_client_secret: String,
    /// Switch on a named fault (repeatable); see --list-faults.
    #[arg(long = "fault", env = "HUB_FAULTS", value_delimiter = ',')]
    faults: Vec<Fault>,
    /// Connections served at once; more are closed on arrival.
    #[arg(long, env = "HUB_MAX_CONNECTIONS", default_value_t = 512)]
    max_connections: usize,
    /// Seconds a connection may take to send a request's headers, or idle between requests.
    #[arg(long, env = "HUB_HEADER_READ_TIMEOUT", default_value_t = 10)]
    header_read_timeout: u64,
    /// Print the known faults and exit.
    #[arg(long)]
    list_faults: bool,
    /// Switch on a compliant variant: another answer a standard allows (repeatable); see --list-variants.
    #[arg(long = "variant", env = "HUB_VARIANTS", value_delimiter = ',')]
    variants: Vec<Variant>,
    /// Print the known variants and exit.
    #[arg(long)]
    list_variants: bool,
    /// Read a password or client secret from stdin, print its argon2 hash for a seed file, and exit.
    #[arg(long)]
    hash_secret: bool,
    /// With --hash-secret: the secret was generated (at least 256 random
    /// bits, e.g. `openssl rand -base64 32`): print a salted SHA-256 digest
    /// (`secret_kind = "generated"`), which verifies in microseconds.
    #[arg(long, requires = "hash_secret")]
    generated: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into()),
        )
        // Colours for a terminal only: a log file or pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let args = Args::parse();
    if args.hash_secret {
        let mut secret = String::new();
        std::io::stdin()
            .read_line(&mut secret)
            .context("reading the secret from stdin")?;
        let secret = secret.trim_end_matches(['\r', '\n']);
        anyhow::ensure!(!secret.is_empty(), "no secret on stdin");
        if args.generated {
            // 32 bytes of base64 is 43 or 44 characters: shorter is no 256 bits.
            anyhow::ensure!(
                secret.len() >= 43,
                "a generated secret has at least 256 random bits (43 base64 characters); hash a chosen one without --generated"
            );
            println!(
                "{}",
                reference_server::credentials::digest_generated_secret(secret)
            );
        } else {
            println!("{}", reference_server::credentials::hash_secret(secret)?);
        }
        return Ok(());
    }
    if args.list_faults {
        for fault in Fault::ALL {
            println!("{:<34} {}", fault.name(), fault.description());
        }
        return Ok(());
    }
    if args.list_variants {
        for variant in Variant::ALL {
            println!("{:<34} {}", variant.name(), variant.description());
        }
        return Ok(());
    }
    // The demo's third-party provider runs beside the hub, on its own origin.
    let provider = if args.no_demo {
        None
    } else {
        Some(
            demo::provider::spawn(
                args.demo_provider_bind,
                demo::provider::ProviderConfig::default(),
            )
            .await
            .context("starting the demo provider (--no-demo skips it)")?,
        )
    };
    // The demo tenant's identity provider, also on its own origin.
    let idp = if args.no_demo {
        None
    } else {
        Some(
            demo::idp::spawn(args.demo_idp_bind, demo::idp::IdpConfig::default())
                .await
                .context("starting the demo identity provider (--no-demo skips it)")?,
        )
    };
    let config = HubConfig {
        bind: args.bind,
        public_url: args.public_url,
        database: args.database,
        seed_dir: Some(args.seed_dir),
        access_token_ttl: args.access_token_ttl,
        refresh_token_ttl: args.refresh_token_ttl,
        code_ttl: args.code_ttl,
        test_mode: args.test_mode,
        cimd_trusted_origins: args.cimd_trust_origins,
        registration_rate_limit: args.registration_rate_limit,
        registration_rate_exempt: args.registration_rate_exempt,
        consent_ttl: args.consent_ttl,
        signin_lifetime: args.signin_lifetime.max(1),
        signin_idle_timeout: args.signin_idle_timeout.max(1),
        trusted_proxies: args.trusted_proxies,
        audit_jsonl: args.audit_jsonl,
        audit_webhook: args.audit_webhook,
        control_token: args.control_token,
        admin_token: args.admin_token.filter(|t| !t.is_empty()),
        vault_keys: args.vault_keys,
        agenda: (!args.no_demo)
            .then(|| reference_server::AgendaSettings::demo(args.agenda_client_secret.clone())),
        demo_provider_url: provider.as_ref().map(|p| p.url.clone()),
        demo_idp_issuer: idp.as_ref().map(|(issuer, _)| issuer.clone()),
        provider_timeout: std::time::Duration::from_secs(args.provider_timeout.max(1)),
        faults: Faults::new(args.faults),
        variants: Variants::new(args.variants),
        limits: reference_server::serve::Limits {
            max_connections: args.max_connections.max(1),
            header_read_timeout: std::time::Duration::from_secs(args.header_read_timeout.max(1)),
            ..Default::default()
        },
        ..HubConfig::default()
    };
    let faults: Vec<_> = config.faults.iter().map(|f| f.name()).collect();
    let variants: Vec<_> = config.variants.iter().map(|v| v.name()).collect();
    let test_mode = config.test_mode;
    let hub = reference_server::spawn(config)
        .await
        .context("starting the hub")?;
    tracing::info!(issuer = %hub.issuer, "hub listening on {}", hub.local_addr);
    for (id, url) in &hub.resources {
        tracing::info!(mcp_server = %id, resource = %url, "protected MCP server");
    }
    tracing::info!(
        console = %format!("{}/console", hub.base_url),
        "hub console: sign in with an administrator from the seed ([[admins]])"
    );
    if let Some(provider) = &provider {
        tracing::info!(
            provider = %provider.url,
            connect = %format!("{}/connections/demo-calendar/connect", hub.issuer),
            "demo: mock third-party provider \"Demo Calendar\"; connect it, then call the Agenda MCP server"
        );
    }
    if let Some((issuer, _)) = &idp {
        tracing::info!(
            idp = %issuer,
            "demo: identity provider of tenant initech; sign in as erin@initech.example / erin-password (group engineering) or frank@initech.example / frank-password"
        );
    }
    if test_mode {
        tracing::warn!("test mode: the control API is enabled under /control");
    }
    if !faults.is_empty() {
        tracing::warn!(
            ?faults,
            "faults switched on: this hub deliberately violates the specs"
        );
    }
    if !variants.is_empty() {
        tracing::info!(
            ?variants,
            "variants switched on: compliant alternative answers"
        );
    }
    tokio::select! {
        result = hub.wait() => result.context("serving")?,
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
    }
    Ok(())
}
