//! The session's channels: numbered byte streams of a kind, each with its
//! own credit-based flow control (a window per direction, as in HTTP/2 or
//! yamux) and a traffic class ([`Priority`]).
//!
//! A sender may have at most the credit the receiver granted in flight;
//! the receiver grants more as it consumes. A slow reader of one channel
//! therefore stalls only that channel. The scheduler ([`Channels::next_data`])
//! serves interactive channels before bulk ones, and bulk channels in turn
//! (round robin), so a transfer never holds up a keystroke and two
//! transfers share the path.
//!
//! Channels know nothing of paths: they sit above the link and cross every
//! cutover untouched.

use super::SessionError;
use crate::linktest::TestSource;
use bytes::Bytes;
use lifeline_protocol::e2e::{ChannelKind, MAX_DATA, Priority};
use std::collections::{BTreeMap, VecDeque};

/// Most channels open at once in a session (both ends' together).
pub const MAX_CHANNELS: usize = 64;
/// Channels the application numbers itself start here (each end keeps its
/// parity: odd for the console, even for the applet); the core's own
/// (link test, probe) are numbered from 1 and 2 and never get this far.
pub const APP_CHANNELS: u32 = 1 << 31;

/// Whether channels of `kind` belong to the application (their data is
/// handed out as events and consumed when the application says so)
/// rather than to the core (link test, echo).
pub fn is_app(kind: ChannelKind) -> bool {
    matches!(
        kind,
        ChannelKind::Shell | ChannelKind::Run | ChannelKind::File
    )
}
/// Receive window of a bulk channel: what may be in flight towards us.
pub const BULK_WINDOW: u32 = 4 << 20;
/// Receive window of an interactive channel.
pub const INTERACTIVE_WINDOW: u32 = 256 << 10;
/// Credit is granted back in steps of at most this much (or a quarter of
/// the window): fine-grained credit is what lets the sender measure the
/// path's delivery rate (see `core::pacing`).
const GRANT_STEP: u32 = 64 << 10;
/// ... and at least a quarter of the window.
const GRANT_DIVISOR: u32 = 4;

/// The receive window of a channel of `kind`.
pub fn window(kind: ChannelKind) -> u32 {
    match kind.priority() {
        Priority::Bulk => BULK_WINDOW,
        Priority::Interactive | Priority::Control => INTERACTIVE_WINDOW,
    }
}

/// Where a sending channel's bytes come from.
#[derive(Debug)]
pub enum Outgoing {
    /// Bytes queued by this end (probes, echoes, the application's data),
    /// kept as the chunks they came in: taking them copies nothing.
    Queue(Queue),
    /// The link test's sequence (boxed: its key schedule and chunk are
    /// large).
    LinkTest(Box<TestSource>),
}

/// Queued bytes, and whether more may follow.
#[derive(Debug, Default)]
pub struct Queue {
    chunks: VecDeque<Bytes>,
    len: usize,
    /// No more will be queued: the channel closes once this is sent.
    done: bool,
}

impl Outgoing {
    /// An empty queue.
    pub fn queue() -> Self {
        Outgoing::Queue(Queue::default())
    }

    /// Appends bytes to a queue (a no-op for other sources, and once the
    /// queue is done).
    pub fn push(&mut self, bytes: Bytes) {
        if let Outgoing::Queue(q) = self
            && !q.done
            && !bytes.is_empty()
        {
            q.len += bytes.len();
            q.chunks.push_back(bytes);
        }
    }

    /// Nothing more will be queued: the channel closes when what is
    /// queued has gone.
    pub fn finish(&mut self) {
        if let Outgoing::Queue(q) = self {
            q.done = true;
        }
    }

    fn take(&mut self, max: usize) -> Bytes {
        match self {
            Outgoing::Queue(q) => {
                let Some(front) = q.chunks.front_mut() else {
                    return Bytes::new();
                };
                let out = if front.len() <= max {
                    q.chunks.pop_front().unwrap_or_default()
                } else {
                    front.split_to(max)
                };
                q.len -= out.len();
                out
            }
            Outgoing::LinkTest(t) => t.take(max).into(),
        }
    }

