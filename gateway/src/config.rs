//! Gateway configuration: command-line flags, `LIFELINE_*` environment
//! variables and an optional TOML file, in that order of precedence, with
//! defaults that make `gateway serve` work with no flags at all.

use clap::Args;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Where the node keeps its state, and which store it uses. Shared by
/// `serve` and every `admin` command, so both act on the same store.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Data directory (operator CA, node certificate, signing key, SQLite
    /// database). Created on first run.
    #[arg(long, env = "LIFELINE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Store URL: `sqlite:PATH` or `postgres://user@host/db`. Default: the
    /// SQLite database in the data directory.
    #[arg(long, env = "LIFELINE_STORE", global = true)]
    pub store: Option<String>,
    /// TOML configuration file (keys as the long flags, with `_`).
    #[arg(long, env = "LIFELINE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

/// Flags of `gateway serve`. Every value is optional here so that the
/// config file can fill what the command line leaves out.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TLS listen address (relay and portal share it).
    #[arg(long, env = "LIFELINE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// UDP address of the STUN server the ends use to go direct
    /// (default 0.0.0.0:3478), or `off`.
    #[arg(long, env = "LIFELINE_STUN_LISTEN")]
    pub stun_listen: Option<ListenAddr>,
    /// TCP address of the plain-HTTP health and metrics endpoints
    /// (`/healthz`, `/readyz`, `/health`, `/metrics`; default
    /// 127.0.0.1:9464, keep it on loopback or a private network), or `off`.
    #[arg(long, visible_alias = "metrics-listen", env = "LIFELINE_HEALTH_LISTEN")]
    pub health_listen: Option<ListenAddr>,
    /// Extra DNS names or IPs for the node certificate (repeatable).
    #[arg(
        long = "public-name",
        env = "LIFELINE_PUBLIC_NAMES",
        value_delimiter = ','
    )]
    pub public_names: Vec<String>,
    /// `host:port` clients should use to reach this node (defaults to the
    /// first public name with the listen port, else the listen address).
    #[arg(long, env = "LIFELINE_ADVERTISE")]
    pub advertise: Option<String>,
    /// This node's name in a cluster (default: generated once, kept in the
    /// data directory).
    #[arg(long, env = "LIFELINE_NODE_NAME")]
    pub node_name: Option<String>,
    /// Operator display name shown to end users.
    #[arg(long, env = "LIFELINE_OPERATOR_NAME")]
    pub operator_name: Option<String>,
    /// A browser-trusted certificate chain (PEM) for web pages, served to
    /// TLS clients asking for one of its names (say, one an ACME client
    /// keeps current; read again on SIGHUP). Applets and consoles keep
    /// pinning the operator CA: give them other names.
    #[arg(long, env = "LIFELINE_WEB_CERT", requires = "web_key")]
    pub web_cert: Option<PathBuf>,
    /// The web certificate's private key (PEM).
    #[arg(long, env = "LIFELINE_WEB_KEY", requires = "web_cert")]
    pub web_key: Option<PathBuf>,
    /// Delete ended sessions and audit records older than this (`90d`,
    /// `12h`; 1 hour at least), at start and then hourly (default: keep
    /// everything; `gateway admin prune` does it by hand).
    #[arg(long, env = "LIFELINE_RETENTION")]
    pub retention: Option<String>,
    /// Stock applet per platform, `PLATFORM=PATH` (repeatable); default: the
    /// `applet` next to this executable for this platform.
    #[arg(long = "applet", env = "LIFELINE_APPLETS", value_delimiter = ',')]
    pub applets: Vec<String>,
    /// Seconds a new connection has for TLS and its hello.
    #[arg(long, env = "LIFELINE_HANDSHAKE_TIMEOUT")]
    pub handshake_timeout: Option<u64>,
    /// Seconds a portal request's body has to arrive once its headers have.
    #[arg(long, env = "LIFELINE_BODY_TIMEOUT")]
    pub body_timeout: Option<u64>,
    /// Seconds a console waits for its applet to arrive.
    #[arg(long, env = "LIFELINE_PAIRING_WINDOW")]
    pub pairing_window: Option<u64>,
    /// Seconds an interrupted session (its relay or direct path lost) may
    /// take to resume before it ends.
    #[arg(long, env = "LIFELINE_RESUME_WINDOW")]
    pub resume_window: Option<u64>,
    /// Seconds relayed sessions get to finish at shutdown.
    #[arg(long, env = "LIFELINE_DRAIN_TIMEOUT")]
    pub drain_timeout: Option<u64>,
    /// Concurrent connections allowed from one IP address.
    #[arg(long, env = "LIFELINE_MAX_CONNS_PER_IP")]
    pub max_conns_per_ip: Option<usize>,
    /// Failed attempts allowed per source address per minute, for each
    /// kind separately: unknown sessions, failed logins, bad console tokens.
    #[arg(long, env = "LIFELINE_MAX_BAD_ATTEMPTS_PER_MINUTE")]
    pub max_bad_attempts_per_minute: Option<u32>,
    /// Seconds an account stays locked after 5 consecutive failed logins.
    #[arg(long, env = "LIFELINE_LOCKOUT_SECS")]
    pub lockout_secs: Option<u64>,
    /// Lifetime of technician tokens in seconds.
    #[arg(long, env = "LIFELINE_TOKEN_TTL")]
    pub token_ttl: Option<u64>,
    /// Default session lifetime in seconds.
    #[arg(long, env = "LIFELINE_SESSION_TTL")]
    pub session_ttl: Option<u64>,
    /// Testing only: append every byte the relay forwards to files in this
    /// directory. The bytes are end-to-end encrypted; tests use this to
    /// show the gateway cannot read them.
    #[arg(long, env = "LIFELINE_DANGER_RECORD_RELAY", hide = true)]
    pub danger_record_relay: Option<PathBuf>,
}

