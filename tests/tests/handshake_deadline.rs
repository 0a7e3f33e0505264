//! The gateway survives silent clients: a connection that sends nothing
//! (no TLS, a TLS record cut short, or TLS on ALPN `lifeline/1` but no
//! hello) is closed at the handshake deadline, while sessions that did
//! their handshake — waiting or relayed — go on untouched.
#![allow(clippy::unwrap_used)]

use lifeline_protocol::relay::{RefuseCode, ServerMsg};
use lifeline_protocol::{ALPN_H2, ALPN_HTTP1, ALPN_RELAY};
use lifeline_tests::*;
use rustls::pki_types::ServerName;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The `--handshake-timeout` these tests run the gateway with.
const DEADLINE: Duration = Duration::from_secs(2);
/// A connection closed before this after opening was closed too early.
const NOT_BEFORE: Duration = Duration::from_millis(1500);
/// A connection must be closed by this long after opening.
const CLOSED_BY: Duration = Duration::from_secs(6);
/// How long the test watches a silent connection at most.
const WATCH: Duration = Duration::from_secs(8);

/// How a silent connection behaves before falling silent.
#[derive(Debug, Clone, Copy)]
enum Silence {
    /// TCP only, not a byte sent.
    Tcp,
    /// The first 5 bytes of a TLS record header, then nothing.
    PartialRecord,
    /// A complete TLS handshake offering only this ALPN, then nothing.
    Tls(&'static [u8]),
    /// A complete TLS handshake offering only this ALPN, then the start of
    /// a request, then nothing.
    TlsThen(&'static [u8], &'static [u8]),
}

/// What a silent connection saw: how long after opening the gateway
/// closed it, and the bytes it received meanwhile.
#[derive(Debug)]
struct Closed {
    after: Duration,
    received: Vec<u8>,
}

/// Reads until EOF or a reset; `Err` if still open after [`WATCH`].
fn read_until_closed(
    r: &mut impl Read,
    set_timeout: &dyn Fn(Duration),
    opened: Instant,
) -> Result<Closed, String> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = WATCH.saturating_sub(opened.elapsed());
        if left.is_zero() {
            return Err(format!(
                "still open after {WATCH:?} (received {} bytes)",
                received.len()
            ));
        }
        set_timeout(left);
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // Reset or closed without close_notify: closed all the same.
            Err(_) => break,
        }
    }
    Ok(Closed {
        after: opened.elapsed(),
        received,
    })
}

/// Opens a connection of kind `how` on a thread, which then waits for the
/// gateway to close it. Returns once the connection is set up.
fn open_silent(gw: &Gateway, how: Silence) -> JoinHandle<Result<Closed, String>> {
    let addr: SocketAddr = gw.socket_addr();
    let tls = match how {
        Silence::Tls(alpn) | Silence::TlsThen(alpn, _) => Some(gw.client_config(&[alpn])),
        _ => None,
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut tcp = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        let opened = Instant::now();
        let sock = tcp.try_clone().unwrap();
        let set_timeout = move |d: Duration| {
            let _ = sock.set_read_timeout(Some(d));
        };
        match (how, tls) {
            (Silence::Tcp, _) => {
                let _ = ready_tx.send(());
                read_until_closed(&mut tcp, &set_timeout, opened)
            }
            (Silence::PartialRecord, _) => {
                // A handshake record header announcing 512 bytes, then silence.
                tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
                let _ = ready_tx.send(());
                read_until_closed(&mut tcp, &set_timeout, opened)
            }
            (Silence::Tls(alpn) | Silence::TlsThen(alpn, _), Some(config)) => {
                tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let conn = rustls::ClientConnection::new(
                    config,
                    ServerName::try_from("127.0.0.1").unwrap(),
                )
                .map_err(|e| e.to_string())?;
                let mut s = rustls::StreamOwned::new(conn, tcp);
                while s.conn.is_handshaking() {
                    s.conn
                        .complete_io(&mut s.sock)
                        .map_err(|e| format!("TLS handshake: {e}"))?;
                }
                if s.conn.alpn_protocol() != Some(alpn) {
                    return Err(format!(
                        "ALPN {:?} was not negotiated",
                        String::from_utf8_lossy(alpn)
                    ));
                }
                if let Silence::TlsThen(_, start) = how {
                    s.write_all(start).map_err(|e| format!("write: {e}"))?;
                    s.flush().map_err(|e| format!("flush: {e}"))?;
                }
                let _ = ready_tx.send(());
                read_until_closed(&mut s, &set_timeout, opened)
            }
            (Silence::Tls(_) | Silence::TlsThen(..), None) => unreachable!(),
        }
    });
    // Returns when the connection is in place (or the thread has failed).
    let _ = ready_rx.recv_timeout(Duration::from_secs(10));
    handle
}