    fn finished(&self) -> bool {
        match self {
            Outgoing::Queue(q) => q.done && q.len == 0,
            Outgoing::LinkTest(t) => t.finished(),
        }
    }
}

/// One channel.
#[derive(Debug)]
pub struct Channel {
    /// What it carries.
    pub kind: ChannelKind,
    /// Bytes we may still send.
    send_credit: u64,
    /// Bytes the peer may still send us.
    recv_allowed: u64,
    /// Bytes consumed but not yet granted back.
    consumed: u32,
    /// Bytes received and not yet consumed.
    held: u64,
    /// Bytes we sent that the peer has not granted back yet.
    unacked: u64,
    /// Our sending side, if we send on it.
    pub source: Option<Outgoing>,
    /// We sent (or will send, once drained) `ChannelFrame::Close`.
    pub closing: bool,
    /// We sent our `ChannelFrame::Close`.
    pub closed_out: bool,
    /// The peer sent its `ChannelFrame::Close`.
    pub closed_in: bool,
}

impl Channel {
    fn new(kind: ChannelKind) -> Self {
        let w = u64::from(window(kind));
        Self {
            kind,
            // Both ends start from the kind's window: no round trip before
            // the first byte.
            send_credit: w,
            recv_allowed: w,
            consumed: 0,
            held: 0,
            unacked: 0,
            source: None,
            closing: false,
            closed_out: false,
            closed_in: false,
        }
    }
}

/// What the scheduler produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Produced {
    /// Data for a channel.
    Data {
        /// The channel.
        channel: u32,
        /// Its class.
        priority: Priority,
        /// The bytes.
        data: Bytes,
    },
    /// The channel's source is drained: send `ChannelFrame::Close`.
    Close(u32),
}

/// The channel table of one end.
#[derive(Debug, Default)]
pub struct Channels {
    open: BTreeMap<u32, Channel>,
    next_own: u32,
    /// The last bulk channel served (round robin starts after it).
    last_bulk: u32,
    /// What gone bulk channels had sent and not had granted back (see
    /// [`Channels::take_forgiven`]).
    forgiven: u64,
    /// Channels reset lately, by either end, newest last, with their
    /// class. Frames sent before a reset can still arrive after it: the
    /// peer's, until our reset reaches it, and the peer's own data that
    /// its reset (a control frame, sent first) overtook. They are dropped,
    /// not taken for a broken protocol. Numbers are not reused, so a few
    /// suffice.
    reset_lately: std::collections::VecDeque<(u32, Priority)>,
}

/// Channels [`Channels::reset`] remembers.
const RECENT_RESETS: usize = 64;

impl Channels {
    /// An empty table; this end numbers its channels from `first`, by 2.
    pub fn new(first: u32) -> Self {
        Self {
            open: BTreeMap::new(),
            next_own: first,
            last_bulk: 0,
            forgiven: 0,
            reset_lately: std::collections::VecDeque::new(),
        }
    }

    /// Either end reset `channel`: drops it at once and remembers it (see
    /// [`Channels::was_reset`]).
    pub fn reset(&mut self, channel: u32) -> Option<Channel> {
        let c = self.remove(channel)?;
        if self.reset_lately.len() == RECENT_RESETS {
            self.reset_lately.pop_front();
        }
        self.reset_lately.push_back((channel, c.kind.priority()));
        Some(c)
    }

    /// Whether `channel` was reset lately: frames for it that were in
    /// flight are to be dropped.
    pub fn was_reset(&self, channel: u32) -> bool {
        self.reset_priority(channel).is_some()
    }

    /// The traffic class `channel` had, if it was reset lately: its frames
    /// still in flight count on that class's lane of the sequenced stream,
    /// as the peer counted them when it sent them.
    pub fn reset_priority(&self, channel: u32) -> Option<Priority> {
        if self.open.contains_key(&channel) {
            return None;
        }
        self.reset_lately
            .iter()
            .find(|(c, _)| *c == channel)
            .map(|(_, p)| *p)
    }

