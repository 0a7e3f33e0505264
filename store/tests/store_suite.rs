//! The store against real databases: every scenario runs twice, on SQLite
//! (a fresh file in a fresh temporary directory) and on PostgreSQL (a fresh
//! database created on the server named by `LIFELINE_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432/test`, and dropped afterwards).
//!
//! PostgreSQL being unreachable fails the PostgreSQL tests loudly: a store
//! that was only ever tested on SQLite must not pass for one tested on both.

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

on_both_backends!(
    migrations_are_idempotent,
    newer_schema_is_refused,
    concurrent_opens_migrate_once,
    technicians,
    lockout_counting,
    login_history_is_bounded,
    tokens,
    session_create_and_labels,
    label_race_has_one_winner,
    applet_secret_is_taken_once,
    state_machine,
    reset_node_sessions,
    direct_sessions,
    relay_close_races_path_reports,
    resumptions,
    relayed_bytes,
    nodes,
    audit_order_filter_limit,
    corrupt_rows_are_reported,
);

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

async fn migrations_are_idempotent(db: &TestDb) {
    let store = db.open().await;
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    some_tech(&store, "kept@example.com").await;
    store.close().await;

    let store = db.open().await;
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    assert!(
        store
            .technician_by_email("kept@example.com")
            .await
            .unwrap()
            .is_some()
    );
    store.close().await;
    let store = db.open().await;
    store.close().await;
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM schema_migrations").await,
        SCHEMA_VERSION
    );
}

async fn newer_schema_is_refused(db: &TestDb) {
    db.open().await.close().await;
    let mut conn = db.raw().await;
    sqlx::query("INSERT INTO schema_migrations (version, applied_at_ms) VALUES ($1, $2)")
        .bind(SCHEMA_VERSION + 1)
        .bind(T0)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    match Store::open(&db.url).await {
        Err(StoreError::Migration(m)) => {
            assert!(m.contains("newer"), "{m}");
            assert!(m.contains(&(SCHEMA_VERSION + 1).to_string()), "{m}");
        }
        other => panic!("expected a migration error, got {other:?}"),
    }
}

async fn concurrent_opens_migrate_once(db: &TestDb) {
    // A cluster of gateways starting at once against a fresh database.
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move { Store::open(&url).await })
        })
        .collect();
    for open in opens {
        let store = open.await.unwrap().unwrap();
        assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
        store.close().await;
    }
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM schema_migrations").await,
        SCHEMA_VERSION
    );
}

async fn technicians(db: &TestDb) {
    let store = db.open().await;
    let alice = store
        .add_technician(new_tech("  Alice@Example.COM ", "support"), T0)
        .await
        .unwrap();
    assert_eq!(alice.email, "alice@example.com");
    assert_eq!(alice.name, "Name of   Alice@Example.COM ");
    assert_eq!(alice.group, "support");
    assert_eq!(alice.permissions, Permissions::ALL);
    assert_eq!(alice.failed_logins, 0);
    assert_eq!(alice.locked_until_ms, None);
    assert_eq!(alice.created_at_ms, T0);

    match store
        .add_technician(new_tech("ALICE@example.com", "other"), T0)
        .await
    {
        Err(StoreError::Conflict(m)) => {
            assert_eq!(
                m,
                "a technician with e-mail alice@example.com already exists"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The failed insert must not have left its new group behind half-made
    // in a way that breaks later use (the transaction rolled back).
    store
        .add_technician(new_tech("carol@example.com", "other"), T0)
        .await
        .unwrap();

    assert_eq!(
        store
            .technician_by_email(" ALICE@example.com")
            .await
            .unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.technician_by_id(alice.id).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store
            .technician_by_email("nobody@example.com")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.technician_by_id(alice.id + 1000).await.unwrap(), None);

    let aaron = some_tech(&store, "aaron@example.com").await;
    assert_ne!(aaron.id, alice.id);
    let emails: Vec<_> = store
        .list_technicians()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.email)
        .collect();
    assert_eq!(
        emails,
        [
            "aaron@example.com",
            "alice@example.com",
            "carol@example.com"
        ]
    );

    store
        .set_group_permissions("support", Permissions::SYSTEM_INFO)
        .await
        .unwrap();
    let alice = store.technician_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!(alice.permissions, Permissions::SYSTEM_INFO);
    // Joining an existing group does not reset its permissions.
    let dave = some_tech(&store, "dave@example.com").await;
    assert_eq!(dave.permissions, Permissions::SYSTEM_INFO);
    let carol = store
        .technician_by_email("carol@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(carol.permissions, Permissions::ALL);
    assert!(matches!(
        store.set_group_permissions("nope", Permissions::NONE).await,
        Err(StoreError::NotFound(_))
    ));
    store.close().await;
}

async fn lockout_counting(db: &TestDb) {
    let store = db.open().await;
    let t = some_tech(&store, "locky@example.com").await;
    let lock_ms = 15 * 60_000;
    for i in 1..=4 {
        let locked = store
            .record_login_failure(t.id, &t.email, "192.0.2.1", T0 + i, 5, lock_ms)
            .await
            .unwrap();
        assert_eq!(locked, None, "failure {i}");
    }
    let t4 = store.technician_by_id(t.id).await.unwrap().unwrap();
    assert_eq!((t4.failed_logins, t4.locked_until_ms), (4, None));

    let locked = store
        .record_login_failure(t.id, &t.email, "192.0.2.1", T0 + 5, 5, lock_ms)
        .await
        .unwrap();
    assert_eq!(locked, Some(T0 + 5 + lock_ms));
    let t5 = store.technician_by_id(t.id).await.unwrap().unwrap();
    assert_eq!(
        (t5.failed_logins, t5.locked_until_ms),
        (0, Some(T0 + 5 + lock_ms))
    );

    store
        .record_login_success(t.id, &t.email, "192.0.2.1", T0 + 6)
        .await
        .unwrap();
    let ok = store.technician_by_id(t.id).await.unwrap().unwrap();
    assert_eq!((ok.failed_logins, ok.locked_until_ms), (0, None));

    for i in 0..2 {
        store
            .record_login_failure(t.id, &t.email, "192.0.2.2", T0 + 10 + i, 5, lock_ms)
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .technician_by_id(t.id)
            .await
            .unwrap()
            .unwrap()
            .failed_logins,
        2
    );
    store
        .record_login_success(t.id, &t.email, "192.0.2.2", T0 + 20)
        .await
        .unwrap();
    assert_eq!(
        store
            .technician_by_id(t.id)
            .await
            .unwrap()
            .unwrap()
            .failed_logins,
        0
    );

    // max_failures = 0 never locks.
    for i in 0..7 {
        let locked = store
            .record_login_failure(t.id, &t.email, "192.0.2.3", T0 + 30 + i, 0, lock_ms)
            .await
            .unwrap();
        assert_eq!(locked, None);
    }
    assert_eq!(
        store
            .technician_by_id(t.id)
            .await
            .unwrap()
            .unwrap()
            .failed_logins,
        7
    );

    store
        .record_unknown_login("Ghost@Example.com", "192.0.2.4", T0 + 40)
        .await
        .unwrap();
    assert!(matches!(
        store
            .record_login_failure(t.id + 99, "x@y", "s", T0, 5, lock_ms)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.record_login_success(t.id + 99, "x@y", "s", T0).await,
        Err(StoreError::NotFound(_))
    ));
    store.close().await;

    // 5 + 1 + 2 + 1 + 7 + 1 rows of history; the unknown one normalised.
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM login_attempts").await,
        17
    );
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM login_attempts WHERE success = 1")
            .await,
        2
    );
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM login_attempts WHERE email = 'ghost@example.com'")
            .await,
        1
    );
}

