//! Hearing of sessions as they end, on every node of a cluster.
//!
//! On PostgreSQL a trigger (migration 4) sends `NOTIFY
//! lifeline_session_ended, GUID` whenever a session's state becomes
//! `ended`, whichever node or path ended it; each node listens on a
//! connection of its own and tells an applet waiting on it at once. On
//! SQLite the gateway is the only writer and hears its own endings, so
//! there is nothing to watch.

use crate::{Result, SessionGuid, Store, rows};
use sqlx::postgres::PgListener;

/// The notification channel the trigger uses.
const CHANNEL: &str = "lifeline_session_ended";

/// A subscription to session endings (see the module doc).
#[derive(Debug)]
pub struct Endings {
    listener: PgListener,
}

impl Endings {
    /// The next session that ended. After a lost connection the listener
    /// reconnects on its own; endings during the gap are missed (callers
    /// keep a slower check as well).
    pub async fn next(&mut self) -> Result<SessionGuid> {
        loop {
            let n = self.listener.recv().await?;
            match rows::guid("NOTIFY payload", n.payload()) {
                Ok(g) => return Ok(g),
                // Not ours (someone else NOTIFYing on the channel): skip.
                Err(e) => tracing::warn!(error = %e, "ignored a malformed session-ended notice"),
            }
        }
    }
}

impl Store {
    /// Endings as they happen, where another process may end sessions
    /// (PostgreSQL); `None` on SQLite.
    pub async fn watch_endings(&self) -> Result<Option<Endings>> {
        let Some(url) = &self.pg_url else {
            return Ok(None);
        };
        let mut listener = PgListener::connect(&url.0).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(Endings { listener }))
    }
}
