//! The Lifeline gateway's store: technicians and groups, login history,
//! bearer tokens, sessions and their state machine, gateway nodes with
//! heartbeats, and the audit trail.
//!
//! One implementation, [`Store`], runs on SQLite (embedded default, a file in
//! the node's data directory) and on PostgreSQL (several nodes sharing one
//! database) through sqlx's runtime-selected `Any` driver. The DML text is the
//! same for both (`$1` placeholders, which SQLite accepts too); only the DDL
//! in the migrations differs. Values cross the driver as `i64`, `String` or
//! `Option` of those: times are Unix milliseconds, GUIDs their canonical text,
//! 32-byte hashes and secrets lower-case hex, booleans 0/1.
//!
//! Modules:
//! * this file — [`Store`]: URL parsing, connecting, pool settings (on
//!   SQLite one connection for all writes, others for reads), the
//!   write-transaction helper;
//! * `error` — [`StoreError`] and [`Result`];
//! * `migrations` — the versioned schema and its runner ([`SCHEMA_VERSION`]);
//! * `rows` — decoding stored values, mapping bad ones to
//!   [`StoreError::Corrupt`];
//! * `technicians` — technicians (enabled or disabled, moved, removed),
//!   groups, login attempts and lockout;
//! * `pins` — a session's 6-digit PIN for the web page (unique while
//!   live, used once);
//! * `passwords` — a group's password policy, a technician's own change;
//! * `tokens` — bearer tokens (stored as SHA-256 hashes only);
//! * `two_factor` — TOTP enrollment, the last step accepted (no replay),
//!   recovery codes (hashes only), 2FA required per account or group;
//! * `sessions` — session rows and the created → waiting → paired (→
//!   direct) → ended state machine, the reported path, the one-time applet
//!   secret (and issuing it again), relayed byte counts;
//! * `channels` — channels (stable web addresses into a group's queue),
//!   the queue, and picking from it atomically ([`Pick`]);
//! * `transfers` — handing a session to another technician: offer,
//!   accept with the new console's key, complete ([`Transfer`]);
//! * `nodes` — gateway nodes and their heartbeats;
//! * `endings` — hearing of sessions as any node ends them ([`Endings`],
//!   PostgreSQL's NOTIFY);
//! * `access` — what admitting an applet or a console reads of its
//!   session ([`SessionAccess`]), many arriving connections at once;
//! * `places` — the state and node of many sessions in one statement
//!   ([`Place`]), for a node's check of the applets waiting on it;
//! * `audit` — the append-only audit trail;
//! * `batched` — store writes that arrive together (audit rows, sessions
//!   marked waiting or paired), and the look-ups of `access`, become one
//!   statement, each caller awaiting its own result;
//! * `retention` — deleting ended sessions and audit records older than a
//!   cutoff, in bounded batches ([`Store::prune`]).

#![forbid(unsafe_code)]

mod access;
mod audit;
mod batched;
mod channels;
mod endings;
mod error;
mod migrations;
mod nodes;
mod passwords;
mod pins;
mod places;
mod retention;
mod rows;
mod sessions;
mod technicians;
mod tokens;
mod transfers;
mod two_factor;

#[cfg(test)]
mod admin_tests;

/// For unit tests: an in-memory store with one technician (its id).
#[cfg(test)]
pub(crate) async fn test_store_with_technician() -> (Store, i64) {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let t = store
        .add_technician(
            NewTechnician {
                email: "ada@example.com".into(),
                name: "Ada".into(),
                password_hash: "x".into(),
                group: "default".into(),
            },
            0,
        )
        .await
        .unwrap();
    (store, t.id)
}

pub use access::SessionAccess;
pub use audit::AuditRecord;
pub use channels::{Channel, NewChannelSession, Pick};
pub use endings::Endings;
pub use error::{Result, StoreError};
pub use lifeline_protocol::{Permissions, SessionGuid};
pub use migrations::SCHEMA_VERSION;
pub use nodes::NodeRecord;
pub use passwords::PasswordPolicy;
pub use places::{PLACES_PER_STATEMENT, Place};
pub use retention::{PRUNE_BATCH, Pruned};
pub use sessions::{NewSession, Reissue, RelayClosed, SessionPath, SessionRecord, SessionState};
pub use technicians::{Group, GroupRemoval, MAX_EMAIL, NewTechnician, Removal, Technician};
pub use transfers::Transfer;
pub use two_factor::TwoFactor;

