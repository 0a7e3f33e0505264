//! Remote work with the end user's consent, with the real binaries: the
//! technician's console in batch mode asks, the applet asks the end user
//! (who answers on its standard input), and the work happens — a shell in
//! a pseudo-terminal, a command, files both ways, system information —
//! or is refused with the rule that refused it. The gateway's audit trail
//! records every decision and every file with its hash.
#![allow(clippy::unwrap_used)]

use lifeline_tests::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A gateway whose technicians' group allows `permissions`, and an empty
/// home folder for the end user (their Downloads folder is in it).
struct Work {
    s: Scenario,
    home: TempDir,
}

fn work(permissions: &str) -> Work {
    let s = Scenario::start(&[]);
    let out =
        s.gw.admin(&["group", "permissions", "default", permissions], "");
    assert!(out.status.success(), "{out:?}");
    Work {
        s,
        home: TempDir::new("home"),
    }
}

impl Work {
    fn downloads(&self) -> PathBuf {
        self.home.path().join("Downloads")
    }

    /// A paired session (applet with its own home; `connect` with `extra`).
    fn pair(&self, label: &str, applet_args: &[&str], extra: &[&str]) -> (Proc, Proc, String) {
        self.pair_env(label, applet_args, extra, &[])
    }

    /// [`Work::pair`] with extra environment for the applet.
    fn pair_env(
        &self,
        label: &str,
        applet_args: &[&str],
        extra: &[&str],
        env: &[(&str, &Path)],
    ) -> (Proc, Proc, String) {
        let (path, guid) = self.s.session(label);
        let mut cmd = Command::new(&path);
        cmd.args(applet_args)
            .env("HOME", self.home.path())
            .current_dir(self.home.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut applet = Proc::spawn(&mut cmd);
        applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
        let (tech, _) = pair_with(&self.s.console, &mut applet, &guid, &guid, extra);
        (applet, tech, guid)
    }

    fn audit(&self, guid: &str) -> Vec<String> {
        self.s
            .gw
            .audit(Some(guid))
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e["event"].as_str().unwrap_or(""),
                    e["detail"].as_str().unwrap_or("")
                )
            })
            .collect()
    }
}

/// The next console event matching `f` (others are kept in `seen`);
/// fails on an error or the end.
fn until(tech: &mut Proc, what: &str, within: Duration, f: impl Fn(&Value) -> bool) -> Value {
    tech.event_until(what, within, f)
}

fn consent(tech: &mut Proc, decision: &str) -> Value {
    until(tech, &format!("consent {decision}"), WAIT, |v| {
        v["event"] == "consent" && v["decision"] == decision
    })
}

/// The applet shows a prompt; the end user answers.
fn answer(applet: &mut Proc, yes: bool) {
    applet.out.wait_for("Allow it?");
    applet.send(if yes { "yes" } else { "no" });
}

/// Shell output until it contains `needle`.
fn shell_until(tech: &mut Proc, needle: &str) -> String {
    let mut text = String::new();
    while !text.contains(needle) {
        let v = until(tech, needle, WAIT, |v| {
            v["event"] == "shell_output" || v["event"] == "exited"
        });
        assert_eq!(
            v["event"], "shell_output",
            "the shell ended early: {v}; {text}"
        );
        text.push_str(v["data"].as_str().unwrap());
    }
    text
}

fn open_shell(tech: &mut Proc, applet: &mut Proc) {
    tech.send("shell 80x24");
    consent(tech, "asked");
    applet
        .out
        .wait_for("asks to use a command prompt on this computer");
    applet.out.wait_for("type commands on this computer as you");
    answer(applet, true);
    consent(tech, "granted");
    until(tech, "started", WAIT, |v| v["event"] == "started");
    applet.out.wait_for("opened a command prompt");
}

