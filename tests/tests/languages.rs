//! The applet speaks the end user's language — the system's locale — from
//! the greeting to the end, with the real binaries.
#![allow(clippy::unwrap_used)]

use lifeline_tests::*;
use std::process::Command;

/// Starts a session's applet with `env`, pairs, chats one line, and has
/// the technician end it; returns everything the applet printed.
fn session_in(s: &Scenario, label: &str, env: &[(&str, &str)], waiting: &str) -> String {
    let (path, guid) = s.session(label);
    let mut cmd = Command::new(&path);
    cmd.env_remove("LIFELINE_LANG")
        .env_remove("LANGUAGE")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut applet = Proc::spawn(&mut cmd);
    applet.out.wait_for(waiting);
    let mut tech = s.console.connect(&guid);
    assert_eq!(tech.event("paired")["guid"], guid);
    let code = tech.event("sas")["code"].as_str().unwrap().to_owned();
    applet.out.wait_for(&code);
    tech.send("say hallo");
    applet.out.wait_for(&format!("{TECH_NAME}: hallo"));
    tech.send("end");
    tech.event("ended");
    applet.wait_exit(WAIT);
    applet.rest().join("\n")
}

#[test]
fn the_applet_speaks_german_dutch_or_english_by_the_locale() {
    let s = Scenario::start(&[]);
    let de = session_in(&s, "de", &[("LANG", "de_DE.UTF-8")], "Warten, bis");
    for want in [
        "möchte Ihnen helfen",
        "Prüfcode:",
        "Sitzung beendet:",
        "hat die Sitzung beendet",
        "hat sich selbst entfernt",
    ] {
        assert!(de.contains(want), "German: no {want:?} in\n{de}");
    }
    let nl = session_in(&s, "nl", &[("LANG", "nl_NL.UTF-8")], "Wachten tot");
    for want in [
        "wil u helpen",
        "Controlecode:",
        "Sessie beëindigd:",
        "heeft zichzelf verwijderd",
    ] {
        assert!(nl.contains(want), "Dutch: no {want:?} in\n{nl}");
    }
    // LC_ALL wins over LANG; anything else is English.
    let en = session_in(
        &s,
        "en",
        &[("LANG", "nl_NL.UTF-8"), ("LC_ALL", "fr_FR.UTF-8")],
        "Waiting for",
    );
    for want in [
        "would like to help you",
        "Verification code:",
        "Session ended:",
    ] {
        assert!(en.contains(want), "English: no {want:?} in\n{en}");
    }
    for text in [&de, &nl, &en] {
        assert!(
            !text.contains("development build") && !text.contains("http"),
            "{text}"
        );
    }
}

/// Everything the applet printed until it exited (it must exit by itself
/// within `within`).
fn run_to_exit(cmd: &mut Command, within: std::time::Duration) -> String {
    let mut applet = Proc::spawn(cmd);
    applet.wait_exit(within);
    applet.rest().join("\n")
}

/// What a person must never read: a library's error text, a developer's
/// address, a build kind.
fn assert_plain(text: &str) {
    for never in [
        "os error",
        "Connection refused",
        "io error",
        "tls",
        "rustls",
        "docs.rs",
        "http",
        "development build",
        "{",
    ] {
        assert!(
            !text.contains(never),
            "{never:?} shown to the end user:\n{text}"
        );
    }
}

fn applet_cmd(path: &std::path::Path, lang: &str) -> Command {
    let mut cmd = Command::new(path);
    cmd.env("LIFELINE_LANG", lang);
    cmd
}

/// An unreachable support service, a refused session, an ended session and
/// a changed applet: each a plain sentence that says what to do.
#[test]
fn trouble_is_told_in_plain_words_with_what_to_do() {
    let mut s = Scenario::start(&[]);

    // A refused session (ended before the applet came): in each language.
    let (path, guid) = s.session("refused");
    let out = s.console.run(&["session", "end", &guid], "");
    assert!(out.status.success(), "{out:?}");
    for (lang, want) in [
        (
            "en",
            "has already ended. Please ask your technician for a new one.",
        ),
        (
            "de",
            "ist bereits beendet. Bitte fragen Sie Ihren Techniker nach einer neuen.",
        ),
        ("nl", "is al beëindigd. Vraag uw technicus om een nieuwe."),
    ] {
        // The first run removes itself (the session is over): a copy each.
        let copy = s.files.path().join(format!("refused-{lang}"));
        std::fs::copy(&path, &copy).unwrap();
        let text = run_to_exit(&mut applet_cmd(&copy, lang), WAIT);
        assert!(text.contains(want), "{lang}: {text}");
        assert_plain(&text);
    }

    // A changed applet.
    let (path, _) = s.session("changed");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let text = run_to_exit(&mut applet_cmd(&path, "en"), WAIT);
    assert!(
        text.contains("has been changed since it was issued")
            && text.contains("Please ask your technician for a new one"),
        "{text}"
    );
    assert_plain(&text);

    // The technician ends the session.
    let (path, guid) = s.session("ended");
    let mut applet = Proc::spawn(&mut applet_cmd(&path, "nl"));
    applet.out.wait_for("Wachten tot");
    let mut tech = s.console.connect(&guid);
    tech.event("sas");
    tech.send("end");
    tech.event("ended");
    applet.wait_exit(WAIT);
    let text = applet.rest().join("\n");
    assert!(
        text.contains(&format!(
            "Sessie beëindigd: {TECH_NAME} heeft de sessie beëindigd."
        )),
        "{text}"
    );
    assert_plain(&text);

    // The support service cannot be reached (it is gone): the applet keeps
    // trying and says so, then the end user ends it.
    let (path, _) = s.session("unreachable");
    s.gw.kill();
    let mut applet = Proc::spawn(&mut applet_cmd(&path, "de"));
    applet
        .out
        .wait_for("ist noch nicht erreichbar (ist dieser Computer mit dem Internet verbunden?)");
    applet.send("/end");
    applet.wait_exit(WAIT);
    let text = applet.rest().join("\n");
    assert!(
        text.contains("Sie haben beendet, bevor Ihr Techniker sich verbunden hat."),
        "{text}"
    );
    assert_plain(&text);
}
