//! Running the binaries: where they are, scratch directories, reading a
//! process's lines as they come, waiting with deadlines.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Default time to wait for an expected event.
pub const WAIT: Duration = Duration::from_secs(30);

/// Where [`bin`] finds the binaries instead of next to this program (a
/// benchmark compares another build with [`use_binaries_from`]).
static BIN_DIR: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// From now on, [`bin`] takes the binaries from `dir` (`None`: the
/// workspace's own, next to this program).
pub fn use_binaries_from(dir: Option<PathBuf>) {
    *BIN_DIR.lock().unwrap_or_else(|p| p.into_inner()) = dir;
}

/// Path of a workspace binary.
pub fn bin(name: &str) -> PathBuf {
    if let Some(dir) = BIN_DIR.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        return dir.join(name);
    }
    let exe = std::env::current_exe().unwrap();
    // Test binaries live in `target/<profile>/deps/`, benchmark binaries
    // (which use this harness too) next to the workspace binaries.
    let mut dir = exe.parent().unwrap();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().unwrap();
    }
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build the workspace binaries first (`cargo test --workspace` does)",
        p.display()
    );
    p
}

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory.
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("lifeline-e2e-{tag}-{}", random_hex(6)));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Random lower-case hex.
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap();
    lifeline_protocol::hex::encode(&b)
}

/// Lines of a child's stdout, read on a thread.
#[derive(Debug)]
pub struct Lines {
    /// In a mutex only so that `Lines` is `Sync` (a gateway's output is
    /// kept by values shared across tasks); reads take `&mut self`.
    rx: std::sync::Mutex<mpsc::Receiver<String>>,
    /// Everything read so far.
    pub seen: Vec<String>,
}

impl Lines {
    pub(crate) fn spawn(r: impl std::io::Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            rx: std::sync::Mutex::new(rx),
            seen: Vec::new(),
        }
    }

    /// The next line, or `None` at EOF or timeout.
    pub fn next(&mut self, within: Duration) -> Option<String> {
        let rx = self.rx.get_mut().unwrap_or_else(|p| p.into_inner());
        let l = rx.recv_timeout(within).ok()?;
        self.seen.push(l.clone());
        Some(l)
    }

    /// Waits for a line satisfying `f`; panics with everything seen if none.
    pub fn wait(&mut self, what: &str, within: Duration, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(l) if f(&l) => return l,
                Some(_) => {}
                None => panic!(
                    "timed out waiting for {what}; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for a line containing `needle`.
    pub fn wait_for(&mut self, needle: &str) -> String {
        self.wait(needle, WAIT, |l| l.contains(needle))
    }
}

/// `program` run inside network namespace `netns` (`ip netns exec` execs
/// it, so the child is the program itself).
pub fn in_netns(netns: &str, program: &Path) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", netns]).arg(program);
    c
}

/// Runs `cmd` to completion with `stdin` as its input.
pub fn run_with_stdin(cmd: &mut Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Waits for a child with a deadline.
pub fn wait_timeout(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running program driven through stdin and read through stdout.
#[derive(Debug)]
pub struct Proc {
    /// The child.
    pub child: Child,
    stdin: Option<ChildStdin>,
    /// Its stdout.
    pub out: Lines,
}

impl Proc {
    /// Spawns with piped stdin/stdout. An applet opens no window unless
    /// the test asks for one (`LIFELINE_NO_WINDOW=0` and a display): a
    /// developer's desktop would otherwise fill with them.
    pub fn spawn(cmd: &mut Command) -> Self {
        if !cmd.get_envs().any(|(k, _)| k == "LIFELINE_NO_WINDOW") {
            cmd.env("LIFELINE_NO_WINDOW", "1");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = Lines::spawn(child.stdout.take().unwrap());
        Self {
            stdin: child.stdin.take(),
            child,
            out,
        }
    }

    /// Starts a (personalized) applet file.
    pub fn applet(path: &Path, extra: &[&str]) -> Self {
        Self::spawn(Command::new(path).args(extra))
    }

    /// Writes one line to stdin.
    pub fn send(&mut self, line: &str) {
        let s = self.stdin.as_mut().expect("stdin closed");
        writeln!(s, "{line}").unwrap();
        s.flush().unwrap();
    }

    /// Waits for a JSON event with `"event": name` (batch mode output).
    pub fn event(&mut self, name: &str) -> Value {
        let line = self.out.wait(&format!("event {name}"), WAIT, |l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| v["event"] == name)
        });
        serde_json::from_str(&line).unwrap()
    }

    /// The next JSON event matching `f` within `within` (the others are
    /// kept in `seen`); fails on the session's end (`ended`) meanwhile.
    pub fn event_until(
        &mut self,
        what: &str,
        within: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.out.next(left).unwrap_or_else(|| {
                panic!("no {what}; output so far:\n{}", self.out.seen.join("\n"))
            });
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            assert!(
                v["event"] != "ended",
                "the session ended while waiting for {what}: {v}"
            );
            if f(&v) {
                return v;
            }
        }
    }

    /// The next JSON event, whichever it is (within [`WAIT`]).
    pub fn event_any(&mut self) -> Value {
        let line = self.out.wait("an event", WAIT, |l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| v["event"].is_string())
        });
        serde_json::from_str(&line).unwrap()
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        wait_timeout(&mut self.child, within).unwrap_or_else(|| {
            panic!(
                "process did not exit; output so far:\n{}",
                self.out.seen.join("\n")
            )
        })
    }

    /// Drains remaining output (after exit).
    pub fn rest(&mut self) -> Vec<String> {
        while self.out.next(Duration::from_millis(500)).is_some() {}
        self.out.seen.clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command to completion within `within`, capturing its output.
/// Panics (after killing it) if it does not exit in time. Retries a spawn
/// that fails with "text file busy", which happens when the test has just
/// written the executable while another test thread was forking.
pub fn run_bounded(cmd: &mut Command, within: Duration) -> Output {
    let mut tries = 0;
    let mut child = loop {
        match cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => break c,
            // ETXTBSY
            Err(e) if e.raw_os_error() == Some(26) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot run {cmd:?}: {e}"),
        }
    };
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut v);
        v
    });
    let status = match wait_timeout(&mut child, within) {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out_t.join().unwrap();
            panic!(
                "{cmd:?} did not exit within {within:?}; output:\n{}",
                String::from_utf8_lossy(&stdout)
            );
        }
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `within`.
pub fn wait_until<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