/// The login history cannot be used to fill the database: e-mails are
/// clamped before they are stored, and old or surplus rows are purged.
async fn login_history_is_bounded(db: &TestDb) {
    let store = db.open().await;
    let huge = format!("{}@example.com", "A".repeat(64 * 1024));
    for i in 0..10 {
        store
            .record_unknown_login(&huge, "192.0.2.9:1", T0 + i)
            .await
            .unwrap();
    }
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM login_attempts WHERE LENGTH(email) > 254")
            .await,
        0
    );
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM login_attempts WHERE LENGTH(email) = 254")
            .await,
        10
    );
    assert_eq!(store.login_attempt_count().await.unwrap(), 10);
    // Older than T0 + 4: 4 rows go; then all but the newest 3.
    assert_eq!(store.purge_login_attempts(T0 + 4, 1_000).await.unwrap(), 4);
    assert_eq!(store.purge_login_attempts(T0, 3).await.unwrap(), 3);
    assert_eq!(store.login_attempt_count().await.unwrap(), 3);
    assert_eq!(
        db.raw_count("SELECT MIN(at_ms) FROM login_attempts").await,
        T0 + 7
    );
    assert_eq!(store.purge_login_attempts(T0, 3).await.unwrap(), 0);
    store.close().await;
}

async fn tokens(db: &TestDb) {
    let store = db.open().await;
    let t = some_tech(&store, "token@example.com").await;
    let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    store.insert_token(&a, t.id, T0, T0 + 1000).await.unwrap();
    store.insert_token(&b, t.id, T0, T0 + 5000).await.unwrap();
    assert!(matches!(
        store.insert_token(&a, t.id, T0, T0 + 1000).await,
        Err(StoreError::Conflict(_))
    ));

    assert_eq!(
        store.technician_by_token(&a, T0 + 999).await.unwrap(),
        Some(t.clone())
    );
    assert_eq!(
        store.technician_by_token(&a, T0 + 1000).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store.technician_by_token(&c, T0).await.unwrap(),
        None,
        "unknown"
    );

    assert_eq!(store.purge_expired_tokens(T0 + 1000).await.unwrap(), 1);
    assert_eq!(store.purge_expired_tokens(T0 + 1000).await.unwrap(), 0);
    assert_eq!(
        store.technician_by_token(&a, T0).await.unwrap(),
        None,
        "purged"
    );
    assert_eq!(
        store.technician_by_token(&b, T0 + 1000).await.unwrap(),
        Some(t.clone())
    );

    assert!(store.delete_token(&b).await.unwrap());
    assert!(!store.delete_token(&b).await.unwrap());
    assert_eq!(
        store.technician_by_token(&b, T0).await.unwrap(),
        None,
        "logged out"
    );

    // Revoking ends every login of one technician, and only theirs.
    let other = some_tech(&store, "other-token@example.com").await;
    for (k, who) in [([4u8; 32], t.id), ([5u8; 32], t.id), ([6u8; 32], other.id)] {
        store.insert_token(&k, who, T0, T0 + 5000).await.unwrap();
    }
    assert_eq!(store.revoke_tokens(t.id).await.unwrap(), 2);
    assert_eq!(store.technician_by_token(&[4; 32], T0).await.unwrap(), None);
    assert_eq!(store.technician_by_token(&[5; 32], T0).await.unwrap(), None);
    assert_eq!(
        store.technician_by_token(&[6; 32], T0).await.unwrap(),
        Some(other)
    );
    assert_eq!(store.revoke_tokens(t.id).await.unwrap(), 0);
    store.close().await;
}