/// Whether the connection watched by `h` was closed at the deadline.
fn closed_at_deadline(what: &str, h: JoinHandle<Result<Closed, String>>) -> Result<Closed, String> {
    let closed = h.join().unwrap().map_err(|e| {
        format!("{what}: {e}; it should have been closed at the {DEADLINE:?} handshake deadline")
    })?;
    if closed.after < NOT_BEFORE {
        return Err(format!(
            "{what}: closed after {:?}, before the {DEADLINE:?} handshake deadline",
            closed.after
        ));
    }
    if closed.after > CLOSED_BY {
        return Err(format!(
            "{what}: closed only after {:?}; the handshake deadline is {DEADLINE:?}",
            closed.after
        ));
    }
    Ok(closed)
}

fn check_closed_at_deadline(what: &str, h: JoinHandle<Result<Closed, String>>) -> Closed {
    closed_at_deadline(what, h).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn silent_connections_are_closed_at_the_deadline_while_sessions_go_on() {
    let s = Scenario::start(&["--handshake-timeout", "2"]);
    let (relayed_path, relayed_guid) = s.session("relayed");
    let (waiting_path, waiting_guid) = s.session("waiting");
    let mut relayed = Proc::applet(&relayed_path, &[]);
    let mut waiting = Proc::applet(&waiting_path, &[]);
    relayed.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    waiting.out.wait_for(&format!("Waiting for {TECH_NAME}"));

    // The silent connections.
    let tcp = open_silent(&s.gw, Silence::Tcp);
    let partial = open_silent(&s.gw, Silence::PartialRecord);
    let no_hello = open_silent(&s.gw, Silence::Tls(ALPN_RELAY));

    // Meanwhile a session pairs and chats.
    let (mut tech, _) = pair(&s.console, &mut relayed, "relayed", &relayed_guid);
    chat_both_ways(
        &mut tech,
        &mut relayed,
        "while they are silent",
        "hello from the user",
    );

    check_closed_at_deadline("a TCP connection that sent nothing", tcp);
    check_closed_at_deadline(
        "a TCP connection that sent half a TLS record header",
        partial,
    );
    let closed = check_closed_at_deadline(
        "a TLS connection on lifeline/1 that sent no hello",
        no_hello,
    );
    // That one was told why before the close.
    match ServerMsg::decode(&closed.received) {
        Ok((ServerMsg::Refused { code, message }, _)) => {
            assert_eq!(code, RefuseCode::BadRequest, "{message}");
            assert!(message.contains("deadline"), "refusal: {message}");
        }
        other => panic!(
            "a silent relay client got {other:?} ({} bytes) instead of a refusal",
            closed.received.len()
        ),
    }

    // After the deadline: the relayed session still carries chat both ways...
    chat_both_ways(&mut tech, &mut relayed, "after the deadline", "still here");
    end_session(&mut tech, &mut relayed);
    // ...and the applet that has been waiting longer than the deadline is
    // still in the queue and can be connected.
    let queue = s.console.queue();
    assert_eq!(queue.len(), 1, "queue: {queue:?}");
    assert_eq!(queue[0]["guid"], waiting_guid.as_str());
    assert_eq!(queue[0]["state"], "waiting");
    let (mut tech, _) = pair(&s.console, &mut waiting, "waiting", &waiting_guid);
    chat_both_ways(&mut tech, &mut waiting, "sorry for the wait", "no problem");
    end_session(&mut tech, &mut waiting);
}

/// The portal (ALPN `http/1.1` and `h2` on the same port) is held to the
/// same deadline: for its first bytes, and for a request head or HTTP/2
/// connection preface that starts but never completes.
#[test]
fn silent_portal_connections_are_closed_at_the_deadline() {
    let s = Scenario::start(&["--handshake-timeout", "2"]);
    let http1 = open_silent(&s.gw, Silence::Tls(ALPN_HTTP1));
    let h2 = open_silent(&s.gw, Silence::Tls(ALPN_H2));
    let http1_partial = open_silent(
        &s.gw,
        Silence::TlsThen(ALPN_HTTP1, b"GET /api/v1/health HTTP/1.1\r\n"),
    );
    let h2_partial = open_silent(&s.gw, Silence::TlsThen(ALPN_H2, b"PRI * HTTP/2.0\r\n"));
    // The portal still answers others meanwhile.
    let (applet, _) = s.session("meanwhile");
    assert!(applet.exists());
    let failures: Vec<String> = [
        ("a TLS connection on http/1.1 that sent no request", http1),
        ("a TLS connection on h2 that sent no preface", h2),
        (
            "a TLS connection on http/1.1 that sent half a request head",
            http1_partial,
        ),
        (
            "a TLS connection on h2 that sent half the connection preface",
            h2_partial,
        ),
    ]
    .into_iter()
    .filter_map(|(what, h)| closed_at_deadline(what, h).err())
    .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
