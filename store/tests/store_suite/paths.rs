//! What happens to a session's path: node restarts, going direct, the relay closing, resumptions, relayed bytes.

use super::*;

on_both_backends!(
    reset_node_sessions,
    direct_sessions,
    relay_close_races_path_reports,
    resumptions,
    relayed_bytes,
);

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
