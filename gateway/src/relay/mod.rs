//! The relay protocol (ALPN `lifeline/1`): validate the hello, register a
//! waiting applet or pair a console with it, then pump opaque bytes.
//!
//! The gateway never sees inside the paired stream: it is the end-to-end
//! TLS between applet and console, for which the gateway holds no key.

pub mod pump;
pub mod registry;

use crate::server::{Gateway, Phase};
use lifeline_protocol::relay::{Hello, MAX_PAYLOAD, RefuseCode, Role, ServerMsg, VERSION};
use lifeline_protocol::{DecodeError, SessionGuid};
use lifeline_store::{RelayClosed, SessionRecord, SessionState};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// A client's TLS stream on this node.
pub type ServerStream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// Keepalive interval for waiting applets: keeps NAT bindings open and
/// finds dead applets.
pub const WAIT_PING: Duration = Duration::from_secs(25);

struct Refusal(RefuseCode, String);

impl Refusal {
    fn new(code: RefuseCode, msg: impl Into<String>) -> Self {
        Self(code, msg.into())
    }
}

async fn send(tls: &mut ServerStream, msg: &ServerMsg) -> std::io::Result<()> {
    tls.write_all(&msg.encode()).await?;
    tls.flush().await
}

async fn refuse(tls: &mut ServerStream, r: Refusal) {
    let _ = send(
        tls,
        &ServerMsg::Refused {
            code: r.0,
            message: r.1,
        },
    )
    .await;
    let _ = tls.shutdown().await;
}

/// Reads the hello with exact reads, so nothing after it is consumed.
async fn read_hello(tls: &mut ServerStream) -> Result<Hello, Refusal> {
    let bad = |why: String| Refusal::new(RefuseCode::BadRequest, why);
    let mut header = [0u8; 3];
    tls.read_exact(&mut header)
        .await
        .map_err(|_| bad("connection closed before the hello".into()))?;
    let len = usize::from(u16::from_be_bytes([header[1], header[2]]));
    if len > MAX_PAYLOAD {
        return Err(bad(format!(
            "hello too large ({len} bytes, at most {MAX_PAYLOAD})"
        )));
    }
    let mut frame = header.to_vec();
    frame.resize(3 + len, 0);
    tls.read_exact(&mut frame[3..])
        .await
        .map_err(|_| bad("connection closed in the middle of the hello".into()))?;
    match Hello::decode(&frame) {
        Ok((hello, _)) => Ok(hello),
        Err(DecodeError::Incomplete) => Err(bad("truncated hello".into())),
        Err(e) => Err(bad(format!("malformed hello: {e}"))),
    }
}

/// Entry point for a TLS connection that chose ALPN `lifeline/1`.
/// `deadline` is the handshake deadline, which covers the hello too.
pub async fn handle(gw: Arc<Gateway>, mut tls: ServerStream, peer: SocketAddr, deadline: Instant) {
    if gw.draining() {
        refuse(
            &mut tls,
            Refusal::new(
                RefuseCode::ShuttingDown,
                "this gateway is restarting; reconnecting shortly",
            ),
        )
        .await;
        return;
    }
    if gw.bad_attempts.is_blocked(peer.ip()) {
        refuse(
            &mut tls,
            Refusal::new(
                RefuseCode::RateLimited,
                format!(
                    "too many attempts with unknown sessions from your address; try again in {} s",
                    gw.bad_attempts.retry_after(peer.ip())
                ),
            ),
        )
        .await;
        return;
    }
    let hello = match tokio::time::timeout_at(deadline, read_hello(&mut tls)).await {
        Ok(Ok(h)) => h,
        Ok(Err(r)) => return refuse(&mut tls, r).await,
        Err(_) => {
            return refuse(
                &mut tls,
                Refusal::new(
                    RefuseCode::BadRequest,
                    "no hello within the handshake deadline",
                ),
            )
            .await;
        }
    };
    if hello.version != VERSION {
        return refuse(
            &mut tls,
            Refusal::new(
                RefuseCode::UnsupportedVersion,
                format!(
                    "protocol version {} is not supported (this gateway speaks {VERSION})",
                    hello.version
                ),
            ),
        )
        .await;
    }
    let result = match hello.role {
        Role::Applet => applet(&gw, tls, peer, hello.guid).await,
        Role::Console => console(&gw, tls, peer, hello).await,
    };
    if let Err((mut tls, r)) = result {
        tracing::info!(%peer, code = ?r.0, reason = %r.1, "relay connection refused");
        refuse(&mut tls, r).await;
    }
}

