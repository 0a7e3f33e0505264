//! The one way a `gateway serve` process is started — by the end-to-end
//! tests ([`crate::Gateway`]), the gateway's own integration tests and the
//! benchmarks: its command line, environment, wrapper and log, and the
//! banner it prints, read back into addresses and a fingerprint.
//!
//! Many gateways run at once in tests and next to a node on the default
//! ports in benchmarks, so each gets its own STUN and health port on
//! 127.0.0.1 unless the caller chose one (with a flag, a config file or the
//! environment).

use crate::Lines;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a gateway may take to print its banner.
const BANNER_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a gateway's log (its stderr) goes.
#[derive(Debug, Clone)]
pub enum GatewayLog {
    /// This process's stderr, at `LIFELINE_TEST_GATEWAY_LOG` (default
    /// `warn`).
    Inherit,
    /// A file, at `level` (`None`: whatever `RUST_LOG` says here, else the
    /// gateway's default, `info`).
    File {
        /// The file (created or truncated).
        path: PathBuf,
        /// `RUST_LOG` for the gateway.
        level: Option<String>,
    },
}

/// How to start one `gateway serve`.
#[derive(Debug, Clone)]
pub struct GatewayLaunch {
    program: PathBuf,
    wrapper: Vec<String>,
    data_dir: PathBuf,
    store: Option<String>,
    listen: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: GatewayLog,
}

/// What a gateway printed at start.
#[derive(Debug, Clone)]
pub struct Banner {
    /// Where it listens (relay and portal).
    pub addr: SocketAddr,
    /// The STUN line as printed.
    pub stun_line: String,
    /// `STUN on BOUND (clients use ADVERTISED)`: the two addresses.
    pub stun: Option<(SocketAddr, String)>,
    /// Where `/health` and `/metrics` answer, if on.
    pub health: Option<SocketAddr>,
    /// The operator CA's SHA-256 fingerprint as printed (hex with colons).
    pub fingerprint: String,
    /// Every line up to the fingerprint.
    pub lines: Vec<String>,
}

impl Banner {
    /// The fingerprint as bytes.
    pub fn fingerprint_bytes(&self) -> Option<[u8; 32]> {
        lifeline_protocol::hex::decode_array::<32>(&self.fingerprint.replace(':', ""))
    }
}

/// A started gateway: the process, the rest of its stdout, its banner.
#[derive(Debug)]
pub struct Launched {
    /// The process (the caller kills it).
    pub child: Child,
    /// Its stdout after the banner (read on a thread to the end, so the
    /// gateway never blocks or dies on a full or closed pipe).
    pub stdout: Lines,
    /// What it printed at start.
    pub banner: Banner,
}

impl GatewayLaunch {
    /// `program --data-dir DATA_DIR serve --listen 127.0.0.1:0`, its log
    /// to this process's stderr.
    pub fn new(program: impl Into<PathBuf>, data_dir: &Path) -> Self {
        Self {
            program: program.into(),
            wrapper: Vec::new(),
            data_dir: data_dir.to_owned(),
            store: None,
            listen: "127.0.0.1:0".into(),
            args: Vec::new(),
            env: Vec::new(),
            log: GatewayLog::Inherit,
        }
    }

    /// `--store URL` (`None`: the embedded default).
    pub fn store(mut self, url: Option<&str>) -> Self {
        self.store = url.map(str::to_owned);
        self
    }

    /// `--listen ADDR`.
    pub fn listen(mut self, addr: &str) -> Self {
        self.listen = addr.to_owned();
        self
    }

    /// More flags for `serve`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Environment variables for the gateway.
    pub fn envs(mut self, env: &[(&str, &str)]) -> Self {
        self.env
            .extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        self
    }

