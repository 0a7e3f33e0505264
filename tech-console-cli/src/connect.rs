//! `tech-console connect GUID|LABEL`.
//!
//! On a terminal: line-mode chat (`/end [reason]` ends). Otherwise batch
//! mode: one command per input line (`say TEXT`, `end [REASON]`), and one
//! JSON object per output line for every event:
//!
//! | event | fields |
//! |---|---|
//! | `waiting_for_user` | `node` |
//! | `paired` | `guid`, `node` |
//! | `sas` | `code` |
//! | `chat` | `from` (`user`), `text` |
//! | `ended` | `by` (`user`, `technician`, `refused`, `lost`), `reason` |
//! | `error` | `message` |

use crate::commands::portal;
use crate::profile::Profile;
use anyhow::Context;
use lifeline_protocol::e2e::EndedBy;
use lifeline_protocol::portal::{EndSession, SessionInfo, SessionList};
use lifeline_protocol::relay::{Hello, Role, VERSION};
use lifeline_protocol::{ALPN_RELAY, SessionGuid, hex};
use lifeline_session::addr::HostPort;
use lifeline_session::chat::{self, Command, Event};
use lifeline_session::relay_link;
use lifeline_session::secure;
use lifeline_session::tls::{GatewayTrust, gateway_client_config};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

/// Prints events as JSON lines (batch) or text (terminal).
#[derive(Debug, Clone, Copy)]
pub struct Out {
    batch: bool,
}

impl Out {
    fn emit(&self, v: serde_json::Value, human: impl FnOnce() -> String) {
        let mut out = std::io::stdout().lock();
        if self.batch {
            let _ = writeln!(out, "{v}");
        } else {
            let _ = writeln!(out, "{}", human());
        }
        let _ = out.flush();
    }

    /// Reports an error.
    pub fn error(&self, message: &str) {
        self.emit(json!({"event": "error", "message": message}), || {
            format!("error: {message}")
        });
    }
}

/// Resolves a GUID or one of the technician's labels.
pub async fn resolve(
    client: &lifeline_session::portal::PortalClient,
    target: &str,
) -> anyhow::Result<SessionInfo> {
    if let Ok(guid) = target.parse::<SessionGuid>() {
        return Ok(client.get(&format!("/api/v1/sessions/{guid}")).await?);
    }
    let list: SessionList = client.get("/api/v1/sessions").await?;
    let mut matches: Vec<_> = list
        .sessions
        .into_iter()
        .filter(|s| s.label == target)
        .collect();
    match matches.len() {
        0 => anyhow::bail!("no open session with GUID or label {target:?}"),
        1 => Ok(matches.remove(0)),
        n => anyhow::bail!("{n} open sessions are labelled {target:?}; use the GUID"),
    }
}

/// Runs `connect`. Returns the process exit code.
pub async fn connect(profile: &Profile, target: &str) -> anyhow::Result<i32> {
    let out = Out {
        batch: !std::io::stdin().is_terminal(),
    };
    match run(profile, target, out).await {
        Ok(code) => Ok(code),
        Err(e) => {
            out.error(&format!("{e:#}"));
            Ok(1)
        }
    }
}

