//! The applet's session: wait at a gateway (reconnecting as needed), pair,
//! establish the end-to-end channel, chat, and end.

use crate::gateway;
use crate::identity::Identity;
use crate::ui::say;
use lifeline_protocol::e2e::EndedBy;
use lifeline_protocol::relay::{Hello, RefuseCode, Role, VERSION};
use lifeline_session::chat::{self, Command, Event};
use lifeline_session::relay_link::{self, LinkError, WaitEvent};
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
    /// The session cannot happen (refused, expired, impostor...).
    Failed(String),
}

/// What the user typed, read on its own task so that waiting, pairing and
/// chatting all see it.
#[derive(Debug)]
enum Input {
    Line(String),
    End,
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
pub async fn run(id: &Identity) -> Ending {
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

        // 2. Register and wait for the technician.
        let hello = Hello {
            version: VERSION,
            role: Role::Applet,
            guid: body.guid,
            token: Vec::new(),
        };
        let waited = async {
            relay_link::send_hello(&mut stream, &hello).await?;
            relay_link::await_pairing(&mut stream, |ev| match ev {
                WaitEvent::Waiting { .. } if !announced_wait => {
                    say(format!("Waiting for {} to connect…", body.technician_name));
                    announced_wait = true;
                }
                WaitEvent::Waiting { .. } => say("Reconnected; still waiting for your technician…"),
            })
            .await
        };
        let paired = tokio::select! {
            r = waited => r,
            _ = wait_for_end(&mut input) => return Ending::Cancelled,
        };
        match paired {
            Ok(()) => {}
            Err(LinkError::Refused { code, message }) if !code.is_transient() => {
                return Ending::Failed(refusal_text(code, &message));
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
        }
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

        // 4. Chat until someone ends it.
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (ev_tx, mut ev_rx) = mpsc::channel(64);
        let session = tokio::spawn(chat::run(est, EndedBy::User, cmd_rx, ev_tx));
        let tech = body.technician_name.clone();
        let pump_input = async {
            while let Some(i) = input.recv().await {
                let cmd = match i {
                    Input::Line(text) => Command::Say(text),
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
            while let Some(ev) = ev_rx.recv().await {
                match ev {
                    Event::Chat(text) => say(format!("{tech}: {text}")),
                    Event::Rtt(_) => {}
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

fn refusal_text(code: RefuseCode, message: &str) -> String {
    match code {
        RefuseCode::Expired => "This support session has expired. Please ask your technician for a new link.".into(),
        RefuseCode::Ended => "This support session has already ended. Please ask your technician for a new link.".into(),
        RefuseCode::UnknownSession => "The support service does not know this session. Please ask your technician for a new link.".into(),
        RefuseCode::AlreadyConnected => {
            "This support program is already running for this session (maybe in another window).".into()
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
