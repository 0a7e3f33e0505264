//! The node's Prometheus metrics, with the Prometheus project's own client
//! (`prometheus-client`): counters the code increments where things happen
//! (connections accepted and refused by reason, pairings and their latency,
//! relayed bytes each way, portal requests by route and status, logins,
//! STUN requests, store query latency) and values read at scrape time (the
//! node's gauges, sessions by state from the store, the process's CPU,
//! memory and open files). Names and labels follow Prometheus' conventions
//! (`lifeline_` prefix, base units, `_total` counters), which the tests
//! check with `promtool check metrics`.
//!
//! Every label value comes from a closed set named here — never a peer's
//! address, a GUID or a path — so no client can grow the page.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

type Labels = Vec<(&'static str, String)>;
/// Latencies by label, each a histogram with [`latency_buckets`].
type Timings = Family<Labels, Histogram, fn() -> Histogram>;

/// 100 µs to 26 s, ×4 per bucket.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 4.0, 10))
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The public port was at its connection cap.
    AtCap,
    /// Too many connections from the address.
    PerIpLimit,
    /// Nothing sent, or the TLS handshake not done, within the deadline.
    HandshakeDeadline,
    /// The TLS handshake failed.
    TlsFailed,
    /// A TLS protocol (ALPN) the node does not speak.
    BadAlpn,
    /// The relay refused the hello (by the code it answered with).
    Relay(lifeline_protocol::relay::RefuseCode),
}

impl Refusal {
    fn reason(self) -> &'static str {
        use lifeline_protocol::relay::RefuseCode as C;
        match self {
            Refusal::AtCap => "at_cap",
            Refusal::PerIpLimit => "per_ip_limit",
            Refusal::HandshakeDeadline => "handshake_deadline",
            Refusal::TlsFailed => "tls_failed",
            Refusal::BadAlpn => "bad_alpn",
            Refusal::Relay(c) => match c {
                C::UnknownSession => "unknown_session",
                C::Expired => "expired",
                C::Ended => "ended",
                C::AlreadyConnected => "already_connected",
                C::NotAuthorized => "not_authorized",
                C::NotWaiting => "not_waiting",
                C::RateLimited => "rate_limited",
                C::BadRequest => "bad_request",
                C::ShuttingDown => "shutting_down",
                C::UnsupportedVersion => "unsupported_version",
                C::Internal => "internal",
                C::Other(_) => "other",
            },
        }
    }
}

/// The node's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    accepted: Family<Labels, Counter>,
    refused: Family<Labels, Counter>,
    pairings: Counter,
    pairing_seconds: Histogram,
    relay_bytes: Family<Labels, Counter>,
    portal: Family<Labels, Counter>,
    logins: Family<Labels, Counter>,
    pin_attempts: Family<Labels, Counter>,
    stun: Counter,
    store_seconds: Timings,
    /// Read at scrape time: connections open, the cap, applets waiting,
    /// relays active, draining.
    gauges: [Gauge; 5],
    sessions: Family<Labels, Gauge>,
    cpu: Counter<f64, AtomicU64>,
    memory: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
}

