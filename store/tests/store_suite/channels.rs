//! Channels: their sessions wait in a group queue; picking is atomic.

use super::*;
use lifeline_store::{NewChannelSession, Pick};

on_both_backends!(
    channel_sessions_queue_and_pick,
    racing_nodes_pick_each_session_once,
);

fn visit(token: &str, name: &str, at: i64) -> NewChannelSession {
    NewChannelSession {
        guid: random_guid(),
        channel_token: token.to_owned(),
        name: name.to_owned(),
        problem: format!("{name}'s printer"),
        applet_secret: [0x5e; 32],
        admission_key: [0xad; 32],
        created_at_ms: at,
        expires_at_ms: at + HOUR,
    }
}

/// A visit's session, its applet connected (waiting since `at`).
async fn waiting_visit(store: &Store, token: &str, name: &str, at: i64) -> SessionGuid {
    let rec = store
        .create_channel_session(visit(token, name, at))
        .await
        .unwrap();
    assert_eq!((rec.technician_id, rec.console_pin), (None, None));
    assert!(
        store
            .mark_waiting(&rec.guid, "n1", "n1:1", "192.0.2.1:1", at)
            .await
            .unwrap()
    );
    rec.guid
}

async fn channel_sessions_queue_and_pick(db: &TestDb) {
    let store = db.open().await;
    let ada = some_tech(&store, "ada@example.com").await;
    let other = store
        .add_technician(new_tech("bob@example.com", "elsewhere"), T0)
        .await
        .unwrap();
    let c = store
        .add_channel("printers", "support", "tok1", true, T0)
        .await
        .unwrap();
    assert_eq!((c.group.as_str(), c.ask_details), ("support", true));
    assert!(matches!(
        store
            .add_channel("printers", "support", "tok2", false, T0)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.add_channel("x", "nobody", "tok3", false, T0).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.channel_by_token("tok1").await.unwrap(),
        Some(c.clone())
    );
    // A session not yet connected is not in the queue.
    let idle = store
        .create_channel_session(visit("tok1", "idle", T0))
        .await
        .unwrap();
    let second = waiting_visit(&store, "tok1", "second", T0 + 20).await;
    let first = waiting_visit(&store, "tok1", "first", T0 + 10).await;
    let queue = store.group_queue(ada.group_id, T0 + 30).await.unwrap();
    let names: Vec<_> = queue.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(queue[0].channel.as_deref(), Some("printers"));
    assert_eq!(queue[0].problem, "first's printer");
    assert!(
        store
            .group_queue(other.group_id, T0 + 30)
            .await
            .unwrap()
            .is_empty()
    );
    // Another group's technician cannot pick it; an idle one is not there.
    assert_eq!(
        store
            .pick_session(&first, other.id, other.group_id, &[1; 32], T0 + 31)
            .await
            .unwrap(),
        Pick::NotInQueue
    );
    assert_eq!(
        store
            .pick_session(&idle.guid, ada.id, ada.group_id, &[1; 32], T0 + 31)
            .await
            .unwrap(),
        Pick::NotInQueue
    );
    // The next is the one waiting longest; then it is Ada's, with her key.
    let got = store
        .pick_next(ada.id, ada.group_id, &[7; 32], T0 + 32)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.guid, first);
    assert_eq!(got.technician_id, Some(ada.id));
    assert_eq!(got.technician_name.as_deref(), Some(ada.name.as_str()));
    assert_eq!(got.console_pin, Some([7; 32]));
    assert_eq!(
        store
            .pick_session(&first, ada.id, ada.group_id, &[8; 32], T0 + 33)
            .await
            .unwrap(),
        Pick::Taken
    );
    assert_eq!(store.sessions_of(ada.id, false).await.unwrap().len(), 1);
    // Expired sessions leave the queue.
    assert!(
        store
            .group_queue(ada.group_id, T0 + HOUR + 21)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .pick_next(ada.id, ada.group_id, &[7; 32], T0 + HOUR + 21)
            .await
            .unwrap(),
        None
    );
    let _ = second;
    // A group with a channel cannot be removed (even when empty).
    let empty = store
        .add_channel("empty", "elsewhere", "tok4", false, T0)
        .await
        .unwrap();
    store
        .remove_technician(other.id, "test", T0, 0)
        .await
        .unwrap();
    assert!(matches!(
        store.remove_group(&empty.group).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.remove_channel("empty").await.unwrap());
    assert!(store.remove_channel("printers").await.unwrap());
    assert!(!store.remove_channel("printers").await.unwrap());
    assert_eq!(store.channel_by_token("tok1").await.unwrap(), None);
    store.close().await;
}

/// Two stores on one database (on PostgreSQL: two gateway nodes), each
/// with consoles racing to take the next end user: every session is
/// picked exactly once.
async fn racing_nodes_pick_each_session_once(db: &TestDb) {
    let node_a = db.open().await;
    let node_b = db.open().await;
    let mut techs = Vec::new();
    for i in 0..4 {
        techs.push(some_tech(&node_a, &format!("t{i}@example.com")).await);
    }
    node_a
        .add_channel("front", "support", "front", false, T0)
        .await
        .unwrap();
    const VISITS: usize = 40;
    let mut guids = Vec::new();
    for i in 0..VISITS {
        guids.push(waiting_visit(&node_a, "front", &format!("v{i}"), T0 + i as i64).await);
    }
    let mut racers = Vec::new();
    for (i, t) in techs.iter().enumerate() {
        let store = if i % 2 == 0 {
            node_a.clone()
        } else {
            node_b.clone()
        };
        let t = t.clone();
        racers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(r) = store
                .pick_next(t.id, t.group_id, &[i as u8; 32], T0 + 100)
                .await
                .unwrap()
            {
                assert_eq!(r.technician_id, Some(t.id));
                mine.push(r.guid);
            }
            mine
        }));
    }
    // And everyone at once for the same single session, too.
    let mut all = Vec::new();
    for r in racers {
        all.extend(r.await.unwrap());
    }
    all.sort();
    guids.sort();
    assert_eq!(all, guids, "each visit picked exactly once");
    let last = waiting_visit(&node_a, "front", "last", T0 + 200).await;
    let mut wins = 0;
    let mut picks = Vec::new();
    for (i, t) in techs.iter().enumerate() {
        let store = if i % 2 == 0 {
            node_a.clone()
        } else {
            node_b.clone()
        };
        let t = t.clone();
        picks.push(tokio::spawn(async move {
            store
                .pick_session(&last, t.id, t.group_id, &[9; 32], T0 + 201)
                .await
                .unwrap()
        }));
    }
    for p in picks {
        match p.await.unwrap() {
            Pick::Picked(_) => wins += 1,
            Pick::Taken => {}
            Pick::NotInQueue => panic!("the session left the queue"),
        }
    }
    assert_eq!(wins, 1, "exactly one console wins");
    node_a.close().await;
    node_b.close().await;
}
