//! The gateway's STUN server over real UDP sockets on loopback: Binding
//! requests are answered with the requester's own address, everything else
//! is ignored, bursts are limited per source address (over the main and
//! the alternate port together), and a node whose
//! STUN port is taken starts anyway and tells the ends it has no STUN.
#![allow(clippy::unwrap_used)]

mod common;

use common::{EMAIL, Node, TempDir, pair};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use stun::agent::TransactionId;
use stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Getter, Message, MessageType, Setter};
use stun::xoraddr::XorMappedAddress;

fn message(typ: MessageType) -> (Vec<u8>, TransactionId) {
    let mut m = Message::new();
    let tid = TransactionId::new();
    m.reset();
    m.write_header();
    typ.add_to(&mut m).unwrap();
    tid.add_to(&mut m).unwrap();
    stun::fingerprint::FINGERPRINT.add_to(&mut m).unwrap();
    (m.raw, tid)
}

fn client(ip: &str, timeout: Duration) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s
}

/// The next datagram, or `None` when the read times out.
fn recv(s: &UdpSocket) -> Option<Vec<u8>> {
    let mut buf = [0u8; 1500];
    match s.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn stun_node(dir: &TempDir) -> (Node, SocketAddr) {
    let node = Node::start(dir.path(), &["--stun-listen", "127.0.0.1:0"]);
    let (bound, advertised) = node.stun.clone().expect("STUN is on");
    assert_ne!(bound.port(), 0, "the banner shows the bound port");
    assert_eq!(
        advertised,
        bound.to_string(),
        "advertised host is 127.0.0.1"
    );
    (node, bound)
}

#[test]
fn binding_request_gets_the_requesters_address() {
    let dir = TempDir::new("stun-binding");
    let (_node, stun) = stun_node(&dir);
    let c = client("127.0.0.1", Duration::from_secs(5));
    for _ in 0..3 {
        let (req, tid) = message(BINDING_REQUEST);
        c.send_to(&req, stun).unwrap();
        let resp = recv(&c).expect("an answer");
        let mut m = Message::new();
        m.unmarshal_binary(&resp).unwrap();
        assert_eq!(m.typ, BINDING_SUCCESS);
        assert_eq!(m.transaction_id, tid);
        stun::fingerprint::FINGERPRINT.check(&m).unwrap();
        let mut mapped = XorMappedAddress::default();
        mapped.get_from(&m).unwrap();
        assert_eq!(
            SocketAddr::new(mapped.ip, mapped.port),
            c.local_addr().unwrap()
        );
        assert!(resp.len() <= req.len() + lifeline_gateway::stun::MAX_GROWTH);
    }
}

#[test]
fn garbage_and_other_stun_messages_get_no_answer() {
    let dir = TempDir::new("stun-garbage");
    let (_node, stun) = stun_node(&dir);
    let c = client("127.0.0.1", Duration::from_millis(400));
    let (good, _) = message(BINDING_REQUEST);
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 3);
    let ignored = [
        b"hello, is anybody there?".to_vec(),
        vec![0u8; 20],
        vec![0xffu8; 1400],
        truncated,
        message(BINDING_SUCCESS).0,
        message(MessageType::new(
            stun::message::METHOD_BINDING,
            stun::message::CLASS_INDICATION,
        ))
        .0,
        message(MessageType::new(
            stun::message::METHOD_ALLOCATE,
            stun::message::CLASS_REQUEST,
        ))
        .0,
    ];
    for d in &ignored {
        c.send_to(d, stun).unwrap();
        assert_eq!(recv(&c), None, "answered {:02x?}", &d[..d.len().min(24)]);
    }
    // And the server is still there for a real request.
    c.send_to(&good, stun).unwrap();
    assert!(recv(&c).is_some());
}