/// Values the scrape reads from elsewhere (the node's own counters).
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeValues {
    /// Connections open on the public port.
    pub connections_open: u64,
    /// The public port's cap.
    pub connections_cap: u64,
    /// Applets waiting on this node.
    pub applets_waiting: u64,
    /// Sessions relayed by this node now.
    pub relays_active: u64,
    /// 1 while draining.
    pub draining: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered.
    pub fn new() -> Self {
        let mut r = Registry::default();
        let accepted = Family::<Labels, Counter>::default();
        r.register(
            "lifeline_connections_accepted",
            "Connections on the public port past TLS, by protocol (relay, portal)",
            accepted.clone(),
        );
        let refused = Family::<Labels, Counter>::default();
        r.register(
            "lifeline_connections_refused",
            "Connections turned away, by reason (at_cap, per_ip_limit, handshake_deadline, \
             tls_failed, bad_alpn, or the relay's refusal code)",
            refused.clone(),
        );
        let pairings = Counter::default();
        r.register(
            "lifeline_pairings",
            "Applets and consoles paired by this node",
            pairings.clone(),
        );
        let pairing_seconds = latency_buckets();
        r.register_with_unit(
            "lifeline_pairing",
            "From the second end's hello to both ends told they are paired",
            Unit::Seconds,
            pairing_seconds.clone(),
        );
        let relay_bytes = Family::<Labels, Counter>::default();
        r.register_with_unit(
            "lifeline_relay",
            "Bytes relayed, by direction (applet_to_console, console_to_applet)",
            Unit::Bytes,
            relay_bytes.clone(),
        );
        let portal = Family::<Labels, Counter>::default();
        r.register(
            "lifeline_portal_requests",
            "Portal requests, by route and HTTP status",
            portal.clone(),
        );
        let pin_attempts = Family::<Labels, Counter>::default();
        r.register(
            "lifeline_pin_attempts",
            "PINs typed on the end user's web page, by result (ok, wrong, rate_limited, \
             busy, bad_request)",
            pin_attempts.clone(),
        );
        let logins = Family::<Labels, Counter>::default();
        r.register(
            "lifeline_logins",
            "Technician logins, by result (ok, or the refusal's code)",
            logins.clone(),
        );
        let stun = Counter::default();
        r.register(
            "lifeline_stun_requests",
            "STUN binding requests answered",
            stun.clone(),
        );
        let store_seconds = Timings::new_with_constructor(latency_buckets as fn() -> Histogram);
        r.register_with_unit(
            "lifeline_store_query",
            "Latency of the store's queries the node times (heartbeat, readiness, sessions by state)",
            Unit::Seconds,
            store_seconds.clone(),
        );
        let gauges: [(&'static str, &'static str); 5] = [
            (
                "lifeline_connections_open",
                "Connections open on the public port (handshaking, waiting, relaying, portal)",
            ),
            (
                "lifeline_connections_cap",
                "Connections the public port takes at most (the open-file limit less a reserve)",
            ),
            (
                "lifeline_applets_waiting",
                "Applets waiting for their technician on this node",
            ),
            ("lifeline_relays_active", "Sessions this node relays now"),
            (
                "lifeline_draining",
                "1 while the node shuts down and drains",
            ),
        ];
        let gauges = gauges.map(|(name, help)| {
            let g = Gauge::default();
            r.register(name, help, g.clone());
            g
        });
        let sessions = Family::<Labels, Gauge>::default();
        r.register(
            "lifeline_sessions",
            "Open sessions in the store (every node's), by state",
            sessions.clone(),
        );
        let cpu = Counter::<f64, AtomicU64>::default();
        r.register_with_unit(
            "process_cpu",
            "CPU time the process used, user and system",
            Unit::Seconds,
            cpu.clone(),
        );
        let memory = Gauge::default();
        r.register_with_unit(
            "process_resident_memory",
            "Resident memory of the process",
            Unit::Bytes,
            memory.clone(),
        );
        let open_fds = Gauge::default();
        r.register(
            "process_open_fds",
            "Open file descriptors",
            open_fds.clone(),
        );
        let max_fds = Gauge::default();
        r.register(
            "process_max_fds",
            "The open-file limit (soft)",
            max_fds.clone(),
        );
        let start_time = Gauge::<f64, AtomicU64>::default();
        r.register_with_unit(
            "process_start_time",
            "When the process started, in seconds since the Unix epoch",
            Unit::Seconds,
            start_time.clone(),
        );
        start_time.set(lifeline_protocol::time::now_ms() as f64 / 1000.0);
        Self {
            registry: r,
            accepted,
            refused,
            pairings,
            pairing_seconds,
            relay_bytes,
            portal,
            logins,
            pin_attempts,
            stun,
            store_seconds,
            gauges,
            sessions,
            cpu,
            memory,
            open_fds,
            max_fds,
        }
    }

    /// A connection past TLS, for `protocol` (`relay`, `portal_h2`,
    /// `portal_http1`).
    pub fn accepted(&self, protocol: &'static str) {
        self.accepted
            .get_or_create(&labels(&[("protocol", protocol)]))
            .inc();
    }

    /// A connection turned away.
    pub fn refused(&self, why: Refusal) {
        self.refused
            .get_or_create(&labels(&[("reason", why.reason())]))
            .inc();
    }

    /// A pairing, `took` after the second end arrived.
    pub fn paired(&self, took: Duration) {
        self.pairings.inc();
        self.pairing_seconds.observe(took.as_secs_f64());
    }

    /// Bytes relayed each way.
    pub fn relayed(&self, applet_to_console: u64, console_to_applet: u64) {
        if applet_to_console > 0 {
            self.relay_bytes
                .get_or_create(&labels(&[("direction", "applet_to_console")]))
                .inc_by(applet_to_console);
        }
        if console_to_applet > 0 {
            self.relay_bytes
                .get_or_create(&labels(&[("direction", "console_to_applet")]))
                .inc_by(console_to_applet);
        }
    }

    /// A portal request answered.
    pub fn portal_request(&self, route: &'static str, status: u16) {
        self.portal
            .get_or_create(&vec![
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ])
            .inc();
    }

    /// A login's result (`ok`, or the refusal's code).
    pub fn login(&self, result: &'static str) {
        self.logins
            .get_or_create(&labels(&[("result", result)]))
            .inc();
    }

    /// A PIN typed on the web page, by result.
    pub fn pin_attempt(&self, result: &'static str) {
        self.pin_attempts
            .get_or_create(&labels(&[("result", result)]))
            .inc();
    }

    /// A STUN request answered.
    pub fn stun_request(&self) {
        self.stun.inc();
    }

    /// A timed store query.
    pub fn store_query(&self, query: &'static str, took: Duration) {
        self.store_seconds
            .get_or_create(&labels(&[("query", query)]))
            .observe(took.as_secs_f64());
    }

    /// The page: the node's values and the store's sessions by state as
    /// given, the process's read now.
    pub fn render(&self, node: NodeValues, sessions: &[(String, i64)]) -> String {
        let values = [
            node.connections_open,
            node.connections_cap,
            node.applets_waiting,
            node.relays_active,
            node.draining,
        ];
        for (g, v) in self.gauges.iter().zip(values) {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        }
        for state in ["created", "waiting", "paired", "direct"] {
            let n = sessions
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n);
            self.sessions
                .get_or_create(&labels(&[("state", state)]))
                .set(n);
        }
        let p = crate::process::sample();
        if let Some(cpu) = p.cpu_seconds {
            let before = self.cpu.get();
            if cpu > before {
                self.cpu.inc_by(cpu - before);
            }
        }
        if let Some(m) = p.resident_bytes {
            self.memory.set(m);
        }
        if let Some(n) = p.open_fds {
            self.open_fds.set(n);
        }
        if let Some(n) = p.max_fds {
            self.max_fds.set(n);
        }
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
