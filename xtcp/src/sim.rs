//! A deterministic datagram link simulator with impairments.
//!
//! [`SimLink::pair`] gives two [`SimPath`]s joined by a link with the same
//! [`LinkProfile`] in each direction and independent seeded random streams.
//! Each datagram is, in order: dropped if larger than the MTU; dropped by
//! random loss, by a Gilbert–Elliott burst model, or inside a scheduled
//! loss window; queued at the bottleneck (tail drop when its queue is
//! full) and serialised at its rate; delayed by the one-way delay plus
//! jitter (jitter never reorders); with some probability delayed further
//! (reordering) and/or duplicated.
//!
//! Time is tokio's, so under a paused clock (`#[tokio::test(start_paused =
//! true)]`) a simulated minute of 100 ms RTT transfer runs in real
//! milliseconds, and the same seed gives the same packet fates.

use crate::path::{BoxFuture, DatagramPath};
use bytes::Bytes;
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Gilbert–Elliott burst loss: a good and a bad state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurstLoss {
    /// Per-packet chance of entering the bad state.
    pub enter: f64,
    /// Per-packet chance of leaving it.
    pub exit: f64,
    /// Loss probability while in the bad state.
    pub loss: f64,
}

/// A window of extra loss, relative to the link's creation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossWindow {
    /// Start, after the link was created.
    pub from: Duration,
    /// Length.
    pub length: Duration,
    /// Loss probability inside it.
    pub loss: f64,
}

/// What one direction of the link does to datagrams.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkProfile {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Extra delay, uniform in `0..=jitter` (order preserved).
    pub jitter: Duration,
    /// Independent random loss probability.
    pub loss: f64,
    /// Burst loss model.
    pub burst: Option<BurstLoss>,
    /// Scheduled loss windows.
    pub windows: Vec<LossWindow>,
    /// Probability a datagram is held back by `reorder_delay` (overtaken).
    pub reorder: f64,
    /// How long a reordered datagram is held back.
    pub reorder_delay: Duration,
    /// Probability a datagram is delivered twice.
    pub duplicate: f64,
    /// Bottleneck rate in bits per second (`None`: unlimited).
    pub rate_bps: Option<u64>,
    /// Bottleneck queue in bytes (tail drop beyond it).
    pub queue_bytes: usize,
    /// Largest datagram carried.
    pub mtu: usize,
}

impl Default for LinkProfile {
    fn default() -> Self {
        Self::clean()
    }
}

impl LinkProfile {
    /// No impairment, loopback-sized MTU.
    pub fn clean() -> Self {
        Self {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            burst: None,
            windows: Vec::new(),
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            duplicate: 0.0,
            rate_bps: None,
            queue_bytes: usize::MAX,
            mtu: 65_527,
        }
    }

    /// A WAN-like path: `rtt` round trip, `loss` random loss, internet MTU,
    /// a bottleneck of `rate_bps` with a queue of one bandwidth-delay
    /// product (at least 64 KiB).
    pub fn wan(rtt: Duration, loss: f64, rate_bps: u64) -> Self {
        let bdp = (rate_bps as f64 / 8.0 * rtt.as_secs_f64()) as usize;
        Self {
            delay: rtt / 2,
            loss,
            rate_bps: Some(rate_bps),
            queue_bytes: bdp.max(64 * 1024),
            mtu: 1500 - 28,
            ..Self::clean()
        }
    }
}

/// Counters of what the link did (one direction).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Datagrams offered.
    pub sent: u64,
    /// Delivered (duplicates count twice).
    pub delivered: u64,
    /// Dropped by random, burst or window loss.
    pub lost: u64,
    /// Dropped at the full bottleneck queue.
    pub queue_drops: u64,
    /// Dropped for exceeding the MTU.
    pub mtu_drops: u64,
    /// Held back to be overtaken.
    pub reordered: u64,
    /// Delivered twice.
    pub duplicated: u64,
}

