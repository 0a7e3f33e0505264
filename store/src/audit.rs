//! The audit trail: an append-only list of what happened, optionally tied
//! to a session (created, waiting, paired, transport changes, consent
//! decisions, files, commands, how it ended, bytes relayed).
//!
//! Rows are never updated, and deleted only by retention
//! ([`Store::prune`]: those older than the operator's cutoff). Order is by
//! id, which both dialects assign increasingly per insert, so entries
//! written in the same millisecond keep their order.

use crate::batched::{self, Batch};
use crate::rows::{self, get};
use crate::{Result, SessionGuid, Store};
use sqlx::AnyPool;
use sqlx::any::AnyRow;

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Increasing id.
    pub id: i64,
    /// When it happened.
    pub at_ms: i64,
    /// The session it concerns, if any.
    pub session: Option<SessionGuid>,
    /// Who did it (a technician e-mail, "applet", "node:NAME", ...).
    pub actor: String,
    /// What kind of thing happened (a short machine-readable word).
    pub event: String,
    /// Free text for humans.
    pub detail: String,
}

fn from_row(row: &AnyRow) -> Result<AuditRecord> {
    let session: Option<String> = get(row, "session_guid")?;
    Ok(AuditRecord {
        id: get(row, "id")?,
        at_ms: get(row, "at_ms")?,
        session: session
            .map(|s| rows::guid("audit.session_guid", &s))
            .transpose()?,
        actor: get(row, "actor")?,
        event: get(row, "event")?,
        detail: get(row, "detail")?,
    })
}

impl Store {
    /// Appends an entry (through the audit trail's group commit when the
    /// store runs on a tokio runtime); returns once it is committed.
    pub async fn audit(
        &self,
        at_ms: i64,
        session: Option<&SessionGuid>,
        actor: &str,
        event: &str,
        detail: &str,
    ) -> Result<()> {
        let row = Row {
            at_ms,
            session: session.map(ToString::to_string),
            actor: actor.to_owned(),
            event: event.to_owned(),
            detail: detail.to_owned(),
        };
        batched::call(self.batchers.audit.as_ref(), self.writes(), row).await
    }

    /// Appends an entry about `session` unless that session already has
    /// `max` entries whose event is one of `counted`; whether it was
    /// appended. The count and the insert are one statement, so reports
    /// racing at the limit overshoot it by at most their number (on
    /// PostgreSQL; SQLite writes one at a time).
    #[allow(clippy::too_many_arguments)]
    pub async fn audit_capped(
        &self,
        at_ms: i64,
        session: &SessionGuid,
        actor: &str,
        event: &str,
        detail: &str,
        counted: &[&str],
        max: u64,
    ) -> Result<bool> {
        let events = (0..counted.len())
            .map(|i| format!("${}", i + 7))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO audit (at_ms, session_guid, actor, event, detail) \
             SELECT $1, $2, $3, $4, $5 \
             WHERE $6 > (SELECT COUNT(*) FROM audit WHERE session_guid = $2 AND event IN ({events}))"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(at_ms)
            .bind(session.to_string())
            .bind(actor)
            .bind(event)
            .bind(detail)
            .bind(i64::try_from(max).unwrap_or(i64::MAX));
        for e in counted {
            query = query.bind(*e);
        }
        Ok(query.execute(self.writes()).await?.rows_affected() == 1)
    }

    /// The most recent `limit` entries (of one session, or of all), oldest
    /// first. A `limit` of zero or less yields nothing.
    pub async fn audit_log(
        &self,
        session: Option<&SessionGuid>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>> {
        // Newest first with LIMIT picks the right window; reversing in Rust
        // is simpler than a portable ordered subquery.
        let limit = limit.max(0);
        let query = match session {
            Some(guid) => sqlx::query(
                "SELECT id, at_ms, session_guid, actor, event, detail FROM audit \
                 WHERE session_guid = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(guid.to_string()),
            None => sqlx::query(
                "SELECT id, at_ms, session_guid, actor, event, detail FROM audit \
                 ORDER BY id DESC LIMIT $1",
            ),
        };
        let mut entries = query
            .bind(limit)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(from_row)
            .collect::<Result<Vec<_>>>()?;
        entries.reverse();
        Ok(entries)
    }
}

/// One audit row, as bound.
#[derive(Debug)]
pub(crate) struct Row {
    at_ms: i64,
    session: Option<String>,
    actor: String,
    event: String,
    detail: String,
}

/// Audit rows, inserted together ([`crate::batched`]).
pub(crate) struct AuditRows;

impl Batch for AuditRows {
    type Item = Row;
    type Out = ();

    /// One `INSERT` of `rows`, in their order.
    async fn run(pool: &AnyPool, rows: &[Row]) -> Result<Vec<()>> {
        let values = batched::value_lists(rows.len(), &[None; 5]);
        let sql = format!(
            "INSERT INTO audit (at_ms, session_guid, actor, event, detail) VALUES {values}"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in rows {
            query = query
                .bind(r.at_ms)
                .bind(r.session.as_deref())
                .bind(r.actor.as_str())
                .bind(r.event.as_str())
                .bind(r.detail.as_str());
        }
        query.execute(pool).await?;
        Ok(vec![(); rows.len()])
    }
}