/// The same keys, read from a TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    store: Option<String>,
    listen: Option<SocketAddr>,
    stun_listen: Option<ListenAddr>,
    #[serde(alias = "metrics_listen")]
    health_listen: Option<ListenAddr>,
    public_names: Option<Vec<String>>,
    advertise: Option<String>,
    node_name: Option<String>,
    operator_name: Option<String>,
    web_cert: Option<PathBuf>,
    web_key: Option<PathBuf>,
    retention: Option<String>,
    applets: Option<Vec<String>>,
    handshake_timeout: Option<u64>,
    body_timeout: Option<u64>,
    pairing_window: Option<u64>,
    resume_window: Option<u64>,
    drain_timeout: Option<u64>,
    max_conns_per_ip: Option<usize>,
    max_bad_attempts_per_minute: Option<u32>,
    lockout_secs: Option<u64>,
    token_ttl: Option<u64>,
    session_ttl: Option<u64>,
}

/// Where an optional listener listens (`--stun-listen`, `--health-listen`):
/// an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ListenAddr {
    /// Not at all.
    Off,
    /// On this address.
    On(SocketAddr),
}

/// The default STUN address: every interface, the IANA port.
pub const DEFAULT_STUN_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 3478);
/// The default health and metrics address: loopback, Prometheus' port
/// range.
pub const DEFAULT_HEALTH_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        s.parse().map(Self::On).map_err(|_| {
            format!("{s:?} is not a listen address: expected IP:PORT (e.g. 0.0.0.0:3478) or off")
        })
    }
}

