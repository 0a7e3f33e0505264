//! Technicians, the lockout, the login history and tokens.

use super::*;

on_both_backends!(
    technicians,
    lockout_counting,
    login_history_is_bounded,
    tokens,
);

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
