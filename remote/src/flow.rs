//! Writing on the session's channels without flooding the session core.
//!
//! The core queues what it is given and sends within the peer's credit;
//! it does not bound what it is given. So every channel this end writes on
//! gets a byte budget here: a write waits until the bytes queued and not
//! yet sent fit in it, and the core's `ChannelSent` events give the budget
//! back. A file read from disk, a shell printing a flood, all wait at the
//! budget, and memory stays bounded by it.

use bytes::Bytes;
use lifeline_protocol::e2e::ChannelKind;
use lifeline_session::live::Command;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, mpsc};

/// Budget of a bulk channel (a file): enough to keep a fast path busy
/// between two of the core's turns.
pub const BULK_BUDGET: usize = 2 << 20;
/// Budget of an interactive channel (a shell's screen).
pub const INTERACTIVE_BUDGET: usize = 256 << 10;

/// The session's command queue, with a budget per channel.
#[derive(Debug)]
pub struct Outbound {
    cmd: mpsc::UnboundedSender<Command>,
    budgets: Mutex<HashMap<u32, Arc<Semaphore>>>,
}

impl Outbound {
    /// Wraps the session's command queue.
    pub fn new(cmd: mpsc::UnboundedSender<Command>) -> Arc<Self> {
        Arc::new(Self {
            cmd,
            budgets: Mutex::new(HashMap::new()),
        })
    }

    /// Sends a command to the session; false once the session is over.
    pub fn command(&self, c: Command) -> bool {
        self.cmd.send(c).is_ok()
    }

    /// Opens a channel of ours.
    pub fn open(&self, channel: u32, kind: ChannelKind) -> bool {
        self.register(channel, kind);
        self.command(Command::Open { channel, kind })
    }

    /// Gives a channel (ours or the peer's) a budget to write within.
    pub fn register(&self, channel: u32, kind: ChannelKind) {
        let budget = match kind {
            ChannelKind::File | ChannelKind::LinkTest => BULK_BUDGET,
            _ => INTERACTIVE_BUDGET,
        };
        if let Ok(mut b) = self.budgets.lock() {
            b.entry(channel)
                .or_insert_with(|| Arc::new(Semaphore::new(budget)));
        }
    }

    fn budget(&self, channel: u32) -> Option<Arc<Semaphore>> {
        self.budgets.lock().ok()?.get(&channel).cloned()
    }

    /// Queues `data` on `channel` once the channel's budget has room;
    /// false if the channel is gone (reset, closed, the session over).
    pub async fn write(&self, channel: u32, data: Bytes) -> bool {
        let Some(budget) = self.budget(channel) else {
            return false;
        };
        let n = u32::try_from(data.len()).unwrap_or(u32::MAX);
        match budget.acquire_many(n).await {
            Ok(permits) => permits.forget(),
            Err(_) => return false,
        }
        self.command(Command::Write { channel, data })
    }

    /// The core sent `bytes` of `channel`'s queue: room for as many more.
    pub fn sent(&self, channel: u32, bytes: usize) {
        if let Some(b) = self.budget(channel) {
            b.add_permits(bytes);
        }
    }

    /// Nothing more will be written on `channel`.
    pub fn close(&self, channel: u32) {
        self.forget(channel);
        self.command(Command::Close { channel });
    }

    /// Abandons `channel` both ways.
    pub fn reset(&self, channel: u32, reason: &str) {
        self.forget(channel);
        self.command(Command::Reset {
            channel,
            reason: reason.to_owned(),
        });
    }

    /// The channel is gone (the peer reset it): writers waiting on it stop.
    pub fn forget(&self, channel: u32) {
        if let Some(b) = self
            .budgets
            .lock()
            .ok()
            .and_then(|mut b| b.remove(&channel))
        {
            b.close();
        }
    }

    /// Every channel is gone (the other end restarted).
    pub fn forget_all(&self) {
        if let Ok(mut b) = self.budgets.lock() {
            for (_, s) in b.drain() {
                s.close();
            }
        }
    }

    /// `bytes` of data that arrived on `channel` were used.
    pub fn consumed(&self, channel: u32, bytes: usize) {
        self.command(Command::Consumed {
            channel,
            bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
        });
    }
}

/// Numbers for the channels this end opens (see
/// `lifeline_session::core::channels::APP_CHANNELS`).
#[derive(Debug)]
pub struct ChannelNumbers {
    next: u32,
}

impl ChannelNumbers {
    /// The console's (odd) or the applet's (even) numbers.
    pub fn new(console: bool) -> Self {
        Self {
            next: lifeline_session::core::channels::APP_CHANNELS + if console { 1 } else { 2 },
        }
    }

    /// The next number.
    pub fn allocate(&mut self) -> u32 {
        let n = self.next;
        // Two billion channels in one session would wrap into the core's
        // own numbers; it stays in the application's half.
        self.next = self
            .next
            .checked_add(2)
            .unwrap_or(lifeline_session::core::channels::APP_CHANNELS + (n & 1));
        n
    }
}
