//! Endpoints without login: health and the signed gateway directory.

use super::{Resp, json, store_error};
use crate::state::Gateway;
use http::StatusCode;
use lifeline_protocol::directory::{Directory, SignedDirectory};

pub(super) fn health(gw: &Gateway) -> Resp {
    json(StatusCode::OK, &crate::health::health(gw))
}

pub(super) async fn directory(gw: &Gateway) -> Resp {
    let now = lifeline_protocol::time::now_ms();
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
