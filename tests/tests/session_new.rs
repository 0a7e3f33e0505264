//! `tech-console session new` spends a one-time download: where the applet
//! goes is checked before the session exists, an existing file is never
//! silently replaced, and a download that fails withdraws the session so
//! the same command can simply be run again. `tech-console session applet`
//! issues the applet again until the end user connects: the file sent
//! before stops working, and the same care is taken of where it goes.
#![allow(clippy::unwrap_used)]

use lifeline_tests::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// No file of `dir` is a leftover of a download.
fn no_leftovers(dir: &std::path::Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".partial-"), "left behind: {name}");
    }
}

#[test]
fn session_new_loses_nothing_to_a_wrong_folder_an_existing_file_or_platform() {
    let s = Scenario::start(&[]);
    let files = s.files.path();

    // A folder that does not exist: refused before anything is created.
    let missing = files.join("no/such/folder/applet");
    let o = s.console.run(
        &[
            "session",
            "new",
            "--label",
            "a",
            "--out",
            missing.to_str().unwrap(),
        ],
        "",
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    let good = files.join("a");
    s.console.session_new("a", &good);
    assert!(good.exists());

    // An existing file stays as it was, and the label stays free.
    let before = std::fs::read(&good).unwrap();
    let o = s.console.run(
        &[
            "session",
            "new",
            "--label",
            "b",
            "--out",
            good.to_str().unwrap(),
        ],
        "",
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&good).unwrap(), before);
    s.console.session_new("b", &files.join("b"));
    // --force replaces it with the new session's applet.
    s.console.session_new_with("c", &good, &["--force"]);
    assert_ne!(std::fs::read(&good).unwrap(), before);

    // A platform the gateway has no applet for: the session is withdrawn.
    let d = files.join("d");
    let o = s.console.run(
        &[
            "session",
            "new",
            "--label",
            "d",
            "--out",
            d.to_str().unwrap(),
            "--platform",
            "plan9-mips",
        ],
        "",
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("withdrawn"), "{}", stderr(&o));
    assert!(!d.exists());
    no_leftovers(files);
    s.console.session_new("d", &d);
    assert!(d.exists());
    no_leftovers(files);
}

