//! The console's line mode on a real terminal: commands are recognised
//! exactly, a typo or an unknown command stays on the technician's screen
//! with a hint (never sent to the end user as chat), `/help` lists the
//! commands, and `//` sends a chat line that starts with a slash. A line
//! arriving while the technician types is printed above the line being
//! typed, which stays whole; Up recalls earlier lines; Ctrl-D ends nothing
//! on either side (what is typed afterwards, `/end` included, still counts).
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

#[test]
fn the_line_being_typed_stays_whole_and_up_recalls_the_last() {
    let s = Scenario::start(&[]);
    let (path, _guid) = s.session("typing");
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let mut pty = Pty::spawn(&format!(
        "{} --config-dir {} connect typing --path relay",
        bin("tech-console").display(),
        s.console.dir.path().display()
    ));
    pty.wait("the verification code", "Verification code");
    pty.type_text("Hello, I will look");
    pty.wait("the typed text", "> Hello, I will look");
    applet.send("it says PC LOAD LETTER");
    // The end user's line, then the prompt with the typed text again.
    pty.wait(
        "the end user's line above the typed text",
        "end user: it says PC LOAD LETTER\r\n> Hello, I will look",
    );
    pty.type_line(" at your printer.");
    let said = format!("{TECH_NAME}: Hello, I will look at your printer.");
    applet.out.wait_for(&said);
    // Up recalls it; Enter sends it again.
    pty.type_text("\x1b[A\r");
    applet.out.wait_for(&said);
    // Ctrl-D ends nothing; /end after it still ends the session.
    pty.type_text("\x04");
    pty.wait("the Ctrl-D hint", "Ctrl-D does not end the session here");
    pty.type_line("/end");
    applet.out.wait_for("Session ended");
    assert!(applet.wait_exit(Duration::from_secs(20)).success());
}

#[test]
fn ctrl_d_on_the_applet_s_terminal_does_not_stop_its_input() {
    let s = Scenario::start(&[]);
    let (path, _guid) = s.session("eof");
    let mut pty = Pty::spawn(&format!("env LIFELINE_NO_WINDOW=1 {}", path.display()));
    pty.wait("the applet waiting", &format!("Waiting for {TECH_NAME}"));
    let mut tech = s.console.connect("eof");
    tech.event("sas");
    pty.wait("the session", "connected");
    pty.type_text("\x04");
    // What the end user types afterwards still counts.
    pty.type_line("still here");
    let chat = tech.event("chat");
    assert_eq!(chat["text"], "still here", "{chat}");
    pty.type_line("/end");
    let ended = tech.event("ended");
    assert_eq!(ended["by"], "user", "{ended}");
}
