//! Trust model: a relay that terminates the inner TLS with its own
//! certificate is refused by the applet, which tells the user why.
//!
//! This models the worst case: the operator's own gateway turns hostile.
//! The evil relay holds the operator CA key (from the gateway's data
//! directory), so it can pass the applet's outer-TLS check with a node
//! certificate it issues itself; the real gateway advertises the evil
//! relay's address, so the applet's trailer and the signed directory both
//! lead there. The evil relay forwards the portal (ALPN `http/1.1`) to the
//! real gateway, and on ALPN `lifeline/1` plays gateway (Waiting, Paired)
//! and then answers the inner TLS itself with a fresh certificate. The
//! applet's pinned-SPKI check is all that stands between it and a
//! man-in-the-middle, and it must hold.
//!
//! The other direction: the same hostile relay lets the real applet wait
//! at the real gateway, but when the technician's console comes to it, it
//! plays the applet — it knows the GUID and the console's pin (both are in
//! the trailer) but not the applet secret, so its proof fails and the
//! console refuses it without ever showing a verification code.
//!
//! The applet's admission proof to the gateway is bound to its own outer
//! TLS connection, so a relay that terminates that TLS cannot even use the
//! applet's hello at the real gateway: the last test shows the real
//! gateway refusing the forwarded hello. (To let the applet wait at the
//! real gateway in the test before it, the evil relay passes the applet's
//! connection through at the TCP level, TLS untouched.)
#![allow(clippy::unwrap_used)]

use lifeline_protocol::relay::{Hello, Role, ServerMsg};
use lifeline_protocol::trailer::SignedTrailer;
use lifeline_protocol::{ALPN_HTTP1, ALPN_RELAY};
use lifeline_session::identity::SessionIdentity;
use lifeline_session::secure::{self, SecureError};
use lifeline_session::tls::{
    GatewayTrust, e2e_server_config, gateway_client_config, outer_provider,
};
use lifeline_tests::*;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, mpsc};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Whom the evil relay pretends to be on ALPN `lifeline/1`.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// The technician's console, towards every applet.
    Console,
    /// The end user's applet, towards every console (the applet's relay
    /// connection is passed through to the real gateway at the TCP level).
    /// The console's pin is public.
    Applet { console_pin: [u8; 32] },
    /// Terminates the applet's outer TLS and forwards its hello to the real
    /// gateway over a connection of its own.
    ForwardApplet,
}

/// What the evil relay saw.
#[derive(Debug)]
enum Seen {
    /// A portal request was forwarded to the real gateway.
    Portal,
    /// A hello: role and GUID.
    Hello(Role, String),
    /// An applet's relay connection was passed through, TLS untouched.
    PassedThrough,
    /// What the real gateway answered a forwarded applet hello.
    Forwarded(ServerMsg),
    /// The outcome of the end-to-end handshake the evil relay attempted:
    /// `Ok(how the real end broke it off)` or `Err(what went wrong)`.
    InnerTls(Result<String, String>),
    /// Something else went wrong in the evil relay.
    Failure(String),
}

/// The CA parameters exactly as `gateway/src/datadir.rs` builds them, so
/// that the rebuilt issuer's name matches the stored CA certificate.
fn ca_params(operator_name: &str) -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("{operator_name} Lifeline CA"),
    );
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, operator_name);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2025, 1, 1);
    p.not_after = rcgen::date_time_ymd(2045, 1, 1);
    p
}

/// An outer-TLS server configuration for the evil relay: a certificate for
/// 127.0.0.1 issued with the operator CA key stolen from `data_dir`.
fn evil_outer_config(data_dir: &Path, ca_der: CertificateDer<'static>) -> Arc<ServerConfig> {
    #[derive(serde::Deserialize)]
    struct OperatorFile {
        operator_name: String,
    }
    let op: OperatorFile =
        toml::from_str(&std::fs::read_to_string(data_dir.join("operator.toml")).unwrap()).unwrap();
    let ca_key = rcgen::KeyPair::from_pem(
        &std::fs::read_to_string(data_dir.join("operator-ca.key.pem")).unwrap(),
    )
    .unwrap();
    let issuer = rcgen::Issuer::new(ca_params(&op.operator_name), &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "definitely the real gateway");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    let mut config = ServerConfig::builder_with_provider(outer_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone(), ca_der],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    config.alpn_protocols = vec![ALPN_RELAY.to_vec(), ALPN_HTTP1.to_vec()];
    Arc::new(config)
}

