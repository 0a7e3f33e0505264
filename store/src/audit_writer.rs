//! Group commit for the audit trail.
//!
//! Every applet that connects, every pairing and every ending writes an
//! audit row, and on a busy node they arrive together. Written one by one,
//! each is a statement of its own (on SQLite: a trip to sqlx's worker
//! thread and a commit each). Here one task writes them: it takes every
//! row that queued while the last insert ran (up to [`MAX_BATCH`]) and
//! inserts them with one statement, in the order they came. A caller still
//! awaits its own row's commit, so nothing is reported written that is
//! not, and ids keep the order of arrival. Under light load a batch is one
//! row and costs what it did before, plus a channel hop.
//!
//! If a batch fails, its rows are written one at a time, so each caller
//! gets its own row's error and one bad row does not fail the others.

use crate::{Result, StoreError};
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

/// Most rows in one insert: 5 parameters each stays far below both
/// dialects' limits, and a batch stays a short statement.
pub(crate) const MAX_BATCH: usize = 256;
/// Rows that may wait for the writer; further callers wait to queue.
const QUEUE: usize = 4096;

/// One audit row, as bound.
#[derive(Debug)]
pub(crate) struct Row {
    pub at_ms: i64,
    pub session: Option<String>,
    pub actor: String,
    pub event: String,
    pub detail: String,
}

#[derive(Debug)]
struct Pending {
    row: Row,
    done: oneshot::Sender<Result<()>>,
}

/// The queue to the writer task; cloned with the [`crate::Store`].
#[derive(Debug, Clone)]
pub(crate) struct AuditWriter {
    queue: mpsc::Sender<Pending>,
}

impl AuditWriter {
    /// Starts the writer on the current tokio runtime, if there is one.
    pub(crate) fn start(pool: &AnyPool) -> Option<Self> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (queue, rx) = mpsc::channel(QUEUE);
        runtime.spawn(write_batches(pool.clone(), rx));
        Some(Self { queue })
    }

    /// Queues `row` and waits for its commit. `Err(row)` if the writer is
    /// gone (its runtime ended): the caller writes the row itself.
    pub(crate) async fn write(&self, row: Row) -> std::result::Result<Result<()>, Row> {
        let (done, committed) = oneshot::channel();
        if let Err(mpsc::error::SendError(p)) = self.queue.send(Pending { row, done }).await {
            return Err(p.row);
        }
        Ok(committed
            .await
            .unwrap_or_else(|_| Err(StoreError::Database(sqlx::Error::WorkerCrashed))))
    }
}

async fn write_batches(pool: AnyPool, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let rows: Vec<&Row> = batch.iter().map(|p| &p.row).collect();
        match insert(&pool, &rows).await {
            Ok(()) => {
                for p in batch.drain(..) {
                    let _ = p.done.send(Ok(()));
                }
            }
            Err(_) if batch.len() > 1 => {
                for p in batch.drain(..) {
                    let r = insert(&pool, &[&p.row]).await;
                    let _ = p.done.send(r);
                }
            }
            Err(e) => {
                if let Some(p) = batch.pop() {
                    let _ = p.done.send(Err(e));
                }
            }
        }
    }
}

/// One `INSERT` of `rows`, in their order.
pub(crate) async fn insert(pool: &AnyPool, rows: &[&Row]) -> Result<()> {
    let values = (0..rows.len())
        .map(|i| {
            let p = i * 5;
            format!(
                "(${}, ${}, ${}, ${}, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql =
        format!("INSERT INTO audit (at_ms, session_guid, actor, event, detail) VALUES {values}");
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
    Ok(())
}
