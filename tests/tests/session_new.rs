//! `tech-console session new` spends a one-time download: where the applet
//! goes is checked before the session exists, an existing file is never
//! silently replaced, and a download that fails withdraws the session so
//! the same command can simply be run again.
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
