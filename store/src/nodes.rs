//! Gateway nodes and their heartbeats.
//!
//! Each node upserts its row periodically; the directory served to applets
//! lists the nodes seen recently. A node's name is its identity across
//! restarts, so its row is updated in place rather than added again.

use crate::rows::get;
use crate::{Result, Store};
use sqlx::any::AnyRow;

/// A gateway node as last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// The node's configured name.
    pub name: String,
    /// Where applets and consoles reach it (host:port).
    pub addr: String,
    /// When its current run started.
    pub started_at_ms: i64,
    /// Its last heartbeat.
    pub last_seen_ms: i64,
}

fn from_row(row: &AnyRow) -> Result<NodeRecord> {
    Ok(NodeRecord {
        name: get(row, "name")?,
        addr: get(row, "addr")?,
        started_at_ms: get(row, "started_at_ms")?,
        last_seen_ms: get(row, "last_seen_ms")?,
    })
}

impl Store {
    /// A node is alive at `addr`. Inserts it (started now) if unknown;
    /// otherwise updates the address and last-seen time, keeping
    /// `started_at_ms`.
    pub async fn heartbeat(&self, name: &str, addr: &str, now_ms: i64) -> Result<()> {
        // ON CONFLICT ... DO UPDATE is understood by SQLite ≥ 3.24 and
        // PostgreSQL alike, and is atomic under concurrent heartbeats.
        sqlx::query(
            "INSERT INTO nodes (name, addr, started_at_ms, last_seen_ms) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (name) DO UPDATE SET addr = excluded.addr, \
             last_seen_ms = excluded.last_seen_ms",
        )
        .bind(name)
        .bind(addr)
        .bind(now_ms)
        .execute(self.writes())
        .await?;
        Ok(())
    }

    /// A node (re)started: like [`Store::heartbeat`], but also resets
    /// `started_at_ms` to `now_ms`.
    pub async fn node_started(&self, name: &str, addr: &str, now_ms: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO nodes (name, addr, started_at_ms, last_seen_ms) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (name) DO UPDATE SET addr = excluded.addr, \
             started_at_ms = excluded.started_at_ms, last_seen_ms = excluded.last_seen_ms",
        )
        .bind(name)
        .bind(addr)
        .bind(now_ms)
        .execute(self.writes())
        .await?;
        Ok(())
    }

    /// Nodes whose last heartbeat is at or after `seen_since_ms`, by name.
    pub async fn live_nodes(&self, seen_since_ms: i64) -> Result<Vec<NodeRecord>> {
        sqlx::query(
            "SELECT name, addr, started_at_ms, last_seen_ms FROM nodes \
             WHERE last_seen_ms >= $1 ORDER BY name",
        )
        .bind(seen_since_ms)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(from_row)
        .collect()
    }

    /// Whether the store answers (a trivial query).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Open sessions by state (every node's), for the metrics.
    pub async fn session_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, COUNT(*) FROM sessions WHERE state <> 'ended' GROUP BY state",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}
