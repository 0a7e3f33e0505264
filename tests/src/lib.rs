//! Harness for end-to-end tests that run the real `gateway`, `applet` and
//! `tech-console` binaries as a user would: separate processes, real TLS on
//! loopback, a real SQLite file or PostgreSQL database.
//!
//! The binaries are the ones cargo built next to this test executable
//! (`target/<profile>/`); `cargo test --workspace` builds them because each
//! binary's own package has integration tests.
#![allow(clippy::unwrap_used)]

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

/// Which store a gateway runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded default.
    Sqlite,
    /// A fresh database on the machine's PostgreSQL.
    Postgres,
}

/// The PostgreSQL admin URL for tests.
pub fn pg_admin_url() -> String {
    std::env::var("LIFELINE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn pg_exec(sql: &str) {
    let url = pg_admin_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap_or_else(|e| {
            panic!("PostgreSQL at {url} is unreachable ({e}); these tests need it (set LIFELINE_TEST_PG)")
        });
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut c).await.unwrap();
    });
}

/// A store for one test; a PostgreSQL database is dropped on drop.
#[derive(Debug)]
pub struct TestStore {
    /// `--store` value, if not the default.
    pub url: Option<String>,
    pg_db: Option<String>,
}

impl TestStore {
    /// Creates the store.
    pub fn new(kind: StoreKind) -> Self {
        match kind {
            StoreKind::Sqlite => Self {
                url: None,
                pg_db: None,
            },
            StoreKind::Postgres => {
                let db = format!("lifeline_e2e_{}", random_hex(6));
                pg_exec(&format!("CREATE DATABASE {db}"));
                let admin = pg_admin_url();
                let base = &admin[..admin.rfind('/').unwrap()];
                Self {
                    url: Some(format!("{base}/{db}")),
                    pg_db: Some(db),
                }
            }
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(db) = &self.pg_db {
            pg_exec(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        }
    }
}

/// Lines of a child's stdout, read on a thread.
#[derive(Debug)]
pub struct Lines {
    rx: mpsc::Receiver<String>,
    /// Everything read so far.
    pub seen: Vec<String>,
}

impl Lines {
    fn spawn(r: impl std::io::Read + Send + 'static) -> Self {
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
            rx,
            seen: Vec::new(),
        }
    }

    /// The next line, or `None` at EOF or timeout.
    pub fn next(&mut self, within: Duration) -> Option<String> {
        let l = self.rx.recv_timeout(within).ok()?;
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

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    child: Option<Child>,
    /// `host:port` it listens on.
    pub addr: String,
    /// The operator CA fingerprint it printed.
    pub fingerprint: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// `--store`, if any.
    pub store: Option<String>,
    /// Its stdout.
    pub stdout: Lines,
}

impl Gateway {
    /// Starts `gateway serve` on 127.0.0.1:0 with `extra` flags.
    pub fn start(data_dir: &Path, store: Option<&str>, extra: &[&str]) -> Self {
        Self::start_at(data_dir, store, "127.0.0.1:0", extra)
    }

    /// Starts on a given listen address.
    pub fn start_at(data_dir: &Path, store: Option<&str>, listen: &str, extra: &[&str]) -> Self {
        Self::start_cmd(
            Command::new(bin("gateway")),
            data_dir,
            store,
            listen,
            extra,
            None,
        )
    }

    /// Starts inside network namespace `netns` (see [`natlab`]).
    pub fn start_in_netns(netns: &str, data_dir: &Path, listen: &str, extra: &[&str]) -> Self {
        Self::start_cmd(
            in_netns(netns, &bin("gateway")),
            data_dir,
            None,
            listen,
            extra,
            None,
        )
    }

    /// Starts on 127.0.0.1:0 with its log (at `info`) written to `log`.
    pub fn start_logged(data_dir: &Path, extra: &[&str], log: &Path) -> Self {
        let cmd = Command::new(bin("gateway"));
        Self::start_cmd(cmd, data_dir, None, "127.0.0.1:0", extra, Some(log))
    }

    fn start_cmd(
        mut cmd: Command,
        data_dir: &Path,
        store: Option<&str>,
        listen: &str,
        extra: &[&str],
        log_file: Option<&Path>,
    ) -> Self {
        cmd.arg("--data-dir").arg(data_dir);
        if let Some(s) = store {
            cmd.arg("--store").arg(s);
        }
        cmd.args(["serve", "--listen", listen]);
        // Many gateways run at once in tests: each its own STUN and
        // health port.
        if !extra.contains(&"--stun-listen") {
            cmd.args(["--stun-listen", "127.0.0.1:0"]);
        }
        if !extra.contains(&"--health-listen") {
            cmd.args(["--health-listen", "127.0.0.1:0"]);
        }
        let (level, stderr) = match log_file {
            Some(path) => (
                "info".to_owned(),
                Stdio::from(std::fs::File::create(path).unwrap()),
            ),
            None => (
                std::env::var("LIFELINE_TEST_GATEWAY_LOG").unwrap_or_else(|_| "warn".into()),
                Stdio::inherit(),
            ),
        };
        cmd.args(extra)
            .env("RUST_LOG", level)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = cmd.spawn().unwrap();
        let mut stdout = Lines::spawn(child.stdout.take().unwrap());
        let listening = stdout.wait_for("listening on");
        let addr = listening
            .split("listening on ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_owned();
        let fp_line = stdout.wait_for("fingerprint");
        let fingerprint = fp_line.rsplit(' ').next().unwrap().to_owned();
        Self {
            child: Some(child),
            addr,
            fingerprint,
            data_dir: data_dir.to_owned(),
            store: store.map(str::to_owned),
            stdout,
        }
    }

    /// Runs `gateway admin ARGS` on the same store, with `stdin` as input.
    pub fn admin(&self, args: &[&str], stdin: &str) -> Output {
        admin(&self.data_dir, self.store.as_deref(), args, stdin)
    }

    /// Adds a technician (panics on failure).
    pub fn add_technician(&self, email: &str, name: &str, password: &str) {
        let out = self.admin(
            &[
                "technician",
                "add",
                "--email",
                email,
                "--name",
                name,
                "--password-stdin",
            ],
            &format!("{password}\n"),
        );
        assert!(
            out.status.success(),
            "technician add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The audit trail as JSON objects (optionally of one session).
    pub fn audit(&self, session: Option<&str>) -> Vec<Value> {
        let mut args = vec!["audit", "--json", "--limit", "10000"];
        if let Some(s) = session {
            args.extend(["--session", s]);
        }
        let out = self.admin(&args, "");
        assert!(
            out.status.success(),
            "audit failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Sends SIGTERM and waits for exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("gateway already stopped");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        wait_timeout(&mut child, Duration::from_secs(60))
            .expect("gateway did not exit after SIGTERM")
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Kills the process at once (SIGKILL: no drain, no goodbye), as a
    /// crash or `kill -9` would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `program` run inside network namespace `netns` (`ip netns exec` execs
/// it, so the child is the program itself).
pub fn in_netns(netns: &str, program: &Path) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", netns]).arg(program);
    c
}

/// `gateway admin` without a running node.
pub fn admin(data_dir: &Path, store: Option<&str>, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(bin("gateway"));
    cmd.arg("--data-dir").arg(data_dir);
    if let Some(s) = store {
        cmd.arg("--store").arg(s);
    }
    run_with_stdin(cmd.arg("admin").args(args), stdin)
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

/// A technician's console profile (its own config directory).
#[derive(Debug)]
pub struct Console {
    /// The config directory.
    pub dir: TempDir,
    /// Network namespace every command runs in, if any.
    pub netns: Option<String>,
}

impl Console {
    /// A fresh profile.
    pub fn new() -> Self {
        Self {
            dir: TempDir::new("console"),
            netns: None,
        }
    }

    /// A fresh profile whose commands run in network namespace `netns`.
    pub fn in_netns(netns: &str) -> Self {
        Self {
            dir: TempDir::new("console"),
            netns: Some(netns.to_owned()),
        }
    }

    /// `tech-console --config-dir DIR`, in the profile's namespace.
    pub fn command(&self) -> Command {
        let mut c = match &self.netns {
            Some(ns) => in_netns(ns, &bin("tech-console")),
            None => Command::new(bin("tech-console")),
        };
        c.arg("--config-dir").arg(self.dir.path());
        c
    }

    /// Runs `tech-console ARGS` with `stdin`.
    pub fn run(&self, args: &[&str], stdin: &str) -> Output {
        run_with_stdin(self.command().args(args), stdin)
    }

    /// Logs in (panics on failure).
    pub fn login(&self, gw: &Gateway, email: &str, password: &str) {
        let out = self.try_login(gw, email, password);
        assert!(
            out.status.success(),
            "login failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Logs in and returns the output.
    pub fn try_login(&self, gw: &Gateway, email: &str, password: &str) -> Output {
        self.run(
            &[
                "login",
                "--gateway",
                &gw.addr,
                "--ca-fingerprint",
                &gw.fingerprint,
                "--email",
                email,
                "--password-stdin",
            ],
            &format!("{password}\n"),
        )
    }

    /// Creates a session; returns its GUID.
    pub fn session_new(&self, label: &str, out: &Path) -> String {
        self.session_new_with(label, out, &[])
    }

    /// Creates a session with `extra` flags for `session new` (e.g.
    /// `["--expires-in", "2"]`); returns its GUID.
    pub fn session_new_with(&self, label: &str, out: &Path, extra: &[&str]) -> String {
        let mut args = vec![
            "session",
            "new",
            "--label",
            label,
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = self.run(&args, "");
        assert!(
            o.status.success(),
            "session new failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix("session "))
            .unwrap_or_else(|| panic!("no GUID in: {text}"))
            .trim()
            .to_owned()
    }

    /// `queue --json`.
    pub fn queue(&self) -> Vec<Value> {
        let o = self.run(&["queue", "--json"], "");
        assert!(
            o.status.success(),
            "queue failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Starts `connect TARGET` in batch mode.
    pub fn connect(&self, target: &str) -> Proc {
        self.connect_with(target, &[])
    }

    /// Starts `connect TARGET EXTRA…` in batch mode (e.g. `--path relay`).
    pub fn connect_with(&self, target: &str, extra: &[&str]) -> Proc {
        Proc::spawn(self.command().args(["connect", target]).args(extra))
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
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
    /// Spawns with piped stdin/stdout.
    pub fn spawn(cmd: &mut Command) -> Self {
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
/// A TCP port for a listener the test fixes in advance (the applet's
/// `--tcp-port`): outside the kernel's ephemeral range, so no outgoing
/// connection of a parallel test takes it between this check and the
/// listener's bind (which a port the kernel handed out could).
pub fn free_listen_port() -> u16 {
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut n = (u64::from(std::process::id()) << 32) ^ u64::from(nanos);
    for _ in 0..1000 {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let port = 20_000 + (n >> 33) as u16 % 12_000;
        if TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
            && TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free TCP port in 20000..32000");
}

/// An nft table that drops every TCP packet to or from a port on this
/// machine while it lives: to the ends of a path on that port, the path
/// has gone silent (needs root and nftables).
#[derive(Debug)]
pub struct PortBlock(String);

impl PortBlock {
    /// Starts dropping `port`'s packets.
    pub fn new(port: u16) -> Self {
        let table = format!("lifeline_block_{port}");
        let script = format!(
            "table inet {table} {{\n\
               chain input {{ type filter hook input priority -10; \
                 tcp dport {port} drop; tcp sport {port} drop; }}\n\
               chain output {{ type filter hook output priority -10; \
                 tcp dport {port} drop; tcp sport {port} drop; }}\n\
             }}\n"
        );
        let out = run_with_stdin(Command::new("nft").args(["-f", "-"]), &script);
        assert!(
            out.status.success(),
            "nft (root and nftables are needed): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(table)
    }
}

impl Drop for PortBlock {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.0])
            .status();
    }
}

pub mod natlab;
pub mod raw;

// ---------------------------------------------------------------------------
// Shared scenario helpers.
// ---------------------------------------------------------------------------

/// The technician every [`Scenario`] creates.
pub const TECH_EMAIL: &str = "ada@example.com";
/// Their display name.
pub const TECH_NAME: &str = "Ada Lovelace";
/// Their password.
pub const TECH_PASSWORD: &str = "correct horse battery";

/// A gateway on its own SQLite data directory with one technician
/// ([`TECH_EMAIL`]) added and logged in: the start of most scenarios.
/// Fields drop in order, so the gateway stops before its directory goes.
#[derive(Debug)]
pub struct Scenario {
    /// The running gateway.
    pub gw: Gateway,
    /// The technician's logged-in console profile.
    pub console: Console,
    /// A scratch directory for applets and other files.
    pub files: TempDir,
    /// The gateway's data directory.
    pub data: TempDir,
}

impl Scenario {
    /// Starts a gateway with `extra` `serve` flags, adds and logs in the
    /// technician.
    pub fn start(extra: &[&str]) -> Self {
        let data = TempDir::new("gw");
        let gw = Gateway::start(data.path(), None, extra);
        gw.add_technician(TECH_EMAIL, TECH_NAME, TECH_PASSWORD);
        let console = Console::new();
        console.login(&gw, TECH_EMAIL, TECH_PASSWORD);
        Self {
            gw,
            console,
            files: TempDir::new("files"),
            data,
        }
    }

    /// Creates a session labelled `label`; its applet is saved as
    /// `files/<label>`. Returns the applet's path and the GUID.
    pub fn session(&self, label: &str) -> (PathBuf, String) {
        self.session_with(label, &[])
    }

    /// [`session`](Self::session) with extra `session new` flags.
    pub fn session_with(&self, label: &str, extra: &[&str]) -> (PathBuf, String) {
        let path = self.files.path().join(label);
        let guid = self.console.session_new_with(label, &path, extra);
        assert!(
            path.exists(),
            "session new did not write {}",
            path.display()
        );
        (path, guid)
    }
}

/// Connects the console to the waiting applet of session `target` (label
/// or GUID `guid`), and waits until both ends show the same verification
/// code. Returns the console process and the code.
pub fn pair(console: &Console, applet: &mut Proc, target: &str, guid: &str) -> (Proc, String) {
    pair_with(console, applet, target, guid, &[])
}

/// [`pair`] with extra `connect` flags (e.g. `["--path", "relay"]`).
pub fn pair_with(
    console: &Console,
    applet: &mut Proc,
    target: &str,
    guid: &str,
    extra: &[&str],
) -> (Proc, String) {
    let mut tech = console.connect_with(target, extra);
    assert_eq!(tech.event("paired")["guid"], guid);
    let sas = tech.event("sas")["code"].as_str().unwrap().to_owned();
    applet.out.wait_for(&format!("Verification code: {sas}"));
    (tech, sas)
}

/// Chats one line each way and checks it arrived.
pub fn chat_both_ways(tech: &mut Proc, applet: &mut Proc, from_tech: &str, from_user: &str) {
    tech.send(&format!("say {from_tech}"));
    applet.out.wait_for(&format!("{TECH_NAME}: {from_tech}"));
    applet.send(from_user);
    let ev = tech.event("chat");
    assert_eq!(ev["text"], from_user, "chat event: {ev}");
}

/// Waits (up to `within`) for the console's `path` event and both
/// directions of a `linktest … both` of `bytes`; checks every byte arrived
/// (the receivers verify each one). Returns the `path` event.
pub fn await_path_and_linktests(
    tech: &mut Proc,
    applet: &Proc,
    bytes: u64,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    let (mut path, mut done) = (None, Vec::new());
    while path.is_none() || done.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = tech.out.next(left).unwrap_or_else(|| {
            panic!(
                "no path/linktest events; console output:\n{}\napplet output:\n{}",
                tech.out.seen.join("\n"),
                applet.out.seen.join("\n")
            )
        });
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        match v["event"].as_str() {
            Some("path") => path = Some(v),
            Some("linktest") if v["state"] == "done" => done.push(v),
            Some("error" | "ended") => panic!("session failed: {v}"),
            _ => {}
        }
    }
    for d in &done {
        assert_eq!(d["ok"], true, "{d}");
        assert_eq!(d["bytes"], bytes, "{d}");
        eprintln!(
            "link test {}: {:.1} MB/s",
            d["direction"],
            d["mbps"].as_f64().unwrap_or(0.0)
        );
    }
    let mut dirs: Vec<&str> = done
        .iter()
        .filter_map(|d| d["direction"].as_str())
        .collect();
    dirs.sort_unstable();
    assert_eq!(dirs, ["from_user", "to_user"]);
    path.unwrap_or_default()
}

/// The technician ends the session; both ends exit successfully.
pub fn end_session(tech: &mut Proc, applet: &mut Proc) {
    tech.send("end done");
    assert_eq!(tech.event("ended")["by"], "technician");
    assert!(tech.wait_exit(Duration::from_secs(20)).success());
    applet.out.wait_for("Session ended");
    assert!(applet.wait_exit(Duration::from_secs(20)).success());
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

impl Gateway {
    /// The operator CA certificate from the data directory.
    pub fn ca_cert(&self) -> rustls::pki_types::CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        let path = self.data_dir.join("operator-ca.pem");
        rustls::pki_types::CertificateDer::from_pem_file(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A client TLS configuration that trusts this gateway's operator CA
    /// and offers `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> std::sync::Arc<rustls::ClientConfig> {
        lifeline_session::tls::gateway_client_config(
            &lifeline_session::tls::GatewayTrust::Ca(self.ca_cert()),
            alpn,
        )
        .unwrap()
    }

    /// The listen address as a socket address.
    pub fn socket_addr(&self) -> std::net::SocketAddr {
        self.addr.parse().unwrap()
    }

    /// The relay-end audit record of a session, once the relay has ended:
    /// `(bytes applet→console, bytes console→applet)`.
    pub fn relayed_bytes(&self, guid: &str, within: Duration) -> (u64, u64) {
        let detail = wait_until("the \"relay ended\" audit record", within, || {
            self.audit(Some(guid))
                .into_iter()
                .find(|e| e["event"] == "relay ended")
                .map(|e| e["detail"].as_str().unwrap().to_owned())
        });
        let num_before = |marker: &str| -> u64 {
            let head = &detail[..detail
                .find(marker)
                .unwrap_or_else(|| panic!("no {marker:?} in {detail:?}"))];
            head.trim_end()
                .rsplit(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|_| panic!("no byte count before {marker:?} in {detail:?}"))
        };
        (
            num_before("bytes applet→console"),
            num_before("bytes console→applet"),
        )
    }
}