/// Looks a session up and checks it can still be joined.
async fn live_session(
    gw: &Gateway,
    guid: &SessionGuid,
    peer: SocketAddr,
) -> Result<SessionRecord, Refusal> {
    let rec = gw.store.session(guid).await.map_err(|e| {
        tracing::error!(error = %e, "store lookup failed");
        Refusal::new(
            RefuseCode::Internal,
            "the gateway could not look up the session; try again",
        )
    })?;
    let Some(rec) = rec else {
        gw.bad_attempts.record(peer.ip());
        return Err(Refusal::new(
            RefuseCode::UnknownSession,
            "there is no support session with this ID",
        ));
    };
    if rec.state == SessionState::Ended {
        return Err(Refusal::new(
            RefuseCode::Ended,
            "this support session has already ended",
        ));
    }
    if lifeline_session::now_ms() >= rec.expires_at_ms {
        return Err(Refusal::new(
            RefuseCode::Expired,
            "this support session has expired",
        ));
    }
    Ok(rec)
}

type Outcome = Result<(), (ServerStream, Refusal)>;

fn internal(e: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "store operation failed");
    Refusal::new(
        RefuseCode::Internal,
        "the gateway had an internal problem; try again",
    )
}

/// An applet: register as waiting and hold the connection until a console
/// takes it, the applet leaves, or the node drains.
async fn applet(
    gw: &Arc<Gateway>,
    mut tls: ServerStream,
    peer: SocketAddr,
    guid: SessionGuid,
) -> Outcome {
    if let Err(r) = live_session(gw, &guid, peer).await {
        return Err((tls, r));
    }
    let already = || {
        Refusal::new(
            RefuseCode::AlreadyConnected,
            "another copy of the support program is already connected for this session",
        )
    };
    let Ok((ticket, mut pair_rx)) = gw.registry.register_applet(guid) else {
        return Err((tls, already()));
    };
    let now = lifeline_session::now_ms();
    match gw
        .store
        .mark_waiting(&guid, &gw.node_name, &gw.advertise, &peer.to_string(), now)
        .await
    {
        Ok(true) => {}
        Ok(false) => return Err((tls, already())),
        Err(e) => return Err((tls, internal(e))),
    }
    // Tell the applet first; the audit row is not on its critical path.
    let waiting = ServerMsg::Waiting {
        observed: peer.to_string(),
        node: gw.node_name.clone(),
    };
    let told = send(&mut tls, &waiting).await.is_ok();
    audit(
        gw,
        Some(&guid),
        "applet",
        "waiting",
        &format!("from {peer} on node {}", gw.node_name),
    )
    .await;
    tracing::info!(%guid, %peer, "applet waiting");
    let mut left = "applet left";
    if told {
        let mut ping = tokio::time::interval_at(Instant::now() + WAIT_PING, WAIT_PING);
        let mut phase = gw.phase.clone();
        let mut probe = [0u8; 1];
        loop {
            tokio::select! {
                req = &mut pair_rx => {
                    let Ok(req) = req else { break };
                    if send(&mut tls, &paired_msg(gw)).await.is_err() {
                        break;
                    }
                    // Hand stream and claim to the console's task, which
                    // pumps; the claim keeps a second applet out meanwhile.
                    if let Err((_stream, ticket)) = req.reply.send((tls, ticket)) {
                        drop(ticket);
                        let _ = gw.store.clear_waiting(&guid).await;
                    }
                    return Ok(());
                }
                // An applet sends nothing while waiting: any byte or EOF
                // means it is gone (or misbehaving).
                _ = tls.read(&mut probe) => break,
                _ = ping.tick() => {
                    if send(&mut tls, &ServerMsg::Ping).await.is_err() {
                        break;
                    }
                }
                _ = async { let _ = phase.wait_for(|p| *p == Phase::Draining).await; } => {
                    left = "gateway shutting down";
                    let _ = send(&mut tls, &ServerMsg::Refused {
                        code: RefuseCode::ShuttingDown,
                        message: "this gateway is restarting; reconnecting shortly".into(),
                    }).await;
                    break;
                }
            }
        }
    }
    drop(ticket);
    if let Err(e) = gw.store.clear_waiting(&guid).await {
        tracing::warn!(error = %e, "store update failed");
    }
    audit(gw, Some(&guid), "applet", "left", left).await;
    tracing::info!(%guid, %peer, reason = left, "applet no longer waiting");
    let _ = tls.shutdown().await;
    Ok(())
}

/// `Paired`, with this node's STUN server for the ends' ICE.
fn paired_msg(gw: &Gateway) -> ServerMsg {
    ServerMsg::Paired {
        stun: gw.stun.clone(),
    }
}

