//! The `tech-console` command line.

use crate::profile::Profile;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Lifeline technician console.
#[derive(Debug, Parser)]
#[command(name = "tech-console", version, about)]
struct Cli {
    /// Where the login and session keys are kept (default:
    /// $LIFELINE_CONSOLE_DIR, else ~/.config/lifeline).
    #[arg(long, global = true)]
    config_dir: Option<PathBuf>,
    /// Without a command, on a terminal: the full-screen console (`ui`).
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The full-screen console: the waiting queue and a tab per session
    /// (chat, remote shell, files, system information, notes).
    #[command(
        after_help = "Example: tech-console ui    (or just: tech-console)\nKeys: F1 shows them all; Ctrl-Q quits."
    )]
    Ui,
    /// Log in to a gateway (once per shift).
    #[command(
        after_help = "Example: tech-console login --gateway support.example.com:443 \\\n    --ca-fingerprint 60:94:4C:…:06:FD --email ada@example.com\nAgain later (the next shift, an expired login): tech-console login"
    )]
    Login {
        /// Gateway `host:port` (default: the one of the last login here).
        #[arg(long)]
        gateway: Option<String>,
        /// The operator CA's SHA-256 fingerprint as the gateway prints it
        /// (not needed again for the gateway of the last login).
        #[arg(long, conflicts_with = "ca")]
        ca_fingerprint: Option<String>,
        /// The operator CA certificate (PEM).
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Your e-mail address (default: the one of the last login here).
        #[arg(long)]
        email: Option<String>,
        /// Read the password from standard input without prompting.
        #[arg(long)]
        password_stdin: bool,
        /// Read the second factor's code from standard input (the line
        /// after the password with --password-stdin), for scripts.
        #[arg(long)]
        totp_stdin: bool,
    },
    /// Change your password (on the gateway of the last login here); every
    /// earlier login of yours ends, and this one goes on.
    #[command(
        after_help = "Example: tech-console password\nScripts: printf '%s\\n%s\\n' \"$OLD\" \"$NEW\" | tech-console password --password-stdin"
    )]
    Password {
        /// Read the current password, then the new one, from standard
        /// input (a line each) without prompting.
        #[arg(long)]
        password_stdin: bool,
        /// Read the second factor's code from standard input (after the
        /// passwords), for scripts.
        #[arg(long)]
        totp_stdin: bool,
    },
    /// Log out: the gateway stops accepting this login, and it is forgotten
    /// here.
    #[command(after_help = "Example: tech-console logout")]
    Logout,
    /// Create sessions.
    #[command(subcommand)]
    Session(SessionCmd),
    /// Your open sessions.
    #[command(after_help = "Example: tech-console sessions --json")]
    Sessions {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// End users waiting for you.
    #[command(after_help = "Example: tech-console queue")]
    Queue {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Connect to a waiting end user and chat: one of your sessions, or
    /// one waiting in your group's queue (a channel's), which you take.
    #[command(
        after_help = "Example: tech-console connect printer    (by label; a GUID works too; --next: the group queue's longest waiting)"
    )]
    Connect {
        /// Session GUID or label.
        #[arg(required_unless_present = "next")]
        target: Option<String>,
        /// Take the end user who has waited longest in your group's queue.
        #[arg(long, conflicts_with = "target")]
        next: bool,
        /// Which path to move the session to: `auto` (direct TCP and XTCP
        /// over UDP race; TCP is preferred), `tcp`, `udp`, or `relay` (stay
        /// on the gateway).
        #[arg(long, default_value = "auto")]
        path: String,
        /// Seconds direct TCP is preferred: a UDP path found sooner waits
        /// this long for TCP, unless every TCP attempt has failed.
        #[arg(long, default_value_t = 10.0)]
        udp_after: f64,
        /// Seconds to stay on the relay before trying to go direct at all
        /// (for troubleshooting, or to watch a cutover mid-transfer).
        #[arg(long, default_value_t = 0.0)]
        direct_after: f64,
        /// Seconds of silence after which the session's path counts as
        /// lost and the session is restored through the gateway.
        #[arg(long, default_value_t = 10.0)]
        dead_path: f64,
    },
    /// Print a shell completion script to standard output.
    #[command(
        after_help = "Example: tech-console completions bash > /etc/bash_completion.d/tech-console"
    )]
    Completions {
        /// bash, zsh or fish.
        shell: lifeline_clidocs::Shell,
    },
    /// Write the manual pages of tech-console and each of its commands into DIR.
    #[command(after_help = "Example: tech-console man /usr/local/share/man/man1")]
    Man {
        /// Where to write them (created if missing).
        dir: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum SessionCmd {
    /// Create a session and download its personalized applet, or give it
    /// a 6-digit PIN or a one-time link for the gateway's web page.
    #[command(
        after_help = "Example: tech-console session new --label printer --out ./support\n    or: tech-console session new --label printer --pin    (read the PIN to the end user)\n    or: tech-console session new --label printer --link   (send the link by e-mail)"
    )]
    New {
        /// A label to find the session by.
        #[arg(long)]
        label: Option<String>,
        /// Where to save the applet.
        #[arg(long, required_unless_present_any = ["pin", "link"], conflicts_with_all = ["pin", "link"])]
        out: Option<PathBuf>,
        /// Instead of a file: a 6-digit PIN (valid 20 minutes, once) with
        /// which the end user downloads the applet from the gateway's web
        /// page.
        #[arg(long, conflicts_with = "link")]
        pin: bool,
        /// Instead of a file: a one-time link (to send by e-mail) to a page
        /// on the gateway that downloads the applet; it works until used
        /// or the session expires.
        #[arg(long)]
        link: bool,
        /// Applet platform (default: the gateway's own).
        #[arg(long)]
        platform: Option<String>,
        /// Session lifetime in seconds (default set by the operator).
        #[arg(long)]
        expires_in: Option<u64>,
        /// Replace the file at --out if there is one.
        #[arg(long)]
        force: bool,
    },
    /// Fetch a session's applet again, until its end user connects: a
    /// new one-time download, and the previous applet file stops working.
    #[command(
        after_help = "Example: tech-console session applet printer --out ./support-2\n    (the file sent before can no longer connect; send this one)"
    )]
    Applet {
        /// Session GUID or label.
        target: String,
        /// Where to save the applet.
        #[arg(long)]
        out: PathBuf,
        /// Applet platform (default: the gateway's own).
        #[arg(long)]
        platform: Option<String>,
        /// Replace the file at --out if there is one.
        #[arg(long)]
        force: bool,
    },
    /// Hand a connected session to a colleague of your group: they take
    /// it with `connect`, and your console hands the end user over (the
    /// end user is told; nothing they allowed you carries over).
    #[command(
        after_help = "Example: tech-console session transfer printer --to grace@example.com\n    or: tech-console session transfer printer --cancel"
    )]
    Transfer {
        /// Session GUID or label.
        target: String,
        /// The colleague's e-mail.
        #[arg(long, required_unless_present = "cancel", conflicts_with = "cancel")]
        to: Option<String>,
        /// Withdraw the offer: the session stays yours.
        #[arg(long)]
        cancel: bool,
    },
    /// End (or cancel) a session; its applet can no longer connect.
    #[command(after_help = "Example: tech-console session end printer --reason \"sent twice\"")]
    End {
        /// Session GUID or label.
        target: String,
        /// Why, for the audit trail.
        #[arg(long, default_value = "cancelled by the technician")]
        reason: String,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    lifeline_memtrim::keep_freed_memory(lifeline_session::FREED_MEMORY_KEPT);
    let cli = Cli::parse();
    let Some(cmd) = cli.cmd else {
        use std::io::IsTerminal;
        if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
            return main_with(cli.config_dir, Cmd::Ui);
        }
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        return ExitCode::from(2);
    };
    main_with(cli.config_dir, cmd)
}

