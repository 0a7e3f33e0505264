//! The applet's session: wait at a gateway (reconnecting as needed), pair,
//! establish the end-to-end channel, chat, and end.

use crate::gateway;
use crate::identity::Identity;
use crate::ui::{WorkLines, lang, show};
use crate::words::{End, Line, Path, Refusal, Trouble};
use lifeline_protocol::Permissions;
use lifeline_protocol::e2e::EndedBy;
use lifeline_protocol::relay::PickedBy;
use lifeline_protocol::relay::RefuseCode;
use lifeline_protocol::trailer::TrailerBody;
use lifeline_remote::applet::{AppletWork, Asker, Input as WorkInput};
use lifeline_remote::flow::Outbound;
use lifeline_session::core::SessionError;
use lifeline_session::direct::{Policy, Settings, Side};
use lifeline_session::gateway_conn::{self, LinkError, WaitEvent};
use lifeline_session::link::PathKind;
use lifeline_session::linktest::Direction;
use lifeline_session::live::{self, Command, Event};
use lifeline_session::secure::{self, SecureError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

/// Longest pause between attempts to reach the technician at the start.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15);
/// First pause between attempts to reach the technician again after the
/// session's path died (doubling up to [`RESUME_MAX_BACKOFF`]).
pub const RESUME_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between those: the technician is waiting, and the resume
/// window is short, so a network that comes back is used within about
/// this long (plus up to half of it, at random, so that the applets of a
/// node that died do not all come back in step).
pub const RESUME_MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How the applet's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The session happened and ended.
    Ended(End),
    /// The user stopped before a technician connected.
    Cancelled,
    /// The session cannot happen (expired, ended, unknown, impostor...).
    Failed(End),
    /// The gateway refused this copy of the program for a reason the
    /// program cannot fix but that leaves the session good (another copy
    /// is connected): the file is kept.
    Refused(End),
}

/// What the end user does — typed in the terminal or clicked in a
/// window — read on its own task so that waiting, pairing and chatting
/// all see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A chat line (or, while a question is open, the answer).
    Line(String),
    /// The answer to the open question (the window's buttons).
    Answer(bool),
    /// `/status`: how the session goes.
    Status,
    /// End the session (`/end`, Ctrl-C, the window's stop button).
    End,
    /// `/grants`: what is allowed and running.
    Grants,
    /// `/withdraw [what]`: take permissions back.
    Withdraw(String),
    /// `/stop`: stop what runs.
    Stop,
}

/// How many inputs may wait to be handled.
const INPUT_QUEUE: usize = 64;

/// The queue of the end user's inputs: whatever the screen is, it sends
/// here, and so do the signals that end the session (see
/// [`spawn_signals`]).
pub fn inputs() -> (mpsc::Sender<Input>, mpsc::Receiver<Input>) {
    mpsc::channel(INPUT_QUEUE)
}

/// The applet's own choices for going direct.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Which direct paths to allow.
    pub policy: Policy,
    /// Fixed TCP port for the direct listener (0: any).
    pub tcp_port: u16,
    /// Silence after which the session's path counts as dead.
    pub dead_path: Duration,
}

/// How the session meets the console again after its path died: [`reach`]
/// once more, quietly.
/// The ending that stopped it is kept in `last` (the session's error
/// carries only text for the log).
fn reconnector(body: Arc<Mutex<TrailerBody>>, last: Arc<Mutex<Option<End>>>) -> live::Reconnector {
    Arc::new(move || {
        // As it is now: a handover changes the console to expect.
        let body = body.lock().ok().map(|b| b.clone());
        let last = last.clone();
        Box::pin(async move {
            let Some(body) = body else {
                return Err("the session's state is broken".into());
            };
            match reach(&body, true, &AtomicBool::new(true)).await {
                Ok(r) => Ok(live::relay_path(r.est)),
                Err(Ending::Failed(end) | Ending::Refused(end) | Ending::Ended(end)) => {
                    let text = format!("{end:?}");
                    if let Ok(mut l) = last.lock() {
                        *l = Some(end);
                    }
                    Err(text)
                }
                Err(Ending::Cancelled) => Err("cancelled".into()),
            }
        })
    })
}

