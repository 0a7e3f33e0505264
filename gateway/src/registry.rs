//! Which sessions have an applet or a console on this node right now.
//!
//! The registry enforces "exactly one applet and one console per GUID" on a
//! node (the store's state machine does the same across nodes) and hands a
//! waiting applet's connection to the console that pairs with it. Entries
//! are removed by the tickets' `Drop`, so a task that dies cannot leave a
//! stale claim behind.
//!
//! A new connection of an applet that proved it holds the session's
//! applet file may take over from a *waiting* one ([`Registry::register_applet`]
//! with `take_over`): the old connection is told to go (its eviction
//! receiver fires). That is how an applet whose network changed gets its
//! place back at once, instead of being refused until the gateway notices
//! its old connection is dead. Tickets carry a generation, so the old
//! ticket's drop cannot release the new connection's claim.
//!
//! A console takes an applet only once the store records it as waiting
//! here ([`Registry::admitted`]), so every pairing is one the store can
//! record; a console that arrives in between waits for it, as for an
//! applet that has not connected yet.

use lifeline_protocol::SessionGuid;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, oneshot};

/// What a console sends a waiting applet's task to take over its stream.
#[derive(Debug)]
pub struct PairRequest {
    /// Where the applet's task sends its connection after writing `Paired`.
    pub reply: oneshot::Sender<Handover>,
    /// For a channel's session: who picked it, for its applet (whose file
    /// names no console).
    pub picked_by: Option<lifeline_protocol::relay::PickedBy>,
}

/// A waiting applet's connection, handed to the console's task.
#[derive(Debug)]
pub struct Handover {
    /// The applet's connection, its keys taken over from rustls.
    pub stream: crate::relay::record::TakenOver,
    /// Its claim, which must live as long as the relay.
    pub ticket: AppletTicket,
    /// Its place in the node's connection count, likewise.
    pub open: crate::state::Open,
}

/// Why a waiting applet's connection must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Another connection of the same applet took its place.
    Replaced,
    /// The session ended (the technician ended or cancelled it, or it was
    /// not resumed in time).
    Ended,
}

#[derive(Debug)]
enum AppletState {
    Absent,
    Waiting {
        pair: oneshot::Sender<PairRequest>,
        /// Sent when the connection must go (dropped when a console takes
        /// the slot).
        evict: oneshot::Sender<Eviction>,
        /// The store records it as waiting here ([`Registry::admitted`]):
        /// only then may the store's answer evict it.
        admitted: bool,
    },
    Paired,
}

impl AppletState {
    /// Waiting and recorded by the store: a console may take it, and the
    /// store's answer may evict it.
    fn admitted(&self) -> bool {
        matches!(self, AppletState::Waiting { admitted: true, .. })
    }
}

#[derive(Debug)]
struct Slot {
    applet: AppletState,
    /// Generation of the applet claim in `applet`.
    applet_gen: u64,
    console: bool,
    arrived: Arc<Notify>,
}

impl Slot {
    fn new() -> Self {
        Self {
            applet: AppletState::Absent,
            applet_gen: 0,
            console: false,
            arrived: Arc::new(Notify::new()),
        }
    }
}

/// What a registered applet's task listens on.
#[derive(Debug)]
pub struct AppletWait {
    /// The console's request to take the stream.
    pub pair: oneshot::Receiver<PairRequest>,
    /// Completes when the connection must go (see [`Eviction`]).
    pub evicted: oneshot::Receiver<Eviction>,
}

/// Live claims on this node.
#[derive(Debug, Default)]
pub struct Registry {
    slots: Mutex<HashMap<SessionGuid, Slot>>,
}

/// Refusal: the other connection of this role is already here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlreadyConnected;

/// An applet's claim; released on drop (unless another connection took
/// over meanwhile).
#[derive(Debug)]
pub struct AppletTicket {
    registry: Arc<Registry>,
    guid: SessionGuid,
    generation: u64,
}

/// A console's claim; released on drop.
#[derive(Debug)]
pub struct ConsoleTicket {
    registry: Arc<Registry>,
    guid: SessionGuid,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionGuid, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applets waiting (not yet paired) on this node.
    pub fn waiting(&self) -> usize {
        self.lock()
            .values()
            .filter(|s| matches!(s.applet, AppletState::Waiting { .. }))
            .count()
    }

