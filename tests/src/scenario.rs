//! The start of most scenarios and the steps they share: a gateway with a
//! technician logged in, pairing, chatting, link tests, ending.

use crate::*;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The technician every [`Scenario`] creates.
pub const TECH_EMAIL: &str = "ada@example.com";
/// Their display name.
pub const TECH_NAME: &str = "Ada Lovelace";
/// Their password.
pub const TECH_PASSWORD: &str = "correct horse battery";

/// A gateway on its own SQLite data directory with one technician
/// ([`TECH_EMAIL`]) added and logged in: the start of most scenarios.
/// Fields drop in order, so the gateway stops before its directory goes.
#[derive(Debug)]
pub struct Scenario {
    /// The running gateway.
    pub gw: Gateway,
    /// The technician's logged-in console profile.
    pub console: Console,
    /// A scratch directory for applets and other files.
    pub files: TempDir,
    /// The gateway's data directory.
    pub data: TempDir,
}

impl Scenario {
    /// Starts a gateway with `extra` `serve` flags, adds and logs in the
    /// technician.
    pub fn start(extra: &[&str]) -> Self {
        let data = TempDir::new("gw");
        let gw = Gateway::start(data.path(), None, extra);
        gw.add_technician(TECH_EMAIL, TECH_NAME, TECH_PASSWORD);
        let console = Console::new();
        console.login(&gw, TECH_EMAIL, TECH_PASSWORD);
        Self {
            gw,
            console,
            files: TempDir::new("files"),
            data,
        }
    }

    /// Creates a session labelled `label`; its applet is saved as
    /// `files/<label>`. Returns the applet's path and the GUID.
    pub fn session(&self, label: &str) -> (PathBuf, String) {
        self.session_with(label, &[])
    }

    /// [`session`](Self::session) with extra `session new` flags.
    pub fn session_with(&self, label: &str, extra: &[&str]) -> (PathBuf, String) {
        let path = self.files.path().join(label);
        let guid = self.console.session_new_with(label, &path, extra);
        assert!(
            path.exists(),
            "session new did not write {}",
            path.display()
        );
        (path, guid)
    }
}

/// Connects the console to the waiting applet of session `target` (label
/// or GUID `guid`), and waits until both ends show the same verification
/// code. Returns the console process and the code.
pub fn pair(console: &Console, applet: &mut Proc, target: &str, guid: &str) -> (Proc, String) {
    pair_with(console, applet, target, guid, &[])
}

/// [`pair`] with extra `connect` flags (e.g. `["--path", "relay"]`).
pub fn pair_with(
    console: &Console,
    applet: &mut Proc,
    target: &str,
    guid: &str,
    extra: &[&str],
) -> (Proc, String) {
    let mut tech = console.connect_with(target, extra);
    assert_eq!(tech.event("paired")["guid"], guid);
    let sas = tech.event("sas")["code"].as_str().unwrap().to_owned();
    applet.out.wait_for(&format!("Verification code: {sas}"));
    (tech, sas)
}

/// Chats one line each way and checks it arrived.
pub fn chat_both_ways(tech: &mut Proc, applet: &mut Proc, from_tech: &str, from_user: &str) {
    tech.send(&format!("say {from_tech}"));
    applet.out.wait_for(&format!("{TECH_NAME}: {from_tech}"));
    applet.send(from_user);
    let ev = tech.event("chat");
    assert_eq!(ev["text"], from_user, "chat event: {ev}");
}

