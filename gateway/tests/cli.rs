//! The `gateway` binary's command line: the data directory and store made
//! by `serve` only (never by an admin command), admin commands without a
//! running node, and clear errors for bad input.
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

/// A data directory and store as `gateway serve` makes them (the node is
/// started until it serves, then stopped).
fn served(dir: &std::path::Path) {
    drop(lifeline_tests::Gateway::start(dir, None, &[]));
}

#[test]
fn admin_commands_never_make_a_data_dir_or_a_store_serve_does() {
    let dir = tempdir("datadir");
    let d = dir.to_str().unwrap();
    for (args, says) in [
        (
            vec!["admin", "operator-key"],
            "there is no gateway data directory at",
        ),
        (vec!["admin", "technician", "list"], "there is no store at"),
    ] {
        let out = gateway(&[&["--data-dir", d][..], &args].concat(), "");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} worked without a store");
        assert!(err.contains(says) && err.contains(d), "{err}");
        assert!(!dir.exists(), "{args:?} made {d}");
    }
    served(&dir);
    let out = gateway(&["--data-dir", d, "admin", "operator-key"], "");
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
        for f in ["operator-ca.key.pem", "operator-signing.pk8", "gateway.db"] {
            let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f} must be private");
        }
    }
    // A second run reuses the same operator key.
    let again = gateway(&["--data-dir", d, "admin", "operator-key"], "");
    assert_eq!(String::from_utf8(again.stdout).unwrap(), key);
    let list = gateway(&["--data-dir", d, "admin", "technician", "list"], "");
    assert!(list.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn admin_never_makes_a_store_in_an_empty_postgres_database() {
    let db = lifeline_tests::TestStore::new(lifeline_tests::StoreKind::Postgres);
    let url = db.url.clone().unwrap();
    let out = gateway(&["--store", &url, "admin", "technician", "list"], "");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("the database has no Lifeline store in it"),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
    // Still empty: `serve` makes the store, and then admin works.
    let dir = tempdir("pg");
    drop(lifeline_tests::Gateway::start(&dir, Some(&url), &[]));
    let out = gateway(&["--store", &url, "admin", "technician", "list"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn technician_add_refuses_short_passwords_and_duplicates() {
    let dir = tempdir("tech");
    served(&dir);
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
