//! Punching through a symmetric NAT by the birthday paradox, as Tailscale
//! does for "hard" NATs: where ICE cannot, because the hard end's NAT
//! gives every destination a new, random public port that nobody can
//! predict.
//!
//! 1. Each end learns its NAT's kind ([`probe`]): one socket asks the
//!    gateway's STUN server on its port and on the next one. The same
//!    mapped port twice means the NAT maps the same way for every
//!    destination ("easy": a cone NAT, or none); two ports mean a new
//!    mapping per destination ("hard": symmetric). The ends tell each
//!    other (`Negotiation::NatKind`) with that socket's public address.
//! 2. The hard end opens [`HARD_PORTS`] sockets and sends one probe from
//!    each to the easy end's public address ([`open_hard`]): its NAT now
//!    holds 256 random public ports, each letting in exactly that address.
//! 3. The easy end sends probes from its probing socket (whose public
//!    address the hard end aimed at) to random ports of the hard end's
//!    public IP ([`spray`]), at most [`SPRAY_PER_SEC`] a second. Each also
//!    opens the easy NAT for an answer from the port it went to. With 256
//!    of 64 512 ports open, a probe hits with p ≈ 1/252: 580 probes hit
//!    with 90%, 1 160 with 99%.
//! 4. The first probe that hits reaches one of the hard end's sockets; it
//!    answers from that socket, and both ends stop. The pair is that
//!    socket and the easy end's probing socket; XTCP runs over it.
//!
//! Probes and answers carry a token derived from the relayed session's
//! exporter, so only the peer's probes count. The spray is bounded in rate
//! and count; the hard end's sockets close when the punch ends. Two hard
//! ends cannot meet this way (neither address is predictable): they stay
//! on the relay.

use lifeline_protocol::stun::{BindingResponse, alternate_port, binding_request};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;

/// Sockets the hard end opens.
pub const HARD_PORTS: usize = 256;
/// Probes the easy end sends a second.
pub const SPRAY_PER_SEC: u64 = 500;
/// Most probes the easy end sends in all (99.9% to hit).
pub const MAX_PROBES: usize = 1800;
/// How long a punch may take before it is given up.
pub const PUNCH_TIMEOUT: Duration = Duration::from_secs(6);
/// How long the NAT probe waits for the STUN server's answers.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);
/// Ports a probe may land on (the lowest thousand are rarely handed out).
const PORTS: std::ops::RangeInclusive<u16> = 1024..=65535;

/// A probe's first bytes: its first byte is 0, so it is neither STUN (no
/// magic cookie) nor QUIC (the fixed bit is clear).
const PROBE: &[u8; 8] = b"\0llpunch";
/// An answer's first bytes.
const ANSWER: &[u8; 8] = b"\0llpunA!";
/// The token's length.
pub const TOKEN_LEN: usize = 16;

/// What [`probe`] learned, with the socket it learned it on.
#[derive(Debug)]
pub struct NatProbe {
    /// The socket whose mapping was probed (the easy end punches from it).
    pub socket: UdpSocket,
    /// Its public address, as the STUN server's main port saw it.
    pub mapped: SocketAddr,
    /// The mapping differed for the alternate port.
    pub hard: bool,
}

/// Learns this end's NAT kind from the STUN server at `stun` and its
/// alternate port. `None` if either does not answer in time (no STUN, or
/// no alternate port: the kind stays unknown and no punch is tried).
pub async fn probe(stun: SocketAddr) -> Option<NatProbe> {
    let alt = SocketAddr::new(stun.ip(), alternate_port(stun.port())?);
    let socket = UdpSocket::bind(any_port_towards(stun)).await.ok()?;
    let ids: [[u8; 12]; 2] = [random(), random()];
    let mut mapped: [Option<SocketAddr>; 2] = [None, None];
    let mut buf = [0u8; 512];
    let asked = tokio::time::timeout(PROBE_TIMEOUT, async {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        while mapped.iter().any(Option::is_none) {
            tokio::select! {
                _ = tick.tick() => {
                    for (i, to) in [stun, alt].into_iter().enumerate() {
                        if mapped[i].is_none() {
                            let _ = socket.send_to(&binding_request(ids[i], true), to).await;
                        }
                    }
                }
                r = socket.recv_from(&mut buf) => {
                    let Ok((n, _)) = r else { continue };
                    // Matched by the random transaction id alone: a
                    // multi-homed server may answer from another address.
                    if let Some(resp) = BindingResponse::parse(&buf[..n])
                        && let Some(i) = ids.iter().position(|id| *id == resp.transaction_id)
                    {
                        mapped[i] = Some(resp.mapped);
                    }
                }
            }
        }
    })
    .await;
    if asked.is_err() {
        tracing::info!("NAT probe: the STUN server did not answer on both ports");
        return None;
    }
    let (main, other) = (mapped[0]?, mapped[1]?);
    Some(NatProbe {
        socket,
        mapped: main,
        hard: main != other,
    })
}