    /// Open channels.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// No channel open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// A channel by number.
    pub fn get_mut(&mut self, channel: u32) -> Option<&mut Channel> {
        self.open.get_mut(&channel)
    }

    /// Opens channel `channel` of ours, numbered by the application (see
    /// [`APP_CHANNELS`]), with a queue to send from.
    pub fn open_app(&mut self, channel: u32, kind: ChannelKind) -> Result<(), SessionError> {
        if self.open.contains_key(&channel) {
            return Err(SessionError::Protocol("channel opened twice"));
        }
        if self.open.len() >= MAX_CHANNELS {
            return Err(SessionError::TooManyChannels);
        }
        let mut c = Channel::new(kind);
        c.source = Some(Outgoing::queue());
        self.open.insert(channel, c);
        Ok(())
    }

    /// Opens a channel of ours; its number, or an error at the limit.
    pub fn open_own(
        &mut self,
        kind: ChannelKind,
        source: Option<Outgoing>,
    ) -> Result<u32, SessionError> {
        if self.open.len() >= MAX_CHANNELS {
            return Err(SessionError::TooManyChannels);
        }
        let id = self.next_own;
        self.next_own = self.next_own.wrapping_add(2);
        let mut c = Channel::new(kind);
        c.source = source;
        self.open.insert(id, c);
        Ok(id)
    }

    /// The peer opened `channel`.
    pub fn open_remote(&mut self, channel: u32, kind: ChannelKind) -> Result<(), SessionError> {
        if self.open.contains_key(&channel) {
            return Err(SessionError::Protocol("channel opened twice"));
        }
        if self.open.len() >= MAX_CHANNELS {
            return Err(SessionError::TooManyChannels);
        }
        self.open.insert(channel, Channel::new(kind));
        Ok(())
    }

    /// Data arrived on `channel`: checks it against the credit the peer
    /// had. The caller consumes it and then calls [`Channels::consumed`].
    pub fn received(&mut self, channel: u32, n: usize) -> Result<ChannelKind, SessionError> {
        let c = self
            .open
            .get_mut(&channel)
            .ok_or(SessionError::Protocol("data on a channel that is not open"))?;
        if c.closed_in {
            return Err(SessionError::Protocol("data after the channel's close"));
        }
        let n = n as u64;
        if n > c.recv_allowed {
            return Err(SessionError::Protocol("data beyond the channel's credit"));
        }
        c.recv_allowed -= n;
        c.held += n;
        Ok(c.kind)
    }

    /// `n` bytes of `channel` were consumed: the credit to grant back, if
    /// enough has accumulated — or if everything received is consumed:
    /// then the sender may be waiting for exactly this credit (its pacing
    /// caps the bytes in flight over all channels, and a cap below the
    /// sum of the channels' withheld grants would never open again).
    pub fn consumed(&mut self, channel: u32, n: usize) -> Option<u32> {
        let c = self.open.get_mut(&channel)?;
        c.consumed = c.consumed.saturating_add(n as u32);
        c.held = c.held.saturating_sub(n as u64);
        let w = window(c.kind);
        let caught_up = c.held == 0 && c.consumed > 0;
        if c.closed_in || (c.consumed < GRANT_STEP.min(w / GRANT_DIVISOR) && !caught_up) {
            return None;
        }
        let grant = std::mem::take(&mut c.consumed);
        c.recv_allowed += u64::from(grant);
        Some(grant)
    }

    /// The peer granted `bytes` more credit on `channel`; returns the
    /// channel's class (if it is still open).
    pub fn credit(&mut self, channel: u32, bytes: u32) -> Result<Option<Priority>, SessionError> {
        if let Some(c) = self.open.get_mut(&channel) {
            c.send_credit = c.send_credit.saturating_add(u64::from(bytes));
            c.unacked = c.unacked.saturating_sub(u64::from(bytes));
            if c.send_credit > 1 << 40 {
                return Err(SessionError::Protocol("absurd channel credit"));
            }
            return Ok(Some(c.kind.priority()));
        }
        // Credit for a channel that just closed on our side is harmless.
        Ok(None)
    }

