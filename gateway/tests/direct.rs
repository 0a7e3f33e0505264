//! Going direct, as the gateway sees it: the console reports the path
//! (`POST /api/v1/sessions/{guid}/path`), a session reported direct
//! outlives its relay, stays closed to strangers (its own ends may resume
//! it through the relay), and survives a restart of the node that relayed
//! it; a relayed session whose relay closes is interrupted, not ended,
//! until the console records its end or the resume window runs out.
#![allow(clippy::unwrap_used)]

mod common;

use common::{EMAIL, Node, TempDir, Tls, pair, read_msg};
use lifeline_protocol::SessionGuid;
use lifeline_protocol::relay::{RefuseCode, Role, ServerMsg};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OTHER: &str = "other@example.com";

async fn report(node: &Node, token: &str, guid: SessionGuid, body: Value) -> (u16, Value) {
    node.http(
        "POST",
        &format!("/api/v1/sessions/{guid}/path"),
        Some(token),
        Some(&body),
    )
    .await
}

async fn show(node: &Node, token: &str, guid: SessionGuid) -> Value {
    let (status, body) = node
        .http(
            "GET",
            &format!("/api/v1/sessions/{guid}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Sends `n` bytes from one end and reads them at the other.
async fn relay_bytes(from: &mut Tls, to: &mut Tls, n: usize) {
    from.write_all(&vec![0x5a; n]).await.unwrap();
    from.flush().await.unwrap();
    let mut got = vec![0; n];
    tokio::time::timeout(Duration::from_secs(10), to.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
}

async fn close(mut end: Tls) {
    let _ = end.shutdown().await;
}

/// A hello is refused at once (not after the pairing window), as `want`.
/// An applet's hello carries a proof that does not verify.
async fn refused_as(node: &Node, role: Role, guid: SessionGuid, token: &str, want: RefuseCode) {
    let started = Instant::now();
    let mut tls = match role {
        Role::Console => node.hello(role, guid, token).await,
        Role::Applet => {
            let mut tls = node.connect(lifeline_protocol::ALPN_RELAY).await;
            let hello = lifeline_protocol::relay::Hello::applet(guid, [0x42; 64]);
            tls.write_all(&hello.encode()).await.unwrap();
            tls.flush().await.unwrap();
            tls
        }
    };
    match read_msg(&mut tls).await {
        ServerMsg::Refused { code, message } => {
            assert_eq!(code, want, "{message}");
        }
        other => panic!("{role:?}: expected a refusal, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A live direct session whose relay has closed: no applet that cannot
/// prove it holds the session's file, no other technician's console
/// (`other`), no way back to the relay that closed. (Its own ends may
/// come back through the relay to resume it: see `tests/resume.rs`.)
async fn closed_to_strangers(node: &Node, guid: SessionGuid, token: &str, other: Option<&str>) {
    refused_as(node, Role::Applet, guid, "", RefuseCode::NotAuthorized).await;
    if let Some(other) = other {
        refused_as(node, Role::Console, guid, other, RefuseCode::NotAuthorized).await;
    }
    assert_error(
        report(node, token, guid, json!({"path": "relay"})).await,
        409,
        "conflict",
        "relay",
    );
}

fn assert_error(got: (u16, Value), status: u16, code: &str, needle: &str) {
    let (s, body) = got;
    assert_eq!((s, body["code"].as_str()), (status, Some(code)), "{body}");
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
}

#[tokio::test]
async fn a_direct_session_outlives_its_relay() {
    let dir = TempDir::new("direct");
    let node = Node::start(dir.path(), &["--stun-listen", "off"]);
    node.add_technician(EMAIL);
    node.add_technician(OTHER);
    let token = node.login(EMAIL).await;
    let other = node.login(OTHER).await;
    let guid = node.create_session(&token).await;

    // Nothing to report before the ends are paired.
    assert_error(
        report(&node, &token, guid, json!({"path": "tcp"})).await,
        409,
        "conflict",
        "created",
    );
    let (mut applet, mut console, _) = pair(&node, guid, &token).await;
    relay_bytes(&mut applet, &mut console, 1000).await;
    relay_bytes(&mut console, &mut applet, 500).await;

    // Bad reports, and reports by anyone but the session's technician.
    for (body, needle) in [
        (json!({"path": "carrier-pigeon"}), "relay, tcp, udp"),
        (
            json!({"path": "tcp", "detail": "x".repeat(513)}),
            "512 bytes",
        ),
        (json!({"path": "udp", "rtt_ms": -1.0}), "rtt_ms"),
        (json!({"detail": "no path"}), "invalid JSON"),
    ] {
        assert_error(
            report(&node, &token, guid, body).await,
            400,
            "bad_request",
            needle,
        );
    }
    assert_error(
        report(&node, &other, guid, json!({"path": "tcp"})).await,
        404,
        "not_found",
        "no such session",
    );
    assert_error(
        node.http(
            "POST",
            &format!("/api/v1/sessions/{guid}/path"),
            None,
            Some(&json!({"path": "tcp"})),
        )
        .await,
        401,
        "unauthorized",
        "log",
    );
    assert_eq!(show(&node, &token, guid).await["path"], Value::Null);

    // Staying on the relay is reported too; then the cutover to TCP.
    let (s, info) = report(
        &node,
        &token,
        guid,
        json!({"path": "relay", "rtt_ms": 30.46, "detail": "no direct path yet"}),
    )
    .await;
    assert_eq!(
        (s, &info["state"], &info["path"]),
        (200, &json!("paired"), &json!("relay"))
    );
    let (s, info) = report(
        &node,
        &token,
        guid,
        json!({"path": "tcp", "rtt_ms": 0.42, "detail": "10.0.0.2:5000"}),
    )
    .await;
    assert_eq!(
        (s, &info["state"], &info["path"]),
        (200, &json!("direct"), &json!("tcp"))
    );
    let (_, waiting) = node
        .http("GET", "/api/v1/sessions/waiting", Some(&token), None)
        .await;
    assert_eq!(
        waiting["sessions"],
        json!([]),
        "a direct session is not waiting"
    );

    // The console closes the relay after the cutover: the session goes on.
    close(console).await;
    close(applet).await;
    let detail = node.wait_for_audit(&guid.to_string(), "relay ended");
    assert!(
        detail.starts_with("after the cutover to the direct path (")
            && detail.ends_with("; relayed 1000 bytes applet→console, 500 bytes console→applet"),
        "{detail}"
    );
    let info = show(&node, &token, guid).await;
    assert_eq!(
        (&info["state"], &info["ended_reason"]),
        (&json!("direct"), &Value::Null)
    );

    // It is live: closed to strangers, no way back to a relay that has
    // closed.
    closed_to_strangers(&node, guid, &token, Some(other.as_str())).await;

    // The console ends it.
    let (s, info) = node
        .http(
            "POST",
            &format!("/api/v1/sessions/{guid}/end"),
            Some(&token),
            Some(&json!({"reason": "all done"})),
        )
        .await;
    assert_eq!(
        (s, &info["state"], &info["path"]),
        (200, &json!("ended"), &json!("tcp"))
    );
    assert_error(
        report(&node, &token, guid, json!({"path": "udp"})).await,
        409,
        "conflict",
        "ended",
    );
    let audit = node.audit(&guid.to_string());
    let paths: Vec<(&str, &str)> = audit
        .iter()
        .filter(|e| e["event"] == "path")
        .map(|e| (e["actor"].as_str().unwrap(), e["detail"].as_str().unwrap()))
        .collect();
    assert_eq!(
        paths,
        [
            (EMAIL, "relay, rtt 30.5 ms; no direct path yet"),
            (EMAIL, "direct TCP, rtt 0.4 ms; 10.0.0.2:5000"),
        ]
    );
    let events: Vec<&str> = audit.iter().map(|e| e["event"].as_str().unwrap()).collect();
    let at = |ev: &str| events.iter().position(|e| *e == ev).unwrap();
    assert!(
        at("paired") < at("path")
            && at("path") < at("relay ended")
            && at("relay ended") < at("ended")
    );
}

#[tokio::test]
async fn a_relayed_session_is_interrupted_with_its_relay_and_ends_unresumed() {
    let dir = TempDir::new("relayed");
    let node = Node::start(
        dir.path(),
        &["--stun-listen", "off", "--resume-window", "1"],
    );
    node.add_technician(EMAIL);
    let token = node.login(EMAIL).await;
    let guid = node.create_session(&token).await;
    let (mut applet, mut console, _) = pair(&node, guid, &token).await;
    relay_bytes(&mut applet, &mut console, 7).await;
    let (s, _) = report(
        &node,
        &token,
        guid,
        json!({"path": "relay", "detail": "UDP blocked"}),
    )
    .await;
    assert_eq!(s, 200);
    close(console).await;
    close(applet).await;
    let detail = node.wait_for_audit(&guid.to_string(), "relay ended");
    assert!(
        !detail.contains("cutover")
            && detail.ends_with("; relayed 7 bytes applet→console, 0 bytes console→applet"),
        "{detail}"
    );
    // The gateway cannot tell an ending from a lost connection: the
    // session is interrupted (its ends may resume it)…
    let info = show(&node, &token, guid).await;
    assert_eq!(
        (&info["state"], &info["ended_reason"]),
        (&json!("paired"), &Value::Null)
    );
    // …until the resume window runs out (checked with the heartbeat).
    let deadline = Instant::now() + Duration::from_secs(30);
    let info = loop {
        let info = show(&node, &token, guid).await;
        if info["state"] == "ended" || Instant::now() > deadline {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (&info["state"], &info["ended_reason"]),
        (
            &json!("ended"),
            &json!("interrupted and not resumed within 1 s")
        )
    );
    let detail = node.wait_for_audit(&guid.to_string(), "ended");
    assert_eq!(detail, "interrupted and not resumed within 1 s");
}

#[tokio::test]
async fn a_restart_keeps_direct_sessions() {
    let dir = TempDir::new("restart");
    let mut node = Node::start(dir.path(), &["--stun-listen", "off"]);
    node.add_technician(EMAIL);
    let token = node.login(EMAIL).await;
    let direct = node.create_session(&token).await;
    let relayed = node.create_session(&token).await;
    let (_a1, _c1, _) = pair(&node, direct, &token).await;
    let (_a2, _c2, _) = pair(&node, relayed, &token).await;
    let (s, _) = report(
        &node,
        &token,
        direct,
        json!({"path": "udp", "rtt_ms": 12.0}),
    )
    .await;
    assert_eq!(s, 200);

    // The node dies with both relays running, and comes back.
    node.kill();
    let node = Node::start(dir.path(), &["--stun-listen", "off"]);
    // The relayed session lost its ends with the node: it is interrupted,
    // for its ends to resume. The direct one never needed the node.
    let info = show(&node, &token, relayed).await;
    assert_eq!(
        (&info["state"], &info["ended_reason"]),
        (&json!("paired"), &Value::Null)
    );
    let detail = node.wait_for_audit(&relayed.to_string(), "interrupted");
    assert!(
        detail.starts_with("gateway node") && detail.ends_with("its ends may resume it"),
        "{detail}"
    );
    let info = show(&node, &token, direct).await;
    assert_eq!(
        (&info["state"], &info["path"]),
        (&json!("direct"), &json!("udp"))
    );
    closed_to_strangers(&node, direct, &token, None).await;
    let (s, info) = node
        .http(
            "POST",
            &format!("/api/v1/sessions/{direct}/end"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!((s, &info["state"]), (200, &json!("ended")));
}