async fn session_create_and_labels(db: &TestDb) {
    let store = db.open().await;
    let t = some_tech(&store, "labels@example.com").await;
    let other = some_tech(&store, "other@example.com").await;

    let s = new_session(t.id, "printer", T0);
    let rec = store.create_session(s.clone()).await.unwrap();
    assert_eq!(rec.guid, s.guid);
    assert_eq!(rec.technician_id, t.id);
    assert_eq!(rec.technician_email, t.email);
    assert_eq!(rec.technician_name, t.name);
    assert_eq!(rec.label, "printer");
    assert_eq!(rec.console_pin, s.console_pin);
    assert!(!rec.downloaded);
    assert_eq!(rec.permissions, s.permissions);
    assert_eq!(rec.state, SessionState::Created);
    assert_eq!((rec.created_at_ms, rec.expires_at_ms), (T0, T0 + HOUR));
    assert_eq!(rec.waiting_since_ms, None);
    assert_eq!(rec.waiting_from, None);
    assert_eq!(rec.waiting_node, None);
    assert_eq!(rec.waiting_node_addr, None);
    assert_eq!(rec.paired_at_ms, None);
    assert_eq!(rec.ended_at_ms, None);
    assert_eq!(rec.ended_reason, None);
    assert_eq!(
        (rec.bytes_applet_to_console, rec.bytes_console_to_applet),
        (0, 0)
    );
    assert_eq!(store.session(&s.guid).await.unwrap(), Some(rec.clone()));
    assert_eq!(store.session(&random_guid()).await.unwrap(), None);

    match store
        .create_session(new_session(t.id, "printer", T0 + 1))
        .await
    {
        Err(StoreError::Conflict(m)) => {
            assert_eq!(m, "you already have an open session labelled \"printer\"");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Labels are per technician; empty labels never clash.
    store
        .create_session(new_session(other.id, "printer", T0 + 2))
        .await
        .unwrap();
    let u1 = store
        .create_session(new_session(t.id, "", T0 + 3))
        .await
        .unwrap();
    let u2 = store
        .create_session(new_session(t.id, "", T0 + 4))
        .await
        .unwrap();
    assert_eq!(store.session_by_label(t.id, "").await.unwrap(), None);

    // A duplicate GUID is a conflict too, and so is nothing else.
    let mut dup = new_session(t.id, "dup", T0 + 5);
    dup.guid = s.guid;
    assert!(matches!(
        store.create_session(dup).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create_session(new_session(t.id + 999, "x", T0)).await,
        Err(StoreError::NotFound(_))
    ));

    assert_eq!(
        store.session_by_label(t.id, "printer").await.unwrap(),
        Some(rec.clone())
    );
    assert_eq!(
        store.session_by_label(other.id, "nope").await.unwrap(),
        None
    );

    // Ending frees the label.
    assert!(store.end_session(&s.guid, "done", T0 + 10).await.unwrap());
    assert_eq!(store.session_by_label(t.id, "printer").await.unwrap(), None);
    let again = store
        .create_session(new_session(t.id, "printer", T0 + 11))
        .await
        .unwrap();
    assert_eq!(
        store
            .session_by_label(t.id, "printer")
            .await
            .unwrap()
            .map(|r| r.guid),
        Some(again.guid)
    );

    // So does expiry (judged at the new session's creation time).
    let old = store
        .create_session(new_session(t.id, "scanner", T0 + 20))
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_session(new_session(t.id, "scanner", T0 + 20 + HOUR - 1))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let newer = store
        .create_session(new_session(t.id, "scanner", T0 + 20 + HOUR))
        .await
        .unwrap();
    // Both are not ended; the newest wins.
    assert_eq!(
        store
            .session_by_label(t.id, "scanner")
            .await
            .unwrap()
            .map(|r| r.guid),
        Some(newer.guid)
    );

    let open: Vec<_> = store
        .sessions_of(t.id, false)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.guid)
        .collect();
    assert_eq!(open, [newer.guid, old.guid, again.guid, u2.guid, u1.guid]);
    let all: Vec<_> = store
        .sessions_of(t.id, true)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.guid)
        .collect();
    assert_eq!(
        all,
        [newer.guid, old.guid, again.guid, u2.guid, u1.guid, s.guid]
    );
    assert_eq!(store.sessions_of(other.id, true).await.unwrap().len(), 1);
    store.close().await;
}

async fn label_race_has_one_winner(db: &TestDb) {
    // Two consoles of one technician asking for the same label at once:
    // the check-then-insert must not let both through.
    let store = db.open().await;
    let t = some_tech(&store, "race@example.com").await;
    for round in 0..3 {
        let label = format!("race {round}");
        let creators: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                let s = new_session(t.id, &label, T0 + i);
                tokio::spawn(async move { store.create_session(s).await })
            })
            .collect();
        let mut created = 0;
        for creator in creators {
            match creator.await.unwrap() {
                Ok(_) => created += 1,
                Err(StoreError::Conflict(_)) => {}
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(created, 1, "{label}");
    }
    store.close().await;
}