    /// The peer will send no more on `channel`.
    pub fn peer_closed(&mut self, channel: u32) -> Result<(), SessionError> {
        let c = self.open.get_mut(&channel).ok_or(SessionError::Protocol(
            "close of a channel that is not open",
        ))?;
        c.closed_in = true;
        self.forget_if_done(channel);
        Ok(())
    }

    /// Whether a channel of this class is open.
    pub fn any_open(&self, priority: Priority) -> bool {
        self.open.values().any(|c| c.kind.priority() == priority)
    }

    /// The kind of an open channel.
    pub fn kind(&self, channel: u32) -> Option<ChannelKind> {
        self.open.get(&channel).map(|c| c.kind)
    }

    /// The traffic class of an open channel.
    pub fn priority(&self, channel: u32) -> Option<Priority> {
        self.open.get(&channel).map(|c| c.kind.priority())
    }

    /// We sent our `ChannelFrame::Close` on `channel`.
    pub fn we_closed(&mut self, channel: u32) {
        if let Some(c) = self.open.get_mut(&channel) {
            c.closed_out = true;
        }
        self.forget_if_done(channel);
    }

    /// Drops a channel at once (a reset).
    pub fn remove(&mut self, channel: u32) -> Option<Channel> {
        let c = self.open.remove(&channel)?;
        self.forgive(&c);
        Some(c)
    }

    fn forget_if_done(&mut self, channel: u32) {
        if self
            .open
            .get(&channel)
            .is_some_and(|c| c.closed_in && (c.closed_out || c.source.is_none()))
            && let Some(c) = self.open.remove(&channel)
        {
            self.forgive(&c);
        }
    }

    /// A gone bulk channel's bytes the peer will never grant back: the
    /// receiver grants in steps and stops at its close, so the last of
    /// them would otherwise count as in flight for ever and, file after
    /// file, fill the pacing budget (see `core::pacing`).
    fn forgive(&mut self, c: &Channel) {
        if c.kind.priority() == Priority::Bulk {
            self.forgiven += c.unacked;
        }
    }

    /// Bytes of gone bulk channels never granted back, since the last call.
    pub fn take_forgiven(&mut self) -> u64 {
        std::mem::take(&mut self.forgiven)
    }

    /// Bulk bytes sent and not granted back on every channel, gone or
    /// open (when the whole table is dropped).
    pub fn outstanding(&self) -> u64 {
        self.forgiven
            + self
                .open
                .values()
                .filter(|c| c.kind.priority() == Priority::Bulk)
                .map(|c| c.unacked)
                .sum::<u64>()
    }

    /// The next thing to send in class `priority` (interactive or bulk):
    /// data within credit, or a close for a drained source. Bulk channels
    /// are served in turn.
    pub fn next_data(&mut self, priority: Priority) -> Option<Produced> {
        self.next_data_within(priority, MAX_DATA)
    }