/// Ctrl-C, a closed terminal window (SIGHUP) or a polite kill (SIGTERM)
/// end the session as /end does: the technician is told, and the program
/// removes itself.
pub fn spawn_signals(tx: &mpsc::Sender<Input>) {
    let ctrl_c = tx.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = ctrl_c.send(Input::End).await;
        }
    });
    #[cfg(unix)]
    for kind in [
        tokio::signal::unix::SignalKind::hangup(),
        tokio::signal::unix::SignalKind::terminate(),
    ] {
        let tx = tx.clone();
        if let Ok(mut signal) = tokio::signal::unix::signal(kind) {
            tokio::spawn(async move {
                if signal.recv().await.is_some() {
                    let _ = tx.send(Input::End).await;
                }
            });
        }
    }
}

/// The terminal's input: lines typed on standard input, `/` commands.
pub fn spawn_stdin(tx: mpsc::Sender<Input>) {
    tokio::spawn(async move {
        use std::io::IsTerminal;
        let tty = std::io::stdin().is_terminal();
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        loop {
            let line = match lines.next_line().await {
                Ok(Some(line)) => line,
                // Ctrl-D on a terminal: the end of nothing — what is typed
                // next (`/end` too) still counts. (A pause, so a terminal
                // that is gone for good cannot make this spin.)
                Ok(None) if tty => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
                _ => break,
            };
            let line = line.trim_end().to_owned();
            let msg = if line == "/end" || line == "/quit" {
                Input::End
            } else if line == "/status" {
                Input::Status
            } else if line == "/grants" {
                Input::Grants
            } else if line == "/stop" {
                Input::Stop
            } else if let Some(rest) = line.strip_prefix("/withdraw") {
                Input::Withdraw(rest.trim().to_owned())
            } else if line.is_empty() {
                continue;
            } else {
                Input::Line(line)
            };
            if tx.send(msg).await.is_err() {
                break;
            }
        }
        // The end of a pipe: keep the session running (the user can
        // still end it with Ctrl-C or the technician can end it).
    });
}

/// Where [`reach`] got: the end-to-end channel with the console, through a
/// gateway's relay.
struct Reached {
    est: secure::AppletThroughRelay,
    pairing: gateway_conn::Pairing,
    /// Our address as the gateway saw it.
    observed: Option<std::net::IpAddr>,
    gateway_is_local: bool,
}