async fn applet_secret_is_taken_once(db: &TestDb) {
    let store = db.open().await;
    let t = some_tech(&store, "secret@example.com").await;
    let s = new_session(t.id, "", T0);
    store.create_session(s.clone()).await.unwrap();
    assert_eq!(
        store.take_applet_secret(&s.guid).await.unwrap(),
        Some(s.applet_secret)
    );
    assert!(store.session(&s.guid).await.unwrap().unwrap().downloaded);
    assert_eq!(store.take_applet_secret(&s.guid).await.unwrap(), None);
    assert_eq!(
        store.take_applet_secret(&random_guid()).await.unwrap(),
        None
    );

    // Ending a session erases a secret nobody downloaded.
    let ended = new_session(t.id, "", T0);
    store.create_session(ended.clone()).await.unwrap();
    assert!(
        store
            .end_session(&ended.guid, "cancelled", T0 + 1)
            .await
            .unwrap()
    );
    assert_eq!(store.take_applet_secret(&ended.guid).await.unwrap(), None);
    assert!(
        !store
            .session(&ended.guid)
            .await
            .unwrap()
            .unwrap()
            .downloaded
    );

    // Many simultaneous downloads: exactly one gets the secret.
    let raced = new_session(t.id, "", T0);
    store.create_session(raced.clone()).await.unwrap();
    let takers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.take_applet_secret(&raced.guid).await })
        })
        .collect();
    let mut winners = 0;
    for taker in takers {
        if let Some(secret) = taker.await.unwrap().unwrap() {
            assert_eq!(secret, raced.applet_secret);
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    store.close().await;
}

async fn state_machine(db: &TestDb) {
    let store = db.open().await;
    let t = some_tech(&store, "states@example.com").await;
    let s = new_session(t.id, "", T0);
    let g = s.guid;
    store.create_session(s).await.unwrap();
    let state = |r: Option<lifeline_store::SessionRecord>| r.unwrap().state;

    // created: only mark_waiting (and end) move it.
    assert!(!store.mark_paired(&g, T0 + 1).await.unwrap());
    store.clear_waiting(&g, "198.51.100.7:5000").await.unwrap();
    assert_eq!(
        state(store.session(&g).await.unwrap()),
        SessionState::Created
    );

    assert!(
        store
            .mark_waiting(&g, "node-a", "a.example:443", "198.51.100.7:5000", T0 + 2)
            .await
            .unwrap()
    );
    let w = store.session(&g).await.unwrap().unwrap();
    assert_eq!(w.state, SessionState::Waiting);
    assert_eq!(w.waiting_since_ms, Some(T0 + 2));
    assert_eq!(w.waiting_from.as_deref(), Some("198.51.100.7:5000"));
    assert_eq!(w.waiting_node.as_deref(), Some("node-a"));
    assert_eq!(w.waiting_node_addr.as_deref(), Some("a.example:443"));
    assert_eq!(w.admission_key, Some([0xad; 32]));
    // No applet connection on another node can take a waiting session.
    assert!(
        !store
            .mark_waiting(&g, "node-b", "b.example:443", "203.0.113.9:1", T0 + 3)
            .await
            .unwrap()
    );
    assert_eq!(store.session(&g).await.unwrap().unwrap(), w);
    // A new connection on the same node may (its registry decided it takes
    // over); the old connection leaving then changes nothing.
    assert!(
        store
            .mark_waiting(&g, "node-a", "a.example:443", "198.51.100.7:6000", T0 + 3)
            .await
            .unwrap()
    );
    store.clear_waiting(&g, "198.51.100.7:5000").await.unwrap();
    let w = store.session(&g).await.unwrap().unwrap();
    assert_eq!(
        (w.state, w.waiting_from.as_deref(), w.waiting_since_ms),
        (
            SessionState::Waiting,
            Some("198.51.100.7:6000"),
            Some(T0 + 3)
        )
    );

    // The applet leaves: back to created, nothing remembered.
    store.clear_waiting(&g, "198.51.100.7:6000").await.unwrap();
    let c = store.session(&g).await.unwrap().unwrap();
    assert_eq!(c.state, SessionState::Created);
    assert_eq!(
        (
            c.waiting_since_ms,
            c.waiting_from,
            c.waiting_node,
            c.waiting_node_addr
        ),
        (None, None, None, None)
    );

    assert!(
        store
            .mark_waiting(&g, "node-b", "b.example:443", "203.0.113.9:1", T0 + 4)
            .await
            .unwrap()
    );
    assert!(store.mark_paired(&g, T0 + 5).await.unwrap());
    let p = store.session(&g).await.unwrap().unwrap();
    assert_eq!(p.state, SessionState::Paired);
    assert_eq!(p.paired_at_ms, Some(T0 + 5));
    assert_eq!(
        p.waiting_node.as_deref(),
        Some("node-b"),
        "kept: it says who relays"
    );
    assert!(!store.mark_paired(&g, T0 + 6).await.unwrap());
    assert!(
        !store
            .mark_waiting(&g, "node-c", "c:1", "x", T0 + 6)
            .await
            .unwrap()
    );
    store.clear_waiting(&g, "203.0.113.9:1").await.unwrap();
    assert_eq!(
        store.session(&g).await.unwrap().unwrap(),
        p,
        "clear_waiting is a no-op when paired"
    );

    assert!(
        store
            .end_session(&g, "technician hung up", T0 + 7)
            .await
            .unwrap()
    );
    let e = store.session(&g).await.unwrap().unwrap();
    assert_eq!(e.state, SessionState::Ended);
    assert_eq!(e.ended_at_ms, Some(T0 + 7));
    assert_eq!(e.ended_reason.as_deref(), Some("technician hung up"));
    assert_eq!(e.paired_at_ms, Some(T0 + 5));
    assert_eq!(
        (e.waiting_since_ms, e.waiting_node.as_deref()),
        (None, None)
    );
    assert!(!store.end_session(&g, "again", T0 + 8).await.unwrap());
    assert!(
        !store
            .mark_waiting(&g, "node-a", "a:1", "x", T0 + 9)
            .await
            .unwrap()
    );
    assert!(!store.mark_paired(&g, T0 + 9).await.unwrap());
    assert_eq!(store.reset_node_sessions("node-b").await.unwrap(), 0);
    assert_eq!(
        store.session(&g).await.unwrap().unwrap(),
        e,
        "ended is final"
    );

    // Ending straight from created works; unknown GUIDs change nothing.
    let s2 = new_session(t.id, "", T0);
    store.create_session(s2.clone()).await.unwrap();
    assert!(
        store
            .end_session(&s2.guid, "expired", T0 + 10)
            .await
            .unwrap()
    );
    let nobody = random_guid();
    assert!(
        !store
            .mark_waiting(&nobody, "n", "a", "f", T0)
            .await
            .unwrap()
    );
    assert!(!store.mark_paired(&nobody, T0).await.unwrap());
    assert!(!store.end_session(&nobody, "r", T0).await.unwrap());
    store.clear_waiting(&nobody, "f").await.unwrap();
    assert_eq!(SessionState::Paired.as_str(), "paired");
    store.close().await;
}

async fn reset_node_sessions(db: &TestDb) {
    let store = db.open().await;
    let t = some_tech(&store, "reset@example.com").await;
    let mut g = Vec::new();
    for i in 0..5 {
        let s = new_session(t.id, "", T0 + i);
        g.push(s.guid);
        store.create_session(s).await.unwrap();
    }
    // 0 waiting on n1, 1 paired on n1, 2 waiting on n2, 3 created, 4 ended (was on n1).
    assert!(
        store
            .mark_waiting(&g[0], "n1", "n1:443", "a", T0 + 10)
            .await
            .unwrap()
    );
    assert!(
        store
            .mark_waiting(&g[1], "n1", "n1:443", "b", T0 + 10)
            .await
            .unwrap()
    );
    assert!(store.mark_paired(&g[1], T0 + 11).await.unwrap());
    assert!(
        store
            .mark_waiting(&g[2], "n2", "n2:443", "c", T0 + 10)
            .await
            .unwrap()
    );
    assert!(
        store
            .mark_waiting(&g[4], "n1", "n1:443", "e", T0 + 10)
            .await
            .unwrap()
    );
    assert!(store.end_session(&g[4], "gone", T0 + 12).await.unwrap());
    let before_n2 = store.session(&g[2]).await.unwrap().unwrap();

    // The waiting one goes back to created: its applet reconnects.
    assert_eq!(store.reset_node_sessions("n1").await.unwrap(), 1);
    let r = store.session(&g[0]).await.unwrap().unwrap();
    assert_eq!(r.state, SessionState::Created);
    assert_eq!(
        (r.waiting_node, r.waiting_since_ms, r.waiting_from),
        (None, None, None)
    );
    assert!(
        store
            .mark_waiting(&g[0], "n3", "n3:443", "z", T0 + 20)
            .await
            .unwrap(),
        "and it can be joined again"
    );
    // The relayed one was interrupted: it stays open (its ends may resume
    // it), with the time of the interruption, until the resume window
    // runs out.
    assert_eq!(
        store.interrupt_node_relays("n1", T0 + 21).await.unwrap(),
        vec![g[1]]
    );
    let r = store.session(&g[1]).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.relay_closed_at_ms, r.ended_at_ms, r.paired_at_ms),
        (SessionState::Paired, Some(T0 + 21), None, Some(T0 + 11))
    );
    assert!(
        store
            .sessions_of(t.id, false)
            .await
            .unwrap()
            .iter()
            .any(|s| s.guid == g[1])
    );
    let why = "interrupted and not resumed within 120 s";
    assert_eq!(
        store.end_unresumed(T0 + 21, why, T0 + 30).await.unwrap(),
        Vec::<SessionGuid>::new(),
        "not before the window"
    );
    assert_eq!(
        store.end_unresumed(T0 + 22, why, T0 + 30).await.unwrap(),
        vec![g[1]]
    );
    let r = store.session(&g[1]).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.ended_at_ms, r.ended_reason.as_deref()),
        (SessionState::Ended, Some(T0 + 30), Some(why))
    );
    assert_eq!(store.session(&g[2]).await.unwrap().unwrap(), before_n2);
    assert_eq!(state_of(&store, &g[3]).await, SessionState::Created);
    assert_eq!(state_of(&store, &g[4]).await, SessionState::Ended);
    assert_eq!(store.reset_node_sessions("n1").await.unwrap(), 0);
    assert!(
        store
            .interrupt_node_relays("n1", T0 + 22)
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await;
}

