//! A browser-trusted certificate for web pages: a client asking for one of
//! its names (by SNI) gets it and can talk to the portal, while applets and
//! consoles still get the node's certificate and pin the operator CA; a
//! renewed certificate is taken on SIGHUP without touching a live session.
#![allow(clippy::unwrap_used)]

use lifeline_tests::*;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

const WEB_NAME: &str = "support.lifeline.test";

/// A web CA (as a browser would trust), and a function writing a fresh
/// leaf for [`WEB_NAME`] signed by it to `cert`/`key`; returns the leaf.
struct WebCa {
    key: rcgen::KeyPair,
    params: rcgen::CertificateParams,
    der: CertificateDer<'static>,
}

impl WebCa {
    fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "A Browser-Trusted Test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let der = params.self_signed(&key).unwrap().der().clone();
        Self { key, params, der }
    }

    fn issue(&self, cert: &Path, key: &Path) -> CertificateDer<'static> {
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![WEB_NAME.to_owned()]).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let issuer = rcgen::Issuer::new(self.params.clone(), &self.key);
        let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
        std::fs::write(cert, leaf.pem()).unwrap();
        std::fs::write(key, leaf_key.serialize_pem()).unwrap();
        leaf.der().clone()
    }

    /// A client that trusts only this CA, as a browser trusts public CAs.
    fn browser(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(c)
    }
}

/// A TLS connection as `config` makes it, asking for `sni`: the
/// certificate the node presented, and the portal's answer to a health
/// request — or the handshake's error.
fn visit(
    gw: &Gateway,
    config: Arc<rustls::ClientConfig>,
    sni: &str,
) -> Result<(CertificateDer<'static>, String), String> {
    let mut conn =
        rustls::ClientConnection::new(config, ServerName::try_from(sni.to_owned()).unwrap())
            .unwrap();
    let mut tcp = std::net::TcpStream::connect(gw.socket_addr()).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    write!(
        tls,
        "GET /api/v1/health HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    let _ = tls.read_to_string(&mut answer);
    let cert = conn
        .peer_certificates()
        .and_then(|c| c.first().cloned())
        .ok_or("no certificate")?
        .into_owned();
    Ok((cert, answer))
}

#[test]
fn browsers_get_the_web_certificate_by_name_and_a_reload_keeps_sessions() {
    let ca = WebCa::new();
    let dir = TempDir::new("web");
    let (cert, key) = (dir.path().join("web.pem"), dir.path().join("web.key"));
    let first = ca.issue(&cert, &key);
    let s = Scenario::start(&[
        "--web-cert",
        cert.to_str().unwrap(),
        "--web-key",
        key.to_str().unwrap(),
    ]);
    // A browser asking for the web name: the web certificate, and the portal.
    let (got, answer) = visit(&s.gw, ca.browser(), WEB_NAME).unwrap();
    assert_eq!(got, first);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The node's own name: not the web certificate (a browser trusting
    // only public CAs refuses it) — the operator CA's, as pinned.
    assert!(visit(&s.gw, ca.browser(), "localhost").is_err());
    let (node_cert, _) = visit(&s.gw, s.gw.client_config(&[b"http/1.1"]), "localhost").unwrap();
    assert_ne!(node_cert, first);

    // A session as ever: the applet and the console pin the operator CA.
    let (path, guid) = s.session("web");
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let (mut tech, _) = pair_with(&s.console, &mut applet, "web", &guid, &["--path", "relay"]);
    chat_both_ways(&mut tech, &mut applet, "before the renewal", "ok");

    // Renewed (as an ACME client would), then SIGHUP.
    let second = ca.issue(&cert, &key);
    s.gw.signal("HUP");
    wait_until("the renewed certificate", WAIT, || {
        visit(&s.gw, ca.browser(), WEB_NAME)
            .ok()
            .filter(|(c, _)| *c == second)
    });
    // The session did not notice.
    chat_both_ways(&mut tech, &mut applet, "after the renewal", "still here");
    // A broken renewal keeps the certificate in use.
    std::fs::write(&key, "not a key").unwrap();
    s.gw.signal("HUP");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (still, _) = visit(&s.gw, ca.browser(), WEB_NAME).unwrap();
    assert_eq!(still, second);
    end_session(&mut tech, &mut applet);
}
