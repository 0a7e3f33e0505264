//! Sessions and their state machine.
//!
//! ```text
//!                                               set_path(tcp|udp)
//! created ──mark_waiting──▶ waiting ──mark_paired──▶ paired ─────────────▶ direct
//!    ▲                        │                        │  ◀─────────────
//!    └──────clear_waiting─────┘                        │  set_path(relay),
//!    └──reset_node_sessions (waiting or paired) ───────┘  relay still open
//! any non-ended state ──end_session──▶ ended
//! any non-ended state but direct ──close_relay──▶ ended  (direct stays direct)
//! ```
//!
//! `direct` is a live, paired session whose traffic has moved off the relay
//! to a direct path between the ends (the console reports it with
//! [`Store::set_path`]). When its relay then closes, the session goes on:
//! [`Store::close_relay`] only notes the time, and the session ends when
//! the console ends it or it expires. A `direct` session whose relay has
//! closed cannot go back to `paired` — there is no relay left to carry it.
//!
//! A `created` session's applet can be issued again
//! ([`Store::reissue_applet`]): a new applet secret and admission key
//! replace the old ones, so an applet file made before can no longer
//! connect, and the one-time download is possible once more.
//!
//! Every transition is a single conditional `UPDATE ... WHERE state = ...`,
//! so two gateway nodes racing on one session cannot both win: the database
//! decides, and the loser sees `false`.

use crate::batched::{self, Batch};
use crate::error::conflict_on_unique;
use crate::rows::{self, get};
use crate::{Permissions, Result, SessionGuid, Store, StoreError};
use lifeline_protocol::hex;
use sqlx::AnyPool;
use sqlx::any::AnyRow;
use std::fmt;

/// What the portal supplies to create a session.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The session's random GUID.
    pub guid: SessionGuid,
    /// Who created it.
    pub technician_id: i64,
    /// A name the technician chose (`""` for none).
    pub label: String,
    /// SHA-256 of the console certificate's SPKI.
    pub console_pin: [u8; 32],
    /// The secret the applet proves; kept only until the applet is downloaded.
    pub applet_secret: [u8; 32],
    /// The public key that checks the applet's admission proof at the
    /// gateway (derived from the applet secret; kept for the session's life).
    pub admission_key: [u8; 32],
    /// What the session may do (from the technician's group).
    pub permissions: Permissions,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// After this the applet and the gateway refuse the session.
    pub expires_at_ms: i64,
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Created; no applet connected.
    Created,
    /// The applet is connected to a gateway node and waits for the console.
    Waiting,
    /// Applet and console are paired (through the relay).
    Paired,
    /// Paired, and the traffic has moved to a direct path between the
    /// ends; the relay may have closed.
    Direct,
    /// Over; nothing can revive it.
    Ended,
}

impl SessionState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Waiting => "waiting",
            Self::Paired => "paired",
            Self::Direct => "direct",
            Self::Ended => "ended",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [
            Self::Created,
            Self::Waiting,
            Self::Paired,
            Self::Direct,
            Self::Ended,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// Whether applet and console are connected (through the relay or
    /// directly): a second applet or console must be refused.
    pub fn is_connected(self) -> bool {
        matches!(self, Self::Paired | Self::Direct)
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which way a paired session's traffic flows, as its console reported
/// (the protocol's one path type; stored as its short name).
pub use lifeline_protocol::path::PathKind as SessionPath;

/// The session state a reported path means.
fn state_of_path(path: SessionPath) -> SessionState {
    if path.is_direct() {
        SessionState::Direct
    } else {
        SessionState::Paired
    }
}

/// What [`Store::close_relay`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayClosed {
    /// The session was on the relay: it is interrupted, and its ends may
    /// resume it within the resume window (see [`Store::end_unresumed`]).
    Interrupted,
    /// The session had gone direct: it continues without the relay.
    Direct,
    /// The session had already ended (or does not exist): nothing changed.
    AlreadyEnded,
}

/// What [`Store::reissue_applet`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reissue {
    /// The new applet secret and admission key are stored and the applet
    /// may be downloaded once more: the session as it is now.
    Reissued(SessionRecord),
    /// Nothing changed: the session is no longer `created` (an applet has
    /// connected, or it ended) or has expired. The session as it is, so
    /// the caller can say which.
    Refused(SessionRecord),
}