    /// Runs the gateway through `wrapper` (`prlimit --nofile=N:N --`, `ip
    /// netns exec NS`); nothing when empty.
    pub fn wrapped(mut self, wrapper: &[&str]) -> Self {
        self.wrapper = wrapper.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    /// Where its log goes.
    pub fn log(mut self, log: GatewayLog) -> Self {
        self.log = log;
        self
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `--store`, if set.
    pub fn store_url(&self) -> Option<&str> {
        self.store.as_deref()
    }

    /// The command line as it will run (for error messages).
    fn command(&self) -> Result<Command, String> {
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        cmd.arg("--data-dir").arg(&self.data_dir);
        if let Some(s) = &self.store {
            cmd.arg("--store").arg(s);
        }
        cmd.args(["serve", "--listen", &self.listen]);
        let chosen = |flag: &str, var: &str| {
            self.args.iter().any(|a| a == flag || a == "--config")
                || self.env.iter().any(|(k, _)| k == var)
        };
        if !chosen("--health-listen", "LIFELINE_HEALTH_LISTEN") {
            cmd.args(["--health-listen", "127.0.0.1:0"]);
        }
        if !chosen("--stun-listen", "LIFELINE_STUN_LISTEN") {
            cmd.args(["--stun-listen", "127.0.0.1:0"]);
        }
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        match &self.log {
            GatewayLog::Inherit => {
                let level =
                    std::env::var("LIFELINE_TEST_GATEWAY_LOG").unwrap_or_else(|_| "warn".into());
                cmd.env("RUST_LOG", level).stderr(Stdio::inherit());
            }
            GatewayLog::File { path, level } => {
                let file = std::fs::File::create(path)
                    .map_err(|e| format!("creating {}: {e}", path.display()))?;
                if let Some(level) = level {
                    cmd.env("RUST_LOG", level);
                }
                cmd.stderr(Stdio::from(file));
            }
        }
        Ok(cmd)
    }

    /// Starts it and reads its banner; an error says what it printed.
    pub fn spawn(self) -> Result<Launched, String> {
        let mut cmd = self.command()?;
        let mut child = cmd.spawn().map_err(|e| format!("starting {cmd:?}: {e}"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| "the gateway has no stdout".to_owned())?;
        let mut stdout = Lines::spawn(stdout);
        match read_banner(&mut stdout) {
            Ok(banner) => Ok(Launched {
                child,
                stdout,
                banner,
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = match &self.log {
                    GatewayLog::File { path, .. } => {
                        std::fs::read_to_string(path).unwrap_or_default()
                    }
                    GatewayLog::Inherit => "(on stderr)".into(),
                };
                Err(format!(
                    "{cmd:?}: {e}; stdout:\n{}\nlog:\n{log}",
                    stdout.seen.join("\n")
                ))
            }
        }
    }
}

/// Reads the banner: the listen line, the STUN line, the health line and
/// the fingerprint, in the order the gateway prints them.
fn read_banner(out: &mut Lines) -> Result<Banner, String> {
    let deadline = Instant::now() + BANNER_TIMEOUT;
    let mut next = |what: &str| -> Result<String, String> {
        out.next(deadline.saturating_duration_since(Instant::now()))
            .ok_or_else(|| format!("no {what} within {BANNER_TIMEOUT:?}"))
    };
    let listening = loop {
        let l = next("listen line")?;
        if l.contains("listening on ") {
            break l;
        }
    };
    let addr = word_after(&listening, "listening on ")?
        .parse()
        .map_err(|e| format!("listen address in {listening:?}: {e}"))?;
    let stun_line = next("STUN line")?;
    if !stun_line.starts_with("STUN ") {
        return Err(format!("expected the STUN line, got {stun_line:?}"));
    }
    let stun = match stun_line.strip_prefix("STUN on ") {
        Some(rest) => {
            let (bound, advertised) = rest
                .split_once(" (clients use ")
                .ok_or_else(|| format!("unexpected STUN line {stun_line:?}"))?;
            let bound = bound
                .parse()
                .map_err(|e| format!("STUN address in {stun_line:?}: {e}"))?;
            Some((bound, advertised.trim_end_matches(')').to_owned()))
        }
        None => None,
    };
    let health_line = next("health line")?;
    if !health_line.starts_with("health and metrics ") {
        return Err(format!("expected the health line, got {health_line:?}"));
    }
    let health = match health_line.strip_prefix("health and metrics on http://") {
        Some(rest) => Some(
            rest.split('/')
                .next()
                .unwrap_or_default()
                .parse()
                .map_err(|e| format!("health address in {health_line:?}: {e}"))?,
        ),
        None => None,
    };
    let fp_line = next("fingerprint line")?;
    let fingerprint = word_after(&fp_line, "fingerprint (SHA-256): ")?.to_owned();
    Ok(Banner {
        addr,
        stun_line,
        stun,
        health,
        fingerprint,
        lines: out.seen.clone(),
    })
}

/// The word after `marker` in `line`.
fn word_after<'a>(line: &'a str, marker: &str) -> Result<&'a str, String> {
    line.split(marker)
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .ok_or_else(|| format!("no {marker:?} in {line:?}"))
}