async fn run(profile: &Profile, target: &str, out: Out) -> anyhow::Result<i32> {
    let (login, client) = portal(profile)?;
    let info = resolve(&client, target).await?;
    let guid = info.guid;
    let (local, identity) = profile.load_session(&guid)?;
    let secret =
        hex::decode_array::<32>(&local.applet_secret).context("stored applet secret is damaged")?;

    // The applet waits on one node; connect there (the portal says which).
    let node_addr = match &info.waiting_node_addr {
        Some(a) => HostPort::parse(a, 8443)?,
        None => profile.gateway(&login)?,
    };
    if info.state != "waiting" {
        out.emit(
            json!({"event": "waiting_for_user", "node": node_addr.to_string(), "state": info.state}),
            || format!("the end user is not connected yet (session is {}); waiting…", info.state),
        );
    }
    let tls = gateway_client_config(&GatewayTrust::Ca(profile.gateway_ca()?), &[ALPN_RELAY])?;
    let mut stream = relay_link::connect(&node_addr, tls, Duration::from_secs(15)).await?;
    relay_link::send_hello(
        &mut stream,
        &Hello {
            version: VERSION,
            role: Role::Console,
            guid,
            token: login.token.as_bytes().to_vec(),
        },
    )
    .await?;
    relay_link::await_pairing(&mut stream, |_| {}).await?;
    out.emit(
        json!({"event": "paired", "guid": guid.to_string(), "node": node_addr.to_string()}),
        || format!("end user connected through gateway {node_addr}; securing the channel…"),
    );

    let est = match secure::console_side(stream, guid, &identity, secret).await {
        Ok(e) => e,
        Err(e) => {
            end_in_portal(&client, &guid, &format!("end-to-end setup failed: {e}")).await;
            return Err(e.into());
        }
    };
    let sas = est.sas.clone();
    out.emit(json!({"event": "sas", "code": sas}), || {
        format!("secure channel ready. Verification code: {sas} (the end user sees the same)")
    });
    if !out.batch {
        println!("type to chat; /end [reason] ends the session");
    }

    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (ev_tx, mut ev_rx) = mpsc::channel(64);
    let session = tokio::spawn(chat::run(est, EndedBy::Technician, cmd_rx, ev_tx));
    let input = tokio::spawn(read_commands(out, cmd_tx));
    let printer = tokio::spawn(async move {
        while let Some(ev) = ev_rx.recv().await {
            match ev {
                Event::Chat(text) => out.emit(
                    json!({"event": "chat", "from": "user", "text": text}),
                    || format!("user: {text}"),
                ),
                Event::Rtt(_) => {}
            }
        }
    });
    let result = session.await;
    input.abort();
    let _ = printer.await;
    let (by, reason, code) = match result {
        Ok(Ok(o)) => (o.by.as_str().to_owned(), o.reason, 0),
        Ok(Err(e)) => ("lost".to_owned(), e.to_string(), 1),
        Err(e) => ("lost".to_owned(), e.to_string(), 1),
    };
    out.emit(
        json!({"event": "ended", "by": by, "reason": reason}),
        || format!("session ended by {by}: {reason}"),
    );
    end_in_portal(&client, &guid, &format!("ended by {by}: {reason}")).await;
    profile.forget_session(&guid);
    Ok(code)
}

async fn end_in_portal(
    client: &lifeline_session::portal::PortalClient,
    guid: &SessionGuid,
    reason: &str,
) {
    let r: Result<SessionInfo, _> = client
        .post(
            &format!("/api/v1/sessions/{guid}/end"),
            &EndSession {
                reason: reason.to_owned(),
            },
        )
        .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "could not record the end of the session");
    }
}

/// Reads stdin: batch commands or terminal chat lines.
async fn read_commands(out: Out, tx: mpsc::Sender<Command>) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.trim_end();
        let cmd = if out.batch {
            match line.split_once(' ').unwrap_or((line, "")) {
                ("say", text) if !text.is_empty() => Command::Say(text.to_owned()),
                ("end", reason) => Command::End(if reason.is_empty() {
                    "the technician ended the session".into()
                } else {
                    reason.to_owned()
                }),
                ("", _) => continue,
                _ => {
                    out.error(&format!(
                        "unknown command {line:?}; use `say TEXT` or `end [REASON]`"
                    ));
                    continue;
                }
            }
        } else if let Some(rest) = line.strip_prefix("/end") {
            let r = rest.trim();
            Command::End(if r.is_empty() {
                "the technician ended the session".into()
            } else {
                r.to_owned()
            })
        } else if line.is_empty() {
            continue;
        } else {
            Command::Say(line.to_owned())
        };
        let end = matches!(cmd, Command::End(_));
        if tx.send(cmd).await.is_err() || end {
            break;
        }
    }
}
