//! The `gateway` command line: `serve` and `admin`.

use crate::admin::AdminCmd;
use crate::config::{ServeArgs, StoreArgs};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Lifeline gateway: relay, portal and store for remote-support sessions.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    /// How log lines are written to standard error: `human` (one line of
    /// text each) or `json` (one JSON object per line, for log shippers).
    #[arg(
        long,
        env = "LIFELINE_LOG_FORMAT",
        global = true,
        default_value = "human"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Text for people.
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run a gateway node (zero-config: embedded SQLite in the data dir).
    #[command(
        after_help = "Examples:\n  gateway serve\n  gateway serve --listen 0.0.0.0:443 --public-name support.example.com\n  gateway --store postgres://lifeline@db/lifeline serve"
    )]
    Serve(Box<ServeArgs>),
    /// Operator commands on the node's store.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Print a shell completion script to standard output.
    #[command(after_help = "Example: gateway completions bash > /etc/bash_completion.d/gateway")]
    Completions {
        /// bash, zsh or fish.
        shell: lifeline_clidocs::Shell,
    },
    /// Write the manual pages of gateway and each of its commands into DIR.
    #[command(after_help = "Example: gateway man /usr/local/share/man/man1")]
    Man {
        /// Where to write them (created if missing).
        dir: std::path::PathBuf,
    },
}

/// Removes the password from a store URL for display.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Completions and manual pages need nothing but the definitions.
    match &cli.cmd {
        Cmd::Completions { shell } => {
            return lifeline_clidocs::print_completions(
                <Cli as clap::CommandFactory>::command(),
                *shell,
            );
        }
        Cmd::Man { dir } => {
            return lifeline_clidocs::write_man_pages(
                <Cli as clap::CommandFactory>::command(),
                dir,
            );
        }
        _ => {}
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match cli.log_format {
        LogFormat::Human => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gateway: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.cmd {
            Cmd::Serve(serve) => run_serve(&cli.store, &serve).await,
            Cmd::Admin(cmd) => {
                let (data_dir, store) = crate::config::resolve_store(&cli.store)?;
                crate::admin::run(cmd, &store, &data_dir).await
            }
            // Handled before the runtime starts.
            Cmd::Completions { .. } | Cmd::Man { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway: {}", lifeline_clidocs::one_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn run_serve(store: &StoreArgs, serve: &ServeArgs) -> anyhow::Result<()> {
    let config = crate::config::resolve(store, serve)?;
    // Every waiting applet is a socket; allow as many as the hard limit
    // does (the banner says so when that is few).
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "could not raise the open-file limit");
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener.local_addr()?;
    let store_display = redact(&config.store_url);
    let (stun_socket, stun_status) = crate::stun::bind(config.stun_listen).await;
    // Like STUN, a taken health port is a warning, not a failed start.
    let (health_listener, health_line) = match config.health_listen {
        None => (
            None,
            "health and metrics off (--health-listen off)".to_owned(),
        ),
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                let bound = l.local_addr()?;
                (
                    Some(l),
                    format!(
                        "health and metrics on http://{bound}/metrics (alive: /healthz, ready: /readyz)"
                    ),
                )
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "cannot listen for health and metrics");
                (
                    None,
                    format!("health and metrics off: cannot listen on {addr}: {e}"),
                )
            }
        },
    };
    let node = crate::server::Node::prepare(config, local, stun_socket, health_listener).await?;
    // The signals are ours before the banner says the node is up: a
    // SIGTERM right after it drains rather than kills.
    let signals = stop_signals();
    // SIGHUP: the web certificate is read again (an ACME client renewed
    // it); connections already made keep theirs.
    #[cfg(unix)]
    {
        let certificates = node.certificates.clone();
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    match certificates.reload() {
                        Ok(what) => tracing::info!("SIGHUP: {what}"),
                        Err(why) => tracing::warn!(
                            "SIGHUP: the web certificate was not reloaded, the one in use stays: {why}"
                        ),
                    }
                }
            });
        }
    }
    let gw = node.gateway().clone();
    if node.first_run {
        println!("created data directory {}", gw.config.data_dir.display());
    }
    println!(
        "Lifeline gateway node {} listening on {local} (clients use {})",
        gw.node_name, gw.advertise
    );
    println!("{}", stun_status.banner(&gw.stun));
    println!("{health_line}");
    println!(
        "operator CA fingerprint (SHA-256): {}",
        lifeline_protocol::hex::fingerprint(&gw.identity.ca_fingerprint)
    );
    println!(
        "data directory: {}; store: {store_display}",
        gw.config.data_dir.display()
    );
    if local.ip().is_unspecified()
        && gw.config.public_names.is_empty()
        && gw.config.advertise.is_none()
    {
        println!(
            "note: applets will reach this node at {}; set --public-name for other machines",
            gw.advertise
        );
    }
    let cap = crate::server::connection_cap();
    if cap < crate::server::CONNECTIONS_WANTED {
        // Every waiting applet holds a socket: a node meant for many needs
        // the operator to lift the hard limit, which a process cannot.
        println!(
            "note: the open-file limit ({}) lets this node hold {cap} connections at once; \
             raise it (LimitNOFILE= in the systemd unit, ulimit -Hn) to hold more",
            crate::server::open_file_limit()
        );
    }
    use std::io::Write;
    std::io::stdout().flush().ok();
    // Reading and searching the stock applets takes a moment: the node
    // serves meanwhile, and the warning follows the banner.
    let check = gw.clone();
    tokio::spawn(async move {
        let key = check.identity.operator_key();
        for c in crate::personalize::check_stock_applets(&check.config, &key).await {
            if c.pinned {
                println!(
                    "applet for {}: release build pinned to this operator's key ({})",
                    c.platform,
                    c.path.display()
                );
            } else {
                println!(
                    "warning: the applet for {} ({}) is a development build: it does not \
                     pin this operator's key, so end users are told its publisher cannot be \
                     verified. Build a release applet with \
                     `LIFELINE_OPERATOR_KEY=$(gateway admin operator-key) cargo build --profile applet --bin applet` \
                     and serve it with --applet {}=target/applet/applet.",
                    c.platform,
                    c.path.display(),
                    c.platform
                );
            }
            if c.unstripped {
                println!(
                    "note: the applet for {} ({}, {:.1} MiB) is not stripped, and every end user \
                     downloads all of it; `cargo build --profile applet --bin applet` builds it \
                     for size.",
                    c.platform,
                    c.path.display(),
                    c.size as f64 / (1 << 20) as f64
                );
            }
            std::io::stdout().flush().ok();
        }
    });
    let (mut first, mut second) = (signals.clone(), signals);
    node.serve(
        listener,
        async move {
            let _ = first.wait_for(|n| *n >= 1).await;
        },
        async move {
            let _ = second.wait_for(|n| *n >= 2).await;
        },
    )
    .await?;
    Ok(())
}

/// Counts Ctrl-C and SIGTERM: the first drains the node, the second stops
/// it at once.
fn stop_signals() -> tokio::sync::watch::Receiver<u32> {
    let (tx, rx) = tokio::sync::watch::channel(0u32);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            if let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                loop {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                    tx.send_modify(|n| *n += 1);
                }
            }
        }
        while tokio::signal::ctrl_c().await.is_ok() {
            tx.send_modify(|n| *n += 1);
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite:/x"), "sqlite:/x");
    }
}
