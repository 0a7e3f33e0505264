//! The processes a benchmark measures: a real `gateway` node, and the
//! `splice_proxy` reference. Both are found next to the benchmark binary
//! (`target/release/`), are killed when dropped, and have their data in a
//! scratch directory that is removed then.

use anyhow::{Context, Result, anyhow, bail};
use lifeline_tests::{GatewayLaunch, GatewayLog, Lines};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a process may take to print its banner.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A workspace binary next to this one.
pub fn sibling_bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the benchmark binary")?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow!("benchmark binary has no directory"))?;
    let p = dir.join(name);
    if !p.exists() {
        bail!(
            "{} is missing: run `cargo build --release --bins` first (the benchmarks drive the real binaries)",
            p.display()
        );
    }
    Ok(p)
}

/// The gateway binary: `$LIFELINE_BENCH_GATEWAY` if set (to compare
/// another build), else the one next to this benchmark.
pub fn gateway_bin() -> Result<PathBuf> {
    match std::env::var_os("LIFELINE_BENCH_GATEWAY") {
        Some(p) => Ok(PathBuf::from(p)),
        None => sibling_bin("gateway"),
    }
}

/// A fresh scratch directory under the system temp dir.
fn scratch_dir(tag: &str) -> Result<PathBuf> {
    let suffix = lifeline_protocol::hex::encode(&crate::random::<6>()?);
    let p = std::env::temp_dir().join(format!("lifeline-bench-{tag}-{suffix}"));
    std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
    Ok(p)
}

/// A child process killed (and its scratch directory removed) on drop.
#[derive(Debug)]
struct Owned {
    child: Child,
    dir: PathBuf,
}

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Spawns `cmd` with stdout piped and waits until it has printed a line
/// containing each of `needles` (in order); returns those lines, then
/// every line up to the last of them. Stdout is drained on a thread
/// afterwards so the child never blocks on it.
fn spawn_waiting_for(
    mut cmd: Command,
    dir: PathBuf,
    log: &Path,
    needles: &[&str],
) -> Result<(Owned, Vec<String>, Vec<String>)> {
    let log_file =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let owned = Owned { child, dir };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // Once the benchmark stops listening, keep draining.
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let mut found = Vec::new();
    let mut seen = Vec::new();
    for needle in needles {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(needle) => {
                    found.push(l.clone());
                    seen.push(l);
                    break;
                }
                Ok(l) => seen.push(l),
                Err(_) => {
                    let log = std::fs::read_to_string(log).unwrap_or_default();
                    bail!(
                        "{cmd:?} did not print {needle:?}; stdout:\n{}\nstderr:\n{log}",
                        seen.join("\n")
                    );
                }
            }
        }
    }
    Ok((owned, found, seen))
}

/// The word after `marker` in `line`.
fn word_after<'a>(line: &'a str, marker: &str) -> Result<&'a str> {
    line.split(marker)
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .ok_or_else(|| anyhow!("no {marker:?} in {line:?}"))
}

fn parse_fingerprint(s: &str) -> Result<[u8; 32]> {
    lifeline_protocol::hex::decode_array::<32>(&s.replace(':', ""))
        .ok_or_else(|| anyhow!("not a SHA-256 fingerprint: {s:?}"))
}

/// A running `gateway serve` on 127.0.0.1 with an SQLite store in a
/// scratch data directory.
#[derive(Debug)]
pub struct GatewayProc {
    proc: Owned,
    /// The rest of its stdout, drained so it never blocks.
    _stdout: Lines,
    /// Where it listens (relay and portal).
    pub addr: SocketAddr,
    /// The operator CA's SHA-256 fingerprint it printed.
    pub fingerprint: [u8; 32],
    /// Its STUN server's bound address, if it runs one.
    pub stun: Option<SocketAddr>,
    banner: Vec<String>,
    data_dir: PathBuf,
    /// `--store`, when not the data directory's SQLite file.
    store: Option<String>,
    log: PathBuf,
}

/// What makes two nodes one operator's: `docs/operating.md`, "From one
/// node to several".
const OPERATOR_FILES: [&str; 4] = [
    "operator.toml",
    "operator-ca.pem",
    "operator-ca.key.pem",
    "operator-signing.pk8",
];

impl GatewayProc {
    /// Starts `gateway --data-dir TMP serve --listen 127.0.0.1:0 EXTRA...`.
    /// Its log (stderr, at the default `info` level unless `RUST_LOG` says
    /// otherwise) goes to a file in the scratch directory.
    pub fn start(tag: &str, extra: &[&str]) -> Result<Self> {
        Self::start_wrapped(tag, extra, &[])
    }

