//! Where many sessions stand at once, for a node's periodic check of the
//! applets waiting on it.
//!
//! A node must notice when a session one of its applets waits for has
//! ended behind its back (a lost notice) or moved to another node (a copy
//! of the applet proved itself there). Asked per applet, that is a query
//! per waiting applet per check: 4,000 a second for 100,000 applets every
//! 25 s. Asked here, it is one statement for all of them
//! ([`Store::waiting_on`], an index scan), and one per
//! [`PLACES_PER_STATEMENT`] of the few that are no longer waiting there
//! ([`Store::places`]).

use crate::rows::{self, get};
use crate::{Result, SessionGuid, SessionState, Store};
use std::collections::HashSet;

/// GUIDs per statement: far below both dialects' parameter limits.
pub const PLACES_PER_STATEMENT: usize = 500;

/// A session's state and the node it waits on (if it waits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// Its GUID.
    pub guid: SessionGuid,
    /// Its state.
    pub state: SessionState,
    /// The node its applet waits on, while it waits (or was relayed by).
    pub waiting_node: Option<String>,
}

impl Store {
    /// The sessions that wait on `node`.
    pub async fn waiting_on(&self, node: &str) -> Result<HashSet<SessionGuid>> {
        let guids: Vec<String> = sqlx::query_scalar(
            "SELECT guid FROM sessions WHERE waiting_node = $1 AND state = 'waiting'",
        )
        .bind(node)
        .fetch_all(self.pool())
        .await?;
        guids
            .iter()
            .map(|g| rows::guid("sessions.guid", g))
            .collect()
    }

    /// The [`Place`] of each of `guids` that exists, in no order; one
    /// statement per [`PLACES_PER_STATEMENT`] GUIDs.
    pub async fn places(&self, guids: &[SessionGuid]) -> Result<Vec<Place>> {
        let mut out = Vec::with_capacity(guids.len());
        for chunk in guids.chunks(PLACES_PER_STATEMENT) {
            let sql = format!(
                "SELECT guid, state, waiting_node FROM sessions WHERE guid IN ({})",
                crate::batched::in_list(chunk.len())
            );
            // Only placeholders are spliced in; the GUIDs are bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for guid in chunk {
                query = query.bind(guid.to_string());
            }
            for row in query.fetch_all(self.pool()).await? {
                let guid: String = get(&row, "guid")?;
                let state: String = get(&row, "state")?;
                out.push(Place {
                    guid: rows::guid("sessions.guid", &guid)?,
                    state: rows::session_state("sessions.state", &state)?,
                    waiting_node: get(&row, "waiting_node")?,
                });
            }
        }
        Ok(out)
    }
}
