//! A session survives the loss of its path, with the real binaries: the
//! direct TCP path cut mid-transfer (an nft rule drops its packets) falls
//! back to the relay; the technician's console killed mid-session is a
//! pause the end user sees, and `connect` resumes it; a session ended while
//! its applet waits reaches that applet at once. (The gateway killed with
//! `kill -9` mid-transfer is in `lifecycle.rs`; a UDP path cut between
//! NATs in `natlab.rs`.) Every link test checks each byte on arrival.
#![allow(clippy::unwrap_used)]

use lifeline_tests::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const TEST_BYTES: u64 = 256 << 20;

/// The console's events until `name`, failing on an end or an error.
fn until_event(tech: &mut Proc, name: &str, within: Duration) -> (Value, Vec<Value>) {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = tech.out.next(left).unwrap_or_else(|| {
            panic!(
                "no {name} event; console output:\n{}",
                tech.out.seen.join("\n")
            )
        });
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if v["event"] == name {
            return (v, seen);
        }
        if v["event"] == "ended" || v["event"] == "error" {
            panic!("session failed while waiting for {name}: {v}");
        }
        seen.push(v);
    }
}

/// Both link-test verdicts, each of every byte: from `before` (events
/// already read) and what comes next.
fn both_linktests_ok(tech: &mut Proc, before: &[Value], bytes: u64) {
    let mut done: Vec<Value> = before
        .iter()
        .filter(|v| v["event"] == "linktest" && v["state"] == "done")
        .cloned()
        .collect();
    while done.len() < 2 {
        let (v, _) = until_event(tech, "linktest", Duration::from_secs(240));
        if v["state"] == "done" {
            done.push(v);
        }
    }
    for d in &done {
        assert_eq!(d["ok"], true, "{d}");
        assert_eq!(d["bytes"], bytes, "{d}");
    }
}

fn audit_lines(gw: &Gateway, guid: &str) -> Vec<String> {
    gw.audit(Some(guid))
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["event"].as_str().unwrap(),
                e["detail"].as_str().unwrap()
            )
        })
        .collect()
}

/// (b) The direct TCP path is cut mid-transfer: both ends notice within the
/// dead-path time (3 s here), meet again through the gateway, and the link
/// test each way completes byte-exact; the audit says why the session is on
/// the relay again. Once the network is whole again the session goes back
/// to direct TCP (10 s after the resumption), still byte-exact.
#[test]
fn a_cut_direct_tcp_path_falls_back_to_the_relay_byte_exact() {
    let s = Scenario::start(&[]);
    let (mut applet, mut tech, guid, port) = on_direct_tcp(&s, "cut", "3");
    tech.send("linktest 256M both");
    until_event(&mut tech, "linktest", Duration::from_secs(30));
    let block = PortBlock::new(port);
    let cut = Instant::now();
    let (lost, _) = until_event(&mut tech, "reconnecting", Duration::from_secs(30));
    let noticed = cut.elapsed();
    assert!(
        lost["reason"]
            .as_str()
            .unwrap()
            .contains("direct TCP path was silent for 3 s"),
        "{lost}"
    );
    applet.out.wait_for("is reconnecting");
    let (_, mut seen) = until_event(&mut tech, "resumed", Duration::from_secs(60));
    let resumed = cut.elapsed();
    // The network is whole again: the next direct attempt can succeed.
    drop(block);
    eprintln!(
        "direct TCP cut: noticed after {:.2} s, flowing again after {:.2} s",
        noticed.as_secs_f64(),
        resumed.as_secs_f64()
    );
    assert!(noticed >= Duration::from_millis(2500), "{noticed:?}");
    applet.out.wait_for(&format!("Reconnected to {TECH_NAME}"));
    // Both verdicts, and the session back on direct TCP (in either order:
    // the cutover may come in the middle of the transfer).
    let back = Instant::now();
    let direct_again = |seen: &[Value]| {
        seen.iter()
            .any(|v| v["event"] == "path" && v["path"] == "tcp")
    };
    let done = |seen: &[Value]| {
        seen.iter()
            .filter(|v| v["event"] == "linktest" && v["state"] == "done")
            .count()
    };
    while done(&seen) < 2 || !direct_again(&seen) {
        let line = tech
            .out
            .next(Duration::from_secs(240))
            .unwrap_or_else(|| panic!("no verdicts or no direct path again: {seen:?}"));
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            assert!(v["event"] != "ended" && v["event"] != "error", "{v}");
            seen.push(v);
        }
    }
    eprintln!(
        "back on direct TCP {:.1} s after the resumption",
        back.elapsed().as_secs_f64()
    );
    both_linktests_ok(&mut tech, &seen, TEST_BYTES);
    applet
        .out
        .wait_for(&format!("Now connected directly to {TECH_NAME}"));
    chat_both_ways(&mut tech, &mut applet, "still here", "me too");
    let audit = audit_lines(&s.gw, &guid);
    assert!(
        audit.iter().any(|l| l.starts_with("resumed: console")),
        "{audit:?}"
    );
    assert!(
        audit.iter().any(|l| l.starts_with("path: relay")
            && l.contains("fallback to the relay: the direct TCP path was silent for 3 s")),
        "{audit:?}"
    );
    let direct_paths = audit
        .iter()
        .filter(|l| l.starts_with("path: direct TCP"))
        .count();
    assert_eq!(direct_paths, 2, "direct TCP, then again: {audit:?}");
    end_session(&mut tech, &mut applet);
}