/// A session of `t`'s, paired on `node`.
async fn paired_session(store: &Store, t: &Technician, node: &str) -> SessionGuid {
    let s = new_session(t.id, "", T0);
    let g = s.guid;
    store.create_session(s).await.unwrap();
    assert!(
        store
            .mark_waiting(&g, node, &format!("{node}:443"), "198.51.100.1:1", T0 + 1)
            .await
            .unwrap()
    );
    assert!(store.mark_paired(&g, T0 + 2).await.unwrap());
    g
}

fn conflict(r: lifeline_store::Result<lifeline_store::SessionRecord>) -> String {
    match r {
        Err(StoreError::Conflict(m)) => m,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

async fn direct_sessions(db: &TestDb) {
    let store = db.open().await;
    let t = some_tech(&store, "direct@example.com").await;

    // Only a paired session has a path.
    let s = new_session(t.id, "", T0);
    let g = s.guid;
    store.create_session(s).await.unwrap();
    assert!(conflict(store.set_path(&g, SessionPath::DirectTcp).await).contains("created"));
    assert!(
        store
            .mark_waiting(&g, "n1", "n1:443", "a", T0 + 1)
            .await
            .unwrap()
    );
    assert!(conflict(store.set_path(&g, SessionPath::Relay).await).contains("waiting"));
    assert!(store.mark_paired(&g, T0 + 2).await.unwrap());
    let p = store.session(&g).await.unwrap().unwrap();
    assert_eq!((p.path, p.relay_closed_at_ms), (None, None));

    // Staying on the relay is a report too; going direct changes the state.
    let r = store.set_path(&g, SessionPath::Relay).await.unwrap();
    assert_eq!(
        (r.state, r.path),
        (SessionState::Paired, Some(SessionPath::Relay))
    );
    let d = store.set_path(&g, SessionPath::DirectTcp).await.unwrap();
    assert_eq!(
        (d.state, d.path),
        (SessionState::Direct, Some(SessionPath::DirectTcp))
    );
    assert_eq!(d, store.session(&g).await.unwrap().unwrap());
    assert!(d.state.is_connected() && SessionState::Paired.is_connected());
    assert!(!SessionState::Waiting.is_connected());
    // Back to the relay while it still runs (the cutover did not happen)…
    let back = store.set_path(&g, SessionPath::Relay).await.unwrap();
    assert_eq!(back.state, SessionState::Paired);
    let d = store.set_path(&g, SessionPath::XtcpUdp).await.unwrap();
    assert_eq!(
        (d.state, d.path),
        (SessionState::Direct, Some(SessionPath::XtcpUdp))
    );

    // A direct session is live: no re-pairing without its applet waiting
    // again (see `resumptions`), listed as open, untouched by a restart of
    // the node that relayed it.
    assert!(!store.mark_paired(&g, T0 + 3).await.unwrap());
    store.clear_waiting(&g, "198.51.100.1:1").await.unwrap();
    assert_eq!(store.reset_node_sessions("n1").await.unwrap(), 0);
    assert!(
        store
            .interrupt_node_relays("n1", T0 + 3)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.session(&g).await.unwrap().unwrap(), d);
    assert!(
        store
            .sessions_of(t.id, false)
            .await
            .unwrap()
            .iter()
            .any(|r| r.guid == g)
    );

    // The relay closes: the session goes on; the relay cannot come back.
    assert_eq!(
        store.close_relay(&g, T0 + 4).await.unwrap(),
        RelayClosed::Direct
    );
    let c = store.session(&g).await.unwrap().unwrap();
    assert_eq!(
        (c.state, c.relay_closed_at_ms, c.ended_reason.as_deref()),
        (SessionState::Direct, Some(T0 + 4), None)
    );
    assert_eq!(
        c.waiting_node.as_deref(),
        Some("n1"),
        "kept: where it was relayed"
    );
    assert!(conflict(store.set_path(&g, SessionPath::Relay).await).contains("relay"));
    let tcp = store.set_path(&g, SessionPath::DirectTcp).await.unwrap();
    assert_eq!(
        (tcp.state, tcp.path),
        (SessionState::Direct, Some(SessionPath::DirectTcp))
    );

    // The console ends it; the path stays as history.
    assert!(
        store
            .end_session(&g, "ended by the technician", T0 + 5)
            .await
            .unwrap()
    );
    let e = store.session(&g).await.unwrap().unwrap();
    assert_eq!(
        (e.state, e.path),
        (SessionState::Ended, Some(SessionPath::DirectTcp))
    );
    assert_eq!(e.ended_reason.as_deref(), Some("ended by the technician"));
    assert!(conflict(store.set_path(&g, SessionPath::XtcpUdp).await).contains("ended"));
    assert_eq!(
        store.close_relay(&g, T0 + 6).await.unwrap(),
        RelayClosed::AlreadyEnded
    );

    // A relayed session is interrupted with its relay (the gateway cannot
    // tell an ending from a lost connection).
    let relayed = paired_session(&store, &t, "n1").await;
    assert_eq!(
        store.close_relay(&relayed, T0 + 7).await.unwrap(),
        RelayClosed::Interrupted
    );
    let r = store.session(&relayed).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.relay_closed_at_ms, r.ended_at_ms),
        (SessionState::Paired, Some(T0 + 7), None)
    );
    assert_eq!(
        store.close_relay(&random_guid(), T0).await.unwrap(),
        RelayClosed::AlreadyEnded
    );
    assert!(matches!(
        store.set_path(&random_guid(), SessionPath::DirectTcp).await,
        Err(StoreError::NotFound(_))
    ));

    // Node restart: direct sessions it relayed lose the relay, nothing else.
    let on_n1 = paired_session(&store, &t, "n1").await;
    store.set_path(&on_n1, SessionPath::XtcpUdp).await.unwrap();
    let on_n2 = paired_session(&store, &t, "n2").await;
    store
        .set_path(&on_n2, SessionPath::DirectTcp)
        .await
        .unwrap();
    let paired_n1 = paired_session(&store, &t, "n1").await;
    store
        .set_path(&paired_n1, SessionPath::Relay)
        .await
        .unwrap();
    assert_eq!(
        store.mark_node_relays_closed("n1", T0 + 8).await.unwrap(),
        1
    );
    assert_eq!(
        store.mark_node_relays_closed("n1", T0 + 9).await.unwrap(),
        0
    );
    let r = store.session(&on_n1).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.relay_closed_at_ms),
        (SessionState::Direct, Some(T0 + 8))
    );
    assert_eq!(
        store
            .session(&on_n2)
            .await
            .unwrap()
            .unwrap()
            .relay_closed_at_ms,
        None
    );
    assert_eq!(store.reset_node_sessions("n1").await.unwrap(), 0);
    assert_eq!(
        store.interrupt_node_relays("n1", T0 + 10).await.unwrap(),
        vec![paired_n1],
        "only the paired one"
    );
    assert_eq!(state_of(&store, &on_n1).await, SessionState::Direct);
    assert_eq!(state_of(&store, &on_n2).await, SessionState::Direct);
    // A session paired again (after its applet left and came back) starts
    // without the old path.
    let s = new_session(t.id, "", T0);
    let again = s.guid;
    store.create_session(s).await.unwrap();
    assert!(
        store
            .mark_waiting(&again, "n1", "n1:443", "c", T0 + 10)
            .await
            .unwrap()
    );
    assert!(store.mark_paired(&again, T0 + 11).await.unwrap());
    store.set_path(&again, SessionPath::Relay).await.unwrap();
    assert_eq!(
        store.session(&again).await.unwrap().unwrap().path,
        Some(SessionPath::Relay)
    );

    assert_eq!(SessionPath::parse("udp"), Some(SessionPath::XtcpUdp));
    assert_eq!(SessionPath::parse("UDP"), None);
    assert_eq!(SessionState::Direct.as_str(), "direct");
    store.close().await;
}

