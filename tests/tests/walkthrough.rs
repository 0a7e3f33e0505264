//! The README's walkthrough, end to end, on SQLite and on PostgreSQL:
//! admin adds a technician → login → session new → applet runs → queue
//! shows it → connect → chat both ways → end → the applet file is gone →
//! the audit trail shows the lifecycle.
#![allow(clippy::unwrap_used)]

use lifeline_tests::*;
use std::time::Duration;

fn walkthrough(kind: StoreKind) {
    let store = TestStore::new(kind);
    let data = TempDir::new("gw");
    let gw = Gateway::start(data.path(), store.url.as_deref(), &[]);
    gw.add_technician("ada@example.com", "Ada Lovelace", "correct horse battery");

    let console = Console::new();
    console.login(&gw, "ada@example.com", "correct horse battery");
    let files = TempDir::new("files");
    let applet_path = files.path().join("lifeline-support");
    let guid = console.session_new("printer", &applet_path);
    assert!(applet_path.exists());

    let mut applet = Proc::applet(&applet_path, &[]);
    applet.out.wait_for("Waiting for Ada Lovelace");

    let queue = console.queue();
    assert_eq!(queue.len(), 1, "queue: {queue:?}");
    assert_eq!(queue[0]["guid"], guid.as_str());
    assert_eq!(queue[0]["label"], "printer");
    assert_eq!(queue[0]["state"], "waiting");
    assert!(
        queue[0]["waiting_from"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );

    let mut tech = console.connect("printer");
    assert_eq!(tech.event("paired")["guid"], guid.as_str());
    let sas = tech.event("sas")["code"].as_str().unwrap().to_owned();
    applet.out.wait_for(&format!("Verification code: {sas}"));

    tech.send("say Hello, I am here to help");
    applet
        .out
        .wait_for("Ada Lovelace: Hello, I am here to help");
    applet.send("My printer is on fire");
    assert_eq!(tech.event("chat")["text"], "My printer is on fire");

    tech.send("end all fixed");
    let ended = tech.event("ended");
    assert_eq!(ended["by"], "technician");
    assert_eq!(ended["reason"], "all fixed");
    assert!(tech.wait_exit(Duration::from_secs(20)).success());

    applet.out.wait_for("Session ended");
    assert!(applet.wait_exit(Duration::from_secs(20)).success());
    applet.rest();
    assert!(
        !applet_path.exists(),
        "the applet must delete itself after the session"
    );

    let events: Vec<String> = gw
        .audit(Some(&guid))
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    for expected in [
        "created",
        "applet downloaded",
        "waiting",
        "paired",
        "relay ended",
        "ended",
    ] {
        assert!(
            events.iter().any(|e| e == expected),
            "audit lacks {expected:?}: {events:?}"
        );
    }
    let relay_end = gw
        .audit(Some(&guid))
        .into_iter()
        .find(|e| e["event"] == "relay ended")
        .unwrap();
    assert!(
        relay_end["detail"]
            .as_str()
            .unwrap()
            .contains("bytes applet→console")
    );
    // The console's session key is gone with the session.
    assert!(!console.dir.path().join("sessions").join(&guid).exists());
}

#[test]
fn walkthrough_on_sqlite() {
    walkthrough(StoreKind::Sqlite);
}

#[test]
fn walkthrough_on_postgres() {
    walkthrough(StoreKind::Postgres);
}
