//! The end-to-end handshake over an in-memory stream: the right console is
//! accepted, an impostor is refused, a wrong applet secret is refused, the
//! cipher suite is AES-256-GCM, and both ends agree on the SAS.
#![allow(clippy::unwrap_used)]

use lifeline_session::direct::{Policy, Settings, Side};
use lifeline_session::live;

use lifeline_protocol::SessionGuid;
use lifeline_protocol::e2e::{Control, EndedBy, Frame};
use lifeline_session::identity::SessionIdentity;
use lifeline_session::secure::{self, SecureError};
use lifeline_session::tls::{GatewayTrust, gateway_client_config, sha256};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::sync::Arc;

const GUID: SessionGuid = SessionGuid::from_bytes([9; 16]);

#[tokio::test]
async fn pinned_console_is_accepted_and_both_ends_agree() {
    let id = SessionIdentity::generate("console").unwrap();
    let (a, c) = tokio::io::duplex(64 * 1024);
    let pin = id.pin();
    let applet = tokio::spawn(async move { secure::applet_side(a, GUID, pin, [5; 32]).await });
    let console = secure::console_side(c, GUID, &id, [5; 32]).await.unwrap();
    let mut applet = applet.await.unwrap().unwrap();
    assert_eq!(applet.sas, console.sas);
    assert_eq!(applet.exporter, console.exporter);
    let mut console = console;
    console
        .writer
        .write_frame(&Frame::Control(Control::Chat { text: "hi".into() }))
        .await
        .unwrap();
    assert_eq!(
        applet.reader.read_frame().await.unwrap(),
        Some(Frame::Control(Control::Chat { text: "hi".into() }))
    );
}

#[tokio::test]
async fn an_impostor_console_is_refused_by_the_applet() {
    let real = SessionIdentity::generate("console").unwrap();
    let impostor = SessionIdentity::generate("console").unwrap();
    let (a, c) = tokio::io::duplex(64 * 1024);
    let pin = real.pin();
    let applet = tokio::spawn(async move { secure::applet_side(a, GUID, pin, [5; 32]).await });
    let _ = secure::console_side(c, GUID, &impostor, [5; 32]).await;
    let err = applet.await.unwrap().unwrap_err();
    assert!(matches!(err, SecureError::NotTheTechnician), "{err}");
    assert!(err.to_string().contains("not your technician's console"));
}

#[tokio::test]
async fn a_wrong_applet_secret_is_refused_by_the_console() {
    let id = SessionIdentity::generate("console").unwrap();
    let (a, c) = tokio::io::duplex(64 * 1024);
    let pin = id.pin();
    let applet = tokio::spawn(async move { secure::applet_side(a, GUID, pin, [6; 32]).await });
    let err = secure::console_side(c, GUID, &id, [5; 32])
        .await
        .unwrap_err();
    assert!(matches!(err, SecureError::BadProof), "{err}");
    let applet_err = applet.await.unwrap().unwrap_err();
    assert!(
        matches!(applet_err, SecureError::Refused(_)),
        "{applet_err}"
    );
}

#[tokio::test]
async fn the_inner_tls_is_tls13_aes_256_gcm() {
    let id = SessionIdentity::generate("console").unwrap();
    let (a, c) = tokio::io::duplex(64 * 1024);
    let client = lifeline_session::tls::e2e_client_config(id.pin()).unwrap();
    let server = lifeline_session::tls::e2e_server_config(id.cert.clone(), id.key()).unwrap();
    let name = ServerName::try_from(lifeline_session::tls::E2E_SERVER_NAME).unwrap();
    let (cl, sv) = tokio::join!(
        tokio_rustls::TlsConnector::from(client).connect(name, a),
        tokio_rustls::TlsAcceptor::from(server).accept(c)
    );
    let (cl, _sv) = (cl.unwrap(), sv.unwrap());
    let conn = cl.get_ref().1;
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(
        conn.negotiated_cipher_suite().unwrap().suite(),
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
fn ca_and_server() -> (rcgen::Certificate, Arc<rustls::ServerConfig>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(lifeline_session::tls::outer_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), ca.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
    (ca, Arc::new(config))
}

async fn handshake(
    trust: GatewayTrust,
    server: Arc<rustls::ServerConfig>,
) -> Result<(), std::io::Error> {
    let (a, c) = tokio::io::duplex(64 * 1024);
    let client = gateway_client_config(&trust, &[b"x"]).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let srv = tokio::spawn(async move {
        tokio_rustls::TlsAcceptor::from(server)
            .accept(c)
            .await
            .map(|_| ())
    });
    let r = tokio_rustls::TlsConnector::from(client)
        .connect(name, a)
        .await
        .map(|_| ());
    let _ = srv.await;
    r
}

#[tokio::test]
async fn gateway_trust_by_ca_or_fingerprint_and_nothing_else() {
    let (ca, server) = ca_and_server();
    let (other_ca, _) = ca_and_server();
    handshake(GatewayTrust::Ca(ca.der().clone()), server.clone())
        .await
        .unwrap();
    handshake(
        GatewayTrust::CaFingerprint(sha256(ca.der())),
        server.clone(),
    )
    .await
    .unwrap();
    let e = handshake(GatewayTrust::Ca(other_ca.der().clone()), server.clone())
        .await
        .unwrap_err();
    assert!(lifeline_session::tls::is_certificate_rejection(&e), "{e}");
    let e = handshake(GatewayTrust::CaFingerprint(sha256(other_ca.der())), server)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("does not match the fingerprint"),
        "{e}"
    );
}

#[tokio::test]
async fn a_session_ends_cleanly_with_the_reason() {
    let id = SessionIdentity::generate("console").unwrap();
    let (a, c) = tokio::io::duplex(64 * 1024);
    let pin = id.pin();
    let applet = tokio::spawn(async move { secure::applet_side(a, GUID, pin, [5; 32]).await });
    let console = secure::console_side(c, GUID, &id, [5; 32]).await.unwrap();
    let applet = applet.await.unwrap().unwrap();
    let (ctx, crx) = tokio::sync::mpsc::unbounded_channel();
    let (etx, _erx) = tokio::sync::mpsc::channel(4);
    let (_atx, arx) = tokio::sync::mpsc::unbounded_channel();
    let (aetx, mut aerx) = tokio::sync::mpsc::channel(4);
    let relay_only = |me, side| live::Setup {
        me,
        guid: GUID,
        side,
        direct: Settings {
            policy: Policy::parse("relay", Policy::DEFAULT_UDP_AFTER).unwrap(),
            ..Settings::default()
        },
        on_path: None,
        scheduling: Default::default(),
        reconnect: None,
        dead_path: lifeline_session::core::DEAD_PATH,
        traffic: Default::default(),
    };
    let c = tokio::spawn(live::run(
        console,
        relay_only(
            EndedBy::Technician,
            Side::Console {
                identity: Arc::new(id.clone()),
            },
        ),
        crx,
        etx,
    ));
    let a = tokio::spawn(live::run(
        applet,
        relay_only(EndedBy::User, Side::Applet { console_pin: pin }),
        arx,
        aetx,
    ));
    ctx.send(live::Command::Say("x".into())).unwrap();
    assert_eq!(aerx.recv().await, Some(live::Event::Chat("x".into())));
    ctx.send(live::Command::End("done".into())).unwrap();
    let c = c.await.unwrap().unwrap();
    let a = a.await.unwrap().unwrap();
    assert!(c.local && !a.local);
    assert_eq!((a.by, a.reason.as_str()), (EndedBy::Technician, "done"));
}