/// Reads one relay hello with exact reads.
async fn read_hello<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Result<Hello, String> {
    let frame = lifeline_session::gateway_conn::read_frame(s)
        .await
        .map_err(|e| format!("hello: {e}"))?;
    Hello::decode(&frame)
        .map(|(h, _)| h)
        .map_err(|e| format!("hello: {e}"))
}

/// A TLS connection from the evil relay to the real gateway.
async fn to_real_gateway(
    real_gateway: SocketAddr,
    ca: CertificateDer<'static>,
    alpn: &[u8],
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let config = gateway_client_config(&GatewayTrust::Ca(ca), &[alpn]).unwrap();
    let tcp = TcpStream::connect(real_gateway)
        .await
        .map_err(|e| format!("real gateway: {e}"))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .map_err(|e| format!("real gateway TLS: {e}"))
}

/// Whether a connection's first bytes are a TLS ClientHello offering ALPN
/// `lifeline/1` (a relay connection, not a portal request), peeked without
/// consuming them.
async fn offers_relay_alpn(tcp: &TcpStream) -> bool {
    let mut buf = [0u8; 2048];
    for _ in 0..50 {
        if let Ok(n) = tcp.peek(&mut buf).await
            && n > 0
        {
            let hello = &buf[..n];
            if hello.windows(ALPN_RELAY.len()).any(|w| w == ALPN_RELAY) {
                return true;
            }
            if n >= 512 {
                return false;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// One connection to the evil relay.
async fn evil_connection(
    mut tcp: TcpStream,
    mode: Mode,
    outer: Arc<ServerConfig>,
    real_gateway: SocketAddr,
    ca: CertificateDer<'static>,
    seen: mpsc::Sender<Seen>,
    applet_passed: Arc<std::sync::atomic::AtomicBool>,
) -> Result<(), String> {
    if matches!(mode, Mode::Applet { .. })
        && offers_relay_alpn(&tcp).await
        && !applet_passed.swap(true, std::sync::atomic::Ordering::SeqCst)
    {
        // The first relay connection is the real applet's: let it reach
        // the real gateway, its TLS (and so its admission proof) intact.
        let _ = seen.send(Seen::PassedThrough);
        let mut upstream = TcpStream::connect(real_gateway)
            .await
            .map_err(|e| format!("real gateway: {e}"))?;
        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut upstream).await;
        return Ok(());
    }
    let mut tls = tokio_rustls::TlsAcceptor::from(outer)
        .accept(tcp)
        .await
        .map_err(|e| format!("outer TLS: {e}"))?;
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    if alpn.as_deref() != Some(ALPN_RELAY) {
        // The portal: forward, decrypted and re-encrypted, to the real one.
        let _ = seen.send(Seen::Portal);
        let mut upstream = to_real_gateway(real_gateway, ca, ALPN_HTTP1).await?;
        let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
        return Ok(());
    }
    let hello = read_hello(&mut tls).await?;
    let _ = seen.send(Seen::Hello(hello.role, hello.guid.to_string()));
    match (mode, hello.role) {
        (Mode::Console, Role::Applet) => {
            play_gateway(&mut tls).await?;
            // Terminate the inner TLS with a certificate of our own.
            let me = SessionIdentity::generate("Lifeline session").unwrap();
            let inner = e2e_server_config(me.cert.clone(), me.key()).unwrap();
            let result = match tokio_rustls::TlsAcceptor::from(inner).accept(tls).await {
                Ok(mut inner_tls) => {
                    // Should never get here; if it does, see whether the
                    // applet talks to us.
                    let mut buf = [0u8; 64];
                    let n = tokio::time::timeout(Duration::from_secs(2), inner_tls.read(&mut buf))
                        .await;
                    Err(format!(
                        "the applet accepted our certificate (then read {n:?})"
                    ))
                }
                Err(e) => Ok(e.to_string()),
            };
            let _ = seen.send(Seen::InnerTls(result));
        }
        (Mode::Applet { .. }, Role::Applet) => {
            return Err("a second applet connection came to the evil relay".into());
        }
        (Mode::ForwardApplet, Role::Applet) => {
            // Use the applet's hello at the real gateway, over our own TLS.
            let mut upstream = to_real_gateway(real_gateway, ca, ALPN_RELAY).await?;
            upstream
                .write_all(&hello.encode())
                .await
                .map_err(|e| e.to_string())?;
            upstream.flush().await.map_err(|e| e.to_string())?;
            let answer = tokio::time::timeout(
                Duration::from_secs(10),
                lifeline_session::gateway_conn::read_server_msg(&mut upstream),
            )
            .await
            .map_err(|_| "the real gateway did not answer".to_owned())?
            .map_err(|e| e.to_string())?;
            let _ = seen.send(Seen::Forwarded(answer.clone()));
            // Tell the applet what the real gateway said.
            tls.write_all(&answer.encode())
                .await
                .map_err(|e| e.to_string())?;
            tls.flush().await.map_err(|e| e.to_string())?;
        }
        (Mode::ForwardApplet, Role::Console) => {
            return Err("a console came to the evil relay".into());
        }
        (Mode::Applet { console_pin }, Role::Console) => {
            play_gateway(&mut tls).await?;
            // Pose as the applet: everything but the applet secret is known.
            let mut guessed_secret = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut guessed_secret)
                .unwrap();
            let result = match secure::applet_side(tls, hello.guid, console_pin, guessed_secret)
                .await
            {
                Ok(_) => Err("the console accepted an applet without the applet secret".to_owned()),
                Err(SecureError::Refused(why)) => Ok(why),
                Err(e) => Err(format!("the console did not refuse the proof clearly: {e}")),
            };
            let _ = seen.send(Seen::InnerTls(result));
        }
        (Mode::Console, Role::Console) => return Err("a console came to the evil relay".into()),
    }
    Ok(())
}

/// Tells the client it waits and is paired, as a gateway would.
async fn play_gateway(tls: &mut tokio_rustls::server::TlsStream<TcpStream>) -> Result<(), String> {
    for msg in [
        ServerMsg::Waiting {
            observed: "127.0.0.1:1".into(),
            node: "evil".into(),
        },
        // Naming a console of its own changes nothing for an applet whose
        // file names its technician's.
        ServerMsg::Paired {
            stun: String::new(),
            console: Some(lifeline_protocol::relay::PickedBy {
                console_pin: [0xee; 32],
                technician_name: "Mallory".into(),
            }),
        },
    ] {
        tls.write_all(&msg.encode())
            .await
            .map_err(|e| e.to_string())?;
    }
    tls.flush().await.map_err(|e| e.to_string())
}

/// A gateway whose clients are sent to an evil relay that holds the
/// operator CA key, and the relay's reports.
struct EvilSetup {
    s: Scenario,
    evil_addr: SocketAddr,
    seen: mpsc::Receiver<Seen>,
    rt: Option<tokio::runtime::Runtime>,
}

impl EvilSetup {
    /// Starts the gateway advertising the evil relay, then the relay.
    /// `mode` is decided once the first session exists (it may need its pin).
    fn start() -> (Self, TcpListener) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        // The evil relay's port must exist before the gateway advertises it.
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let evil_addr = listener.local_addr().unwrap();
        let s = Scenario::start(&["--advertise", &evil_addr.to_string()]);
        let (_tx, seen) = mpsc::channel();
        (
            Self {
                s,
                evil_addr,
                seen,
                rt: Some(rt),
            },
            listener,
        )
    }

    /// Runs the evil relay on `listener`.
    fn run(&mut self, listener: TcpListener, mode: Mode) {
        let ca = self.s.gw.ca_cert();
        let outer = evil_outer_config(self.s.data.path(), ca.clone());
        let real = self.s.gw.socket_addr();
        let (seen_tx, seen) = mpsc::channel();
        self.seen = seen;
        let applet_passed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        self.rt.as_ref().unwrap().spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    break;
                };
                let (outer, ca, seen) = (outer.clone(), ca.clone(), seen_tx.clone());
                let passed = applet_passed.clone();
                tokio::spawn(async move {
                    if let Err(e) =
                        evil_connection(tcp, mode, outer, real, ca, seen.clone(), passed).await
                    {
                        let _ = seen.send(Seen::Failure(e));
                    }
                });
            }
        });
    }

    /// Collects the relay's reports until the end-to-end attempt (or a
    /// forwarded hello's answer) is in (5 s at most); panics on relay
    /// failures.
    fn reports(&self) -> (Vec<Seen>, Option<Result<String, String>>) {
        let mut events: Vec<Seen> = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !events
            .iter()
            .any(|e| matches!(e, Seen::InnerTls(_) | Seen::Forwarded(_)))
        {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.seen.recv_timeout(left) {
                Ok(e) => events.push(e),
                Err(_) => break,
            }
        }
        events.extend(self.seen.try_iter());
        let failures: Vec<&String> = events
            .iter()
            .filter_map(|e| match e {
                Seen::Failure(f) => Some(f),
                _ => None,
            })
            .collect();
        assert!(failures.is_empty(), "evil relay failures: {failures:?}");
        let inner = events.iter().find_map(|e| match e {
            Seen::InnerTls(r) => Some(r.clone()),
            _ => None,
        });
        (events, inner)
    }
}

