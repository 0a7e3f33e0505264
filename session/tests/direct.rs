//! Going direct with both ends in this process, over real loopback sockets
//! for the direct paths and a throttled, byte-counting in-memory relay in
//! place of the gateway: direct TCP, XTCP over ICE, forced relay — each
//! with link tests both ways running across the cutover — and the applet's
//! listener refusing strangers and replayed binding proofs.
#![allow(clippy::unwrap_used)]

use lifeline_protocol::SessionGuid;
use lifeline_protocol::e2e::{EndedBy, Frame, Handshake, Negotiation};
use lifeline_protocol::proof::{self, DIRECT_EXPORTER_LABEL};
use lifeline_protocol::relay::Role;
use lifeline_session::channel::{FrameReader, FrameWriter};
use lifeline_session::direct::{DirectEvent, Ends, Negotiator, Policy, Settings, Side};
use lifeline_session::identity::SessionIdentity;
use lifeline_session::link::PathKind;
use lifeline_session::linktest::Direction;
use lifeline_session::live::{self, Command, Event};
use lifeline_session::secure;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

const GUID: SessionGuid = SessionGuid::from_bytes([0x42; 16]);
const MIB: u64 = 1 << 20;
/// How long the console stays on the relay before it tries to go direct.
const START_AFTER: Duration = Duration::from_millis(300);

/// Bytes the relay carried each way.
#[derive(Debug, Default)]
struct Carried {
    to_console: AtomicU64,
    to_applet: AtomicU64,
}

/// An in-memory relay: two duplex pipes joined by pumps that count bytes
/// and hold each direction to `rate` bytes/s (so that a transfer started
/// on it is still running when the direct path comes up).
fn relay(rate: u64) -> (DuplexStream, DuplexStream, Arc<Carried>) {
    let (applet, applet_far) = tokio::io::duplex(64 * 1024);
    let (console, console_far) = tokio::io::duplex(64 * 1024);
    let carried = Arc::new(Carried::default());
    let (ar, aw) = tokio::io::split(applet_far);
    let (cr, cw) = tokio::io::split(console_far);
    let c1 = carried.clone();
    tokio::spawn(pump(ar, cw, rate, move |n| {
        c1.to_console.fetch_add(n, Ordering::Relaxed);
    }));
    let c2 = carried.clone();
    tokio::spawn(pump(cr, aw, rate, move |n| {
        c2.to_applet.fetch_add(n, Ordering::Relaxed);
    }));
    (applet, console, carried)
}

async fn pump<R, W>(mut r: R, mut w: W, rate: u64, count: impl Fn(u64))
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    let t0 = tokio::time::Instant::now();
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n as u64;
        count(n as u64);
        let due = t0 + Duration::from_secs_f64(total as f64 / rate as f64);
        tokio::time::sleep_until(due).await;
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}

struct Session {
    console_cmd: mpsc::UnboundedSender<Command>,
    console_events: mpsc::Receiver<Event>,
    applet_events: mpsc::Receiver<Event>,
    console: tokio::task::JoinHandle<Result<live::Outcome, lifeline_session::core::SessionError>>,
    applet: tokio::task::JoinHandle<Result<live::Outcome, lifeline_session::core::SessionError>>,
    carried: Arc<Carried>,
}