impl TryFrom<String> for ListenAddr {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Failed lockouts before an account locks.
pub const MAX_LOGIN_FAILURES: u32 = 5;

/// Fully resolved settings of a running node.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Store URL.
    pub store_url: String,
    /// Listen address.
    pub listen: SocketAddr,
    /// STUN listen address; `None`: no STUN server.
    pub stun_listen: Option<SocketAddr>,
    /// Health and metrics listen address; `None`: none.
    pub health_listen: Option<SocketAddr>,
    /// Extra certificate names.
    pub public_names: Vec<String>,
    /// Advertised `host:port` (None: derive from the bound address).
    pub advertise: Option<String>,
    /// Node name (None: from the data directory).
    pub node_name: Option<String>,
    /// Operator display name.
    pub operator_name: Option<String>,
    /// The web certificate's chain and key files, if any.
    pub web_cert: Option<(PathBuf, PathBuf)>,
    /// Ended sessions and audit records older than this are deleted.
    pub retention: Option<crate::admin::Age>,
    /// `(platform, path)` of stock applets.
    pub applets: Vec<(String, PathBuf)>,
    /// TLS + hello deadline.
    pub handshake_timeout: Duration,
    /// Deadline for a portal request's body once its headers are in.
    pub body_timeout: Duration,
    /// How long a console waits for the applet.
    pub pairing_window: Duration,
    /// How long an interrupted session may take to resume.
    pub resume_window: Duration,
    /// Drain time at shutdown.
    pub drain_timeout: Duration,
    /// Concurrent connections per IP.
    pub max_conns_per_ip: usize,
    /// Failed attempts per source per minute, per kind.
    pub max_bad_attempts_per_minute: u32,
    /// Account lock duration.
    pub lockout: Duration,
    /// Token lifetime.
    pub token_ttl: Duration,
    /// Default session lifetime.
    pub session_ttl: Duration,
    /// Relay recording directory (tests only).
    pub danger_record_relay: Option<PathBuf>,
}

/// Errors in configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("config file {path}: {message}")]
    Parse {
        /// Which file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is not valid.
    #[error("{0}")]
    Invalid(String),
}

/// The platform name of this build, e.g. `linux-x86_64`.
pub fn this_platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// The default data directory: `$XDG_DATA_HOME/lifeline-gateway`, else
/// `~/.local/share/lifeline-gateway`, else `./lifeline-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("lifeline-gateway");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/share/lifeline-gateway");
    }
    PathBuf::from("lifeline-data")
}

