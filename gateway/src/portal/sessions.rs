//! Session endpoints: create, list, show, end, the console's path and
//! remote-work reports, the one-time download of the personalized applet,
//! and issuing that applet again before the end user has connected.

use super::{Resp, error, json, parse, store_error};
use crate::state::Gateway;
use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use lifeline_protocol::portal::{
    CreateSession, EndSession, MAX_WORK_RECORDS, PathReport, PickSession, PickedSession,
    ReissueApplet, SessionInfo, SessionList, TransferInfo, WorkRecorded, WorkReport,
};
use lifeline_protocol::{SessionGuid, hex};
use lifeline_store::{
    NewSession, Pick, Reissue, SessionPath, SessionRecord, SessionState, Technician,
};

/// The portal's view of a stored session.
pub fn info(r: &SessionRecord) -> SessionInfo {
    let now = lifeline_protocol::time::now_ms();
    let state = if r.state != SessionState::Ended && now >= r.expires_at_ms {
        "expired"
    } else {
        r.state.as_str()
    };
    SessionInfo {
        guid: r.guid,
        label: r.label.clone(),
        technician: r.technician_email.clone().unwrap_or_default(),
        state: state.into(),
        created_at_ms: r.created_at_ms,
        expires_at_ms: r.expires_at_ms,
        downloaded: r.downloaded,
        permissions: r.permissions.to_string(),
        waiting_since_ms: r.waiting_since_ms,
        waiting_from: r.waiting_from.clone(),
        waiting_node: r.waiting_node.clone(),
        waiting_node_addr: r.waiting_node_addr.clone(),
        ended_reason: r.ended_reason.clone(),
        path: r.path.map(|p| p.as_str().to_owned()),
        pin: None,
        pin_expires_at_ms: None,
        link: None,
        channel: r.channel.clone(),
        problem: r.problem.clone(),
        technician_name: r.technician_name.clone().unwrap_or_default(),
        transfer: r.transfer_to_email.as_ref().map(|to| TransferInfo {
            to: to.clone(),
            to_name: r.transfer_to_name.clone().unwrap_or_default(),
            console_pin: r.transfer_pin.map(|p| hex::encode(&p)),
        }),
    }
}

/// A session GUID from a request path; 400 if it is not one.
pub(super) fn guid_of(text: &str) -> Result<SessionGuid, Resp> {
    text.parse()
        .map_err(|_| error(StatusCode::BAD_REQUEST, "bad_request", "not a session GUID"))
}

/// Finds one of `tech`'s sessions by GUID text; 404 otherwise (also for
/// other technicians' sessions, which are not theirs to know about).
async fn own(gw: &Gateway, tech: &Technician, guid: &str) -> Result<SessionRecord, Resp> {
    let not_found = || error(StatusCode::NOT_FOUND, "not_found", "no such session");
    let guid = guid_of(guid)?;
    match gw.store.session(&guid).await {
        Ok(Some(r)) if r.technician_id == Some(tech.id) => Ok(r),
        Ok(_) => Err(not_found()),
        Err(e) => Err(store_error(e)),
    }
}

