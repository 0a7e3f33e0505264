//! `applet`: the end user's program. See [`lifeline_applet`].
#![forbid(unsafe_code)]
// A Windows release applet is a window program: double-clicked, it opens
// no console window next to its own.
#![cfg_attr(all(windows, not(debug_assertions)), windows_subsystem = "windows")]

use clap::Parser;
use lifeline_applet::identity;
use lifeline_applet::run::{self, Ending};
use lifeline_applet::ui::{self, greet, offered, show};
use lifeline_applet::window;
use lifeline_applet::words::{CannotStart, End, Line};
use std::process::ExitCode;

/// Lifeline remote support. Double-click to let your technician help you.
#[derive(Debug, Parser)]
#[command(
    name = "applet",
    version,
    about,
    after_help = "Example: ./support            (as sent by the technician; on a desktop, double-click it)\n         ./support --verify   (what it is for, without connecting)"
)]
struct Args {
    /// Show what this program is for (technician, operator, expiry) and
    /// exit without connecting (and without removing itself).
    #[arg(long)]
    verify: bool,
    /// Do not delete this program when the session ends.
    #[arg(long)]
    keep: bool,
    /// Which direct connection to the technician to allow: `auto` (direct
    /// TCP, then UDP), `tcp`, `udp`, or `relay` (always through the
    /// support service). The technician's choice can only narrow this.
    #[arg(long, default_value = "auto", env = "LIFELINE_PATH")]
    path: String,
    /// TCP port to listen on for the technician's direct connection (0:
    /// any free port). A fixed port lets a router forward it.
    #[arg(long, default_value_t = 0, env = "LIFELINE_TCP_PORT")]
    tcp_port: u16,
    /// Seconds of silence after which the connection to the technician
    /// counts as lost and is restored through the support service.
    #[arg(long, default_value_t = 10.0, env = "LIFELINE_DEAD_PATH_SECS")]
    dead_path: f64,
    /// Stay in the terminal: open no window, even on a desktop
    /// (`LIFELINE_NO_WINDOW=1` does the same; `0` leaves it off).
    #[arg(
        long,
        env = "LIFELINE_NO_WINDOW",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    no_window: bool,
    /// Print a shell completion script (bash, zsh or fish) and exit.
    #[arg(long, value_name = "SHELL")]
    completions: Option<lifeline_clidocs::Shell>,
    /// Write the manual page into DIR and exit.
    #[arg(long, value_name = "DIR")]
    man: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    lifeline_memtrim::keep_freed_memory(lifeline_session::FREED_MEMORY_KEPT);
    let args = Args::parse();
    if let Some(shell) = args.completions {
        return lifeline_clidocs::print_completions(
            <Args as clap::CommandFactory>::command(),
            shell,
        );
    }
    if let Some(dir) = &args.man {
        return lifeline_clidocs::write_man_pages(<Args as clap::CommandFactory>::command(), dir);
    }
    // A filter by target (`LIFELINE_LOG=info,lifeline_session=debug`):
    // no regex engine in the program every end user downloads.
    let filter = std::env::var("LIFELINE_LOG")
        .ok()
        .and_then(|f| f.parse::<tracing_subscriber::filter::Targets>().ok())
        .unwrap_or_else(|| {
            lifeline_session::DEFAULT_LOG_FILTER
                .parse()
                .unwrap_or_default()
        });
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(filter)
        .init();
    let windowed = !args.verify && !args.no_window && window::platform::has_display();
    if !windowed {
        return session(&args, None);
    }
    // On a desktop: the window on this (the main) thread, the session on
    // its own; both show the same lines, and the window's clicks are the
    // session's input as the terminal's lines are.
    let shared = window::Shared::new(window::model::Model::new(ui::lang()));
    ui::also_show_in({
        let shared = shared.clone();
        move |line| shared.apply(line)
    });
    let (tx, rx) = run::inputs();
    let session_thread = {
        let shared = shared.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            let code = session(&args, Some((tx, rx)));
            shared.finish();
            code
        })
    };
    if let Err(e) = window::run(shared, tx) {
        // The terminal (if any) goes on; so does the session.
        tracing::info!(error = %e, "no window could be opened");
    }
    session_thread.join().unwrap_or(ExitCode::FAILURE)
}

/// The applet's run on the screen `ui` shows on: verify itself, greet,
/// run the session with the end user's inputs (`io`: the window's; else a
/// new queue), say how it ended, and remove itself.
fn session(
    args: &Args,
    io: Option<(
        tokio::sync::mpsc::Sender<run::Input>,
        tokio::sync::mpsc::Receiver<run::Input>,
    )>,
) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(_) => {
            show(&Line::CannotStart(CannotStart::CannotReadItself));
            return ExitCode::from(2);
        }
    };
    let policy = match lifeline_session::direct::Policy::parse(
        &args.path,
        lifeline_session::direct::Policy::DEFAULT_UDP_AFTER,
    ) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(error = %e, "--path");
            show(&Line::CannotStart(CannotStart::BadOption("--path".into())));
            return ExitCode::from(2);
        }
    };
    let now = lifeline_session::now_ms().max(0) as u64;
    let id = match identity::load(&exe, now) {
        Ok(id) => id,
        Err(e) => {
            tracing::info!(error = %e, "cannot start");
            show(&Line::CannotStart(e.cannot_start()));
            // An expired or changed program is of no further use, and its
            // file holds the session's secret: it goes, like after every
            // ending. A file that never was personalized stays.
            if e.removes_the_program() && !args.keep && !args.verify {
                remove_self();
            }
            return ExitCode::from(2);
        }
    };
    if args.verify {
        let b = &id.body;
        show(&Line::Verify {
            operator: b.operator_name.clone(),
            technician: b.technician_name.clone(),
            session: b.guid.to_string(),
            label: b.label.clone(),
            expires: lifeline_protocol::time::rfc3339(b.expires_at_ms as i64),
            offered: offered(b),
            gateways: b.directory_urls.clone(),
            verified: !id.development_build,
        });
        if id.development_build {
            show(&Line::Unverified);
        }
        return ExitCode::SUCCESS;
    }
    greet(&id.body, id.development_build);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::info!(error = %e, "runtime");
            show(&Line::CannotStart(CannotStart::NoResources));
            return ExitCode::FAILURE;
        }
    };
    let opts = run::Options {
        policy,
        tcp_port: args.tcp_port,
        dead_path: std::time::Duration::from_secs_f64(args.dead_path.clamp(1.0, 600.0)),
    };
    let ending = rt.block_on(async {
        let (tx, rx) = io.unwrap_or_else(run::inputs);
        run::spawn_signals(&tx);
        run::spawn_stdin(tx);
        run::run(&id, opts, rx).await
    });
    let (code, remove) = match &ending {
        Ending::Ended(end) => {
            show(&Line::Ended(end.clone()));
            (ExitCode::SUCCESS, true)
        }
        Ending::Cancelled => {
            show(&Line::Ended(End::BeforeConnecting));
            (ExitCode::SUCCESS, true)
        }
        Ending::Failed(end) => {
            show(&Line::Ended(end.clone()));
            (ExitCode::from(3), true)
        }
        // The session is still good: the file is kept so the user can
        // start it again (another copy may be running, say).
        Ending::Refused(end) => {
            show(&Line::Ended(end.clone()));
            (ExitCode::from(3), false)
        }
    };
    // Nothing stays behind but files the user chose to receive.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    if remove && !args.keep {
        remove_self();
    }
    code
}

fn remove_self() {
    show(&Line::Removed(self_replace::self_delete().is_ok()));
}
