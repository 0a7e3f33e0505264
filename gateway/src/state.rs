//! The node's shared state: what every connection task reads — the
//! settings, the identity, the store, the limits, the registry of who is
//! connected, the counters — and the shutdown phase.
//!
//! It lives apart from [`crate::server`] (which builds it and runs the
//! accept loop) so that the relay and the portal depend on the state, not
//! on the server that dispatches to them.

use crate::config::Config;
use crate::datadir::NodeIdentity;
use crate::limits::{Budgets, ConnLimiter};
use crate::refusals::RefusalLog;
use crate::registry::Registry;
use lifeline_protocol::SessionGuid;
use lifeline_protocol::directory::{DirectoryNode, MAX_NODES};
use lifeline_store::Store;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// A client's TLS stream on this node.
pub type ServerStream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// How often the node refreshes its heartbeat in the store.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// Nodes seen within this window are listed in the directory.
pub const NODE_LIVENESS_MS: i64 = 3 * HEARTBEAT.as_millis() as i64;

/// Live counters for health and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Sessions currently relayed.
    pub relaying: AtomicU64,
    /// Connections currently open on the public port.
    pub connections: AtomicU64,
    /// The public port's connection cap.
    pub connection_cap: AtomicU64,
    /// Connections closed at once because the cap was reached.
    pub shed: AtomicU64,
    /// The most connections open at once since memory was last released.
    pub peak_connections: AtomicU64,
    /// Remote-work reports recorded in the audit trail.
    pub work_reports: AtomicU64,
}

/// Sessions this node found at their cap of work records
/// ([`lifeline_protocol::portal::MAX_WORK_RECORDS`]): a report for one is
/// refused without asking the store, and each is logged once. Records are
/// never deleted, so a full session stays full; the set forgets everything
/// when it reaches [`WorkCapped::MAX`] sessions (then a session costs one
/// more count and one more log line).
#[derive(Debug, Default)]
pub struct WorkCapped(Mutex<HashSet<SessionGuid>>);

impl WorkCapped {
    /// Sessions remembered at most.
    pub const MAX: usize = 10_000;

    /// Whether `guid` is known to be full.
    pub fn contains(&self, guid: &SessionGuid) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(guid)
    }

    /// Notes that `guid` is full; true the first time (log it then).
    pub fn insert(&self, guid: SessionGuid) -> bool {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if set.len() >= Self::MAX {
            set.clear();
        }
        set.insert(guid)
    }
}

/// Counts one open connection on the public port while it lives (and is
/// handed along with the connection when a relay takes it over).
#[derive(Debug)]
pub struct Open(pub(crate) Arc<Gateway>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.stats.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Shutdown phases, broadcast to every task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Normal operation.
    Running,
    /// No new connections; waiting applets are released; relays finish.
    Draining,
}

/// Everything a connection task needs.
#[derive(Debug)]
pub struct Gateway {
    /// Settings.
    pub config: Config,
    /// Operator keys and node certificate.
    pub identity: NodeIdentity,
    /// This node's name.
    pub node_name: String,
    /// `host:port` clients use to reach this node.
    pub advertise: String,
    /// `host:port` of this node's STUN server as paired ends are told
    /// (the advertised host with the bound STUN port), or empty when the
    /// node runs none.
    pub stun: String,
    /// The store.
    pub store: Store,
    /// Connections per source.
    pub conns: Arc<ConnLimiter>,
    /// Failed attempts per source, per kind.
    pub budgets: Budgets,
    /// Relay refusals, logged once per reason per minute.
    pub refusals: RefusalLog,
    /// Password hashing pool with its bounded queue.
    pub hasher: crate::auth::PasswordHasher,
    /// Who is connected for which session.
    pub registry: Arc<Registry>,
    /// Counters.
    pub stats: Stats,
    /// The Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
    /// Sessions at their cap of work records.
    pub work_capped: WorkCapped,
    /// Shutdown phase.
    pub phase: watch::Receiver<Phase>,
    /// Turns true when relays must stop (drain timeout passed).
    pub stop_relays: watch::Receiver<bool>,
}

impl Gateway {
    /// Nodes for the directory: this one first, then every other node
    /// whose heartbeat is fresh. Applets race the first few, so order
    /// matters little; listing this node first keeps single-node setups
    /// independent of the heartbeat timing.
    pub async fn directory_nodes(&self) -> Result<Vec<DirectoryNode>, lifeline_store::StoreError> {
        let now = lifeline_protocol::time::now_ms();
        let live = self.store.live_nodes(now - NODE_LIVENESS_MS).await?;
        let mut nodes = vec![DirectoryNode {
            name: self.node_name.clone(),
            addr: self.advertise.clone(),
        }];
        nodes.extend(
            live.into_iter()
                .filter(|n| n.name != self.node_name)
                .map(|n| DirectoryNode {
                    name: n.name,
                    addr: n.addr,
                }),
        );
        nodes.truncate(MAX_NODES);
        Ok(nodes)
    }

    /// Whether the node is draining.
    pub fn draining(&self) -> bool {
        *self.phase.borrow() == Phase::Draining
    }
}