pub(super) async fn create(gw: &Gateway, tech: &Technician, body: &[u8]) -> Resp {
    let req: CreateSession = match parse(body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let checked = match req.check(gw.config.session_ttl.as_secs()) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", &e.0),
    };
    let (label, ttl) = (checked.label, checked.ttl_secs);
    let Ok(guid) = SessionGuid::random(&ring::rand::SystemRandom::new()) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "no randomness",
        );
    };
    let now = lifeline_protocol::time::now_ms();
    let rec = match gw
        .store
        .create_session(NewSession {
            guid,
            technician_id: tech.id,
            label: label.clone(),
            console_pin: checked.console_pin,
            applet_secret: checked.applet_secret,
            admission_key: lifeline_protocol::proof::admission_public_key(&checked.applet_secret),
            permissions: tech.permissions,
            created_at_ms: now,
            expires_at_ms: now + (ttl as i64) * 1000,
        })
        .await
    {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    crate::relay::audit(
        gw,
        Some(&guid),
        &tech.email,
        "created",
        &format!(
            "label {label:?}, expires {}",
            lifeline_protocol::time::rfc3339(rec.expires_at_ms)
        ),
    )
    .await;
    let mut answer = info(&rec);
    if req.pin {
        let ttl = tech.pin_secs.map_or(PIN_TTL_MS, |s| s.saturating_mul(1000));
        let until = (now + ttl).min(rec.expires_at_ms);
        let pin = match assign_pin(gw, &guid, until, now).await {
            Ok(p) => p,
            Err(r) => return r,
        };
        // The PIN itself is not written down: it is a secret while it lives.
        crate::relay::audit(
            gw,
            Some(&guid),
            &tech.email,
            "PIN issued",
            &format!(
                "for the web page, until {}",
                lifeline_protocol::time::rfc3339(until)
            ),
        )
        .await;
        answer.pin = Some(pin);
        answer.pin_expires_at_ms = Some(until);
    }
    if req.link {
        let mut raw = [0u8; 16];
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw).is_err() {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "no randomness",
            );
        }
        let token = hex::encode(&raw);
        if let Err(e) = gw.store.set_session_link(&guid, &link_hash(&token)).await {
            return store_error(e);
        }
        crate::relay::audit(
            gw,
            Some(&guid),
            &tech.email,
            "link issued",
            &format!(
                "one-time link to the web page, until {}",
                lifeline_protocol::time::rfc3339(rec.expires_at_ms)
            ),
        )
        .await;
        answer.link = Some(format!("/s/{token}"));
    }
    json(StatusCode::CREATED, &answer)
}

/// What the store keeps of a link's token: its SHA-256, hex.
pub(super) fn link_hash(token: &str) -> String {
    hex::encode(&lifeline_tls::sha256(token.as_bytes()))
}

/// How long a session's PIN works unless its group says otherwise (`gateway
/// admin group pin-time`), and at most the session's own life.
pub const PIN_TTL_MS: i64 = 20 * 60 * 1000;

/// A random 6-digit PIN no other live session holds, given to `guid`.
async fn assign_pin(
    gw: &Gateway,
    guid: &SessionGuid,
    until: i64,
    now: i64,
) -> Result<String, Resp> {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    for _ in 0..50 {
        let mut b = [0u8; 4];
        if rng.fill(&mut b).is_err() {
            break;
        }
        // Uniform over a million: draws from the top, incomplete million
        // of the u32 range are thrown away.
        let n = u32::from_be_bytes(b);
        if n >= 4_294_000_000 {
            continue;
        }
        let pin = format!("{:06}", n % 1_000_000);
        match gw.store.set_session_pin(guid, &pin, until, now).await {
            Ok(true) => return Ok(pin),
            Ok(false) => continue,
            Err(e) => return Err(store_error(e)),
        }
    }
    Err(error(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "no free PIN could be found right now; try again",
    ))
}

