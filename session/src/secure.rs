//! The end-to-end handshake over the relayed (or direct) byte stream.
//!
//! 1. Inner TLS 1.3: console = server with its session certificate; applet =
//!    client that accepts only the pinned SPKI.
//! 2. Both export keying material bound to the session GUID.
//! 3. The applet sends [`Handshake::Proof`] (HMAC keyed by the applet secret);
//!    the console checks it in constant time and answers
//!    [`Handshake::Accepted`], or [`Control::End`] and closes.
//! 4. Both show the same short authentication string.

use crate::channel::{ChannelError, FrameReader, FrameWriter};
use crate::identity::SessionIdentity;
use lifeline_protocol::SessionGuid;
use lifeline_protocol::e2e::{Control, EndedBy, Frame, Handshake};
use lifeline_protocol::proof::{self, EXPORTER_LABEL, EXPORTER_LEN};
use rustls::pki_types::ServerName;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};

/// How long the whole end-to-end handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the end-to-end handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum SecureError {
    /// The applet side: the certificate presented is not the technician's.
    #[error(
        "the other side is not your technician's console: its certificate does not match \
         this session, so the connection was stopped (someone may be intercepting it)"
    )]
    NotTheTechnician,
    /// The console side: the applet's proof did not verify.
    #[error("the end user's applet could not prove it belongs to this session")]
    BadProof,
    /// The peer refused us.
    #[error("the other side refused the session: {0}")]
    Refused(String),
    /// TLS failed for another reason.
    #[error("secure channel setup failed: {0}")]
    Tls(std::io::Error),
    /// Exporting keying material failed.
    #[error("TLS exporter unavailable: {0}")]
    Exporter(rustls::Error),
    /// The peer did not follow the protocol.
    #[error("unexpected message during setup")]
    Unexpected,
    /// The channel broke.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// Too slow.
    #[error("secure channel setup timed out")]
    Timeout,
    /// Local configuration problem.
    #[error(transparent)]
    Setup(#[from] crate::tls::TlsSetupError),
}

/// A live, authenticated end-to-end channel.
#[derive(Debug)]
pub struct Established<S> {
    /// Frames from the peer.
    pub reader: FrameReader<ReadHalf<S>>,
    /// Frames to the peer.
    pub writer: FrameWriter<WriteHalf<S>>,
    /// The short authentication string both ends show.
    pub sas: String,
    /// The TLS exporter value (for later binding proofs).
    pub exporter: [u8; EXPORTER_LEN],
}

/// The applet's end-to-end channel through a gateway's relay.
pub type AppletThroughRelay =
    Established<tokio_rustls::client::TlsStream<crate::gateway_conn::GatewayStream>>;
/// The console's end-to-end channel through a gateway's relay.
pub type ConsoleThroughRelay =
    Established<tokio_rustls::server::TlsStream<crate::gateway_conn::GatewayStream>>;

/// The applet's end: TLS client pinned to `console_pin`, then the proof.
pub async fn applet_side<S>(
    stream: S,
    guid: SessionGuid,
    console_pin: [u8; 32],
    applet_secret: [u8; 32],
) -> Result<Established<tokio_rustls::client::TlsStream<S>>, SecureError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async move {
        let config = crate::tls::e2e_client_config(console_pin)?;
        let name = ServerName::try_from(crate::tls::E2E_SERVER_NAME)
            .map_err(|_| SecureError::Unexpected)?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|e| {
                if crate::tls::is_certificate_rejection(&e) {
                    SecureError::NotTheTechnician
                } else {
                    SecureError::Tls(e)
                }
            })?;
        let mut exporter = [0u8; EXPORTER_LEN];
        tls.get_ref()
            .1
            .export_keying_material(&mut exporter, EXPORTER_LABEL, Some(guid.as_bytes()))
            .map_err(SecureError::Exporter)?;
        let (r, w) = tokio::io::split(tls);
        let (mut reader, mut writer) = (FrameReader::new(r), FrameWriter::new(w));
        let mac = proof::applet_proof(&applet_secret, &exporter);
        writer
            .write_frame(&Frame::Handshake(Handshake::Proof { mac }))
            .await?;
        match reader.read_frame().await? {
            Some(Frame::Handshake(Handshake::Accepted)) => {}
            Some(Frame::Control(Control::End { reason, .. })) => {
                return Err(SecureError::Refused(reason));
            }
            _ => return Err(SecureError::Unexpected),
        }
        Ok(Established {
            reader,
            writer,
            sas: proof::short_auth_string(&exporter),
            exporter,
        })
    })
    .await
    .map_err(|_| SecureError::Timeout)?
}

/// The console's end: TLS server with the session identity, then checks
/// the applet's proof.
pub async fn console_side<S>(
    stream: S,
    guid: SessionGuid,
    identity: &SessionIdentity,
    applet_secret: [u8; 32],
) -> Result<Established<tokio_rustls::server::TlsStream<S>>, SecureError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = crate::tls::e2e_server_config(identity.cert.clone(), identity.key())?;
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async move {
        let tls = tokio_rustls::TlsAcceptor::from(config)
            .accept(stream)
            .await
            .map_err(SecureError::Tls)?;
        let mut exporter = [0u8; EXPORTER_LEN];
        tls.get_ref()
            .1
            .export_keying_material(&mut exporter, EXPORTER_LABEL, Some(guid.as_bytes()))
            .map_err(SecureError::Exporter)?;
        let (r, w) = tokio::io::split(tls);
        let (mut reader, mut writer) = (FrameReader::new(r), FrameWriter::new(w));
        let ok = match reader.read_frame().await? {
            Some(Frame::Handshake(Handshake::Proof { mac })) => {
                proof::verify_applet_proof(&applet_secret, &exporter, &mac)
            }
            _ => false,
        };
        if !ok {
            let _ = writer
                .write_frame(&Frame::Control(Control::End {
                    by: EndedBy::Refused,
                    reason: "the applet could not prove it belongs to this session".into(),
                }))
                .await;
            let _ = writer.shutdown().await;
            return Err(SecureError::BadProof);
        }
        writer
            .write_frame(&Frame::Handshake(Handshake::Accepted))
            .await?;
        Ok(Established {
            reader,
            writer,
            sas: proof::short_auth_string(&exporter),
            exporter,
        })
    })
    .await
    .map_err(|_| SecureError::Timeout)?
}
