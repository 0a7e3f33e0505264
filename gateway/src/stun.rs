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
//! its answers to a victim. Two things keep that harmless:
//! * no amplification: the answer is the 20-byte header plus
//!   XOR-MAPPED-ADDRESS (12 or 24 bytes) plus FINGERPRINT (8 bytes), at
//!   most 52 bytes, while the smallest request we answer is 20 bytes; so an
//!   answer is never more than [`MAX_GROWTH`] bytes larger than its request
//!   (checked in [`answer`]);
//! * a token bucket per source IP ([`RATE_PER_SEC`], burst [`BURST`]) in a
//!   map of at most [`MAX_SOURCES`] addresses that forgets idle ones; when
//!   it is full of busy sources, new ones are not answered until some fall
//!   idle, so a flood from many (spoofed) addresses cannot grow memory or
//!   turn the node into a fire hose.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Message, Setter};
use stun::xoraddr::XorMappedAddress;
use tokio::net::UdpSocket;

/// Largest datagram answered. STUN requests from ICE agents are well under
/// this; the receive buffer is one byte longer, so a longer datagram
/// (truncated by the kernel) is seen to be too long and dropped.
pub const MAX_DATAGRAM: usize = 1500;
/// Requests per second one source IP may have answered (sustained).
pub const RATE_PER_SEC: f64 = 20.0;
/// Requests one source IP may have answered in a burst. An ICE agent
/// sends a handful per candidate gathering, with retransmissions.
pub const BURST: f64 = 40.0;
/// Source IPs tracked at most (well under a MiB of map at worst).
pub const MAX_SOURCES: usize = 8192;
/// How much larger than its request an answer can be (see the module doc).
pub const MAX_GROWTH: usize = 32;

/// A bucket that has been full this long has forgotten its history, so
/// dropping it changes nothing: that is when an entry is idle.
fn refill_time() -> Duration {
    Duration::from_secs_f64(BURST / RATE_PER_SEC)
}

/// The byte length of a STUN header.
const HEADER: usize = 20;

