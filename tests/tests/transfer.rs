//! Handing a session to a colleague mid-session: the holding technician
//! offers it (in the session, or with `session transfer` from another
//! command), the colleague takes it with `connect`, the holder's console
//! tells the end user's program the colleague's new key inside the
//! end-to-end channel and leaves, and the end user goes on with the
//! colleague — told who it is now, with nothing they allowed the first
//! technician carried over.
#![allow(clippy::unwrap_used)]

use lifeline_tests::*;
use serde_json::Value;
use std::time::Duration;

const GRACE: &str = "grace@example.com";
const GRACE_NAME: &str = "Grace Hopper";

fn offer_events(tech: &mut Proc) -> serde_json::Value {
    tech.event("handover")
}

/// The next console event matching `f`; fails on the session's end.
fn until(tech: &mut Proc, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    tech.event_until(what, WAIT, f)
}

#[test]
fn a_technician_hands_a_running_session_to_a_colleague() {
    let s = Scenario::start(&[]);
    s.gw.add_technician(GRACE, GRACE_NAME, TECH_PASSWORD);
    // A technician of another group cannot be handed anything.
    let out = s.gw.admin(
        &[
            "technician",
            "add",
            "--email",
            "mallory@example.com",
            "--name",
            "Mallory",
            "--group",
            "elsewhere",
            "--password-stdin",
        ],
        &format!("{TECH_PASSWORD}\n"),
    );
    assert!(out.status.success(), "{out:?}");
    let grace = Console::new();
    grace.login(&s.gw, GRACE, TECH_PASSWORD);
    let out = s.gw.admin(
        &[
            "group",
            "permissions",
            "default",
            "system-info,single-prompt",
        ],
        "",
    );
    assert!(out.status.success(), "{out:?}");

    let (path, guid) = s.session("printer");
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for("Waiting for Ada");
    let (mut ada, first_code) = pair_with(
        &s.console,
        &mut applet,
        "printer",
        &guid,
        &["--path", "relay"],
    );
    chat_both_ways(&mut ada, &mut applet, "let me look", "thanks");
    // The end user allows Ada system information for the whole session.
    ada.send("ask system-info session");
    applet.out.wait_for("Allow it?");
    applet.send("yes");
    let granted = until(&mut ada, "consent granted", |v| {
        v["event"] == "consent" && v["decision"] == "granted"
    });
    assert_eq!(granted["whole_session"], true, "{granted}");

    // Clear refusals, and the session stays Ada's.
    ada.send("transfer nobody@example.com");
    let refused = offer_events(&mut ada);
    assert_eq!(refused["state"], "refused", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("no other technician"),
        "{refused}"
    );
    ada.send("transfer mallory@example.com");
    assert_eq!(offer_events(&mut ada)["state"], "refused");
    ada.send("transfer grace");
    let bad = ada.event("error");
    assert!(
        bad["message"].as_str().unwrap().contains("not an e-mail"),
        "{bad}"
    );

    // Offered, withdrawn, and offered again from another command.
    ada.send("transfer grace@example.com");
    assert_eq!(offer_events(&mut ada)["state"], "offered");
    ada.send("transfer cancel");
    assert_eq!(offer_events(&mut ada)["state"], "withdrawn");
    let gone = grace.run(&["connect", &guid], "");
    assert!(!gone.status.success(), "a withdrawn offer cannot be taken");
    let cli = s
        .console
        .run(&["session", "transfer", "printer", "--to", GRACE], "");
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );

    // Grace sees it in her queue, and takes it.
    let queue = wait_until("the offer in Grace's queue", WAIT, || {
        let out = grace.run(&["queue"], "");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("offered to you by Ada Lovelace")
            .then_some(text)
    });
    assert!(queue.contains(&guid), "{queue}");
    let mut taker = grace.connect_with(&guid, &["--path", "relay"]);
    let taking = offer_events(&mut taker);
    assert_eq!(taking["state"], "taking", "{taking}");
    assert_eq!(taking["from"], TECH_EMAIL);

    // Ada's console sees the acceptance, hands over and leaves — the
    // session is not ended.
    let accepted = offer_events(&mut ada);
    assert_eq!(accepted["state"], "accepted", "{accepted}");
    let left = ada.event("ended");
    assert_eq!(left["by"], "handover", "{left}");
    assert!(ada.wait_exit(Duration::from_secs(20)).success());

    // The end user is told, and meets Grace with a code of its own.
    applet.out.wait_for(
        "Ada Lovelace has handed your session over to Grace Hopper. What you allowed Ada Lovelace has ended",
    );
    assert_eq!(taker.event("paired")["guid"], guid.as_str());
    let code = taker.event("sas")["code"].as_str().unwrap().to_owned();
    assert_ne!(code, first_code, "a new end-to-end channel, with new keys");
    applet
        .out
        .wait_for("Grace Hopper is now connected and helping you.");
    taker.send("say Grace here, I take it from here");
    applet
        .out
        .wait_for("Grace Hopper: Grace here, I take it from here");
    applet.send("hello Grace");
    assert_eq!(taker.event("chat")["text"], "hello Grace");
    // What the end user allowed Ada is not Grace's: she is asked again.
    taker.send("sysinfo");
    until(&mut taker, "consent asked", |v| {
        assert_ne!(v["event"], "system_info", "Ada's grant carried over: {v}");
        v["event"] == "consent" && v["decision"] == "asked"
    });
    applet.out.wait_for("Allow it?");
    applet.send("yes");
    until(&mut taker, "system_info", |v| v["event"] == "system_info");

    // Ada's console cannot come back to it; the trail tells the story.
    let again = s.console.run(&["connect", &guid], "");
    assert!(!again.status.success(), "the session is no longer Ada's");
    let trail: Vec<String> =
        s.gw.audit(Some(&guid))
            .iter()
            .map(|e| format!("{} {} {}", e["actor"], e["event"], e["detail"]))
            .collect();
    let trail = trail.join("\n");
    for want in [
        "offered to grace@example.com",
        "offer withdrawn",
        "accepted from ada@example.com",
        "handed over to grace@example.com",
    ] {
        assert!(trail.contains(want), "{want:?} missing from\n{trail}");
    }

    taker.send("end done");
    assert_eq!(taker.event("ended")["by"], "technician");
    assert!(taker.wait_exit(Duration::from_secs(20)).success());
    applet.out.wait_for("Session ended");
    assert!(applet.wait_exit(Duration::from_secs(20)).success());
}

