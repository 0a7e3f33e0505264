//! XTCP tuning: liveness and windows.

use std::sync::Arc;
use std::time::Duration;

/// Largest datagram XTCP will use, whatever the path allows. Measured
/// with quinn 0.11 on loopback: path MTU discovery up to 65 000 bytes runs
/// at 1.2 GB/s, but at its 65 495-byte result for a 65 527 bound the
/// connection stalls at a few MB/s with no loss.
pub const MAX_DATAGRAM: usize = 65_000;

/// Smallest datagram QUIC allows (RFC 9000 §14).
pub const MIN_DATAGRAM: usize = 1200;

/// Congestion controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Congestion {
    /// CUBIC (RFC 9438): what kernel TCP does by default; backs off on
    /// every loss, so random loss caps it (≈ 3 Mbit/s at 40 ms + 1%).
    Cubic,
    /// BBR: paces at the measured bottleneck rate and does not treat
    /// random loss as congestion, which is what lossy Wi-Fi and mobile
    /// paths need.
    Bbr,
    /// CUBIC that treats loss as congestion only when the RTT shows a
    /// queue or loss is heavy ([`crate::congestion`]): CUBIC's behaviour
    /// on clean and congested paths, and most of the link on lossy ones.
    LossTolerantCubic,
}

/// Settings of one XTCP connection.
#[derive(Debug, Clone)]
pub struct XtcpConfig {
    /// Idle time after which a keepalive is sent. Also keeps NAT bindings
    /// warm: most NATs expire idle UDP mappings after 30 s or more.
    pub keepalive: Duration,
    /// Silence after which the path counts as dead and the stream fails.
    /// The default suits interactive sessions: a dead path is noticed in
    /// about 10 s.
    pub dead_after: Duration,
    /// Bytes the peer may send ahead on the stream (receive window).
    pub stream_window: u64,
    /// Bytes we buffer for sending before `write` waits.
    pub send_window: u64,
    /// Initial round-trip estimate before the first sample.
    pub initial_rtt: Duration,
    /// Congestion controller.
    pub congestion: Congestion,
}

impl Default for XtcpConfig {
    fn default() -> Self {
        Self {
            keepalive: Duration::from_secs(3),
            dead_after: Duration::from_secs(10),
            // Enough for ~1 Gbit/s at 100 ms RTT.
            stream_window: 16 << 20,
            send_window: 16 << 20,
            initial_rtt: Duration::from_millis(100),
            congestion: Congestion::LossTolerantCubic,
        }
    }
}

impl XtcpConfig {
    /// quinn's transport configuration for these settings and a path that
    /// carries datagrams up to `max_datagram` bytes.
    pub(crate) fn transport(&self, max_datagram: usize) -> quinn::TransportConfig {
        let mut t = quinn::TransportConfig::default();
        t.keep_alive_interval(Some(self.keepalive));
        t.max_idle_timeout(quinn::IdleTimeout::try_from(self.dead_after).ok());
        t.stream_receive_window(
            quinn::VarInt::from_u64(self.stream_window).unwrap_or(quinn::VarInt::MAX),
        );
        t.receive_window(
            quinn::VarInt::from_u64(self.stream_window * 2).unwrap_or(quinn::VarInt::MAX),
        );
        t.send_window(self.send_window);
        t.initial_rtt(self.initial_rtt);
        match self.congestion {
            Congestion::Cubic => {
                t.congestion_controller_factory(Arc::new(quinn::congestion::CubicConfig::default()))
            }
            Congestion::Bbr => {
                t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()))
            }
            Congestion::LossTolerantCubic => t.congestion_controller_factory(Arc::new(
                crate::congestion::LossTolerantCubicConfig::default(),
            )),
        };
        // One bidirectional stream per connection; refuse the rest.
        t.max_concurrent_bidi_streams(1u32.into());
        t.max_concurrent_uni_streams(0u32.into());
        let mut mtu = quinn::MtuDiscoveryConfig::default();
        let upper = max_datagram.clamp(MIN_DATAGRAM, MAX_DATAGRAM) as u16;
        mtu.upper_bound(upper);
        t.mtu_discovery_config(Some(mtu));
        t
    }
}