/// SplitMix64: small, seedable, good enough for simulation.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
}

#[derive(Debug, PartialEq, Eq)]
struct InFlight {
    at: Instant,
    seq: u64,
    data: Bytes,
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Min-heap on (time, sequence).
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug)]
struct DirState {
    rng: Rng,
    bad: bool,
    seq: u64,
    /// When the bottleneck finishes serialising what it holds.
    busy_until: Instant,
    /// Latest scheduled in-order delivery (jitter never reorders).
    last_delivery: Instant,
    heap: BinaryHeap<InFlight>,
    stats: LinkStats,
    waker: Option<Waker>,
    timer: Option<Pin<Box<Sleep>>>,
    closed: bool,
    blocked: bool,
}

/// One direction of a link.
#[derive(Debug)]
struct Direction {
    profile: LinkProfile,
    created: Instant,
    state: Mutex<DirState>,
}

impl Direction {
    fn new(profile: LinkProfile, seed: u64) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Self {
            profile,
            created: now,
            state: Mutex::new(DirState {
                rng: Rng(seed),
                bad: false,
                seq: 0,
                busy_until: now,
                last_delivery: now,
                heap: BinaryHeap::new(),
                stats: LinkStats::default(),
                waker: None,
                timer: None,
                closed: false,
                blocked: false,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DirState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, datagram: &[u8]) {
        let p = &self.profile;
        let now = Instant::now();
        let mut st = self.lock();
        if st.closed {
            return;
        }
        st.stats.sent += 1;
        if st.blocked {
            st.stats.lost += 1;
            return;
        }
        if datagram.len() > p.mtu {
            st.stats.mtu_drops += 1;
            return;
        }
        // Loss: independent, burst state, scheduled windows.
        let mut lost = st.rng.chance(p.loss);
        if let Some(b) = p.burst {
            let flip = if st.bad { b.exit } else { b.enter };
            if st.rng.chance(flip) {
                st.bad = !st.bad;
            }
            if st.bad && st.rng.chance(b.loss) {
                lost = true;
            }
        }
        let since = now.duration_since(self.created);
        for w in &p.windows {
            if since >= w.from && since < w.from + w.length && st.rng.chance(w.loss) {
                lost = true;
            }
        }
        if lost {
            st.stats.lost += 1;
            return;
        }
        // Bottleneck: serialise at the rate behind what is queued.
        let mut depart = now;
        if let Some(rate) = p.rate_bps {
            let start = st.busy_until.max(now);
            let queued_bytes =
                (start.duration_since(now).as_secs_f64() * rate as f64 / 8.0) as usize;
            if queued_bytes + datagram.len() > p.queue_bytes {
                st.stats.queue_drops += 1;
                return;
            }
            let tx = Duration::from_secs_f64(datagram.len() as f64 * 8.0 / rate as f64);
            st.busy_until = start + tx;
            depart = st.busy_until;
        }
        let jitter = if p.jitter.is_zero() {
            Duration::ZERO
        } else {
            p.jitter.mul_f64(st.rng.unit())
        };
        let mut at = (depart + p.delay + jitter).max(st.last_delivery);
        st.last_delivery = at;
        if st.rng.chance(p.reorder) {
            st.stats.reordered += 1;
            at += p.reorder_delay;
        }
        let copies = if st.rng.chance(p.duplicate) {
            st.stats.duplicated += 1;
            2
        } else {
            1
        };
        let data = Bytes::copy_from_slice(datagram);
        for _ in 0..copies {
            st.seq += 1;
            let seq = st.seq;
            st.heap.push(InFlight {
                at,
                seq,
                data: data.clone(),
            });
        }
        // The receiver may be sleeping until a later delivery: wake it to
        // re-arm its timer.
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }

    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut st = self.lock();
        let now = Instant::now();
        if let Some(top) = st.heap.peek() {
            if top.at <= now {
                let pkt = st.heap.pop().map(|p| p.data).unwrap_or_default();
                st.stats.delivered += 1;
                st.timer = None;
                let n = pkt.len().min(buf.len());
                buf[..n].copy_from_slice(&pkt[..n]);
                return Poll::Ready(Ok(n));
            }
            let at = top.at;
            let timer = st
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if timer.deadline() != at {
                timer.as_mut().reset(at);
            }
            if timer.as_mut().poll(cx).is_ready() {
                // Due now; let the caller poll again right away.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        // A cut link is silent, as a dead network path is: no error, just
        // nothing (an error here would stop the transport's receive loop).
        st.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

use std::future::Future;

/// One end of a simulated link.
#[derive(Debug)]
pub struct SimPath {
    outbound: Arc<Direction>,
    inbound: Arc<Direction>,
    local: SocketAddr,
    peer: SocketAddr,
    /// Which incarnation of this end we are; see [`SimPath::restart`].
    incarnation: u64,
    /// The live incarnation, shared by every handle of this end.
    live: Arc<AtomicU64>,
}

/// Constructor for linked [`SimPath`] pairs.
#[derive(Debug)]
pub struct SimLink;

impl SimLink {
    /// Two ends joined by `profile` (both directions), seeded by `seed`.
    pub fn pair(profile: LinkProfile, seed: u64) -> (Arc<SimPath>, Arc<SimPath>) {
        Self::asymmetric(profile.clone(), profile, seed)
    }

    /// Two ends with a different profile per direction (`a_to_b`, `b_to_a`).
    pub fn asymmetric(
        a_to_b: LinkProfile,
        b_to_a: LinkProfile,
        seed: u64,
    ) -> (Arc<SimPath>, Arc<SimPath>) {
        let ab = Direction::new(a_to_b, seed ^ 0xA5A5_A5A5_0000_0001);
        let ba = Direction::new(b_to_a, seed ^ 0x5A5A_5A5A_0000_0002);
        let a_addr: SocketAddr = ([192, 0, 2, 1], 1000).into();
        let b_addr: SocketAddr = ([192, 0, 2, 2], 2000).into();
        (
            Arc::new(SimPath {
                outbound: ab.clone(),
                inbound: ba.clone(),
                local: a_addr,
                peer: b_addr,
                incarnation: 0,
                live: Arc::new(AtomicU64::new(0)),
            }),
            Arc::new(SimPath {
                outbound: ba,
                inbound: ab,
                local: b_addr,
                peer: a_addr,
                incarnation: 0,
                live: Arc::new(AtomicU64::new(0)),
            }),
        )
    }
}

impl SimPath {
    /// A process restart on this end: returns a fresh socket at the same
    /// address, and this handle goes dead like the crashed process's socket
    /// (it sends nothing and receives nothing; whatever it had not read is
    /// lost, and nothing says goodbye to the peer).
    pub fn restart(&self) -> Arc<SimPath> {
        let incarnation = self.live.fetch_add(1, Ordering::SeqCst) + 1;
        self.inbound.lock().heap.clear();
        // Wake the dead handle's receiver so its task sees it is dead.
        if let Some(w) = self.inbound.lock().waker.take() {
            w.wake();
        }
        Arc::new(SimPath {
            outbound: self.outbound.clone(),
            inbound: self.inbound.clone(),
            local: self.local,
            peer: self.peer,
            incarnation,
            live: self.live.clone(),
        })
    }

    fn dead(&self) -> bool {
        self.live.load(Ordering::SeqCst) != self.incarnation
    }

    /// What the link did to datagrams we sent.
    pub fn sent_stats(&self) -> LinkStats {
        self.outbound.lock().stats
    }

    /// Drops everything this end sends while `blocked` (a crash that takes
    /// the goodbye with it, or a one-way outage).
    pub fn block_outbound(&self, blocked: bool) {
        self.outbound.lock().blocked = blocked;
    }

    /// Cuts the link both ways: everything in flight is lost and nothing
    /// more gets through (a dead path).
    pub fn cut(&self) {
        for d in [&self.outbound, &self.inbound] {
            let mut st = d.lock();
            st.closed = true;
            st.heap.clear();
        }
    }
}

impl DatagramPath for SimPath {
    fn try_send(&self, datagram: &[u8]) -> io::Result<()> {
        if !self.dead() {
            self.outbound.send(datagram);
        }
        Ok(())
    }

    fn writable(self: Arc<Self>) -> BoxFuture<io::Result<()>> {
        // Like a NIC with room: the network, not the sender, drops.
        Box::pin(std::future::ready(Ok(())))
    }

    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if self.dead() {
            // Never ready again, and never registered: the live handle
            // owns the receive waker.
            return Poll::Pending;
        }
        self.inbound.poll_recv(cx, buf)
    }

    fn max_datagram_size(&self) -> usize {
        self.outbound.profile.mtu.max(1200)
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn recv(p: &Arc<SimPath>) -> Vec<u8> {
        let mut buf = vec![0u8; 70_000];
        let n = std::future::poll_fn(|cx| p.poll_recv(cx, &mut buf))
            .await
            .unwrap();
        buf.truncate(n);
        buf
    }

    #[tokio::test(start_paused = true)]
    async fn delay_is_applied_and_order_kept() {
        let (a, b) = SimLink::pair(
            LinkProfile {
                delay: Duration::from_millis(50),
                jitter: Duration::from_millis(20),
                ..LinkProfile::clean()
            },
            1,
        );
        let t0 = Instant::now();
        for i in 0..10u8 {
            a.try_send(&[i]).unwrap();
        }
        for i in 0..10u8 {
            assert_eq!(recv(&b).await, vec![i]);
        }
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(50) && took <= Duration::from_millis(71),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn loss_is_seeded_and_near_its_rate() {
        let profile = LinkProfile {
            loss: 0.1,
            ..LinkProfile::clean()
        };
        let run = |seed| {
            let (a, _b) = SimLink::pair(profile.clone(), seed);
            for _ in 0..10_000 {
                a.try_send(&[0; 100]).unwrap();
            }
            a.sent_stats().lost
        };
        let lost = run(7);
        assert_eq!(lost, run(7), "same seed, same fates");
        assert!((900..1100).contains(&lost), "{lost}");
    }

    #[tokio::test(start_paused = true)]
    async fn bottleneck_queue_tail_drops_and_mtu_drops() {
        let (a, b) = SimLink::pair(
            LinkProfile {
                rate_bps: Some(8_000_000), // 1 MB/s
                queue_bytes: 10_000,
                mtu: 1000,
                ..LinkProfile::clean()
            },
            3,
        );
        a.try_send(&[0; 1001]).unwrap();
        for _ in 0..20 {
            a.try_send(&[0; 1000]).unwrap();
        }
        let s = a.sent_stats();
        assert_eq!(s.mtu_drops, 1);
        assert_eq!(s.queue_drops, 10);
        let t0 = Instant::now();
        for _ in 0..10 {
            recv(&b).await;
        }
        // 10 kB at 1 MB/s.
        assert!(t0.elapsed() >= Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn reordering_and_duplication_happen() {
        let (a, b) = SimLink::pair(
            LinkProfile {
                delay: Duration::from_millis(10),
                reorder: 0.2,
                reorder_delay: Duration::from_millis(5),
                duplicate: 0.1,
                ..LinkProfile::clean()
            },
            5,
        );
        for i in 0..200u8 {
            a.try_send(&[i]).unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let s = a.sent_stats();
        let mut got = Vec::new();
        for _ in 0..(200 + s.duplicated) {
            got.push(recv(&b).await[0]);
        }
        assert!(s.reordered > 10 && s.duplicated > 5, "{s:?}");
        assert!(
            got.windows(2).any(|w| w[1] < w[0]),
            "something arrived out of order"
        );
        let mut sorted = got.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 200);
    }
}
