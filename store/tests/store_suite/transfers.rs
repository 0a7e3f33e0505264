//! Handing a running session to another technician: offer, accept with
//! the new console's key, complete — each step only from where it may.

use super::*;
use lifeline_store::Transfer;

on_both_backends!(a_running_session_is_offered_accepted_and_handed_over,);

async fn a_running_session_is_offered_accepted_and_handed_over(db: &TestDb) {
    let store = db.open().await;
    let ada = some_tech(&store, "ada@example.com").await;
    let grace = some_tech(&store, "grace@example.com").await;
    let s = store
        .create_session(new_session(ada.id, "printer", T0))
        .await
        .unwrap();
    let g = s.guid;
    let offer = |to: Option<i64>| to.map(|id| (id, [0x77; 32]));
    // Only a running session can be offered.
    assert_eq!(
        store
            .offer_transfer(&g, ada.id, offer(Some(grace.id)))
            .await
            .unwrap(),
        Transfer::NotYours
    );
    assert_eq!(
        store.take_applet_secret(&g).await.unwrap(),
        Some([0x5e; 32])
    );
    assert!(
        store
            .mark_waiting(&g, "n1", "n1:1", "192.0.2.1:1", T0 + 1)
            .await
            .unwrap()
    );
    assert!(store.mark_paired(&g, T0 + 2).await.unwrap());
    // Only by its holder.
    assert_eq!(
        store
            .offer_transfer(&g, grace.id, offer(Some(ada.id)))
            .await
            .unwrap(),
        Transfer::NotYours
    );
    let Transfer::Done(r) = store
        .offer_transfer(&g, ada.id, offer(Some(grace.id)))
        .await
        .unwrap()
    else {
        panic!("the holder's offer was refused");
    };
    assert_eq!(r.transfer_to, Some(grace.id));
    assert_eq!(r.transfer_to_email.as_deref(), Some("grace@example.com"));
    assert_eq!(r.transfer_pin, None);
    // Offered sessions show in the colleague's list.
    assert!(
        store
            .sessions_of(grace.id, false)
            .await
            .unwrap()
            .iter()
            .any(|x| x.guid == g),
        "the offer is in Grace's list"
    );
    // Nobody completes an offer that was not accepted; only Grace accepts.
    assert_eq!(
        store.complete_transfer(&g, ada.id).await.unwrap(),
        Transfer::NotYours
    );
    assert_eq!(
        store
            .accept_transfer(&g, ada.id, &[0x99; 32])
            .await
            .unwrap(),
        Transfer::NotYours
    );
    let Transfer::Done(r) = store
        .accept_transfer(&g, grace.id, &[0x99; 32])
        .await
        .unwrap()
    else {
        panic!("Grace's accept was refused");
    };
    assert_eq!(r.transfer_pin, Some([0x99; 32]));
    // The secret the holder left is hers to take, once.
    assert_eq!(
        store.take_applet_secret(&g).await.unwrap(),
        Some([0x77; 32])
    );
    assert_eq!(store.take_applet_secret(&g).await.unwrap(), None);
    // Only the holder completes it; then the session and its key are Grace's.
    assert_eq!(
        store.complete_transfer(&g, grace.id).await.unwrap(),
        Transfer::NotYours
    );
    let Transfer::Done(r) = store.complete_transfer(&g, ada.id).await.unwrap() else {
        panic!("the holder could not complete the handover");
    };
    assert_eq!(r.technician_id, Some(grace.id));
    assert_eq!(r.console_pin, Some([0x99; 32]));
    assert_eq!((r.transfer_to, r.transfer_pin), (None, None));
    assert!(store.sessions_of(ada.id, false).await.unwrap().is_empty());
    // Ada can no longer offer it; Grace can, and can withdraw it.
    assert_eq!(
        store
            .offer_transfer(&g, ada.id, offer(Some(grace.id)))
            .await
            .unwrap(),
        Transfer::NotYours
    );
    assert!(matches!(
        store
            .offer_transfer(&g, grace.id, offer(Some(ada.id)))
            .await
            .unwrap(),
        Transfer::Done(_)
    ));
    let Transfer::Done(r) = store.offer_transfer(&g, grace.id, None).await.unwrap() else {
        panic!("the withdrawal was refused");
    };
    assert_eq!(r.transfer_to, None);
    assert_eq!(
        store.take_applet_secret(&g).await.unwrap(),
        None,
        "withdrawn with its secret"
    );
    // An ended session is offered to nobody.
    assert!(store.end_session(&g, "done", T0 + 3).await.unwrap());
    assert_eq!(
        store
            .offer_transfer(&g, grace.id, offer(Some(ada.id)))
            .await
            .unwrap(),
        Transfer::NotYours
    );
}
