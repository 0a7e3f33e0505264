//! The console's line mode on a real terminal: commands are recognised
//! exactly, a typo or an unknown command stays on the technician's screen
//! with a hint (never sent to the end user as chat), `/help` lists the
//! commands, and `//` sends a chat line that starts with a slash.
#![allow(clippy::unwrap_used)]

use lifeline_tests::*;
use std::time::Duration;

#[test]
fn commands_are_exact_and_a_typo_never_reaches_the_end_user() {
    let s = Scenario::start(&[]);
    let (path, _guid) = s.session("line");
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let mut pty = Pty::spawn(&format!(
        "{} --config-dir {} connect line --path relay",
        bin("tech-console").display(),
        s.console.dir.path().display()
    ));
    pty.wait("the verification code", "Verification code");

    // Once this ended the session: now it is an unknown command.
    pty.type_line("/endpoint config is wrong");
    pty.wait("the refusal of /endpoint", "unknown command /endpoint");
    pty.type_line("/stauts");
    pty.wait("the refusal of a typo", "unknown command /stauts");
    pty.type_line("/help");
    pty.wait("the list of commands", "/linktest SIZE");
    // Chat, with and without a leading slash.
    pty.type_line("//endpoint config is wrong");
    applet
        .out
        .wait_for(&format!("{TECH_NAME}: /endpoint config is wrong"));
    pty.type_line("back in a minute");
    applet
        .out
        .wait_for(&format!("{TECH_NAME}: back in a minute"));
    let seen = applet.out.seen.join("\n");
    for never in ["stauts", "/help"] {
        assert!(
            !seen.contains(never),
            "{never:?} reached the end user:\n{seen}"
        );
    }
    assert!(
        applet
            .out
            .seen
            .iter()
            .filter(|l| l.contains("config is wrong"))
            .count()
            == 1,
        "{seen}"
    );
    // The session went on through all of it; /end ends it.
    pty.type_line("/end");
    applet.out.wait_for("Session ended");
    assert!(applet.wait_exit(Duration::from_secs(20)).success());
}
