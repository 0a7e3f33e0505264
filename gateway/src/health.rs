//! The operator's own window into a node: plain HTTP on a loopback port
//! (`--health-listen`, default 127.0.0.1:9464), apart from the public TLS
//! port.
//!
//! * `GET /healthz` — 200 while the process runs (liveness);
//! * `GET /readyz` — 200 when the node should get traffic: listening, not
//!   draining, its store answering within 2 s; else 503 with the reason;
//! * `GET /health` — the node's [`Health`] as JSON (200 while serving,
//!   503 while draining), for a load balancer on the same host;
//! * `GET /metrics` — [`crate::metrics`] in Prometheus' text format.
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

/// How long a readiness or scrape query may take before the store counts
/// as not answering.
const STORE_DEADLINE: Duration = Duration::from_secs(2);

/// The Prometheus page: the node's values, the store's sessions by state
/// (when it answers in time), and the rest of [`crate::metrics`].
pub async fn metrics(gw: &Gateway) -> String {
    let s = &gw.stats;
    let started = std::time::Instant::now();
    let sessions = match tokio::time::timeout(STORE_DEADLINE, gw.store.session_counts()).await {
        Ok(Ok(rows)) => {
            gw.metrics
                .store_query("sessions_by_state", started.elapsed());
            rows
        }
        _ => Vec::new(),
    };
    let node = crate::metrics::NodeValues {
        connections_open: s.connections.load(Ordering::Relaxed),
        connections_cap: s.connection_cap.load(Ordering::Relaxed),
        applets_waiting: gw.registry.waiting() as u64,
        relays_active: s.relaying.load(Ordering::Relaxed),
        draining: u64::from(gw.draining()),
    };
    let mut out = gw.metrics.render(node, &sessions);
    // The counters kept before the metrics module, in the same page.
    let eof = out.rfind("# EOF").unwrap_or(out.len());
    let mut extra = String::new();
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(extra, "# HELP {name} {help}");
        let _ = writeln!(extra, "# TYPE {name} counter");
        let _ = writeln!(extra, "{name}_total {value}");
    };
    counter(
        "lifeline_connections_shed",
        "Connections closed at once because the public port was at its cap.",
        s.shed.load(Ordering::Relaxed),
    );
    counter(
        "lifeline_password_checks",
        "Password checks (scrypt) run for portal logins, decoys for unknown e-mails included.",
        gw.hasher.checks(),
    );
    counter(
        "lifeline_work_reports",
        "Remote-work reports (consent, files, actions) recorded in the audit trail.",
        s.work_reports.load(Ordering::Relaxed),
    );
    out.insert_str(eof, &extra);
    classic(&out)
}

/// The OpenMetrics page in Prometheus' classic text format (0.0.4), which
/// every Prometheus and `promtool check metrics` read: a counter's HELP and
/// TYPE name its `_total` sample, and there are no `# UNIT` or `# EOF`
/// lines.
fn classic(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match meta {
            Some((tag, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    let _ = writeln!(out, "{tag}{name}_total {tail}");
                } else {
                    let _ = writeln!(out, "{line}");
                }
            }
            None => {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    out
}

/// Whether the node should get traffic: listening, not draining, and its
/// store answering. `Err` says why not.
pub async fn ready(gw: &Gateway) -> Result<(), String> {
    if gw.draining() {
        return Err("draining: the node is shutting down".into());
    }
    let started = std::time::Instant::now();
    match tokio::time::timeout(STORE_DEADLINE, gw.store.ping()).await {
        Ok(Ok(())) => {
            gw.metrics.store_query("ping", started.elapsed());
            Ok(())
        }
        Ok(Err(e)) => Err(format!("the store does not answer: {e}")),
        Err(_) => Err(format!(
            "the store did not answer within {} s",
            STORE_DEADLINE.as_secs()
        )),
    }
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

async fn route(gw: &Gateway, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => respond(StatusCode::OK, "text/plain", b"alive\n".to_vec()),
        (&Method::GET, "/readyz") => match ready(gw).await {
            Ok(()) => respond(StatusCode::OK, "text/plain", b"ready\n".to_vec()),
            Err(why) => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("not ready: {why}\n").into_bytes(),
            ),
        },
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
            "text/plain; version=0.0.4; charset=utf-8",
            metrics(gw).await.into_bytes(),
        ),
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            b"not found: try /healthz, /readyz, /health or /metrics\n".to_vec(),
        ),
    }
}

/// Serves `/healthz`, `/readyz`, `/health` and `/metrics` on `listener`
/// until `stop` completes.
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
                let gw = gw.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&gw, &req).await) }
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
