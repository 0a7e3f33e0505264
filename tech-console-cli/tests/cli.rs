//! The `tech-console` command line refuses what it cannot do, clearly.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn console(args: &[&str]) -> Output {
    let dir = std::env::temp_dir().join(format!("lifeline-tc-cli-{}", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_tech-console"))
        .arg("--config-dir")
        .arg(&dir)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn commands_need_a_login() {
    for args in [
        &["queue"][..],
        &["connect", "printer"],
        &["session", "new", "--out", "/tmp/x"],
    ] {
        let out = console(args);
        assert!(!out.status.success());
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(all.contains("not logged in"), "{args:?}: {all}");
    }
}

#[test]
fn login_checks_its_arguments() {
    let out = console(&[
        "login",
        "--gateway",
        "127.0.0.1:1",
        "--ca-fingerprint",
        "xyz",
        "--email",
        "a@b.c",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a SHA-256 fingerprint"));
    let out = console(&["login", "--gateway", "127.0.0.1:1", "--email", "a@b.c"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ca-fingerprint"));
}