/// Finds a gateway, proves we hold this session's applet file, waits to
/// be paired with the technician's console and runs the end-to-end
/// handshake — retrying with backoff until that works or the session
/// cannot happen (the error is the ending to show). `resuming`: the
/// session already ran and its path died; the messages are the user's
/// only while starting (a resumption has its own).
async fn reach(body: &TrailerBody, resuming: bool, paired: &AtomicBool) -> Result<Reached, Ending> {
    // A resumption retries sooner: the gateway may be back in a moment (a
    // restart), and the technician is waiting.
    let first = if resuming {
        RESUME_BACKOFF
    } else {
        Duration::from_secs(1)
    };
    let mut backoff = first;
    let mut announced_wait = false;
    let tell = |line: Line| {
        if resuming {
            tracing::info!(?line, "reconnecting");
        } else {
            show(&line);
        }
    };
    // The directory is fetched again only when no node of the last one
    // could be reached: when a node dies, its applets go straight to the
    // others instead of asking a directory (maybe the dead node's) first.
    let mut nodes = Vec::new();
    loop {
        if nodes.is_empty() {
            nodes = gateway::candidates(body).await;
        }
        let retry = match gateway::connect_fastest(body, &nodes).await {
            Err(e) => {
                tracing::info!(error = %e, "cannot reach the gateway");
                nodes.clear();
                Trouble::Unreachable
            }
            Ok((node, mut stream)) => {
                tracing::debug!(%node, "connected");
                let gateway_is_local = gateway_conn::gateway_is_local(&stream);
                let mut observed = None;
                let waited = async {
                    let hello =
                        gateway_conn::applet_hello(&stream, body.guid, &body.applet_secret)?;
                    gateway_conn::send_hello(&mut stream, &hello).await?;
                    gateway_conn::await_pairing(&mut stream, |ev| match ev {
                        WaitEvent::Waiting { observed: seen, .. } => {
                            observed = seen.parse::<std::net::SocketAddr>().ok().map(|a| a.ip());
                            if resuming {
                            } else if announced_wait {
                                show(&Line::WaitingAgain);
                            } else {
                                show(&Line::Waiting {
                                    technician: body.technician_name.clone(),
                                });
                                announced_wait = true;
                            }
                        }
                    })
                    .await
                };
                match waited.await {
                    // While resuming, "already connected" is our own old
                    // connection, which the gateway has not let go of yet.
                    Err(LinkError::Refused { code, message })
                        if !(code.is_transient()
                            || resuming && code == RefuseCode::AlreadyConnected) =>
                    {
                        tracing::info!(?code, %message, "refused");
                        let end = End::Refused(Refusal::of(code));
                        return Err(if code.session_is_over() {
                            Ending::Failed(end)
                        } else {
                            Ending::Refused(end)
                        });
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "the gateway connection broke");
                        Trouble::Interrupted
                    }
                    Ok(pairing) => {
                        paired.store(true, Ordering::Relaxed);
                        // A channel's file names no console: the gateway
                        // names the one that picked the session, and only
                        // until the first handshake succeeds (resumptions
                        // run with the key learned then: see `run`).
                        let Some(console_pin) = body
                            .console_pin
                            .or(pairing.picked_by.as_ref().map(|p| p.console_pin))
                        else {
                            tracing::info!("paired, but no console key to expect");
                            return Err(Ending::Failed(End::NotTheTechnician));
                        };
                        match secure::applet_side(
                            stream,
                            body.guid,
                            console_pin,
                            body.applet_secret,
                        )
                        .await
                        {
                            Ok(est) => {
                                return Ok(Reached {
                                    est,
                                    pairing,
                                    observed,
                                    gateway_is_local,
                                });
                            }
                            Err(SecureError::NotTheTechnician) => {
                                return Err(Ending::Failed(End::NotTheTechnician));
                            }
                            Err(e @ SecureError::Refused(_)) => {
                                tracing::info!(error = %e, "the console refused");
                                return Err(Ending::Failed(End::ConsoleRefused));
                            }
                            Err(e) => {
                                tracing::info!(error = %e, "secure channel");
                                paired.store(false, Ordering::Relaxed);
                                tell(Line::Retrying {
                                    trouble: Trouble::SecureSetup,
                                    secs: first.as_secs().max(1),
                                });
                                backoff = first;
                                continue;
                            }
                        }
                    }
                }
            }
        };
        tell(Line::Retrying {
            trouble: retry,
            secs: backoff.as_secs().max(1),
        });
        // Up to half the pause again, at random: the applets of a node
        // that died do not all come back to the others in one instant.
        tokio::time::sleep(backoff + jitter(backoff / 2)).await;
        let most = if resuming {
            RESUME_MAX_BACKOFF
        } else {
            MAX_BACKOFF
        };
        backoff = (backoff * 2).min(most);
    }
}

/// The trailer's body as the session goes on: a channel's applet takes
/// the console key and technician the gateway named when first paired.
fn with_console(body: &TrailerBody, picked_by: Option<&PickedBy>) -> TrailerBody {
    let mut body = body.clone();
    if body.console_pin.is_none()
        && let Some(p) = picked_by
    {
        body.console_pin = Some(p.console_pin);
        body.technician_name = lifeline_protocol::text::neutralize(&p.technician_name).into();
    }
    body
}

/// A random pause of at most `max`.
fn jitter(max: Duration) -> Duration {
    max.mul_f64((live::random_u64() >> 11) as f64 / (1u64 << 53) as f64)
}