use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Transaction};
use std::time::Duration;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// An SQLite file (or `:memory:` for tests).
    Sqlite,
    /// A PostgreSQL (or compatible) server.
    Postgres,
}

/// The store. Cheap to clone: all clones share its connection pools.
#[derive(Debug, Clone)]
pub struct Store {
    /// Where reads go.
    pool: AnyPool,
    /// Where writes go. On an SQLite file: one connection of its own.
    /// SQLite has one writer at a time anyway; writes queued here wait
    /// their turn in order, instead of several connections taking turns in
    /// SQLite's busy handler — which sleeps a millisecond and more per try,
    /// holding connections the readers need. Elsewhere (PostgreSQL, an
    /// in-memory SQLite whose one connection is the database) the same
    /// pool as the reads.
    writes: AnyPool,
    dialect: Dialect,
    /// PostgreSQL: the URL, for [`Store::watch_endings`]'s own connection.
    pg_url: Option<Redacted>,
    /// Writes and look-ups made together (none outside a tokio runtime).
    batchers: Batchers,
}

/// The store's [`batched`] writes, and its one batched read.
#[derive(Debug, Clone, Default)]
struct Batchers {
    access: Option<batched::Batcher<access::AccessReads>>,
    audit: Option<batched::Batcher<audit::AuditRows>>,
    waiting: Option<batched::Batcher<sessions::WaitingMarks>>,
    paired: Option<batched::Batcher<sessions::PairedMarks>>,
}

/// A URL that may hold a password: its `Debug` never shows it.
#[derive(Clone)]
struct Redacted(String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<database URL>")
    }
}

/// Shown whenever a URL is refused, so the operator sees what would work.
const ACCEPTED_URLS: &str = "accepted database URLs: sqlite:PATH or sqlite://PATH \
     (a relative or absolute file path, created if missing), \
     postgres://USER@HOST[:PORT]/DATABASE or postgresql://...";

/// How long to wait for the database at open and for a pooled connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an SQLite connection waits for another one's write lock before
/// failing with "database is locked".
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

/// Reading connections to an SQLite file: WAL lets them run alongside the
/// one writing connection; a handful is all that buys us.
const SQLITE_MAX_CONNECTIONS: u32 = 4;

/// Per gateway node; a cluster multiplies this, so keep it modest.
const POSTGRES_MAX_CONNECTIONS: u32 = 16;

/// A URL after checking, in the form sqlx's `Any` driver wants.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    dialect: Dialect,
    url: String,
    /// `sqlite::memory:` — each new connection would be a new empty
    /// database, so the pool must hold exactly one, forever.
    in_memory: bool,
}

fn parse_url(url: &str) -> Result<Target> {
    let url = url.trim();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Target {
            dialect: Dialect::Postgres,
            url: url.to_owned(),
            in_memory: false,
        });
    }
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        // Never echo the whole URL: it may hold a password.
        let scheme = url.split_once(':').map_or("", |(s, _)| s);
        return Err(StoreError::BadUrl(format!(
            "unsupported database URL scheme {scheme:?}; {ACCEPTED_URLS}"
        )));
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(StoreError::BadUrl(format!(
            "the SQLite URL names no file; {ACCEPTED_URLS}"
        )));
    }
    let in_memory = path == ":memory:";
    // sqlx percent-decodes the path, so a literal '%' (and the URL
    // delimiters) in a file name must be encoded to survive.
    let mut encoded = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => encoded.push_str("%25"),
            '#' => encoded.push_str("%23"),
            _ => encoded.push(c),
        }
    }
    // "sqlite:" + path (not "sqlite://") keeps a relative path from being
    // parsed as a URL host; leading "//" would do the same, so collapse it.
    while encoded.starts_with("//") {
        encoded.remove(0);
    }
    // Create the file on first start unless the operator chose a mode.
    let has_mode = query.split('&').any(|kv| kv.starts_with("mode="));
    let query = match (query.is_empty(), has_mode || in_memory) {
        (true, true) => String::new(),
        (true, false) => "?mode=rwc".to_owned(),
        (false, true) => format!("?{query}"),
        (false, false) => format!("?{query}&mode=rwc"),
    };
    Ok(Target {
        dialect: Dialect::Sqlite,
        url: format!("sqlite:{encoded}{query}"),
        in_memory,
    })
}

