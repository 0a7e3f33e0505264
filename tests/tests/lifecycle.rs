//! A node's life: SIGTERM drains relayed sessions and exits cleanly; a
//! restarted node keeps its sessions and a reconnecting applet is matched
//! again; a session that outlives the drain timeout is cut and recorded;
//! a node killed outright still has its relay's byte counters, and the
//! session it was relaying is recorded as interrupted when it comes back.
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
    setup_with(|data, _| Gateway::start(data, None, extra))
}

/// A gateway started by `start` (on its data directory, with the scratch
/// directory at hand), with Ada added and logged in.
fn setup_with(start: impl FnOnce(&std::path::Path, &std::path::Path) -> Gateway) -> Setup {
    let data = TempDir::new("gw");
    let files = TempDir::new("files");
    let gw = start(data.path(), files.path());
    gw.add_technician("ada@example.com", "Ada", "correct horse battery");
    let console = Console::new();
    console.login(&gw, "ada@example.com", "correct horse battery");
    Setup {
        data,
        gw,
        console,
        files,
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
    applet.out.wait_for("support service was interrupted");
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

/// A relayed session outliving the drain timeout is cut and recorded —
/// and, as for any lost relay, its ends reconnect: the restarted gateway
/// pairs them again and the session goes on.
#[test]
fn a_session_longer_than_the_drain_timeout_is_cut_recorded_and_resumed() {
    // Logged, so a slow exit shows where the time went.
    let mut s = setup_with(|data, files| {
        Gateway::start_logged(data, &["--drain-timeout", "1"], &files.join("gateway.log"))
    });
    let log = s.files.path().join("gateway.log");
    let path = s.files.path().join("applet");
    let guid = s.console.session_new("cut", &path);
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for("Waiting for Ada");
    let mut tech = s.console.connect_with(&guid, &["--path", "relay"]);
    tech.event("sas");
    let started = Instant::now();
    assert!(s.gw.terminate().success());
    // The relayed session would never finish by itself: the node exits
    // because the drain timeout cut it (1 s, then at most 3 s for the
    // cut relays' records). The bound leaves room for a machine busy with
    // the other tests' gigabyte transfers.
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "the node took {took:?} to exit; its log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let lost = tech.event("reconnecting");
    assert!(
        !lost["reason"].as_str().unwrap().contains("https:"),
        "plain words: {lost}"
    );
    applet.out.wait_for("is reconnecting");
    let audit = admin(
        s.data.path(),
        None,
        &["audit", "--json", "--session", &guid],
        "",
    );
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(text.contains("gateway shut down"), "{text}");
    assert!(
        !text.contains("\"event\":\"ended\""),
        "cut, not ended: {text}"
    );

    let addr = s.gw.addr.clone();
    s.gw = Gateway::start_at(s.data.path(), None, &addr, &[]);
    tech.event("resumed");
    applet.out.wait_for("Reconnected to Ada");
    tech.send("say after the restart");
    applet.out.wait_for("Ada: after the restart");
}

/// The relayed bytes of a session as the store has them now (read from the
/// SQLite file next to the running node, as another reader).
fn stored_bytes(data: &std::path::Path, guid: &str) -> i64 {
    let url = format!("sqlite:{}?mode=ro", data.join("gateway.db").display());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let n: i64 = sqlx::query_scalar(
                "SELECT bytes_applet_to_console + bytes_console_to_applet FROM sessions WHERE guid = $1",
            )
            .bind(guid)
            .fetch_one(&mut c)
            .await
            .unwrap();
            let _ = c.close().await;
            n
        })
}

/// (c) `kill -9` of the gateway in the middle of a relayed transfer, then
/// the gateway restarted on the same data directory: the session is
/// recorded as interrupted (with what the relay had carried), both ends
/// reconnect and resume it, and the link test each way completes
/// byte-exact.
#[test]
fn a_killed_node_restarted_on_its_data_dir_resumes_its_sessions_byte_exact() {
    let mut s = setup(&[]);
    let path = s.files.path().join("applet");
    let guid = s.console.session_new("killed", &path);
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for("Waiting for Ada");
    let mut tech = s.console.connect_with(&guid, &["--path", "relay"]);
    tech.event("sas");
    // A long transfer each way through the relay.
    tech.send("linktest 1G both");
    tech.event("linktest");
    let counted = wait_until(
        "the relay's counters to reach the store",
        Duration::from_secs(30),
        || Some(stored_bytes(s.data.path(), &guid)).filter(|n| *n > 1 << 20),
    );
    let addr = s.gw.addr.clone();
    s.gw.kill();
    let killed = std::time::Instant::now();
    let lost = tech.event("reconnecting");
    assert!(
        lost["reason"]
            .as_str()
            .unwrap()
            .contains("relay connection"),
        "{lost}"
    );
    applet.out.wait_for("is reconnecting");
    s.gw = Gateway::start_at(s.data.path(), None, &addr, &[]);
    let resumed = await_resumption_and_linktests(&mut tech, 1 << 30, killed);
    eprintln!(
        "gateway killed: flowing again {:.2} s later (restart included)",
        resumed
    );
    applet.out.wait_for("Reconnected to Ada");

    let audit = s.gw.audit(Some(&guid));
    let interrupted = audit
        .iter()
        .find(|e| e["event"] == "interrupted" && e["actor"] == "gateway")
        .unwrap_or_else(|| panic!("no interruption recorded: {audit:?}"));
    let detail = interrupted["detail"].as_str().unwrap();
    assert!(detail.starts_with("gateway node"), "{detail}");
    // "relayed A bytes applet→console, B bytes console→applet"
    let relayed: i64 = detail
        .split("relayed ")
        .nth(1)
        .unwrap_or_else(|| panic!("no byte count in {detail:?}"))
        .split(" bytes")
        .take(2)
        .map(|part| part.rsplit(' ').next().unwrap().parse::<i64>().unwrap())
        .sum();
    assert!(relayed >= counted, "{relayed} < {counted}: {detail}");
    assert!(audit.iter().any(|e| e["event"] == "resumed"), "{audit:?}");
    assert!(
        audit.iter().any(|e| e["event"] == "path"
            && e["detail"]
                .as_str()
                .unwrap()
                .contains("resumed: the relay connection")),
        "{audit:?}"
    );
    tech.send("end done");
    assert_eq!(tech.event("ended")["by"], "technician");
    applet.out.wait_for("Session ended");
}
