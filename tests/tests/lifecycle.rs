//! A node's life: SIGTERM drains relayed sessions and exits cleanly; a
//! restarted node keeps its sessions and a reconnecting applet is matched
//! again; a session that outlives the drain timeout is cut and recorded.
#![allow(clippy::unwrap_used)]

use lifeline_tests::*;
use std::time::{Duration, Instant};

struct Setup {
    data: TempDir,
    gw: Gateway,
    console: Console,
    files: TempDir,
}

fn setup(extra: &[&str]) -> Setup {
    let data = TempDir::new("gw");
    let gw = Gateway::start(data.path(), None, extra);
    gw.add_technician("ada@example.com", "Ada", "correct horse battery");
    let console = Console::new();
    console.login(&gw, "ada@example.com", "correct horse battery");
    Setup {
        data,
        gw,
        console,
        files: TempDir::new("files"),
    }
}

#[test]
fn restart_keeps_sessions_and_the_applet_is_matched_again() {
    let mut s = setup(&[]);
    let path = s.files.path().join("applet");
    let guid = s.console.session_new("restart", &path);
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for("Waiting for Ada");

    assert!(s.gw.terminate().success(), "a draining node exits cleanly");
    applet.out.wait_for("reconnecting");
    let addr = s.gw.addr.clone();
    let gw = Gateway::start_at(s.data.path(), None, &addr, &[]);
    applet.out.wait_for("still waiting for your technician");
    let queue = s.console.queue();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert_eq!(queue[0]["state"], "waiting");

    let mut tech = s.console.connect(&guid);
    tech.event("sas");
    tech.send("say back again");
    applet.out.wait_for("Ada: back again");
    tech.send("end");
    tech.event("ended");
    applet.out.wait_for("Session ended");
    let events: Vec<_> = gw
        .audit(Some(&guid))
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        events.iter().filter(|e| *e == "waiting").count() >= 2,
        "{events:?}"
    );
}

#[test]
fn sigterm_lets_a_relayed_session_finish_and_refuses_new_connections() {
    let mut s = setup(&[]);
    let path = s.files.path().join("applet");
    let guid = s.console.session_new("drain", &path);
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for("Waiting for Ada");
    // Drain is about relays: keep this session on one.
    let mut tech = s.console.connect_with(&guid, &["--path", "relay"]);
    tech.event("sas");

    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(s.gw.pid().to_string())
        .status();
    // The listener closes promptly…
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&s.gw.addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the node kept accepting after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // …while the relayed session keeps working until it ends.
    tech.send("say during the drain");
    applet.out.wait_for("Ada: during the drain");
    applet.send("still fine");
    assert_eq!(tech.event("chat")["text"], "still fine");
    tech.send("end");
    tech.event("ended");
    let started = Instant::now();
    assert!(s.gw.terminate().success());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "exit follows the last relay"
    );
    let audit = admin(
        s.data.path(),
        None,
        &["audit", "--json", "--session", &guid],
        "",
    );
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(text.contains("relay ended"), "{text}");
}

#[test]
fn a_session_longer_than_the_drain_timeout_is_cut_and_recorded() {
    let mut s = setup(&["--drain-timeout", "1"]);
    let path = s.files.path().join("applet");
    let guid = s.console.session_new("cut", &path);
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for("Waiting for Ada");
    let mut tech = s.console.connect_with(&guid, &["--path", "relay"]);
    tech.event("sas");
    let started = Instant::now();
    assert!(s.gw.terminate().success());
    assert!(started.elapsed() < Duration::from_secs(10));
    let ended = tech.event("ended");
    assert_eq!(ended["by"], "lost", "{ended}");
    applet.out.wait_for("Session ended");
    let audit = admin(
        s.data.path(),
        None,
        &["audit", "--json", "--session", &guid],
        "",
    );
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(text.contains("gateway shut down"), "{text}");
}