/// The technician's own sessions, then their group's queue (end users who
/// came through a channel and wait for whoever picks them first).
pub(super) async fn list(gw: &Gateway, tech: &Technician, waiting_only: bool) -> Resp {
    let now = lifeline_protocol::time::now_ms();
    let own = match gw.store.sessions_of(tech.id, false).await {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let queue = match gw.store.group_queue(tech.group_id, now).await {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    json(
        StatusCode::OK,
        &SessionList {
            sessions: own
                .iter()
                .filter(|r| {
                    !waiting_only
                        || r.state == SessionState::Waiting
                        || r.transfer_to == Some(tech.id)
                })
                .chain(&queue)
                .map(info)
                .collect(),
        },
    )
}

/// `POST /api/v1/sessions/pick`: takes an end user from the group's queue
/// (the one named, or the one waiting longest) for this technician's
/// console key. Of consoles racing for one end user, on any node, one
/// wins; the others hear `taken`.
pub(super) async fn pick(gw: &Gateway, tech: &Technician, body: &[u8]) -> Resp {
    let req: PickSession = match parse(body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let console_pin = match req.check() {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", &e.0),
    };
    let now = lifeline_protocol::time::now_ms();
    let store = &gw.store;
    let picked = match req.guid {
        Some(guid) => match store
            .pick_session(&guid, tech.id, tech.group_id, &console_pin, now)
            .await
        {
            Ok(Pick::Picked(r)) => *r,
            Ok(Pick::Taken) => {
                return error(
                    StatusCode::CONFLICT,
                    "taken",
                    "another technician has just taken this end user",
                );
            }
            Ok(Pick::NotInQueue) => {
                return error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "this end user is not (or no longer) waiting in your group's queue",
                );
            }
            Err(e) => return store_error(e),
        },
        None => match store
            .pick_next(tech.id, tech.group_id, &console_pin, now)
            .await
        {
            Ok(Some(r)) => r,
            Ok(None) => {
                return error(
                    StatusCode::NOT_FOUND,
                    "queue_empty",
                    "nobody is waiting in your group's queue",
                );
            }
            Err(e) => return store_error(e),
        },
    };
    // Only the winner gets here: the secret goes to its console, and the
    // gateway keeps no copy.
    let applet_secret = match store.take_applet_secret(&picked.guid).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "this end user's program can no longer be checked; they should open the \
                 support address again",
            );
        }
        Err(e) => return store_error(e),
    };
    crate::relay::audit(
        gw,
        Some(&picked.guid),
        &tech.email,
        "picked",
        &format!(
            "from channel {}'s queue, waiting since {}",
            picked.channel.as_deref().unwrap_or("?"),
            picked
                .waiting_since_ms
                .map_or_else(|| "?".into(), lifeline_protocol::time::rfc3339)
        ),
    )
    .await;
    json(
        StatusCode::OK,
        &PickedSession {
            session: info(&picked),
            applet_secret: hex::encode(&applet_secret),
        },
    )
}

pub(super) async fn show(gw: &Gateway, tech: &Technician, guid: &str) -> Resp {
    // A session offered to the technician is theirs to see too.
    let guid = match guid_of(guid) {
        Ok(g) => g,
        Err(r) => return r,
    };
    match gw.store.session(&guid).await {
        Ok(Some(r)) if r.technician_id == Some(tech.id) || r.transfer_to == Some(tech.id) => {
            json(StatusCode::OK, &info(&r))
        }
        Ok(_) => error(StatusCode::NOT_FOUND, "not_found", "no such session"),
        Err(e) => store_error(e),
    }
}

/// A request about one of the technician's sessions with an optional
/// `{"reason": …}` body (empty: none): the session and the reason as it is
/// stored.
async fn with_reason(
    gw: &Gateway,
    tech: &Technician,
    guid: &str,
    body: &[u8],
) -> Result<(SessionRecord, Option<String>), Resp> {
    let req: EndSession = if body.is_empty() {
        EndSession::default()
    } else {
        parse(body)?
    };
    let rec = own(gw, tech, guid).await?;
    Ok((rec, req.reason_text()))
}