/// The technician's console is killed mid-session: the end user sees that
/// the technician is reconnecting (not an ending), `connect` brings the
/// technician back within the resume window, and the session goes on.
#[test]
fn the_technicians_console_going_away_is_a_pause() {
    let s = Scenario::start(&[]);
    let (applet_path, guid) = s.session("pause");
    let mut applet = Proc::applet(&applet_path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let (mut tech, _) = pair_with(&s.console, &mut applet, &guid, &guid, &["--path", "relay"]);
    chat_both_ways(&mut tech, &mut applet, "before", "before too");
    tech.child.kill().unwrap();
    let _ = tech.child.wait();
    applet.out.wait_for(&format!("{TECH_NAME} is reconnecting"));
    wait_until(
        "the end user to wait again in the queue",
        Duration::from_secs(20),
        || {
            s.console
                .queue()
                .iter()
                .any(|q| q["guid"] == guid.as_str())
                .then_some(())
        },
    );

    let mut tech = s.console.connect_with(&guid, &["--path", "relay"]);
    tech.event("sas");
    applet.out.wait_for(&format!("{TECH_NAME} is back"));
    chat_both_ways(&mut tech, &mut applet, "back again", "welcome back");
    tech.send("linktest 16M both");
    both_linktests_ok(&mut tech, &[], 16 << 20);
    let audit = audit_lines(&s.gw, &guid);
    assert!(
        audit.iter().any(|l| l.starts_with("resumed: console")),
        "{audit:?}"
    );
    assert!(
        !audit.iter().any(|l| l.starts_with("ended")),
        "a pause is not an end: {audit:?}"
    );
    end_session(&mut tech, &mut applet);
    let audit = audit_lines(&s.gw, &guid);
    assert!(
        audit
            .iter()
            .any(|l| l == "ended: ended by technician: done"),
        "{audit:?}"
    );
}

/// A session ended (cancelled) by the technician while its applet waits
/// reaches the applet at once: it says so, ends and removes itself.
#[test]
fn ending_a_session_reaches_its_waiting_applet_at_once() {
    let s = Scenario::start(&[]);
    let (applet_path, guid) = s.session("cancelled");
    let mut applet = Proc::applet(&applet_path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let t0 = Instant::now();
    let out = s.console.run(&["session", "end", &guid], "");
    assert!(out.status.success(), "{out:?}");
    applet.out.wait_for("has already ended");
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(!applet.wait_exit(Duration::from_secs(10)).success());
    assert!(!applet_path.exists(), "the applet removed itself");
    let audit = audit_lines(&s.gw, &guid);
    assert!(
        audit
            .iter()
            .any(|l| l == "left: told that the session has ended"),
        "{audit:?}"
    );
}

/// The end user ends the session while the technician is away: nobody is
/// there to hear the `End`, so the applet tells the gateway itself — the
/// session ends at once with the user's reason (not when the resume window
/// runs out), and the technician coming back is told it has ended.
#[test]
fn the_end_user_ending_while_the_technician_is_away_is_recorded_at_once() {
    let s = Scenario::start(&[]);
    let (applet_path, guid) = s.session("left");
    let mut applet = Proc::applet(&applet_path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let (mut tech, _) = pair_with(&s.console, &mut applet, &guid, &guid, &["--path", "relay"]);
    chat_both_ways(&mut tech, &mut applet, "one moment", "sure");
    tech.child.kill().unwrap();
    let _ = tech.child.wait();
    applet.out.wait_for(&format!("{TECH_NAME} is reconnecting"));
    applet.send("/end");
    applet.out.wait_for("you ended the session");
    assert!(applet.wait_exit(Duration::from_secs(20)).success());
    assert!(!applet_path.exists(), "the applet removed itself");
    let audit = audit_lines(&s.gw, &guid);
    assert!(
        audit
            .iter()
            .any(|l| l == "ended: ended by user: the end user ended the session"),
        "{audit:?}"
    );
    let mut tech = s.console.connect_with(&guid, &["--path", "relay"]);
    let err = tech.event("error");
    assert!(err["message"].as_str().unwrap().contains("ended"), "{err}");
}