/// The answer to one datagram from `from`, or `None` to stay silent.
///
/// Accepted: exactly one STUN message filling the datagram (first two bits
/// zero, magic cookie, length a multiple of 4 that matches the datagram),
/// of class request and method Binding, whose attributes parse, and whose
/// FINGERPRINT, if present, is right.
pub fn answer(datagram: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    if datagram.len() < HEADER || datagram.len() > MAX_DATAGRAM || datagram[0] & 0xc0 != 0 {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if length % 4 != 0 || HEADER + length != datagram.len() {
        return None;
    }
    let mut request = Message::new();
    // Checks the magic cookie and bounds-checks each attribute as it walks
    // them (see `random_datagrams_never_panic`); an error means "not STUN".
    request.unmarshal_binary(datagram).ok()?;
    if request.typ != BINDING_REQUEST {
        return None;
    }
    if request.contains(stun::attributes::ATTR_FINGERPRINT)
        && stun::fingerprint::FINGERPRINT.check(&request).is_err()
    {
        return None;
    }
    let mut response = Message::new();
    let mapped = XorMappedAddress {
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d;
        // its NAT mapping is an IPv4 address and must be reported as one.
        ip: from.ip().to_canonical(),
        port: from.port(),
    };
    let setters: [&dyn Setter; 4] = [
        &BINDING_SUCCESS,
        &request.transaction_id,
        &mapped,
        &stun::fingerprint::FINGERPRINT,
    ];
    response.reset();
    response.write_header();
    for s in setters {
        s.add_to(&mut response).ok()?;
    }
    let out = response.raw;
    // By construction (see the module doc); checked so that a change to
    // what we put in the answer cannot quietly make us an amplifier.
    if out.len() > datagram.len() + MAX_GROWTH {
        return None;
    }
    Some(out)
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets per source IP, in a bounded map.
#[derive(Debug)]
pub struct RateLimiter {
    buckets: HashMap<IpAddr, Bucket>,
    max_sources: usize,
    last_prune: Option<Instant>,
}

impl RateLimiter {
    /// Tracks at most `max_sources` addresses.
    pub fn new(max_sources: usize) -> Self {
        Self {
            buckets: HashMap::new(),
            max_sources,
            last_prune: None,
        }
    }

    /// Addresses currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Whether `ip` may have an answer at `now` (and spends a token if so).
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let ip = ip.to_canonical();
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= self.max_sources {
            // Pruning walks the whole map: at most once a second, so a
            // flood of new sources cannot make every packet cost O(n).
            let due = self
                .last_prune
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
            if due {
                self.last_prune = Some(now);
                let idle = refill_time();
                self.buckets
                    .retain(|_, b| now.saturating_duration_since(b.at) < idle);
            }
            if self.buckets.len() >= self.max_sources {
                return false;
            }
        }
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: BURST,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * RATE_PER_SEC).min(BURST);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
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

/// Answers STUN on `socket` until `stop` completes.
pub async fn serve(socket: UdpSocket, stop: impl Future<Output = ()>) {
    let mut limiter = RateLimiter::new(MAX_SOURCES);
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    tokio::pin!(stop);
    loop {
        let (n, from) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(v) => v,
                // ICMP errors from earlier answers surface here on some
                // systems; they concern one peer, not the socket.
                Err(e) if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionRefused
                ) => continue,
                Err(e) => {
                    // Anything else (out of buffers...): back off instead
                    // of spinning, as the TCP accept loop does.
                    tracing::warn!(error = %e, "STUN receive failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let Some(reply) = answer(&buf[..n], from) else {
            continue;
        };
        // Limit only what we would answer: garbage costs the sender
        // nothing and us nothing, and must not use up a real client's budget.
        if !limiter.allow(from.ip(), Instant::now()) {
            continue;
        }
        if let Err(e) = socket.send_to(&reply, from).await {
            tracing::debug!(%from, error = %e, "STUN send failed");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use stun::agent::TransactionId;
    use stun::message::{BINDING_ERROR, Getter, MessageType};

    fn request(typ: MessageType, fingerprint: bool) -> (Vec<u8>, TransactionId) {
        let mut m = Message::new();
        let tid = TransactionId::new();
        m.reset();
        m.write_header();
        typ.add_to(&mut m).unwrap();
        tid.add_to(&mut m).unwrap();
        if fingerprint {
            stun::fingerprint::FINGERPRINT.add_to(&mut m).unwrap();
        }
        (m.raw, tid)
    }

    fn decode(b: &[u8]) -> Message {
        let mut m = Message::new();
        m.unmarshal_binary(b).unwrap();
        m
    }

    #[test]
    fn binding_request_gets_the_source_address() {
        for from in [
            "198.51.100.7:40000",
            "[2001:db8::1]:5",
            "[::ffff:203.0.113.9]:3478",
        ] {
            let from: SocketAddr = from.parse().unwrap();
            for fp in [false, true] {
                let (req, tid) = request(BINDING_REQUEST, fp);
                let out = answer(&req, from).unwrap();
                assert!(out.len() <= req.len() + MAX_GROWTH);
                let m = decode(&out);
                assert_eq!(m.typ, BINDING_SUCCESS);
                assert_eq!(m.transaction_id, tid);
                stun::fingerprint::FINGERPRINT.check(&m).unwrap();
                let mut x = XorMappedAddress::default();
                x.get_from(&m).unwrap();
                assert_eq!(
                    SocketAddr::new(x.ip, x.port),
                    SocketAddr::new(from.ip().to_canonical(), from.port())
                );
            }
        }
    }

    #[test]
    fn everything_else_is_ignored() {
        let from: SocketAddr = "192.0.2.1:1".parse().unwrap();
        assert!(answer(b"", from).is_none());
        assert!(answer(&[0u8; 20], from).is_none(), "no magic cookie");
        assert!(answer(b"GET / HTTP/1.1\r\n\r\n\0\0", from).is_none());
        for typ in [
            BINDING_SUCCESS,
            BINDING_ERROR,
            MessageType::new(
                stun::message::METHOD_BINDING,
                stun::message::CLASS_INDICATION,
            ),
            MessageType::new(stun::message::METHOD_ALLOCATE, stun::message::CLASS_REQUEST),
        ] {
            assert!(answer(&request(typ, false).0, from).is_none(), "{typ}");
        }
        let (good, _) = request(BINDING_REQUEST, true);
        // Trailing bytes, truncation, a wrong length field, a bad
        // FINGERPRINT, the top bits set: all dropped.
        let mut longer = good.clone();
        longer.extend_from_slice(&[0; 4]);
        assert!(answer(&longer, from).is_none());
        assert!(answer(&good[..good.len() - 4], from).is_none());
        let mut bad_fp = good.clone();
        *bad_fp.last_mut().unwrap() ^= 1;
        assert!(answer(&bad_fp, from).is_none());
        let mut top = good.clone();
        top[0] |= 0x80;
        assert!(answer(&top, from).is_none());
        // An attribute whose length runs past the message.
        let mut overrun = good[..HEADER].to_vec();
        overrun[3] = 8;
        overrun.extend_from_slice(&[0x80, 0x22, 0x00, 0x40, 0, 0, 0, 0]);
        assert!(answer(&overrun, from).is_none());
        assert!(answer(&good, from).is_some());
    }

    /// The decoder sees whatever the internet sends; a panic would end the
    /// STUN task. Random attribute soup behind a valid header, and random
    /// bytes outright, must all come back as an answer or nothing.
    #[test]
    fn random_datagrams_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let from: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let (req, _) = request(BINDING_REQUEST, false);
        for i in 0..200_000 {
            let body_len = (next() % 64) as usize * 4;
            let mut d = req[..HEADER].to_vec();
            d[2..4].copy_from_slice(&(body_len as u16).to_be_bytes());
            d.extend((0..body_len).map(|_| next() as u8));
            if i % 4 == 0 {
                // Plausible attribute headers: small types and lengths.
                for at in (HEADER..d.len()).step_by(4) {
                    d[at] &= 0x80;
                    if at + 2 < d.len() {
                        d[at + 2] = 0;
                    }
                }
            }
            if i % 16 == 0 {
                let n = (next() % 64) as usize;
                d = (0..n).map(|_| next() as u8).collect();
            }
            if let Some(out) = answer(&d, from) {
                assert!(out.len() <= d.len() + MAX_GROWTH);
            }
        }
    }

    #[test]
    fn rate_limit_per_source_with_refill() {
        let mut l = RateLimiter::new(16);
        let t0 = Instant::now();
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
    fn the_map_is_bounded_and_forgets_idle_sources() {
        let mut l = RateLimiter::new(4);
        let t0 = Instant::now();
        for i in 0..4u8 {
            assert!(l.allow(IpAddr::from([10, 0, 0, i]), t0));
        }
        assert!(
            !l.allow("10.0.1.1".parse().unwrap(), t0),
            "full of recent sources"
        );
        assert_eq!(l.tracked(), 4);
        let idle = t0 + refill_time() + Duration::from_secs(1);
        assert!(
            l.allow("10.0.1.1".parse().unwrap(), idle),
            "idle sources are forgotten"
        );
        assert_eq!(l.tracked(), 1);
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
