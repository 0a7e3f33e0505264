//! A client's connection to a gateway's relay: outer TLS on ALPN
//! `lifeline/1`, the hello, and the wait until the gateway pairs us.
//!
//! Frames are read with exact-length reads, so when `Paired` arrives not a
//! byte of the opaque stream that follows has been consumed.

use crate::addr::HostPort;
use lifeline_protocol::relay::{self, Hello, RefuseCode, ServerMsg};
use lifeline_protocol::{DecodeError, SessionGuid};
use rustls::ClientConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The outer TLS stream to a gateway.
pub type GatewayStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Why a relay connection failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The TCP connection could not be made.
    #[error("cannot reach gateway {addr}: {source}")]
    Connect {
        /// Where.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS handshake failed (often: the gateway is not the operator's).
    #[error("secure connection to gateway {addr} failed: {source}")]
    Tls {
        /// Where.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Nothing happened in time.
    #[error("gateway {0} did not answer in time")]
    Timeout(String),
    /// The gateway refused us.
    #[error("{message}")]
    Refused {
        /// Machine-readable reason.
        code: RefuseCode,
        /// The gateway's explanation.
        message: String,
    },
    /// The gateway sent something that is not the protocol.
    #[error("gateway protocol error: {0}")]
    Protocol(#[from] DecodeError),
    /// The connection broke.
    #[error("connection to the gateway was lost: {0}")]
    Io(#[from] std::io::Error),
}

/// Dials `addr` and completes the outer TLS handshake within `timeout`.
pub async fn connect(
    addr: &HostPort,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<GatewayStream, LinkError> {
    let work = async {
        let tcp = dial(addr).await?;
        tls_over(tcp, addr, config).await
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| LinkError::Timeout(addr.to_string()))?
}

/// The TCP half of [`connect`]: a connection to `addr` with Nagle off.
pub async fn dial(addr: &HostPort) -> Result<TcpStream, LinkError> {
    let tcp = TcpStream::connect((addr.host.as_str(), addr.port))
        .await
        .map_err(|source| LinkError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    // Interactive traffic: do not let Nagle hold back small frames.
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// The TLS half of [`connect`]: the outer handshake with `addr` on `tcp`.
pub async fn tls_over(
    tcp: TcpStream,
    addr: &HostPort,
    config: Arc<ClientConfig>,
) -> Result<GatewayStream, LinkError> {
    let name = addr.server_name().map_err(|e| LinkError::Connect {
        addr: addr.to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|source| LinkError::Tls {
            addr: addr.to_string(),
            source,
        })
}

/// The applet's hello on `stream`: its admission proof signs this outer
/// TLS connection's exporter with the key derived from the applet secret
/// (see [`lifeline_protocol::proof::admission_proof`]).
pub fn applet_hello(
    stream: &GatewayStream,
    guid: SessionGuid,
    applet_secret: &[u8; 32],
) -> Result<Hello, LinkError> {
    let mut exporter = [0u8; 32];
    stream
        .get_ref()
        .1
        .export_keying_material(
            &mut exporter,
            lifeline_protocol::proof::ADMISSION_EXPORTER_LABEL,
            Some(guid.as_bytes()),
        )
        .map_err(|e| LinkError::Io(std::io::Error::other(e)))?;
    let proof = lifeline_protocol::proof::admission_proof(applet_secret, &guid, &exporter);
    Ok(Hello::applet(guid, proof))
}

/// Writes the hello.
pub async fn send_hello<S: AsyncWrite + Unpin>(s: &mut S, hello: &Hello) -> Result<(), LinkError> {
    s.write_all(&hello.encode()).await?;
    s.flush().await?;
    Ok(())
}

/// Reads exactly one handshake frame (header and payload, nothing more).
pub async fn read_frame<S: AsyncRead + Unpin>(s: &mut S) -> Result<Vec<u8>, LinkError> {
    let mut header = [0u8; relay::HEADER_LEN];
    s.read_exact(&mut header).await?;
    let len = relay::payload_len(header)?;
    let mut frame = Vec::with_capacity(relay::HEADER_LEN + len);
    frame.extend_from_slice(&header);
    frame.resize(relay::HEADER_LEN + len, 0);
    s.read_exact(&mut frame[relay::HEADER_LEN..]).await?;
    Ok(frame)
}

/// Reads exactly one gateway message.
pub async fn read_server_msg<S: AsyncRead + Unpin>(s: &mut S) -> Result<ServerMsg, LinkError> {
    Ok(ServerMsg::decode(&read_frame(s).await?)?.0)
}

/// What happened while waiting to be paired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitEvent {
    /// The gateway registered us as waiting.
    Waiting {
        /// Our address as the gateway sees it.
        observed: String,
        /// The node's name.
        node: String,
    },
}

/// Whether the gateway at the other end of `stream` is on this machine (a
/// test or a one-machine setup): then loopback addresses are worth
/// offering for going direct.
pub fn gateway_is_local(stream: &GatewayStream) -> bool {
    stream
        .get_ref()
        .0
        .peer_addr()
        .is_ok_and(|a| a.ip().is_loopback())
}

/// What the gateway said when it paired us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pairing {
    /// The node's STUN server (`host:port`), if it runs one.
    pub stun: Option<String>,
    /// For a channel's applet: who picked the session, and their key.
    pub picked_by: Option<lifeline_protocol::relay::PickedBy>,
}

/// Reads gateway messages until `Paired` (returns) or `Refused` (error),
/// reporting `Waiting` through `on_event`. Keepalive pings are skipped.
pub async fn await_pairing<S: AsyncRead + Unpin>(
    s: &mut S,
    mut on_event: impl FnMut(WaitEvent),
) -> Result<Pairing, LinkError> {
    loop {
        match read_server_msg(s).await? {
            ServerMsg::Paired { stun, console } => {
                return Ok(Pairing {
                    stun: (!stun.is_empty()).then_some(stun),
                    picked_by: console,
                });
            }
            ServerMsg::Ping => {}
            ServerMsg::Waiting { observed, node } => {
                on_event(WaitEvent::Waiting { observed, node })
            }
            ServerMsg::Refused { code, message } => {
                return Err(LinkError::Refused { code, message });
            }
        }
    }
}