#[test]
fn a_granted_shell_runs_commands_follows_resizes_and_reports_its_exit() {
    let w = work("all");
    let (mut applet, mut tech, guid) = w.pair("shell", &[], &[]);
    open_shell(&mut tech, &mut applet);
    tech.send("keys echo hi-$((6*7))");
    shell_until(&mut tech, "hi-42");
    tech.send("resize 100 30");
    tech.send("keys stty size");
    shell_until(&mut tech, "30 100");
    tech.send("keys exit 3");
    let exited = until(&mut tech, "exited", WAIT, |v| v["event"] == "exited");
    assert_eq!(exited["code"], 3, "{exited}");
    applet.out.wait_for("command prompt was closed");
    // A command without a terminal: output and exit status. The grant
    // holds for the session: nobody is asked again.
    tech.send("run echo out; echo err >&2; exit 5");
    let mut output = String::new();
    let exited = loop {
        let v = until(&mut tech, "command", WAIT, |v| {
            v["event"] == "output" || v["event"] == "exited" || v["event"] == "consent"
        });
        assert_ne!(v["event"], "consent", "asked again: {v}");
        if v["event"] == "exited" {
            break v;
        }
        output.push_str(v["data"].as_str().unwrap());
    };
    assert_eq!(exited["code"], 5, "{exited}");
    assert!(
        output.contains("out") && output.contains("err"),
        "{output:?}"
    );
    end_session(&mut tech, &mut applet);
    let audit = w.audit(&guid);
    for want in [
        "run-command: asked",
        "run-command: granted",
        "shell opened",
        "command",
    ] {
        assert!(
            audit.iter().any(|l| l.contains(want)),
            "no {want:?} in {audit:#?}"
        );
    }
}

#[test]
fn refused_and_unanswered_requests_are_refused_and_say_why() {
    let w = work("all");
    let (mut applet, mut tech, guid) = w.pair("no", &[], &[]);
    tech.send("sysinfo");
    answer(&mut applet, false);
    consent(&mut tech, "refused");
    let r = until(&mut tech, "refused", WAIT, |v| v["event"] == "refused");
    assert_eq!(r["reason"], "the end user said no", "{r}");
    // No answer within 60 s is a no.
    let asked = Instant::now();
    tech.send("shell");
    applet.out.wait_for("Allow it?");
    until(
        &mut tech,
        "consent timed_out",
        Duration::from_secs(90),
        |v| v["event"] == "consent" && v["decision"] == "timed_out",
    );
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_secs(59) && waited < Duration::from_secs(75),
        "{waited:?}"
    );
    let r = until(&mut tech, "refused", WAIT, |v| v["event"] == "refused");
    assert!(r["reason"].as_str().unwrap().contains("60 seconds"), "{r}");
    applet.out.wait_for("No answer within 60 seconds");
    end_session(&mut tech, &mut applet);
    let audit = w.audit(&guid);
    for want in ["system-info: refused", "run-command: timed_out"] {
        assert!(
            audit.iter().any(|l| l.contains(want)),
            "no {want:?} in {audit:#?}"
        );
    }
}