/// The hard end: opens [`HARD_PORTS`] sockets, each probing `easy`, and
/// waits for the easy end's spray to hit one. Returns that socket,
/// connected to `easy`, after answering.
pub async fn open_hard(easy: SocketAddr, token: [u8; TOKEN_LEN]) -> io::Result<UdpSocket> {
    let any = any_port_towards(easy);
    let probe = message(PROBE, &token);
    let mut sockets = Vec::with_capacity(HARD_PORTS);
    for _ in 0..HARD_PORTS {
        let s = match UdpSocket::bind(any).await {
            Ok(s) => s,
            // Out of file descriptors (a console punching for several
            // sessions at once): fewer ports, lower odds, still a chance.
            Err(e) if sockets.is_empty() => return Err(e),
            Err(e) => {
                tracing::info!(opened = sockets.len(), error = %e, "birthday punch: fewer ports");
                break;
            }
        };
        // A lost probe only means one port fewer.
        let _ = s.send_to(&probe, easy).await;
        sockets.push(s);
    }
    let (won_tx, mut won_rx) = tokio::sync::mpsc::channel::<UdpSocket>(1);
    let mut tasks = tokio::task::JoinSet::new();
    for s in sockets {
        let (won, probe) = (won_tx.clone(), probe.clone());
        tasks.spawn(async move {
            let mut buf = [0u8; 64];
            loop {
                // A failing socket is one port fewer, not a spinning task.
                let Ok((n, from)) = s.recv_from(&mut buf).await else {
                    return;
                };
                if from == easy && buf[..n] == probe[..] {
                    break;
                }
            }
            let _ = won.send(s).await;
        });
    }
    drop(won_tx);
    let socket = tokio::time::timeout(PUNCH_TIMEOUT, won_rx.recv())
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no probe reached an open port"))?
        .ok_or_else(|| io::Error::other("every port closed"))?;
    tasks.abort_all();
    socket.connect(easy).await?;
    // Answered a few times: the easy end stops on the first that arrives
    // (and on this end's first QUIC packet, if every answer is lost).
    let answer = message(ANSWER, &token);
    for _ in 0..3 {
        let _ = socket.send(&answer).await;
    }
    Ok(socket)
}

/// The easy end: sprays probes from `socket` (the probing socket) to
/// random ports of `hard`, until the hard end answers. Returns the hard
/// end's address that answered and how many probes it took.
pub async fn spray(
    socket: &UdpSocket,
    hard: IpAddr,
    token: [u8; TOKEN_LEN],
) -> io::Result<(SocketAddr, usize)> {
    let (probe, answer) = (message(PROBE, &token), message(ANSWER, &token));
    let mut sent = 0usize;
    let mut buf = [0u8; 2048];
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / SPRAY_PER_SEC));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ports = Ports::new();
    let found = tokio::time::timeout(PUNCH_TIMEOUT, async {
        loop {
            tokio::select! {
                _ = tick.tick(), if sent < MAX_PROBES => {
                    let to = SocketAddr::new(hard, ports.next());
                    let _ = socket.send_to(&probe, to).await;
                    sent += 1;
                }
                r = socket.recv_from(&mut buf) => {
                    let Ok((n, from)) = r else { continue };
                    // The answer, or the hard end's first QUIC packet if
                    // every answer was lost (QUIC sends that one again).
                    let quic = n > 0 && buf[0] & 0xc0 != 0;
                    if from.ip() == hard && (buf[..n] == answer[..] || quic) {
                        return from;
                    }
                }
            }
        }
    })
    .await
    .map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{sent} probes found no open port"),
        )
    })?;
    Ok((found, sent))
}

/// The punch token: both ends derive it from the relayed session's
/// exporter, which no one else knows.
pub fn token(relayed_exporter: &[u8]) -> [u8; TOKEN_LEN] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, relayed_exporter);
    let tag = ring::hmac::sign(&key, b"lifeline birthday punch");
    let mut t = [0u8; TOKEN_LEN];
    t.copy_from_slice(&tag.as_ref()[..TOKEN_LEN]);
    t
}

/// Any port on every address of `to`'s family.
fn any_port_towards(to: SocketAddr) -> SocketAddr {
    match to {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}

fn message(kind: &[u8; 8], token: &[u8; TOKEN_LEN]) -> Vec<u8> {
    [&kind[..], &token[..]].concat()
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The system's generator does not fail on Linux; all zeros would only
    // make a STUN id or a port sequence predictable, not wrong.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b
}

/// Random ports in [`PORTS`], without repeats until every port was used
/// (a random walk with a random odd stride over the range).
struct Ports {
    at: u32,
    stride: u32,
}

impl Ports {
    fn new() -> Self {
        let r = u32::from_le_bytes(random());
        let span = Self::span();
        // A stride coprime with the span visits every port once a round.
        let mut stride = ((r >> 16) % span) | 1;
        while gcd(stride, span) != 1 {
            stride += 2;
        }
        Self {
            at: r % span,
            stride,
        }
    }

    fn span() -> u32 {
        u32::from(*PORTS.end()) - u32::from(*PORTS.start()) + 1
    }

    fn next(&mut self) -> u16 {
        self.at = (self.at + self.stride) % Self::span();
        u16::try_from(u32::from(*PORTS.start()) + self.at).unwrap_or(u16::MAX)
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spray_visits_each_port_once_before_repeating() {
        let mut p = Ports::new();
        let span = Ports::span() as usize;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..span {
            let port = p.next();
            assert!(PORTS.contains(&port));
            assert!(seen.insert(port), "port {port} twice");
        }
        assert_eq!(seen.len(), span);
    }

    /// On one machine: the "hard" end's ports on loopback, sprayed at by
    /// the easy end's socket until a probe lands.
    #[tokio::test]
    async fn a_spray_finds_one_of_the_hard_ends_ports_and_both_learn_the_pair() {
        let easy = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let easy_addr = easy.local_addr().unwrap();
        let t = token(b"exporter");
        let hard = tokio::spawn(open_hard(easy_addr, t));
        // The hard end's probes arrive first; the easy end ignores them.
        let (found, probes) = spray(&easy, "127.0.0.1".parse().unwrap(), t).await.unwrap();
        let hard = hard.await.unwrap().unwrap();
        assert_eq!(hard.local_addr().unwrap().port(), found.port());
        assert_eq!(hard.peer_addr().unwrap(), easy_addr);
        assert!(probes <= MAX_PROBES);
        // A wrong token is not an answer.
        let other = token(b"another session");
        assert_ne!(other, t);
    }
}