/// A session as stored, with its technician's e-mail and name. The applet
/// secret is deliberately absent: only [`Store::take_applet_secret`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session's GUID.
    pub guid: SessionGuid,
    /// Whose it is: who created it, or who picked it from a channel's
    /// queue; `None` while a channel's session waits to be picked.
    pub technician_id: Option<i64>,
    /// That technician's e-mail.
    pub technician_email: Option<String>,
    /// That technician's display name.
    pub technician_name: Option<String>,
    /// The label (`""` for none); for a channel's session, the name the
    /// end user gave on the web page.
    pub label: String,
    /// SHA-256 of the console certificate's SPKI; `None` until a
    /// technician picks a channel's session.
    pub console_pin: Option<[u8; 32]>,
    /// Whether the applet was downloaded (and the secret erased).
    pub downloaded: bool,
    /// What the session may do.
    pub permissions: Permissions,
    /// Where it is in its life.
    pub state: SessionState,
    /// Creation time.
    pub created_at_ms: i64,
    /// Expiry time.
    pub expires_at_ms: i64,
    /// When the applet arrived (while waiting or paired).
    pub waiting_since_ms: Option<i64>,
    /// The applet's address as the gateway saw it.
    pub waiting_from: Option<String>,
    /// The gateway node holding the applet's connection.
    pub waiting_node: Option<String>,
    /// Where consoles reach that node.
    pub waiting_node_addr: Option<String>,
    /// When it was (last) paired.
    pub paired_at_ms: Option<i64>,
    /// When it ended.
    pub ended_at_ms: Option<i64>,
    /// How it ended.
    pub ended_reason: Option<String>,
    /// Bytes relayed from applet to console.
    pub bytes_applet_to_console: i64,
    /// Bytes relayed from console to applet.
    pub bytes_console_to_applet: i64,
    /// The path the console last reported since the session was paired.
    pub path: Option<SessionPath>,
    /// When the relay closed while the session went on directly.
    pub relay_closed_at_ms: Option<i64>,
    /// The public key that checks the applet's admission proof; `None` for
    /// sessions created before it existed (their applets are admitted on
    /// the GUID alone).
    pub admission_key: Option<[u8; 32]>,
    /// The group whose queue a channel's session waits in (`None` for a
    /// technician's own session).
    pub queue_group_id: Option<i64>,
    /// The channel it came through.
    pub channel: Option<String>,
    /// What the end user wrote about their problem on the channel's page.
    pub problem: String,
    /// The technician the session is offered to (a transfer), if any.
    pub transfer_to: Option<i64>,
    /// That technician's e-mail.
    pub transfer_to_email: Option<String>,
    /// That technician's display name.
    pub transfer_to_name: Option<String>,
    /// The key their console will prove, once they accepted the offer.
    pub transfer_pin: Option<[u8; 32]>,
}

/// The `UPDATE` that ends a session (`$1` guid, `$2` time, `$3` reason);
/// the caller appends the state condition.
/// Back from `waiting` to where the session was before: `created`, or
/// interrupted (`paired`, relay closed) if it had been paired.
macro_rules! unwait {
    () => {
        "state = CASE WHEN paired_at_ms IS NULL THEN 'created' ELSE 'paired' END, \
         waiting_since_ms = NULL, waiting_from = NULL, \
         waiting_node = NULL, waiting_node_addr = NULL"
    };
}

macro_rules! end_update {
    () => {
        "UPDATE sessions SET state = 'ended', ended_at_ms = $2, ended_reason = $3, \
         applet_secret = NULL, waiting_since_ms = NULL, waiting_from = NULL, \
         waiting_node = NULL, waiting_node_addr = NULL WHERE guid = $1"
    };
}

/// The columns every session query selects, joined with the technician.
macro_rules! session_select {
    () => {
        "SELECT s.guid, s.technician_id, t.email AS technician_email, \
         t.name AS technician_name, s.label, s.console_pin, s.downloaded, s.permissions, \
         s.state, s.created_at_ms, s.expires_at_ms, s.waiting_since_ms, s.waiting_from, \
         s.waiting_node, s.waiting_node_addr, s.paired_at_ms, s.ended_at_ms, s.ended_reason, \
         s.bytes_applet_to_console, s.bytes_console_to_applet, s.path, s.relay_closed_at_ms, \
         s.admission_key, s.queue_group_id, s.channel, s.problem, s.transfer_to, \
         x.email AS transfer_to_email, x.name AS transfer_to_name, s.transfer_pin \
         FROM sessions s LEFT JOIN technicians t ON t.id = s.technician_id \
         LEFT JOIN technicians x ON x.id = s.transfer_to"
    };
}

pub(crate) use session_select;

pub(crate) fn from_row(row: &AnyRow) -> Result<SessionRecord> {
    let state: String = get(row, "state")?;
    let path: Option<String> = get(row, "path")?;
    Ok(SessionRecord {
        guid: rows::guid("sessions.guid", &get::<String>(row, "guid")?)?,
        technician_id: get(row, "technician_id")?,
        technician_email: get(row, "technician_email")?,
        technician_name: get(row, "technician_name")?,
        label: get(row, "label")?,
        console_pin: get::<Option<String>>(row, "console_pin")?
            .map(|p| rows::hash32("sessions.console_pin", &p))
            .transpose()?,
        downloaded: rows::flag("sessions.downloaded", get(row, "downloaded")?)?,
        permissions: rows::permissions("sessions.permissions", get(row, "permissions")?)?,
        state: rows::session_state("sessions.state", &state)?,
        created_at_ms: get(row, "created_at_ms")?,
        expires_at_ms: get(row, "expires_at_ms")?,
        waiting_since_ms: get(row, "waiting_since_ms")?,
        waiting_from: get(row, "waiting_from")?,
        waiting_node: get(row, "waiting_node")?,
        waiting_node_addr: get(row, "waiting_node_addr")?,
        paired_at_ms: get(row, "paired_at_ms")?,
        ended_at_ms: get(row, "ended_at_ms")?,
        ended_reason: get(row, "ended_reason")?,
        bytes_applet_to_console: get(row, "bytes_applet_to_console")?,
        bytes_console_to_applet: get(row, "bytes_console_to_applet")?,
        path: path
            .map(|p| {
                SessionPath::parse(&p).ok_or_else(|| {
                    StoreError::Corrupt(format!("sessions.path holds unknown path {p:?}"))
                })
            })
            .transpose()?,
        relay_closed_at_ms: get(row, "relay_closed_at_ms")?,
        admission_key: get::<Option<String>>(row, "admission_key")?
            .map(|k| rows::hash32("sessions.admission_key", &k))
            .transpose()?,
        queue_group_id: get(row, "queue_group_id")?,
        channel: get(row, "channel")?,
        problem: get(row, "problem")?,
        transfer_to: get(row, "transfer_to")?,
        transfer_to_email: get(row, "transfer_to_email")?,
        transfer_to_name: get(row, "transfer_to_name")?,
        transfer_pin: get::<Option<String>>(row, "transfer_pin")?
            .map(|p| rows::hash32("sessions.transfer_pin", &p))
            .transpose()?,
    })
}

