//! The end user can end the session at any time: by typing /end or by
//! Ctrl-C, while chatting or while still waiting. The technician is told,
//! and the applet removes itself.
#![allow(clippy::unwrap_used)]

use lifeline_tests::*;
use std::time::Duration;

struct Setup {
    _data: TempDir,
    gw: Gateway,
    console: Console,
    files: TempDir,
}

fn setup() -> Setup {
    let data = TempDir::new("gw");
    let gw = Gateway::start(data.path(), None, &[]);
    gw.add_technician("ada@example.com", "Ada", "correct horse battery");
    let console = Console::new();
    console.login(&gw, "ada@example.com", "correct horse battery");
    Setup {
        _data: data,
        gw,
        console,
        files: TempDir::new("files"),
    }
}

fn paired(s: &Setup, label: &str) -> (Proc, Proc, std::path::PathBuf) {
    let path = s.files.path().join(label);
    s.console.session_new(label, &path);
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for("Waiting for Ada");
    let mut tech = s.console.connect(label);
    tech.event("sas");
    applet.out.wait_for("Verification code");
    (applet, tech, path)
}

#[test]
fn typing_end_ends_the_session_for_both() {
    let s = setup();
    let (mut applet, mut tech, path) = paired(&s, "typed");
    applet.send("/end");
    let ended = tech.event("ended");
    assert_eq!(ended["by"], "user");
    assert!(tech.wait_exit(Duration::from_secs(20)).success());
    applet.out.wait_for("you ended the session");
    assert!(applet.wait_exit(Duration::from_secs(20)).success());
    assert!(!path.exists());
}

/// A signal to the applet ends the session as `/end` does: the technician
/// is told the user ended it, the audit says so, and the file is gone.
fn signal_ends_the_session_for_both(signal: &str) {
    let s = setup();
    let (mut applet, mut tech, path) = paired(&s, signal);
    let _ = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(applet.child.id().to_string())
        .status();
    assert_eq!(tech.event("ended")["by"], "user");
    assert!(applet.wait_exit(Duration::from_secs(20)).success());
    assert!(!path.exists());
    let _ = s.gw.audit(None);
}

#[test]
fn ctrl_c_ends_the_session_for_both() {
    signal_ends_the_session_for_both("INT");
}

/// Closing the terminal window the applet runs in (SIGHUP).
#[test]
fn a_closed_window_ends_the_session_for_both() {
    signal_ends_the_session_for_both("HUP");
}

#[test]
fn ending_while_waiting_leaves_the_queue() {
    let s = setup();
    let path = s.files.path().join("waiting");
    s.console.session_new("waiting", &path);
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for("Waiting for Ada");
    assert_eq!(s.console.queue().len(), 1);
    applet.send("/end");
    applet
        .out
        .wait_for("You stopped before your technician connected");
    assert!(applet.wait_exit(Duration::from_secs(20)).success());
    assert!(!path.exists());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !s.console.queue().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the applet still shows as waiting"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
