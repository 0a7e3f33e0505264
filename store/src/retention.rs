//! Retention: deleting ended sessions and audit records older than a
//! cutoff (`gateway admin prune`).
//!
//! Deletion runs in batches of at most [`PRUNE_BATCH`] rows, each its own
//! statement (and so its own short transaction), with a pause between
//! them: on SQLite every write holds the one write lock, and a node's own
//! writes (heartbeats, byte counts, logins) wait for it at most
//! `busy_timeout` (5 s) before failing — a thousand small rows take
//! milliseconds, and the pause lets a waiting writer in between batches.
//! On PostgreSQL a batch bounds the locks held and the WAL of one
//! transaction. Each batch finds its rows through an index
//! (`sessions_ended`, `audit_at`), so a big table is never scanned whole.
//!
//! Only sessions in state `ended` are ever deleted: the condition is part
//! of every `DELETE`, and an ended session never leaves that state.

use crate::{Result, Store};
use std::time::{Duration, Instant};

/// Rows per batch (see the module doc).
pub const PRUNE_BATCH: i64 = 1_000;

/// The least pause between two batches; a batch that took longer is
/// followed by a pause as long as it took, so pruning never holds the
/// write lock more than about half the time.
const PRUNE_PAUSE: Duration = Duration::from_millis(10);

/// How many rows [`Store::prune`] deleted, or [`Store::count_prunable`]
/// found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Ended sessions.
    pub sessions: u64,
    /// Audit records.
    pub audit: u64,
}

impl Store {
    /// How many ended sessions ended before `before_ms`, and how many audit
    /// records were written before it (what [`Store::prune`] would delete).
    pub async fn count_prunable(&self, before_ms: i64) -> Result<Pruned> {
        let sessions: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE state = 'ended' AND ended_at_ms < $1",
        )
        .bind(before_ms)
        .fetch_one(self.pool())
        .await?;
        let audit: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit WHERE at_ms < $1")
            .bind(before_ms)
            .fetch_one(self.pool())
            .await?;
        Ok(Pruned {
            sessions: u64::try_from(sessions).unwrap_or(0),
            audit: u64::try_from(audit).unwrap_or(0),
        })
    }

    /// Deletes the sessions that ended before `before_ms` and the audit
    /// records written before it, in batches of [`PRUNE_BATCH`]. Sessions
    /// that have not ended are never deleted, however old.
    pub async fn prune(&self, before_ms: i64) -> Result<Pruned> {
        self.prune_in_batches(before_ms, PRUNE_BATCH).await
    }

    /// [`Store::prune`] with batches of `batch` rows.
    pub(crate) async fn prune_in_batches(&self, before_ms: i64, batch: i64) -> Result<Pruned> {
        let batch = batch.max(1);
        let mut pruned = Pruned::default();
        for (sql, count) in [
            (
                "DELETE FROM sessions WHERE guid IN (SELECT guid FROM sessions \
                 WHERE state = 'ended' AND ended_at_ms < $1 LIMIT $2)",
                &mut pruned.sessions,
            ),
            (
                "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at_ms < $1 LIMIT $2)",
                &mut pruned.audit,
            ),
        ] {
            loop {
                let started = Instant::now();
                let n = sqlx::query(sql)
                    .bind(before_ms)
                    .bind(batch)
                    .execute(self.writes())
                    .await?
                    .rows_affected();
                *count += n;
                if n < u64::try_from(batch).unwrap_or(u64::MAX) {
                    break;
                }
                tokio::time::sleep(started.elapsed().max(PRUNE_PAUSE)).await;
            }
        }
        Ok(pruned)
    }
}
