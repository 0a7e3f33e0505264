//! `splice_proxy`: the reference relay the benchmarks measure Lifeline's
//! gateway against — an ideal TLS-terminating splice proxy.
//!
//! It accepts outer TLS exactly like the gateway (rustls on ring, TLS 1.3
//! only, a node certificate signed by a CA it generates at start, ALPN
//! `lifeline/1`, no session tickets, Nagle off), pairs two clients that send
//! the same 16-byte key, and then runs `tokio::io::copy_bidirectional`
//! between them (`copy_bidirectional_with_sizes` with `--buf` bytes per
//! direction; default 65536, the gateway's pump buffer; tokio's own
//! default is 8192). No store, no authentication, no logging, no keepalive:
//! what is left is the TLS termination and the copying that any relay has
//! to do.
//!
//! Rendezvous: the client sends 16 bytes; the proxy answers `0x00` when the
//! client is the first of its pair (it then waits, and the proxy notices if
//! it leaves) and `0x01` to both once paired.
//!
//! Prints `splice proxy listening on ADDR` and
//! `CA fingerprint (SHA-256): HEX`, then serves until killed.

use anyhow::{Context, Result};
use lifeline_benches::client::{PROXY_PAIRED, PROXY_WAITING};
use lifeline_protocol::ALPN_RELAY;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

type Stream = tokio_rustls::server::TlsStream<TcpStream>;

/// A waiting client's task takes a sender for its stream.
type Waiting = Arc<Mutex<HashMap<[u8; 16], oneshot::Sender<oneshot::Sender<Stream>>>>>;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A CA and a node certificate for 127.0.0.1 / localhost, ECDSA P-256 as
/// the gateway's; returns the chain, the node key and the CA fingerprint.
fn identity() -> Result<(
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    [u8; 32],
)> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "splice proxy CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let node_key = rcgen::KeyPair::generate()?;
    let mut node =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    node.distinguished_name
        .push(rcgen::DnType::CommonName, "splice proxy");
    node.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let issuer = rcgen::Issuer::new(ca, &ca_key);
    let node_cert = node.signed_by(&node_key, &issuer)?;
    let fp = lifeline_session::tls::sha256(ca_cert.der().as_ref());
    Ok((
        vec![node_cert.der().clone(), ca_cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(node_key.serialize_der())),
        fp,
    ))
}

async fn send_byte(s: &mut Stream, b: u8) -> std::io::Result<()> {
    s.write_all(&[b]).await?;
    s.flush().await
}

async fn handle(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    waiting: Waiting,
    buf: usize,
) -> Result<()> {
    tcp.set_nodelay(true)?;
    let mut tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let mut tls = acceptor.accept(tcp).await?;
        let mut key = [0u8; 16];
        tls.read_exact(&mut key).await?;
        std::io::Result::Ok((tls, key))
    })
    .await
    .context("handshake timeout")??;
    let key = tls.1;
    let partner = waiting
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&key);
    let mut mine = match partner {
        // Second of the pair: take the first one's stream and relay.
        Some(take) => {
            let (tx, rx) = oneshot::channel();
            if take.send(tx).is_err() {
                return Ok(());
            }
            let Ok(other) = rx.await else { return Ok(()) };
            send_byte(&mut tls.0, PROXY_PAIRED).await?;
            let mut mine = tls.0;
            let mut other = other;
            let _ = tokio::io::copy_bidirectional_with_sizes(&mut mine, &mut other, buf, buf).await;
            return Ok(());
        }
        None => tls.0,
    };
    // First of the pair: wait, watching for the client leaving.
    let (take_tx, mut take_rx) = oneshot::channel::<oneshot::Sender<Stream>>();
    waiting
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, take_tx);
    send_byte(&mut mine, PROXY_WAITING).await?;
    let mut probe = [0u8; 1];
    tokio::select! {
        give = &mut take_rx => {
            if let Ok(give) = give {
                send_byte(&mut mine, PROXY_PAIRED).await?;
                let _ = give.send(mine);
            }
        }
        _ = mine.read(&mut probe) => {
            waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let listen: SocketAddr = lifeline_benches::arg("listen", "127.0.0.1:0".parse()?)?;
    let buf: usize = lifeline_benches::arg("buf", 64 * 1024)?;
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let (chain, key, fp) = identity()?;
    let mut config = ServerConfig::builder_with_provider(lifeline_session::tls::outer_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN_RELAY.to_vec()];
    config.send_tls13_tickets = 0;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(listen).await?;
    println!(
        "splice proxy listening on {} (copy buffers {buf} bytes)",
        listener.local_addr()?
    );
    println!(
        "CA fingerprint (SHA-256): {}",
        lifeline_protocol::hex::encode(&fp)
    );
    std::io::stdout().flush()?;
    let waiting: Waiting = Arc::default();
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                let (acceptor, waiting) = (acceptor.clone(), waiting.clone());
                tokio::spawn(async move {
                    let _ = handle(acceptor, tcp, waiting, buf).await;
                });
            }
            Err(e) => {
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