/// A console: authenticate, claim the console end, take the waiting
/// applet (waiting up to the pairing window for it), then relay.
async fn console(
    gw: &Arc<Gateway>,
    mut tls: ServerStream,
    peer: SocketAddr,
    hello: Hello,
) -> Outcome {
    let guid = hello.guid;
    let now = lifeline_session::now_ms();
    let token = String::from_utf8_lossy(&hello.token).into_owned();
    let tech = match gw
        .store
        .technician_by_token(&crate::auth::token_hash(&token), now)
        .await
    {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Err((
                tls,
                Refusal::new(
                    RefuseCode::NotAuthorized,
                    "your login has expired or is not valid; log in again",
                ),
            ));
        }
        Err(e) => return Err((tls, internal(e))),
    };
    let rec = match live_session(gw, &guid, peer).await {
        Ok(r) => r,
        Err(r) => return Err((tls, r)),
    };
    if rec.technician_id != tech.id {
        audit(
            gw,
            Some(&guid),
            &tech.email,
            "console refused",
            "session belongs to another technician",
        )
        .await;
        return Err((
            tls,
            Refusal::new(
                RefuseCode::NotAuthorized,
                "this session belongs to another technician",
            ),
        ));
    }
    // Its ends are connected to each other; its relay is closed or about
    // to be. A console cannot join (nor wait the pairing window for an
    // applet that will not come).
    if rec.state == SessionState::Direct {
        return Err((
            tls,
            Refusal::new(
                RefuseCode::AlreadyConnected,
                "this session is already connected directly between a console and the end user",
            ),
        ));
    }
    let Ok(console_ticket) = gw.registry.claim_console(guid) else {
        return Err((
            tls,
            Refusal::new(
                RefuseCode::AlreadyConnected,
                "another console is already connected to this session",
            ),
        ));
    };
    let Some(pair_tx) = console_ticket.take_applet(gw.config.pairing_window).await else {
        return Err((
            tls,
            Refusal::new(
                RefuseCode::NotWaiting,
                format!(
                    "the end user is not connected to this gateway node (waited {} s)",
                    gw.config.pairing_window.as_secs()
                ),
            ),
        ));
    };
    let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
    let paired = match pair_tx.send(registry::PairRequest { reply: reply_tx }) {
        Ok(()) => reply_rx.await.ok(),
        Err(_) => None,
    };
    let Some((applet_stream, applet_ticket)) = paired else {
        return Err((
            tls,
            Refusal::new(
                RefuseCode::NotWaiting,
                "the end user disconnected just now; try again",
            ),
        ));
    };
    if send(&mut tls, &paired_msg(gw)).await.is_err() {
        let _ = gw.store.clear_waiting(&guid).await;
        return Ok(());
    }
    let now = lifeline_session::now_ms();
    if let Err(e) = gw.store.mark_paired(&guid, now).await {
        tracing::warn!(error = %e, "store update failed");
    }
    let applet_addr = applet_stream
        .get_ref()
        .0
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    audit(
        gw,
        Some(&guid),
        &tech.email,
        "paired",
        &format!(
            "console {peer} with applet {applet_addr} on node {}",
            gw.node_name
        ),
    )
    .await;
    tracing::info!(%guid, console = %peer, applet = %applet_addr, "paired; relaying");

    gw.stats.relaying.fetch_add(1, Ordering::Relaxed);
    let report = pump::run(
        applet_stream,
        tls,
        gw.config.danger_record_relay.as_deref(),
        &guid.to_string(),
        gw.stop_relays.clone(),
    )
    .await;
    let now = lifeline_session::now_ms();
    if let Err(e) = gw
        .store
        .add_relayed_bytes(&guid, report.applet_to_console, report.console_to_applet)
        .await
    {
        tracing::warn!(error = %e, "store update failed");
    }
    // A session that went direct (the console reported a direct path
    // before closing the relay) outlives its relay; any other ends here.
    let reason = format!("relay closed: {}", report.reason);
    let closed = gw
        .store
        .close_relay(&guid, &reason, now)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "store update failed");
            RelayClosed::Ended
        });
    let how = match closed {
        RelayClosed::Direct => format!("after the cutover to the direct path ({})", report.reason),
        RelayClosed::Ended | RelayClosed::AlreadyEnded => report.reason.clone(),
    };
    audit(
        gw,
        Some(&guid),
        "gateway",
        "relay ended",
        &format!(
            "{how}; relayed {} bytes applet→console, {} bytes console→applet",
            report.applet_to_console, report.console_to_applet
        ),
    )
    .await;
    tracing::info!(%guid, reason = %how, a2c = report.applet_to_console, c2a = report.console_to_applet, "relay ended");
    gw.stats.relaying.fetch_sub(1, Ordering::Relaxed);
    drop(applet_ticket);
    drop(console_ticket);
    Ok(())
}

/// Appends to the audit trail; a failure is logged, never fatal.
pub async fn audit(
    gw: &Gateway,
    session: Option<&SessionGuid>,
    actor: &str,
    event: &str,
    detail: &str,
) {
    if let Err(e) = gw
        .store
        .audit(lifeline_session::now_ms(), session, actor, event, detail)
        .await
    {
        tracing::warn!(error = %e, event, "audit write failed");
    }
}
