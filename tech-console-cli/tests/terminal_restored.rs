//! A panic while the console owns the terminal (raw mode, the alternate
//! screen) gives it back before the message is printed: in tmux, the
//! terminal's settings after are those before, the message is on the
//! normal screen, and nothing of the alternate screen is left.
#![allow(clippy::unwrap_used)]

use lifeline_tests::Tmux;

#[test]
fn a_panic_gives_the_terminal_back() {
    // target/<profile>/deps/<this test> → target/<profile>/examples/.
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("examples/panic_on_screen");
    assert!(
        example.exists(),
        "{} is built by `cargo test`",
        example.display()
    );
    let dir = std::env::temp_dir().join(format!("lifeline-panic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let ui = Tmux::spawn(
        &format!(
            "stty -g > {d}/before; {} ; stty -g > {d}/after",
            example.display()
        ),
        80,
        24,
        &[],
    );
    let screen = ui.wait("the panic's message", "something went wrong in the console");
    ui.wait("the end", "[exited");
    assert!(!screen.contains("on the alternate screen"), "{screen}");
    let before = std::fs::read_to_string(dir.join("before")).unwrap();
    let after = std::fs::read_to_string(dir.join("after")).unwrap();
    assert_eq!(before, after, "the terminal's settings were not restored");
    let _ = std::fs::remove_dir_all(&dir);
}
