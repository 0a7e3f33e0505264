//! The operator's own window into a node: plain HTTP on a loopback port
//! (`--health-listen`, default 127.0.0.1:9464), apart from the public TLS
//! port.
//!
//! * `GET /health` — the node's [`Health`] as JSON (200 while serving,
//!   503 while draining), for a load balancer or systemd watchdog on the
//!   same host;
//! * `GET /metrics` — the same counters and a few more in Prometheus text
//!   format.
//!
//! It is a separate listener so that it keeps answering when the public
//! port is flooded: the public port stops taking connections at its cap
//! ([`crate::server::connection_cap`]), which leaves file descriptors in
//! reserve for this one, and this one takes at most [`MAX_CONNECTIONS`]
//! at a time, each for at most [`CONNECTION_TIMEOUT`].

use crate::state::Gateway;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use lifeline_protocol::portal::Health;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Longest life of one connection.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// The node's health, as `/health` and the portal's `/api/v1/health` say it.
pub fn health(gw: &Gateway) -> Health {
    Health {
        node: gw.node_name.clone(),
        status: if gw.draining() { "draining" } else { "ok" }.into(),
        waiting: gw.registry.waiting() as u64,
        relaying: gw.stats.relaying.load(Ordering::Relaxed),
    }
}

/// Prometheus text exposition of the node's counters.
pub fn metrics(gw: &Gateway) -> String {
    let s = &gw.stats;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    metric(
        "lifeline_connections_open",
        "gauge",
        "Connections open on the public port (handshaking, waiting, relaying, portal).",
        s.connections.load(Ordering::Relaxed),
    );
    metric(
        "lifeline_connections_cap",
        "gauge",
        "Connections the public port takes at most (the open-file limit less a reserve).",
        s.connection_cap.load(Ordering::Relaxed),
    );
    metric(
        "lifeline_connections_shed_total",
        "counter",
        "Connections closed at once because the public port was at its cap.",
        s.shed.load(Ordering::Relaxed),
    );
    metric(
        "lifeline_applets_waiting",
        "gauge",
        "Applets waiting for their technician on this node.",
        gw.registry.waiting() as u64,
    );
    metric(
        "lifeline_relays_active",
        "gauge",
        "Sessions this node relays now.",
        s.relaying.load(Ordering::Relaxed),
    );
    metric(
        "lifeline_password_checks_total",
        "counter",
        "Password checks (scrypt) run for portal logins, decoys for unknown e-mails included.",
        gw.hasher.checks(),
    );
    metric(
        "lifeline_work_reports_total",
        "counter",
        "Remote-work reports (consent, files, actions) recorded in the audit trail.",
        s.work_reports.load(Ordering::Relaxed),
    );
    metric(
        "lifeline_draining",
        "gauge",
        "1 while the node shuts down and drains.",
        u64::from(gw.draining()),
    );
    out
}

fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

fn route(gw: &Gateway, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") => {
            let h = health(gw);
            let status = if gw.draining() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            respond(
                status,
                "application/json",
                serde_json::to_vec(&h).unwrap_or_default(),
            )
        }
        (&Method::GET, "/metrics") => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics(gw).into_bytes(),
        ),
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            b"not found: try /health or /metrics\n".to_vec(),
        ),
    }
}

/// Serves `/health` and `/metrics` on `listener` until `stop` completes.
pub async fn serve(gw: Arc<Gateway>, listener: TcpListener, stop: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(error = %e, "health accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let gw = gw.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let r = route(&gw, &req);
                async move { Ok::<_, std::convert::Infallible>(r) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(CONNECTION_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service);
            if let Ok(Err(e)) = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await {
                tracing::debug!(%peer, error = %e, "health connection error");
            }
            drop(slot);
        });
    }
}