async fn start(console_policy: &str, applet: Settings, rate: u64) -> Session {
    let id = Arc::new(SessionIdentity::generate("direct test").unwrap());
    let (a, c, carried) = relay(rate);
    let pin = id.pin();
    let a_est = tokio::spawn(async move { secure::applet_side(a, GUID, pin, [3; 32]).await });
    let c_est = secure::console_side(c, GUID, &id, [3; 32]).await.unwrap();
    let a_est = a_est.await.unwrap().unwrap();
    let (console_cmd, crx) = mpsc::unbounded_channel();
    let (etx, console_events) = mpsc::channel(64);
    let (_atx, arx) = mpsc::unbounded_channel::<Command>();
    let (aetx, applet_events) = mpsc::channel(64);
    let console_setup = live::Setup {
        me: EndedBy::Technician,
        guid: GUID,
        side: Side::Console { identity: id },
        direct: Settings {
            policy: Policy::parse(console_policy, Duration::from_millis(500)).unwrap(),
            loopback: true,
            // The link tests are asked for as soon as the session runs;
            // this lets them put data on the relay before any direct
            // attempt, however fast loopback makes the cutover (without
            // it a loaded machine could go direct before the first byte).
            start_after: START_AFTER,
            ..Settings::default()
        },
        on_path: None,
        scheduling: Default::default(),
        reconnect: None,
        dead_path: lifeline_session::core::DEAD_PATH,
        traffic: Default::default(),
    };
    let applet_setup = live::Setup {
        me: EndedBy::User,
        guid: GUID,
        side: Side::Applet { console_pin: pin },
        direct: applet,
        on_path: None,
        scheduling: Default::default(),
        reconnect: None,
        dead_path: lifeline_session::core::DEAD_PATH,
        traffic: Default::default(),
    };
    std::mem::forget(_atx);
    Session {
        console_cmd,
        console_events,
        applet_events,
        console: tokio::spawn(live::run(c_est, console_setup, crx, etx)),
        applet: tokio::spawn(live::run(a_est, applet_setup, arx, aetx)),
        carried,
    }
}

fn applet_loopback() -> Settings {
    Settings {
        loopback: true,
        ..Settings::default()
    }
}

/// Waits for the console's two link tests and its path event; returns the
/// path the session ended up on (`None`: stayed on the relay).
async fn run_tests_across_cutover(s: &mut Session, bytes: u64) -> Option<PathKind> {
    for direction in [Direction::ToUser, Direction::FromUser] {
        s.console_cmd
            .send(Command::LinkTest { bytes, direction })
            .unwrap();
    }
    let mut done = 0;
    let mut path = None;
    let mut stayed = false;
    while done < 2 || (path.is_none() && !stayed) {
        let ev = tokio::time::timeout(Duration::from_secs(120), s.console_events.recv())
            .await
            .expect("session stalled")
            .expect("console ended");
        match ev {
            Event::TestDone {
                direction,
                ok,
                bytes: got,
                detail,
                secs,
            } => {
                assert!(ok, "{direction:?}: {detail}");
                assert_eq!(got, bytes, "{direction:?}");
                eprintln!("link test {direction:?}: {got} B in {secs:.2} s");
                done += 1;
            }
            Event::PathChanged { kind, detail, .. } => {
                eprintln!("console: now on {kind} ({detail})");
                path = Some(kind);
            }
            Event::StaysOnRelay { reason } => {
                eprintln!("console: stays on the relay: {reason}");
                stayed = true;
            }
            _ => {}
        }
    }
    path
}

async fn end(mut s: Session) -> Session {
    s.console_cmd
        .send(Command::End("test over".into()))
        .unwrap();
    let c = (&mut s.console).await.unwrap().unwrap();
    let a = (&mut s.applet).await.unwrap().unwrap();
    assert!(c.local && !a.local && a.reason == "test over");
    s
}

