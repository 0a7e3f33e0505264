//! Channels and their group queues.
//!
//! A channel is a stable web address (`/c/TOKEN`) that an operator puts on
//! a support page. Each visit creates a session with no technician: it
//! waits in the channel's group queue until a technician of that group
//! picks it. Picking is one conditional `UPDATE ... WHERE technician_id IS
//! NULL`, so when two consoles (on one node or two sharing PostgreSQL)
//! race for the same end user, the database lets exactly one win; the
//! loser is told and, for "the next one", simply tries the next.

use crate::error::conflict_on_unique;
use crate::rows::get;
use crate::sessions::{from_row, session_select};
use crate::{Permissions, Result, SessionGuid, SessionRecord, Store, StoreError};
use lifeline_protocol::hex;
use sqlx::any::AnyRow;

/// A channel as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// Its name (what the operator calls it; shown to technicians).
    pub name: String,
    /// The group whose queue its sessions join.
    pub group: String,
    /// The group's id.
    pub group_id: i64,
    /// What sessions of the group may do.
    pub permissions: Permissions,
    /// The path component of its address (`/c/TOKEN`): public, stable.
    pub token: String,
    /// Whether its page asks the end user for a name and a problem.
    pub ask_details: bool,
    /// When it was added.
    pub created_at_ms: i64,
}

/// What the web page supplies to create a channel's session.
#[derive(Debug, Clone)]
pub struct NewChannelSession {
    /// The session's random GUID.
    pub guid: SessionGuid,
    /// The channel's token.
    pub channel_token: String,
    /// The name the end user gave (`""` for none).
    pub name: String,
    /// What the end user wrote about the problem (`""` for none).
    pub problem: String,
    /// The secret the applet proves (kept only until the download).
    pub applet_secret: [u8; 32],
    /// Its public half, checked at the gateway.
    pub admission_key: [u8; 32],
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// Expiry, Unix milliseconds.
    pub expires_at_ms: i64,
}

/// What [`Store::pick_session`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// The session is now the technician's, with their console's key.
    Picked(Box<SessionRecord>),
    /// Another technician picked it first.
    Taken,
    /// It is not in the technician's group queue (no such session, or
    /// another group's), or it no longer waits (ended, expired, or its
    /// end user left).
    NotInQueue,
}

macro_rules! channel_select {
    () => {
        "SELECT c.name, g.name AS group_name, c.group_id, g.permissions, c.token, \
         c.ask_details, c.created_at_ms FROM channels c JOIN groups g ON g.id = c.group_id"
    };
}

fn channel_from(row: &AnyRow) -> Result<Channel> {
    Ok(Channel {
        name: get(row, "name")?,
        group: get(row, "group_name")?,
        group_id: get(row, "group_id")?,
        permissions: crate::rows::permissions("groups.permissions", get(row, "permissions")?)?,
        token: get(row, "token")?,
        ask_details: crate::rows::flag("channels.ask_details", get(row, "ask_details")?)?,
        created_at_ms: get(row, "created_at_ms")?,
    })
}

/// The `WHERE` that holds a group's queue: channel sessions nobody has
/// picked whose end user is connected and waiting, not expired (`$1` the
/// group, `$2` now).
macro_rules! in_queue {
    () => {
        " WHERE s.queue_group_id = $1 AND s.technician_id IS NULL AND s.state = 'waiting' \
         AND s.expires_at_ms > $2"
    };
}

