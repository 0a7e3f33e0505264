//! The store against real databases: every scenario runs twice, on SQLite
//! (a fresh file in a fresh temporary directory) and on PostgreSQL (a fresh
//! database created on the server named by `LIFELINE_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432/test`, and dropped afterwards).
//!
//! PostgreSQL being unreachable fails the PostgreSQL tests loudly: a store
//! that was only ever tested on SQLite must not pass for one tested on both.
//!
//! The scenarios by area: [`schema`], [`technicians`] (with logins and
//! tokens), [`sessions`] (creation, labels, the state machine), [`paths`]
//! (node restarts, going direct, the relay closing, resumptions) and
//! [`nodes_audit`]; this file holds the harness.

#![allow(clippy::unwrap_used)]

use lifeline_store::{
    Dialect, NewSession, NewTechnician, Permissions, RelayClosed, SCHEMA_VERSION, SessionGuid,
    SessionPath, SessionState, Store, StoreError, Technician,
};
use ring::rand::{SecureRandom, SystemRandom};
use sqlx::{AnyConnection, AssertSqlSafe, Connection};
use std::path::PathBuf;
use std::time::Duration;

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";
const T0: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    SystemRandom::new().fill(&mut b).unwrap();
    lifeline_protocol::hex::encode(&b)
}

fn random_guid() -> SessionGuid {
    SessionGuid::random(&SystemRandom::new()).unwrap()
}

/// `admin` with its database name replaced by `name` (query kept).
fn with_database(admin: &str, name: &str) -> String {
    let (base, query) = admin.split_once('?').map_or((admin, ""), |(b, q)| (b, q));
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{}/{name}{query}", &base[..host_end])
}

enum Cleanup {
    Dir(PathBuf),
    PgDatabase { admin: String, name: String },
}

/// One scenario's private database; removed on drop, even after a panic.
struct TestDb {
    url: String,
    dialect: Dialect,
    cleanup: Cleanup,
}

impl TestDb {
    fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!("lifeline-store-{}", random_hex(8)));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            url: format!("sqlite:{}", dir.join("store.db").display()),
            dialect: Dialect::Sqlite,
            cleanup: Cleanup::Dir(dir),
        }
    }

    async fn postgres() -> Self {
        let admin = std::env::var("LIFELINE_TEST_PG").unwrap_or_else(|_| DEFAULT_PG.to_owned());
        let mut conn = match tokio::time::timeout(
            Duration::from_secs(10),
            sqlx::postgres::PgConnection::connect(&admin),
        )
        .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => panic!(
                "\n\n*** PostgreSQL at {admin} is unreachable: {e}\n*** The PostgreSQL half of \
                 the store suite cannot run. Start PostgreSQL there or set LIFELINE_TEST_PG.\n\n"
            ),
            Err(_) => panic!(
                "\n\n*** PostgreSQL at {admin} did not answer within 10 s.\n*** The PostgreSQL \
                 half of the store suite cannot run. Start PostgreSQL there or set \
                 LIFELINE_TEST_PG.\n\n"
            ),
        };
        let name = format!("lifeline_store_{}", random_hex(8));
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name} at {admin}: {e}"));
        conn.close().await.unwrap();
        Self {
            url: with_database(&admin, &name),
            dialect: Dialect::Postgres,
            cleanup: Cleanup::PgDatabase { admin, name },
        }
    }

    async fn open(&self) -> Store {
        let store = Store::open(&self.url)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", self.url));
        assert_eq!(store.dialect(), self.dialect);
        store
    }

    /// A connection beside the store, for poking at rows the API hides.
    async fn raw(&self) -> AnyConnection {
        sqlx::any::install_default_drivers();
        AnyConnection::connect(&self.url).await.unwrap()
    }

    async fn raw_count(&self, sql: &'static str) -> i64 {
        let mut conn = self.raw().await;
        let n = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        n
    }

    async fn raw_execute(&self, sql: &'static str) {
        let mut conn = self.raw().await;
        sqlx::query(sql).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::PgDatabase { admin, name } => {
                let (admin, name) = (admin.clone(), name.clone());
                // Drop cannot await, and the test's runtime may be the one
                // being torn down: use a thread with a runtime of its own.
                let dropped = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| e.to_string())?;
                    rt.block_on(async {
                        let mut conn = sqlx::postgres::PgConnection::connect(&admin).await?;
                        // FORCE: the store's pool may still hold connections.
                        sqlx::raw_sql(AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await?;
                        conn.close().await
                    })
                    .map_err(|e| e.to_string())
                })
                .join();
                if !matches!(dropped, Ok(Ok(()))) {
                    eprintln!("warning: could not drop test database: {dropped:?}");
                }
            }
        }
    }
}

/// Generates `NAME::sqlite` and `NAME::postgres` tests running the
/// scenario `async fn NAME(db: &TestDb)`. Multi-threaded runtimes, so that
/// the concurrency scenarios really run in parallel.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = super::TestDb::sqlite();
                super::$name(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = super::TestDb::postgres().await;
                super::$name(&db).await;
            }
        }
    )*};
}

fn new_tech(email: &str, group: &str) -> NewTechnician {
    NewTechnician {
        email: email.to_owned(),
        name: format!("Name of {email}"),
        password_hash: "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA".to_owned(),
        group: group.to_owned(),
    }
}

async fn some_tech(store: &Store, email: &str) -> Technician {
    store
        .add_technician(new_tech(email, "support"), T0)
        .await
        .unwrap()
}

fn new_session(technician_id: i64, label: &str, created_at_ms: i64) -> NewSession {
    NewSession {
        guid: random_guid(),
        technician_id,
        label: label.to_owned(),
        console_pin: [0xc0; 32],
        applet_secret: [0x5e; 32],
        admission_key: [0xad; 32],
        permissions: Permissions::SYSTEM_INFO.union(Permissions::FILE_TO_USER),
        created_at_ms,
        expires_at_ms: created_at_ms + HOUR,
    }
}

mod channels;
mod nodes_audit;
mod paths;
mod schema;
mod sessions;
mod technicians;
mod transfers;

#[tokio::test]
async fn bad_urls_are_refused() {
    for url in ["mysql://root@localhost/db", "file:/tmp/x.db", "", "sqlite:"] {
        match Store::open(url).await {
            Err(StoreError::BadUrl(m)) => {
                assert!(
                    m.contains("sqlite:PATH") && m.contains("postgres://"),
                    "{m}"
                );
            }
            other => panic!("{url:?}: expected BadUrl, got {other:?}"),
        }
    }
    // A missing directory fails promptly with the driver's reason.
    let missing = std::env::temp_dir()
        .join(format!("lifeline-store-missing-{}", random_hex(8)))
        .join("store.db");
    let started = std::time::Instant::now();
    let result = Store::open(&format!("sqlite:{}", missing.display())).await;
    assert!(matches!(result, Err(StoreError::Database(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn test_database_urls() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    assert_eq!(
        with_database("postgresql://u:p@h/db?sslmode=disable", "x"),
        "postgresql://u:p@h/x?sslmode=disable"
    );
}