/// Runs the whole session.
/// Runs the whole session with the end user's inputs from `input` (see
/// [`inputs`]).
pub async fn run(id: &Identity, opts: Options, mut input: mpsc::Receiver<Input>) -> Ending {
    let body = &id.body;
    let paired = AtomicBool::new(false);
    let mut early = Vec::new();
    let reached = tokio::select! {
        r = reach(body, false, &paired) => r,
        _ = wait_for_end(&mut input, &paired, &mut early) => return Ending::Cancelled,
    };
    let Reached {
        est,
        pairing,
        observed,
        gateway_is_local,
    } = match reached {
        Ok(r) => r,
        Err(ending) => return ending,
    };
    // From here on the session's console is fixed: a channel's applet
    // keeps the technician the gateway named at this first pairing, and
    // its resumptions accept no other.
    let body = &with_console(body, pairing.picked_by.as_ref());
    show(&Line::Connected {
        technician: body.technician_name.clone(),
        code: est.sas.to_string(),
    });
    show(&Line::CodeHint);

    // 4. Chat (and go direct) until someone ends it.
    let last_end = Arc::new(Mutex::new(None));
    // The session as it goes on: a handover changes its console and
    // technician (see `Event::Handover`).
    let current = Arc::new(Mutex::new(body.clone()));
    let setup = live::Setup {
        me: EndedBy::User,
        guid: body.guid,
        side: Side::Applet {
            console_pin: body.console_pin.unwrap_or_default(),
        },
        direct: Settings {
            policy: opts.policy,
            tcp_port: opts.tcp_port,
            stun: lifeline_session::direct::resolve_stun(pairing.stun.as_deref()).await,
            observed,
            loopback: gateway_is_local,
            start_after: Duration::ZERO,
        },
        on_path: None,
        scheduling: Default::default(),
        reconnect: Some(reconnector(current.clone(), last_end.clone())),
        dead_path: opts.dead_path,
        traffic: Default::default(),
    };
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    // What the user typed while the secure channel was being set up.
    for line in early {
        let _ = cmd_tx.send(Command::Say(line));
    }
    let (ev_tx, mut ev_rx) = mpsc::channel(64);
    // Remote work: its own task, fed with the session's remote-work events
    // and the end user's answers; it shows its lines through `say`.
    let (screen_tx, mut screen_rx) = mpsc::unbounded_channel();
    let (work, prompt_open, reports, notes) = AppletWork::new(
        Outbound::new(cmd_tx.clone()),
        body.permissions,
        Asker {
            technician: body.technician_name.clone(),
            company: body.operator_name.clone(),
        },
        lifeline_remote::applet::downloads_folder(),
        screen_tx,
    );
    let (work_tx, work_rx) = mpsc::unbounded_channel();
    let work_task = tokio::spawn(work.run(work_rx, reports, notes));
    tokio::spawn(async move {
        let mut lines = WorkLines::default();
        while let Some(w) = screen_rx.recv().await {
            lines.show(w);
        }
    });
    let session = tokio::spawn(live::run(est, setup, cmd_rx, ev_tx));
    let tech = || {
        current
            .lock()
            .map(|b| b.technician_name.clone())
            .unwrap_or_default()
    };
    // Whom the session was handed to, until they connect.
    let handed_to: Mutex<Option<String>> = Mutex::new(None);
    // The path, or none while the technician is reconnecting.
    let status = Mutex::new(Some(Path::Relay));
    let (yes, no) = lang().yes_no();
    // Whether the technician is away (the path died, not yet resumed).
    let away = AtomicBool::new(false);
    let pump_input = async {
        while let Some(i) = input.recv().await {
            let cmd = match i {
                Input::Line(text) => {
                    let word = text.trim().to_lowercase();
                    let answer = if yes.contains(&word.as_str()) {
                        Some(true)
                    } else if no.contains(&word.as_str()) {
                        Some(false)
                    } else {
                        None
                    };
                    if let Some(yes) = answer
                        && prompt_open.load(Ordering::Relaxed)
                    {
                        let _ = work_tx.send(WorkInput::Answer(yes));
                        continue;
                    }
                    Command::Say(text)
                }
                Input::Answer(yes) => {
                    if prompt_open.load(Ordering::Relaxed) {
                        let _ = work_tx.send(WorkInput::Answer(yes));
                    }
                    continue;
                }
                Input::Status => {
                    show(&Line::Status(status.lock().map_or(None, |s| *s)));
                    continue;
                }
                Input::Grants => {
                    let _ = work_tx.send(WorkInput::Overview);
                    continue;
                }
                Input::Stop => {
                    let _ = work_tx.send(WorkInput::Stop);
                    continue;
                }
                Input::Withdraw(what) => {
                    match withdrawn(&what) {
                        Ok(caps) => {
                            let _ = work_tx.send(WorkInput::Withdraw(caps));
                        }
                        Err(()) => show(&Line::WithdrawHelp),
                    }
                    continue;
                }
                Input::End => Command::End("the end user ended the session".into()),
            };
            let end = matches!(cmd, Command::End(_));
            if cmd_tx.send(cmd).is_err() || end {
                break;
            }
        }
        std::future::pending::<()>().await
    };
    let show_events = async {
        while let Some(ev) = ev_rx.recv().await {
            match ev {
                Event::Chat(text) => show(&Line::Chat {
                    technician: tech(),
                    text,
                }),
                Event::Rtt(kind, _) => {
                    if let Ok(mut s) = status.lock() {
                        *s = Some(plain(kind));
                    }
                }
                Event::PathChanged { kind, .. } => {
                    show(&Line::Direct {
                        technician: tech(),
                        path: plain(kind),
                    });
                    if let Ok(mut s) = status.lock() {
                        *s = Some(plain(kind));
                    }
                }
                Event::StaysOnRelay { .. } | Event::ProbeRtt(_) | Event::HandedOver => {}
                Event::Handover {
                    console_pin,
                    technician,
                } => {
                    // The console we trust introduces its successor: from
                    // now on only that key is accepted. Nothing the end
                    // user allowed carries over to someone else.
                    let to = lifeline_protocol::text::neutralize(&technician).into_owned();
                    let from = tech();
                    if let Ok(mut b) = current.lock() {
                        b.console_pin = Some(console_pin);
                        b.technician_name = to.clone();
                    }
                    if let Ok(mut h) = handed_to.lock() {
                        *h = Some(to.clone());
                    }
                    let _ = work_tx.send(WorkInput::HandedOver);
                    tracing::info!("the session is handed over to another technician");
                    show(&Line::HandedOver { from, to });
                    let _ = cmd_tx.send(Command::TookHandover);
                }
                ev @ (Event::Work(_)
                | Event::ChannelOpened { .. }
                | Event::ChannelData { .. }
                | Event::ChannelClosed { .. }
                | Event::ChannelReset { .. }
                | Event::ChannelSent { .. }) => {
                    let _ = work_tx.send(WorkInput::Event(ev));
                }
                Event::Reconnecting { why } => {
                    away.store(true, Ordering::Relaxed);
                    tracing::info!(%why, "reconnecting");
                    // After a handover the old console leaves: the end
                    // user already reads that the next one is awaited.
                    if handed_to.lock().is_ok_and(|h| h.is_none()) {
                        show(&Line::Reconnecting { technician: tech() });
                    }
                    if let Ok(mut s) = status.lock() {
                        *s = None;
                    }
                }
                Event::Resumed { fresh } => {
                    let _ = work_tx.send(WorkInput::Event(Event::Resumed { fresh }));
                    away.store(false, Ordering::Relaxed);
                    match handed_to.lock().ok().and_then(|mut h| h.take()) {
                        Some(technician) => show(&Line::TakenOver { technician }),
                        None => show(&Line::Back {
                            technician: tech(),
                            restarted: fresh,
                        }),
                    }
                    if let Ok(mut s) = status.lock() {
                        *s = Some(Path::Relay);
                    }
                }
                Event::TestStarted { bytes, .. } => show(&Line::TestStarted {
                    technician: tech(),
                    mib: bytes >> 20,
                }),
                Event::TestDone {
                    direction,
                    ok,
                    bytes,
                    secs,
                    detail,
                } => {
                    if !ok {
                        tracing::info!(%detail, "connection test");
                    }
                    show(&Line::TestDone {
                        technician: tech(),
                        to_user: direction == Direction::ToUser,
                        ok,
                        mib: bytes >> 20,
                        secs,
                    });
                }
            }
        }
    };
    let outcome = tokio::select! {
        r = session => r,
        _ = async { tokio::join!(pump_input, show_events) } => unreachable!("input pump never completes"),
    };
    // The session is over: everything the technician started stops, and
    // every permission ends with it.
    drop(work_tx);
    let _ = tokio::time::timeout(Duration::from_secs(3), work_task).await;
    match outcome {
        Ok(Ok(o)) if o.local => {
            // With the technician away, no one heard the `End`: the
            // gateway records it, so the session ends now and for them too.
            if away.load(Ordering::Relaxed) && !gateway::leave(body, &o.reason).await {
                tracing::info!("the gateway could not be told that the session ended");
            }
            Ending::Ended(End::ByYou)
        }
        Ok(Ok(o)) => {
            tracing::info!(reason = %o.reason, "the technician ended the session");
            Ending::Ended(End::ByTechnician { technician: tech() })
        }
        Ok(Err(SessionError::NotResumed(why))) => {
            tracing::info!(%why, "not resumed");
            Ending::Ended(End::NotRestored { technician: tech() })
        }
        // The session ended (or cannot go on) while reconnecting: the
        // gateway's refusal, as `reach` saw it.
        Ok(Err(SessionError::Over(why))) => {
            tracing::info!(%why, "over");
            let end = last_end.lock().ok().and_then(|mut l| l.take());
            Ending::Failed(end.unwrap_or(End::Lost))
        }
        Ok(Err(e)) => {
            tracing::info!(error = %e, "the session broke");
            Ending::Ended(End::Lost)
        }
        Err(e) => {
            tracing::warn!(error = %e, "the session task failed");
            Ending::Ended(End::Internal)
        }
    }
}