/// The console's report and the relay's end race: whichever comes first,
/// the session ends up direct with its relay's close time noted — never
/// ended, never still on a relay that is gone.
async fn relay_close_races_path_reports(db: &TestDb) {
    let store = db.open().await;
    let t = some_tech(&store, "race@example.com").await;
    let mut guids = Vec::new();
    for _ in 0..12 {
        guids.push(paired_session(&store, &t, "n1").await);
    }
    let tasks: Vec<_> = guids
        .iter()
        .map(|g| {
            let (s1, s2, g) = (store.clone(), store.clone(), *g);
            (
                tokio::spawn(async move { s1.set_path(&g, SessionPath::XtcpUdp).await }),
                tokio::spawn(async move { s2.close_relay(&g, T0 + 5).await }),
            )
        })
        .collect();
    for (g, (report, close)) in guids.iter().zip(tasks) {
        let report = report.await.unwrap();
        let close = close.await.unwrap().unwrap();
        let r = store.session(g).await.unwrap().unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert!(
            matches!(close, RelayClosed::Direct | RelayClosed::Interrupted),
            "{close:?}"
        );
        assert_eq!(
            (r.state, r.relay_closed_at_ms),
            (SessionState::Direct, Some(T0 + 5))
        );
    }
    store.close().await;
}