    /// [`next_data`](Self::next_data) with frames of at most `limit`
    /// bytes (the pacing's room).
    pub fn next_data_within(&mut self, priority: Priority, limit: usize) -> Option<Produced> {
        let ids: Vec<u32> = self
            .open
            .iter()
            .filter(|(_, c)| c.kind.priority() == priority && !c.closed_out)
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return None;
        }
        // Round robin: start after the last bulk channel served.
        let start = if priority == Priority::Bulk {
            ids.iter().position(|id| *id > self.last_bulk).unwrap_or(0)
        } else {
            0
        };
        for k in 0..ids.len() {
            let id = ids[(start + k) % ids.len()];
            let Some(c) = self.open.get_mut(&id) else {
                continue;
            };
            let Some(src) = c.source.as_mut() else {
                continue;
            };
            if c.closing || src.finished() {
                c.closing = true;
                return Some(Produced::Close(id));
            }
            let room = c.send_credit.min(MAX_DATA.min(limit) as u64) as usize;
            if room == 0 {
                continue;
            }
            let data = src.take(room);
            if data.is_empty() {
                continue;
            }
            c.send_credit -= data.len() as u64;
            c.unacked += data.len() as u64;
            if priority == Priority::Bulk {
                self.last_bulk = id;
            }
            return Some(Produced::Data {
                channel: id,
                priority,
                data,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endless(seed: u64) -> Option<Outgoing> {
        Some(Outgoing::LinkTest(Box::new(TestSource::new(
            seed,
            u64::MAX,
        ))))
    }

    #[test]
    fn credit_bounds_what_is_sent_and_grants_refill_it() {
        let mut tx = Channels::new(1);
        let mut rx = Channels::new(2);
        let id = tx.open_own(ChannelKind::LinkTest, endless(7)).unwrap();
        rx.open_remote(id, ChannelKind::LinkTest).unwrap();
        let mut sent = 0usize;
        while let Some(Produced::Data { data, .. }) = tx.next_data(Priority::Bulk) {
            rx.received(id, data.len()).unwrap();
            sent += data.len();
        }
        assert_eq!(sent, BULK_WINDOW as usize, "stops at the window");
        // More than the window is a protocol error at the receiver.
        assert!(rx.received(id, 1).is_err());
        // Consuming grants credit back in steps.
        let grant = rx.consumed(id, sent).unwrap();
        tx.credit(id, grant).unwrap();
        assert!(tx.next_data(Priority::Bulk).is_some());
    }

    #[test]
    fn small_frames_are_granted_once_the_receiver_caught_up() {
        let mut tx = Channels::new(1);
        let mut rx = Channels::new(2);
        let id = tx.open_own(ChannelKind::LinkTest, endless(3)).unwrap();
        rx.open_remote(id, ChannelKind::LinkTest).unwrap();
        let Some(Produced::Data { data: a, .. }) = tx.next_data_within(Priority::Bulk, 16 << 10)
        else {
            panic!("no data");
        };
        assert_eq!(a.len(), 16 << 10, "cut to the limit");
        let Some(Produced::Data { data: b, .. }) = tx.next_data_within(Priority::Bulk, 16 << 10)
        else {
            panic!("no data");
        };
        rx.received(id, a.len()).unwrap();
        rx.received(id, b.len()).unwrap();
        // The second frame still waits: nothing yet (under the step).
        assert_eq!(rx.consumed(id, a.len()), None);
        // Everything received is consumed: all of it goes back at once,
        // though it is less than a grant step (a paced sender may be
        // waiting for it).
        assert_eq!(rx.consumed(id, b.len()), Some(32 << 10));
    }

    #[test]
    fn bulk_channels_take_turns_and_interactive_is_separate() {
        let mut t = Channels::new(1);
        let a = t.open_own(ChannelKind::LinkTest, endless(1)).unwrap();
        let b = t.open_own(ChannelKind::LinkTest, endless(2)).unwrap();
        let mut order = Vec::new();
        for _ in 0..6 {
            if let Some(Produced::Data { channel, .. }) = t.next_data(Priority::Bulk) {
                order.push(channel);
            }
        }
        assert_eq!(order, [a, b, a, b, a, b]);
        assert_eq!(t.next_data(Priority::Interactive), None);
    }

    #[test]
    fn limits_and_misuse_are_refused() {
        let mut t = Channels::new(2);
        for i in 0..MAX_CHANNELS as u32 {
            t.open_remote(i * 2 + 1, ChannelKind::Echo).unwrap();
        }
        assert!(matches!(
            t.open_remote(999, ChannelKind::Echo),
            Err(SessionError::TooManyChannels)
        ));
        assert!(t.open_remote(1, ChannelKind::Echo).is_err(), "twice");
        assert!(t.received(12345, 1).is_err(), "not open");
        t.peer_closed(1).unwrap();
        assert!(t.received(1, 1).is_err(), "after close");
    }
}