    /// Registers a waiting applet. With `take_over`, a connection already
    /// waiting for this GUID is evicted and replaced; a paired one never is.
    pub fn register_applet(
        self: &Arc<Self>,
        guid: SessionGuid,
        take_over: bool,
    ) -> Result<(AppletTicket, AppletWait), AlreadyConnected> {
        let mut slots = self.lock();
        let slot = slots.entry(guid).or_insert_with(Slot::new);
        match &slot.applet {
            AppletState::Absent => {}
            AppletState::Waiting { .. } if take_over => {}
            _ => return Err(AlreadyConnected),
        }
        let (pair_tx, pair) = oneshot::channel();
        let (evict_tx, evicted) = oneshot::channel();
        let old = std::mem::replace(
            &mut slot.applet,
            AppletState::Waiting {
                pair: pair_tx,
                evict: evict_tx,
                admitted: false,
            },
        );
        if let AppletState::Waiting { evict, .. } = old {
            let _ = evict.send(Eviction::Replaced);
        }
        slot.applet_gen += 1;
        let generation = slot.applet_gen;
        Ok((
            AppletTicket {
                registry: self.clone(),
                guid,
                generation,
            },
            AppletWait { pair, evicted },
        ))
    }

    /// The session ended: an applet waiting for it on this node is told at
    /// once (instead of waiting for a technician who will not come).
    pub fn session_ended(&self, guid: &SessionGuid) {
        self.evict(guid, None, Eviction::Ended);
    }

    /// The store now records `ticket`'s applet as waiting on this node:
    /// a console may take it from now on (taken before, the store would
    /// not record the pairing, which is conditional on `waiting`).
    pub fn admitted(&self, ticket: &AppletTicket) {
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(&ticket.guid)
            && slot.applet_gen == ticket.generation
            && let AppletState::Waiting { admitted, .. } = &mut slot.applet
        {
            *admitted = true;
            slot.arrived.notify_waiters();
        }
    }

    /// The applets waiting here that the store records as waiting here,
    /// with their claims' generations: what [`Registry::evict`] may act on
    /// after asking the store about them.
    pub fn admitted_waiting(&self) -> Vec<(SessionGuid, u64)> {
        self.lock()
            .iter()
            .filter(|(_, s)| s.applet.admitted())
            .map(|(g, s)| (*g, s.applet_gen))
            .collect()
    }

    /// Tells the applet waiting for `guid` to go — only the claim of
    /// `generation`, if given (a newer connection is not told what the
    /// store said of an older one). The slot stays taken until the
    /// ticket's release, so nothing else takes it meanwhile.
    /// Returns whether it told one.
    pub fn evict(&self, guid: &SessionGuid, generation: Option<u64>, why: Eviction) -> bool {
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(guid)
            && generation.is_none_or(|g| g == slot.applet_gen)
            && matches!(slot.applet, AppletState::Waiting { .. })
            && let AppletState::Waiting { evict, .. } =
                std::mem::replace(&mut slot.applet, AppletState::Paired)
        {
            return evict.send(why).is_ok();
        }
        false
    }

    /// Claims the console end.
    pub fn claim_console(
        self: &Arc<Self>,
        guid: SessionGuid,
    ) -> Result<ConsoleTicket, AlreadyConnected> {
        let mut slots = self.lock();
        let slot = slots.entry(guid).or_insert_with(Slot::new);
        if slot.console {
            return Err(AlreadyConnected);
        }
        slot.console = true;
        Ok(ConsoleTicket {
            registry: self.clone(),
            guid,
        })
    }

    /// Releases the applet claim of generation `applet_gen` (`None`: the
    /// console claim).
    fn release(&self, guid: &SessionGuid, applet_gen: Option<u64>) {
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(guid) {
            match applet_gen {
                Some(g) if g == slot.applet_gen => slot.applet = AppletState::Absent,
                Some(_) => {}
                None => slot.console = false,
            }
            if matches!(slot.applet, AppletState::Absent) && !slot.console {
                slots.remove(guid);
            }
        }
    }
}