fn main_with(config_dir: Option<PathBuf>, cmd: Cmd) -> ExitCode {
    // Completions and manual pages need nothing but the definitions.
    match &cmd {
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
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIFELINE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(lifeline_session::DEFAULT_LOG_FILTER)
    });
    // The full-screen console owns the terminal: its log goes to a file
    // in the config directory (a line on the screen would tear it).
    let log_file = match (&cmd, Profile::locate(config_dir.clone())) {
        (Cmd::Ui, Ok(p)) => p.log_file().ok(),
        _ => None,
    };
    match log_file {
        Some(file) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .init(),
        None => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init(),
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tech-console: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        let profile = Profile::locate(config_dir)?;
        match cmd {
            Cmd::Ui => return crate::ui::run(&profile).await,
            Cmd::Login {
                gateway,
                ca_fingerprint,
                ca,
                email,
                password_stdin,
                totp_stdin,
            } => {
                crate::login::login(
                    &profile,
                    crate::login::LoginArgs {
                        gateway,
                        ca_fingerprint,
                        ca,
                        email,
                        password_stdin,
                        totp_stdin,
                    },
                )
                .await?
            }
            Cmd::Password {
                password_stdin,
                totp_stdin,
            } => crate::login::password(&profile, password_stdin, totp_stdin).await?,
            Cmd::Logout => crate::commands::logout(&profile).await?,
            // Handled before the runtime starts.
            Cmd::Completions { .. } | Cmd::Man { .. } => {}
            Cmd::Session(SessionCmd::New {
                label,
                out: None,
                expires_in,
                link,
                ..
            }) => {
                let way = if link {
                    crate::commands::WebWay::Link
                } else {
                    crate::commands::WebWay::Pin
                };
                crate::commands::session_new_web(&profile, label, expires_in, way).await?
            }
            Cmd::Session(SessionCmd::New {
                label,
                out: Some(out),
                platform,
                expires_in,
                force,
                ..
            }) => {
                crate::commands::session_new(
                    &profile,
                    label,
                    &out,
                    platform.as_deref(),
                    expires_in,
                    force,
                )
                .await?
            }
            Cmd::Session(SessionCmd::Applet {
                target,
                out,
                platform,
                force,
            }) => {
                crate::commands::session_applet(&profile, &target, &out, platform.as_deref(), force)
                    .await?
            }
            Cmd::Session(SessionCmd::Transfer { target, to, .. }) => {
                crate::commands::session_transfer(&profile, &target, to.as_deref()).await?
            }
            Cmd::Session(SessionCmd::End { target, reason }) => {
                crate::commands::session_end(&profile, &target, &reason).await?
            }
            Cmd::Sessions { json } => crate::commands::list(&profile, false, json).await?,
            Cmd::Queue { json } => crate::commands::list(&profile, true, json).await?,
            Cmd::Connect {
                target,
                next,
                path,
                udp_after,
                direct_after,
                dead_path,
            } => {
                for (flag, v) in [("--udp-after", udp_after), ("--direct-after", direct_after)] {
                    if !(0.0..=3600.0).contains(&v) {
                        anyhow::bail!("{flag} must be between 0 and 3600 seconds");
                    }
                }
                let policy = lifeline_session::direct::Policy::parse(
                    &path,
                    std::time::Duration::from_secs_f64(udp_after),
                )
                .map_err(|e| anyhow::anyhow!("--path: {e}"))?;
                let options = crate::drive::Options {
                    policy,
                    start_after: std::time::Duration::from_secs_f64(direct_after),
                    dead_path: std::time::Duration::from_secs_f64(dead_path.clamp(1.0, 600.0)),
                };
                let target = match (next, target) {
                    (true, _) | (false, None) => crate::drive::Target::Next,
                    (false, Some(t)) => crate::drive::Target::Session(t),
                };
                return crate::connect::connect(&profile, target, options).await;
            }
        }
        Ok::<i32, anyhow::Error>(0)
    });
    // A pending read of stdin sits on a blocking thread that a plain
    // runtime drop would wait for; the session is over, so do not.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(c) => ExitCode::from(c as u8),
        Err(e) => {
            // Errors can carry the gateway's words: never let the terminal
            // obey them.
            eprintln!(
                "tech-console: {}",
                lifeline_protocol::text::neutralize(&lifeline_clidocs::one_line(e.as_ref()))
            );
            ExitCode::FAILURE
        }
    }
}