pub(super) async fn end(gw: &Gateway, tech: &Technician, guid: &str, body: &[u8]) -> Resp {
    let (rec, reason) = match with_reason(gw, tech, guid, body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let reason = reason.unwrap_or_else(|| "ended by the technician".to_owned());
    let now = lifeline_protocol::time::now_ms();
    match gw.store.end_session(&rec.guid, &reason, now).await {
        Ok(ended) => {
            if ended {
                // An applet waiting for this session here hears of it now
                // (one waiting on another node through the store's
                // notice: see `server::hear_endings`).
                gw.registry.session_ended(&rec.guid);
                crate::relay::audit(gw, Some(&rec.guid), &tech.email, "ended", &reason).await;
            }
        }
        Err(e) => return store_error(e),
    }
    session_now(gw, &rec.guid).await
}

/// `POST /api/v1/sessions/{guid}/reissue`: the technician fetches the
/// applet of a session whose end user has not connected yet, again. The
/// new applet secret (and the admission key derived from it) replace the
/// stored ones, so every applet file made before is refused when it
/// connects, and the one-time download is possible once more. Audited as
/// `applet reissued` (without the secret). Only while the session is
/// `created` and unexpired: otherwise 409 with `already_connected` (its
/// applet has connected: `waiting`, `paired`, `direct`), `ended` or
/// `expired`; 404 for a session that is not the technician's. A console
/// already waiting for the applet reads the session's secret only once it
/// is paired, so it meets the new applet.
pub(super) async fn reissue(gw: &Gateway, tech: &Technician, guid: &str, body: &[u8]) -> Resp {
    let req: ReissueApplet = match parse(body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let secret = match req.check() {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", &e.0),
    };
    let rec = match own(gw, tech, guid).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let now = lifeline_protocol::time::now_ms();
    let key = lifeline_protocol::proof::admission_public_key(&secret);
    match gw.store.reissue_applet(&rec.guid, &secret, &key, now).await {
        Ok(Reissue::Reissued(updated)) => {
            crate::relay::audit(
                gw,
                Some(&rec.guid),
                &tech.email,
                "applet reissued",
                &format!(
                    "new applet secret; earlier applet files can no longer connect; the applet \
                     may be downloaded once more (before: {})",
                    if rec.downloaded {
                        "downloaded"
                    } else {
                        "not downloaded"
                    }
                ),
            )
            .await;
            tracing::info!(guid = %rec.guid, technician = %tech.email, "applet reissued");
            json(StatusCode::OK, &info(&updated))
        }
        Ok(Reissue::Refused(now_rec)) => reissue_refused(&now_rec, now),
        Err(e) => store_error(e),
    }
}

/// Why a session's applet cannot be issued again (see [`reissue`]).
fn reissue_refused(r: &SessionRecord, now_ms: i64) -> Resp {
    let (code, message) = match r.state {
        SessionState::Ended => (
            "ended",
            "this session has ended; create a new session for the end user".to_owned(),
        ),
        SessionState::Waiting | SessionState::Paired | SessionState::Direct => (
            "already_connected",
            format!(
                "the end user's applet has already connected to this session (it is {}); \
                 its applet can no longer be replaced",
                r.state
            ),
        ),
        SessionState::Created if now_ms >= r.expires_at_ms => (
            "expired",
            "this session has expired; create a new session for the end user".to_owned(),
        ),
        // Changed between the update and the read: say so plainly.
        SessionState::Created => (
            "conflict",
            "the session changed meanwhile; try again".to_owned(),
        ),
    };
    error(StatusCode::CONFLICT, code, &message)
}

/// The session as it is now, after a change: 200 with it.
async fn session_now(gw: &Gateway, guid: &SessionGuid) -> Resp {
    match gw.store.session(guid).await {
        Ok(Some(r)) => json(StatusCode::OK, &info(&r)),
        Ok(None) => error(StatusCode::NOT_FOUND, "not_found", "no such session"),
        Err(e) => store_error(e),
    }
}

/// `POST /api/v1/sessions/{guid}/interrupted`: the console lost its relay
/// connection and is reconnecting. A `paired` session whose relay this node
/// (or the dead node that ran it) has not closed is recorded as
/// interrupted, so its applet may wait for it again here or on another
/// node; audited as `interrupted` with the console's reason.
pub(super) async fn interrupted(gw: &Gateway, tech: &Technician, guid: &str, body: &[u8]) -> Resp {
    let (rec, reason) = match with_reason(gw, tech, guid, body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let reason = reason.unwrap_or_else(|| "the console lost its relay connection".to_owned());
    let now = lifeline_protocol::time::now_ms();
    match gw.store.interrupt_session(&rec.guid, now).await {
        Ok(true) => {
            crate::relay::audit(gw, Some(&rec.guid), &tech.email, "interrupted", &reason).await;
        }
        Ok(false) => {}
        Err(e) => return store_error(e),
    }
    session_now(gw, &rec.guid).await
}

/// `POST /api/v1/sessions/{guid}/path`: the console says which path the
/// session's traffic takes. `tcp`/`udp` make the session `direct` (so the
/// relay closing afterwards no longer ends it); `relay` makes it `paired`
/// again, as long as its relay has not closed. Audited as `path`.
pub(super) async fn path(gw: &Gateway, tech: &Technician, guid: &str, body: &[u8]) -> Resp {
    let req: PathReport = match parse(body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let path = match req.check().map(|()| SessionPath::parse(&req.path)) {
        Ok(Some(p)) => p,
        Ok(None) => return error(StatusCode::BAD_REQUEST, "bad_request", "unknown path"),
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", &e.0),
    };
    let rec = match own(gw, tech, guid).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let updated = match gw.store.set_path(&rec.guid, path).await {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let detail = path_audit_detail(path, req.rtt_ms, &req.detail);
    crate::relay::audit(gw, Some(&rec.guid), &tech.email, "path", &detail).await;
    tracing::info!(guid = %rec.guid, %path, state = %updated.state, "path reported");
    json(StatusCode::OK, &info(&updated))
}

/// The audit line of a path report: `direct TCP, rtt 0.4 ms; DETAIL`,
/// `XTCP over UDP, rtt 12.0 ms; DETAIL` or `relay; DETAIL` (the rtt and
/// the detail only when given). Control and format characters in the
/// console's detail are shown escaped, so it cannot forge lines in
/// `admin audit`.
pub fn path_audit_detail(path: SessionPath, rtt_ms: Option<f64>, detail: &str) -> String {
    let mut out = path.to_string();
    if let Some(rtt) = rtt_ms {
        out.push_str(&format!(", rtt {rtt:.1} ms"));
    }
    let detail = lifeline_protocol::text::neutralize(detail.trim());
    if !detail.is_empty() {
        out.push_str("; ");
        out.push_str(&detail);
    }
    out
}

/// The audit events of [`work`] reports, by kind (consent, file,
/// action); together they count against [`MAX_WORK_RECORDS`].
pub const WORK_EVENTS: [&str; 3] = ["consent", "file", "work"];

/// `POST /api/v1/sessions/{guid}/work`: the console tells what remote work
/// happened (a consent decision, a file transfer's end, an action), and
/// the gateway appends one audit record, as the technician's. Any state
/// of the session is accepted (a last report may cross the session's
/// end); a session with [`MAX_WORK_RECORDS`] already gets 429, logged once.
pub(super) async fn work(gw: &Gateway, tech: &Technician, guid: &str, body: &[u8]) -> Resp {
    let report: WorkReport = match parse(body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Err(e) = report.check() {
        return error(StatusCode::BAD_REQUEST, "bad_request", &e.0);
    }
    let rec = match own(gw, tech, guid).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let full = || {
        error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_work_records",
            &format!(
                "this session already has {MAX_WORK_RECORDS} remote-work records in the \
                 audit trail; no more are recorded for it"
            ),
        )
    };
    if gw.work_capped.contains(&rec.guid) {
        return full();
    }
    let (event, detail) = work_audit(&report);
    let now = lifeline_protocol::time::now_ms();
    match gw
        .store
        .audit_capped(
            now,
            &rec.guid,
            &tech.email,
            event,
            &detail,
            &WORK_EVENTS,
            MAX_WORK_RECORDS,
        )
        .await
    {
        Ok(true) => {
            gw.stats
                .work_reports
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            json(StatusCode::OK, &WorkRecorded { recorded: true })
        }
        Ok(false) => {
            if gw.work_capped.insert(rec.guid) {
                tracing::warn!(
                    guid = %rec.guid,
                    technician = %tech.email,
                    max = MAX_WORK_RECORDS,
                    "a session reached its cap of remote-work records; further reports are refused"
                );
            }
            full()
        }
        Err(e) => store_error(e),
    }
}

/// The audit event and detail line of a checked work report:
///
/// * `consent`: `run-command: granted (whole session)`, `file-to-user,
///   open-url: refused`;
/// * `file`: `file to user "a/b.txt" 1048576 bytes sha256 HEX: saved`,
///   `file from user "x" 10 bytes: failed; disk full`;
/// * `work`: `shell opened`, `command run: ls -la`.
///
/// The console's text (the file name, details) is kept as given: `admin
/// audit` shows it neutralized, and `--json` escapes it.
pub fn work_audit(report: &WorkReport) -> (&'static str, String) {
    match report {
        WorkReport::Consent {
            decision,
            whole_session,
            ..
        } => {
            let caps: Vec<&str> = report
                .capabilities()
                .each()
                .map(lifeline_protocol::Permissions::name)
                .collect();
            let whole = if *whole_session {
                " (whole session)"
            } else {
                ""
            };
            (
                "consent",
                format!("{}: {}{whole}", caps.join(", "), decision.as_str()),
            )
        }
        WorkReport::File {
            direction,
            name,
            size,
            sha256,
            outcome,
            detail,
        } => {
            let mut line = format!("file {} \"{name}\" {size} bytes", direction.words());
            if !sha256.is_empty() {
                line.push_str(" sha256 ");
                line.push_str(sha256);
            }
            line.push_str(": ");
            line.push_str(outcome.as_str());
            if !detail.trim().is_empty() {
                line.push_str("; ");
                line.push_str(detail.trim());
            }
            ("file", line)
        }
        WorkReport::Action { what, detail } => {
            let mut line = what.words().to_owned();
            if !detail.trim().is_empty() {
                line.push_str(": ");
                line.push_str(detail.trim());
            }
            ("work", line)
        }
    }
}

pub(super) async fn download(gw: &Gateway, tech: &Technician, guid: &str, query: &str) -> Resp {
    let rec = match own(gw, tech, guid).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let now = lifeline_protocol::time::now_ms();
    if rec.state == SessionState::Ended || now >= rec.expires_at_ms {
        return error(
            StatusCode::GONE,
            "session_over",
            "this session has ended or expired",
        );
    }
    let platform = lifeline_protocol::portal::query_param(query, "platform")
        .map(str::to_owned)
        .unwrap_or_else(crate::config::this_platform);
    // Read the stock applet before taking the secret, so a missing applet
    // does not burn the one-time download.
    let stock = match crate::personalize::stock_applet(&gw.config, &platform).await {
        Ok(b) => b,
        Err(msg) => return error(StatusCode::SERVICE_UNAVAILABLE, "no_applet", &msg),
    };
    let nodes = match gw.directory_nodes().await {
        Ok(n) => n,
        Err(e) => return store_error(e),
    };
    let secret = match gw.store.take_applet_secret(&rec.guid).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return error(
                StatusCode::GONE,
                "already_downloaded",
                "the applet for this session was already downloaded; fetch it again with \
                 `tech-console session applet` (until the end user connects), or create a new \
                 session",
            );
        }
        Err(e) => return store_error(e),
    };
    let file = crate::personalize::personalize(gw, &rec, secret, &nodes, stock);
    let digest = hex::encode(&lifeline_tls::sha256(&file));
    crate::relay::audit(
        gw,
        Some(&rec.guid),
        &tech.email,
        "applet downloaded",
        &format!("platform {platform}, {} bytes, sha256 {digest}", file.len()),
    )
    .await;
    let mut r = Response::new(Full::new(Bytes::from(file)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&format!(
        "attachment; filename=\"lifeline-support-{}\"",
        &rec.guid.to_string()[..8]
    )) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reissue_refusals_say_why() {
        use http_body_util::BodyExt;
        let rec = |state| SessionRecord {
            guid: SessionGuid::from_bytes([7; 16]),
            technician_id: Some(1),
            technician_email: Some("ada@example.com".into()),
            technician_name: Some("Ada".into()),
            label: String::new(),
            console_pin: Some([0; 32]),
            downloaded: true,
            permissions: lifeline_protocol::Permissions::NONE,
            state,
            created_at_ms: 0,
            expires_at_ms: 100,
            waiting_since_ms: None,
            waiting_from: None,
            waiting_node: None,
            waiting_node_addr: None,
            paired_at_ms: None,
            ended_at_ms: None,
            ended_reason: None,
            bytes_applet_to_console: 0,
            bytes_console_to_applet: 0,
            path: None,
            relay_closed_at_ms: None,
            admission_key: None,
            queue_group_id: None,
            channel: None,
            problem: String::new(),
            transfer_to: None,
            transfer_to_email: None,
            transfer_to_name: None,
            transfer_pin: None,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for (state, now, code, words) in [
            (
                SessionState::Waiting,
                1,
                "already_connected",
                "(it is waiting)",
            ),
            (
                SessionState::Paired,
                1,
                "already_connected",
                "(it is paired)",
            ),
            (
                SessionState::Direct,
                1,
                "already_connected",
                "(it is direct)",
            ),
            (SessionState::Ended, 1, "ended", "has ended"),
            (SessionState::Created, 100, "expired", "has expired"),
        ] {
            let r = reissue_refused(&rec(state), now);
            assert_eq!(r.status(), StatusCode::CONFLICT);
            let body = rt.block_on(r.into_body().collect()).unwrap().to_bytes();
            let e: lifeline_protocol::portal::ApiError = serde_json::from_slice(&body).unwrap();
            assert_eq!(e.code, code);
            assert!(e.error.contains(words), "{}", e.error);
        }
    }

    #[test]
    fn path_audit_details() {
        assert_eq!(
            path_audit_detail(SessionPath::DirectTcp, Some(0.4), "10.0.0.2:5000"),
            "direct TCP, rtt 0.4 ms; 10.0.0.2:5000"
        );
        assert_eq!(
            path_audit_detail(SessionPath::XtcpUdp, Some(12.0), " srflx\nforged "),
            "XTCP over UDP, rtt 12.0 ms; srflx\\nforged"
        );
        assert_eq!(
            path_audit_detail(SessionPath::Relay, None, "no direct path"),
            "relay; no direct path"
        );
        assert_eq!(path_audit_detail(SessionPath::Relay, None, ""), "relay");
    }

    #[test]
    fn work_audit_lines() {
        use lifeline_protocol::portal::{FileDirection, FileOutcome, WorkAction};
        use lifeline_protocol::work::Decision;
        let consent = |capability: &str, decision, whole_session| WorkReport::Consent {
            capability: capability.into(),
            decision,
            whole_session,
        };
        assert_eq!(
            work_audit(&consent("run-command", Decision::Granted, true)),
            ("consent", "run-command: granted (whole session)".into())
        );
        // A set is shown in a fixed order, whatever order it came in.
        assert_eq!(
            work_audit(&consent("open-url,file-to-user", Decision::TimedOut, false)),
            ("consent", "file-to-user, open-url: timed_out".into())
        );
        let sha = "0f".repeat(32);
        let file = |direction, sha256: &str, outcome, detail: &str| WorkReport::File {
            direction,
            name: "a/b.txt".into(),
            size: 1_048_576,
            sha256: sha256.into(),
            outcome,
            detail: detail.into(),
        };
        assert_eq!(
            work_audit(&file(FileDirection::ToUser, &sha, FileOutcome::Saved, "")),
            (
                "file",
                format!("file to user \"a/b.txt\" 1048576 bytes sha256 {sha}: saved")
            )
        );
        assert_eq!(
            work_audit(&file(
                FileDirection::FromUser,
                "",
                FileOutcome::Failed,
                " disk full "
            ))
            .1,
            "file from user \"a/b.txt\" 1048576 bytes: failed; disk full"
        );
        let action = |what, detail: &str| WorkReport::Action {
            what,
            detail: detail.into(),
        };
        assert_eq!(
            work_audit(&action(WorkAction::ShellOpened, "")),
            ("work", "shell opened".into())
        );
        assert_eq!(
            work_audit(&action(WorkAction::ShellClosed, "exit 0")).1,
            "shell closed: exit 0"
        );
        assert_eq!(
            work_audit(&action(WorkAction::UrlOpened, "https://example.com/")).1,
            "URL opened: https://example.com/"
        );
        // The console's text is kept as given (shown neutralized later).
        assert_eq!(
            work_audit(&action(WorkAction::CommandRun, "printf '\x1b[2J'")).1,
            "command run: printf '\x1b[2J'"
        );
    }
}
