//! The session's sequenced stream, which survives the loss of its path.
//!
//! Every frame that belongs to the session rather than to the path it
//! travels on ([`Frame::is_sequenced`]: chat, channels, link tests, the
//! end) is numbered implicitly, per direction, by its position: the
//! receiver counts what it processed and acknowledges the count now and
//! then ([`Control::Ack`]); the sender keeps what is not yet acknowledged in
//! a bounded buffer. When a path dies and the ends meet again on a new one,
//! each first sends [`Control::Resume`] with its incarnation and its count;
//! the other drops what that count covers and resends the rest, in order.
//! So nothing is lost, duplicated or reordered across any number of
//! resumptions — and a peer that restarted (a new incarnation, nothing
//! kept) is met with a fresh start instead of a replay it cannot place.
//!
//! Sans-IO, like the rest of [`crate::core`]; the bound on the buffer is
//! what lets the core stop producing bulk data until acknowledgements
//! catch up.

use lifeline_protocol::e2e::{ChannelFrame, Control, Frame};
use std::collections::VecDeque;
use std::time::Duration;

/// How long a session whose path died may take to meet again before it
/// ends.
pub const RESUME_WINDOW: Duration = Duration::from_secs(120);
/// How long a path may stay silent before it counts as dead (the ends
/// ping four times within it).
pub const DEAD_PATH: Duration = Duration::from_secs(10);
/// Acknowledge after this many bytes of sequenced frames…
pub const ACK_EVERY_BYTES: usize = 256 * 1024;
/// …or this many sequenced frames, whichever comes first (and with every
/// ping otherwise).
pub const ACK_EVERY_FRAMES: u64 = 64;
/// The most bytes of sequenced frames kept for resending; at this much,
/// the core produces no more bulk data until acknowledgements arrive.
pub const MAX_UNACKED_BYTES: usize = 8 << 20;

/// What a frame costs in the resend buffer.
fn cost(frame: &Frame) -> usize {
    match frame {
        Frame::Channel(ChannelFrame::Data { data, .. }) => data.len() + 16,
        Frame::Control(Control::Chat { text }) => text.len() + 16,
        _ => 32,
    }
}

/// The two lanes of the sequenced stream. Each is in order on the wire —
/// the path's writer keeps its control queue and its bulk queue each in
/// order — but control frames overtake bulk ones (that is what priorities
/// are), so each lane is counted on its own: a bulk channel's data and
/// close on the bulk lane, every other sequenced frame on the control
/// lane. Both ends tell the lane from the frame and the channel's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Chat, the end, channel opening, credit and resets, interactive
    /// data, link-test control.
    Control = 0,
    /// Bulk channels' data and their close.
    Bulk = 1,
}

/// Why a resumption cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// The peer acknowledged frames never sent.
    #[error("the other side acknowledged data that was never sent")]
    AheadOfSent,
    /// The peer asks for frames already forgotten (acknowledged before).
    #[error("the other side asked for data it had already acknowledged")]
    Forgotten,
}

/// One lane, one direction: what was sent and is kept, what was received.
#[derive(Debug, Default)]
struct LaneState {
    /// Sequenced frames sent so far (the next one's number).
    sent: u64,
    /// Sent and not yet acknowledged: numbers `sent - len .. sent`.
    unacked: VecDeque<Frame>,
    /// Frames of the peer's processed so far.
    received: u64,
}

impl LaneState {
    fn first_unacked(&self) -> u64 {
        self.sent - self.unacked.len() as u64
    }
}

/// One end's sequencing state.
#[derive(Debug)]
pub struct Sequencing {
    /// This run of the core (random; see [`Control::Resume`]).
    incarnation: u64,
    /// The peer's, once its first `Resume` arrived.
    peer: Option<u64>,
    lanes: [LaneState; 2],
    unacked_bytes: usize,
    /// The counts last told to the peer.
    told: [u64; 2],
    bytes_since_told: usize,
}

impl Sequencing {
    /// A fresh stream for a core of `incarnation`.
    pub fn new(incarnation: u64) -> Self {
        Self {
            incarnation,
            peer: None,
            lanes: Default::default(),
            unacked_bytes: 0,
            told: [0; 2],
            bytes_since_told: 0,
        }
    }

