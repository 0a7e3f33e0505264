//! A STUN server (RFC 5389) that answers Binding requests, so the ends'
//! ICE agents learn their server-reflexive address (what their NAT maps
//! them to) when they try to go direct over UDP.
//!
//! It is stateless: a well-formed Binding request gets a Binding success
//! response with the same transaction id, XOR-MAPPED-ADDRESS set to the
//! request's source address, and FINGERPRINT. Everything else — garbage,
//! other methods, indications, responses, requests with a bad FINGERPRINT —
//! is dropped without a word, as RFC 5389 §7.3 asks of a server that does
//! not understand a message.
//!
//! Abuse. UDP sources can be spoofed, so a STUN server can be made to send
//! its answers to a victim, and a flood from many (spoofed) addresses must
//! not crowd out the real ends gathering their candidates:
//! * no amplification: an answer is never more than
//!   [`MAX_GROWTH`] bytes larger than its request (checked in
//!   [`lifeline_protocol::stun::answer`]);
//! * a token bucket per source ([`RATE_PER_SEC`], burst [`BURST`]; IPv6
//!   sources by /64) in a fixed table of [`BUCKETS`] slots indexed by a
//!   keyed hash of the source. The table never grows and never fills:
//!   there is no entry to pin, so a fresh source always has a bucket. At
//!   worst it shares one with a few flooding sources — which it cannot be
//!   aimed at, because the hash key is random per process — and a shared
//!   bucket still refills at 20 answers a second;
//! * a global bucket ([`GLOBAL_PER_SEC`]) caps what the node sends in all,
//!   so even a flood from more sources than there are slots cannot turn
//!   it into a fire hose.

use crate::limits::source_key;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

pub use lifeline_protocol::stun::{MAX_DATAGRAM, MAX_GROWTH, answer};

/// Requests per second one source may have answered (sustained).
pub const RATE_PER_SEC: f32 = 20.0;
/// Requests one source may have answered in a burst. An ICE agent
/// sends a handful per candidate gathering, with retransmissions.
pub const BURST: f32 = 40.0;
/// Slots in the per-source table (8 bytes each: 512 KiB).
pub const BUCKETS: usize = 1 << 16;
/// Answers per second the node sends in all (sustained; about 1 MB/s).
pub const GLOBAL_PER_SEC: f32 = 20_000.0;
/// The global bucket's burst: one second's worth.
pub const GLOBAL_BURST: f32 = GLOBAL_PER_SEC;

/// A token bucket with its last refill in milliseconds since the
/// limiter's start (8 bytes, so the table stays small).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f32,
    at_ms: u32,
}

impl Bucket {
    fn full(burst: f32) -> Self {
        Self {
            tokens: burst,
            at_ms: 0,
        }
    }

    /// Refills for the time since the last call and spends one token.
    fn take(&mut self, now_ms: u32, rate: f32, burst: f32) -> bool {
        let elapsed = now_ms.saturating_sub(self.at_ms) as f32 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at_ms = now_ms;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Per-source token buckets in a fixed keyed-hash table, and a global one.
#[derive(Debug)]
pub struct RateLimiter {
    buckets: Vec<Bucket>,
    global: Bucket,
    key: std::collections::hash_map::RandomState,
    start: Instant,
}

impl RateLimiter {
    /// A limiter with [`BUCKETS`] slots and a fresh random hash key.
    pub fn new(start: Instant) -> Self {
        Self {
            buckets: vec![Bucket::full(BURST); BUCKETS],
            global: Bucket::full(GLOBAL_BURST),
            key: std::collections::hash_map::RandomState::new(),
            start,
        }
    }

    /// Whether `ip` may have an answer at `now` (and spends a token if so).
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        // u32 milliseconds last 49 days; then the clock saturates and
        // every bucket simply stays at its level (a restart resets it).
        let now_ms = u32::try_from(now.saturating_duration_since(self.start).as_millis())
            .unwrap_or(u32::MAX);
        let slot = (self.key.hash_one(source_key(ip)) as usize) & (BUCKETS - 1);
        // The source's own budget first: a refused flooder does not spend
        // the global budget everyone shares.
        if !self.buckets[slot].take(now_ms, RATE_PER_SEC, BURST) {
            return false;
        }
        self.global.take(now_ms, GLOBAL_PER_SEC, GLOBAL_BURST)
    }
}

/// How `--stun-listen` turned out at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Switched off by configuration.
    Off,
    /// The port could not be bound; the node runs without STUN.
    Failed {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        error: String,
    },
    /// Bound to this address.
    Bound(SocketAddr),
}

