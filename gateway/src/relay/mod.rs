//! The relay protocol (ALPN `lifeline/1`): validate the hello, register a
//! waiting applet or pair a console with it, then pump opaque bytes.
//!
//! The gateway never sees inside the paired stream: it is the end-to-end
//! TLS between applet and console, for which the gateway holds no key.

pub mod pump;
pub mod record;
pub mod waiting_check;

use crate::state::{Gateway, Phase};
use lifeline_protocol::relay::{self, Hello, RefuseCode, Role, ServerMsg, VERSION};
use lifeline_protocol::{DecodeError, SessionGuid};
use lifeline_store::{RelayClosed, SessionAccess, SessionState};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::registry;
use crate::state::ServerStream;

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
    let mut header = [0u8; relay::HEADER_LEN];
    tls.read_exact(&mut header)
        .await
        .map_err(|_| bad("connection closed before the hello".into()))?;
    let len = relay::payload_len(header).map_err(|_| {
        bad(format!(
            "hello too large (at most {} bytes)",
            relay::MAX_PAYLOAD
        ))
    })?;
    let mut frame = header.to_vec();
    frame.resize(relay::HEADER_LEN + len, 0);
    tls.read_exact(&mut frame[relay::HEADER_LEN..])
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
/// `open` is the connection's place in the node's count; a waiting applet
/// hands it to the relay that takes its connection over.
pub async fn handle(
    gw: Arc<Gateway>,
    mut tls: ServerStream,
    peer: SocketAddr,
    deadline: Instant,
    open: Option<crate::state::Open>,
) {
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
        Role::Applet => applet(&gw, tls, peer, hello, open).await,
        // Boxed: only consoles pay for the console's (large) future.
        Role::Console => Box::pin(console(&gw, tls, peer, hello)).await,
    };
    if let Err((mut tls, r)) = result {
        gw.metrics.refused(crate::metrics::Refusal::Relay(r.0));
        gw.refusals.refused(r.0, peer, &r.1);
        refuse(&mut tls, r).await;
    }
}

/// A failed attempt of `kind` from `peer`: refused as `refusal`, or as
/// rate-limited once the source has used up that kind's budget.
fn bad_attempt(kind: &crate::limits::Budget, peer: SocketAddr, refusal: Refusal) -> Refusal {
    match kind.reserve(peer.ip()) {
        Ok(()) => refusal,
        Err(retry) => Refusal::new(
            RefuseCode::RateLimited,
            format!("too many failed attempts from your address; try again in {retry} s"),
        ),
    }
}

/// The exporter of a client's outer TLS connection that its admission
/// proof signs.
fn admission_exporter(tls: &ServerStream, guid: &SessionGuid) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    tls.get_ref()
        .1
        .export_keying_material(
            &mut out,
            lifeline_protocol::proof::ADMISSION_EXPORTER_LABEL,
            Some(guid.as_bytes()),
        )
        .ok()?;
    Some(out)
}

/// Looks a session up and checks it can still be joined.
async fn live_session(
    gw: &Gateway,
    guid: &SessionGuid,
    peer: SocketAddr,
) -> Result<SessionAccess, Refusal> {
    joinable(gw, gw.store.session_access(guid).await, peer)
}