fn applet_saw_path(s: &mut Session) -> Option<PathKind> {
    let mut seen = None;
    while let Ok(ev) = s.applet_events.try_recv() {
        if let Event::PathChanged { kind, .. } = ev {
            seen = Some(kind);
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_moves_a_running_transfer_to_direct_tcp_without_losing_a_byte() {
    let mut s = start("auto", applet_loopback(), 16 * MIB).await;
    let bytes = 48 * MIB;
    assert_eq!(
        run_tests_across_cutover(&mut s, bytes).await,
        Some(PathKind::DirectTcp)
    );
    let mut s = end(s).await;
    assert_eq!(applet_saw_path(&mut s), Some(PathKind::DirectTcp));
    let (to_c, to_a) = (
        s.carried.to_console.load(Ordering::Relaxed),
        s.carried.to_applet.load(Ordering::Relaxed),
    );
    eprintln!("relay carried {to_a} B to the applet, {to_c} B to the console");
    // The tests started on the relay, and most of them went direct.
    assert!(
        to_a > 64 * 1024 && to_a < bytes / 2,
        "relay carried {to_a} B"
    );
    assert!(
        to_c > 64 * 1024 && to_c < bytes / 2,
        "relay carried {to_c} B"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_udp_moves_a_running_transfer_to_xtcp_over_ice() {
    let mut s = start("udp", applet_loopback(), 8 * MIB).await;
    let bytes = 32 * MIB;
    assert_eq!(
        run_tests_across_cutover(&mut s, bytes).await,
        Some(PathKind::XtcpUdp)
    );
    let mut s = end(s).await;
    assert_eq!(applet_saw_path(&mut s), Some(PathKind::XtcpUdp));
    // Started on the relay; the relay did not carry it all (at 8 MiB/s it
    // would take 4 s; ICE on loopback takes a fraction of a second).
    let to_a = s.carried.to_applet.load(Ordering::Relaxed);
    assert!(
        to_a > 64 * 1024 && to_a < bytes * 3 / 4,
        "relay carried {to_a} B"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_relay_stays_on_the_relay_and_says_why() {
    let mut s = start("relay", applet_loopback(), 64 * MIB).await;
    let bytes = 8 * MIB;
    assert_eq!(run_tests_across_cutover(&mut s, bytes).await, None);
    let s = end(s).await;
    assert!(s.carried.to_applet.load(Ordering::Relaxed) > bytes);
    assert!(s.carried.to_console.load(Ordering::Relaxed) > bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_applet_allows_only_the_relay_the_console_is_told_why() {
    let applet = Settings {
        policy: Policy::parse("relay", Policy::DEFAULT_UDP_AFTER).unwrap(),
        ..applet_loopback()
    };
    let mut s = start("auto", applet, 64 * MIB).await;
    let reason = loop {
        match s.console_events.recv().await.unwrap() {
            Event::StaysOnRelay { reason } => break reason,
            Event::PathChanged { .. } => panic!("went direct"),
            _ => {}
        }
    };
    assert!(
        reason.contains("turned off on the end user's side"),
        "{reason}"
    );
    end(s).await;
}

/// An applet negotiator asked for direct TCP: its listener is up; returns
/// it and the listener's loopback address.
async fn listening_applet(
    console_pin: [u8; 32],
    relayed: [u8; 32],
) -> (Negotiator, std::net::SocketAddr) {
    let ends = Arc::new(Ends {
        guid: GUID,
        relayed_exporter: relayed,
        side: Side::Applet { console_pin },
    });
    let mut applet = Negotiator::new(
        ends,
        Settings {
            policy: Policy::parse("tcp", Duration::from_secs(10)).unwrap(),
            loopback: true,
            ..Settings::default()
        },
    );
    applet
        .on_frame(Negotiation::PathPolicy {
            tcp: true,
            udp: false,
            udp_after_ms: 0,
        })
        .await;
    let DirectEvent::Send(Negotiation::PathOffer { tcp: addrs, .. }) = applet.next().await else {
        panic!("no offer")
    };
    let addr = *addrs.iter().find(|a| a.ip().is_loopback()).unwrap();
    (applet, addr)
}

/// The applet's listener with a real console dialing it after three
/// impostors: one that speaks no TLS, one with the wrong certificate, and
/// one with the right certificate (a stolen session key) but no proof of
/// the relayed session, who gets no proof from the applet either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_applet_listener_refuses_strangers_and_shows_its_proof_only_to_the_console() {
    let id = Arc::new(SessionIdentity::generate("console").unwrap());
    let relayed = [0x77; 32];
    let (mut applet, addr) = listening_applet(id.pin(), relayed).await;

    // 1. Plain TCP, garbage, close.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink)).await;

    // 2. TLS with another certificate: the applet's pin refuses it.
    let other = SessionIdentity::generate("impostor").unwrap();
    let tls = lifeline_session::tls::e2e_server_config(other.cert.clone(), other.key()).unwrap();
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let r = tokio_rustls::TlsAcceptor::from(tls).accept(s).await;
    if let Ok(mut t) = r {
        let mut b = [0u8; 1];
        assert!(t.read(&mut b).await.map(|n| n == 0).unwrap_or(true));
    }

    // 3. The right certificate (a stolen session key) without the relayed
    // session's keys: the applet waits for the console's proof before it
    // shows its own, so there is nothing to capture and replay, and a
    // forged proof is refused.
    let real_tls = lifeline_session::tls::e2e_server_config(id.cert.clone(), id.key()).unwrap();
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let t = tokio_rustls::TlsAcceptor::from(real_tls.clone())
        .accept(s)
        .await
        .unwrap();
    let (r, w) = tokio::io::split(t);
    let (mut r1, mut w1) = (FrameReader::new(r), FrameWriter::new(w));
    w1.write_frame(&Frame::Handshake(Handshake::Bind { mac: [0x66; 32] }))
        .await
        .unwrap();
    // Refused: the applet closes without a proof of its own.
    assert!(
        tokio::time::timeout(Duration::from_secs(10), r1.read_frame())
            .await
            .unwrap()
            .map(|f| f.is_none())
            .unwrap_or(true),
        "the applet showed its proof to an impostor"
    );
    drop((r1, w1));

    // The real console: TLS, a fresh proof over this connection's exporter.
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let t = tokio_rustls::TlsAcceptor::from(real_tls)
        .accept(s)
        .await
        .unwrap();
    let mut exporter = [0u8; 32];
    t.get_ref()
        .1
        .export_keying_material(&mut exporter, DIRECT_EXPORTER_LABEL, Some(GUID.as_bytes()))
        .unwrap();
    let (r, w) = tokio::io::split(t);
    let (mut r, mut w) = (FrameReader::new(r), FrameWriter::new(w));
    let mac = proof::binding_proof(&relayed, &GUID, Role::Console, &exporter);
    w.write_frame(&Frame::Handshake(Handshake::Bind { mac }))
        .await
        .unwrap();
    let Some(Frame::Handshake(Handshake::Bind { mac: theirs })) = r.read_frame().await.unwrap()
    else {
        panic!("no proof")
    };
    assert!(proof::verify_binding_proof(
        &relayed,
        &GUID,
        Role::Applet,
        &exporter,
        &theirs
    ));
    // Exactly one path was accepted: the real one.
    let ev = tokio::time::timeout(Duration::from_secs(10), applet.next())
        .await
        .unwrap();
    let DirectEvent::Ready(path) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(path.id, proof::path_id(&exporter));
    assert!(
        tokio::time::timeout(Duration::from_millis(500), applet.next())
            .await
            .is_err(),
        "a second path was accepted"
    );
}

/// A stranger holding silent connections open from one address cannot
/// keep the console (from another address) out of the applet's listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_strangers_cannot_crowd_out_the_console() {
    let id = Arc::new(SessionIdentity::generate("console").unwrap());
    let relayed = [0x55; 32];
    let (mut applet, addr) = listening_applet(id.pin(), relayed).await;
    // Twenty silent connections from 127.0.0.2, more than all pending slots.
    let mut held = Vec::new();
    for _ in 0..20 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        if let Ok(s) = sock.connect(addr).await {
            held.push(s);
        }
    }
    // The console, from 127.0.0.1, still gets through and proves itself.
    let console = Arc::new(Ends {
        guid: GUID,
        relayed_exporter: relayed,
        side: Side::Console { identity: id },
    });
    let path = tokio::time::timeout(
        Duration::from_secs(10),
        lifeline_session::direct::tcp::dial(vec![addr], console),
    )
    .await
    .unwrap()
    .unwrap();
    let DirectEvent::Ready(mine) = applet.next().await else {
        panic!("the applet did not accept the console")
    };
    assert_eq!(mine.id, path.id);
    drop(held);
}
