//! The operator's lifecycle methods (disable, enable, reset a password,
//! groups, move, remove) and retention, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

use crate::{
    GroupRemoval, NewSession, NewTechnician, Permissions, Pruned, Removal, SessionGuid,
    SessionState, Store, StoreError,
};
use sqlx::Connection;

const T0: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn guid() -> SessionGuid {
    SessionGuid::random(&ring::rand::SystemRandom::new()).unwrap()
}

fn tech(email: &str, group: &str) -> NewTechnician {
    NewTechnician {
        email: email.into(),
        name: "N".into(),
        password_hash: "scrypt$15$8$1$00$00".into(),
        group: group.into(),
    }
}

fn session(technician_id: i64, created_at_ms: i64) -> NewSession {
    NewSession {
        guid: guid(),
        technician_id,
        label: String::new(),
        console_pin: [0xc0; 32],
        applet_secret: [1; 32],
        admission_key: [0xa1; 32],
        permissions: Permissions::NONE,
        created_at_ms,
        expires_at_ms: created_at_ms + HOUR,
    }
}

async fn lifecycle(url: &str) {
    let store = Store::open(url).await.unwrap();
    let ada = store
        .add_technician(tech("ada@example.com", "support"), T0)
        .await
        .unwrap();
    assert_eq!(ada.disabled_at_ms, None);

    // Disabled: the token stops working at once and is gone; disabling
    // again keeps the first time; enabled again, a new token works.
    store
        .insert_token(&[1; 32], ada.id, T0, T0 + DAY)
        .await
        .unwrap();
    store
        .insert_token(&[2; 32], ada.id, T0, T0 + DAY)
        .await
        .unwrap();
    assert!(
        store
            .technician_by_token(&[1; 32], T0)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.disable_technician(ada.id, T0 + 1).await.unwrap(), 2);
    assert_eq!(store.technician_by_token(&[1; 32], T0).await.unwrap(), None);
    assert_eq!(store.disable_technician(ada.id, T0 + 5).await.unwrap(), 0);
    let t = store.technician_by_id(ada.id).await.unwrap().unwrap();
    assert_eq!(t.disabled_at_ms, Some(T0 + 1));
    // A token issued by a login that raced the disabling does not work
    // while disabled, and is gone once enabled.
    store
        .insert_token(&[3; 32], ada.id, T0, T0 + DAY)
        .await
        .unwrap();
    assert_eq!(store.technician_by_token(&[3; 32], T0).await.unwrap(), None);
    assert_eq!(store.enable_technician(ada.id).await.unwrap(), 1);
    assert_eq!(store.technician_by_token(&[3; 32], T0).await.unwrap(), None);
    let t = store.technician_by_id(ada.id).await.unwrap().unwrap();
    assert_eq!(t.disabled_at_ms, None);
    store
        .insert_token(&[4; 32], ada.id, T0, T0 + DAY)
        .await
        .unwrap();
    assert!(
        store
            .technician_by_token(&[4; 32], T0)
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        store.disable_technician(ada.id + 100, T0).await,
        Err(StoreError::NotFound(_))
    ));

    // A new password: the lock and the count go, and so do the tokens.
    for _ in 0..3 {
        store
            .record_login_failure(ada.id, &ada.email, "x", T0, 3, HOUR)
            .await
            .unwrap();
    }
    store
        .record_login_failure(ada.id, &ada.email, "x", T0, 3, HOUR)
        .await
        .unwrap();
    let t = store.technician_by_id(ada.id).await.unwrap().unwrap();
    assert_eq!((t.locked_until_ms, t.failed_logins), (Some(T0 + HOUR), 1));
    assert_eq!(
        store
            .reset_password(ada.id, "scrypt$new", T0)
            .await
            .unwrap(),
        1
    );
    let t = store.technician_by_id(ada.id).await.unwrap().unwrap();
    assert_eq!(
        (t.password_hash.as_str(), t.locked_until_ms, t.failed_logins),
        ("scrypt$new", None, 0)
    );
    assert_eq!(store.technician_by_token(&[4; 32], T0).await.unwrap(), None);
    store
        .record_login_refused(&ada.email, "x", T0)
        .await
        .unwrap();
    let t = store.technician_by_id(ada.id).await.unwrap().unwrap();
    assert_eq!(
        t.failed_logins, 0,
        "a refusal of a right password is no failure"
    );

    // Groups: added, listed with their people, moved between, removed
    // only when empty.
    let g = store
        .add_group("night", Permissions::SYSTEM_INFO)
        .await
        .unwrap();
    assert!(g.technicians.is_empty());
    assert!(matches!(
        store.add_group(" night ", Permissions::ALL).await,
        Err(StoreError::Conflict(m)) if m.contains("night")
    ));
    let bob = store
        .add_technician(tech("bob@example.com", "support"), T0)
        .await
        .unwrap();
    let moved = store.move_technician(bob.id, "night").await.unwrap();
    assert_eq!(
        (moved.group.as_str(), moved.permissions),
        ("night", Permissions::SYSTEM_INFO)
    );
    assert!(matches!(
        store.move_technician(bob.id, "nowhere").await,
        Err(StoreError::NotFound(m)) if m.contains("nowhere")
    ));
    let groups = store.list_groups().await.unwrap();
    let names: Vec<_> = groups
        .iter()
        .map(|g| (g.name.as_str(), g.technicians.clone()))
        .collect();
    assert_eq!(
        names,
        [
            ("night", vec!["bob@example.com".to_owned()]),
            ("support", vec!["ada@example.com".to_owned()])
        ]
    );
    assert_eq!(store.group("night").await.unwrap().unwrap(), groups[0]);
    assert_eq!(store.group("nowhere").await.unwrap(), None);
    assert_eq!(
        store.remove_group("night").await.unwrap(),
        GroupRemoval::NotEmpty(vec!["bob@example.com".into()])
    );
    store.move_technician(bob.id, "support").await.unwrap();
    assert_eq!(
        store.remove_group("night").await.unwrap(),
        GroupRemoval::Removed
    );
    assert!(matches!(
        store.remove_group("night").await,
        Err(StoreError::NotFound(_))
    ));

    // Removing: refused while an end user waits in a session of theirs,
    // and while one ended moments ago; otherwise the open sessions are
    // ended, then their rows, the tokens and the technician go. The audit
    // trail stays.
    let now = T0 + 10 * DAY;
    let waiting = session(bob.id, now);
    let wg = waiting.guid;
    store.create_session(waiting).await.unwrap();
    assert!(
        store
            .mark_waiting(&wg, "n1", "n1:443", "a", now)
            .await
            .unwrap()
    );
    let open = session(bob.id, now);
    let og = open.guid;
    store.create_session(open).await.unwrap();
    store
        .insert_token(&[5; 32], bob.id, now, now + DAY)
        .await
        .unwrap();
    store
        .audit(now, Some(&wg), &bob.email, "created", "x")
        .await
        .unwrap();
    assert_eq!(
        store
            .remove_technician(bob.id, "removed", now, 30_000)
            .await
            .unwrap(),
        Removal::Connected(vec![(wg, SessionState::Waiting)])
    );
    assert!(store.end_session(&wg, "by admin", now).await.unwrap());
    assert_eq!(
        store
            .remove_technician(bob.id, "removed", now + 29_000, 30_000)
            .await
            .unwrap(),
        Removal::RecentlyEnded(vec![(wg, now)])
    );
    assert_eq!(
        store.session(&og).await.unwrap().unwrap().state,
        SessionState::Created,
        "a refusal changes nothing"
    );
    assert_eq!(
        store
            .remove_technician(bob.id, "removed", now + 31_000, 30_000)
            .await
            .unwrap(),
        Removal::Removed {
            ended: vec![og],
            sessions_deleted: 2,
            tokens_revoked: 1
        }
    );
    assert_eq!(store.technician_by_id(bob.id).await.unwrap(), None);
    assert_eq!(store.session(&og).await.unwrap(), None);
    assert_eq!(
        store.technician_by_token(&[5; 32], now).await.unwrap(),
        None
    );
    assert_eq!(store.audit_log(Some(&wg), 10).await.unwrap().len(), 1);
    assert!(matches!(
        store.remove_technician(bob.id, "again", now, 0).await,
        Err(StoreError::NotFound(_))
    ));
    // The e-mail may be given to someone new.
    store
        .add_technician(tech("bob@example.com", "support"), now)
        .await
        .unwrap();
    store.close().await;
}