/// Sessions whose path died come back: a direct one whose applet waits
/// again (the interruption starts then), an interrupted relayed one; an
/// applet that leaves before the console comes puts it back to
/// interrupted; pairing again clears the interruption; what is not resumed
/// within the window ends.
async fn resumptions(db: &TestDb) {
    let store = db.open().await;
    let t = some_tech(&store, "resume@example.com").await;

    let direct = paired_session(&store, &t, "n1").await;
    store
        .set_path(&direct, SessionPath::DirectTcp)
        .await
        .unwrap();
    store.close_relay(&direct, T0 + 3).await.unwrap();
    assert!(
        store
            .mark_waiting(&direct, "n2", "n2:443", "a", T0 + 100)
            .await
            .unwrap(),
        "its direct path died: the applet waits again, on any node"
    );
    let r = store.session(&direct).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.relay_closed_at_ms, r.waiting_node.as_deref()),
        (SessionState::Waiting, Some(T0 + 100), Some("n2"))
    );
    assert!(store.mark_paired(&direct, T0 + 101).await.unwrap());
    let r = store.session(&direct).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.relay_closed_at_ms, r.path),
        (SessionState::Paired, None, None)
    );

    let relayed = paired_session(&store, &t, "n1").await;
    assert!(
        !store
            .mark_waiting(&relayed, "n1", "n1:443", "b", T0 + 3)
            .await
            .unwrap(),
        "not while its relay runs"
    );
    store.close_relay(&relayed, T0 + 4).await.unwrap();
    assert!(
        store
            .mark_waiting(&relayed, "n1", "n1:443", "b", T0 + 5)
            .await
            .unwrap()
    );
    store.clear_waiting(&relayed, "b").await.unwrap();
    let r = store.session(&relayed).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.relay_closed_at_ms, r.waiting_node),
        (SessionState::Paired, Some(T0 + 4), None),
        "left before the console came: interrupted as before"
    );
    // Waiting again on a node that restarts: the same.
    assert!(
        store
            .mark_waiting(&relayed, "n3", "n3:443", "c", T0 + 6)
            .await
            .unwrap()
    );
    assert_eq!(store.reset_node_sessions("n3").await.unwrap(), 1);
    assert_eq!(state_of(&store, &relayed).await, SessionState::Paired);

    let why = "interrupted and not resumed within 120 s";
    let ended = store.end_unresumed(T0 + 10, why, T0 + 200).await.unwrap();
    assert_eq!(ended, vec![relayed], "the resumed one stays");
    assert_eq!(state_of(&store, &direct).await, SessionState::Paired);
    let r = store.session(&relayed).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.ended_reason.as_deref()),
        (SessionState::Ended, Some(why))
    );
    assert!(
        !store
            .mark_waiting(&relayed, "n1", "n1:443", "d", T0 + 201)
            .await
            .unwrap()
    );
    store.close().await;
}

async fn state_of(store: &Store, g: &SessionGuid) -> SessionState {
    store.session(g).await.unwrap().unwrap().state
}

