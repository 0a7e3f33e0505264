//! A stock (not personalized) applet refuses to run, and says why in words
//! an end user understands.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn stock_applet_explains_it_is_not_personalized() {
    let out = Command::new(env!("CARGO_BIN_EXE_applet")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("not prepared for a support session"),
        "{text}"
    );
    assert!(text.contains("send it again"), "{text}");
    // A stock applet is not a session's: it does not remove itself.
    assert!(!text.contains("removed itself"), "{text}");
    assert!(std::path::Path::new(env!("CARGO_BIN_EXE_applet")).exists());
}
