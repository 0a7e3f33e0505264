//! Two-factor login, the way a technician meets it: a technician who must
//! use a second factor sets up an authenticator app at their first login
//! (a QR code on the terminal, a first code, ten recovery codes shown
//! once); later logins take a code, each code once; a recovery code works
//! once; wrong codes lock the account as wrong passwords do; the operator
//! resets a lost phone; a group can require it of everyone.
#![allow(clippy::unwrap_used)]

use lifeline_gateway::totp::{STEP_SECS, Secret};
use lifeline_tests::*;
use std::process::Output;

const EMAIL: &str = "grace@example.com";
const PASSWORD: &str = "correct horse battery";

fn step_now() -> i64 {
    lifeline_protocol::time::now_ms() / 1000 / STEP_SECS
}

fn code(secret: &Secret, step: i64) -> String {
    format!("{:06}", secret.code_at(step))
}

/// A gateway with one technician; `require` adds them with --require-2fa.
fn gateway(require: bool) -> (TempDir, Gateway) {
    let data = TempDir::new("gw");
    let gw = Gateway::start_logged(data.path(), &[], &data.path().join("gateway.log"));
    let mut args = vec![
        "technician",
        "add",
        "--email",
        EMAIL,
        "--name",
        "Grace Hopper",
        "--password-stdin",
    ];
    if require {
        args.push("--require-2fa");
    }
    let out = gw.admin(&args, &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("second factor required") == require);
    (data, gw)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn login_args(gw: &Gateway) -> Vec<&str> {
    vec![
        "login",
        "--gateway",
        &gw.addr,
        "--ca-fingerprint",
        &gw.fingerprint,
        "--email",
        EMAIL,
        "--password-stdin",
        "--totp-stdin",
    ]
}

/// A scripted login with `code` (the line after the password).
fn login_with(console: &Console, gw: &Gateway, code: &str) -> Output {
    console.run(&login_args(gw), &format!("{PASSWORD}\n{code}\n"))
}

/// A scripted first login that sets up the second factor: reads the key
/// from what the console prints, answers with the app's code. Returns the
/// secret and the recovery codes shown.
fn enroll(console: &Console, gw: &Gateway) -> (Secret, Vec<String>) {
    let mut p = Proc::spawn(console.command().args(login_args(gw)));
    p.send(PASSWORD);
    let uri = p.out.wait_for("otpauth://totp/");
    let secret = uri
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("secret="))
        .and_then(Secret::from_base32)
        .unwrap_or_else(|| panic!("no secret in {uri}"));
    p.send(&code(&secret, step_now()));
    p.out.wait_for("Keep these recovery codes");
    assert!(p.wait_exit(WAIT).success(), "{:?}", p.rest());
    let codes: Vec<String> = p
        .rest()
        .iter()
        .filter_map(|l| l.strip_prefix("    "))
        .filter(|c| c.len() == 11 && c.as_bytes()[5] == b'-')
        .map(str::to_owned)
        .collect();
    assert_eq!(codes.len(), 10, "{:?}", p.rest());
    (secret, codes)
}

fn logged_in(console: &Console) -> bool {
    console.run(&["queue"], "").status.success()
}

fn audit_has(gw: &Gateway, event: &str, detail: &str) -> bool {
    gw.audit(None)
        .iter()
        .any(|e| e["event"] == event && e["detail"].as_str().is_some_and(|d| d.contains(detail)))
}

/// The first login on a real terminal: the password hidden, the QR code
/// and the key shown, the app's first code typed, the recovery codes
/// shown once; then the login works.
#[test]
fn a_required_second_factor_is_set_up_at_the_first_login_on_a_terminal() {
    let (_data, gw) = gateway(true);
    let console = Console::new();
    let mut term = Pty::spawn(&format!(
        "{} --config-dir {} login --gateway {} --ca-fingerprint {} --email {EMAIL}",
        bin("tech-console").display(),
        console.dir.path().display(),
        gw.addr,
        gw.fingerprint
    ));
    term.wait("the password prompt", "Password:");
    term.type_secret(PASSWORD);
    let screen = term.wait("the code prompt", "Code the app shows now:");
    assert!(
        screen.contains("authenticator app") && (screen.contains('▀') || screen.contains('▄')),
        "no QR code:\n{screen}"
    );
    let key: String = screen
        .lines()
        .find_map(|l| l.split("or by typing this key: ").nth(1))
        .unwrap_or_else(|| panic!("no key:\n{screen}"))
        .trim()
        .to_owned();
    let secret = Secret::from_base32(&key).unwrap();
    term.type_line(&code(&secret, step_now()));
    let screen = term.wait("the login", "logged in as Grace Hopper");
    assert!(screen.contains("Keep these recovery codes"), "{screen}");
    assert!(!screen.contains(PASSWORD), "the password was echoed");
    assert!(logged_in(&console));
    assert!(audit_has(&gw, "two-factor enrolled", "10 recovery codes"));
    let list = stdout(&gw.admin(&["technician", "list"], ""));
    assert!(
        list.lines()
            .any(|l| l.contains(EMAIL) && l.contains("enrolled")),
        "{list}"
    );
}