/// Settings every SQLite connection needs; they are per connection, not
/// stored in the file (except `journal_mode`, which is idempotent).
async fn prepare_sqlite_connection(conn: &mut AnyConnection) -> sqlx::Result<()> {
    // The busy timeout makes a second writer wait instead of failing at
    // once; foreign keys are off by default in SQLite for compatibility.
    // synchronous = NORMAL is the recommended pairing with WAL: no
    // corruption is possible, only the last commits may be lost on power
    // loss; measured, it triples applet connects per second (fsync per
    // commit was the bottleneck, see benches/README.md).
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL"
    )))
    .execute(&mut *conn)
    .await?;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
        .fetch_one(&mut *conn)
        .await?;
    // In-memory databases report "memory"; some file systems (network
    // mounts) cannot do WAL. Both still work, just with less concurrency.
    if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
        tracing::warn!(journal_mode = %mode, "SQLite refused WAL mode; readers will block the writer");
    }
    Ok(())
}

/// The current wall-clock time in Unix milliseconds (only for bookkeeping
/// rows the caller does not time itself, like `schema_migrations`).
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    /// Connects to `url` and brings the schema up to date.
    ///
    /// Accepts `sqlite:PATH`, `sqlite://PATH` (the file is created if
    /// missing; its directory must exist), `postgres://...` and
    /// `postgresql://...`. Refuses a database whose schema is newer than
    /// this build knows.
    pub async fn open(url: &str) -> Result<Store> {
        static DRIVERS: std::sync::Once = std::sync::Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);

        let target = parse_url(url)?;
        let options = match target.dialect {
            Dialect::Sqlite => AnyPoolOptions::new()
                .max_connections(if target.in_memory {
                    1
                } else {
                    SQLITE_MAX_CONNECTIONS
                })
                .after_connect(|conn, _meta| Box::pin(prepare_sqlite_connection(conn))),
            Dialect::Postgres => AnyPoolOptions::new().max_connections(POSTGRES_MAX_CONNECTIONS),
        }
        .acquire_timeout(CONNECT_TIMEOUT);
        let options = if target.in_memory {
            // The single connection *is* the database; never recycle it.
            options
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            options
        };
        let pool = match options.connect(&target.url).await {
            Ok(pool) => pool,
            Err(sqlx::Error::PoolTimedOut) => {
                // The pool retries refused connections until the deadline and
                // then reports only "timed out"; one direct attempt tells the
                // operator why (refused, unknown host, bad password...).
                let probe =
                    tokio::time::timeout(CONNECT_TIMEOUT, AnyConnection::connect(&target.url))
                        .await;
                return Err(match probe {
                    Ok(Err(e)) => e.into(),
                    Ok(Ok(conn)) => {
                        let _ = conn.close().await;
                        sqlx::Error::PoolTimedOut.into()
                    }
                    Err(_) => sqlx::Error::PoolTimedOut.into(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let writes = match (target.dialect, target.in_memory) {
            (Dialect::Sqlite, false) => {
                AnyPoolOptions::new()
                    .max_connections(1)
                    .after_connect(|conn, _meta| Box::pin(prepare_sqlite_connection(conn)))
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect(&target.url)
                    .await?
            }
            _ => pool.clone(),
        };
        let store = Store {
            pool,
            writes,
            dialect: target.dialect,
            pg_url: (target.dialect == Dialect::Postgres).then(|| Redacted(target.url.clone())),
            batchers: Batchers::default(),
        };
        let migrated = async {
            let mut conn = store.writes.acquire().await?;
            migrations::run(&mut conn, store.dialect, wall_clock_ms()).await
        }
        .await;
        if let Err(e) = migrated {
            store.close().await;
            return Err(e);
        }
        Ok(Store {
            batchers: Batchers {
                access: batched::Batcher::start(&store.pool),
                audit: batched::Batcher::start(&store.writes),
                waiting: batched::Batcher::start(&store.writes),
                paired: batched::Batcher::start(&store.writes),
            },
            ..store
        })
    }

    /// Opens a store that a node made before — for `gateway admin`, which
    /// must never make one: a missing SQLite file, or a PostgreSQL database
    /// without Lifeline's tables, is [`StoreError::NoStore`] and nothing is
    /// created. (Pending migrations of an existing store still run.)
    pub async fn open_existing(url: &str) -> Result<Store> {
        let target = parse_url(url)?;
        match target.dialect {
            Dialect::Sqlite if !target.in_memory => {
                let raw = url.trim();
                let rest = raw
                    .strip_prefix("sqlite://")
                    .or_else(|| raw.strip_prefix("sqlite:"))
                    .unwrap_or(raw);
                let path = rest.split_once('?').map_or(rest, |(p, _)| p);
                if !std::path::Path::new(path).is_file() {
                    return Err(StoreError::NoStore(format!("there is no store at {path}")));
                }
            }
            Dialect::Postgres => {
                static DRIVERS: std::sync::Once = std::sync::Once::new();
                DRIVERS.call_once(sqlx::any::install_default_drivers);
                let mut conn =
                    tokio::time::timeout(CONNECT_TIMEOUT, AnyConnection::connect(&target.url))
                        .await
                        .map_err(|_| StoreError::Database(sqlx::Error::PoolTimedOut))??;
                let tables: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM information_schema.tables \
                     WHERE table_name = 'schema_migrations' AND table_schema = current_schema()",
                )
                .fetch_one(&mut conn)
                .await?;
                let _ = conn.close().await;
                if tables == 0 {
                    return Err(StoreError::NoStore(
                        "the database has no Lifeline store in it".into(),
                    ));
                }
            }
            Dialect::Sqlite => {}
        }
        Self::open(url).await
    }

    /// Which database this store talks to.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Closes every connection; waits for borrowed ones to come back.
    pub async fn close(&self) {
        self.writes.close().await;
        self.pool.close().await;
    }

    /// The newest applied schema version.
    pub async fn schema_version(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Starts a transaction that will write.
    ///
    /// On SQLite it takes the write lock up front (`BEGIN IMMEDIATE`): a
    /// deferred transaction that reads and then writes cannot wait for the
    /// lock (busy_timeout does not apply to the upgrade) and would fail with
    /// "database is locked" under concurrency.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.writes.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.writes.begin().await?,
        })
    }

    /// The pool reads go to, for the other modules.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool writes go to (see [`Store`]), for the other modules.
    pub(crate) fn writes(&self) -> &AnyPool {
        &self.writes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(url: &str) -> String {
        match parse_url(url) {
            Ok(t) => {
                assert_eq!(t.dialect, Dialect::Sqlite);
                t.url
            }
            Err(e) => panic!("{url}: {e}"),
        }
    }

    #[test]
    fn sqlite_urls() {
        assert_eq!(sqlite("sqlite:data/ll.db"), "sqlite:data/ll.db?mode=rwc");
        assert_eq!(sqlite("sqlite://data/ll.db"), "sqlite:data/ll.db?mode=rwc");
        assert_eq!(
            sqlite("sqlite:/var/lib/ll.db"),
            "sqlite:/var/lib/ll.db?mode=rwc"
        );
        assert_eq!(
            sqlite("sqlite:///var/lib/ll.db"),
            "sqlite:/var/lib/ll.db?mode=rwc"
        );
        assert_eq!(
            sqlite("sqlite:/a/50%#.db"),
            "sqlite:/a/50%25%23.db?mode=rwc"
        );
        assert_eq!(sqlite("sqlite:x.db?mode=ro"), "sqlite:x.db?mode=ro");
        assert_eq!(
            sqlite("sqlite:x.db?vfs=unix"),
            "sqlite:x.db?vfs=unix&mode=rwc"
        );
        assert_eq!(sqlite("sqlite::memory:"), "sqlite::memory:");
        assert!(parse_url("sqlite::memory:").is_ok_and(|t| t.in_memory));
    }

    #[test]
    fn other_urls() {
        for url in [
            "postgres://u@h/db",
            "postgresql://u:p@h:5/db?sslmode=require",
        ] {
            assert!(parse_url(url).is_ok_and(|t| t.dialect == Dialect::Postgres && t.url == url));
        }
        for url in [
            "mysql://root:secret@h/db",
            "sqlite:",
            "sqlite://",
            "/tmp/x.db",
            "",
        ] {
            match parse_url(url) {
                Err(StoreError::BadUrl(m)) => {
                    assert!(
                        m.contains("sqlite:PATH") && m.contains("postgres://"),
                        "{m}"
                    );
                    assert!(!m.contains("secret"), "{m}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }
}
