//! Every input that ever crashed a fuzz target stays a test.
//!
//! When `cargo fuzz run <target>` finds a crash it writes the input to
//! `fuzz/artifacts/<target>/crash-*`. Fix the bug, then copy the file to
//! `fuzz/regressions/<target>/` (any name not starting with `.`): this test
//! replays it through the same check the fuzzer ran (`fuzz/src/checks.rs`),
//! on the stable toolchain, on every `cargo test`.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../../fuzz/src/checks.rs"]
mod checks;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

#[test]
fn fuzz_regressions_do_not_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    // Every target has a directory, and every directory is a target, so a
    // renamed target cannot silently drop its regressions.
    let mut dirs: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    dirs.sort();
    let mut targets: Vec<String> = checks::TARGETS.iter().map(|t| t.to_string()).collect();
    targets.sort();
    assert_eq!(
        dirs, targets,
        "fuzz/regressions/ must hold one directory per target"
    );

    let mut failed = Vec::new();
    let mut replayed = 0;
    for target in checks::TARGETS {
        for entry in std::fs::read_dir(root.join(target)).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap().to_string_lossy().starts_with('.') {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            if catch_unwind(AssertUnwindSafe(|| checks::run(target, &data))).is_err() {
                failed.push(path.display().to_string());
            }
            replayed += 1;
        }
    }
    assert!(failed.is_empty(), "panicked on {failed:#?}");
    eprintln!("replayed {replayed} fuzz regression input(s)");
}