async fn retention(url: &str) {
    let store = Store::open(url).await.unwrap();
    let t = store
        .add_technician(tech("ret@example.com", "support"), T0)
        .await
        .unwrap();
    // Five sessions ended long ago, one ended lately, one never ended (and
    // older than all), one waiting.
    let mut old = Vec::new();
    for i in 0..5 {
        let s = session(t.id, T0);
        old.push(s.guid);
        store.create_session(s).await.unwrap();
        assert!(
            store
                .end_session(&old[i], "done", T0 + i as i64)
                .await
                .unwrap()
        );
    }
    let recent = session(t.id, T0);
    let rg = recent.guid;
    store.create_session(recent).await.unwrap();
    store.end_session(&rg, "done", T0 + 30 * DAY).await.unwrap();
    let open = session(t.id, T0 - DAY);
    let og = open.guid;
    store.create_session(open).await.unwrap();
    let waiting = session(t.id, T0 - DAY);
    let wg = waiting.guid;
    store.create_session(waiting).await.unwrap();
    store.mark_waiting(&wg, "n", "n:1", "a", T0).await.unwrap();
    for i in 0..7 {
        store
            .audit(T0 + i, None, "admin", "x", "old")
            .await
            .unwrap();
    }
    store
        .audit(T0 + 30 * DAY, None, "admin", "x", "new")
        .await
        .unwrap();

    let cutoff = T0 + 10 * DAY;
    let counted = store.count_prunable(cutoff).await.unwrap();
    assert_eq!(
        counted,
        Pruned {
            sessions: 5,
            audit: 7
        }
    );
    // Batches of two: several rounds, nothing missed.
    let pruned = store.prune_in_batches(cutoff, 2).await.unwrap();
    assert_eq!(pruned, counted);
    for g in &old {
        assert_eq!(store.session(g).await.unwrap(), None);
    }
    for (g, state) in [
        (rg, SessionState::Ended),
        (og, SessionState::Created),
        (wg, SessionState::Waiting),
    ] {
        assert_eq!(store.session(&g).await.unwrap().unwrap().state, state);
    }
    let left: Vec<_> = store
        .audit_log(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.detail)
        .collect();
    assert_eq!(left, ["new"]);
    assert_eq!(store.prune(cutoff).await.unwrap(), Pruned::default());
    store.close().await;
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Runs `scenario` on a fresh SQLite file.
async fn on_sqlite<F: std::future::Future<Output = ()>>(
    tag: &str,
    scenario: impl FnOnce(String) -> F,
) {
    let dir = std::env::temp_dir().join(format!(
        "lifeline-store-{tag}-{}-{}",
        std::process::id(),
        nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    sqlx::any::install_default_drivers();
    scenario(format!("sqlite:{}?mode=rwc", dir.join("s.db").display())).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `scenario` on a database of its own at `LIFELINE_TEST_PG` (default
/// the machine's own PostgreSQL), dropped afterwards; an unreachable
/// server fails the test.
async fn on_postgres<F>(tag: &str, scenario: impl FnOnce(String) -> F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let admin = std::env::var("LIFELINE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let name = format!("lifeline_store_{tag}_{}", nanos());
    let mut conn = sqlx::postgres::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is unreachable: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, query) = admin.split_once('?').unwrap_or((&admin, ""));
    let base = base.rfind('/').map_or(base, |i| &base[..i]);
    let url = if query.is_empty() {
        format!("{base}/{name}")
    } else {
        format!("{base}/{name}?{query}")
    };
    sqlx::any::install_default_drivers();
    let result = tokio::spawn(scenario(url)).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
}

#[tokio::test]
async fn lifecycle_on_sqlite() {
    on_sqlite("lifecycle", |url| async move { lifecycle(&url).await }).await;
}

#[tokio::test]
async fn lifecycle_on_postgres() {
    on_postgres("lifecycle", |url| async move { lifecycle(&url).await }).await;
}

#[tokio::test]
async fn retention_on_sqlite() {
    on_sqlite("retention", |url| async move { retention(&url).await }).await;
}

#[tokio::test]
async fn retention_on_postgres() {
    on_postgres("retention", |url| async move { retention(&url).await }).await;
}
