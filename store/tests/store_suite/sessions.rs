//! Sessions: creation and labels, the applet secret, the state machine.

use super::*;

on_both_backends!(
    session_create_and_labels,
    label_race_has_one_winner,
    applet_secret_is_taken_once,
    state_machine,
    endings_are_heard_by_every_store,
    a_proven_applet_takes_its_session_to_another_node,
    waiting_marks_made_together_each_get_their_own_answer,
    pairings_marked_together_and_the_places_of_many_sessions,
    look_ups_made_together_agree_with_the_whole_record,
);

/// Applets and consoles arriving at once read their sessions together
/// (`session_access`, more than one statement holds): each gets what the
/// whole record says of its own session — state, expiry, keys, owner,
/// pairing time — a GUID asked twice gets it twice, and an unknown GUID
/// gets `None`.
async fn look_ups_made_together_agree_with_the_whole_record(db: &TestDb) {
    let store = db.open().await;
    let t = some_tech(&store, "access@example.com").await;
    let mut guids = Vec::new();
    for i in 0..300i64 {
        let s = new_session(t.id, "", T0 + i);
        let g = s.guid;
        store.create_session(s).await.unwrap();
        match i % 4 {
            0 => {}
            1 => assert!(
                store
                    .mark_waiting_admitted(
                        &g,
                        "node-a",
                        "x:443",
                        "198.51.100.1:5000",
                        Some(&[0xad; 32]),
                        T0 + 400
                    )
                    .await
                    .unwrap()
            ),
            2 => {
                assert!(
                    store
                        .mark_waiting(&g, "node-a", "x:443", "198.51.100.1:5000", T0 + 400)
                        .await
                        .unwrap()
                );
                assert!(store.mark_paired(&g, T0 + 401 + i).await.unwrap());
            }
            _ => assert!(store.end_session(&g, "gone", T0 + 402).await.unwrap()),
        }
        guids.push(g);
    }
    assert!(matches!(
        store
            .reissue_applet(&guids[0], &[2; 32], &[0xa2; 32], T0 + 500)
            .await
            .unwrap(),
        lifeline_store::Reissue::Reissued(_)
    ));
    let unknown: Vec<SessionGuid> = (0..5).map(|_| random_guid()).collect();
    let mut looks = tokio::task::JoinSet::new();
    for g in guids.iter().chain(&guids[..20]).chain(&unknown).copied() {
        let store = store.clone();
        looks.spawn(async move { (g, store.session_access(&g).await.unwrap()) });
    }
    let mut answers = 0;
    while let Some(r) = looks.join_next().await {
        let (g, access) = r.unwrap();
        answers += 1;
        let Some(whole) = store.session(&g).await.unwrap() else {
            assert!(unknown.contains(&g) && access.is_none(), "{g}");
            continue;
        };
        let access = access.unwrap_or_else(|| panic!("{g} not found"));
        assert_eq!(access.state, whole.state, "{g}");
        assert_eq!(access.expires_at_ms, whole.expires_at_ms, "{g}");
        assert_eq!(access.admission_key, whole.admission_key, "{g}");
        assert_eq!(access.technician_id, whole.technician_id, "{g}");
        assert_eq!(access.queue_group_id, whole.queue_group_id, "{g}");
        assert_eq!(access.console_pin, whole.console_pin, "{g}");
        assert_eq!(access.paired_at_ms, whole.paired_at_ms, "{g}");
    }
    assert_eq!(answers, 325);
    // The look-up sees what changed since, and the reissued key.
    let first = store.session_access(&guids[0]).await.unwrap().unwrap();
    assert_eq!(first.admission_key, Some([0xa2; 32]));
    assert_eq!(first.state, SessionState::Created);
    let paired = store.session_access(&guids[2]).await.unwrap().unwrap();
    assert_eq!(
        (paired.state, paired.paired_at_ms),
        (SessionState::Paired, Some(T0 + 403))
    );
    assert_eq!(
        store
            .session_access(&guids[3])
            .await
            .unwrap()
            .unwrap()
            .state,
        SessionState::Ended
    );
}

