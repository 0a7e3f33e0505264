//! Going direct on loopback with the real binaries: `auto` moves the
//! session to direct TCP, `--path udp` to XTCP over ICE (with the gateway's
//! STUN server), `--path relay` stays. Each runs a 256 MiB link test both
//! ways that starts on the relay (it is queued before the session is up)
//! and crosses the cutover; the receivers check every byte, and the
//! gateway's relayed byte count shows it stopped carrying the traffic.
//! Also: a stranger knocking at the applet's port does not disturb it.
#![allow(clippy::unwrap_used)]

use lifeline_tests::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::time::Duration;

const TEST_BYTES: u64 = 256 << 20;

/// What one run saw.
struct Run {
    path: Value,
    relayed: (u64, u64),
    audit: Vec<Value>,
}

/// Starts a session, queues `linktest 256M both` before it is up, and
/// waits for the path event and both results.
fn run(connect_flags: &[&str], applet_flags: &[&str], strangers: Option<u16>) -> Run {
    let s = Scenario::start(&[]);
    let (applet_path, guid) = s.session("direct");
    let mut applet = Proc::applet(&applet_path, applet_flags);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let mut tech = s.console.connect_with(&guid, connect_flags);
    // Read when the session starts: the test begins on the relay.
    tech.send("linktest 256M both");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let knocker = strangers.map(|port| {
        let stop = stop.clone();
        std::thread::spawn(move || knock(port, &stop))
    });
    tech.event("sas");

    let path = await_path_and_linktests(&mut tech, &applet, TEST_BYTES, Duration::from_secs(240));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let knocks = knocker.map(|k| k.join().unwrap());
    // The session still works after everything.
    chat_both_ways(&mut tech, &mut applet, "still there?", "yes");
    end_session(&mut tech, &mut applet);
    // The applet's port is open only between its offer and the cutover (a
    // few milliseconds here), so whether the stranger gets in is luck; the
    // session tests cover refusals deterministically.
    if let Some(k) = knocks {
        eprintln!("a stranger got into the applet's port {k} times");
    }
    let relayed = s.gw.relayed_bytes(&guid, Duration::from_secs(15));
    let audit = s.gw.audit(Some(&guid));
    Run {
        path,
        relayed,
        audit,
    }
}

/// A stranger: connects to the applet's port over and over, says
/// something that is not TLS, and reads until the applet closes on it.
/// Returns how many times it got in.
fn knock(port: u16, stop: &std::sync::atomic::AtomicBool) -> u32 {
    let mut got_in = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            got_in += 1;
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n");
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    got_in
}

fn path_audit(audit: &[Value]) -> Vec<String> {
    audit
        .iter()
        .filter(|e| e["event"] == "path")
        .map(|e| e["detail"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn auto_goes_direct_tcp_in_the_middle_of_a_transfer() {
    let port = free_listen_port();
    // A moment on the relay first, so both directions are under way when
    // the session moves.
    let r = run(
        &["--direct-after", "0.3"],
        &["--tcp-port", &port.to_string()],
        Some(port),
    );
    assert_eq!(r.path["path"], "tcp", "{}", r.path);
    let (a2c, c2a) = r.relayed;
    eprintln!("relay carried {a2c} B applet→console, {c2a} B console→applet");
    // The test data started on the relay (more than the handshakes and
    // control frames), and the gateway stopped carrying it part way.
    assert!(a2c > 100_000 && a2c < TEST_BYTES * 3 / 4, "{a2c}");
    assert!(c2a > 100_000 && c2a < TEST_BYTES * 3 / 4, "{c2a}");
    let paths = path_audit(&r.audit);
    assert!(paths.iter().any(|d| d.contains("direct TCP")), "{paths:?}");
    let relay_end = r
        .audit
        .iter()
        .find(|e| e["event"] == "relay ended")
        .unwrap();
    assert!(
        relay_end["detail"].as_str().unwrap().contains("direct"),
        "{relay_end}"
    );
    assert!(r.audit.iter().any(|e| e["event"] == "ended"));
}

#[test]
fn forced_udp_goes_xtcp_over_ice_in_the_middle_of_a_transfer() {
    let r = run(&["--path", "udp"], &[], None);
    assert_eq!(r.path["path"], "udp", "{}", r.path);
    // ICE takes a moment, so more of the test goes over the relay than
    // with TCP; still, the relay stopped carrying it part way.
    let (a2c, c2a) = r.relayed;
    eprintln!("relay carried {a2c} B applet→console, {c2a} B console→applet");
    assert!(a2c > 100_000 && a2c < TEST_BYTES * 3 / 4, "{a2c}");
    assert!(c2a > 100_000 && c2a < TEST_BYTES * 3 / 4, "{c2a}");
    let paths = path_audit(&r.audit);
    assert!(
        paths.iter().any(|d| d.contains("XTCP over UDP")),
        "{paths:?}"
    );
}

#[test]
fn forced_relay_stays_and_the_relay_carries_everything() {
    let r = run(&["--path", "relay"], &[], None);
    assert_eq!(r.path["path"], "relay", "{}", r.path);
    assert!(
        r.path["detail"].as_str().unwrap().contains("--path relay"),
        "{}",
        r.path
    );
    let (a2c, c2a) = r.relayed;
    assert!(a2c > TEST_BYTES && c2a > TEST_BYTES, "{a2c} / {c2a}");
    let paths = path_audit(&r.audit);
    assert!(paths.iter().any(|d| d.starts_with("relay")), "{paths:?}");
}