impl Status {
    /// The startup banner's STUN line, always printed right after the
    /// listen line so that a harness can read it in order:
    /// `STUN on BOUND (clients use HOST:PORT)`, or `STUN off…` with why.
    pub fn banner(&self, advertised: &str) -> String {
        match self {
            Self::Off => "STUN off (--stun-listen off)".to_owned(),
            Self::Failed { addr, error } => {
                format!("STUN off: cannot listen on UDP {addr}: {error}")
            }
            Self::Bound(bound) => format!("STUN on {bound} (clients use {advertised})"),
        }
    }
}

/// Binds `addr` (`None`: STUN is off). A failure is not fatal: a node
/// without STUN still relays, and its sessions can still go direct over
/// TCP or with host candidates; refusing to start because something else
/// holds UDP 3478 would break the zero-config start.
pub async fn bind(addr: Option<SocketAddr>) -> (Option<UdpSocket>, Status) {
    let Some(addr) = addr else {
        return (None, Status::Off);
    };
    match UdpSocket::bind(addr)
        .await
        .and_then(|s| Ok((s.local_addr()?, s)))
    {
        Ok((bound, socket)) => (Some(socket), Status::Bound(bound)),
        Err(error) => {
            tracing::warn!(%addr, %error, "cannot listen for STUN; running without a STUN server");
            (
                None,
                Status::Failed {
                    addr,
                    error: error.to_string(),
                },
            )
        }
    }
}