fn read_file(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Resolves where the data and store are (for `admin` commands too).
pub fn resolve_store(args: &StoreArgs) -> Result<(PathBuf, String), ConfigError> {
    let file = read_file(args.config.as_deref())?;
    Ok(store_of(args, &file))
}

fn store_of(args: &StoreArgs, file: &FileConfig) -> (PathBuf, String) {
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(default_data_dir);
    let store = args
        .store
        .clone()
        .or_else(|| file.store.clone())
        .unwrap_or_else(|| format!("sqlite:{}", data_dir.join("gateway.db").display()));
    (data_dir, store)
}

/// Resolves the settings of `serve`.
pub fn resolve(store: &StoreArgs, serve: &ServeArgs) -> Result<Config, ConfigError> {
    let file = read_file(store.config.as_deref())?;
    let (data_dir, store_url) = store_of(store, &file);
    let secs = |flag: Option<u64>, file: Option<u64>, default: u64| {
        Duration::from_secs(flag.or(file).unwrap_or(default))
    };
    let applet_specs = if serve.applets.is_empty() {
        file.applets.clone().unwrap_or_default()
    } else {
        serve.applets.clone()
    };
    let mut applets = Vec::new();
    for spec in applet_specs {
        let (platform, path) = spec.split_once('=').ok_or_else(|| {
            ConfigError::Invalid(format!(
                "--applet {spec:?}: expected PLATFORM=PATH, e.g. {}=/opt/lifeline/applet",
                this_platform()
            ))
        })?;
        applets.push((platform.trim().to_owned(), PathBuf::from(path.trim())));
    }
    let cfg = Config {
        data_dir,
        store_url,
        listen: serve
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8443))),
        stun_listen: match serve
            .stun_listen
            .or(file.stun_listen)
            .unwrap_or(ListenAddr::On(DEFAULT_STUN_LISTEN))
        {
            ListenAddr::Off => None,
            ListenAddr::On(addr) => Some(addr),
        },
        health_listen: match serve
            .health_listen
            .or(file.health_listen)
            .unwrap_or(ListenAddr::On(DEFAULT_HEALTH_LISTEN))
        {
            ListenAddr::Off => None,
            ListenAddr::On(addr) => Some(addr),
        },
        public_names: if serve.public_names.is_empty() {
            file.public_names.clone().unwrap_or_default()
        } else {
            serve.public_names.clone()
        },
        advertise: serve.advertise.clone().or(file.advertise.clone()),
        node_name: serve.node_name.clone().or(file.node_name.clone()),
        operator_name: serve.operator_name.clone().or(file.operator_name.clone()),
        web_cert: match (
            serve.web_cert.clone().or(file.web_cert.clone()),
            serve.web_key.clone().or(file.web_key.clone()),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "web_cert and web_key go together: give both or neither".into(),
                ));
            }
        },
        retention: match serve.retention.clone().or(file.retention.clone()) {
            Some(r) => Some(
                crate::admin::parse_older_than(&r)
                    .map_err(|e| ConfigError::Invalid(format!("retention: {e}")))?,
            ),
            None => None,
        },
        applets,
        handshake_timeout: secs(serve.handshake_timeout, file.handshake_timeout, 10),
        body_timeout: secs(serve.body_timeout, file.body_timeout, 10),
        pairing_window: secs(serve.pairing_window, file.pairing_window, 30),
        resume_window: secs(serve.resume_window, file.resume_window, 120),
        drain_timeout: secs(serve.drain_timeout, file.drain_timeout, 30),
        max_conns_per_ip: serve
            .max_conns_per_ip
            .or(file.max_conns_per_ip)
            .unwrap_or(256),
        max_bad_attempts_per_minute: serve
            .max_bad_attempts_per_minute
            .or(file.max_bad_attempts_per_minute)
            .unwrap_or(30),
        lockout: secs(serve.lockout_secs, file.lockout_secs, 300),
        token_ttl: secs(serve.token_ttl, file.token_ttl, 12 * 3600),
        session_ttl: secs(serve.session_ttl, file.session_ttl, 24 * 3600),
        danger_record_relay: serve.danger_record_relay.clone(),
    };
    if cfg.handshake_timeout.is_zero()
        || cfg.pairing_window.is_zero()
        || cfg.body_timeout.is_zero()
        || cfg.resume_window.is_zero()
    {
        return Err(ConfigError::Invalid(
            "handshake timeout, body timeout, pairing and resume windows must be at least 1 second"
                .into(),
        ));
    }
    if let Some(name) = &cfg.operator_name {
        lifeline_protocol::text::check_name("the operator name", name, 128)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    }
    if cfg.max_conns_per_ip == 0 {
        return Err(ConfigError::Invalid(
            "max_conns_per_ip must be at least 1".into(),
        ));
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn listen_values() {
        assert_eq!("off".parse::<ListenAddr>(), Ok(ListenAddr::Off));
        assert_eq!(" OFF ".parse::<ListenAddr>(), Ok(ListenAddr::Off));
        assert_eq!(
            "0.0.0.0:3478".parse::<ListenAddr>(),
            Ok(ListenAddr::On(DEFAULT_STUN_LISTEN))
        );
        assert_eq!(
            "[::]:3478".parse::<ListenAddr>(),
            Ok(ListenAddr::On("[::]:3478".parse().unwrap()))
        );
        for bad in ["", "3478", "0.0.0.0", "on", "stun.example.com:3478"] {
            let e = bad.parse::<ListenAddr>().unwrap_err();
            assert!(e.contains("IP:PORT") && e.contains("or off"), "{e}");
        }
    }
}
