//! Refusals with clear errors: unknown, expired and ended sessions; a
//! second applet and a second console for one session; a console of
//! another technician; five wrong passwords lock the account.
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
fn second_applet_and_second_console_are_refused() {
    let s = setup(&[]);
    let path = s.files.path().join("applet");
    let guid = s.console.session_new("dup", &path);
    let copy = s.files.path().join("applet-copy");
    std::fs::copy(&path, &copy).unwrap();

    let mut first = Proc::applet(&path, &[]);
    first.out.wait_for("Waiting for Ada");
    let mut second = Proc::applet(&copy, &["--keep"]);
    second.out.wait_for("already running for this session");
    assert_eq!(second.wait_exit(Duration::from_secs(20)).code(), Some(3));

    // On the relay, so the second console meets the relay's claim (once
    // a session has gone direct, the refusal says so instead; the gateway
    // tests cover that).
    let mut tech = s.console.connect_with(&guid, &["--path", "relay"]);
    tech.event("sas");
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

    // The first pair is undisturbed.
    tech.send("say still here");
    first.out.wait_for("Ada: still here");
    tech.send("end");
    tech.event("ended");
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
    assert!(!list.contains(" - "), "the list shows the lock: {list}");
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

#[test]
fn unknown_guid_guessing_is_rate_limited_per_address() {
    let s = setup(&["--max-bad-attempts-per-minute", "3"]);
    for i in 0..3u8 {
        let (code, _) = refused(RawClient::ask(
            &s.gw,
            Role::Applet,
            SessionGuid::from_bytes([i; 16]),
            "",
        ));
        assert_eq!(code, RefuseCode::UnknownSession);
    }
    // Now even a real session's GUID is refused from this address for a
    // while: guessing must cost time.
    let guid: SessionGuid = s
        .console
        .session_new("real", &s.files.path().join("a"))
        .parse()
        .unwrap();
    let (code, msg) = refused(RawClient::ask(&s.gw, Role::Applet, guid, ""));
    assert_eq!(code, RefuseCode::RateLimited);
    assert!(msg.contains("try again in"), "{msg}");
}

#[test]
fn connections_per_address_are_limited() {
    let s = setup(&["--max-conns-per-ip", "2"]);
    let guid: SessionGuid = s
        .console
        .session_new("limit", &s.files.path().join("a"))
        .parse()
        .unwrap();
    let mut first = RawClient::connect(&s.gw);
    first.hello(Role::Applet, guid, "");
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