    /// [`GatewayProc::start`] run through `wrapper` (e.g. `prlimit
    /// --nofile=20000:20000 --`) when it is not empty.
    pub fn start_wrapped(tag: &str, extra: &[&str], wrapper: &[&str]) -> Result<Self> {
        Self::launch(tag, extra, wrapper, None, None)
    }

    /// A node named `name` of a cluster on the PostgreSQL database `store`
    /// (`postgres://…`). The first node makes the operator's keys; every
    /// other is given `first`'s (CA, signing key, operator name), as
    /// `docs/operating.md` tells an operator to do.
    pub fn start_node(
        tag: &str,
        store: &str,
        name: &str,
        first: Option<&GatewayProc>,
    ) -> Result<Self> {
        Self::launch(tag, &["--node-name", name], &[], Some(store), first)
    }

    fn launch(
        tag: &str,
        extra: &[&str],
        wrapper: &[&str],
        store: Option<&str>,
        operator_of: Option<&GatewayProc>,
    ) -> Result<Self> {
        let dir = scratch_dir(tag)?;
        let data_dir = dir.join("gw");
        let log = dir.join("gateway.log");
        if let Some(first) = operator_of {
            std::fs::create_dir_all(&data_dir)?;
            for f in OPERATOR_FILES {
                std::fs::copy(first.data_dir.join(f), data_dir.join(f))
                    .with_context(|| format!("copying {f} from the first node"))?;
            }
        }
        let launched = GatewayLaunch::new(gateway_bin()?, &data_dir)
            .store(store)
            .args(extra)
            .wrapped(wrapper)
            .log(GatewayLog::File {
                path: log.clone(),
                level: None,
            })
            .spawn()
            .map_err(|e| anyhow!(e))?;
        let banner = launched.banner;
        let fingerprint = banner
            .fingerprint_bytes()
            .ok_or_else(|| anyhow!("not a SHA-256 fingerprint: {:?}", banner.fingerprint))?;
        Ok(Self {
            proc: Owned {
                child: launched.child,
                dir,
            },
            _stdout: launched.stdout,
            addr: banner.addr,
            fingerprint,
            stun: banner.stun.map(|(bound, _)| bound),
            banner: banner.lines,
            data_dir,
            store: store.map(str::to_owned),
            log,
        })
    }

    /// The lines it printed at start, up to the fingerprint.
    pub fn banner(&self) -> &[String] {
        &self.banner
    }

    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Its log (stderr) so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it with SIGTERM and waits (at most `within`) for it to exit.
    pub fn terminate(&mut self, within: Duration) -> Result<()> {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .context("kill -TERM")?;
        let deadline = Instant::now() + within;
        while self.proc.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                bail!("the gateway did not exit within {within:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }

    /// Kills it at once (SIGKILL), as a crash or a lost machine would.
    pub fn kill(&mut self) -> Result<()> {
        self.proc.child.kill().context("kill -9 the gateway")?;
        self.proc.child.wait().context("reaping the gateway")?;
        Ok(())
    }

    /// Runs `gateway admin technician add` on this node's store.
    pub fn add_technician(&self, email: &str, name: &str, password: &str) -> Result<()> {
        lifeline_tests::technician_add(
            &gateway_bin()?,
            &self.data_dir,
            self.store.as_deref(),
            email,
            name,
            password,
        )
        .map_err(|e| anyhow!(e))?;
        Ok(())
    }

    /// The last `n` lines of the gateway's log, for error reports.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// A running `splice_proxy` (this crate's reference relay).
#[derive(Debug)]
pub struct ProxyProc {
    proc: Owned,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its CA's SHA-256 fingerprint (clients pin it as they pin a gateway's).
    pub fingerprint: [u8; 32],
}

impl ProxyProc {
    /// Starts `splice_proxy --listen 127.0.0.1:0 --buf BUF`
    /// (`copy_bidirectional` buffer size per direction).
    pub fn start(buf: usize) -> Result<Self> {
        let dir = scratch_dir("proxy")?;
        let log = dir.join("proxy.log");
        let mut cmd = Command::new(sibling_bin("splice_proxy")?);
        cmd.args(["--listen", "127.0.0.1:0", "--buf", &buf.to_string()]);
        let (proc, lines, _) =
            spawn_waiting_for(cmd, dir, &log, &["listening on", "fingerprint (SHA-256):"])?;
        let addr = word_after(&lines[0], "listening on ")?
            .parse()
            .context("proxy listen address")?;
        let fingerprint = parse_fingerprint(word_after(&lines[1], "(SHA-256): ")?)?;
        Ok(Self {
            proc,
            addr,
            fingerprint,
        })
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }
}
