//! Nodes, the audit trail, and rows the store cannot read.

use super::*;

on_both_backends!(
    nodes,
    audit_order_filter_limit,
    capped_audit_counts_its_events_per_session,
    corrupt_rows_are_reported,
    audit_rows_written_together_are_each_committed,
);

/// Many tasks audit at once, so rows are inserted in batches: every call
/// returns only once its row is there, each task's rows keep its order,
/// and (on PostgreSQL, which refuses a NUL in text) a row that cannot be
/// written fails alone, not with the rows batched beside it.
async fn audit_rows_written_together_are_each_committed(db: &TestDb) {
    let store = db.open().await;
    let (tasks, each) = (20, 40);
    let mut writers = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let store = store.clone();
        writers.spawn(async move {
            for k in 0..each {
                store
                    .audit(T0, None, &format!("task {t}"), "step", &k.to_string())
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(r) = writers.join_next().await {
        r.unwrap();
    }
    let log = store.audit_log(None, 10_000).await.unwrap();
    assert_eq!(log.len(), tasks * each);
    for t in 0..tasks {
        let steps: Vec<usize> = log
            .iter()
            .filter(|r| r.actor == format!("task {t}"))
            .map(|r| r.detail.parse().unwrap())
            .collect();
        assert_eq!(steps, (0..each).collect::<Vec<_>>(), "task {t}");
    }

    if db.dialect == Dialect::Postgres {
        let mut writers = tokio::task::JoinSet::new();
        for k in 0..50 {
            let store = store.clone();
            writers.spawn(async move {
                let detail = if k == 25 {
                    "bad \0 row".to_owned()
                } else {
                    format!("good {k}")
                };
                (
                    k,
                    store
                        .audit(T0, None, "mixed", "step", &detail)
                        .await
                        .is_ok(),
                )
            });
        }
        while let Some(r) = writers.join_next().await {
            let (k, ok) = r.unwrap();
            assert_eq!(ok, k != 25, "row {k}");
        }
        let mixed = store
            .audit_log(None, 10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.actor == "mixed")
            .count();
        assert_eq!(mixed, 49);
    }
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

async fn capped_audit_counts_its_events_per_session(db: &TestDb) {
    let store = db.open().await;
    let (a, b) = (random_guid(), random_guid());
    let counted = ["consent", "file", "work"];
    let capped = |guid, event: &'static str, detail: String| {
        let store = &store;
        async move {
            store
                .audit_capped(T0, &guid, "tech@example.com", event, &detail, &counted, 3)
                .await
                .unwrap()
        }
    };
    // Other events of the session do not count.
    for _ in 0..5 {
        store
            .audit(T0, Some(&a), "gateway", "path", "relay")
            .await
            .unwrap();
    }
    assert!(capped(a, "consent", "1".into()).await);
    assert!(capped(a, "file", "2".into()).await);
    // Another session's do not either.
    for i in 0..4 {
        assert_eq!(capped(b, "work", format!("b{i}")).await, i < 3);
    }
    assert!(capped(a, "work", "3".into()).await);
    assert!(!capped(a, "work", "4".into()).await);
    assert!(!capped(a, "consent", "5".into()).await);
    // Beyond the cap nothing was written; other events still are.
    store
        .audit(T0, Some(&a), "gateway", "ended", "")
        .await
        .unwrap();
    let log = store.audit_log(Some(&a), 100).await.unwrap();
    let details: Vec<_> = log
        .iter()
        .filter(|e| counted.contains(&e.event.as_str()))
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(details, ["1", "2", "3"]);
    assert_eq!(log.len(), 9);
    assert_eq!(log[5].actor, "tech@example.com");
    assert_eq!(log[5].session, Some(a));
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