/// The `host:port` clients use for STUN: the host of the advertised relay
/// address (`host:port`, `[v6]:port`, or a bare host) with the bound port.
pub fn advertised(advertise: &str, port: u16) -> String {
    let host = if advertise.starts_with('[') {
        advertise
            .find(']')
            .map_or(advertise, |end| &advertise[..=end])
    } else {
        match advertise.rsplit_once(':') {
            Some((host, p)) if p.parse::<u16>().is_ok() && !host.contains(':') => host,
            _ => advertise,
        }
    };
    // A bare IPv6 address (no brackets, no port) needs its brackets.
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Answers STUN on `socket`, and on the port after it (the alternate port,
/// [`lifeline_protocol::stun::alternate_port`]: an end that asks both from
/// one socket learns whether its NAT maps anew per destination) if that
/// port is free, until `stop` completes; `answered` is told of each answer
/// (the metrics count them). One rate limiter serves both ports, so the
/// second doubles no one's budget.
pub async fn serve(socket: UdpSocket, answered: impl Fn() + Sync, stop: impl Future<Output = ()>) {
    let alternate = bind_alternate(&socket).await;
    let limiter = std::sync::Mutex::new(RateLimiter::new(Instant::now()));
    let all = async {
        match &alternate {
            Some(alt) => {
                tokio::join!(
                    answer_on(&socket, &limiter, &answered),
                    answer_on(alt, &limiter, &answered)
                );
            }
            None => answer_on(&socket, &limiter, &answered).await,
        }
    };
    tokio::select! {
        () = all => {}
        () = stop => {}
    }
}

/// Binds the alternate port on the same address, or says why not (the
/// node then serves one port; hard NATs are not told apart).
async fn bind_alternate(socket: &UdpSocket) -> Option<UdpSocket> {
    let main = socket.local_addr().ok()?;
    let port = lifeline_protocol::stun::alternate_port(main.port())?;
    let addr = SocketAddr::new(main.ip(), port);
    match UdpSocket::bind(addr).await {
        Ok(s) => {
            tracing::info!(%addr, "STUN also answers on the alternate port");
            Some(s)
        }
        Err(error) => {
            tracing::warn!(%addr, %error, "cannot listen on STUN's alternate port; symmetric NATs will not be told apart");
            None
        }
    }
}

/// Answers STUN on one socket, forever.
async fn answer_on(
    socket: &UdpSocket,
    limiter: &std::sync::Mutex<RateLimiter>,
    answered: &impl Fn(),
) {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(v) => v,
            // ICMP errors from earlier answers surface here on some
            // systems; they concern one peer, not the socket.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                continue;
            }
            Err(e) => {
                // Anything else (out of buffers...): back off instead
                // of spinning, as the TCP accept loop does.
                tracing::warn!(error = %e, "STUN receive failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(reply) = answer(&buf[..n], from) else {
            continue;
        };
        // Limit only what we would answer: garbage costs the sender
        // nothing and us nothing, and must not use up a real client's budget.
        let allowed = limiter
            .lock()
            .map(|mut l| l.allow(from.ip(), Instant::now()))
            .unwrap_or(false);
        if !allowed {
            continue;
        }
        match socket.send_to(&reply, from).await {
            Ok(_) => answered(),
            Err(e) => tracing::debug!(%from, error = %e, "STUN send failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_per_source_with_refill() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(t0);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let granted = (0..100).filter(|_| l.allow(a, t0)).count();
        assert_eq!(granted, BURST as usize);
        assert!(l.allow(b, t0), "another source has its own budget");
        // Half a second refills RATE/2 tokens.
        let later = t0 + Duration::from_millis(500);
        let refilled = (0..100).filter(|_| l.allow(a, later)).count();
        assert_eq!(refilled, (RATE_PER_SEC / 2.0) as usize);
    }

    #[test]
    fn ipv6_sources_share_their_64() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(t0);
        let granted = (0..100u16)
            .filter(|i| l.allow(IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, *i]), t0))
            .count();
        assert_eq!(granted, BURST as usize, "one /64, one budget");
        assert!(l.allow("2001:db8:0:2::1".parse().unwrap(), t0));
    }

    /// What used to pin the old bounded map (8,192 entries): 10,000 busy
    /// sources asking every 0.9 s. Fresh sources must still be answered.
    #[test]
    fn a_flood_of_busy_sources_cannot_lock_out_fresh_ones() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(t0);
        let mut fresh_answered = 0;
        let mut fresh_asked = 0;
        for round in 0..20u32 {
            let now = t0 + Duration::from_millis(900 * u64::from(round));
            for i in 0..10_000u32 {
                l.allow(IpAddr::from((0x0a00_0000 | i).to_be_bytes()), now);
            }
            for probe in 0..24u32 {
                fresh_asked += 1;
                let ip = IpAddr::from((0xc633_6400 | (round * 24 + probe)).to_be_bytes());
                fresh_answered += usize::from(l.allow(ip, now));
            }
        }
        assert_eq!(fresh_answered, fresh_asked, "every fresh source answered");
    }

    #[test]
    fn the_global_budget_caps_the_total() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(t0);
        let sent = (0..100_000u32)
            .filter(|i| l.allow(IpAddr::from((0x0a00_0000 | i).to_be_bytes()), t0))
            .count();
        assert_eq!(sent, GLOBAL_BURST as usize);
        let later = t0 + Duration::from_millis(100);
        let more = (100_000..200_000u32)
            .filter(|i| l.allow(IpAddr::from((0x0a00_0000 | i).to_be_bytes()), later))
            .count();
        assert_eq!(more, (GLOBAL_PER_SEC / 10.0) as usize);
    }

    #[test]
    fn advertised_stun_address() {
        assert_eq!(
            advertised("gw.example.com:443", 3478),
            "gw.example.com:3478"
        );
        assert_eq!(advertised("127.0.0.1:8443", 40000), "127.0.0.1:40000");
        assert_eq!(advertised("[2001:db8::1]:443", 3478), "[2001:db8::1]:3478");
        assert_eq!(advertised("gw.example.com", 3478), "gw.example.com:3478");
        assert_eq!(advertised("2001:db8::1", 3478), "[2001:db8::1]:3478");
    }
}