fn sleepers(marker: &str) -> usize {
    let out = Command::new("pgrep").args(["-f", marker]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn withdrawing_mid_shell_kills_the_shell_at_once() {
    let w = work("all");
    let (mut applet, mut tech, guid) = w.pair("withdraw", &[], &[]);
    open_shell(&mut tech, &mut applet);
    tech.send("keys sleep 4243.5");
    wait_until("the shell's sleep", WAIT, || {
        (sleepers("sleep 4243.5") == 1).then_some(())
    });
    applet.send("/grants");
    applet.out.wait_for("Running now: a command prompt");
    let withdrawn = Instant::now();
    applet.send("/withdraw");
    // Both, in either order.
    let (mut exited, mut decided) = (None, false);
    while exited.is_none() || !decided {
        let v = until(&mut tech, "exited and withdrawn", WAIT, |v| {
            v["event"] == "exited" || v["event"] == "consent"
        });
        if v["event"] == "exited" {
            exited = Some(v);
        } else {
            assert_eq!(v["decision"], "withdrawn", "{v}");
            decided = true;
        }
    }
    let exited = exited.unwrap();
    assert!(exited["code"].is_null(), "{exited}");
    assert!(
        exited["detail"].as_str().unwrap().contains("withdrew"),
        "{exited}"
    );
    wait_until("the sleep gone", Duration::from_secs(5), || {
        (sleepers("sleep 4243.5") == 0).then_some(())
    });
    eprintln!(
        "shell gone {:.0} ms after /withdraw",
        withdrawn.elapsed().as_secs_f64() * 1e3
    );
    // Withdrawn means asked again.
    tech.send("shell");
    consent(&mut tech, "asked");
    answer(&mut applet, false);
    consent(&mut tech, "refused");
    end_session(&mut tech, &mut applet);
    assert!(
        w.audit(&guid)
            .iter()
            .any(|l| l.contains("run-command: withdrawn"))
    );
}

#[test]
fn the_single_prompt_grants_a_set_for_the_session_where_the_policy_allows_it() {
    let w = work("run-command,system-info,single-prompt");
    let (mut applet, mut tech, guid) = w.pair("single", &[], &[]);
    tech.send("ask run-command,system-info session");
    applet.out.wait_for("for the rest of this session");
    answer(&mut applet, true);
    let granted = consent(&mut tech, "granted");
    assert_eq!(granted["whole_session"], true, "{granted}");
    tech.send("sysinfo");
    let info = until(&mut tech, "system_info", WAIT, |v| {
        assert_ne!(v["event"], "consent", "asked again: {v}");
        v["event"] == "system_info"
    });
    assert!(info["info"]["cpus"].as_u64().unwrap() >= 1, "{info}");
    assert!(
        !info["info"]["hostname"].as_str().unwrap().is_empty(),
        "{info}"
    );
    end_session(&mut tech, &mut applet);
    assert!(
        w.audit(&guid)
            .iter()
            .any(|l| l.contains("system-info, run-command: granted (whole session)")),
        "{:#?}",
        w.audit(&guid)
    );

    // Without the policy, the single prompt is refused by the applet, and
    // each action asks on its own.
    let w = work("run-command,system-info");
    let (mut applet, mut tech, _) = w.pair("no-single", &[], &[]);
    tech.send("ask run-command,system-info session");
    consent(&mut tech, "not_allowed");
    let r = until(&mut tech, "refused", WAIT, |v| v["event"] == "refused");
    assert!(
        r["reason"].as_str().unwrap().contains("whole session"),
        "{r}"
    );
    tech.send("sysinfo");
    consent(&mut tech, "asked");
    answer(&mut applet, true);
    until(&mut tech, "system_info", WAIT, |v| {
        v["event"] == "system_info"
    });
    end_session(&mut tech, &mut applet);
}

#[test]
fn a_group_without_file_transfer_is_refused_by_the_applet_without_asking() {
    let w = work("run-command");
    let (mut applet, mut tech, guid) = w.pair("nofiles", &[], &[]);
    let file = w.s.files.path().join("note.txt");
    std::fs::write(&file, b"hello").unwrap();
    tech.send(&format!("send {}", file.display()));
    let t = until(&mut tech, "refused transfer", WAIT, |v| {
        v["event"] == "transfer" && v["state"] != "started" && v["state"] != "progress"
    });
    assert_eq!(t["state"], "refused", "{t}");
    assert!(
        t["detail"]
            .as_str()
            .unwrap()
            .contains("does not allow file-to-user"),
        "{t}"
    );
    tech.send("fetch /etc/hostname");
    let r = until(&mut tech, "refused", WAIT, |v| v["event"] == "refused");
    assert!(
        r["reason"].as_str().unwrap().contains("file-from-user"),
        "{r}"
    );
    end_session(&mut tech, &mut applet);
    assert!(
        !applet.out.seen.iter().any(|l| l.contains("Allow it?")),
        "the end user was asked: {:#?}",
        applet.out.seen
    );
    assert!(!w.downloads().join("note.txt").exists());
    let audit = w.audit(&guid);
    assert!(
        audit
            .iter()
            .any(|l| l.contains("file-to-user: not_allowed")),
        "{audit:#?}"
    );
}

/// Writes `size` pseudo-random bytes to `path`.
fn random_file(path: &Path, size: usize, seed: u8) {
    let mut data = vec![0u8; size];
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(seed);
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    std::fs::write(path, data).unwrap();
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// The end of transfer `name` (saved, failed, …).
fn transfer_end(tech: &mut Proc, name: &str, within: Duration) -> Value {
    until(tech, &format!("the end of {name}"), within, |v| {
        v["event"] == "transfer"
            && v["name"] == name
            && !matches!(v["state"].as_str(), Some("started" | "progress"))
    })
}

#[test]
fn files_and_folders_go_both_ways_byte_exact_with_their_hashes_audited() {
    let w = work("all");
    let (mut applet, mut tech, guid) = w.pair("files", &[], &[]);
    let big = w.s.files.path().join("big.bin");
    random_file(&big, 200 << 20, 1);
    let started = Instant::now();
    tech.send(&format!("send {}", big.display()));
    applet.out.wait_for("asks to send you files");
    answer(&mut applet, true);
    let done = transfer_end(&mut tech, "big.bin", Duration::from_secs(300));
    let secs = started.elapsed().as_secs_f64();
    eprintln!("200 MiB to the end user in {secs:.1} s");
    assert_eq!(done["state"], "saved", "{done}");
    let want = sha256(&big);
    assert_eq!(done["sha256"], want.as_str());
    assert_eq!(sha256(&w.downloads().join("big.bin")), want);
    applet.out.wait_for("Saved ");

    // A folder tree, to the end user and back.
    let tree = w.s.files.path().join("tree");
    std::fs::create_dir_all(tree.join("a/b")).unwrap();
    random_file(&tree.join("top.txt"), 1000, 2);
    random_file(&tree.join("a/mid.bin"), 3 << 20, 3);
    random_file(&tree.join("a/b/deep.bin"), 70_000, 4);
    std::fs::write(tree.join("a/b/empty"), b"").unwrap();
    tech.send(&format!("send {}", tree.display()));
    let id = until(&mut tech, "sending", WAIT, |v| v["event"] == "sending")["id"].clone();
    let fin = until(&mut tech, "sent tree", WAIT, |v| {
        v["event"] == "transfer_finished" && v["id"] == id
    });
    assert_eq!(fin["files"], 4, "{fin}");
    for f in ["top.txt", "a/mid.bin", "a/b/deep.bin", "a/b/empty"] {
        assert_eq!(
            sha256(&w.downloads().join("tree").join(f)),
            sha256(&tree.join(f)),
            "{f}"
        );
    }
    // 200 MiB back from the end user: the folder it is in is granted...
    let back = w.s.files.path().join("back");
    tech.send(&format!("fetch ~/Downloads/big.bin {}", back.display()));
    applet
        .out
        .wait_for("asks to see and copy the files in the folder");
    answer(&mut applet, true);
    let done = transfer_end(&mut tech, "big.bin", Duration::from_secs(300));
    assert_eq!(done["state"], "saved", "{done}");
    assert_eq!(sha256(&back.join("big.bin")), want);
    // ... and so is what is below it: the tree comes back without a
    // question.
    tech.send(&format!("fetch ~/Downloads/tree {}", back.display()));
    let fetch = until(&mut tech, "requested", WAIT, |v| v["event"] == "requested")["id"].clone();
    let fin = until(&mut tech, "fetched tree", Duration::from_secs(60), |v| {
        assert_ne!(v["event"], "consent", "asked again: {v}");
        v["event"] == "transfer_finished" && v["id"] == fetch
    });
    assert_eq!(fin["files"], 4, "{fin}");
    for f in ["top.txt", "a/mid.bin", "a/b/deep.bin", "a/b/empty"] {
        assert_eq!(
            sha256(&back.join("tree").join(f)),
            sha256(&tree.join(f)),
            "{f}"
        );
    }
    // A listing of a granted folder.
    tech.send("ls ~/Downloads");
    let ls = until(&mut tech, "listing", WAIT, |v| v["event"] == "listing");
    let names: Vec<&str> = ls["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tree", "big.bin"], "{ls}");
    end_session(&mut tech, &mut applet);
    let audit = w.audit(&guid);
    assert!(
        audit
            .iter()
            .any(|l| l.contains("big.bin") && l.contains(&want) && l.contains("to user")),
        "{audit:#?}"
    );
    assert!(
        audit
            .iter()
            .any(|l| l.contains("big.bin") && l.contains(&want) && l.contains("from user")),
        "{audit:#?}"
    );
    // Metadata only: nothing of the files' contents.
    let raw = format!("{:?}", w.s.gw.audit(Some(&guid)));
    assert!(!raw.contains("hello-contents"), "{raw}");
}

#[test]
fn hostile_names_and_existing_files_are_neutralized() {
    let w = work("all");
    std::fs::create_dir_all(w.downloads()).unwrap();
    std::fs::write(w.downloads().join("report.txt"), b"mine").unwrap();
    let (mut applet, mut tech, _) = w.pair("names", &[], &[]);
    let dir = w.s.files.path().join("hostile");
    std::fs::create_dir_all(&dir).unwrap();
    let names = ["\u{1b}[2Jevil.txt", "..\\evil.exe", "report.txt"];
    for (i, n) in names.iter().enumerate() {
        std::fs::write(dir.join(n), format!("hostile-{i}")).unwrap();
    }
    tech.send(&format!("send {}", dir.join(names[0]).display()));
    answer(&mut applet, true);
    assert_eq!(transfer_end(&mut tech, names[0], WAIT)["state"], "saved");
    for n in &names[1..] {
        tech.send(&format!("send {}", dir.join(n).display()));
        assert_eq!(transfer_end(&mut tech, n, WAIT)["state"], "saved");
    }
    let mut saved: Vec<String> = std::fs::read_dir(w.downloads())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    saved.sort();
    assert_eq!(
        saved,
        ["_[2Jevil.txt", "evil.exe", "report (1).txt", "report.txt"],
        "the escape made harmless, the base name only, nothing overwritten"
    );
    assert_eq!(
        std::fs::read(w.downloads().join("report.txt")).unwrap(),
        b"mine"
    );
    // What the end user read was shown escaped, never obeyed.
    applet.out.wait_for("\\e[2Jevil.txt");
    end_session(&mut tech, &mut applet);
    assert!(!applet.out.seen.iter().any(|l| l.contains('\u{1b}')));
}

/// The end user's machine made slow: the applet is frozen (SIGSTOP) 90 ms
/// of every 100 for as long as this lives, so that a transfer takes
/// seconds instead of a fraction of one on loopback, and a test can act in
/// the middle of it. Each pause is far below the dead-path time.
struct Throttle {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

impl Throttle {
    fn new(applet: &Proc) -> Self {
        let pid = applet.child.id();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                signal(pid, "STOP");
                std::thread::sleep(Duration::from_millis(90));
                signal(pid, "CONT");
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The size of `path` once it stopped changing for 300 ms.
fn settled_size(path: &Path) -> u64 {
    let mut last = size_of(path);
    wait_until("the partial copy to settle", WAIT, || {
        std::thread::sleep(Duration::from_millis(300));
        let now = size_of(path);
        let settled = now == last;
        last = now;
        settled.then_some(now)
    })
}

fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[test]
fn a_stopped_transfer_resumes_and_a_corrupted_partial_is_sent_again() {
    let w = work("all");
    let (mut applet, mut tech, _) = w.pair("resume", &[], &[]);
    let big = w.s.files.path().join("resume.bin");
    random_file(&big, 200 << 20, 5);
    let want = sha256(&big);
    let partial = w.downloads().join(".resume.bin.lifeline-part");
    // Sends the file and stops it once the partial copy has grown by
    // 8 MiB; returns where it started.
    let send_and_stop = |tech: &mut Proc, applet: &mut Proc, first: bool| -> u64 {
        tech.send(&format!("send {}", big.display()));
        if first {
            answer(applet, true);
        }
        let id = until(tech, "sending", WAIT, |v| v["event"] == "sending")["id"].clone();
        let started = until(tech, "started", WAIT, |v| {
            v["event"] == "transfer" && v["state"] == "started"
        });
        let from = started["from"].as_u64().unwrap();
        let slow = Throttle::new(applet);
        wait_until("a growing partial copy", Duration::from_secs(60), || {
            (size_of(&partial) > from + (8 << 20)).then_some(())
        });
        tech.send(&format!("stop {id}"));
        let end = transfer_end(tech, "resume.bin", WAIT);
        assert_eq!(end["state"], "stopped", "{end}");
        drop(slow);
        from
    };
    assert_eq!(send_and_stop(&mut tech, &mut applet, true), 0);
    applet.out.wait_for("did not complete");
    // The applet's disk thread writes what it already had, then lets go.
    let kept = settled_size(&partial);
    assert!(
        kept > 8 << 20 && kept < 100 << 20,
        "the partial copy is kept: {kept}"
    );

    // Sent again: it starts where the partial copy ends.
    let from = send_and_stop(&mut tech, &mut applet, false);
    assert_eq!(from, kept, "resumed from the partial copy");
    applet.out.wait_for("did not complete");

    // The partial copy is damaged: it does not match the file, and
    // everything is sent again.
    let mut bytes = std::fs::read(&partial).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&partial, bytes).unwrap();
    tech.send(&format!("send {}", big.display()));
    let started = until(&mut tech, "started", WAIT, |v| {
        v["event"] == "transfer" && v["state"] == "started"
    });
    assert_eq!(started["from"], 0, "{started}");
    let done = transfer_end(&mut tech, "resume.bin", Duration::from_secs(300));
    assert_eq!(done["state"], "saved", "{done}");
    assert_eq!(done["sha256"], want.as_str());
    assert_eq!(sha256(&w.downloads().join("resume.bin")), want);
    assert!(!partial.exists());
    end_session(&mut tech, &mut applet);
}

/// A transfer that crosses the cutover to direct TCP, then the loss of
/// that path and the session's resumption through the gateway, arrives
/// byte-exact: the session core resends what the dead path lost.
#[test]
fn a_transfer_survives_a_path_change_and_a_resumption() {
    let w = work("all");
    let port = free_listen_port();
    // Made before pairing: the session goes direct 3 s after it, and
    // writing 200 MiB can take longer than that (the cutover then came
    // before the transfer).
    let big = w.s.files.path().join("moving.bin");
    random_file(&big, 200 << 20, 6);
    let (mut applet, mut tech, guid) = w.pair(
        "moving",
        &["--tcp-port", &port.to_string(), "--dead-path", "3"],
        &["--path", "tcp", "--direct-after", "3", "--dead-path", "3"],
    );
    tech.send(&format!("send {}", big.display()));
    // A slow end-user machine from the first byte on: the transfer is
    // still running when the session goes direct, 3 s after pairing.
    // (Throttled only once the transfer had started, a fast run once
    // finished all 200 MiB before the cutover.)
    let slow = Throttle::new(&applet);
    answer(&mut applet, true);
    until(&mut tech, "started", WAIT, |v| {
        v["event"] == "transfer" && v["state"] == "started"
    });
    let path = until(&mut tech, "the direct path", Duration::from_secs(60), |v| {
        v["event"] == "path" || (v["event"] == "transfer" && v["state"] == "saved")
    });
    assert_eq!(
        path["path"], "tcp",
        "the transfer ended before the cutover: {path}"
    );
    let at_cutover = size_of(&w.downloads().join(".moving.bin.lifeline-part"));
    // Then the direct path goes silent mid-transfer.
    let block = PortBlock::new(port);
    until(&mut tech, "reconnecting", Duration::from_secs(30), |v| {
        assert!(
            v["state"] != "saved",
            "the transfer ended before the cut: {v}"
        );
        v["event"] == "reconnecting"
    });
    until(&mut tech, "resumed", Duration::from_secs(60), |v| {
        v["event"] == "resumed"
    });
    drop(block);
    drop(slow);
    let done = transfer_end(&mut tech, "moving.bin", Duration::from_secs(300));
    assert_eq!(done["state"], "saved", "{done}");
    assert_eq!(sha256(&w.downloads().join("moving.bin")), sha256(&big));
    eprintln!(
        "{} MiB had arrived at the cutover of 200 MiB",
        at_cutover >> 20
    );
    end_session(&mut tech, &mut applet);
    let audit = w.audit(&guid);
    assert!(
        audit
            .iter()
            .any(|l| l.contains("moving.bin") && l.contains(": saved")),
        "{audit:#?}"
    );
}

/// The technician's console on a real terminal (tmux): `/shell` gives the
/// keyboard to the remote shell in raw mode, the window's size follows
/// the terminal's, and Ctrl-] gives it back to the chat.
#[test]
fn the_console_lends_its_terminal_to_the_shell_and_takes_it_back() {
    let w = work("all");
    let (path, guid) = w.s.session("tmux");
    let mut applet = Proc::spawn(
        Command::new(&path)
            .env("HOME", w.home.path())
            .current_dir(w.home.path()),
    );
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let socket = format!("lifeline-{}", random_hex(6));
    let tmux = |args: &[&str]| {
        let out = Command::new("tmux")
            .args(["-L", &socket])
            .args(args)
            .output()
            .expect("tmux (apt-get install tmux)");
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let console = format!(
        "{} --config-dir {} connect {guid} --path relay",
        bin("tech-console").display(),
        w.s.console.dir.path().display()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "100",
        "-y",
        "30",
        &console,
    ]);
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("tmux")
                .args(["-L", &self.0, "kill-server"])
                .status();
        }
    }
    let _kill = Kill(socket.clone());
    let screen_has = |needle: &str| {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = tmux(&["capture-pane", "-p", "-t", "t"]);
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} never on the console's screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    screen_has("type to chat");
    tmux(&["send-keys", "-t", "t", "/shell", "Enter"]);
    answer(&mut applet, true);
    applet.out.wait_for("opened a command prompt");
    tmux(&["send-keys", "-t", "t", "stty size", "Enter"]);
    screen_has("30 100");
    tmux(&["resize-window", "-t", "t", "-x", "120", "-y", "40"]);
    // Raw mode: Ctrl-C goes to the remote shell (it does not end the
    // console), then the new size reaches the PTY.
    tmux(&["send-keys", "-t", "t", "sleep 100", "Enter"]);
    tmux(&["send-keys", "-t", "t", "C-c"]);
    // The window's change travels as a message beside the keystrokes, so
    // a `stty size` typed the same millisecond may still see the old
    // size: ask until the new one shows (it must, within the wait).
    let deadline = Instant::now() + WAIT;
    loop {
        tmux(&["send-keys", "-t", "t", "clear; stty size", "Enter"]);
        std::thread::sleep(Duration::from_millis(300));
        if tmux(&["capture-pane", "-p", "-t", "t"]).contains("40 120") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new size never reached the shell"
        );
    }
    tmux(&["send-keys", "-t", "t", "C-]"]);
    screen_has("(back to the chat)");
    applet.out.wait_for("command prompt was closed");
    tmux(&["send-keys", "-t", "t", "still here", "Enter"]);
    applet.out.wait_for(&format!("{TECH_NAME}: still here"));
    tmux(&["send-keys", "-t", "t", "/end", "Enter"]);
    applet.out.wait_for("Session ended");
    assert!(applet.wait_exit(Duration::from_secs(20)).success());
}

/// Opening a web address: shown to the end user first, opened by their
/// system's opener (xdg-open, here with a browser that writes down what
/// it was given); anything but http and https is refused before anyone
/// is asked.
#[test]
fn a_web_address_is_shown_first_and_opened_exactly() {
    let w = work("open-url");
    let opened = w.home.path().join("opened.txt");
    let browser = w.home.path().join("browser.sh");
    std::fs::write(
        &browser,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > {}\n", opened.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        &browser,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let (mut applet, mut tech, guid) =
        w.pair_env("url", &[], &[], &[("BROWSER", browser.as_path())]);
    let url = "https://example.com/help?ticket=42&x=%20y";
    tech.send(&format!("open {url}"));
    applet
        .out
        .wait_for(&format!("open this web page in your browser: {url}"));
    answer(&mut applet, true);
    let ev = until(&mut tech, "url_opened", WAIT, |v| {
        v["event"] == "url_opened" || v["event"] == "refused"
    });
    assert_eq!(ev["event"], "url_opened", "{ev}");
    assert_eq!(std::fs::read_to_string(&opened).unwrap(), url);
    // Each address is asked for again.
    tech.send("open https://example.org/");
    consent(&mut tech, "asked");
    answer(&mut applet, false);
    consent(&mut tech, "refused");
    let r = until(&mut tech, "refused", WAIT, |v| v["event"] == "refused");
    assert_eq!(r["reason"], "the end user said no", "{r}");
    // Not a web address: refused without a question.
    tech.send("open javascript:alert(1)");
    let r = until(&mut tech, "refused", WAIT, |v| {
        assert_ne!(v["event"], "consent", "asked: {v}");
        v["event"] == "refused"
    });
    assert_eq!(r["what"], "open_url", "{r}");
    assert_ne!(r["reason"], "the end user said no", "{r}");
    end_session(&mut tech, &mut applet);
    let audit = w.audit(&guid);
    assert!(audit.iter().any(|l| l.contains(url)), "{audit:#?}");
}

/// Over XTCP (UDP hole punching on loopback, the userspace stream): a
/// shell answers and a file arrives byte-exact.
#[test]
fn remote_work_runs_over_xtcp() {
    let w = work("all,single-prompt");
    let (mut applet, mut tech, _) = w.pair("xtcp", &[], &["--path", "udp"]);
    let path = until(&mut tech, "the UDP path", Duration::from_secs(60), |v| {
        v["event"] == "path"
    });
    assert_eq!(path["path"], "udp", "{path}");
    tech.send("ask run-command,file-to-user session");
    answer(&mut applet, true);
    consent(&mut tech, "granted");
    tech.send("shell");
    until(&mut tech, "started", WAIT, |v| v["event"] == "started");
    tech.send("keys echo over-$((40+2))-udp");
    shell_until(&mut tech, "over-42-udp");
    let file = w.s.files.path().join("udp.bin");
    random_file(&file, 64 << 20, 7);
    tech.send(&format!("send {}", file.display()));
    let done = transfer_end(&mut tech, "udp.bin", Duration::from_secs(120));
    assert_eq!(done["state"], "saved", "{done}");
    assert_eq!(sha256(&w.downloads().join("udp.bin")), sha256(&file));
    end_session(&mut tech, &mut applet);
}

/// Refusing a folder refuses it whole: one question, not one per file.
#[test]
fn a_refused_folder_is_asked_about_once() {
    let w = work("all");
    let (mut applet, mut tech, _) = w.pair("refused-folder", &[], &[]);
    let dir = w.s.files.path().join("five");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..5 {
        std::fs::write(dir.join(format!("f{i}.txt")), b"x").unwrap();
    }
    tech.send(&format!("send {}", dir.display()));
    answer(&mut applet, false);
    let fin = until(&mut tech, "the end of the send", WAIT, |v| {
        v["event"] == "transfer_finished"
    });
    assert!(fin["files"].as_u64().unwrap() < 5, "{fin}");
    end_session(&mut tech, &mut applet);
    let asked = applet
        .out
        .seen
        .iter()
        .filter(|l| l.contains("Allow it?"))
        .count();
    assert_eq!(asked, 1, "{:#?}", applet.out.seen);
    assert!(!w.downloads().join("five").exists());
}
