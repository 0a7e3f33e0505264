//! XTCP over UDP: ICE (with the gateway as STUN server) or, across a
//! symmetric NAT, the birthday punch finds a UDP path through the NATs;
//! XTCP makes it a TLS-protected byte stream; the binding proof ties it
//! to the session.
//!
//! Roles: the console is ICE-controlling and XTCP's accepting end (it
//! presents the session certificate, as on every path); the applet is
//! ICE-controlled and XTCP's connecting end (it pins the certificate).

use super::bind::{Exchange, prove};
use super::birthday::{self, NatProbe};
use super::ice::{IceAgent, IceOffer, IceOptions, IceRole};
use super::{DirectError, Ends, Side};
use crate::channel::{FrameReader, FrameWriter};
use crate::link::{BoxRead, BoxWrite, Path, PathKind};
use lifeline_protocol::proof::{self, DIRECT_EXPORTER_LABEL, EXPORTER_LEN};
use lifeline_xtcp::{UdpPath, XtcpConfig};
use std::net::SocketAddr;
use std::time::Duration;

/// How long ICE connectivity checks may take.
pub const ICE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the XTCP handshake and the proofs may take once ICE is done.
pub const XTCP_TIMEOUT: Duration = Duration::from_secs(10);

/// Gathers this end's ICE candidates. `stun` is the gateway's STUN
/// server; `loopback` offers loopback candidates (both ends on one
/// machine, as in tests).
pub async fn gather(
    stun: Option<SocketAddr>,
    loopback: bool,
) -> Result<(IceAgent, IceOffer), DirectError> {
    let opts = IceOptions {
        stun: stun.into_iter().collect(),
        include_loopback: loopback,
        ..IceOptions::default()
    };
    IceAgent::gather(&opts)
        .await
        .map_err(|e| DirectError::Unavailable(format!("ICE gathering: {e}")))
}

/// Connects ICE with the peer's offer, runs XTCP over the selected pair
/// and proves the binding.
pub async fn connect(agent: IceAgent, remote: &IceOffer, ends: &Ends) -> Result<Path, DirectError> {
    let role = match ends.side {
        Side::Applet { .. } => IceRole::Controlled,
        Side::Console { .. } => IceRole::Controlling,
    };
    let t0 = std::time::Instant::now();
    let ice = agent
        .connect(role, remote, ICE_TIMEOUT)
        .await
        .map_err(|e| DirectError::Unavailable(e.to_string()))?;
    let detail = format!("{} ↔ {}", ice.local, ice.path.peer_addr());
    tracing::info!(path = %detail, took = ?t0.elapsed(), "ICE connected");
    secure(ice.path, detail, ends).await
}

/// The birthday punch (see [`super::birthday`]), then XTCP. `probe` is
/// this end's NAT probe; `peer` is what the peer said of its NAT.
pub async fn punch(
    probe: NatProbe,
    peer: (bool, SocketAddr),
    ends: &Ends,
) -> Result<Path, DirectError> {
    let token = birthday::token(&ends.relayed_exporter);
    let fail = |e: std::io::Error| DirectError::Unavailable(format!("birthday punch: {e}"));
    let t0 = std::time::Instant::now();
    let (socket, detail) = match (probe.hard, peer) {
        (true, (false, easy)) => {
            let socket = birthday::open_hard(easy, token).await.map_err(fail)?;
            let detail = format!("{} ↔ {easy} (birthday punch)", probe.mapped.ip());
            (socket, detail)
        }
        (false, (true, hard)) => {
            let (found, probes) = birthday::spray(&probe.socket, hard.ip(), token)
                .await
                .map_err(fail)?;
            probe.socket.connect(found).await.map_err(fail)?;
            let detail = format!(
                "{} ↔ {found} (birthday punch: {probes} probes)",
                probe.mapped
            );
            (probe.socket, detail)
        }
        _ => {
            return Err(DirectError::Unavailable(
                "no birthday punch: it needs one hard NAT and one easy one".into(),
            ));
        }
    };
    tracing::info!(path = %detail, took = ?t0.elapsed(), "birthday punch connected");
    let path = UdpPath::new(socket, super::ice::DEFAULT_MAX_DATAGRAM)
        .map_err(|e| DirectError::Unavailable(e.to_string()))?;
    secure(path, detail, ends).await
}

/// XTCP over a UDP path both ends have, and the binding proofs.
async fn secure(path: UdpPath, detail: String, ends: &Ends) -> Result<Path, DirectError> {
    let cfg = XtcpConfig::default();
    tokio::time::timeout(XTCP_TIMEOUT, async {
        let stream = match &ends.side {
            Side::Applet { console_pin } => lifeline_xtcp::connect(path, *console_pin, &cfg).await,
            Side::Console { identity } => {
                lifeline_xtcp::accept(path, identity.cert.clone(), identity.key(), &cfg).await
            }
        }
        .map_err(|e| DirectError::Refused(format!("XTCP: {e}")))?;
        let mut exporter = [0u8; EXPORTER_LEN];
        stream
            .export_keying_material(&mut exporter, DIRECT_EXPORTER_LABEL, ends.guid.as_bytes())
            .map_err(|e| DirectError::Refused(e.to_string()))?;
        let rtt = stream.rtt();
        let (r, w) = tokio::io::split(stream);
        let mut reader = FrameReader::new(Box::new(r) as BoxRead);
        let mut writer = FrameWriter::new(Box::new(w) as BoxWrite);
        // XTCP's own estimate is the path's round trip already.
        prove(
            &mut reader,
            &mut writer,
            ends,
            &exporter,
            Exchange::Together,
        )
        .await?;
        Ok(Path {
            kind: PathKind::XtcpUdp,
            reader,
            writer,
            id: proof::path_id(&exporter),
            detail,
            rtt: Some(rtt),
        })
    })
    .await
    .map_err(|_| DirectError::Refused("XTCP handshake timed out".into()))?
}
