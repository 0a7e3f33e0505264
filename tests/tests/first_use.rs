//! What an operator or a technician runs into first, tried as a new user
//! would: passwords typed at a prompt are not shown; logging in again
//! takes only the password; a wrong CA fingerprint and an unreachable
//! gateway each get one line saying what to check; two nodes on one data
//! directory are refused (and a crashed node's lock does not block its
//! restart); a second Ctrl-C or SIGTERM ends the drain at once.
#![allow(clippy::unwrap_used)]

use lifeline_tests::*;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn passwords_typed_at_a_prompt_are_not_shown() {
    let data = TempDir::new("gw");
    let gw = Gateway::start(data.path(), None, &[]);
    let secret = "hunter2-visible?";
    // The operator adds a technician at the prompt.
    let mut admin = Pty::spawn(&format!(
        "{} --data-dir {} admin technician add --email ada@example.com --name Ada",
        bin("gateway").display(),
        data.path().display()
    ));
    admin.wait("the password prompt", "Password for the new technician:");
    admin.type_secret(secret);
    let screen = admin.wait("the technician added", "added technician");
    assert!(
        !screen.contains(secret),
        "the password was echoed:\n{screen}"
    );
    // The technician logs in at the prompt.
    let console = Console::new();
    let mut login = Pty::spawn(&format!(
        "{} --config-dir {} login --gateway {} --ca-fingerprint {} --email ada@example.com",
        bin("tech-console").display(),
        console.dir.path().display(),
        gw.addr,
        gw.fingerprint
    ));
    login.wait("the password prompt", "Password:");
    login.type_secret(secret);
    let screen = login.wait("the login", "logged in as Ada");
    assert!(
        !screen.contains(secret),
        "the password was echoed:\n{screen}"
    );
}

#[test]
fn logging_in_again_takes_only_the_password() {
    let s = Scenario::start(&[]);
    // The login expires (its saved expiry moved into the past).
    let file = s.console.dir.path().join("login.json");
    let mut login: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    login["expires_at_ms"] = serde_json::json!(1);
    std::fs::write(&file, serde_json::to_vec(&login).unwrap()).unwrap();
    let out = s.console.run(&["queue"], "");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("only the password is asked"), "{err}");
    let again = |what: &str| {
        let out = s.console.run(
            &["login", "--password-stdin"],
            &format!("{TECH_PASSWORD}\n"),
        );
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("logged in as"));
        let q = s.console.run(&["queue"], "");
        assert!(q.status.success(), "{what}: {q:?}");
    };
    again("after expiry");
    // And after logging out (the next shift).
    assert!(s.console.run(&["logout"], "").status.success());
    again("after logout");
    // A machine that never logged in is told what to give.
    let fresh = Console::new();
    let out = fresh.run(&["login", "--password-stdin"], "x\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("first login on this machine"), "{err}");
}

/// Standard error as lines, checked to be one line.
fn one_line(out: &std::process::Output) -> String {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "more than one line:\n{err}"
    );
    err
}

#[test]
fn a_wrong_fingerprint_and_an_unreachable_gateway_each_say_what_to_check_once() {
    let data = TempDir::new("gw");
    let gw = Gateway::start(data.path(), None, &[]);
    gw.add_technician(TECH_EMAIL, TECH_NAME, TECH_PASSWORD);
    let wrong = "00".repeat(32);
    let console = Console::new();
    let err = one_line(&console.run(
        &[
            "login",
            "--gateway",
            &gw.addr,
            "--ca-fingerprint",
            &wrong,
            "--email",
            TECH_EMAIL,
            "--password-stdin",
        ],
        &format!("{TECH_PASSWORD}\n"),
    ));
    assert!(
        err.contains("has a different operator CA than the fingerprint you gave")
            && err.contains("check the fingerprint"),
        "{err}"
    );
    // Nothing listens on this port any more.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let err = one_line(&console.run(
        &[
            "login",
            "--gateway",
            &closed,
            "--ca-fingerprint",
            &gw.fingerprint,
            "--email",
            TECH_EMAIL,
            "--password-stdin",
        ],
        &format!("{TECH_PASSWORD}\n"),
    ));
    assert!(
        err.contains(&format!("cannot reach the gateway at {closed}"))
            && err.contains("check the address and port"),
        "{err}"
    );
    // In words, not the system's error code twice.
    assert!(!err.contains("os error"), "{err}");
}

#[test]
fn a_second_node_on_one_data_dir_is_refused_and_a_crash_leaves_no_lock() {
    let data = TempDir::new("gw");
    let mut first = Gateway::start(data.path(), None, &[]);
    let out = Command::new(bin("gateway"))
        .args(["--data-dir"])
        .arg(data.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--health-listen",
            "off",
            "--stun-listen",
            "off",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second node started: {err}");
    assert!(
        err.contains("another gateway is already running on the data directory")
            && err.contains(&format!("(process {})", first.pid())),
        "{err}"
    );
    // A crash (SIGKILL) leaves the lock file, not the lock.
    first.kill();
    let again = Gateway::start(data.path(), None, &[]);
    assert!(again.pid() > 0);
}

#[test]
fn a_second_stop_signal_ends_the_drain_at_once() {
    let data = TempDir::new("gw");
    let log = data.path().join("gateway.log");
    let mut gw = Gateway::start_logged(data.path(), &["--drain-timeout", "120"], &log);
    gw.add_technician(TECH_EMAIL, TECH_NAME, TECH_PASSWORD);
    let console = Console::new();
    console.login(&gw, TECH_EMAIL, TECH_PASSWORD);
    let files = TempDir::new("files");
    let path = files.path().join("applet");
    let guid = console.session_new("drain", &path);
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let mut tech = console.connect_with(&guid, &["--path", "relay"]);
    tech.event("sas");
    gw.signal("TERM");
    // The drain says how long it will wait, and how to stop it.
    wait_until("the drain's message", WAIT, || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("waiting up to 120 s") && l.contains("second Ctrl-C"))
    });
    let second = Instant::now();
    gw.signal("TERM");
    let status = gw.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    assert!(
        second.elapsed() < Duration::from_secs(15),
        "the second signal did not stop it at once: {:?}",
        second.elapsed()
    );
    // What was cut is recorded as cut (its ends may resume it), not ended.
    let audit = admin(
        data.path(),
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
    tech.event("reconnecting");
}