/// Checks a session look-up's answer: the session exists and can still
/// be joined.
fn joinable(
    gw: &Gateway,
    found: lifeline_store::Result<Option<SessionAccess>>,
    peer: SocketAddr,
) -> Result<SessionAccess, Refusal> {
    let rec = found.map_err(|e| {
        tracing::error!(error = %e, "store lookup failed");
        Refusal::new(
            RefuseCode::Internal,
            "the gateway could not look up the session; try again",
        )
    })?;
    let Some(rec) = rec else {
        return Err(bad_attempt(
            &gw.budgets.unknown_session,
            peer,
            Refusal::new(
                RefuseCode::UnknownSession,
                "there is no support session with this ID",
            ),
        ));
    };
    if rec.state == SessionState::Ended {
        return Err(Refusal::new(
            RefuseCode::Ended,
            "this support session has already ended",
        ));
    }
    if lifeline_protocol::time::now_ms() >= rec.expires_at_ms {
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

/// An applet: prove it holds the session's applet file, register as
/// waiting and hold the connection until a console takes it, the applet
/// leaves, another connection of the same applet takes over, or the node
/// drains.
async fn applet(
    gw: &Arc<Gateway>,
    tls: ServerStream,
    peer: SocketAddr,
    hello: Hello,
    open: Option<crate::state::Open>,
) -> Outcome {
    // Admission's store calls make its future many KiB; what a waiting
    // applet holds for hours is only the small loop of `hold_waiting`, a
    // task of its own once this connection's handler is done and freed.
    if let Some(admitted) = Box::pin(admit_applet(gw, tls, peer, hello, open)).await? {
        tokio::spawn(hold_waiting(gw.clone(), admitted));
    }
    Ok(())
}

/// An applet admitted, registered and told it waits.
struct Admitted {
    conn: record::TakenOver,
    guid: SessionGuid,
    peer: SocketAddr,
    from: String,
    proven: bool,
    ticket: registry::AppletTicket,
    wait: registry::AppletWait,
    open: Option<crate::state::Open>,
}

/// Checks an applet's hello against its session, registers it as waiting
/// and tells it so. `None`: it could not be told (and has been let go).
async fn admit_applet(
    gw: &Arc<Gateway>,
    mut tls: ServerStream,
    peer: SocketAddr,
    hello: Hello,
    open: Option<crate::state::Open>,
) -> Result<Option<Admitted>, (ServerStream, Refusal)> {
    let guid = hello.guid;
    let rec = match live_session(gw, &guid, peer).await {
        Ok(r) => r,
        Err(r) => return Err((tls, r)),
    };
    // Sessions from before admission keys existed have none: their applets
    // are admitted on the GUID alone, as they were then.
    let proven = match rec.admission_key {
        None => false,
        Some(key) => {
            let ok = admission_exporter(&tls, &guid).is_some_and(|exporter| {
                lifeline_protocol::proof::verify_admission(
                    &key,
                    &guid,
                    &exporter,
                    &hello.credential,
                )
            });
            if !ok {
                let r = Refusal::new(
                    RefuseCode::NotAuthorized,
                    "this copy of the support program could not prove it belongs to this session",
                );
                return Err((tls, bad_attempt(&gw.budgets.unknown_session, peer, r)));
            }
            true
        }
    };
    let already = || {
        Refusal::new(
            RefuseCode::AlreadyConnected,
            "another copy of the support program is already connected for this session",
        )
    };
    // A proven applet may take over from a waiting connection of its own
    // (a reconnect after a network change, a second double-click); an
    // unproven one never can.
    let Ok((ticket, wait)) = gw.registry.register_applet(guid, proven) else {
        return Err((tls, already()));
    };
    let now = lifeline_protocol::time::now_ms();
    let from = peer.to_string();
    // Registered only while the key the proof was checked against is
    // still the session's: a technician who fetched the applet again
    // (`reissue`) meanwhile has made this copy's file obsolete.
    match gw
        .store
        .mark_waiting_admitted(
            &guid,
            &gw.node_name,
            &gw.advertise,
            &from,
            rec.admission_key.as_ref(),
            now,
        )
        .await
    {
        Ok(true) => gw.registry.admitted(&ticket),
        Ok(false) => {
            if let Ok(Some(now_rec)) = gw.store.session(&guid).await
                && now_rec.admission_key != rec.admission_key
            {
                let r = Refusal::new(
                    RefuseCode::NotAuthorized,
                    "this copy of the support program could not prove it belongs to this session",
                );
                return Err((tls, bad_attempt(&gw.budgets.unknown_session, peer, r)));
            }
            return Err((tls, already()));
        }
        Err(e) => return Err((tls, internal(e))),
    }
    // Tell the applet first; the audit row is not on its critical path.
    let waiting = ServerMsg::Waiting {
        observed: from.clone(),
        node: gw.node_name.clone(),
    };
    // Once told, the connection leaves rustls: a waiting applet then costs
    // its socket, its keys and this task, not a TLS engine's buffers.
    let taken = match send(&mut tls, &waiting).await {
        Ok(()) => record::take_over(tls)
            .inspect_err(|e| tracing::error!(%guid, error = %e, "waiting applet dropped"))
            .ok(),
        Err(_) => None,
    };
    audit(
        gw,
        Some(&guid),
        "applet",
        "waiting",
        &format!("from {peer} on node {}", gw.node_name),
    )
    .await;
    tracing::info!(%guid, %peer, "applet waiting");
    let Some(conn) = taken else {
        drop(ticket);
        finish_waiting(gw, &guid, peer, &from, "applet left", true).await;
        return Ok(None);
    };
    Ok(Some(Admitted {
        conn,
        guid,
        peer,
        from,
        proven,
        ticket,
        wait,
        open,
    }))
}

/// Holds a waiting applet's connection until a console takes it, the
/// applet leaves, another connection of the same applet takes over, or
/// the node drains. Its rare store calls are boxed, to keep this future —
/// which every waiting applet holds — small.
async fn hold_waiting(gw: Arc<Gateway>, mut a: Admitted) {
    let gw = &gw;
    let guid = a.guid;
    let mut left = "applet left";
    let mut replaced = false;
    let mut ended = false;
    let mut ping = tokio::time::interval_at(Instant::now() + WAIT_PING, WAIT_PING);
    let mut phase = gw.phase.clone();
    // The eviction sender also goes away when a console takes the slot;
    // only a sent eviction means another connection took over.
    let mut may_be_evicted = true;
    let mut evicted = None;
    loop {
        tokio::select! {
            req = &mut a.wait.pair => {
                let Ok(req) = req else {
                    // The registry dropped our pairing channel: either
                    // another connection took over (and the eviction
                    // is there to read) or the slot went away.
                    evicted = a.wait.evicted.try_recv().ok();
                    break;
                };
                if a.conn.send(&paired_msg(gw, req.picked_by).encode()).await.is_err() {
                    break;
                }
                // Hand stream and claim to the console's task, which
                // pumps; the claim keeps a second applet out meanwhile.
                let Some(open) = a.open.take() else { break };
                if let Err(back) = req.reply.send(registry::Handover { stream: a.conn, ticket: a.ticket, open }) {
                    drop(back);
                    let _ = Box::pin(gw.store.clear_waiting(&guid, &a.from)).await;
                }
                return;
            }
            result = &mut a.wait.evicted, if may_be_evicted => {
                match result {
                    Ok(why) => {
                        evicted = Some(why);
                        break;
                    }
                    Err(_) => {
                        may_be_evicted = false;
                        continue;
                    }
                }
            }
            // An applet sends nothing while waiting but its `Leave`:
            // anything else, or EOF, means it is gone (or misbehaving).
            arrived = a.conn.data_arrived() => {
                if arrived && a.proven
                    && let Some(leave) = read_leave(&mut a.conn).await
                {
                    Box::pin(end_by_user(gw, &guid, &leave)).await;
                    left = "ended by the end user";
                    ended = true;
                    tell_refused(&mut a.conn, RefuseCode::Ended, "this support session has ended").await;
                }
                break;
            }
            // What the store says of this applet's session (ended behind
            // our back, moved to another node) arrives as an eviction,
            // from the node's check of all its waiting applets
            // (`waiting_check`).
            _ = ping.tick() => {
                if a.conn.send(&ServerMsg::Ping.encode()).await.is_err() {
                    break;
                }
            }
            _ = async { let _ = phase.wait_for(|p| *p == Phase::Draining).await; } => {
                left = "gateway shutting down";
                tell_refused(&mut a.conn, RefuseCode::ShuttingDown, "this gateway is restarting; reconnecting shortly").await;
                break;
            }
        }
    }
    match evicted {
        Some(registry::Eviction::Replaced) => {
            // Told, so that it does not reconnect and take the place back.
            left = "replaced by a new connection of the same applet";
            replaced = true;
            tell_refused(
                &mut a.conn,
                RefuseCode::AlreadyConnected,
                "this support program connected again; this older connection is closed",
            )
            .await;
        }
        Some(registry::Eviction::Ended) => {
            // Told at once, so it ends (and removes itself) instead of
            // waiting for a technician who will not come.
            left = "told that the session has ended";
            ended = true;
            tell_refused(
                &mut a.conn,
                RefuseCode::Ended,
                "this support session has ended",
            )
            .await;
        }
        None => {}
    }
    a.conn.close().await;
    drop(a.ticket);
    // Conditional on our own registration: after a takeover the session
    // waits for the new connection, which this must not undo.
    Box::pin(finish_waiting(
        gw,
        &guid,
        a.peer,
        &a.from,
        left,
        !replaced && !ended,
    ))
    .await;
}

/// Tells a waiting applet why it is let go; it may be gone already.
async fn tell_refused(conn: &mut record::TakenOver, code: RefuseCode, message: &str) {
    let refused = ServerMsg::Refused {
        code,
        message: message.into(),
    };
    let _ = conn.send(&refused.encode()).await;
}

/// Records an applet's `Leave`: the session ends, worded as the console
/// records an ending.
async fn end_by_user(gw: &Gateway, guid: &SessionGuid, leave: &relay::Leave) {
    let reason = match leave.reason.trim() {
        "" => "ended by user: the end user ended the session".to_owned(),
        r => format!("ended by user: {}", lifeline_protocol::text::neutralize(r)),
    };
    let now = lifeline_protocol::time::now_ms();
    match gw.store.end_session(guid, &reason, now).await {
        Ok(_) => audit(gw, Some(guid), "applet", "ended", &reason).await,
        Err(e) => tracing::warn!(error = %e, "store update failed"),
    }
}

/// The end of an applet's wait: unless another connection of it took over
/// or the session ended (`clear` false), the session no longer waits here.
async fn finish_waiting(
    gw: &Gateway,
    guid: &SessionGuid,
    peer: SocketAddr,
    from: &str,
    left: &str,
    clear: bool,
) {
    if clear && let Err(e) = gw.store.clear_waiting(guid, from).await {
        tracing::warn!(error = %e, "store update failed");
    }
    audit(gw, Some(guid), "applet", "left", left).await;
    tracing::info!(%guid, %peer, reason = left, "applet no longer waiting");
}

/// A `Leave` frame, the only thing a waiting applet sends, read within a
/// short deadline; `None` if what arrived is not one (or the applet is
/// gone).
async fn read_leave(conn: &mut record::TakenOver) -> Option<relay::Leave> {
    let work = async {
        let mut frame = Vec::new();
        loop {
            if let Some(header) = frame.first_chunk::<{ relay::HEADER_LEN }>() {
                if header[0] != relay::LEAVE_TYPE {
                    return None;
                }
                let len = relay::payload_len(*header).ok()?;
                if frame.len() >= relay::HEADER_LEN + len {
                    return relay::Leave::decode(&frame).ok().map(|(l, _)| l);
                }
            }
            if !conn.receive(&mut frame).await.ok()? {
                return None;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(2), work)
        .await
        .ok()
        .flatten()
}

/// `Paired`, with this node's STUN server for the ends' ICE (and, to a
/// channel's applet, who picked it).
fn paired_msg(gw: &Gateway, picked_by: Option<relay::PickedBy>) -> ServerMsg {
    ServerMsg::Paired {
        stun: gw.stun.clone(),
        console: picked_by,
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
    let now = lifeline_protocol::time::now_ms();
    let token = String::from_utf8_lossy(&hello.credential).into_owned();
    let token_hash = crate::auth::token_hash(&token);
    // Both look-ups at once: a pairing waits for the slower of the two,
    // not for their sum. The session's answer is judged only once the
    // login is (so an unknown session costs a bad login no budget).
    let (tech, session) = tokio::join!(
        gw.store.technician_by_token(&token_hash, now),
        gw.store.session_access(&guid)
    );
    let tech = match tech {
        Ok(Some(t)) => t,
        Ok(None) => {
            let r = Refusal::new(
                RefuseCode::NotAuthorized,
                "your login has expired or is not valid; log in again",
            );
            return Err((tls, bad_attempt(&gw.budgets.console_token, peer, r)));
        }
        Err(e) => return Err((tls, internal(e))),
    };
    if !crate::networks::allows(tech.networks.as_deref(), peer.ip()) {
        audit(
            gw,
            Some(&guid),
            &tech.email,
            "console refused",
            &format!("from {peer}, outside the networks of group {}", tech.group),
        )
        .await;
        let r = Refusal::new(
            RefuseCode::NotAuthorized,
            format!(
                "your group may connect consoles only from its own networks, and {} is not one of them",
                peer.ip()
            ),
        );
        return Err((tls, r));
    }
    let rec = match joinable(gw, session, peer) {
        Ok(r) => r,
        Err(r) => return Err((tls, r)),
    };
    if rec.technician_id != Some(tech.id) {
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
    // A session that is `direct` or interrupted may be joined too: that is
    // how its ends resume it after their path died. The end-to-end
    // handshake that follows proves both ends, as on a session's start.
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
    // Both ends are here: what follows, to both told, is the pairing's
    // latency.
    let pairing = Instant::now();
    let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
    // A channel's applet learns here whom to expect: the console key its
    // technician registered when picking it (see `store::channels`).
    let picked_by = rec
        .queue_group_id
        .and(rec.console_pin)
        .map(|console_pin| relay::PickedBy {
            console_pin,
            technician_name: tech.name.clone(),
        });
    let paired = match pair_tx.send(registry::PairRequest {
        reply: reply_tx,
        picked_by,
    }) {
        Ok(()) => reply_rx.await.ok(),
        Err(_) => None,
    };
    let Some(registry::Handover {
        stream: applet_conn,
        ticket: applet_ticket,
        open: applet_open,
    }) = paired
    else {
        return Err((
            tls,
            Refusal::new(
                RefuseCode::NotWaiting,
                "the end user disconnected just now; try again",
            ),
        ));
    };
    let applet_addr = applet_conn
        .tcp
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    if send(&mut tls, &paired_msg(gw, None)).await.is_err() {
        let _ = gw.store.clear_waiting(&guid, &applet_addr).await;
        return Ok(());
    }
    gw.metrics.paired(pairing.elapsed());
    let now = lifeline_protocol::time::now_ms();
    // Only a session paired before can be resuming. Its interruption's
    // time is read again, not taken from the record read at the hello:
    // the applet's arrival may have just set it (a session whose direct
    // path died). A first pairing — the common case — reads nothing more.
    let interrupted_at = match rec.paired_at_ms {
        None => None,
        Some(_) => gw
            .store
            .session(&guid)
            .await
            .ok()
            .flatten()
            .and_then(|r| r.paired_at_ms.and(r.relay_closed_at_ms)),
    };
    if let Err(e) = gw.store.mark_paired(&guid, now).await {
        tracing::warn!(error = %e, "store update failed");
    }
    let (event, after) = match interrupted_at {
        Some(t) => (
            "resumed",
            format!(
                " after {:.1} s interrupted",
                (now - t).max(0) as f64 / 1000.0
            ),
        ),
        None => ("paired", String::new()),
    };
    audit(
        gw,
        Some(&guid),
        &tech.email,
        event,
        &format!(
            "console {peer} with applet {applet_addr} on node {}{after}",
            gw.node_name
        ),
    )
    .await;
    tracing::info!(%guid, console = %peer, applet = %applet_addr, "paired; relaying");

    gw.stats.relaying.fetch_add(1, Ordering::Relaxed);
    let counters = pump::Counters::default();
    let record_name = guid.to_string();
    let report = match record::take_over(tls) {
        Ok(console) => relay(gw, &guid, applet_conn, console, &record_name, &counters).await,
        Err(e) => {
            tracing::error!(%guid, error = %e, "relay could not start");
            pump::PumpReport {
                applet_to_console: 0,
                console_to_applet: 0,
                reason: e,
            }
        }
    };
    let now = lifeline_protocol::time::now_ms();
    // The gateway cannot tell an ending from a lost connection: a session
    // that went direct outlives its relay; any other is interrupted until
    // the console records its end or its ends resume it (or the resume
    // window runs out).
    let closed = gw.store.close_relay(&guid, now).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "store update failed");
        RelayClosed::Interrupted
    });
    let how = match closed {
        RelayClosed::Direct => format!("after the cutover to the direct path ({})", report.reason),
        RelayClosed::Interrupted | RelayClosed::AlreadyEnded => report.reason.clone(),
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
    drop(applet_open);
    Ok(())
}

/// Pumps a paired session's bytes, keeping its byte counters in the
/// store and the metrics while it runs.
async fn relay(
    gw: &Gateway,
    guid: &SessionGuid,
    applet: record::TakenOver,
    console: record::TakenOver,
    record_name: &str,
    counters: &pump::Counters,
) -> pump::PumpReport {
    let pump = pump::run(
        applet,
        console,
        gw.config.danger_record_relay.as_deref(),
        record_name,
        gw.stop_relays.clone(),
        counters,
    );
    tokio::pin!(pump);
    // The byte counters reach the store while the relay runs, so a node
    // that dies mid-session (kill -9, power) still has them.
    let mut persisted = (0, 0);
    // And the metrics, at the same pace.
    let mut counted = (0, 0);
    let mut count = |now: (u64, u64)| {
        gw.metrics.relayed(now.0 - counted.0, now.1 - counted.1);
        counted = now;
    };
    let mut tick = tokio::time::interval_at(Instant::now() + COUNTER_FLUSH, COUNTER_FLUSH);
    let report = loop {
        tokio::select! {
            report = &mut pump => break report,
            _ = tick.tick() => {
                count(counters.get());
                persisted = persist_counters(gw, guid, persisted, counters.get()).await;
            }
        }
    };
    count(counters.get());
    persist_counters(
        gw,
        guid,
        persisted,
        (report.applet_to_console, report.console_to_applet),
    )
    .await;
    report
}

/// How often a relay's byte counters are written to the store.
pub const COUNTER_FLUSH: Duration = Duration::from_secs(5);

/// Adds the bytes relayed since `persisted` to the store; returns the new
/// persisted totals (unchanged if the write failed, so it is retried).
async fn persist_counters(
    gw: &Gateway,
    guid: &SessionGuid,
    persisted: (u64, u64),
    now: (u64, u64),
) -> (u64, u64) {
    let delta = (now.0 - persisted.0, now.1 - persisted.1);
    if delta == (0, 0) {
        return persisted;
    }
    match gw.store.add_relayed_bytes(guid, delta.0, delta.1).await {
        Ok(()) => now,
        Err(e) => {
            tracing::warn!(error = %e, "store update failed");
            persisted
        }
    }
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
        .audit(
            lifeline_protocol::time::now_ms(),
            session,
            actor,
            event,
            detail,
        )
        .await
    {
        tracing::warn!(error = %e, event, "audit write failed");
    }
}
#[cfg(test)]
mod tests {
    /// What each waiting applet holds for as long as it waits: the
    /// waiting loop's task (admission, boxed and freed, is not part of
    /// it). Measured on a future that is never built: only its type
    /// matters.
    #[test]
    #[allow(unreachable_code, clippy::diverging_sub_expression)]
    fn a_waiting_applet_task_is_small() {
        let never = if std::hint::black_box(false) {
            Some(super::hold_waiting(unreachable!(), unreachable!()))
        } else {
            None
        };
        let size = std::mem::size_of_val(&never);
        eprintln!("a waiting applet's task: {size} bytes");
        assert!(size <= 5 * 1024, "a waiting applet's task is {size} bytes");
    }
}
