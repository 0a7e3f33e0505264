//! A flood of connections that never finish their handshake: the public
//! port stops at its cap (the open-file limit less a reserve) and closes
//! the rest at once, so the node never runs out of file descriptors; the
//! loopback health and metrics port keeps answering; and when the flood
//! ends the public port serves again.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Node, TempDir};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The gateway's open-file limit in this test, and the cap it implies.
const NOFILE: u64 = 400;
const CAP: u64 = NOFILE - 256;

fn connect_from(ip: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::from((ip, 0)).into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(5))?;
    Ok(s.into())
}

#[test]
fn at_the_connection_cap_the_rest_are_shed_and_health_still_answers() {
    let dir = TempDir::new("flood-cap");
    let nofile = format!("--nofile={NOFILE}:{NOFILE}");
    let mut node = Node::start_wrapped(
        dir.path(),
        &["--handshake-timeout", "60"],
        &[],
        &["prlimit", &nofile, "--"],
    );
    assert_eq!(node.metric("lifeline_connections_cap"), CAP);
    // The operator is told at start what the limit allows.
    let note = format!(
        "note: the open-file limit ({NOFILE}) lets this node hold {CAP} connections at once"
    );
    node.stdout
        .wait("the open-file note", Duration::from_secs(5), |l| {
            l.starts_with(&note)
        });
    // Silent connections from several addresses (each has a per-address
    // limit of its own), well past the cap.
    let mut held = Vec::new();
    for i in 0..(CAP as usize + 150) {
        let ip = [127, 0, 1, (i % 200) as u8 + 1];
        if let Ok(s) = connect_from(ip, node.addr) {
            held.push(s);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.metric("lifeline_connections_shed_total") < 150 {
        assert!(Instant::now() < deadline, "connections were not shed");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The operator's health check answers during the flood.
    let (status, body) = node.health_get("/health");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    assert_eq!(node.metric("lifeline_connections_open"), CAP);
    let shed = node.metric("lifeline_connections_shed_total");
    assert!(shed >= 150, "{shed}");
    // The shed ones were closed at once, not left hanging.
    let mut closed = 0;
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut b = [0u8; 1];
        if matches!(std::io::Read::read(s, &mut b), Ok(0)) {
            closed += 1;
        }
    }
    assert_eq!(closed as u64, shed, "shed connections are closed");

    // The flood ends: the public port serves again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.metric("lifeline_connections_open") > 0 {
        assert!(Instant::now() < deadline, "connections were not released");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = rt.block_on(node.http("GET", "/api/v1/health", None, None));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn health_and_metrics_answer_on_their_own_port() {
    let dir = TempDir::new("health");
    let node = Node::start(dir.path(), &[]);
    let (status, body) = node.health_get("/health");
    assert_eq!(status, 200);
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (h["status"].as_str(), h["waiting"].as_u64()),
        (Some("ok"), Some(0))
    );
    let (status, text) = node.health_get("/metrics");
    assert_eq!(status, 200);
    for name in [
        "lifeline_connections_open",
        "lifeline_connections_shed_total",
        "lifeline_applets_waiting",
        "lifeline_relays_active",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{text}"
        );
    }
    assert_eq!(node.health_get("/nothing").0, 404);
}