impl Drop for EvilSetup {
    fn drop(&mut self) {
        // Stop the relay's tasks without waiting on them.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

#[test]
fn applet_refuses_a_relay_that_terminates_the_inner_tls() {
    let (mut evil, listener) = EvilSetup::start();
    evil.run(listener, Mode::Console);
    let s = &evil.s;
    let evil_addr = evil.evil_addr;

    let (applet_path, guid) = s.session("evil");
    // The applet's trailer points at the evil relay.
    let verify = run_bounded(
        Command::new(&applet_path).arg("--verify"),
        Duration::from_secs(10),
    );
    let verify_text = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify_text.contains(&format!("https://{evil_addr}/api/v1/directory")),
        "the trailer does not point at the evil relay:\n{verify_text}"
    );

    let mut applet = Proc::applet(&applet_path, &["--keep"]);
    let status = applet.wait_exit(Duration::from_secs(15));
    let out = applet.rest().join("\n");

    // The evil relay really was in the path: it served the directory,
    // received the applet's hello, and offered its own inner certificate.
    let (events, inner) = evil.reports();
    assert!(
        events.iter().any(|e| matches!(e, Seen::Portal)),
        "the applet never fetched the directory through the evil relay: {events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Seen::Hello(Role::Applet, g) if *g == guid)),
        "the applet never sent its hello to the evil relay: {events:?}\napplet said:\n{out}"
    );
    match inner {
        Some(Ok(why)) => eprintln!("evil relay: the applet broke off the inner TLS: {why}"),
        Some(Err(e)) => panic!("{e}\napplet said:\n{out}"),
        None => {
            panic!("the evil relay never got to the inner TLS: {events:?}\napplet said:\n{out}")
        }
    }

    // The applet tells the user why, shows no verification code, and fails.
    assert!(
        out.contains(&format!("Waiting for {TECH_NAME}")),
        "applet said:\n{out}"
    );
    assert!(
        out.contains("the other side is not your technician"),
        "the applet did not explain the refusal; it said:\n{out}"
    );
    assert!(
        !out.contains("Verification code"),
        "the applet showed a verification code:\n{out}"
    );
    assert!(
        !out.contains("Connected to"),
        "the applet claimed to be connected:\n{out}"
    );
    assert!(
        !status.success(),
        "the applet exited successfully ({status}); it said:\n{out}"
    );
}

#[test]
fn console_refuses_a_relay_that_poses_as_the_applet() {
    let (mut evil, listener) = EvilSetup::start();
    let (applet_path, guid) = evil.s.session("evil");
    // What a hostile relay can know: the GUID and the console's pin.
    let file = std::fs::read(&applet_path).unwrap();
    let trailer = SignedTrailer::find(&file).unwrap();
    let body = trailer.verify(&trailer.claimed_key().unwrap(), 0).unwrap();
    evil.run(
        listener,
        Mode::Applet {
            console_pin: body
                .console_pin
                .expect("a technician's session names its console"),
        },
    );
    let s = &evil.s;

    // The real applet waits at the real gateway, through the evil relay.
    let mut applet = Proc::applet(&applet_path, &["--keep"]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let queue = s.console.queue();
    assert_eq!(queue.len(), 1, "queue: {queue:?}");

    // The console goes where the applet waits — the evil relay — which
    // pairs it with itself.
    let mut tech = s.console.connect("evil");
    assert_eq!(tech.event("paired")["guid"], guid.as_str());
    let error = tech.event("error");
    let message = error["message"].as_str().unwrap_or_default().to_owned();
    let status = tech.wait_exit(Duration::from_secs(20));
    let said = tech.rest().join("\n");
    assert!(
        message.contains("could not prove it belongs to this session"),
        "the console did not explain the refusal: {error}\nit said:\n{said}"
    );
    assert!(
        !said.contains("\"sas\""),
        "the console showed a verification code:\n{said}"
    );
    assert!(
        !status.success(),
        "the console exited successfully ({status}):\n{said}"
    );

    let (events, inner) = evil.reports();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Seen::Hello(Role::Console, g) if *g == guid)),
        "the console never came to the evil relay: {events:?}"
    );
    match inner {
        Some(Ok(why)) => eprintln!("evil relay: the console refused the proof: {why}"),
        Some(Err(e)) => panic!("{e}\nthe console said:\n{said}"),
        None => panic!("the evil relay never got to the end-to-end handshake: {events:?}"),
    }
    // The real applet never got to a verification code either.
    assert!(
        !applet
            .out
            .seen
            .iter()
            .any(|l| l.contains("Verification code")),
        "{:?}",
        applet.out.seen
    );
}