impl Store {
    /// Creates a session in state `created`.
    ///
    /// [`StoreError::Conflict`] if the label is non-empty and one of the
    /// technician's sessions that is neither ended nor expired (at
    /// `created_at_ms`) already carries it, or if the GUID exists;
    /// [`StoreError::NotFound`] if the technician does not exist.
    pub async fn create_session(&self, s: NewSession) -> Result<SessionRecord> {
        let mut tx = self.begin_write().await?;
        // A no-op update of the technician's row takes its row lock on
        // PostgreSQL, serialising concurrent creations by one technician so
        // that the label check and the insert below cannot interleave (on
        // SQLite the IMMEDIATE transaction already serialises all writers).
        let technician_exists =
            sqlx::query("UPDATE technicians SET failed_logins = failed_logins WHERE id = $1")
                .bind(s.technician_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
        if !technician_exists {
            return Err(StoreError::NotFound(format!(
                "there is no technician with id {}",
                s.technician_id
            )));
        }
        if !s.label.is_empty() {
            let clashes: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sessions WHERE technician_id = $1 AND label = $2 \
                 AND state <> 'ended' AND expires_at_ms > $3",
            )
            .bind(s.technician_id)
            .bind(&s.label)
            .bind(s.created_at_ms)
            .fetch_one(&mut *tx)
            .await?;
            if clashes > 0 {
                return Err(StoreError::Conflict(format!(
                    "you already have an open session labelled {:?}",
                    s.label
                )));
            }
        }
        let guid = s.guid.to_string();
        sqlx::query(
            "INSERT INTO sessions (guid, technician_id, label, console_pin, applet_secret, \
             downloaded, permissions, state, created_at_ms, expires_at_ms, \
             bytes_applet_to_console, bytes_console_to_applet, admission_key) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, 'created', $7, $8, 0, 0, $9)",
        )
        .bind(&guid)
        .bind(s.technician_id)
        .bind(&s.label)
        .bind(hex::encode(&s.console_pin))
        .bind(hex::encode(&s.applet_secret))
        .bind(i64::from(s.permissions.bits()))
        .bind(s.created_at_ms)
        .bind(s.expires_at_ms)
        .bind(hex::encode(&s.admission_key))
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            conflict_on_unique(e, || format!("a session with GUID {guid} already exists"))
        })?;
        let row = sqlx::query(concat!(session_select!(), " WHERE s.guid = $1"))
            .bind(&guid)
            .fetch_one(&mut *tx)
            .await?;
        let record = from_row(&row)?;
        tx.commit().await?;
        Ok(record)
    }

    /// One session by GUID.
    pub async fn session(&self, guid: &SessionGuid) -> Result<Option<SessionRecord>> {
        sqlx::query(concat!(session_select!(), " WHERE s.guid = $1"))
            .bind(guid.to_string())
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    /// A technician's sessions, and those offered to them, newest first;
    /// ended ones only if asked.
    pub async fn sessions_of(
        &self,
        technician_id: i64,
        include_ended: bool,
    ) -> Result<Vec<SessionRecord>> {
        let query = if include_ended {
            sqlx::query(concat!(
                session_select!(),
                " WHERE (s.technician_id = $1 OR s.transfer_to = $1)",
                " ORDER BY s.created_at_ms DESC, s.guid"
            ))
        } else {
            sqlx::query(concat!(
                session_select!(),
                " WHERE (s.technician_id = $1 OR s.transfer_to = $1) AND s.state <> 'ended'",
                " ORDER BY s.created_at_ms DESC, s.guid"
            ))
        };
        query
            .bind(technician_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    /// The technician's newest not-ended session with this label (which may
    /// have expired: the caller decides what to tell the technician). An
    /// empty label names no session.
    pub async fn session_by_label(
        &self,
        technician_id: i64,
        label: &str,
    ) -> Result<Option<SessionRecord>> {
        if label.is_empty() {
            return Ok(None);
        }
        sqlx::query(concat!(
            session_select!(),
            " WHERE s.technician_id = $1 AND s.label = $2 AND s.state <> 'ended'",
            " ORDER BY s.created_at_ms DESC, s.guid LIMIT 1"
        ))
        .bind(technician_id)
        .bind(label)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    /// The one-time applet download: returns the applet secret, erases it
    /// and sets `downloaded`. `None` if it was already taken (or the session
    /// ended, which erases it too) or there is no such session.
    pub async fn take_applet_secret(&self, guid: &SessionGuid) -> Result<Option<[u8; 32]>> {
        let guid = guid.to_string();
        let mut tx = self.begin_write().await?;
        let stored: Option<Option<String>> =
            sqlx::query_scalar("SELECT applet_secret FROM sessions WHERE guid = $1")
                .bind(&guid)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(Some(text)) = stored else {
            return Ok(None);
        };
        let secret = rows::hash32("sessions.applet_secret", &text)?;
        // Conditional on the secret read still being there: of two
        // concurrent downloads on PostgreSQL (READ COMMITTED, both may have
        // read it), the second re-checks after the first commits and erases
        // nothing; and a secret replaced meanwhile by
        // [`Store::reissue_applet`] is not erased for an applet made with
        // the old one.
        let erased = sqlx::query(
            "UPDATE sessions SET applet_secret = NULL, downloaded = 1 \
             WHERE guid = $1 AND applet_secret = $2",
        )
        .bind(&guid)
        .bind(&text)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if erased != 1 {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(secret))
    }

    /// The applet arrived on `node`: `created` → `waiting`, recording where
    /// and since when. Also `waiting` → `waiting` when the session already
    /// waits on this same `node`: a new connection of the applet taking
    /// over from its old one (the node's registry decided that). And a
    /// resumption: a session whose path died comes back — `direct` (its
    /// direct path died; the interruption starts now) or `paired` with its
    /// relay closed (interrupted) — also → `waiting`. Returns `false`
    /// (changing nothing) otherwise; expiry is the caller's check.
    ///
    /// This does not look at the admission key; a gateway admitting an
    /// applet uses [`Store::mark_waiting_admitted`].
    pub async fn mark_waiting(
        &self,
        guid: &SessionGuid,
        node: &str,
        node_addr: &str,
        from: &str,
        now_ms: i64,
    ) -> Result<bool> {
        self.mark_waiting_if(guid, node, node_addr, from, None, now_ms)
            .await
    }

    /// [`Store::mark_waiting`] for an applet admitted with `admitted_with`
    /// (the admission key its proof was checked against; `None` for a
    /// session that had none): only if that is still the session's key.
    /// An applet checked against a key that [`Store::reissue_applet`]
    /// replaced in the meantime (on any node) is not registered.
    ///
    /// An applet that proved its key may also take a session waiting on
    /// another node: it holds the session's applet file, so it is the
    /// applet whose node died (or a second copy of it, which replaces the
    /// first as on one node; the old node sees the move at its next
    /// keepalive). Without a proof, only the node holding the session may.
    pub async fn mark_waiting_admitted(
        &self,
        guid: &SessionGuid,
        node: &str,
        node_addr: &str,
        from: &str,
        admitted_with: Option<&[u8; 32]>,
        now_ms: i64,
    ) -> Result<bool> {
        // "" stands for no key: stored keys are 64 hex digits.
        let key = admitted_with.map_or_else(String::new, |k| hex::encode(k));
        self.mark_waiting_if(guid, node, node_addr, from, Some(key), now_ms)
            .await
    }

    async fn mark_waiting_if(
        &self,
        guid: &SessionGuid,
        node: &str,
        node_addr: &str,
        from: &str,
        key: Option<String>,
        now_ms: i64,
    ) -> Result<bool> {
        let mark = WaitingMark {
            guid: guid.to_string(),
            since_ms: now_ms,
            from: from.to_owned(),
            node: node.to_owned(),
            node_addr: node_addr.to_owned(),
            key,
        };
        batched::call(self.batchers.waiting.as_ref(), self.writes(), mark).await
    }

    /// The technician fetches the session's applet again before the end
    /// user has connected: `applet_secret` and `admission_key` (derived
    /// from it, as at creation) replace the stored ones, and the one-time
    /// download is possible once more (`downloaded` cleared). Every applet
    /// file made before holds the old secret, so the gateway no longer
    /// admits it. Only for a `created` session that has not expired at
    /// `now_ms`, decided by one conditional `UPDATE` (an applet arriving
    /// on another node at the same moment either comes first, and this is
    /// refused, or finds the new key and is refused itself: see
    /// [`Store::mark_waiting_admitted`]). The secret is kept as at
    /// creation: in the clear until the download, which erases it.
    ///
    /// [`StoreError::NotFound`] if there is no such session.
    pub async fn reissue_applet(
        &self,
        guid: &SessionGuid,
        applet_secret: &[u8; 32],
        admission_key: &[u8; 32],
        now_ms: i64,
    ) -> Result<Reissue> {
        let text = guid.to_string();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE sessions SET applet_secret = $2, admission_key = $3, downloaded = 0 \
             WHERE guid = $1 AND state = 'created' AND expires_at_ms > $4",
        )
        .bind(&text)
        .bind(hex::encode(applet_secret))
        .bind(hex::encode(admission_key))
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let row = sqlx::query(concat!(session_select!(), " WHERE s.guid = $1"))
            .bind(&text)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(record) = row.as_ref().map(from_row).transpose()? else {
            return Err(StoreError::NotFound(format!("there is no session {text}")));
        };
        if done != 1 {
            return Ok(Reissue::Refused(record));
        }
        tx.commit().await?;
        Ok(Reissue::Reissued(record))
    }

    /// The applet whose connection came from `from` left before pairing:
    /// `waiting` → `created`, forgetting where it waited — or, for a
    /// session that was paired before (a resumption), back to interrupted
    /// (`paired` with its relay closed). No-op in any other state, or when
    /// the session now waits for another connection (one that took over
    /// from this one).
    pub async fn clear_waiting(&self, guid: &SessionGuid, from: &str) -> Result<()> {
        sqlx::query(concat!(
            "UPDATE sessions SET ",
            unwait!(),
            " WHERE guid = $1 AND state = 'waiting' AND waiting_from = $2"
        ))
        .bind(guid.to_string())
        .bind(from)
        .execute(self.writes())
        .await?;
        Ok(())
    }

    /// The console joined: `waiting` → `paired`. Returns `false` unless the
    /// session was `waiting`. The `waiting_*` columns stay: they say which
    /// node relays the pair. A path reported by an earlier pairing (before
    /// a node restart reset the session) no longer applies and is cleared.
    pub async fn mark_paired(&self, guid: &SessionGuid, now_ms: i64) -> Result<bool> {
        let mark = PairedMark {
            guid: guid.to_string(),
            at_ms: now_ms,
        };
        batched::call(self.batchers.paired.as_ref(), self.writes(), mark).await
    }

    /// Ends a session from any non-ended state (`direct` included),
    /// recording when and why and clearing the `waiting_*` columns. Also
    /// erases an applet secret that was never downloaded: it can no longer
    /// be of use. Returns `false` if the session was already ended (or does
    /// not exist). The last reported path stays, as history.
    pub async fn end_session(&self, guid: &SessionGuid, reason: &str, now_ms: i64) -> Result<bool> {
        let done = sqlx::query(concat!(end_update!(), " AND state <> 'ended'"))
            .bind(guid.to_string())
            .bind(now_ms)
            .bind(reason)
            .execute(self.writes())
            .await?
            .rows_affected();
        Ok(done == 1)
    }

    /// The console reports the path the session's traffic takes: `paired`
    /// or `direct` → `direct` for [`SessionPath::DirectTcp`] and
    /// [`SessionPath::XtcpUdp`], → `paired` for [`SessionPath::Relay`] (while
    /// the relay still runs: it is how a console says the cutover did not
    /// happen after all). Records the path and returns the updated session.
    ///
    /// [`StoreError::Conflict`] with a message for the technician if the
    /// session is not paired or direct, or reports `relay` after its relay
    /// has closed; [`StoreError::NotFound`] if there is no such session.
    pub async fn set_path(&self, guid: &SessionGuid, path: SessionPath) -> Result<SessionRecord> {
        let text = guid.to_string();
        let mut tx = self.begin_write().await?;
        let sql = if path.is_direct() {
            "UPDATE sessions SET state = $2, path = $3 \
             WHERE guid = $1 AND state IN ('paired', 'direct')"
        } else {
            "UPDATE sessions SET state = $2, path = $3 \
             WHERE guid = $1 AND state IN ('paired', 'direct') AND relay_closed_at_ms IS NULL"
        };
        let done = sqlx::query(sql)
            .bind(&text)
            .bind(state_of_path(path).as_str())
            .bind(path.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let row = sqlx::query(concat!(session_select!(), " WHERE s.guid = $1"))
            .bind(&text)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(record) = row.as_ref().map(from_row).transpose()? else {
            return Err(StoreError::NotFound(format!("there is no session {text}")));
        };
        if done == 1 {
            tx.commit().await?;
            return Ok(record);
        }
        Err(StoreError::Conflict(match record.state {
            SessionState::Created | SessionState::Waiting => format!(
                "the session is {}: the console and the end user are not connected, \
                 so there is no path to report",
                record.state
            ),
            SessionState::Ended => "this session has ended".to_owned(),
            SessionState::Paired | SessionState::Direct => {
                "the relay of this session has closed after the cutover to the direct path; \
                 the session cannot go back to the relay"
                    .to_owned()
            }
        }))
    }

    /// The relay of a session stopped (the gateway's pump ended). The
    /// gateway cannot tell an ending from a lost connection (it never sees
    /// inside), so nothing ends here — an ending is recorded by the console
    /// ([`Store::end_session`]) or by the resume window running out
    /// ([`Store::end_unresumed`]). A `paired` session is interrupted (the
    /// relay's close time noted, its ends may resume it); a `direct` one
    /// goes on without the relay (only the time is noted). Returns which.
    pub async fn close_relay(&self, guid: &SessionGuid, now_ms: i64) -> Result<RelayClosed> {
        let row: Option<(String,)> = sqlx::query_as(
            "UPDATE sessions SET relay_closed_at_ms = $2 \
             WHERE guid = $1 AND state IN ('paired', 'direct') RETURNING state",
        )
        .bind(guid.to_string())
        .bind(now_ms)
        .fetch_optional(self.writes())
        .await?;
        Ok(match row.as_ref().map(|(s,)| s.as_str()) {
            Some("direct") => RelayClosed::Direct,
            Some(_) => RelayClosed::Interrupted,
            None => RelayClosed::AlreadyEnded,
        })
    }

    /// The session's console lost its relay connection (its node died, say):
    /// a `paired` session whose relay is not yet known to have closed is
    /// interrupted now, so its applet may wait for it again on any node.
    /// Returns whether it changed.
    pub async fn interrupt_session(&self, guid: &SessionGuid, now_ms: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET relay_closed_at_ms = $2 \
             WHERE guid = $1 AND state = 'paired' AND relay_closed_at_ms IS NULL",
        )
        .bind(guid.to_string())
        .bind(now_ms)
        .execute(self.writes())
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    /// Ends the sessions interrupted before `before_ms` (their relay closed
    /// or their path died, and no end came back to resume them): returns
    /// their GUIDs, for the audit trail and the applets still waiting.
    pub async fn end_unresumed(
        &self,
        before_ms: i64,
        reason: &str,
        now_ms: i64,
    ) -> Result<Vec<SessionGuid>> {
        let guids: Vec<String> = sqlx::query_scalar(
            "SELECT guid FROM sessions WHERE state IN ('paired', 'waiting') \
             AND relay_closed_at_ms IS NOT NULL AND relay_closed_at_ms < $1",
        )
        .bind(before_ms)
        .fetch_all(self.pool())
        .await?;
        let mut ended = Vec::new();
        for text in guids {
            let guid = rows::guid("sessions.guid", &text)?;
            // Conditional like every transition: a session resumed
            // meanwhile (paired again: relay_closed_at_ms cleared) stays.
            let done = sqlx::query(concat!(
                end_update!(),
                " AND state IN ('paired', 'waiting') AND relay_closed_at_ms IS NOT NULL \
                 AND relay_closed_at_ms < $4"
            ))
            .bind(&text)
            .bind(now_ms)
            .bind(reason)
            .bind(before_ms)
            .execute(self.writes())
            .await?
            .rows_affected();
            if done == 1 {
                ended.push(guid);
            }
        }
        Ok(ended)
    }

    /// At node start: `direct` sessions whose relay ran on `node`'s
    /// previous run have lost that relay (their ends talk directly). They
    /// stay `direct` and only get `relay_closed_at_ms`; returns how many.
    pub async fn mark_node_relays_closed(&self, node: &str, now_ms: i64) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE sessions SET relay_closed_at_ms = $2 \
             WHERE waiting_node = $1 AND state = 'direct' AND relay_closed_at_ms IS NULL",
        )
        .bind(node)
        .bind(now_ms)
        .execute(self.writes())
        .await?
        .rows_affected())
    }

    /// Adds to the relayed byte counters (called periodically and at the end
    /// of a relay, with the bytes since the last call).
    pub async fn add_relayed_bytes(
        &self,
        guid: &SessionGuid,
        applet_to_console: u64,
        console_to_applet: u64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sessions SET bytes_applet_to_console = bytes_applet_to_console + $2, \
             bytes_console_to_applet = bytes_console_to_applet + $3 WHERE guid = $1",
        )
        .bind(guid.to_string())
        .bind(rows::byte_count(applet_to_console))
        .bind(rows::byte_count(console_to_applet))
        .execute(self.writes())
        .await?;
        Ok(())
    }

    /// At node start: sessions left `waiting` on `node` by its previous run
    /// lost their applet's connection with it, so they go back to
    /// `created` (the applet reconnects). Returns how many were reset.
    ///
    /// `paired` sessions are [`Store::interrupt_node_relays`]'s, and
    /// `direct` ones are left alone: their ends are connected to each
    /// other, not to the node, and resetting them would let a second copy
    /// of the applet take the session while the first is still in it (see
    /// [`Store::mark_node_relays_closed`]).
    pub async fn reset_node_sessions(&self, node: &str) -> Result<u64> {
        Ok(sqlx::query(concat!(
            "UPDATE sessions SET ",
            unwait!(),
            " WHERE waiting_node = $1 AND state = 'waiting'"
        ))
        .bind(node)
        .execute(self.writes())
        .await?
        .rows_affected())
    }

    /// At node start: sessions left `paired` on `node` by its previous run
    /// were being relayed when it stopped without closing them (a crash,
    /// `kill -9`, a power cut): their relay is gone, so they are
    /// interrupted now (as [`Store::close_relay`] would have), and their
    /// ends may resume them. Returns their GUIDs, for the audit trail.
    pub async fn interrupt_node_relays(&self, node: &str, now_ms: i64) -> Result<Vec<SessionGuid>> {
        let guids: Vec<String> = sqlx::query_scalar(
            "UPDATE sessions SET relay_closed_at_ms = $2 \
             WHERE waiting_node = $1 AND state = 'paired' AND relay_closed_at_ms IS NULL \
             RETURNING guid",
        )
        .bind(node)
        .bind(now_ms)
        .fetch_all(self.writes())
        .await?;
        guids
            .iter()
            .map(|t| rows::guid("sessions.guid", t))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    //! Issuing an applet again, on SQLite and PostgreSQL (the store suite
    //! in `store/tests/` covers the rest of the state machine).
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::NewTechnician;
    use sqlx::Connection;

    const T0: i64 = 1_700_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn guid() -> SessionGuid {
        SessionGuid::random(&ring::rand::SystemRandom::new()).unwrap()
    }

    async fn reissue_scenario(url: &str) {
        let store = Store::open(url).await.unwrap();
        let t = store
            .add_technician(
                NewTechnician {
                    email: "reissue@example.com".into(),
                    name: "R".into(),
                    password_hash: "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA".into(),
                    group: "support".into(),
                },
                T0,
            )
            .await
            .unwrap();
        let new = |expires_at_ms| NewSession {
            guid: guid(),
            technician_id: t.id,
            label: String::new(),
            console_pin: [0xc0; 32],
            applet_secret: [1; 32],
            admission_key: [0xa1; 32],
            permissions: Permissions::NONE,
            created_at_ms: T0,
            expires_at_ms,
        };
        let s = new(T0 + HOUR);
        let g = s.guid;
        store.create_session(s).await.unwrap();
        assert_eq!(store.take_applet_secret(&g).await.unwrap(), Some([1; 32]));

        // Downloaded once: issued again with a new secret and key, the
        // download is possible once more and yields the new secret.
        let Reissue::Reissued(r) = store
            .reissue_applet(&g, &[2; 32], &[0xa2; 32], T0 + 1)
            .await
            .unwrap()
        else {
            panic!("a created session is reissued")
        };
        assert_eq!((r.state, r.downloaded), (SessionState::Created, false));
        assert_eq!(r.admission_key, Some([0xa2; 32]));
        assert_eq!(store.take_applet_secret(&g).await.unwrap(), Some([2; 32]));
        assert_eq!(store.take_applet_secret(&g).await.unwrap(), None);
        assert!(store.session(&g).await.unwrap().unwrap().downloaded);

        // An applet admitted with the old key is not registered; one with
        // the current key is.
        for (key, ok) in [
            (None, false),
            (Some(&[0xa1; 32]), false),
            (Some(&[0xa2; 32]), true),
        ] {
            assert_eq!(
                store
                    .mark_waiting_admitted(&g, "n1", "n1:443", "198.51.100.1:1", key, T0 + 2)
                    .await
                    .unwrap(),
                ok,
                "{key:?}"
            );
        }
        // Waiting: refused, nothing changed.
        let Reissue::Refused(r) = store
            .reissue_applet(&g, &[3; 32], &[0xa3; 32], T0 + 3)
            .await
            .unwrap()
        else {
            panic!("a waiting session is not reissued")
        };
        assert_eq!(r.state, SessionState::Waiting);
        assert_eq!(r.admission_key, Some([0xa2; 32]));
        // Paired: refused too.
        assert!(store.mark_paired(&g, T0 + 4).await.unwrap());
        assert!(matches!(
            store.reissue_applet(&g, &[3; 32], &[0xa3; 32], T0 + 5).await.unwrap(),
            Reissue::Refused(r) if r.state == SessionState::Paired
        ));
        // Ended: refused, and nothing is left to download.
        assert!(store.end_session(&g, "done", T0 + 6).await.unwrap());
        assert!(matches!(
            store.reissue_applet(&g, &[3; 32], &[0xa3; 32], T0 + 7).await.unwrap(),
            Reissue::Refused(r) if r.state == SessionState::Ended
        ));
        assert_eq!(store.take_applet_secret(&g).await.unwrap(), None);

        // Expired: refused.
        let late = new(T0 + 10);
        let lg = late.guid;
        store.create_session(late).await.unwrap();
        assert!(matches!(
            store.reissue_applet(&lg, &[3; 32], &[0xa3; 32], T0 + 10).await.unwrap(),
            Reissue::Refused(r) if r.state == SessionState::Created && r.admission_key == Some([0xa1; 32])
        ));
        // A session without an admission key (made before they existed)
        // gets one; its unproven applets are then no longer registered.
        let old = new(T0 + HOUR);
        let og = old.guid;
        store.create_session(old).await.unwrap();
        let mut raw = sqlx::AnyConnection::connect(url).await.unwrap();
        sqlx::query("UPDATE sessions SET admission_key = NULL WHERE guid = $1")
            .bind(og.to_string())
            .execute(&mut raw)
            .await
            .unwrap();
        raw.close().await.unwrap();
        assert!(matches!(
            store.reissue_applet(&og, &[4; 32], &[0xa4; 32], T0 + 1).await.unwrap(),
            Reissue::Reissued(r) if r.admission_key == Some([0xa4; 32])
        ));
        assert!(
            !store
                .mark_waiting_admitted(&og, "n1", "n1:443", "x", None, T0 + 2)
                .await
                .unwrap()
        );
        // Unknown.
        assert!(matches!(
            store
                .reissue_applet(&guid(), &[3; 32], &[0xa3; 32], T0)
                .await,
            Err(StoreError::NotFound(_))
        ));
        store.close().await;
    }

    fn nanos() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    }

    #[tokio::test]
    async fn reissue_on_sqlite() {
        let dir = std::env::temp_dir().join(format!(
            "lifeline-store-reissue-{}-{}",
            std::process::id(),
            nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        sqlx::any::install_default_drivers();
        let url = format!("sqlite:{}?mode=rwc", dir.join("s.db").display());
        reissue_scenario(&url).await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// PostgreSQL at `LIFELINE_TEST_PG` (default the machine's own), a
    /// database of our own, dropped afterwards; an unreachable server
    /// fails the test.
    #[tokio::test]
    async fn reissue_on_postgres() {
        let admin = std::env::var("LIFELINE_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let name = format!("lifeline_store_reissue_{}", nanos());
        let mut conn = sqlx::postgres::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is unreachable: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let (base, query) = admin.split_once('?').unwrap_or((&admin, ""));
        let base = base.rfind('/').map_or(base, |i| &base[..i]);
        let url = if query.is_empty() {
            format!("{base}/{name}")
        } else {
            format!("{base}/{name}?{query}")
        };
        sqlx::any::install_default_drivers();
        let result = tokio::spawn(async move { reissue_scenario(&url).await }).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
        if let Err(panic) = result {
            std::panic::resume_unwind(panic.into_panic());
        }
    }
}

/// One applet's "waiting here" ([`Store::mark_waiting_if`]).
#[derive(Debug)]
pub(crate) struct WaitingMark {
    guid: String,
    since_ms: i64,
    from: String,
    node: String,
    node_addr: String,
    /// `None`: no key check; `""`: the session must have no key; else the
    /// key the applet proved, which may also take the session from
    /// another node.
    key: Option<String>,
}

/// "Waiting here" marks, applied together ([`crate::batched`]): one
/// conditional `UPDATE … FROM` a list of values, which returns the
/// sessions it changed.
pub(crate) struct WaitingMarks;

impl Batch for WaitingMarks {
    type Item = WaitingMark;
    type Out = bool;

    async fn run(pool: &AnyPool, marks: &[WaitingMark]) -> Result<Vec<bool>> {
        let text = Some("TEXT");
        let values =
            batched::value_lists(marks.len(), &[text, Some("BIGINT"), text, text, text, text]);
        // A session already waiting may be taken by its own node, or on any
        // node by an applet that proved its key; `direct`, and `paired`
        // with the relay closed, are resumptions.
        let sql = format!(
            "WITH v(g, since_ms, from_addr, node, node_addr, akey) AS (VALUES {values}) \
             UPDATE sessions SET state = 'waiting', waiting_since_ms = v.since_ms, \
             waiting_from = v.from_addr, waiting_node = v.node, waiting_node_addr = v.node_addr, \
             relay_closed_at_ms = CASE WHEN sessions.state = 'direct' THEN v.since_ms \
             ELSE sessions.relay_closed_at_ms END \
             FROM v \
             WHERE sessions.guid = v.g \
             AND (sessions.state = 'created' \
                  OR (sessions.state = 'waiting' \
                      AND (sessions.waiting_node = v.node OR COALESCE(v.akey, '') <> '')) \
                  OR sessions.state = 'direct' \
                  OR (sessions.state = 'paired' AND sessions.relay_closed_at_ms IS NOT NULL)) \
             AND (v.akey IS NULL OR COALESCE(sessions.admission_key, '') = v.akey) \
             RETURNING sessions.guid AS guid"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for m in marks {
            query = query
                .bind(m.guid.as_str())
                .bind(m.since_ms)
                .bind(m.from.as_str())
                .bind(m.node.as_str())
                .bind(m.node_addr.as_str())
                .bind(m.key.as_deref());
        }
        applied(query, pool, marks.iter().map(|m| m.guid.as_str())).await
    }

    /// One session once per statement: which of two marks wins is then
    /// their order of arrival, as it was one by one.
    fn conflicts(a: &WaitingMark, b: &WaitingMark) -> bool {
        a.guid == b.guid
    }
}

/// Runs a batched conditional update that returns the GUIDs it changed;
/// for each of `guids`, whether it was changed.
async fn applied<'g>(
    query: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
    pool: &AnyPool,
    guids: impl Iterator<Item = &'g str>,
) -> Result<Vec<bool>> {
    let changed: std::collections::HashSet<String> = query
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| get::<String>(row, "guid"))
        .collect::<Result<_>>()?;
    Ok(guids.map(|g| changed.contains(g)).collect())
}

/// One pairing's "paired now" ([`Store::mark_paired`]).
#[derive(Debug)]
pub(crate) struct PairedMark {
    guid: String,
    at_ms: i64,
}

/// "Paired now" marks, applied together ([`crate::batched`]) as
/// [`WaitingMarks`] are: on a busy node a thousand pairings a second are
/// a few statements, not a thousand commits.
pub(crate) struct PairedMarks;

impl Batch for PairedMarks {
    type Item = PairedMark;
    type Out = bool;

    async fn run(pool: &AnyPool, marks: &[PairedMark]) -> Result<Vec<bool>> {
        let values = batched::value_lists(marks.len(), &[Some("TEXT"), Some("BIGINT")]);
        let sql = format!(
            "WITH v(g, at_ms) AS (VALUES {values}) \
             UPDATE sessions SET state = 'paired', paired_at_ms = v.at_ms, path = NULL, \
             relay_closed_at_ms = NULL \
             FROM v WHERE sessions.guid = v.g AND sessions.state = 'waiting' \
             RETURNING sessions.guid AS guid"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for m in marks {
            query = query.bind(m.guid.as_str()).bind(m.at_ms);
        }
        applied(query, pool, marks.iter().map(|m| m.guid.as_str())).await
    }

    /// One session once per statement, as for [`WaitingMarks`].
    fn conflicts(a: &PairedMark, b: &PairedMark) -> bool {
        a.guid == b.guid
    }
}
