//! The `gateway` binary's command line: first-run data directory, admin
//! commands without a running node, and clear errors for bad input.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn gateway(args: &[&str], stdin: &str) -> Output {
    lifeline_tests::run_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_gateway")).args(args),
        stdin,
    )
}

fn tempdir(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("lifeline-gw-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

#[test]
fn admin_creates_the_data_dir_with_private_key_files() {
    let dir = tempdir("datadir");
    let out = gateway(
        &["--data-dir", dir.to_str().unwrap(), "admin", "operator-key"],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        key.trim().len(),
        64,
        "operator key is 32 bytes of hex: {key}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["operator-ca.key.pem", "operator-signing.pk8"] {
            let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f} must be private");
        }
    }
    // A second run reuses the same operator key.
    let again = gateway(
        &["--data-dir", dir.to_str().unwrap(), "admin", "operator-key"],
        "",
    );
    assert_eq!(String::from_utf8(again.stdout).unwrap(), key);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn technician_add_refuses_short_passwords_and_duplicates() {
    let dir = tempdir("tech");
    let d = dir.to_str().unwrap();
    let short = gateway(
        &[
            "--data-dir",
            d,
            "admin",
            "technician",
            "add",
            "--email",
            "a@b.c",
            "--name",
            "A",
            "--password-stdin",
        ],
        "short\n",
    );
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8"));
    let ok = gateway(
        &[
            "--data-dir",
            d,
            "admin",
            "technician",
            "add",
            "--email",
            "A@B.c",
            "--name",
            "A",
            "--password-stdin",
        ],
        "long enough\n",
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let dup = gateway(
        &[
            "--data-dir",
            d,
            "admin",
            "technician",
            "add",
            "--email",
            "a@b.c",
            "--name",
            "A",
            "--password-stdin",
        ],
        "long enough\n",
    );
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    let list = gateway(&["--data-dir", d, "admin", "technician", "list"], "");
    assert!(String::from_utf8_lossy(&list.stdout).contains("a@b.c"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_configuration_is_refused_clearly() {
    let dir = tempdir("badcfg");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("gateway.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nno_such_key = 1\n").unwrap();
    let out = gateway(&["--config", cfg.to_str().unwrap(), "serve"], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gateway.toml") && err.contains("no_such_key"),
        "{err}"
    );

    let out = gateway(
        &[
            "--data-dir",
            dir.to_str().unwrap(),
            "serve",
            "--applet",
            "nonsense",
        ],
        "",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PLATFORM=PATH"));

    let out = gateway(&["--store", "mysql://x", "admin", "technician", "list"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sqlite"));
    std::fs::remove_dir_all(&dir).unwrap();
}