/// Waits (up to `within`) for the console's `path` event and both
/// directions of a `linktest … both` of `bytes`; checks every byte arrived
/// (the receivers verify each one). Returns the `path` event, with
/// `seen_after_secs`: how long after this call it came.
pub fn await_path_and_linktests(
    tech: &mut Proc,
    applet: &Proc,
    bytes: u64,
    within: Duration,
) -> Value {
    let started = Instant::now();
    let deadline = started + within;
    let (mut path, mut done) = (None, Vec::new());
    while path.is_none() || done.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = tech.out.next(left).unwrap_or_else(|| {
            panic!(
                "no path/linktest events; console output:\n{}\napplet output:\n{}",
                tech.out.seen.join("\n"),
                applet.out.seen.join("\n")
            )
        });
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        match v["event"].as_str() {
            Some("path") => {
                let mut v = v;
                v["seen_after_secs"] = serde_json::json!((Instant::now() - started).as_secs_f64());
                path = Some(v);
            }
            Some("linktest") if v["state"] == "done" => done.push(v),
            Some("error" | "ended") => panic!("session failed: {v}"),
            _ => {}
        }
    }
    for d in &done {
        assert_eq!(d["ok"], true, "{d}");
        assert_eq!(d["bytes"], bytes, "{d}");
        eprintln!(
            "link test {}: {:.1} MB/s",
            d["direction"],
            d["mbps"].as_f64().unwrap_or(0.0)
        );
    }
    let mut dirs: Vec<&str> = done
        .iter()
        .filter_map(|d| d["direction"].as_str())
        .collect();
    dirs.sort_unstable();
    assert_eq!(dirs, ["from_user", "to_user"]);
    path.unwrap_or_default()
}

/// The technician ends the session; the console shows it within seconds
/// (a technician's "end" is not a wait), and both ends exit successfully.
pub fn end_session(tech: &mut Proc, applet: &mut Proc) {
    let asked = Instant::now();
    tech.send("end done");
    assert_eq!(tech.event("ended")["by"], "technician");
    // It took 9 s once, for remote work that had nothing left to do; the
    // bound leaves room for the 3 s the ending end may wait for the other.
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "the console took {:.1?} to show the end",
        asked.elapsed()
    );
    assert!(tech.wait_exit(Duration::from_secs(20)).success());
    applet.out.wait_for("Session ended");
    assert!(applet.wait_exit(Duration::from_secs(20)).success());
}

/// After the session's path died: waits for the console's `resumed` event
/// and then both link-test verdicts, each of every one of `bytes` (a
/// verdict before the resumption means the path died after the tests, not
/// during them). Returns the seconds from `since` to the resumption.
pub fn await_resumption_and_linktests(tech: &mut Proc, bytes: u64, since: Instant) -> f64 {
    let (mut done, mut resumed) = (0, None);
    while done < 2 || resumed.is_none() {
        let v = tech.event_any();
        match v["event"].as_str() {
            Some("resumed") => resumed = Some(since.elapsed().as_secs_f64()),
            Some("linktest") if v["state"] == "done" => {
                assert!(
                    resumed.is_some(),
                    "a link test ended before the resumption: {v}"
                );
                assert_eq!(
                    (&v["ok"], v["bytes"].as_u64()),
                    (&Value::Bool(true), Some(bytes)),
                    "{v}"
                );
                done += 1;
            }
            Some("ended" | "error") => panic!("session failed: {v}"),
            _ => {}
        }
    }
    resumed.unwrap_or_default()
}

/// A session labelled `label` that has moved to direct TCP: the applet
/// listens on a fixed port (so a test can cut that path) and both ends
/// count the path as dead after `dead_path_secs` of silence. Returns the
/// applet, the console, the GUID and the port.
pub fn on_direct_tcp(s: &Scenario, label: &str, dead_path_secs: &str) -> (Proc, Proc, String, u16) {
    let (applet_path, guid) = s.session(label);
    let port = free_listen_port();
    let mut applet = Proc::applet(
        &applet_path,
        &[
            "--tcp-port",
            &port.to_string(),
            "--dead-path",
            dead_path_secs,
        ],
    );
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let (mut tech, _) = pair_with(
        &s.console,
        &mut applet,
        &guid,
        &guid,
        &["--path", "tcp", "--dead-path", dead_path_secs],
    );
    let path = tech.event("path");
    assert_eq!(path["path"], "tcp", "{path}");
    (applet, tech, guid, port)
}
