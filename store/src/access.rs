//! What a connection joining a session needs to know of it, read for many
//! arriving connections at once.
//!
//! Every applet that connects, and every console that pairs, first reads
//! its session: whether it can still be joined, the key that checks the
//! applet's admission proof, whose it is. Read one by one, each is a query
//! of its own, and on SQLite a round trip to one of sqlx's worker
//! threads — a thread woken and put back to sleep per connection. Here the
//! reads that queue while one statement runs become the next one
//! (`WHERE guid IN (…)`, through [`crate::batched`]), and each reads only
//! the columns below, with none of the joins of a whole
//! [`crate::SessionRecord`].

use crate::batched::{self, Batch};
use crate::rows::{self, get};
use crate::{Result, SessionGuid, SessionState, Store};
use sqlx::AnyPool;
use std::collections::HashMap;

/// The columns of a session that admitting an applet or a console reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionAccess {
    /// Where it is in its life.
    pub state: SessionState,
    /// Expiry time.
    pub expires_at_ms: i64,
    /// The public key that checks the applet's admission proof; `None` for
    /// sessions created before it existed.
    pub admission_key: Option<[u8; 32]>,
    /// Whose it is (`None` while a channel's session waits to be picked).
    pub technician_id: Option<i64>,
    /// The channel queue's group, for a session that came through one.
    pub queue_group_id: Option<i64>,
    /// SHA-256 of the console certificate's SPKI, once known.
    pub console_pin: Option<[u8; 32]>,
    /// When it was (last) paired.
    pub paired_at_ms: Option<i64>,
}

impl Store {
    /// The [`SessionAccess`] of one session; `None` if there is none.
    /// Made together with the other look-ups that arrive meanwhile.
    pub async fn session_access(&self, guid: &SessionGuid) -> Result<Option<SessionAccess>> {
        batched::call(self.batchers.access.as_ref(), self.pool(), *guid).await
    }
}

/// Session look-ups by GUID, made together ([`crate::batched`]).
pub(crate) struct AccessReads;

impl Batch for AccessReads {
    type Item = SessionGuid;
    type Out = Option<SessionAccess>;

    async fn run(pool: &AnyPool, guids: &[SessionGuid]) -> Result<Vec<Option<SessionAccess>>> {
        let sql = format!(
            "SELECT guid, state, expires_at_ms, admission_key, technician_id, queue_group_id, \
             console_pin, paired_at_ms FROM sessions WHERE guid IN ({})",
            batched::in_list(guids.len())
        );
        // Only placeholders are spliced in; the GUIDs are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for guid in guids {
            query = query.bind(guid.to_string());
        }
        let mut found = HashMap::with_capacity(guids.len());
        for row in query.fetch_all(pool).await? {
            let guid: String = get(&row, "guid")?;
            let state: String = get(&row, "state")?;
            let hash = |column: &str| -> Result<Option<[u8; 32]>> {
                get::<Option<String>>(&row, column)?
                    .map(|text| rows::hash32(&format!("sessions.{column}"), &text))
                    .transpose()
            };
            let access = SessionAccess {
                state: rows::session_state("sessions.state", &state)?,
                expires_at_ms: get(&row, "expires_at_ms")?,
                admission_key: hash("admission_key")?,
                technician_id: get(&row, "technician_id")?,
                queue_group_id: get(&row, "queue_group_id")?,
                console_pin: hash("console_pin")?,
                paired_at_ms: get(&row, "paired_at_ms")?,
            };
            found.insert(rows::guid("sessions.guid", &guid)?, access);
        }
        // The same session asked twice in one batch gets its answer twice.
        Ok(guids.iter().map(|g| found.get(g).cloned()).collect())
    }
}