async fn relayed_bytes(db: &TestDb) {
    let store = db.open().await;
    let t = some_tech(&store, "bytes@example.com").await;
    let s = new_session(t.id, "", T0);
    store.create_session(s.clone()).await.unwrap();
    store.add_relayed_bytes(&s.guid, 10, 20).await.unwrap();
    store.add_relayed_bytes(&s.guid, 5, 0).await.unwrap();
    store
        .add_relayed_bytes(&s.guid, 0, 3_000_000_000_000)
        .await
        .unwrap();
    let r = store.session(&s.guid).await.unwrap().unwrap();
    assert_eq!(r.bytes_applet_to_console, 15);
    assert_eq!(r.bytes_console_to_applet, 3_000_000_000_020);
    // Unknown sessions are ignored, not an error: the relay may outlive a purge.
    store.add_relayed_bytes(&random_guid(), 1, 1).await.unwrap();
    store.close().await;
}

async fn nodes(db: &TestDb) {
    let store = db.open().await;
    assert!(store.live_nodes(0).await.unwrap().is_empty());
    store
        .node_started("n2", "n2.example:443", T0 + 100)
        .await
        .unwrap();
    store
        .heartbeat("n1", "n1.example:443", T0 + 150)
        .await
        .unwrap();
    store
        .heartbeat("n2", "n2-new.example:443", T0 + 200)
        .await
        .unwrap();

    let live = store.live_nodes(T0 + 150).await.unwrap();
    assert_eq!(live.len(), 2);
    assert_eq!(
        (
            live[0].name.as_str(),
            live[0].addr.as_str(),
            live[0].started_at_ms,
            live[0].last_seen_ms
        ),
        ("n1", "n1.example:443", T0 + 150, T0 + 150)
    );
    assert_eq!(
        (
            live[1].name.as_str(),
            live[1].addr.as_str(),
            live[1].started_at_ms,
            live[1].last_seen_ms
        ),
        ("n2", "n2-new.example:443", T0 + 100, T0 + 200),
        "a heartbeat keeps started_at"
    );
    let names: Vec<_> = store
        .live_nodes(T0 + 151)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["n2"]);

    store
        .node_started("n1", "n1.example:443", T0 + 300)
        .await
        .unwrap();
    let n1 = store.live_nodes(T0 + 300).await.unwrap();
    assert_eq!(n1.len(), 1);
    assert_eq!(
        (n1[0].started_at_ms, n1[0].last_seen_ms),
        (T0 + 300, T0 + 300)
    );
    store.close().await;
}

async fn audit_order_filter_limit(db: &TestDb) {
    let store = db.open().await;
    let (a, b) = (random_guid(), random_guid());
    // Same millisecond on purpose: order must come from insertion.
    store
        .audit(T0, Some(&a), "tech@example.com", "created", "label x")
        .await
        .unwrap();
    store
        .audit(T0, None, "node:n1", "started", "")
        .await
        .unwrap();
    store
        .audit(T0, Some(&b), "applet", "waiting", "from 192.0.2.1")
        .await
        .unwrap();
    store
        .audit(T0, Some(&a), "applet", "waiting", "from 192.0.2.2")
        .await
        .unwrap();
    store
        .audit(T0 + 1, Some(&a), "gateway", "paired", "")
        .await
        .unwrap();

    let all = store.audit_log(None, 100).await.unwrap();
    let events: Vec<_> = all.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        events,
        ["created", "started", "waiting", "waiting", "paired"]
    );
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(all[0].session, Some(a));
    assert_eq!(all[1].session, None);
    assert_eq!(all[1].actor, "node:n1");
    assert_eq!(all[2].detail, "from 192.0.2.1");
    assert_eq!(all[4].at_ms, T0 + 1);

    let of_a: Vec<_> = store
        .audit_log(Some(&a), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event, e.detail))
        .collect();
    assert_eq!(
        of_a,
        [
            ("created".to_owned(), "label x".to_owned()),
            ("waiting".to_owned(), "from 192.0.2.2".to_owned()),
            ("paired".to_owned(), String::new()),
        ]
    );
    let last_two: Vec<_> = store
        .audit_log(Some(&a), 2)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(
        last_two,
        ["waiting", "paired"],
        "the most recent, oldest first"
    );
    let last_of_all: Vec<_> = store
        .audit_log(None, 1)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(last_of_all, ["paired"]);
    assert!(store.audit_log(None, 0).await.unwrap().is_empty());
    assert!(store.audit_log(None, -5).await.unwrap().is_empty());
    assert!(
        store
            .audit_log(Some(&random_guid()), 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await;
}

async fn corrupt_rows_are_reported(db: &TestDb) {
    let store = db.open().await;
    let t = some_tech(&store, "corrupt@example.com").await;
    let s = new_session(t.id, "", T0);
    store.create_session(s.clone()).await.unwrap();
    store.audit(T0, Some(&s.guid), "x", "y", "z").await.unwrap();

    db.raw_execute("UPDATE sessions SET console_pin = 'not hex'")
        .await;
    assert!(
        matches!(store.session(&s.guid).await, Err(StoreError::Corrupt(m)) if m.contains("console_pin"))
    );
    db.raw_execute("UPDATE groups SET permissions = -1").await;
    assert!(
        matches!(store.technician_by_id(t.id).await, Err(StoreError::Corrupt(m)) if m.contains("permissions"))
    );
    db.raw_execute("UPDATE audit SET session_guid = 'garbage'")
        .await;
    assert!(
        matches!(store.audit_log(None, 10).await, Err(StoreError::Corrupt(m)) if m.contains("session_guid"))
    );
    db.raw_execute("UPDATE sessions SET applet_secret = 'abc'")
        .await;
    assert!(matches!(
        store.take_applet_secret(&s.guid).await,
        Err(StoreError::Corrupt(_))
    ));
    store.close().await;
}

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