/// The permissions `/withdraw WHAT` takes back (all of them without a
/// word).
fn withdrawn(what: &str) -> Result<Permissions, ()> {
    Ok(match what {
        "" | "all" => Permissions::ALL,
        "command-prompt" | "shell" | "commands" => Permissions::RUN_COMMAND,
        "files" => Permissions::FILE_TO_USER.union(Permissions::FILE_FROM_USER),
        "system-info" => Permissions::SYSTEM_INFO,
        other => Permissions::parse_list(other).map_err(|_| ())?,
    })
}

/// The path in the end user's terms.
fn plain(kind: PathKind) -> Path {
    match kind {
        PathKind::Relay => Path::Relay,
        PathKind::DirectTcp => Path::DirectTcp,
        PathKind::XtcpUdp => Path::DirectUdp,
    }
}

/// Reads the user's input until they end. Lines typed while nobody is
/// connected are refused with a word; lines typed once the technician's
/// console is there (`paired`: the secure channel is being set up) are
/// kept in `early`, to be sent as soon as the session runs.
async fn wait_for_end(
    input: &mut mpsc::Receiver<Input>,
    paired: &AtomicBool,
    early: &mut Vec<String>,
) {
    loop {
        match input.recv().await {
            Some(Input::End) | None => return,
            Some(Input::Line(line)) if paired.load(Ordering::Relaxed) => early.push(line),
            Some(Input::Line(_)) => show(&Line::NotSentYet),
            Some(Input::Status) => show(&Line::Status(None)),
            Some(Input::Grants | Input::Withdraw(_) | Input::Stop) => show(&Line::NothingYet),
            // No question can be open before the session runs.
            Some(Input::Answer(_)) => {}
        }
    }
}