#[test]
fn each_code_and_each_recovery_code_works_once_and_a_reset_starts_over() {
    let (data, gw) = gateway(true);
    let console = Console::new();
    let (secret, recovery) = enroll(&console, &gw);

    // Without a code, a script is told what is missing.
    let out = console.run(&login_args(&gw), &format!("{PASSWORD}\n"));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no code given"), "{}", stderr(&out));

    // The app's next code logs in (one step ahead is within the drift;
    // the enrollment took the current one).
    let next = code(&secret, step_now() + 1);
    let out = login_with(&console, &gw, &next);
    assert!(out.status.success(), "{}", stderr(&out));
    // The same code again is refused, and says why.
    let out = login_with(&console, &gw, &next);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("a code already used"),
        "{}",
        stderr(&out)
    );

    // A recovery code works once (as typed, in capitals too).
    let out = login_with(&console, &gw, &recovery[0].to_uppercase());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("recovery code used; 9 left"),
        "{}",
        stdout(&out)
    );
    let out = login_with(&console, &gw, &recovery[0]);
    assert!(!out.status.success(), "a recovery code worked twice");
    assert!(audit_has(&gw, "recovery code used", "9 left"));
    assert!(audit_has(
        &gw,
        "login failed",
        "wrong or reused second-factor code"
    ));

    // A lost phone: the operator resets the second factor. The login ends,
    // the old app's codes and recovery codes stop working, and the next
    // login sets up a new one.
    assert!(logged_in(&console));
    let out = gw.admin(&["technician", "reset-2fa", EMAIL], "");
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains("next login sets up a new one"),
        "{}",
        stdout(&out)
    );
    assert!(!logged_in(&console), "the login outlived the reset");
    assert!(audit_has(&gw, "second factor reset", EMAIL));
    let out = login_with(&console, &gw, &recovery[1]);
    assert!(!out.status.success());
    assert!(stdout(&out).contains("otpauth://"), "asked to set up again");
    let (new, codes) = enroll(&console, &gw);
    assert!(logged_in(&console));

    // No secret of the second factor is in the gateway's log (the codes
    // themselves are six digits, which any number in a log could hold).
    let log = std::fs::read_to_string(data.path().join("gateway.log")).unwrap();
    assert!(log.lines().count() >= 3, "the log is nearly empty: {log}");
    for s in [&secret, &new] {
        assert!(!log.contains(&s.base32()), "a TOTP secret is in the log");
        let hex = lifeline_protocol::hex::encode(&s.0);
        assert!(!log.contains(&hex), "a TOTP secret is in the log");
    }
    for c in recovery.iter().chain(&codes) {
        assert!(!log.contains(c.as_str()), "a recovery code is in the log");
    }
    assert!(!log.contains(PASSWORD), "the password is in the log");
}

#[test]
fn wrong_codes_lock_the_account_like_wrong_passwords() {
    let (_data, gw) = gateway(true);
    let console = Console::new();
    let (secret, _) = enroll(&console, &gw);
    let now = step_now();
    let right: Vec<String> = (now - 2..=now + 2).map(|s| code(&secret, s)).collect();
    let wrong = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !right.contains(c))
        .unwrap();
    let mut last = String::new();
    for _ in 0..5 {
        let out = login_with(&console, &gw, &wrong);
        assert!(!out.status.success());
        last = stderr(&out);
    }
    assert!(last.contains("locked"), "five wrong codes: {last}");
    // Locked: even the right code is refused now.
    let out = login_with(&console, &gw, &code(&secret, step_now() + 1));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("locked"), "{}", stderr(&out));
    assert!(audit_has(&gw, "account locked", "5 failed logins"));
}

#[test]
fn a_group_can_require_a_second_factor_of_everyone_in_it() {
    let (_data, gw) = gateway(false);
    let console = Console::new();
    // Not required: the password alone.
    let out = console.run(&login_args(&gw), &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", stderr(&out));

    let out = gw.admin(&["group", "require-2fa", "default"], "");
    assert!(out.status.success(), "{out:?}");
    assert!(audit_has(
        &gw,
        "group second factor",
        "default: not required → required"
    ));
    let groups = stdout(&gw.admin(&["group", "list"], ""));
    assert!(groups.contains("second factor required"), "{groups}");
    // Now the next login sets it up: a script without a code is shown the
    // key and stopped.
    let out = console.run(&login_args(&gw), &format!("{PASSWORD}\n"));
    assert!(!out.status.success());
    assert!(stdout(&out).contains("otpauth://totp/"), "{}", stdout(&out));
    assert!(stderr(&out).contains("no code given"), "{}", stderr(&out));

    // Not required any more, and never set up: the password alone again.
    let out = gw.admin(&["group", "require-2fa", "default", "--off"], "");
    assert!(out.status.success(), "{out:?}");
    let out = console.run(&login_args(&gw), &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", stderr(&out));
}