/// `tech-console session applet TARGET --out FILE [--force]`, expecting
/// success; returns its standard output.
fn fetch_again(s: &Scenario, target: &str, out: &std::path::Path, extra: &[&str]) -> String {
    let mut args = vec!["session", "applet", target, "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = s.console.run(&args, "");
    assert!(o.status.success(), "session applet failed: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `tech-console session applet TARGET --out FILE`, expecting a refusal
/// that writes nothing; returns what it said.
fn fetch_again_refused(s: &Scenario, target: &str, out: &std::path::Path) -> String {
    let before = std::fs::read(out).ok();
    let o = s.console.run(
        &["session", "applet", target, "--out", out.to_str().unwrap()],
        "",
    );
    assert!(!o.status.success(), "session applet was not refused");
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(std::fs::read(out).ok(), before, "{} changed", out.display());
    if let Some(dir) = out.parent().filter(|d| d.is_dir()) {
        no_leftovers(dir);
    }
    stderr(&o)
}

/// The audit events of a session, oldest first.
fn audit_events(s: &Scenario, guid: &str) -> Vec<String> {
    s.gw.audit(Some(guid))
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect()
}

/// An applet file that was issued again is refused by the gateway as not
/// belonging to its session, tells its user so and exits with 3.
fn refused_as_replaced(file: &std::path::Path) {
    let mut old = Proc::applet(file, &[]);
    old.out
        .wait_for("could not confirm that this program belongs to your session");
    assert_eq!(
        old.wait_exit(std::time::Duration::from_secs(20)).code(),
        Some(3)
    );
}

#[test]
fn session_applet_issues_a_new_applet_and_the_previous_files_stop_working() {
    let s = Scenario::start(&[]);
    let files = s.files.path();
    let (first, guid) = s.session("printer");

    // By label, to a new file: the session's applet again.
    let second = files.join("printer-2");
    let out = fetch_again(&s, "printer", &second, &[]);
    assert!(out.contains(&format!("session {guid}")), "{out}");
    assert!(out.contains("printer-2 ("), "{out}");
    assert!(
        out.contains("previous applet file of this session no longer works"),
        "{out}"
    );
    assert!(second.exists());
    assert_ne!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap()
    );
    // And once more, by GUID, over that file with --force: the second
    // file (kept as a copy) stops working too.
    let second_copy = files.join("printer-2-copy");
    std::fs::copy(&second, &second_copy).unwrap();
    let out = fetch_again(&s, &guid, &second, &["--force"]);
    assert!(out.contains("no longer works"), "{out}");
    assert_ne!(
        std::fs::read(&second).unwrap(),
        std::fs::read(&second_copy).unwrap()
    );
    no_leftovers(files);

    // Each reissue is audited (without the secret), then downloaded.
    let secret = serde_json::from_slice::<serde_json::Value>(
        &std::fs::read(
            s.console
                .dir
                .path()
                .join(format!("sessions/{guid}/session.json")),
        )
        .unwrap(),
    )
    .unwrap()["applet_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let trail = s.gw.audit(Some(&guid));
    let events: Vec<&str> = trail.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        [
            "created",
            "applet downloaded",
            "applet reissued",
            "applet downloaded",
            "applet reissued",
            "applet downloaded"
        ],
        "{trail:?}"
    );
    for e in trail.iter().filter(|e| e["event"] == "applet reissued") {
        assert_eq!(e["actor"], TECH_EMAIL, "{e}");
        assert!(
            e["detail"]
                .as_str()
                .unwrap()
                .contains("can no longer connect"),
            "{e}"
        );
    }
    assert!(
        !trail.iter().any(|e| e.to_string().contains(&secret)),
        "the applet secret is in the audit trail: {trail:?}"
    );

    // The earlier files are refused; the newest one connects, pairs and
    // chats.
    refused_as_replaced(&first);
    refused_as_replaced(&second_copy);
    let mut applet = Proc::applet(&second, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let (mut tech, _) = pair(&s.console, &mut applet, "printer", &guid);
    chat_both_ways(&mut tech, &mut applet, "hello again", "it works now");
    end_session(&mut tech, &mut applet);
}

#[test]
fn session_applet_is_refused_once_the_applet_has_connected_or_the_session_is_over() {
    let s = Scenario::start(&[]);
    let files = s.files.path();
    let (_, _first) = s.session("busy");
    let again = files.join("busy-2");

    // A console already waiting for the applet reads the session's secret
    // only once paired: fetched again meanwhile, the new applet pairs
    // with it.
    let mut early = s.console.connect("busy");
    early.event("waiting_for_user");
    // Its hello reaches the gateway (on this machine, at once).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let path = files.join("busy-new");
    fetch_again(&s, "busy", &path, &[]);
    let mut applet = Proc::applet(&path, &[]);
    early.event("sas");
    applet.out.wait_for("connected");
    chat_both_ways(&mut early, &mut applet, "found you", "hello");
    end_session(&mut early, &mut applet);
    let (_, guid) = s.session("busy2");
    let path = files.join("busy2-new");
    fetch_again(&s, "busy2", &path, &[]);

    // Waiting: refused, nothing written, and the waiting applet is
    // undisturbed.
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let why = fetch_again_refused(&s, "busy2", &again);
    assert!(
        why.contains("already connected") && why.contains("waiting"),
        "{why}"
    );
    // Paired (on the relay, or direct by now): refused too.
    let (mut tech, _) = pair(&s.console, &mut applet, "busy2", &guid);
    let why = fetch_again_refused(&s, "busy2", &again);
    assert!(why.contains("already connected"), "{why}");
    chat_both_ways(&mut tech, &mut applet, "still here", "me too");
    end_session(&mut tech, &mut applet);
    // Only the one reissue that was accepted is in the audit trail.
    let reissues = audit_events(&s, &guid)
        .iter()
        .filter(|e| *e == "applet reissued")
        .count();
    assert_eq!(reissues, 1);
    // Ended (and forgotten on this machine): refused.
    let why = fetch_again_refused(&s, &guid, &again);
    assert!(why.contains("has ended"), "{why}");

    // Ended elsewhere while this machine still holds the session's key
    // (kept aside here while `session end` forgets it): the gateway
    // refuses.
    let (_, guid) = s.session("gone");
    let local = s.console.dir.path().join("sessions").join(&guid);
    let aside = files.join("aside");
    std::fs::create_dir(&aside).unwrap();
    for f in ["identity.pem", "session.json"] {
        std::fs::copy(local.join(f), aside.join(f)).unwrap();
    }
    let o = s.console.run(&["session", "end", "gone"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::create_dir_all(&local).unwrap();
    for f in ["identity.pem", "session.json"] {
        std::fs::copy(aside.join(f), local.join(f)).unwrap();
    }
    let why = fetch_again_refused(&s, &guid, &again);
    assert!(why.contains("this session has ended"), "{why}");

    // An applet that connected and left before anyone paired with it
    // (the end user stopped it; it removed itself): the session is
    // `created` again, and its applet can be fetched again.
    let (path, guid) = s.session("left");
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    applet.send("/end");
    assert!(
        applet
            .wait_exit(std::time::Duration::from_secs(20))
            .success()
    );
    wait_until(
        "the applet to leave",
        std::time::Duration::from_secs(10),
        || s.console.queue().is_empty().then_some(()),
    );
    let out = fetch_again(&s, "left", &files.join("left-2"), &[]);
    assert!(
        out.contains(&format!("session {guid}")) && out.contains("no longer works"),
        "{out}"
    );

    // Expired: refused.
    let (_, guid) = s.session_with("short", &["--expires-in", "1"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let why = fetch_again_refused(&s, &guid, &again);
    assert!(why.contains("has expired"), "{why}");
    assert!(!again.exists());
    assert!(
        !audit_events(&s, &guid)
            .iter()
            .any(|e| e == "applet reissued")
    );
}

#[test]
fn session_applet_checks_where_it_writes_before_spending_anything() {
    let s = Scenario::start(&[]);
    let files = s.files.path();
    let (path, guid) = s.session("kept");

    // An existing file (without --force), a missing folder, a folder, an
    // unknown session: refused, and the session's applet is untouched.
    let mine = files.join("mine");
    std::fs::write(&mine, b"the technician's own file").unwrap();
    let why = fetch_again_refused(&s, "kept", &mine);
    assert!(
        why.contains("already exists") && why.contains("--force"),
        "{why}"
    );
    let why = fetch_again_refused(&s, "kept", &files.join("no/such/folder/applet"));
    assert!(why.contains("does not exist"), "{why}");
    let why = fetch_again_refused(&s, "kept", files);
    assert!(why.contains("is a directory"), "{why}");
    let why = fetch_again_refused(&s, "no-such-label", &files.join("x"));
    assert!(why.contains("no open session"), "{why}");
    assert!(!files.join("x").exists());
    assert!(
        !audit_events(&s, &guid)
            .iter()
            .any(|e| e == "applet reissued")
    );

    // The applet sent before still works.
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let (mut tech, _) = pair(&s.console, &mut applet, "kept", &guid);
    chat_both_ways(&mut tech, &mut applet, "hello", "hi");
    end_session(&mut tech, &mut applet);
}
