//! The schema: migrations, a newer schema refused, concurrent opens.

use super::*;

on_both_backends!(
    migrations_are_idempotent,
    newer_schema_is_refused,
    concurrent_opens_migrate_once,
);

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
