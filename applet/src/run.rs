//! The applet's session: wait at a gateway (reconnecting as needed), pair,
//! establish the end-to-end channel, chat, and end.

use crate::gateway;
use crate::identity::Identity;
use crate::ui::say;
use lifeline_protocol::e2e::EndedBy;
use lifeline_protocol::relay::RefuseCode;
use lifeline_session::direct::{Policy, Settings, Side};
use lifeline_session::gateway_conn::{self, LinkError, WaitEvent};
use lifeline_session::link::PathKind;
use lifeline_session::linktest::Direction;
use lifeline_session::live::{self, Command, Event};
use lifeline_session::secure::{self, SecureError};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

/// Longest pause between reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15);

/// How the applet's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The session happened and ended.
    Ended(String),
    /// The user stopped before a technician connected.
    Cancelled,
    /// The session cannot happen (expired, ended, unknown, impostor...).
    Failed(String),
    /// The gateway refused this copy of the program for a reason the
    /// program cannot fix but that leaves the session good (another copy
    /// is connected): the file is kept.
    Refused(String),
}

/// What the user typed, read on its own task so that waiting, pairing and
/// chatting all see it.
#[derive(Debug)]
enum Input {
    Line(String),
    Status,
    End,
}

/// The applet's own choices for going direct.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Which direct paths to allow.
    pub policy: Policy,
    /// Fixed TCP port for the direct listener (0: any).
    pub tcp_port: u16,
}

fn spawn_input() -> mpsc::Receiver<Input> {
    let (tx, rx) = mpsc::channel(64);
    let ctrl_c = tx.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = ctrl_c.send(Input::End).await;
        }
    });
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let line = line.trim_end().to_owned();
            let msg = if line == "/end" || line == "/quit" {
                Input::End
            } else if line == "/status" {
                Input::Status
            } else if line.is_empty() {
                continue;
            } else {
                Input::Line(line)
            };
            if tx.send(msg).await.is_err() {
                break;
            }
        }
        // EOF on stdin: keep the session running (the user can still end
        // it with Ctrl-C or the technician can end it).
    });
    rx
}