#[test]
fn a_burst_is_limited_per_source() {
    let dir = TempDir::new("stun-burst");
    let (_node, stun) = stun_node(&dir);
    let flood = client("127.0.0.1", Duration::from_millis(500));
    assert_one_budget(&flood, &[stun]);
    // Another source address (Linux routes all of 127/8 to loopback) is
    // answered at once.
    let other = client("127.0.0.2", Duration::from_secs(5));
    let (req, tid) = message(BINDING_REQUEST);
    other.send_to(&req, stun).unwrap();
    let mut m = Message::new();
    m.unmarshal_binary(&recv(&other).expect("the second source is answered"))
        .unwrap();
    assert_eq!(m.transaction_id, tid);
}

/// The port after STUN's answers too, with the same mapped address (an
/// end compares the two to tell a symmetric NAT), and both ports spend
/// one budget: a second port doubles no one's answers.
#[test]
fn the_alternate_port_answers_too_from_the_same_budget() {
    let dir = TempDir::new("stun-alternate");
    // A port whose next one is free, too.
    let port = (0..50)
        .find_map(|_| {
            let a = UdpSocket::bind("127.0.0.1:0").ok()?;
            let p = a.local_addr().ok()?.port();
            UdpSocket::bind(("127.0.0.1", p.checked_add(1)?)).ok()?;
            Some(p)
        })
        .expect("a free pair of ports");
    let node = Node::start(dir.path(), &["--stun-listen", &format!("127.0.0.1:{port}")]);
    let (main, _) = node.stun.clone().expect("STUN is on");
    let alternate = SocketAddr::new(main.ip(), main.port() + 1);
    let c = client("127.0.0.1", Duration::from_millis(500));
    let mapped_by = |to: SocketAddr| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (req, tid) = message(BINDING_REQUEST);
            c.send_to(&req, to).unwrap();
            if let Some(resp) = recv(&c) {
                let mut m = Message::new();
                m.unmarshal_binary(&resp).unwrap();
                assert_eq!(m.transaction_id, tid);
                let mut mapped = XorMappedAddress::default();
                mapped.get_from(&m).unwrap();
                return SocketAddr::new(mapped.ip, mapped.port);
            }
            assert!(Instant::now() < deadline, "{to} never answered");
        }
    };
    assert_eq!(mapped_by(main), c.local_addr().unwrap());
    assert_eq!(mapped_by(alternate), c.local_addr().unwrap());
    // A burst split over both ports gets one budget's worth of answers.
    let flood = client("127.0.0.3", Duration::from_millis(500));
    assert_one_budget(&flood, &[main, alternate]);
}

/// Sends 200 Binding requests from `from`, taking turns over `to`, and
/// asserts that one source's budget answered: the burst, plus what
/// refilled while the datagrams were in flight.
fn assert_one_budget(from: &UdpSocket, to: &[SocketAddr]) {
    const SENT: usize = 200;
    let started = Instant::now();
    for i in 0..SENT {
        from.send_to(&message(BINDING_REQUEST).0, to[i % to.len()])
            .unwrap();
    }
    let mut answered = 0;
    while recv(from).is_some() {
        answered += 1;
    }
    let burst = lifeline_gateway::stun::BURST as usize;
    let refill =
        (started.elapsed().as_secs_f64() + 0.5) * f64::from(lifeline_gateway::stun::RATE_PER_SEC);
    assert!(
        answered >= burst / 2 && answered <= burst + refill as usize + 1,
        "{answered} of {SENT} answered (sent to {to:?})"
    );
}