/// Consoles pair with many waiting sessions at once, so their "paired
/// now" marks are applied together: each caller gets its own answer (a
/// second mark of a session already paired, and an unknown session, get
/// `false`). Then the store tells where more sessions stand than one
/// statement asks about (`places`), and which wait on each node
/// (`waiting_on`), as a node's check of its waiting applets asks.
async fn pairings_marked_together_and_the_places_of_many_sessions(db: &TestDb) {
    let store = db.open().await;
    let t = some_tech(&store, "places@example.com").await;
    let key = [0xad; 32];
    let n = lifeline_store::PLACES_PER_STATEMENT + 20;
    let mut guids = Vec::new();
    for i in 0..n {
        let s = new_session(t.id, "", T0);
        let g = s.guid;
        store.create_session(s).await.unwrap();
        let node = if i % 2 == 0 { "node-a" } else { "node-b" };
        let from = format!("198.51.100.{}:{}", i % 200, 5000 + i);
        assert!(
            store
                .mark_waiting_admitted(&g, node, "x:443", &from, Some(&key), T0 + 1)
                .await
                .unwrap()
        );
        guids.push(g);
    }
    let unknown: Vec<SessionGuid> = (0..5).map(|_| random_guid()).collect();
    // Pair the first 100 (ten of them twice), plus the unknown ones.
    let mut marks = tokio::task::JoinSet::new();
    for g in guids[..100]
        .iter()
        .chain(&guids[..10])
        .chain(&unknown)
        .copied()
    {
        let store = store.clone();
        marks.spawn(async move { (g, store.mark_paired(&g, T0 + 2).await.unwrap()) });
    }
    let mut paired = std::collections::HashMap::new();
    while let Some(r) = marks.join_next().await {
        let (g, ok) = r.unwrap();
        *paired.entry(g).or_insert(0) += u32::from(ok);
    }
    for g in &guids[..100] {
        assert_eq!(paired[g], 1, "{g} is marked paired exactly once");
    }
    for g in &unknown {
        assert_eq!(paired[g], 0, "unknown {g}");
    }
    assert!(
        store
            .end_session(&guids[100], "gone", T0 + 3)
            .await
            .unwrap()
    );

    let asked: Vec<SessionGuid> = guids.iter().chain(&unknown).copied().collect();
    let places = store.places(&asked).await.unwrap();
    assert_eq!(places.len(), n, "every known session, no unknown one");
    let by_guid: std::collections::HashMap<_, _> = places.iter().map(|p| (p.guid, p)).collect();
    for (i, g) in guids.iter().enumerate() {
        let p = by_guid[g];
        let expected = match i {
            0..100 => SessionState::Paired,
            100 => SessionState::Ended,
            _ => SessionState::Waiting,
        };
        assert_eq!(p.state, expected, "session {i}");
        if i != 100 {
            let node = if i % 2 == 0 { "node-a" } else { "node-b" };
            assert_eq!(p.waiting_node.as_deref(), Some(node), "session {i}");
        }
    }
    assert!(store.places(&[]).await.unwrap().is_empty());
    // What waits on each node: neither the paired nor the ended.
    for (node, parity) in [("node-a", 0), ("node-b", 1)] {
        let expected: std::collections::HashSet<SessionGuid> = guids
            .iter()
            .enumerate()
            .filter(|(i, _)| *i > 100 && i % 2 == parity)
            .map(|(_, g)| *g)
            .collect();
        assert_eq!(store.waiting_on(node).await.unwrap(), expected, "{node}");
    }
    assert!(store.waiting_on("node-c").await.unwrap().is_empty());
}

/// Applets of many sessions arrive at once, so their "waiting here" marks
/// are applied together: each caller gets its own answer. A mark with a
/// wrong key for a session marked rightly at the same moment is refused,
/// though both may have queued for one statement.
async fn waiting_marks_made_together_each_get_their_own_answer(db: &TestDb) {
    let store = db.open().await;
    let t = some_tech(&store, "together@example.com").await;
    let mut guids = Vec::new();
    for _ in 0..60 {
        let s = new_session(t.id, "", T0);
        guids.push(s.guid);
        store.create_session(s).await.unwrap();
    }
    let mut marks = tokio::task::JoinSet::new();
    for (i, g) in guids.iter().copied().enumerate() {
        // (which, key) — every session rightly on node-a; every third also
        // with a wrong key on node-b at the same moment.
        let mut tries = vec![("right", [0xad; 32])];
        if i % 3 == 0 {
            tries.push(("wrong", [0xee; 32]));
        }
        for (which, key) in tries {
            let store = store.clone();
            let node = if which == "right" { "node-a" } else { "node-b" };
            marks.spawn(async move {
                let from = format!("198.51.100.{}:{}", i % 200, 5000 + i);
                let ok = store
                    .mark_waiting_admitted(&g, node, "x:443", &from, Some(&key), T0 + 1)
                    .await
                    .unwrap();
                (g, which, ok)
            });
        }
    }
    let mut answers = 0;
    while let Some(r) = marks.join_next().await {
        let (g, which, ok) = r.unwrap();
        assert_eq!(ok, which == "right", "{g} {which}");
        answers += 1;
    }
    assert_eq!(answers, 80);
    // Looked up at once: each asker gets its own session (twice for the
    // same one), and an unknown GUID gets none.
    let mut lookups = tokio::task::JoinSet::new();
    let unknown: Vec<SessionGuid> = (0..5).map(|_| random_guid()).collect();
    for g in guids.iter().chain(&guids[..10]).chain(&unknown).copied() {
        let store = store.clone();
        lookups.spawn(async move { (g, store.session(&g).await.unwrap()) });
    }
    let mut looked = 0;
    while let Some(r) = lookups.join_next().await {
        let (g, found) = r.unwrap();
        match found {
            Some(w) => assert_eq!(
                (w.guid, w.state, w.waiting_node.as_deref()),
                (g, SessionState::Waiting, Some("node-a"))
            ),
            None => assert!(unknown.contains(&g), "{g} not found"),
        }
        looked += 1;
    }
    assert_eq!(looked, 75);
}

