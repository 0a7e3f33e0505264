//! How much bulk data may be in flight: enough to keep the path busy, and
//! no more than [`QUEUE_TARGET`] of queue on top of the path's base round
//! trip while an interactive channel is open, so that a keystroke sent now
//! never waits long behind bulk data already in the socket buffers, the
//! relay and the transport below (where this end's priorities cannot reach
//! it). While only the session's own frames share the path with bulk data
//! (chat, pings, grants) the budget is [`CHAT_QUEUE_TARGET`]: nobody sees
//! 25 ms in a chat line, and on busy cores a transfer needs that room —
//! a process waits longer than a millisecond for its turn, and a pipeline
//! capped at a millisecond of data runs dry meanwhile.
//!
//! In flight is what bulk channels sent and the peer has not yet granted
//! back (it grants as it consumes). The delivery rate is measured from
//! those grants (the fastest of the last second, as BBR does with its
//! bandwidth filter); the base round trip is the smallest one the pings
//! and probes measured. The cap is `rate × (base RTT + QUEUE_TARGET)`: if
//! the path could go faster, the cap lets the rate grow by
//! `(base + target) / base` per round trip; at the path's speed it holds
//! about `QUEUE_TARGET` of queue. Until a rate is known, only the
//! channels' windows limit.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Queueing delay the bulk data may add to an interactive byte.
pub const QUEUE_TARGET: Duration = Duration::from_millis(1);
/// Queueing delay the bulk data may add to a chat line or a ping, while no
/// interactive channel is open.
pub const CHAT_QUEUE_TARGET: Duration = Duration::from_millis(25);
/// The cap never goes below this, so that bulk data always moves. Not
/// more: on a slow link every byte of it is queue in front of a keystroke
/// — at 100 Mbit/s a floor of 256 KiB was 21 ms of echo delay (measured
/// in the NAT lab), 16 KiB is 1.3 ms.
pub const MIN_IN_FLIGHT: u64 = 16 << 10;
/// The smallest bulk frame the pacing cuts (one TLS record's worth): a
/// bulk frame is at most the room left under the cap, but not smaller
/// than this, so that the cap is overshot by at most this much.
pub const MIN_FRAME: usize = 16 << 10;
/// How long a delivery-rate sample counts.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Shortest interval a rate sample covers.
const SAMPLE: Duration = Duration::from_millis(5);

/// The bulk pacing state of one end.
#[derive(Debug, Default)]
pub struct Pacing {
    in_flight: u64,
    base_rtt: Option<Duration>,
    /// Bytes credited since `since`.
    credited: u64,
    since: Option<Instant>,
    /// (when, bytes per second) samples of the last [`RATE_WINDOW`].
    rates: VecDeque<(Instant, f64)>,
}

impl Pacing {
    /// Bulk bytes sent.
    pub fn sent(&mut self, n: usize) {
        self.in_flight += n as u64;
    }