/// 10,000 source addresses (all of 127/8 is this host's), each asking every
/// 0.9 s — more busy sources than the old limiter's map could hold, which
/// then answered a fresh source about once in 24 tries. A fresh source
/// must keep being answered.
#[test]
fn a_flood_from_many_sources_leaves_fresh_sources_answered() {
    let dir = TempDir::new("stun-flood");
    let (_node, stun) = stun_node(&dir);
    const SOURCES: u32 = 10_000;
    const ROUND: Duration = Duration::from_millis(900);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rounds = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let flood = {
        let (stop, rounds) = (stop.clone(), rounds.clone());
        std::thread::spawn(move || {
            let req = message(BINDING_REQUEST).0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                for i in 0..SOURCES {
                    // 127.1.0.1 onwards: one socket per source address.
                    let ip = std::net::Ipv4Addr::from(0x7f01_0001 + i);
                    if let Ok(s) = UdpSocket::bind((ip, 0)) {
                        let _ = s.send_to(&req, stun);
                    }
                    // Paced over the round, as many real sources would be
                    // (a burst of 10,000 would only overflow the socket
                    // buffer, which is not what is tested here).
                    if i % 50 == 49 {
                        let due = ROUND.mul_f64(f64::from(i + 1) / f64::from(SOURCES));
                        if let Some(wait) = due.checked_sub(started.elapsed()) {
                            std::thread::sleep(wait);
                        }
                    }
                }
                rounds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(wait) = ROUND.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        })
    };
    // Let the flood fill whatever it can fill first.
    std::thread::sleep(Duration::from_secs(2));
    let mut answered = 0;
    for probe in 0..24u32 {
        let fresh = client(
            &std::net::Ipv4Addr::from(0x7fc8_0001 + probe).to_string(),
            Duration::from_millis(500),
        );
        let (req, tid) = message(BINDING_REQUEST);
        fresh.send_to(&req, stun).unwrap();
        if let Some(resp) = recv(&fresh) {
            let mut m = Message::new();
            m.unmarshal_binary(&resp).unwrap();
            assert_eq!(m.transaction_id, tid);
            answered += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flood.join().unwrap();
    let rounds = rounds.load(std::sync::atomic::Ordering::Relaxed);
    assert!(rounds >= 3, "the flood ran only {rounds} full rounds");
    assert!(answered >= 22, "fresh sources answered {answered} of 24");
}

#[tokio::test]
async fn paired_ends_learn_the_stun_address_or_none() {
    let dir = TempDir::new("stun-paired");
    let (node, _) = stun_node(&dir);
    node.add_technician(EMAIL);
    let token = node.login(EMAIL).await;
    let guid = node.create_session(&token).await;
    let (_a, _c, stun) = pair(&node, guid, &token).await;
    assert_eq!(stun, node.stun_advertised());
    assert!(stun.starts_with("127.0.0.1:"), "{stun}");

    // STUN switched off: the node says so, and Paired carries nothing.
    let dir = TempDir::new("stun-off");
    let node = Node::start(dir.path(), &["--stun-listen", "off"]);
    assert_eq!(node.stun_line, "STUN off (--stun-listen off)");
    node.add_technician(EMAIL);
    let token = node.login(EMAIL).await;
    let guid = node.create_session(&token).await;
    let (_a, _c, stun) = pair(&node, guid, &token).await;
    assert_eq!(stun, "");
}

#[tokio::test]
async fn a_taken_stun_port_is_a_warning_not_a_failure() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let dir = TempDir::new("stun-taken");
    let mut node = Node::start(dir.path(), &["--stun-listen", &port]);
    assert!(
        node.stun_line
            .starts_with(&format!("STUN off: cannot listen on UDP {port}: ")),
        "{}",
        node.stun_line
    );
    assert!(node.running());
    node.add_technician(EMAIL);
    let token = node.login(EMAIL).await;
    let guid = node.create_session(&token).await;
    let (_a, _c, stun) = pair(&node, guid, &token).await;
    assert_eq!(stun, "");
}

#[test]
fn bad_stun_listen_values_are_refused_clearly() {
    let dir = TempDir::new("stun-badflag");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--stun-listen", "everywhere"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--stun-listen") && err.contains("or off"),
        "{err}"
    );

    let cfg = dir.path().join("gateway.toml");
    std::fs::write(&cfg, "stun_listen = \"nowhere\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--config")
        .arg(&cfg)
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gateway.toml") && err.contains("or off"),
        "{err}"
    );

    // From the config file and the environment, like every other flag.
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nstun_listen = \"off\"\n").unwrap();
    let node = Node::start(dir.path(), &["--config", cfg.to_str().unwrap()]);
    assert_eq!(node.stun_line, "STUN off (--stun-listen off)");
    drop(node);
    let node = Node::start_with_env(dir.path(), &[], &[("LIFELINE_STUN_LISTEN", "127.0.0.1:0")]);
    assert!(node.stun.is_some(), "{}", node.stun_line);
}
