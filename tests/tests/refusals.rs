//! Refusals with clear errors: unknown, expired and ended sessions; a
//! second applet and a second console for one session; a squatter who
//! knows the GUID; a console of another technician; five wrong passwords
//! lock the account; separate budgets per kind of failed attempt.
#![allow(clippy::unwrap_used)]

use lifeline_protocol::SessionGuid;
use lifeline_protocol::relay::{RefuseCode, Role, ServerMsg};
use lifeline_tests::raw::RawClient;
use lifeline_tests::*;
use std::time::Duration;

fn refused(msg: ServerMsg) -> (RefuseCode, String) {
    match msg {
        ServerMsg::Refused { code, message } => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn token_of(console: &Console) -> String {
    let login: serde_json::Value =
        serde_json::from_slice(&std::fs::read(console.dir.path().join("login.json")).unwrap())
            .unwrap();
    login["token"].as_str().unwrap().to_owned()
}

struct Setup {
    _data: TempDir,
    gw: Gateway,
    console: Console,
    files: TempDir,
}

fn setup(extra: &[&str]) -> Setup {
    let data = TempDir::new("gw");
    let gw = Gateway::start(data.path(), None, extra);
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

#[test]
fn unknown_expired_and_ended_sessions_are_refused() {
    let s = setup(&[]);
    let unknown = SessionGuid::from_bytes([0x42; 16]);
    let (code, msg) = refused(RawClient::ask(&s.gw, Role::Applet, unknown, ""));
    assert_eq!(code, RefuseCode::UnknownSession);
    assert!(msg.contains("no support session"), "{msg}");

    // Expired: a 1-second session, tried after it passed.
    let out = s.console.run(
        &[
            "session",
            "new",
            "--label",
            "short",
            "--expires-in",
            "1",
            "--out",
            s.files.path().join("a").to_str().unwrap(),
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let guid: SessionGuid = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("session ")
                .map(|g| g.trim().parse().unwrap())
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let (code, msg) = refused(RawClient::ask(&s.gw, Role::Applet, guid, ""));
    assert_eq!(code, RefuseCode::Expired);
    assert!(msg.contains("expired"), "{msg}");

    // Ended: the technician cancels it; neither end can join any more.
    let guid = s
        .console
        .session_new("cancelled", &s.files.path().join("b"));
    let out = s.console.run(&["session", "end", "cancelled"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let guid: SessionGuid = guid.parse().unwrap();
    let (code, msg) = refused(RawClient::ask(&s.gw, Role::Applet, guid, ""));
    assert_eq!(code, RefuseCode::Ended);
    assert!(msg.contains("ended"), "{msg}");
    let (code, _) = refused(RawClient::ask(
        &s.gw,
        Role::Console,
        guid,
        &token_of(&s.console),
    ));
    assert_eq!(code, RefuseCode::Ended);
    // And the real applet tells its user in plain words.
    let mut applet = Proc::applet(&s.files.path().join("b"), &["--keep"]);
    applet.out.wait_for("has already ended");
    assert_eq!(applet.wait_exit(Duration::from_secs(20)).code(), Some(3));
}

#[test]
fn a_second_copy_takes_over_while_waiting_and_is_refused_once_paired() {
    let s = setup(&[]);
    let path = s.files.path().join("applet");
    let guid = s.console.session_new("dup", &path);
    let copy = s.files.path().join("applet-copy");
    let third_copy = s.files.path().join("applet-third");
    std::fs::copy(&path, &copy).unwrap();
    std::fs::copy(&path, &third_copy).unwrap();

    let mut first = Proc::applet(&path, &[]);
    first.out.wait_for("Waiting for Ada");
    // A second copy (a second double-click, or the program again after a
    // network change) holds the same secret: it takes the waiting place,
    // and the first steps aside without deleting its file.
    let mut second = Proc::applet(&copy, &[]);
    second.out.wait_for("Waiting for Ada");
    first.out.wait_for("already running for this session");
    assert_eq!(first.wait_exit(Duration::from_secs(20)).code(), Some(3));
    assert!(
        path.exists(),
        "a refusal it cannot fix must not delete the applet"
    );
    assert_eq!(s.console.queue().len(), 1);

    // On the relay, so the second console meets the relay's claim (once
    // a session has gone direct, the refusal says so instead; the gateway
    // tests cover that).
    let mut tech = s.console.connect_with(&guid, &["--path", "relay"]);
    let sas = tech.event("sas")["code"].as_str().unwrap().to_owned();
    second.out.wait_for(&format!("Verification code: {sas}"));
    // Once paired, nobody takes the applet's place, and a third copy is
    // told so and keeps its file.
    let mut third = Proc::applet(&third_copy, &[]);
    third.out.wait_for("already running for this session");
    assert_eq!(third.wait_exit(Duration::from_secs(20)).code(), Some(3));
    assert!(third_copy.exists());

    let mut other = s.console.connect(&guid);
    let err = other.event("error");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("another console is already connected"),
        "{err}"
    );
    assert!(!other.wait_exit(Duration::from_secs(20)).success());

    // The pair is undisturbed.
    tech.send("say still here");
    second.out.wait_for("Ada: still here");
    tech.send("end");
    tech.event("ended");
}

/// The GUID is no secret (it is in the file and `--verify` prints it), so
/// someone who saw it must not be able to register as the applet and make
/// the real one give up.
#[test]
fn a_squatter_who_knows_the_guid_cannot_take_or_hold_the_applets_place() {
    let s = setup(&[]);
    let path = s.files.path().join("applet");
    let guid: SessionGuid = s.console.session_new("squat", &path).parse().unwrap();
    let not_the_applet = |msg: ServerMsg| {
        let (code, why) = refused(msg);
        assert_eq!(code, RefuseCode::NotAuthorized, "{why}");
        assert!(why.contains("could not prove"), "{why}");
    };
    // No proof, a made-up one, and the real applet's proof for another
    // connection (a replay): all refused.
    not_the_applet(RawClient::ask(&s.gw, Role::Applet, guid, ""));
    not_the_applet(RawClient::ask(&s.gw, Role::Applet, guid, &"x".repeat(64)));
    let elsewhere = RawClient::connect(&s.gw).applet_hello_for(&path);
    let mut replay = RawClient::connect(&s.gw);
    replay.send_hello(&elsewhere);
    not_the_applet(replay.next_msg().unwrap());
    assert!(s.console.queue().is_empty(), "a squatter registered");

    // The real applet waits; squatters still cannot displace it.
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for("Waiting for Ada");
    not_the_applet(RawClient::ask(&s.gw, Role::Applet, guid, ""));
    let (mut tech, _) = pair_with(
        &s.console,
        &mut applet,
        "squat",
        &guid.to_string(),
        &["--path", "relay"],
    );
    tech.send("say hello");
    applet.out.wait_for("Ada: hello");
    end_session(&mut tech, &mut applet);
}

#[test]
fn another_technicians_console_is_refused() {
    let s = setup(&[]);
    s.gw.add_technician("eve@example.com", "Eve", "another password");
    let eve = Console::new();
    eve.login(&s.gw, "eve@example.com", "another password");

    let path = s.files.path().join("applet");
    let guid = s.console.session_new("ada-only", &path);
    let mut applet = Proc::applet(&path, &["--keep"]);
    applet.out.wait_for("Waiting for Ada");

    // Eve's console cannot even see the session…
    let out = eve.run(&["connect", &guid], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("no such session"),
        "{text}"
    );
    // …and the relay refuses her token for it.
    let (code, msg) = refused(RawClient::ask(
        &s.gw,
        Role::Console,
        guid.parse().unwrap(),
        &token_of(&eve),
    ));
    assert_eq!(code, RefuseCode::NotAuthorized);
    assert!(msg.contains("another technician"), "{msg}");
    // A made-up token is refused too.
    let (code, _) = refused(RawClient::ask(
        &s.gw,
        Role::Console,
        guid.parse().unwrap(),
        "00ff",
    ));
    assert_eq!(code, RefuseCode::NotAuthorized);
    // The applet is still waiting for Ada.
    assert_eq!(s.console.queue().len(), 1);
}

#[test]
fn five_wrong_passwords_lock_the_account_for_five_minutes() {
    let s = setup(&[]);
    let c = Console::new();
    for i in 0..4 {
        let out = c.try_login(&s.gw, "ada@example.com", "wrong password");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("wrong e-mail or password"),
            "attempt {i}: {err}"
        );
    }
    let out = c.try_login(&s.gw, "ada@example.com", "wrong password");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("locked until") && err.contains("(300 s)"),
        "{err}"
    );
    // Even the right password is refused while locked.
    let out = c.try_login(&s.gw, "ada@example.com", "correct horse battery");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("locked until"),
        "{err}"
    );
    let list =
        String::from_utf8_lossy(&s.gw.admin(&["technician", "list"], "").stdout).into_owned();
    // Ada's row holds the lock's end (an RFC 3339 time), not "-".
    assert!(
        list.lines().any(|l| l.starts_with("ada@example.com")
            && l.split_whitespace()
                .any(|w| w.len() == 20 && w.contains('T') && w.ends_with('Z'))),
        "the list shows the lock: {list}"
    );
}

#[test]
fn a_lock_expires_after_the_configured_time() {
    let s = setup(&["--lockout-secs", "1"]);
    let c = Console::new();
    for _ in 0..5 {
        c.try_login(&s.gw, "ada@example.com", "wrong password");
    }
    let out = c.try_login(&s.gw, "ada@example.com", "correct horse battery");
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked"));
    std::thread::sleep(Duration::from_millis(1100));
    c.login(&s.gw, "ada@example.com", "correct horse battery");
    // Unknown e-mails get the same answer as wrong passwords.
    let out = c.try_login(&s.gw, "nobody@example.com", "whatever");
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong e-mail or password"));
}

/// One budget per kind of failed attempt, and a budget only ever stands in
/// the way of failing attempts: a neighbour behind the same address who
/// guesses GUIDs or tokens blocks neither a real applet, nor a real
/// console, nor logins.
#[test]
fn a_neighbours_misses_block_neither_the_real_applet_nor_the_console() {
    let s = setup(&["--max-bad-attempts-per-minute", "3"]);
    let path = s.files.path().join("a");
    let guid = s.console.session_new("real", &path);
    for i in 0..3u8 {
        let (code, _) = refused(RawClient::ask(
            &s.gw,
            Role::Applet,
            SessionGuid::from_bytes([i; 16]),
            "",
        ));
        assert_eq!(code, RefuseCode::UnknownSession);
    }
    // Guessing now costs time…
    let (code, msg) = refused(RawClient::ask(
        &s.gw,
        Role::Applet,
        SessionGuid::from_bytes([9; 16]),
        "",
    ));
    assert_eq!(code, RefuseCode::RateLimited);
    assert!(msg.contains("try again in"), "{msg}");
    // …and so do bad tokens, on their own budget.
    for _ in 0..3 {
        let (code, _) = refused(RawClient::ask(
            &s.gw,
            Role::Console,
            guid.parse().unwrap(),
            "00ff",
        ));
        assert_eq!(code, RefuseCode::NotAuthorized);
    }
    let (code, _) = refused(RawClient::ask(
        &s.gw,
        Role::Console,
        guid.parse().unwrap(),
        "00ff",
    ));
    assert_eq!(code, RefuseCode::RateLimited);
    // The real applet from the same address is admitted, logins from it
    // work, and the real console pairs with it.
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for("Waiting for Ada");
    Console::new().login(&s.gw, "ada@example.com", "correct horse battery");
    let (mut tech, _) = pair_with(&s.console, &mut applet, "real", &guid, &["--path", "relay"]);
    end_session(&mut tech, &mut applet);
}

#[test]
fn connections_per_address_are_limited() {
    let s = setup(&["--max-conns-per-ip", "2"]);
    s.console.session_new("limit", &s.files.path().join("a"));
    let mut first = RawClient::connect(&s.gw);
    first.applet_hello(&s.files.path().join("a"));
    assert!(matches!(
        first.next_msg().unwrap(),
        ServerMsg::Waiting { .. }
    ));
    let _second = std::net::TcpStream::connect(&s.gw.addr).unwrap();
    // The third is closed without a TLS handshake.
    let mut third = std::net::TcpStream::connect(&s.gw.addr).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1];
    let n = std::io::Read::read(&mut third, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the over-limit connection is closed");
    drop((third, _second));
    // The waiting applet is unaffected (and, with a slot free again, the
    // console on the same address gets through).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = s.console.run(&["queue", "--json"], "");
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slots were not released"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A flood of bad console tokens from one address: each counts against
/// that address's token budget (then it is refused as rate-limited), and
/// the log gets one line per refusal reason, not one per refusal.
#[test]
fn bad_console_tokens_are_throttled_and_logged_once() {
    let data = TempDir::new("gw");
    let log = data.path().join("gateway.log");
    let gw = Gateway::start_logged(data.path(), &["--max-bad-attempts-per-minute", "10"], &log);
    let guid = SessionGuid::from_bytes([7; 16]);
    let mut codes = std::collections::BTreeMap::<String, u32>::new();
    for i in 0..200 {
        let (code, _) = refused(RawClient::ask(&gw, Role::Console, guid, &format!("bad{i}")));
        *codes.entry(format!("{code:?}")).or_default() += 1;
    }
    assert_eq!(codes.get("NotAuthorized"), Some(&10), "{codes:?}");
    assert_eq!(codes.get("RateLimited"), Some(&190), "{codes:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines = text
        .lines()
        .filter(|l| l.contains("relay connection refused"))
        .count();
    eprintln!(
        "200 refusals: {lines} log lines, {} bytes of log",
        text.len()
    );
    assert_eq!(
        lines, 2,
        "one line per reason (not authorized, rate limited):\n{text}"
    );
}

/// `tech-console logout` ends the login at the gateway, not only on this
/// machine: the old token no longer lists or creates sessions.
#[test]
fn logout_revokes_the_token_at_the_gateway() {
    let s = setup(&[]);
    let token = token_of(&s.console);
    let out = s.console.run(&["logout"], "");
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("the gateway no longer accepts this login"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let guid = SessionGuid::from_bytes([3; 16]);
    let (code, _) = refused(RawClient::ask(&s.gw, Role::Console, guid, &token));
    assert_eq!(code, RefuseCode::NotAuthorized);
    // And the console says it is logged out.
    let out = s.console.run(&["sessions"], "");
    assert!(!out.status.success());
}
