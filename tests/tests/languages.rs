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
