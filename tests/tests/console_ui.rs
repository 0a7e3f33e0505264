//! The full-screen console (`tech-console` on a terminal) in a real
//! terminal — tmux, driven with keys and read back from the screen as a
//! technician sees it: two end users wait; the technician takes one from
//! the queue, chats while messages arrive (the line being typed stays
//! whole), opens the end user's shell and runs a command in its pane,
//! sends a file and watches its progress, takes the second end user in a
//! tab of its own, switches between them (a chat on the other tab marks
//! it and the terminal's title), ends one session and quits, which ends
//! the other — and the terminal is as it was before.
#![allow(clippy::unwrap_used)]

use lifeline_tests::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// An applet for session `label`, with its own home, waiting.
fn applet(s: &Scenario, label: &str, home: &Path) -> Proc {
    let (path, _guid) = s.session(label);
    let mut cmd = Command::new(&path);
    cmd.env("HOME", home).current_dir(home);
    let mut applet = Proc::spawn(&mut cmd);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    applet
}

/// The console in tmux, its terminal settings saved before and after.
fn console(s: &Scenario, cols: u16, rows: u16, env: &[(&str, &str)]) -> Tmux {
    let dir = s.console.dir.path();
    let line = format!(
        "stty -g > {d}/stty.before; {bin} --config-dir {d}; stty -g > {d}/stty.after",
        bin = bin("tech-console").display(),
        d = dir.display()
    );
    Tmux::spawn(&line, cols, rows, env)
}

fn restored(s: &Scenario, ui: &Tmux) {
    let screen = ui.wait("the console's exit", "[exited 0]");
    let dir = s.console.dir.path();
    let before = std::fs::read_to_string(dir.join("stty.before")).unwrap();
    let after = std::fs::read_to_string(dir.join("stty.after")).unwrap();
    assert_eq!(before, after, "the terminal's settings were not restored");
    // Back on the normal screen: none of the console is left on it.
    assert!(!screen.contains("Queue"), "{screen}");
}

#[test]
fn a_shift_with_two_end_users_in_the_full_screen_console() {
    let s = Scenario::start(&[]);
    let out = s.gw.admin(&["group", "permissions", "default", "all"], "");
    assert!(out.status.success(), "{out:?}");
    let home = TempDir::new("home");
    let mut printer = applet(&s, "printer", home.path());
    let mut laptop = applet(&s, "laptop", home.path());

    let ui = console(&s, 80, 24, &[]);
    // The queue: both, the first to wait first.
    let screen = ui.wait("the queue with both end users", "laptop");
    let (p, l) = (
        screen.find("printer").unwrap(),
        screen.find("laptop").unwrap(),
    );
    assert!(p < l, "{screen}");
    assert!(screen.contains("Queue 2"), "{screen}");

    // Take the first: a tab, the verification code, a live session.
    ui.keys(&["Enter"]);
    ui.wait("the session live", "code ");
    printer.out.wait_for("connected");

    // Chat while a message arrives: the line being typed stays whole.
    ui.type_text("Hello, I will look at");
    ui.wait("the typed text", "> Hello, I will look at");
    printer.send("it says PC LOAD LETTER");
    let screen = ui.wait("the end user's line", "end user: it says PC LOAD LETTER");
    assert!(screen.contains("> Hello, I will look at"), "{screen}");
    ui.type_line(" your printer.");
    printer
        .out
        .wait_for(&format!("{TECH_NAME}: Hello, I will look at your printer."));
    ui.wait("our own line", "you: Hello, I will look at your printer.");

    // A typo stays here, with a hint.
    ui.type_line("/stauts");
    ui.wait("the refusal", "unknown command /stauts");

    // The end user's shell, in its pane.
    ui.type_line("/shell");
    printer
        .out
        .wait_for("asks to use a command prompt on this computer");
    printer.out.wait_for("Allow it?");
    printer.send("yes");
    ui.wait("the shell pane", "keys go here");
    ui.wait("the shell running", "running: a");
    ui.type_line("echo shell-says-$((6*7))");
    ui.wait("the command's output", "shell-says-42");
    // F3: the whole screen; again: back.
    ui.keys(&["F3"]);
    ui.wait_until("the shell on the whole screen", |s| {
        s.contains("shell-says-42") && !s.contains("Transfers")
    });
    ui.keys(&["F3"]);
    ui.wait("the side panel again", "Transfers");
    // Ctrl-] closes the shell; the keyboard is the input line's again.
    ui.keys(&["C-]"]);
    ui.wait("the shell's end", "shell ended");

    // A file, with its progress.
    let file = s.files.path().join("big.bin");
    let f = std::fs::File::create(&file).unwrap();
    f.set_len(256 << 20).unwrap();
    ui.type_line(&format!("/send {}", file.display()));
    printer.out.wait_for("Allow it?");
    printer.send("yes");
    let screen = ui.wait_until("the transfer's progress or end", |s| {
        s.contains("↑ big.bin") && (s.contains("/s") || s.contains("100% saved"))
    });
    let seen_moving = screen.contains("/s");
    ui.wait("the transfer done", "100% saved");
    assert!(
        home.path().join("Downloads/big.bin").exists(),
        "the file did not arrive"
    );
    // 256 MiB take seconds here: the bar is seen moving, with its rate.
    assert!(seen_moving, "the transfer's progress was never shown");

    // The second end user, from the queue, in a tab of its own.
    ui.keys(&["M-0"]);
    ui.wait("the queue with one waiting", "Queue 1");
    ui.keys(&["Enter"]);
    laptop.out.wait_for("connected");
    ui.wait("the second tab", " 2 laptop");
    ui.type_line("Now your laptop.");
    laptop
        .out
        .wait_for(&format!("{TECH_NAME}: Now your laptop."));
    // Back to the first; a line from the second marks its tab and the
    // terminal's title.
    ui.keys(&["M-1"]);
    ui.wait("the first tab again", "printer · live");
    laptop.send("my screen is black");
    ui.wait("the mark on the second tab", "laptop*");
    let title = ui.title();
    assert!(title.starts_with("(1) Lifeline"), "title: {title:?}");
    ui.keys(&["C-n"]);
    let screen = ui.wait(
        "the second tab's conversation",
        "end user: my screen is black",
    );
    assert!(!screen.contains("laptop*"), "{screen}");

    // End the first; quit, which ends the second after asking.
    ui.keys(&["M-1"]);
    ui.type_line("/end");
    printer.out.wait_for("Session ended");
    ui.wait("the first session's end", "(ended)");
    ui.keys(&["C-q"]);
    ui.wait("the question", "End them all and quit?");
    ui.keys(&["y"]);
    laptop.out.wait_for("Session ended");
    restored(&s, &ui);
    assert!(printer.wait_exit(Duration::from_secs(20)).success());
    assert!(laptop.wait_exit(Duration::from_secs(20)).success());
}

#[test]
fn sigterm_ends_the_sessions_and_gives_the_terminal_back() {
    let s = Scenario::start(&[]);
    let home = TempDir::new("home");
    let mut printer = applet(&s, "printer", home.path());
    let ui = console(&s, 80, 24, &[("NO_COLOR", "1")]);
    ui.wait("the queue", "printer");
    ui.keys(&["Enter"]);
    ui.wait("the session live", "code ");
    printer.out.wait_for("connected");
    let pid = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("tech-console")
                    && c.contains(&*s.console.dir.path().to_string_lossy())
                    && !c.contains("stty")
            })
        })
        .expect("the console's process");
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    printer.out.wait_for("Session ended");
    restored(&s, &ui);
}