#[test]
fn a_relay_that_terminates_the_applets_tls_cannot_use_its_admission_elsewhere() {
    let (mut evil, listener) = EvilSetup::start();
    evil.run(listener, Mode::ForwardApplet);
    let (applet_path, guid) = evil.s.session("evil");
    let mut applet = Proc::applet(&applet_path, &["--keep"]);
    let status = applet.wait_exit(Duration::from_secs(20));
    let out = applet.rest().join("\n");
    let (events, _) = evil.reports();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Seen::Hello(Role::Applet, g) if *g == guid)),
        "the applet never sent its hello to the evil relay: {events:?}\napplet said:\n{out}"
    );
    let answer = events.iter().find_map(|e| match e {
        Seen::Forwarded(m) => Some(m.clone()),
        _ => None,
    });
    match answer {
        Some(ServerMsg::Refused { code, message }) => {
            assert_eq!(code, lifeline_protocol::relay::RefuseCode::NotAuthorized);
            assert!(message.contains("could not prove"), "{message}");
        }
        other => panic!("the real gateway accepted a forwarded applet hello: {other:?}"),
    }
    // The session is untouched: nobody waits for it.
    assert!(evil.s.console.queue().is_empty());
    assert!(!status.success(), "applet said:\n{out}");
    assert!(
        applet_path.exists(),
        "a refusal it cannot fix must not delete the applet"
    );
}