    fn received(&self) -> [u64; 2] {
        [self.lanes[0].received, self.lanes[1].received]
    }

    /// The `Resume` this end sends first on a path.
    pub fn resume_frame(&self) -> Frame {
        Frame::Control(Control::Resume {
            incarnation: self.incarnation,
            next: self.received(),
        })
    }

    /// The peer's incarnation, once known.
    pub fn peer(&self) -> Option<u64> {
        self.peer
    }

    /// Records a sequenced frame this end sends on `lane`; it is kept until
    /// acknowledged.
    pub fn on_send(&mut self, lane: Lane, frame: &Frame) {
        let l = &mut self.lanes[lane as usize];
        l.sent += 1;
        self.unacked_bytes += cost(frame);
        l.unacked.push_back(frame.clone());
    }

    /// Whether the resend buffer is full (no more bulk data for now).
    pub fn full(&self) -> bool {
        self.unacked_bytes >= MAX_UNACKED_BYTES
    }

    /// Bytes kept for resending.
    pub fn unacked_bytes(&self) -> usize {
        self.unacked_bytes
    }

    /// The peer processed `next` of our sequenced frames per lane: forget
    /// them. An older count than one already heard is harmless (it was
    /// overtaken) and ignored.
    pub fn on_ack(&mut self, next: [u64; 2]) -> Result<(), ResumeError> {
        if (0..2).any(|i| next[i] > self.lanes[i].sent) {
            return Err(ResumeError::AheadOfSent);
        }
        for (l, n) in self.lanes.iter_mut().zip(next) {
            while l.first_unacked() < n {
                if let Some(f) = l.unacked.pop_front() {
                    self.unacked_bytes -= cost(&f);
                }
            }
        }
        Ok(())
    }

    /// Records a sequenced frame received on `lane`; returns an `Ack` to
    /// send when one is due.
    pub fn on_receive(&mut self, lane: Lane, frame: &Frame) -> Option<Frame> {
        self.lanes[lane as usize].received += 1;
        self.bytes_since_told += cost(frame);
        let new: u64 = (0..2).map(|i| self.lanes[i].received - self.told[i]).sum();
        (self.bytes_since_told >= ACK_EVERY_BYTES || new >= ACK_EVERY_FRAMES).then(|| self.ack())
    }

    /// An `Ack` if anything came since the last one (sent with pings, so
    /// a quiet session's buffer empties too).
    pub fn ack_if_any(&mut self) -> Option<Frame> {
        (self.received() != self.told).then(|| self.ack())
    }

    fn ack(&mut self) -> Frame {
        self.told = self.received();
        self.bytes_since_told = 0;
        Frame::Control(Control::Ack { next: self.told })
    }

