//! A program on a real terminal: run under `script`, which gives it a
//! pseudo-terminal, fed keystrokes and read back as the screen would show
//! them (escape sequences included).

use crate::WAIT;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

/// A command line running on a pseudo-terminal.
#[derive(Debug)]
pub struct Pty {
    /// The `script` process.
    pub child: Child,
    input: ChildStdin,
    output: mpsc::Receiver<Vec<u8>>,
    /// Everything shown so far.
    pub screen: Vec<u8>,
}

impl Pty {
    /// Runs `command_line` (a shell command) on a terminal of `TERM=dumb`.
    pub fn spawn(command_line: &str) -> Pty {
        let mut child = Command::new("script")
            .args(["-qfec", command_line, "/dev/null"])
            .env("TERM", "dumb")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script (bsdutils)");
        let input = child.stdin.take().unwrap();
        let mut out = child.stdout.take().unwrap();
        let (tx, output) = mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Pty {
            child,
            input,
            output,
            screen: Vec::new(),
        }
    }

    /// The screen so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.screen).into_owned()
    }

    /// Waits (up to [`WAIT`]) until the screen shows `needle`; `what`
    /// names it in the panic. Returns the whole screen.
    pub fn wait(&mut self, what: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        while !self.text().contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(b) => self.screen.extend(b),
                Err(_) => panic!("the terminal never showed {what}; screen:\n{}", self.text()),
            }
        }
        self.text()
    }

    /// Types `text` (no Enter); control characters are keys (`\x04` is
    /// Ctrl-D, `\x1b[A` the Up arrow).
    pub fn type_text(&mut self, text: &str) {
        self.input.write_all(text.as_bytes()).unwrap();
        self.input.flush().unwrap();
    }

    /// Types `line` and Enter at a password prompt that was just shown:
    /// a moment later, as a person would. A prompt is printed just before
    /// the program turns the terminal's echo off, and keys that arrive in
    /// between are echoed by the terminal itself — a race no typist wins,
    /// but a test typing within microseconds of the prompt can.
    pub fn type_secret(&mut self, line: &str) {
        std::thread::sleep(std::time::Duration::from_millis(300));
        self.type_line(line);
    }

    /// Types `line` and Enter.
    pub fn type_line(&mut self, line: &str) {
        writeln!(self.input, "{line}").unwrap();
        self.input.flush().unwrap();
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
