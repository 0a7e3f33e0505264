//! A group's password policy, the way technicians and operators meet it:
//! a new password too short, too easy to guess, or the current one again
//! is refused with the reason and changes nothing; an administrator's
//! password obeys the same rules; a password past the group's maximum age
//! is changed at the next login, on the way, and the old one stops
//! working.
#![allow(clippy::unwrap_used)]

use lifeline_tests::*;
use std::process::Output;

const STRONG: &str = "tangerine orbit velvet canyon";
const STRONGER: &str = "quartz meadow lantern reckon ferry";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `tech-console password`, scripted: the current password, then the new.
fn change(console: &Console, current: &str, new: &str) -> Output {
    console.run(
        &["password", "--password-stdin"],
        &format!("{current}\n{new}\n"),
    )
}

fn login(s: &Scenario, password: &str) -> Output {
    s.console.try_login(&s.gw, TECH_EMAIL, password)
}

fn audit_has(gw: &Gateway, event: &str, detail: &str) -> bool {
    gw.audit(None)
        .iter()
        .any(|e| e["event"] == event && e["detail"].as_str().is_some_and(|d| d.contains(detail)))
}

#[test]
fn weak_short_and_reused_passwords_are_refused_by_the_group_policy() {
    let s = Scenario::start(&[]);
    let out = s.gw.admin(
        &[
            "group",
            "password-policy",
            "default",
            "--min-length",
            "14",
            "--min-strength",
            "3",
        ],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains("passwords of 14+ characters, strength 3+ of 4"),
        "{}",
        stdout(&out)
    );
    assert!(audit_has(
        &s.gw,
        "group password policy",
        "default: any password → passwords of 14+ characters"
    ));
    let groups = stdout(&s.gw.admin(&["group", "list"], ""));
    assert!(groups.contains("14+ characters"), "{groups}");

    // Too short; too easy to guess; each says why, and nothing changes.
    let out = change(&s.console, TECH_PASSWORD, "tiny");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("at least 14 characters"),
        "{}",
        stderr(&out)
    );
    let out = change(&s.console, TECH_PASSWORD, "password12345678");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("too easy to guess"),
        "{}",
        stderr(&out)
    );
    assert!(
        login(&s, TECH_PASSWORD).status.success(),
        "the old one still works"
    );
    assert!(audit_has(&s.gw, "password change refused", "weak_password"));

    // A good one is taken: earlier logins end, this console goes on.
    let out = change(&s.console, TECH_PASSWORD, STRONG);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("password changed"),
        "{}",
        stdout(&out)
    );
    assert!(s.console.run(&["queue"], "").status.success());
    assert!(
        !login(&s, TECH_PASSWORD).status.success(),
        "the old one still works"
    );
    assert!(login(&s, STRONG).status.success());
    assert!(audit_has(&s.gw, "password changed", "by the technician"));

    // The current one again is not a change.
    let out = change(&s.console, STRONG, STRONG);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is the current one"),
        "{}",
        stderr(&out)
    );

    // An administrator's password obeys the same policy.
    let out = s.gw.admin(
        &[
            "technician",
            "reset-password",
            TECH_EMAIL,
            "--password-stdin",
        ],
        "tenletters\n",
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("at least 14 characters"),
        "{}",
        stderr(&out)
    );
    assert!(
        login(&s, STRONG).status.success(),
        "a refused reset changed it"
    );
}

#[test]
fn a_password_past_its_age_is_changed_at_the_next_login() {
    let s = Scenario::start(&[]);
    let out = s.gw.admin(
        &["group", "password-policy", "default", "--max-age", "30d"],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    // Set 31 days ago, as time would have it.
    let month_ago = lifeline_protocol::time::now_ms() - 31 * 86_400_000;
    assert_eq!(
        s.gw.store_exec(&format!(
            "UPDATE technicians SET password_set_at_ms = {month_ago}"
        )),
        1
    );
    // The login says so and takes the new password on the way.
    let out = s.console.run(
        &[
            "login",
            "--gateway",
            &s.gw.addr,
            "--ca-fingerprint",
            &s.gw.fingerprint,
            "--email",
            TECH_EMAIL,
            "--password-stdin",
        ],
        &format!("{TECH_PASSWORD}\n{STRONGER}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("older than your group allows (30 days)"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("logged in as"), "{}", stdout(&out));
    assert!(s.console.run(&["queue"], "").status.success());
    assert!(!login(&s, TECH_PASSWORD).status.success());
    // Not due again: the next login needs nothing more.
    let out = login(&s, STRONGER);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("older than"), "{}", stderr(&out));
    assert!(audit_has(
        &s.gw,
        "login refused",
        "older than group default allows"
    ));

    // Without a new password (a script that gave only the old one), the
    // login fails and says what to do.
    s.gw.store_exec(&format!(
        "UPDATE technicians SET password_set_at_ms = {month_ago}"
    ));
    let out = login(&s, STRONGER);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("older than your group allows"),
        "{}",
        stderr(&out)
    );
}
