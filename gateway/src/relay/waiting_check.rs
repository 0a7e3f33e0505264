//! The node's check of its waiting applets against the store.
//!
//! Endings reach a waiting applet at once: a node hears its own, and on
//! PostgreSQL every node hears all of them by NOTIFY. But a notice can be
//! missed (a lost listening connection, a session ended by the admin
//! command beside a running gateway), and a session can move: a copy of
//! its applet that proved itself on another node takes it there
//! (`Store::mark_waiting_admitted`), and the connection here is then a
//! stale one. Every [`CHECK_EVERY`] this asks the store which sessions
//! wait on this node — one statement, not one per applet — then where
//! the few others of its admitted waiting applets stand, and lets go of
//! those whose session ended or now waits on another node.

use crate::registry::Eviction;
use crate::state::Gateway;
use lifeline_store::SessionState;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};

/// How often the node checks; a moved session's old connection is let go
/// within this.
pub const CHECK_EVERY: Duration = Duration::from_secs(10);

/// Checks every [`CHECK_EVERY`], for as long as the node runs.
pub async fn run(gw: Arc<Gateway>) {
    let mut tick = tokio::time::interval_at(Instant::now() + CHECK_EVERY, CHECK_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        check(&gw).await;
    }
}

/// One check. Each applet let go logs why, as its waiting ends.
async fn check(gw: &Gateway) {
    // Taken before asking: a claim made or admitted after this is not
    // judged by an answer that may predate it.
    let asked: HashMap<_, _> = gw.registry.admitted_waiting().into_iter().collect();
    if asked.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    let places = async {
        let here = gw.store.waiting_on(&gw.node_name).await?;
        let others: Vec<_> = asked
            .keys()
            .filter(|g| !here.contains(g))
            .copied()
            .collect();
        gw.store.places(&others).await
    };
    let places = match places.await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "checking the waiting applets against the store failed");
            return;
        }
    };
    gw.metrics.store_query("waiting_check", started.elapsed());
    for place in places {
        let why = match place.state {
            SessionState::Ended => Eviction::Ended,
            SessionState::Waiting if place.waiting_node.as_deref() != Some(&gw.node_name) => {
                Eviction::Replaced
            }
            _ => continue,
        };
        if let Some(&generation) = asked.get(&place.guid) {
            gw.registry.evict(&place.guid, Some(generation), why);
        }
    }
}
