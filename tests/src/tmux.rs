//! A full-screen program in a real terminal: tmux, on a server of its own,
//! driven as a person would — keys sent with `send-keys`, the screen read
//! with `capture-pane` (what is shown, without escape sequences), the
//! window's title with `display-message`.

use crate::WAIT;
use std::process::Command;
use std::time::{Duration, Instant};

/// One tmux server with one window running a command.
#[derive(Debug)]
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `command_line` (a shell command) in a `cols`×`rows` window.
    /// `env`: variables for it (tmux passes its own environment on).
    pub fn spawn(command_line: &str, cols: u16, rows: u16, env: &[(&str, &str)]) -> Tmux {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let socket = format!(
            "lifeline-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let t = Tmux { socket };
        let mut cmd = t.tmux();
        cmd.args(["-f", "/dev/null", "new-session", "-d", "-x"])
            .arg(cols.to_string())
            .arg("-y")
            .arg(rows.to_string());
        for (k, v) in env {
            cmd.arg("-e").arg(format!("{k}={v}"));
        }
        // The window stays after the program exits, so what it left on
        // the screen (and that it exited) can be read.
        cmd.arg(format!("{command_line}; echo \"[exited $?]\"; sleep 600"));
        let out = cmd.output().expect("tmux (installed by .ci/run)");
        assert!(
            out.status.success(),
            "tmux did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.run(&["set-option", "-g", "set-titles", "on"]);
        t
    }

    fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]).env("TERM", "xterm-256color");
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.tmux().args(args).output().expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Presses keys, in tmux's names (`Enter`, `C-q`, `M-1`, `F2`, `Up`).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Types `text` as it is, then Enter.
    pub fn type_line(&self, text: &str) {
        self.run(&["send-keys", "-t", "0", "-l", text]);
        self.keys(&["Enter"]);
    }

    /// Types `text` as it is (no Enter).
    pub fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "0", "-l", text]);
    }

    /// What the window shows now.
    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "0"])
    }

    /// The window's title as the program set it.
    pub fn title(&self) -> String {
        self.run(&["display-message", "-p", "-t", "0", "#{pane_title}"])
            .trim_end()
            .to_owned()
    }

    /// Waits (up to [`WAIT`]) until the screen shows `needle`; `what`
    /// names it in the panic. Returns the screen.
    pub fn wait(&self, what: &str, needle: &str) -> String {
        self.wait_until(what, |s| s.contains(needle))
    }

    /// Waits (up to [`WAIT`]) until `ok` holds for the screen.
    pub fn wait_until(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("the terminal never showed {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").output();
    }
}
