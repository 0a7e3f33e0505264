//! Endpoints without login: health and the signed gateway directory.

use super::{Resp, json, store_error};
use crate::server::Gateway;
use http::StatusCode;
use lifeline_protocol::directory::{Directory, SignedDirectory};
use lifeline_protocol::portal::Health;
use std::sync::atomic::Ordering;

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
    let nodes = match gw.directory_nodes().await {
        Ok(n) => n,
        Err(e) => return store_error(e),
    };
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
