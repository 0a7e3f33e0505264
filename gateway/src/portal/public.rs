//! Endpoints without login: health and the signed gateway directory.

use super::{Resp, json, store_error};
use crate::server::Gateway;
use http::StatusCode;
use lifeline_protocol::directory::{Directory, DirectoryNode, MAX_NODES, SignedDirectory};
use lifeline_protocol::portal::Health;
use std::sync::atomic::Ordering;

/// Nodes seen within this window are listed in the directory.
pub const NODE_LIVENESS_MS: i64 = 3 * crate::server::HEARTBEAT.as_millis() as i64;

pub(super) fn health(gw: &Gateway) -> Resp {
    json(
        StatusCode::OK,
        &Health {
            node: gw.node_name.clone(),
            status: if gw.draining() { "draining" } else { "ok" }.into(),
            waiting: gw.registry.waiting() as u64,
            relaying: gw.stats.relaying.load(Ordering::Relaxed),
        },
    )
}

pub(super) async fn directory(gw: &Gateway) -> Resp {
    let now = lifeline_session::now_ms();
    let live = match gw.store.live_nodes(now - NODE_LIVENESS_MS).await {
        Ok(n) => n,
        Err(e) => return store_error(e),
    };
    // This node first (the applet measures them all anyway), then the rest.
    let mut nodes = vec![DirectoryNode {
        name: gw.node_name.clone(),
        addr: gw.advertise.clone(),
    }];
    nodes.extend(
        live.into_iter()
            .filter(|n| n.name != gw.node_name)
            .map(|n| DirectoryNode {
                name: n.name,
                addr: n.addr,
            }),
    );
    nodes.truncate(MAX_NODES);
    let dir = Directory {
        operator: gw.identity.operator_name.clone(),
        issued_at_ms: now,
        nodes,
    };
    json(
        StatusCode::OK,
        &SignedDirectory::sign(&dir, |m| gw.identity.sign(m)),
    )
}
