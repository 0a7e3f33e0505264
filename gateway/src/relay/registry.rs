//! Which sessions have an applet or a console on this node right now.
//!
//! The registry enforces "exactly one applet and one console per GUID" on a
//! node (the store's state machine does the same across nodes) and hands a
//! waiting applet's connection to the console that pairs with it. Entries
//! are removed by the tickets' `Drop`, so a task that dies cannot leave a
//! stale claim behind.

use lifeline_protocol::SessionGuid;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, oneshot};

use super::ServerStream;

/// What a console sends a waiting applet's task to take over its stream.
#[derive(Debug)]
pub struct PairRequest {
    /// Where the applet's task sends its stream (and its claim, which
    /// must live as long as the relay) after writing `Paired`.
    pub reply: oneshot::Sender<(ServerStream, AppletTicket)>,
}

#[derive(Debug)]
enum AppletState {
    Absent,
    Waiting(oneshot::Sender<PairRequest>),
    Paired,
}

#[derive(Debug)]
struct Slot {
    applet: AppletState,
    console: bool,
    arrived: Arc<Notify>,
}

/// Live claims on this node.
#[derive(Debug, Default)]
pub struct Registry {
    slots: Mutex<HashMap<SessionGuid, Slot>>,
}

/// Refusal: the other connection of this role is already here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlreadyConnected;

/// An applet's claim; released on drop.
#[derive(Debug)]
pub struct AppletTicket {
    registry: Arc<Registry>,
    guid: SessionGuid,
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
            .filter(|s| matches!(s.applet, AppletState::Waiting(_)))
            .count()
    }

    /// Registers a waiting applet; the receiver yields the console's request.
    pub fn register_applet(
        self: &Arc<Self>,
        guid: SessionGuid,
    ) -> Result<(AppletTicket, oneshot::Receiver<PairRequest>), AlreadyConnected> {
        let mut slots = self.lock();
        let slot = slots.entry(guid).or_insert_with(|| Slot {
            applet: AppletState::Absent,
            console: false,
            arrived: Arc::new(Notify::new()),
        });
        if !matches!(slot.applet, AppletState::Absent) {
            return Err(AlreadyConnected);
        }
        let (tx, rx) = oneshot::channel();
        slot.applet = AppletState::Waiting(tx);
        slot.arrived.notify_waiters();
        Ok((
            AppletTicket {
                registry: self.clone(),
                guid,
            },
            rx,
        ))
    }

    /// Claims the console end.
    pub fn claim_console(
        self: &Arc<Self>,
        guid: SessionGuid,
    ) -> Result<ConsoleTicket, AlreadyConnected> {
        let mut slots = self.lock();
        let slot = slots.entry(guid).or_insert_with(|| Slot {
            applet: AppletState::Absent,
            console: false,
            arrived: Arc::new(Notify::new()),
        });
        if slot.console {
            return Err(AlreadyConnected);
        }
        slot.console = true;
        Ok(ConsoleTicket {
            registry: self.clone(),
            guid,
        })
    }

    fn release(&self, guid: &SessionGuid, applet: bool) {
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(guid) {
            if applet {
                slot.applet = AppletState::Absent;
            } else {
                slot.console = false;
            }
            if matches!(slot.applet, AppletState::Absent) && !slot.console {
                slots.remove(guid);
            }
        }
    }
}

impl ConsoleTicket {
    /// Waits until an applet is waiting, then takes its pairing channel
    /// (marking the applet end as paired). `None` if `within` passes first.
    pub async fn take_applet(
        &self,
        within: std::time::Duration,
    ) -> Option<oneshot::Sender<PairRequest>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = {
                let mut slots = self.registry.lock();
                let slot = slots.get_mut(&self.guid)?;
                if matches!(slot.applet, AppletState::Waiting(_))
                    && let AppletState::Waiting(tx) =
                        std::mem::replace(&mut slot.applet, AppletState::Paired)
                {
                    return Some(tx);
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
                if slots
                    .get(&self.guid)
                    .is_some_and(|s| matches!(s.applet, AppletState::Waiting(_)))
                {
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
        self.registry.release(&self.guid, true);
    }
}

impl Drop for ConsoleTicket {
    fn drop(&mut self) {
        self.registry.release(&self.guid, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_applet_one_console_and_release() {
        let r = Registry::new();
        let g = SessionGuid::from_bytes([1; 16]);
        let (a, _rx) = r.register_applet(g).unwrap();
        assert_eq!(r.register_applet(g).err(), Some(AlreadyConnected));
        let c = r.claim_console(g).unwrap();
        assert!(r.claim_console(g).is_err());
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
    async fn console_waits_for_a_late_applet() {
        let r = Registry::new();
        let g = SessionGuid::from_bytes([2; 16]);
        let c = r.claim_console(g).unwrap();
        let r2 = r.clone();
        let late = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            r2.register_applet(g).map(|(t, _rx)| t)
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
