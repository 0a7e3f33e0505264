//! Store writes (and one read) that arrive together become one statement.
//!
//! Every applet that connects marks its session waiting and writes an
//! audit row, every console that pairs marks its session paired, and on a
//! busy node hundreds arrive in the same few milliseconds. Made one by
//! one, each is a statement and a commit of its own (on SQLite also a
//! round trip to sqlx's worker thread). A
//! [`Batcher`] runs one task per kind of write: it takes everything that
//! queued while its last statement ran (up to [`MAX_BATCH`]) and runs it
//! as one statement ([`Batch::run`]), in arrival order: a group commit. A
//! caller still awaits its own item's result, so nothing is reported
//! written that is not, and audit ids keep the order of arrival. Under
//! light load a batch is one item and costs what it did before, plus a
//! channel hop. One read is made the same way: the session look-up of
//! every arriving applet and console ([`crate::access`]), where the
//! thread hops of one query per connection cost more than the query.
//!
//! If a batch fails, its items are run one at a time, so each caller gets
//! its own item's error and one bad item does not fail the others. Items
//! that [`Batch::conflicts`] says may not share a statement (the same
//! session marked twice) go in the next one.

use crate::{Result, StoreError};
use sqlx::AnyPool;
use std::future::Future;
use tokio::sync::{mpsc, oneshot};

/// Most items in one statement: a few parameters each stays far below
/// both dialects' limits (SQLite 32,766, PostgreSQL 65,535).
pub(crate) const MAX_BATCH: usize = 256;
/// Items that may wait for their batch; further callers wait to queue.
const QUEUE: usize = 4096;

/// `VALUES` lists for `rows` rows of `columns.len()` parameters each,
/// numbered from `$1` row by row: `($1, $2), ($3, $4)`. A column given a
/// type is cast to it (PostgreSQL cannot infer a type in a `VALUES` list
/// used as a table).
pub(crate) fn value_lists(rows: usize, columns: &[Option<&str>]) -> String {
    let mut n = 0;
    let row = |_| {
        let cells: Vec<String> = columns
            .iter()
            .map(|ty| {
                n += 1;
                match ty {
                    Some(ty) => format!("CAST(${n} AS {ty})"),
                    None => format!("${n}"),
                }
            })
            .collect();
        format!("({})", cells.join(", "))
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

/// `$1, $2, …, $n`: the placeholders of an `IN (…)` list of `n` values.
pub(crate) fn in_list(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One kind of store write that can be made for many items at once.
pub(crate) trait Batch: Send + Sync + 'static {
    /// What one caller asks for.
    type Item: Send + Sync + 'static;
    /// What it gets back (a row; whether its conditional update applied).
    type Out: Send + 'static;
    /// Runs `items` as one statement; one output per item, in order.
    fn run(
        pool: &AnyPool,
        items: &[Self::Item],
    ) -> impl Future<Output = Result<Vec<Self::Out>>> + Send;
    /// Whether `a` and `b` may not be in one statement.
    fn conflicts(_a: &Self::Item, _b: &Self::Item) -> bool {
        false
    }
}

struct Pending<B: Batch> {
    item: B::Item,
    done: oneshot::Sender<Result<B::Out>>,
}

/// The queue to one batching task; cloned with the [`crate::Store`].
pub(crate) struct Batcher<B: Batch> {
    queue: mpsc::Sender<Pending<B>>,
}

impl<B: Batch> Clone for Batcher<B> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<B: Batch> std::fmt::Debug for Batcher<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Batcher")
    }
}

impl<B: Batch> Batcher<B> {
    /// Starts the batching task on the current tokio runtime, if any.
    pub(crate) fn start(pool: &AnyPool) -> Option<Self> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (queue, rx) = mpsc::channel(QUEUE);
        runtime.spawn(run_batches::<B>(pool.clone(), rx));
        Some(Self { queue })
    }

    /// Queues `item` and waits for its result. `Err(item)` if the task is
    /// gone (its runtime ended): the caller runs it itself.
    pub(crate) async fn submit(
        &self,
        item: B::Item,
    ) -> std::result::Result<Result<B::Out>, B::Item> {
        let (done, result) = oneshot::channel();
        if let Err(mpsc::error::SendError(p)) = self.queue.send(Pending { item, done }).await {
            return Err(p.item);
        }
        Ok(result
            .await
            .unwrap_or_else(|_| Err(StoreError::Database(sqlx::Error::WorkerCrashed))))
    }
}

/// Runs `item` through `batcher` when there is one, else alone.
pub(crate) async fn call<B: Batch>(
    batcher: Option<&Batcher<B>>,
    pool: &AnyPool,
    item: B::Item,
) -> Result<B::Out> {
    let item = match batcher {
        Some(w) => match w.submit(item).await {
            Ok(result) => return result,
            Err(item) => item,
        },
        None => item,
    };
    single::<B>(pool, &item).await
}

/// One item alone.
async fn single<B: Batch>(pool: &AnyPool, item: &B::Item) -> Result<B::Out> {
    let mut out = B::run(pool, std::slice::from_ref(item)).await?;
    out.pop()
        .ok_or_else(|| StoreError::Corrupt("a store write returned no result".into()))
}

async fn run_batches<B: Batch>(pool: AnyPool, mut rx: mpsc::Receiver<Pending<B>>) {
    let mut queued: Vec<Pending<B>> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut queued, MAX_BATCH).await > 0 {
        let mut rest = std::mem::take(&mut queued).into_iter().peekable();
        while rest.peek().is_some() {
            // The longest run from here with no two conflicting items.
            let mut items = Vec::new();
            let mut dones = Vec::new();
            while let Some(p) = rest.next_if(|p| !items.iter().any(|i| B::conflicts(i, &p.item))) {
                items.push(p.item);
                dones.push(p.done);
            }
            match B::run(&pool, &items).await {
                Ok(outs) if outs.len() == items.len() => {
                    for (done, out) in dones.into_iter().zip(outs) {
                        let _ = done.send(Ok(out));
                    }
                }
                Ok(_) => {
                    for done in dones {
                        let _ = done.send(Err(StoreError::Corrupt(
                            "a batched store write returned the wrong number of results".into(),
                        )));
                    }
                }
                Err(e) if items.len() == 1 => {
                    if let Some(done) = dones.pop() {
                        let _ = done.send(Err(e));
                    }
                }
                Err(_) => {
                    for (item, done) in items.iter().zip(dones) {
                        let _ = done.send(single::<B>(&pool, item).await);
                    }
                }
            }
        }
        queued = Vec::with_capacity(MAX_BATCH);
    }
}
