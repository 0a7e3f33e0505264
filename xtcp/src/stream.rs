//! [`XtcpStream`]: TCP semantics on one QUIC stream.
//!
//! | TCP | XTCP |
//! |---|---|
//! | connect / accept | [`connect`] / [`accept`] over a [`Carrier`] |
//! | ordered bytes, flow and congestion control | one bidirectional QUIC stream |
//! | `shutdown(SHUT_WR)` → peer reads EOF | `poll_shutdown` finishes the stream |
//! | RST → `ECONNRESET` | [`XtcpStream::abort`] → peer's I/O fails with `ConnectionReset` |
//! | keepalive, `TCP_USER_TIMEOUT` | [`XtcpConfig::keepalive`], [`XtcpConfig::dead_after`] → `TimedOut` |
//! | close with data in flight is delivered (linger) | dropping the stream finishes it and keeps the connection until the peer has everything |

use crate::config::XtcpConfig;
use crate::path::Carrier;
use crate::socket::{NativeSocket, PathSocket};
use quinn::{ConnectionError, Endpoint, EndpointConfig, ReadError, VarInt, WriteError};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Application close code: the stream was aborted (TCP's RST).
const ABORT: u32 = 1;
/// Application close code: orderly close after both sides finished.
const DONE: u32 = 0;
/// First byte on the stream: QUIC streams exist for the peer only once
/// data flows, so the connecting end announces it.
const STREAM_HELLO: u8 = 0x58;

/// Why an XTCP connection failed.
#[derive(Debug, thiserror::Error)]
pub enum XtcpError {
    /// TLS setup.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// Could not start connecting.
    #[error("XTCP connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed (handshake refused, timed out, reset).
    #[error("XTCP connection: {0}")]
    Connection(#[from] ConnectionError),
    /// Stream setup failed.
    #[error("XTCP stream: {0}")]
    Stream(String),
    /// Local I/O.
    #[error("XTCP I/O: {0}")]
    Io(#[from] io::Error),
    /// The endpoint closed before a peer connected.
    #[error("XTCP endpoint closed")]
    Closed,
}

impl XtcpError {
    /// Whether the TLS handshake was refused (a TLS alert: on the
    /// connecting end this is what a certificate that fails the pin gives).
    pub fn is_handshake_refusal(&self) -> bool {
        let code = match self {
            XtcpError::Connection(ConnectionError::TransportError(t)) => u64::from(t.code),
            XtcpError::Connection(ConnectionError::ConnectionClosed(c)) => u64::from(c.error_code),
            _ => return false,
        };
        // RFC 9001 §4.8: CRYPTO_ERROR codes are 0x0100 + the TLS alert.
        (0x100..=0x1ff).contains(&code)
    }
}

/// A reliable, ordered byte stream over a datagram path.
#[derive(Debug)]
pub struct XtcpStream {
    /// `None` only inside `Drop`, which hands it to the linger task.
    send: Option<quinn::SendStream>,
    recv: quinn::RecvStream,
    conn: quinn::Connection,
    endpoint: Endpoint,
    linger: Duration,
    aborted: bool,
}

/// A key for `label`, derived from the accepting end's private key: the
/// same after a restart, secret to everyone else.
fn derived_key(label: &[u8], secret: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 32];
    k.copy_from_slice(
        ring::digest::digest(&ring::digest::SHA256, &[label, b"\0", secret].concat()).as_ref(),
    );
    k
}

/// An endpoint on `path`. `secret` (the accepting end's private key) makes
/// its stateless-reset key and connection-ID validation key survive a
/// restart, so a stale connection's packets are recognised as
/// ours-but-forgotten and answered with a stateless reset: the peer learns
/// at once instead of after the dead-path timeout.
fn endpoint(
    carrier: Carrier,
    server: Option<quinn::ServerConfig>,
    secret: Option<&[u8]>,
) -> io::Result<Endpoint> {
    let mut config = match secret {
        Some(secret) => {
            let reset = derived_key(b"xtcp reset key", secret);
            let mut c = EndpointConfig::new(Arc::new(ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                &reset,
            )));
            let cid = derived_key(b"xtcp cid key", secret);
            let cid_key = u64::from_be_bytes([
                cid[0], cid[1], cid[2], cid[3], cid[4], cid[5], cid[6], cid[7],
            ]);
            c.cid_generator(move || {
                Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
            });
            c
        }
        None => EndpointConfig::default(),
    };
    // What we advertise as the largest datagram we take: quinn's default
    // (1472) would cap the peer's path MTU discovery below what the path
    // carries (8 KiB over ICE, 64 KiB on loopback).
    let max_payload = carrier
        .max_datagram_size()
        .clamp(crate::config::MIN_DATAGRAM, crate::config::MAX_DATAGRAM)
        as u16;
    config
        .max_udp_payload_size(max_payload)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let socket: Arc<dyn quinn::AsyncUdpSocket> = match carrier {
        Carrier::Udp(u) => {
            let max = u.max_datagram_size();
            NativeSocket::new(u.into_socket(), max)?
        }
        Carrier::Path(p) => PathSocket::new(p),
    };
    Endpoint::new_with_abstract_socket(config, server, socket, Arc::new(quinn::TokioRuntime))
}

/// Connects over `carrier` to an accepting end whose certificate's SPKI
/// hashes to `pin`.
pub async fn connect(
    carrier: impl Into<Carrier>,
    pin: [u8; 32],
    config: &XtcpConfig,
) -> Result<XtcpStream, XtcpError> {
    let carrier = carrier.into();
    let (peer, max_datagram) = (carrier.peer_addr(), carrier.max_datagram_size());
    let endpoint = endpoint(carrier, None, None)?;
    let mut client = quinn::ClientConfig::new(Arc::new(crate::tls::client_config(pin)?));
    client.transport_config(Arc::new(config.transport(max_datagram)));
    let conn = endpoint
        .connect_with(client, peer, lifeline_tls::E2E_SERVER_NAME)?
        .await?;
    let (mut send, recv) = conn.open_bi().await?;
    send.write_all(&[STREAM_HELLO])
        .await
        .map_err(|e| XtcpError::Stream(e.to_string()))?;
    Ok(XtcpStream {
        send: Some(send),
        recv,
        conn,
        endpoint,
        linger: config.dead_after,
        aborted: false,
    })
}

/// Accepts one XTCP connection over `carrier`, presenting `cert`.
pub async fn accept(
    carrier: impl Into<Carrier>,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    config: &XtcpConfig,
) -> Result<XtcpStream, XtcpError> {
    let carrier = carrier.into();
    let secret = key.secret_der().to_vec();
    let mut server =
        quinn::ServerConfig::with_crypto(Arc::new(crate::tls::server_config(cert, key)?));
    server.transport_config(Arc::new(config.transport(carrier.max_datagram_size())));
    // The path is fixed; the peer's address never legitimately changes.
    server.migration(false);
    let endpoint = endpoint(carrier, Some(server), Some(&secret))?;
    let incoming = endpoint.accept().await.ok_or(XtcpError::Closed)?;
    let conn = incoming.await?;
    // One connection per endpoint, as one TCP accept: refuse the rest.
    endpoint.set_server_config(None);
    let (send, mut recv) = conn.accept_bi().await?;
    let mut hello = [0u8; 1];
    recv.read_exact(&mut hello)
        .await
        .map_err(|e| XtcpError::Stream(e.to_string()))?;
    if hello[0] != STREAM_HELLO {
        conn.close(VarInt::from_u32(ABORT), b"bad stream hello");
        return Err(XtcpError::Stream("peer is not speaking XTCP".into()));
    }
    Ok(XtcpStream {
        send: Some(send),
        recv,
        conn,
        endpoint,
        linger: config.dead_after,
        aborted: false,
    })
}

impl XtcpStream {
    /// TLS exporter of this connection (for binding proofs).
    pub fn export_keying_material(
        &self,
        out: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), XtcpError> {
        self.conn
            .export_keying_material(out, label, context)
            .map_err(|_| XtcpError::Stream("TLS exporter unavailable".into()))
    }

    /// Smoothed round-trip time.
    pub fn rtt(&self) -> Duration {
        self.conn.rtt()
    }

    /// Transport statistics (packets, losses, current path MTU…).
    pub fn stats(&self) -> quinn::ConnectionStats {
        self.conn.stats()
    }

    /// Aborts: unsent and unacknowledged data is discarded and the peer's
    /// reads and writes fail with `ConnectionReset`.
    pub fn abort(&mut self) {
        self.aborted = true;
        self.conn.close(VarInt::from_u32(ABORT), b"aborted");
    }
}

/// Maps quinn's errors to what a TCP user expects.
fn tcp_error(e: io::Error) -> io::Error {
    let lost = match e.get_ref() {
        Some(inner) => match (
            inner.downcast_ref::<ReadError>(),
            inner.downcast_ref::<WriteError>(),
        ) {
            (Some(ReadError::ConnectionLost(c)), _) | (_, Some(WriteError::ConnectionLost(c))) => {
                Some(c.clone())
            }
            _ => None,
        },
        None => None,
    };
    match lost {
        Some(ConnectionError::ApplicationClosed(c)) if c.error_code == VarInt::from_u32(ABORT) => {
            io::Error::new(
                io::ErrorKind::ConnectionReset,
                "XTCP peer aborted the stream",
            )
        }
        Some(ConnectionError::Reset) => {
            io::Error::new(io::ErrorKind::ConnectionReset, "XTCP peer restarted")
        }
        Some(ConnectionError::TimedOut) => io::Error::new(
            io::ErrorKind::TimedOut,
            "XTCP path dead: no answer from the peer",
        ),
        Some(other) => io::Error::new(io::ErrorKind::ConnectionAborted, other),
        None => e,
    }
}

impl AsyncRead for XtcpStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match AsyncRead::poll_read(Pin::new(&mut self.recv), cx, buf) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(tcp_error(e))),
            other => other,
        }
    }
}

impl AsyncWrite for XtcpStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let Some(send) = self.send.as_mut() else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        match AsyncWrite::poll_write(Pin::new(send), cx, buf) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(tcp_error(e))),
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.send.as_mut() {
            Some(send) => AsyncWrite::poll_flush(Pin::new(send), cx).map_err(tcp_error),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Like shutdown(SHUT_WR): queue the FIN and return; delivery of what
        // was written continues in the background.
        if let Some(send) = self.send.as_mut() {
            // Already finished or reset: nothing more to queue.
            let _ = send.finish();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for XtcpStream {
    fn drop(&mut self) {
        if self.aborted {
            return;
        }
        // Linger like a TCP socket closed with data in flight: finish the
        // stream, wait (bounded) until the peer has acknowledged it, then
        // close the connection.
        let Some(mut send) = self.send.take() else {
            return;
        };
        let _ = send.finish();
        let (conn, endpoint, linger) = (self.conn.clone(), self.endpoint.clone(), self.linger);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = tokio::time::timeout(linger, send.stopped()).await;
                conn.close(VarInt::from_u32(DONE), b"done");
                let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
            });
        }
    }
}