impl Store {
    /// Adds a channel into `group`'s queue with the given public token.
    /// [`StoreError::NotFound`] if the group does not exist,
    /// [`StoreError::Conflict`] if the name is taken.
    pub async fn add_channel(
        &self,
        name: &str,
        group: &str,
        token: &str,
        ask_details: bool,
        now_ms: i64,
    ) -> Result<Channel> {
        let mut tx = self.begin_write().await?;
        let group_id: Option<i64> = sqlx::query_scalar("SELECT id FROM groups WHERE name = $1")
            .bind(group)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(group_id) = group_id else {
            return Err(StoreError::NotFound(format!(
                "there is no group named {group:?}"
            )));
        };
        sqlx::query(
            "INSERT INTO channels (name, group_id, token, ask_details, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(name)
        .bind(group_id)
        .bind(token)
        .bind(i64::from(ask_details))
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            conflict_on_unique(e, || format!("a channel named {name:?} already exists"))
        })?;
        let row = sqlx::query(concat!(channel_select!(), " WHERE c.name = $1"))
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        let channel = channel_from(&row)?;
        tx.commit().await?;
        Ok(channel)
    }

    /// Every channel, by name.
    pub async fn channels(&self) -> Result<Vec<Channel>> {
        sqlx::query(concat!(channel_select!(), " ORDER BY c.name"))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(channel_from)
            .collect()
    }

    /// The channel with this token.
    pub async fn channel_by_token(&self, token: &str) -> Result<Option<Channel>> {
        sqlx::query(concat!(channel_select!(), " WHERE c.token = $1"))
            .bind(token)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(channel_from)
            .transpose()
    }

    /// Removes a channel: its address stops working; sessions it created
    /// stay in the queue until picked or expired. `false` if there was none.
    pub async fn remove_channel(&self, name: &str) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM channels WHERE name = $1")
            .bind(name)
            .execute(self.writes())
            .await?
            .rows_affected()
            > 0)
    }

    /// Creates a session for a visit to a channel's page: no technician
    /// yet, in the channel's group queue once its applet connects. Its
    /// applet is downloaded in the same visit (`downloaded`); the applet
    /// secret stays until a technician picks the session, whose console
    /// needs it ([`Store::take_applet_secret`] after the pick).
    /// [`StoreError::NotFound`] if the channel is gone.
    pub async fn create_channel_session(&self, s: NewChannelSession) -> Result<SessionRecord> {
        let mut tx = self.begin_write().await?;
        let channel = sqlx::query(concat!(channel_select!(), " WHERE c.token = $1"))
            .bind(&s.channel_token)
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(channel_from)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound("there is no such channel".into()))?;
        let guid = s.guid.to_string();
        sqlx::query(
            "INSERT INTO sessions (guid, label, applet_secret, downloaded, permissions, state, \
             created_at_ms, expires_at_ms, bytes_applet_to_console, bytes_console_to_applet, \
             admission_key, queue_group_id, channel, problem) \
             VALUES ($1, $2, $3, 1, $4, 'created', $5, $6, 0, 0, $7, $8, $9, $10)",
        )
        .bind(&guid)
        .bind(&s.name)
        .bind(hex::encode(&s.applet_secret))
        .bind(i64::from(channel.permissions.bits()))
        .bind(s.created_at_ms)
        .bind(s.expires_at_ms)
        .bind(hex::encode(&s.admission_key))
        .bind(channel.group_id)
        .bind(&channel.name)
        .bind(&s.problem)
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

    /// A group's queue: the sessions waiting to be picked, oldest waiting
    /// first.
    pub async fn group_queue(&self, group_id: i64, now_ms: i64) -> Result<Vec<SessionRecord>> {
        sqlx::query(concat!(
            session_select!(),
            in_queue!(),
            " ORDER BY s.waiting_since_ms, s.guid"
        ))
        .bind(group_id)
        .bind(now_ms)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(from_row)
        .collect()
    }

    /// Picks a session from `group_id`'s queue for a technician whose
    /// console will prove `console_pin`. Atomic: of any number of racing
    /// picks, on any nodes, one wins.
    pub async fn pick_session(
        &self,
        guid: &SessionGuid,
        technician_id: i64,
        group_id: i64,
        console_pin: &[u8; 32],
        now_ms: i64,
    ) -> Result<Pick> {
        let won = sqlx::query(
            "UPDATE sessions SET technician_id = $3, console_pin = $4 \
             WHERE guid = $1 AND queue_group_id = $2 AND technician_id IS NULL \
             AND state = 'waiting' AND expires_at_ms > $5",
        )
        .bind(guid.to_string())
        .bind(group_id)
        .bind(technician_id)
        .bind(hex::encode(console_pin))
        .bind(now_ms)
        .execute(self.writes())
        .await?
        .rows_affected()
            > 0;
        let now = self.session(guid).await?;
        Ok(match now {
            Some(r) if won => Pick::Picked(Box::new(r)),
            Some(r) if r.queue_group_id == Some(group_id) && r.technician_id.is_some() => {
                Pick::Taken
            }
            _ => Pick::NotInQueue,
        })
    }

    /// Picks the session that has waited longest in `group_id`'s queue;
    /// `None` when the queue is empty. A session another console takes
    /// between the look and the pick is skipped for the next.
    pub async fn pick_next(
        &self,
        technician_id: i64,
        group_id: i64,
        console_pin: &[u8; 32],
        now_ms: i64,
    ) -> Result<Option<SessionRecord>> {
        // Bounded: a queue emptied by other consoles faster than this one
        // can pick is answered "empty" rather than chased for ever.
        for _ in 0..16 {
            let candidates: Vec<String> = sqlx::query_scalar(concat!(
                "SELECT s.guid FROM sessions s",
                in_queue!(),
                " ORDER BY s.waiting_since_ms, s.guid LIMIT 8"
            ))
            .bind(group_id)
            .bind(now_ms)
            .fetch_all(self.pool())
            .await?;
            if candidates.is_empty() {
                return Ok(None);
            }
            for guid in candidates {
                let guid = crate::rows::guid("sessions.guid", &guid)?;
                if let Pick::Picked(r) = self
                    .pick_session(&guid, technician_id, group_id, console_pin, now_ms)
                    .await?
                {
                    return Ok(Some(*r));
                }
            }
        }
        Ok(None)
    }
}
