//! Loss-tolerant CUBIC: CUBIC that tells random loss from congestion.
//!
//! Loss-based congestion control reads every lost packet as "the
//! bottleneck queue overflowed" and halves (CUBIC: ×0.7) its window. On a
//! Wi-Fi or mobile path that drops 1–5% of packets at random, with no queue
//! anywhere, that caps a flow at a few Mbit/s (the Mathis bound,
//! ≈ MSS/RTT·1.2/√p): 3 Mbit/s at 40 ms and 1%, 0.6 Mbit/s at 100 ms and
//! 5%, whatever the link could carry — which is what kernel TCP (CUBIC)
//! does on such a path.
//!
//! A loss is treated as congestion, and passed to the CUBIC underneath,
//! when any of these holds:
//! * the round-trip time shows a queue: the latest RTT exceeds the minimum
//!   by more than [`QUEUE_DELAY_FRACTION`] of it and at least
//!   [`QUEUE_DELAY_FLOOR`] (a queue that overflows is a queue that first
//!   grew; this is how TCP Veno and similar loss discriminators work);
//! * recent loss is heavy: more than [`MAX_NOISE_LOSS`] of the bytes sent
//!   lately were lost (a policer, or a shallow-buffered bottleneck that
//!   drops without building delay, still gets a response);
//! * quinn declares persistent congestion (every packet over several PTOs
//!   lost).
//!
//! Otherwise the loss is noise: the data is retransmitted as always, and
//! the window is left where it is. BBR (also offered) ignores loss
//! altogether; measured here, quinn 0.11's BBR sizes its window from the
//! minimum RTT, which on a LAN or loopback is a few tens of microseconds,
//! and so runs at half the speed of CUBIC on clean fast paths.

use quinn::congestion::{Controller, ControllerFactory, ControllerMetrics, Cubic, CubicConfig};
use quinn_proto::RttEstimator;
use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Queueing delay, as a fraction of the minimum RTT, above which a loss
/// counts as congestion.
pub const QUEUE_DELAY_FRACTION: f64 = 0.25;
/// ... and at least this much queueing delay (RTT jitter on a quiet path
/// stays below it).
pub const QUEUE_DELAY_FLOOR: Duration = Duration::from_millis(2);
/// Loss rate (of bytes, recently) above which loss counts as congestion
/// even without queueing delay.
pub const MAX_NOISE_LOSS: f64 = 0.20;
/// The loss-rate memory halves after this many bytes (acked + lost) have
/// been counted, so the rate follows the last few megabytes.
const LOSS_MEMORY: u64 = 4 << 20;
/// Fewer bytes than this counted: the loss rate is not yet meaningful.
const LOSS_MIN_SAMPLE: u64 = 64 << 10;

/// Factory for [`LossTolerantCubic`].
#[derive(Debug, Clone, Default)]
pub struct LossTolerantCubicConfig {
    cubic: Arc<CubicConfig>,
}

impl ControllerFactory for LossTolerantCubicConfig {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        Box::new(LossTolerantCubic {
            inner: Box::new(Cubic::new(self.cubic.clone(), now, current_mtu)),
            min_rtt: None,
            latest_rtt: Duration::ZERO,
            acked: 0,
            lost: 0,
            ignored: 0,
        })
    }
}

/// CUBIC that ignores loss a queue did not cause (see the module docs).
pub struct LossTolerantCubic {
    inner: Box<dyn Controller>,
    min_rtt: Option<Duration>,
    latest_rtt: Duration,
    /// Recent bytes acknowledged and lost (decaying).
    acked: u64,
    lost: u64,
    /// Loss events treated as noise (for diagnostics).
    ignored: u64,
}

impl std::fmt::Debug for LossTolerantCubic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LossTolerantCubic")
            .field("window", &self.inner.window())
            .field("min_rtt", &self.min_rtt)
            .field("latest_rtt", &self.latest_rtt)
            .field("ignored", &self.ignored)
            .finish()
    }
}

impl LossTolerantCubic {
    fn decay(&mut self) {
        if self.acked + self.lost > LOSS_MEMORY {
            self.acked /= 2;
            self.lost /= 2;
        }
    }

    /// Whether a loss now reads as congestion.
    fn congestive(&self) -> bool {
        let queued = match self.min_rtt {
            Some(min) => {
                let allowance = min.mul_f64(QUEUE_DELAY_FRACTION).max(QUEUE_DELAY_FLOOR);
                self.latest_rtt > min + allowance
            }
            // No RTT sample yet: be conventional.
            None => true,
        };
        let counted = self.acked + self.lost;
        let heavy =
            counted >= LOSS_MIN_SAMPLE && self.lost as f64 > MAX_NOISE_LOSS * counted as f64;
        queued || heavy
    }
}

impl Controller for LossTolerantCubic {
    fn on_sent(&mut self, now: Instant, bytes: u64, last_packet_number: u64) {
        self.inner.on_sent(now, bytes, last_packet_number);
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        self.min_rtt = Some(rtt.min());
        // max(smoothed, latest): one lucky fast sample must not hide a queue.
        self.latest_rtt = rtt.conservative();
        self.acked += bytes;
        self.decay();
        self.inner.on_ack(now, sent, bytes, app_limited, rtt);
    }

    fn on_end_acks(
        &mut self,
        now: Instant,
        in_flight: u64,
        app_limited: bool,
        largest_packet_num_acked: Option<u64>,
    ) {
        self.inner
            .on_end_acks(now, in_flight, app_limited, largest_packet_num_acked);
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        is_persistent_congestion: bool,
        lost_bytes: u64,
    ) {
        self.lost += lost_bytes;
        self.decay();
        if is_persistent_congestion || self.congestive() {
            self.inner
                .on_congestion_event(now, sent, is_persistent_congestion, lost_bytes);
        } else {
            self.ignored += 1;
        }
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.inner.on_mtu_update(new_mtu);
    }

    fn window(&self) -> u64 {
        self.inner.window()
    }

    fn metrics(&self) -> ControllerMetrics {
        self.inner.metrics()
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(Self {
            inner: self.inner.clone_box(),
            min_rtt: self.min_rtt,
            latest_rtt: self.latest_rtt,
            acked: self.acked,
            lost: self.lost,
            ignored: self.ignored,
        })
    }

    fn initial_window(&self) -> u64 {
        self.inner.initial_window()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}