/// A session on a direct path is handed over as well: the applet meets
/// the colleague through the gateway, and goes direct again with them —
/// its direct path now checks the colleague's key.
#[test]
fn a_session_on_a_direct_path_is_handed_over_and_goes_direct_again() {
    let s = Scenario::start(&[]);
    s.gw.add_technician(GRACE, GRACE_NAME, TECH_PASSWORD);
    let grace = Console::new();
    grace.login(&s.gw, GRACE, TECH_PASSWORD);
    let (mut applet, mut ada, guid, _port) = on_direct_tcp(&s, "laptop", "3");
    ada.send(&format!("transfer {GRACE}"));
    assert_eq!(offer_events(&mut ada)["state"], "offered");
    let mut taker = grace.connect_with(&guid, &["--path", "tcp", "--dead-path", "3"]);
    assert_eq!(offer_events(&mut taker)["state"], "taking");
    assert_eq!(ada.event("ended")["by"], "handover");
    assert!(ada.wait_exit(Duration::from_secs(20)).success());
    applet
        .out
        .wait_for("has handed your session over to Grace Hopper");
    taker.event("sas");
    applet.out.wait_for("Grace Hopper is now connected");
    let path = taker.event("path");
    assert_eq!(path["path"], "tcp", "{path}");
    taker.send("say on a direct path again");
    applet.out.wait_for("Grace Hopper: on a direct path again");
    taker.send("end done");
    assert_eq!(taker.event("ended")["by"], "technician");
    applet.out.wait_for("Session ended");
    assert!(applet.wait_exit(Duration::from_secs(20)).success());
}