/// A session waits on node-a, which dies. Its applet proves its key on
/// node-b and the session waits there; a connection without the proof, or
/// with a key the session no longer has, cannot move it.
async fn a_proven_applet_takes_its_session_to_another_node(db: &TestDb) {
    let store = db.open().await;
    let t = some_tech(&store, "moves@example.com").await;
    let s = new_session(t.id, "", T0);
    let g = s.guid;
    store.create_session(s).await.unwrap();
    let key = [0xad; 32];
    assert!(
        store
            .mark_waiting_admitted(
                &g,
                "node-a",
                "a:443",
                "198.51.100.7:5000",
                Some(&key),
                T0 + 1
            )
            .await
            .unwrap()
    );
    let on_a = store.session(&g).await.unwrap().unwrap();
    for (why, with) in [("no proof", None), ("another key", Some(&[0xee; 32]))] {
        assert!(
            !store
                .mark_waiting_admitted(&g, "node-b", "b:443", "198.51.100.7:6000", with, T0 + 2)
                .await
                .unwrap(),
            "{why}"
        );
        assert_eq!(store.session(&g).await.unwrap().unwrap(), on_a, "{why}");
    }
    assert!(
        store
            .mark_waiting_admitted(
                &g,
                "node-b",
                "b:443",
                "198.51.100.7:6000",
                Some(&key),
                T0 + 3
            )
            .await
            .unwrap()
    );
    let on_b = store.session(&g).await.unwrap().unwrap();
    assert_eq!(
        (
            on_b.state,
            on_b.waiting_node.as_deref(),
            on_b.waiting_node_addr.as_deref(),
            on_b.waiting_from.as_deref(),
            on_b.waiting_since_ms
        ),
        (
            SessionState::Waiting,
            Some("node-b"),
            Some("b:443"),
            Some("198.51.100.7:6000"),
            Some(T0 + 3)
        )
    );
    // The dead node's connection, cleared late, changes nothing.
    store.clear_waiting(&g, "198.51.100.7:5000").await.unwrap();
    assert_eq!(store.session(&g).await.unwrap().unwrap(), on_b);
}

/// Every store on the database hears a session end, however it ended (on
/// PostgreSQL: another node's store here); SQLite has one writer and
/// nothing to watch.
async fn endings_are_heard_by_every_store(db: &TestDb) {
    let store = db.open().await;
    let other_node = db.open().await;
    let Some(mut endings) = other_node.watch_endings().await.unwrap() else {
        assert_eq!(db.dialect, Dialect::Sqlite);
        return;
    };
    assert_eq!(db.dialect, Dialect::Postgres);
    let t = some_tech(&store, "endings@example.com").await;
    let (first, second) = (new_session(t.id, "", T0), new_session(t.id, "", T0));
    let (g1, g2) = (first.guid, second.guid);
    store.create_session(first).await.unwrap();
    store.create_session(second).await.unwrap();
    assert!(store.end_session(&g1, "done", T0 + 1).await.unwrap());
    // Ending an ended session again says nothing new.
    assert!(!store.end_session(&g1, "again", T0 + 2).await.unwrap());
    assert!(store.end_session(&g2, "done too", T0 + 3).await.unwrap());
    for want in [g1, g2] {
        let got = tokio::time::timeout(Duration::from_secs(10), endings.next())
            .await
            .expect("no ending heard within 10 s")
            .unwrap();
        assert_eq!(got, want);
    }
    store.close().await;
    other_node.close().await;
}

async fn session_create_and_labels(db: &TestDb) {
    let store = db.open().await;
    let t = some_tech(&store, "labels@example.com").await;
    let other = some_tech(&store, "other@example.com").await;

    let s = new_session(t.id, "printer", T0);
    let rec = store.create_session(s.clone()).await.unwrap();
    assert_eq!(rec.guid, s.guid);
    assert_eq!(rec.technician_id, Some(t.id));
    assert_eq!(rec.technician_email, Some(t.email.clone()));
    assert_eq!(rec.technician_name, Some(t.name.clone()));
    assert_eq!(rec.label, "printer");
    assert_eq!(rec.console_pin, Some(s.console_pin));
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
