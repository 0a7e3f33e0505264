//! Securing a new path: its own TLS with the session's pinned certificate,
//! then a binding proof each way that ties it to the relayed session.
//!
//! TLS roles are the relayed session's whatever the transport's direction:
//! the console presents the session certificate, the applet accepts only
//! its pinned SPKI. The binding proof (see
//! [`lifeline_protocol::proof::binding_proof`]) is keyed by the relayed
//! session's exporter, which only the two ends know, and covers the new
//! connection's own exporter, so it proves "same two ends" and cannot be
//! replayed on another connection.

use super::{DirectError, Ends, Side};
use crate::channel::{FrameReader, FrameWriter};
use crate::link::{BoxRead, BoxWrite, Path, PathKind};
use lifeline_protocol::e2e::{Frame, Handshake};
use lifeline_protocol::proof::{self, DIRECT_EXPORTER_LABEL, EXPORTER_LEN};
use lifeline_protocol::relay::Role;
use rustls::pki_types::ServerName;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// How long TLS and the proofs may take on a new path. A stranger that
/// connects and stays silent is dropped after this.
pub const SECURE_TIMEOUT: Duration = Duration::from_secs(5);

fn roles(side: &Side) -> (Role, Role) {
    match side {
        Side::Applet { .. } => (Role::Applet, Role::Console),
        Side::Console { .. } => (Role::Console, Role::Applet),
    }
}

/// Runs TLS over `stream` as this end's role and proves the binding.
pub async fn secure_stream<S>(
    stream: S,
    ends: &Ends,
    kind: PathKind,
    detail: String,
) -> Result<Path, DirectError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    tokio::time::timeout(SECURE_TIMEOUT, async {
        let t0 = std::time::Instant::now();
        let (r, w, exporter): (BoxRead, BoxWrite, _) = match &ends.side {
            Side::Applet { console_pin } => {
                let config = crate::tls::e2e_client_config(*console_pin)?;
                let name = ServerName::try_from(crate::tls::E2E_SERVER_NAME)
                    .map_err(|_| DirectError::Refused("bad server name".into()))?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, stream)
                    .await
                    .map_err(|e| DirectError::Refused(format!("TLS: {e}")))?;
                let exporter = export(tls.get_ref().1, ends)?;
                let (r, w) = tokio::io::split(tls);
                (Box::new(r), Box::new(w), exporter)
            }
            Side::Console { identity } => {
                let config = crate::tls::e2e_server_config(identity.cert.clone(), identity.key())?;
                let tls = tokio_rustls::TlsAcceptor::from(config)
                    .accept(stream)
                    .await
                    .map_err(|e| DirectError::Refused(format!("TLS: {e}")))?;
                let exporter = export(tls.get_ref().1, ends)?;
                let (r, w) = tokio::io::split(tls);
                (Box::new(r), Box::new(w), exporter)
            }
        };
        let mut reader = FrameReader::new(r);
        let mut writer = FrameWriter::new(w);
        let rtt = prove(
            &mut reader,
            &mut writer,
            ends,
            &exporter,
            Exchange::ConsoleFirst,
        )
        .await?;
        tracing::debug!(took = ?t0.elapsed(), ?rtt, "direct path secured");
        Ok(Path {
            kind,
            reader,
            writer,
            id: proof::path_id(&exporter),
            detail,
            rtt,
        })
    })
    .await
    .map_err(|_| DirectError::Refused("no TLS and binding proof within 5 s".into()))?
}

/// The new path's exporter, with the session GUID as context.
fn export<D>(
    conn: &rustls::ConnectionCommon<D>,
    ends: &Ends,
) -> Result<[u8; EXPORTER_LEN], DirectError> {
    let mut exporter = [0u8; EXPORTER_LEN];
    conn.export_keying_material(
        &mut exporter,
        DIRECT_EXPORTER_LABEL,
        Some(ends.guid.as_bytes()),
    )
    .map_err(|e| DirectError::Refused(format!("TLS exporter: {e}")))?;
    Ok(exporter)
}

/// How the two proofs cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// Both send at once (a stream the applet must write to first for the
    /// console to see it, as XTCP's).
    Together,
    /// The console's proof first, the applet's as its answer: the console
    /// times one round trip of the path itself (not its setup).
    ConsoleFirst,
}

/// Sends this end's binding proof and checks the peer's. The proof is the
/// first frame each way on a new path; anything else is refused. With
/// [`Exchange::ConsoleFirst`] the console returns the round trip from its
/// proof to the applet's.
pub async fn prove(
    reader: &mut FrameReader<BoxRead>,
    writer: &mut FrameWriter<BoxWrite>,
    ends: &Ends,
    path_exporter: &[u8; EXPORTER_LEN],
    exchange: Exchange,
) -> Result<Option<std::time::Duration>, DirectError> {
    let answer_first =
        exchange == Exchange::ConsoleFirst && matches!(ends.side, Side::Applet { .. });
    if answer_first {
        read_proof(reader, ends, path_exporter).await?;
    }
    let (mine, _) = roles(&ends.side);
    let mac = proof::binding_proof(&ends.relayed_exporter, &ends.guid, mine, path_exporter);
    let sent = std::time::Instant::now();
    writer
        .write_frame(&Frame::Handshake(Handshake::Bind { mac }))
        .await
        .map_err(|e| DirectError::Refused(format!("sending the binding proof: {e}")))?;
    if answer_first {
        return Ok(None);
    }
    read_proof(reader, ends, path_exporter).await?;
    Ok((exchange == Exchange::ConsoleFirst).then(|| sent.elapsed()))
}

/// Reads the peer's binding proof and checks it.
async fn read_proof(
    reader: &mut FrameReader<BoxRead>,
    ends: &Ends,
    path_exporter: &[u8; EXPORTER_LEN],
) -> Result<(), DirectError> {
    let (_, theirs) = roles(&ends.side);
    match reader.read_frame().await {
        Ok(Some(Frame::Handshake(Handshake::Bind { mac }))) => {
            if proof::verify_binding_proof(
                &ends.relayed_exporter,
                &ends.guid,
                theirs,
                path_exporter,
                &mac,
            ) {
                Ok(())
            } else {
                Err(DirectError::Refused(
                    "binding proof does not match this session".into(),
                ))
            }
        }
        Ok(Some(_)) => Err(DirectError::Refused(
            "the first message on the path was not a binding proof".into(),
        )),
        Ok(None) => Err(DirectError::Refused(
            "closed before its binding proof".into(),
        )),
        Err(e) => Err(DirectError::Refused(format!(
            "reading the binding proof: {e}"
        ))),
    }
}