/// Runs the whole session.
pub async fn run(id: &Identity, opts: Options) -> Ending {
    let body = &id.body;
    let mut input = spawn_input();
    let mut backoff = Duration::from_secs(1);
    let mut announced_wait = false;
    loop {
        // 1. Find a gateway and connect.
        let nodes = gateway::candidates(body).await;
        let connected = tokio::select! {
            r = gateway::connect_fastest(body, &nodes) => r,
            _ = wait_for_end(&mut input) => return Ending::Cancelled,
        };
        let (node, mut stream) = match connected {
            Ok(c) => c,
            Err(e) => {
                say(format!(
                    "Cannot reach the support service yet ({e}); retrying in {} s…",
                    backoff.as_secs()
                ));
                if sleep_or_end(&mut input, backoff).await {
                    return Ending::Cancelled;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        tracing::debug!(%node, "connected");
        let gateway_is_local = gateway_conn::gateway_is_local(&stream);

        // 2. Prove we hold this session's applet file, register and wait
        //    for the technician.
        let hello = match gateway_conn::applet_hello(&stream, body.guid, &body.applet_secret) {
            Ok(h) => h,
            Err(_) => {
                say("Could not set up the connection to the support service; retrying…");
                if sleep_or_end(&mut input, backoff).await {
                    return Ending::Cancelled;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let mut observed = None;
        let waited = async {
            gateway_conn::send_hello(&mut stream, &hello).await?;
            gateway_conn::await_pairing(&mut stream, |ev| match ev {
                WaitEvent::Waiting { observed: seen, .. } => {
                    observed = seen.parse::<std::net::SocketAddr>().ok().map(|a| a.ip());
                    if announced_wait {
                        say("Reconnected; still waiting for your technician…");
                    } else {
                        say(format!("Waiting for {} to connect…", body.technician_name));
                        announced_wait = true;
                    }
                }
            })
            .await
        };
        let paired = tokio::select! {
            r = waited => r,
            _ = wait_for_end(&mut input) => return Ending::Cancelled,
        };
        let pairing = match paired {
            Ok(p) => p,
            Err(LinkError::Refused { code, message }) if !code.is_transient() => {
                let text = refusal_text(code, &message);
                return if code.session_is_over() {
                    Ending::Failed(text)
                } else {
                    Ending::Refused(text)
                };
            }
            Err(e) => {
                say(format!(
                    "Connection to the support service interrupted ({e}); reconnecting…"
                ));
                if sleep_or_end(&mut input, backoff).await {
                    return Ending::Cancelled;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_secs(1);

        // 3. End-to-end TLS with the technician's console, through the relay.
        let est = match secure::applet_side(stream, body.guid, body.console_pin, body.applet_secret)
            .await
        {
            Ok(est) => est,
            Err(e @ (SecureError::NotTheTechnician | SecureError::Refused(_))) => {
                return Ending::Failed(e.to_string());
            }
            Err(e) => {
                say(format!(
                    "Setting up the secure connection failed ({e}); waiting again…"
                ));
                continue;
            }
        };
        say(format!(
            "Connected to {}. Verification code: {}",
            body.technician_name, est.sas
        ));
        say("If your technician reads you a different code, type /end now.");

        // 4. Chat (and go direct) until someone ends it.
        let setup = live::Setup {
            me: EndedBy::User,
            guid: body.guid,
            side: Side::Applet {
                console_pin: body.console_pin,
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
        };
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (ev_tx, mut ev_rx) = mpsc::channel(64);
        let session = tokio::spawn(live::run(est, setup, cmd_rx, ev_tx));
        let tech = body.technician_name.clone();
        let status = std::sync::Mutex::new(String::from("through the support service (relay)"));
        let pump_input = async {
            while let Some(i) = input.recv().await {
                let cmd = match i {
                    Input::Line(text) => Command::Say(text),
                    Input::Status => {
                        say(format!(
                            "Connection: {}",
                            status.lock().map(|s| s.clone()).unwrap_or_default()
                        ));
                        continue;
                    }
                    Input::End => Command::End("the end user ended the session".into()),
                };
                let end = matches!(cmd, Command::End(_));
                if cmd_tx.send(cmd).await.is_err() || end {
                    break;
                }
            }
            std::future::pending::<()>().await
        };
        let show_events = async {
            let mut path = PathKind::Relay;
            while let Some(ev) = ev_rx.recv().await {
                match ev {
                    Event::Chat(text) => say(format!("{tech}: {text}")),
                    Event::Rtt(kind, rtt) => {
                        path = kind;
                        if let Ok(mut s) = status.lock() {
                            *s = format!("{} ({} ms round trip)", describe(path), ms(rtt));
                        }
                    }
                    Event::PathChanged { kind, rtt, .. } => {
                        path = kind;
                        let rtt = rtt
                            .map(|r| format!(", {} ms round trip", ms(r)))
                            .unwrap_or_default();
                        say(format!("Now connected directly to {tech} ({kind}{rtt})."));
                        if let Ok(mut s) = status.lock() {
                            *s = format!("{}{rtt}", describe(kind));
                        }
                    }
                    Event::StaysOnRelay { .. } | Event::ProbeRtt(_) => {}
                    Event::TestStarted { bytes, .. } => say(format!(
                        "{tech} is testing the connection ({} MiB)…",
                        bytes >> 20
                    )),
                    Event::TestDone {
                        direction,
                        ok,
                        bytes,
                        secs,
                        detail,
                    } => {
                        let way = match direction {
                            Direction::ToUser => "from",
                            Direction::FromUser => "to",
                        };
                        if ok {
                            say(format!(
                                "Connection test {way} {tech}: {} MiB in {secs:.1} s ({}).",
                                bytes >> 20,
                                describe(path)
                            ));
                        } else {
                            say(format!("Connection test {way} {tech} failed: {detail}"));
                        }
                    }
                }
            }
        };
        let outcome = tokio::select! {
            r = session => r,
            _ = async { tokio::join!(pump_input, show_events) } => unreachable!("input pump never completes"),
        };
        return match outcome {
            Ok(Ok(o)) if o.local => Ending::Ended("you ended the session".into()),
            Ok(Ok(o)) => Ending::Ended(format!("{} ended the session ({})", tech, o.reason)),
            Ok(Err(e)) => Ending::Ended(format!("the connection to your technician was lost: {e}")),
            Err(e) => Ending::Ended(format!("internal error: {e}")),
        };
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn describe(kind: PathKind) -> &'static str {
    match kind {
        PathKind::Relay => "through the support service (relay)",
        PathKind::DirectTcp => "direct (TCP)",
        PathKind::XtcpUdp => "direct (UDP)",
    }
}

fn refusal_text(code: RefuseCode, message: &str) -> String {
    match code {
        RefuseCode::Expired => "This support session has expired. Please ask your technician for a new one.".into(),
        RefuseCode::Ended => "This support session has already ended. Please ask your technician for a new one.".into(),
        RefuseCode::UnknownSession => "The support service does not know this session. Please ask your technician for a new one.".into(),
        RefuseCode::AlreadyConnected => {
            "This support program is already running for this session (maybe in another window).".into()
        }
        RefuseCode::NotAuthorized => {
            "The support service could not confirm that this program belongs to your session. Please ask your technician for a new one.".into()
        }
        _ => format!("The support service refused the connection: {message}"),
    }
}

async fn wait_for_end(input: &mut mpsc::Receiver<Input>) {
    loop {
        match input.recv().await {
            Some(Input::End) | None => return,
            Some(Input::Line(_)) => {
                say("(Your technician is not connected yet; your message was not sent.)")
            }
            Some(Input::Status) => say("Connection: waiting for your technician."),
        }
    }
}

/// Sleeps; returns true if the user ended meanwhile.
async fn sleep_or_end(input: &mut mpsc::Receiver<Input>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = wait_for_end(input) => true,
    }
}
