//! Durable state in SQLite through sqlx. Every query of the hub lives in the
//! store, one part per concern (`store/*.rs`), so the endpoints speak in
//! domain types and the schema changes in one place. This part opens the
//! database and applies the migrations.

use std::path::PathBuf;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use sqlx::Row;

use crate::error::HubError;

pub mod audit;
pub mod audit_writer;
pub mod authorizations;
pub mod connections;
pub mod console;
pub mod directory;
pub mod keys;
pub mod policies;
pub mod second_factor;
pub mod sso;
pub mod tokens;

/// Where the hub keeps its state.
#[derive(Debug, Clone)]
pub enum Database {
    /// A SQLite file, created on first start; state survives restarts.
    File(PathBuf),
    /// A private in-memory database, gone when the hub stops.
    Memory,
}

impl FromStr for Database {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            ":memory:" | "memory" => Database::Memory,
            path => Database::File(PathBuf::from(
                path.strip_prefix("sqlite://").unwrap_or(path),
            )),
        })
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// A nullable JSON column.
fn optional_json<T: DeserializeOwned>(
    row: &SqliteRow,
    column: &str,
) -> Result<Option<T>, HubError> {
    let raw: Option<String> = row.try_get(column)?;
    Ok(match raw {
        Some(raw) => Some(serde_json::from_str(&raw)?),
        None => None,
    })
}

fn from_json<T: DeserializeOwned + Default>(row: &SqliteRow, column: &str) -> Result<T, HubError> {
    let raw: String = row.try_get(column)?;
    Ok(serde_json::from_str(&raw)?)
}
/// Clients in service kept in memory (`Store::client`), and the generation
/// every write moves.
#[derive(Debug, Default)]
struct ClientCache {
    generation: u64,
    clients: std::collections::HashMap<String, crate::model::Client>,
}

/// The revoked access-token `jti`s, as the store remembers them.
#[derive(Debug, Default)]
enum RevokedJtis {
    /// Not read yet: the first check reads them.
    #[default]
    Unloaded,
    Loaded(std::collections::HashSet<String>),
    /// More than [`REVOKED_IN_MEMORY`]: every check reads the database.
    TooMany,
}

/// The most revoked `jti`s kept in memory.
const REVOKED_IN_MEMORY: usize = 1_000_000;

/// The most clients kept in memory; past it the cache starts over.
const CLIENT_CACHE: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    /// The audit trail's one writer (group commit, `store/audit.rs`).
    audit_writer: tokio::sync::mpsc::Sender<audit_writer::Append>,
    /// Clients in service, once read (see `Store::client`).
    clients: std::sync::Arc<std::sync::Mutex<ClientCache>>,
    /// Revoked access tokens, once read (see `Store::is_access_token_revoked`).
    revoked: std::sync::Arc<tokio::sync::RwLock<RevokedJtis>>,
    /// The MCP servers, once read (see `Store::mcp_servers`).
    servers: std::sync::Arc<std::sync::RwLock<Option<Vec<crate::model::McpServer>>>>,
}

impl Store {
    pub async fn open(database: &Database) -> Result<Store, HubError> {
        let pool = match database {
            Database::File(path) => {
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .foreign_keys(true);
                SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(options)
                    .await?
            }
            // One connection: every new in-memory connection would be a new, empty database.
            Database::Memory => {
                let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(options)
                    .await?
            }
        };
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store {
            audit_writer: audit_writer::spawn_writer(pool.clone()),
            pool,
            clients: Default::default(),
            revoked: Default::default(),
            servers: Default::default(),
        })
    }

    /// The pool, for the per-concern parts of the store (`store/*.rs`).
    fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}