    /// The peer's `Resume`, `resuming` (after a path died) or at the
    /// session's start. Returns what to resend, in order (the control
    /// lane's frames, then the bulk lane's: a channel's opening comes
    /// before its data), if the peer is the one we knew (or the first we
    /// meet); `None` if it is a new incarnation — then the stream starts
    /// afresh both ways and the caller resets what rode on it.
    pub fn on_resume(
        &mut self,
        incarnation: u64,
        next: [u64; 2],
        resuming: bool,
    ) -> Result<Option<Vec<Frame>>, ResumeError> {
        match self.peer {
            Some(p) if p != incarnation => {
                *self = Self {
                    peer: Some(incarnation),
                    ..Self::new(self.incarnation)
                };
                return Ok(None);
            }
            Some(_) => {
                if (0..2).any(|i| next[i] < self.lanes[i].first_unacked()) {
                    return Err(ResumeError::Forgotten);
                }
            }
            None if !resuming => {
                // The session's first Resume (for a console that restarted,
                // the applet's, whose counts are of the stream of the
                // console it had before): nothing to resend, the frames
                // sent so far are on their way.
                self.peer = Some(incarnation);
                return Ok(Some(Vec::new()));
            }
            // The path died before the peer's first Resume arrived: nothing
            // of ours was acknowledged, and the peer's counts say what it
            // has (none, if it is a new incarnation: it gets everything).
            None => self.peer = Some(incarnation),
        }
        self.on_ack(next)?;
        self.told = self.received();
        self.bytes_since_told = 0;
        Ok(Some(
            self.lanes
                .iter()
                .flat_map(|l| l.unacked.iter().cloned())
                .collect(),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chat(n: u32) -> Frame {
        Frame::Control(Control::Chat {
            text: n.to_string(),
        })
    }

    fn data(n: u8) -> Frame {
        Frame::Channel(ChannelFrame::Data {
            channel: 1,
            data: vec![n; 100].into(),
        })
    }

    #[test]
    fn acks_come_every_so_many_frames_and_with_pings() {
        let mut s = Sequencing::new(1);
        for n in 1..ACK_EVERY_FRAMES {
            assert_eq!(s.on_receive(Lane::Control, &chat(n as u32)), None);
        }
        assert_eq!(
            s.on_receive(Lane::Bulk, &data(0)),
            Some(Frame::Control(Control::Ack {
                next: [ACK_EVERY_FRAMES - 1, 1]
            }))
        );
        assert_eq!(s.ack_if_any(), None);
        s.on_receive(Lane::Control, &chat(0));
        assert_eq!(
            s.ack_if_any(),
            Some(Frame::Control(Control::Ack {
                next: [ACK_EVERY_FRAMES, 1]
            }))
        );
    }

    #[test]
    fn a_resumption_resends_exactly_what_the_peer_lacks() {
        let mut s = Sequencing::new(1);
        assert_eq!(s.on_resume(9, [0, 0], false), Ok(Some(vec![])));
        for n in 0..10 {
            s.on_send(Lane::Control, &chat(n));
            s.on_send(Lane::Bulk, &data(n as u8));
        }
        s.on_ack([4, 2]).unwrap();
        // The peer had processed 6 control and 3 bulk frames when the path
        // died: the rest of each lane, control first.
        let again = s.on_resume(9, [6, 3], true).unwrap().unwrap();
        let want: Vec<Frame> = (6..10).map(chat).chain((3..10).map(data)).collect();
        assert_eq!(again, want);
        // Died again before any ack: the same frames once more, no others.
        assert_eq!(s.on_resume(9, [6, 3], true).unwrap().unwrap(), want);
        assert_eq!(s.on_resume(9, [5, 3], true), Err(ResumeError::Forgotten));
        assert_eq!(s.on_resume(9, [6, 11], true), Err(ResumeError::AheadOfSent));
    }

    #[test]
    fn a_path_that_dies_before_the_peers_first_resume_resends_it_all() {
        let mut s = Sequencing::new(1);
        s.on_send(Lane::Control, &chat(0));
        s.on_send(Lane::Control, &chat(1));
        assert_eq!(
            s.on_resume(9, [1, 0], true).unwrap().unwrap(),
            vec![chat(1)]
        );
        let mut s = Sequencing::new(1);
        s.on_send(Lane::Control, &chat(0));
        assert_eq!(
            s.on_resume(9, [3, 0], false).unwrap().unwrap(),
            vec![],
            "a start: the counts are of a stream this end never sent"
        );
    }

    #[test]
    fn a_restarted_peer_starts_the_stream_afresh() {
        let mut s = Sequencing::new(1);
        s.on_resume(9, [0, 0], false).unwrap();
        s.on_send(Lane::Control, &chat(0));
        s.on_receive(Lane::Control, &chat(0));
        assert_eq!(s.on_resume(10, [0, 0], true), Ok(None));
        assert_eq!(s.unacked_bytes(), 0);
        assert_eq!(s.peer(), Some(10));
        assert_eq!(
            s.resume_frame(),
            Frame::Control(Control::Resume {
                incarnation: 1,
                next: [0, 0]
            })
        );
    }

    #[test]
    fn the_buffer_is_bounded_by_what_is_unacknowledged() {
        let mut s = Sequencing::new(1);
        let data = Frame::Channel(ChannelFrame::Data {
            channel: 1,
            data: vec![0; 64 * 1024].into(),
        });
        let mut n = 0;
        while !s.full() {
            s.on_send(Lane::Bulk, &data);
            n += 1;
        }
        assert_eq!(n, MAX_UNACKED_BYTES.div_ceil(64 * 1024 + 16));
        s.on_ack([0, n as u64]).unwrap();
        assert_eq!(s.unacked_bytes(), 0);
        assert!(!s.full());
    }
}