    /// Bulk bytes the peer granted back at `now`.
    pub fn credited(&mut self, now: Instant, n: u32) {
        self.in_flight = self.in_flight.saturating_sub(u64::from(n));
        let Some(since) = self.since else {
            // The first grant starts the clock; what it covers was
            // delivered over an unknown time.
            self.since = Some(now);
            return;
        };
        self.credited += u64::from(n);
        let span = now.saturating_duration_since(since);
        if span >= SAMPLE {
            let rate = self.credited as f64 / span.as_secs_f64();
            self.rates.push_back((now, rate));
            self.credited = 0;
            self.since = Some(now);
        }
        while self
            .rates
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > RATE_WINDOW)
        {
            self.rates.pop_front();
        }
    }

    /// Bulk bytes that will never be granted back (their channel is
    /// gone, the receiver having used them) stop counting as in flight.
    pub fn forgive(&mut self, n: u64) {
        self.in_flight = self.in_flight.saturating_sub(n);
    }

    /// Bulk bytes sent and not yet granted back.
    #[cfg(test)]
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// A round trip measured at the session layer.
    pub fn rtt(&mut self, rtt: Duration) {
        self.base_rtt = Some(self.base_rtt.map_or(rtt, |b| b.min(rtt)));
    }

    /// Whether more bulk data may go now, with `target` of queue allowed.
    pub fn may_send(&self, target: Duration) -> bool {
        self.in_flight < self.cap(target)
    }

    /// The largest bulk frame to send now: the room left under the cap
    /// (a slow link then carries small frames, and a keystroke waits
    /// behind less), at least [`MIN_FRAME`], at most a full data frame.
    pub fn frame_limit(&self, target: Duration) -> usize {
        let room = self.cap(target).saturating_sub(self.in_flight);
        usize::try_from(room)
            .unwrap_or(usize::MAX)
            .clamp(MIN_FRAME, lifeline_protocol::e2e::MAX_DATA)
    }

    /// The current cap on bulk bytes in flight, with `target` of queue
    /// allowed.
    pub fn cap(&self, target: Duration) -> u64 {
        let rate = self.rates.iter().map(|(_, r)| *r).fold(0.0, f64::max);
        match self.base_rtt {
            Some(base) if rate > 0.0 => {
                let bytes = rate * (base + target).as_secs_f64();
                (bytes as u64).max(MIN_IN_FLIGHT)
            }
            _ => u64::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_follows_rate_and_base_rtt() {
        let t0 = Instant::now();
        let mut p = Pacing::default();
        assert_eq!(
            p.cap(QUEUE_TARGET),
            u64::MAX,
            "unknown rate: only windows limit"
        );
        p.rtt(Duration::from_millis(7));
        p.rtt(Duration::from_millis(2));
        // 100 MB/s for 50 ms.
        for i in 1..=10u64 {
            p.sent(500_000);
            p.credited(t0 + Duration::from_millis(5 * i), 500_000);
        }
        let cap = p.cap(QUEUE_TARGET) as f64;
        // 100 MB/s × (2 ms + QUEUE_TARGET).
        let want = 100e6 * (Duration::from_millis(2) + QUEUE_TARGET).as_secs_f64();
        assert!((cap - want).abs() < want / 10.0, "{cap} vs {want}");
        assert!(p.may_send(QUEUE_TARGET));
        p.sent(cap as usize + 1);
        assert!(!p.may_send(QUEUE_TARGET));
        // Without an interactive channel, 25 ms of queue: 2.7 MB.
        let chat = p.cap(CHAT_QUEUE_TARGET) as f64;
        let want = 100e6 * (Duration::from_millis(2) + CHAT_QUEUE_TARGET).as_secs_f64();
        assert!((chat - want).abs() < want / 10.0, "{chat} vs {want}");
        assert!(p.may_send(CHAT_QUEUE_TARGET));
    }

    #[test]
    fn a_slow_link_gets_frames_no_larger_than_the_room_under_the_cap() {
        let t0 = Instant::now();
        let mut p = Pacing::default();
        let full = lifeline_protocol::e2e::MAX_DATA;
        assert_eq!(p.frame_limit(QUEUE_TARGET), full, "unknown rate");
        p.rtt(Duration::from_micros(300));
        // 12.5 MB/s (100 Mbit/s) for 50 ms: the cap is 16 KB, the floor.
        for i in 1..=10u64 {
            p.sent(62_500);
            p.credited(t0 + Duration::from_millis(5 * i), 62_500);
        }
        assert_eq!(p.cap(QUEUE_TARGET), MIN_IN_FLIGHT);
        assert_eq!(p.frame_limit(QUEUE_TARGET), MIN_FRAME);
        // Room for 20 KB under a chat line's cap: a 20 KB frame.
        let chat = p.cap(CHAT_QUEUE_TARGET);
        p.sent(usize::try_from(chat).unwrap() - 20_000);
        assert_eq!(p.frame_limit(CHAT_QUEUE_TARGET), 20_000);
        // A fast path: full frames.
        let mut fast = Pacing::default();
        fast.rtt(Duration::from_millis(2));
        for i in 1..=10u64 {
            fast.sent(500_000);
            fast.credited(t0 + Duration::from_millis(5 * i), 500_000);
        }
        assert_eq!(fast.frame_limit(QUEUE_TARGET), full);
    }
}