impl ConsoleTicket {
    /// Waits until an applet is waiting and admitted
    /// ([`Registry::admitted`]), then takes its pairing channel (marking
    /// the applet end as paired). `None` if `within` passes first.
    pub async fn take_applet(
        &self,
        within: std::time::Duration,
    ) -> Option<oneshot::Sender<PairRequest>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = {
                let mut slots = self.registry.lock();
                let slot = slots.get_mut(&self.guid)?;
                if slot.applet.admitted()
                    && let AppletState::Waiting { pair, .. } =
                        std::mem::replace(&mut slot.applet, AppletState::Paired)
                {
                    return Some(pair);
                }
                slot.arrived.clone()
            };
            let notified = arrived.notified();
            tokio::pin!(notified);
            // Register interest, then re-check, so an arrival between the
            // check above and the await is not missed.
            notified.as_mut().enable();
            {
                let slots = self.registry.lock();
                if slots.get(&self.guid).is_some_and(|s| s.applet.admitted()) {
                    continue;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

impl Drop for AppletTicket {
    fn drop(&mut self) {
        self.registry.release(&self.guid, Some(self.generation));
    }
}

impl Drop for ConsoleTicket {
    fn drop(&mut self) {
        self.registry.release(&self.guid, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_applet_one_console_and_release() {
        let r = Registry::new();
        let g = SessionGuid::from_bytes([1; 16]);
        let (a, _rx) = r.register_applet(g, false).unwrap();
        assert_eq!(r.register_applet(g, false).err(), Some(AlreadyConnected));
        let c = r.claim_console(g).unwrap();
        assert!(r.claim_console(g).is_err());
        assert!(
            c.take_applet(std::time::Duration::from_millis(10))
                .await
                .is_none(),
            "not taken before the store records it as waiting"
        );
        r.admitted(&a);
        assert!(
            c.take_applet(std::time::Duration::from_millis(10))
                .await
                .is_some()
        );
        assert_eq!(r.waiting(), 0);
        drop(a);
        drop(c);
        assert!(r.lock().is_empty());
    }

    #[tokio::test]
    async fn a_new_connection_takes_over_a_waiting_one_but_not_a_paired_one() {
        let r = Registry::new();
        let g = SessionGuid::from_bytes([3; 16]);
        let (old, mut old_wait) = r.register_applet(g, false).unwrap();
        let (new, _new_wait) = r.register_applet(g, true).unwrap();
        // Both of the old connection's receivers fire at once: its pairing
        // channel is gone, and the eviction is there to read (the relay
        // must tell the evicted applet, whichever it sees first).
        assert!((&mut old_wait.pair).await.is_err());
        assert_eq!(
            old_wait.evicted.try_recv(),
            Ok(Eviction::Replaced),
            "the old one is told to go"
        );
        drop(old);
        assert_eq!(
            r.waiting(),
            1,
            "the old ticket does not release the new claim"
        );
        r.admitted(&new);
        let c = r.claim_console(g).unwrap();
        assert!(
            c.take_applet(std::time::Duration::from_millis(10))
                .await
                .is_some()
        );
        assert_eq!(r.register_applet(g, true).err(), Some(AlreadyConnected));
        drop(new);
        drop(c);
        assert!(r.lock().is_empty());
    }

    #[tokio::test]
    async fn a_waiting_applet_hears_of_its_sessions_end_at_once() {
        let r = Registry::new();
        let g = SessionGuid::from_bytes([4; 16]);
        let (ticket, mut wait) = r.register_applet(g, true).unwrap();
        r.session_ended(&SessionGuid::from_bytes([5; 16]));
        assert!(wait.evicted.try_recv().is_err(), "another session's end");
        r.session_ended(&g);
        assert_eq!(wait.evicted.try_recv(), Ok(Eviction::Ended));
        assert_eq!(r.waiting(), 0);
        drop(ticket);
        assert!(r.lock().is_empty());
    }

    #[tokio::test]
    async fn the_stores_answer_evicts_only_the_admitted_claim_it_was_about() {
        let r = Registry::new();
        let g = SessionGuid::from_bytes([6; 16]);
        let (old, mut old_wait) = r.register_applet(g, true).unwrap();
        assert!(r.admitted_waiting().is_empty(), "not admitted yet");
        r.admitted(&old);
        let asked = r.admitted_waiting();
        assert_eq!(asked.len(), 1);
        // A new connection of the applet takes over before the answer.
        let (new, mut new_wait) = r.register_applet(g, true).unwrap();
        assert_eq!(old_wait.evicted.try_recv(), Ok(Eviction::Replaced));
        drop(old);
        let (guid, generation) = asked[0];
        assert!(!r.evict(&guid, Some(generation), Eviction::Replaced));
        assert!(
            new_wait.evicted.try_recv().is_err(),
            "an answer about the old claim does not evict the new one"
        );
        r.admitted(&new);
        let (guid, generation) = r.admitted_waiting()[0];
        assert!(r.evict(&guid, Some(generation), Eviction::Replaced));
        assert_eq!(new_wait.evicted.try_recv(), Ok(Eviction::Replaced));
        assert_eq!(r.waiting(), 0);
        drop(new);
        assert!(r.lock().is_empty());
    }

    #[tokio::test]
    async fn console_waits_for_a_late_applet() {
        let r = Registry::new();
        let g = SessionGuid::from_bytes([2; 16]);
        let c = r.claim_console(g).unwrap();
        let r2 = r.clone();
        let late = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let (ticket, _wait) = r2.register_applet(g, false).unwrap();
            // Registered, then recorded by the store: only that wakes the
            // console.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            r2.admitted(&ticket);
            ticket
        });
        assert!(
            c.take_applet(std::time::Duration::from_secs(5))
                .await
                .is_some()
        );
        drop(late.await.unwrap());
        assert!(
            c.take_applet(std::time::Duration::from_millis(20))
                .await
                .is_none()
        );
    }
}
