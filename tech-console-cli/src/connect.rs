//! `tech-console connect GUID|LABEL`: one session, on a plain terminal in
//! line mode ([`crate::line`]), otherwise in batch mode — one command per
//! input line (`say TEXT`, `end [REASON]`,
//! `linktest SIZE [to_user|from_user|both]`, `probe`, `status`, and the
//! remote-work verbs of [`crate::work`]) and one JSON object per output
//! line for every event:
//!
//! | event | fields |
//! |---|---|
//! | `session` | `guid`, `label` — found |
//! | `waiting_for_user` | `node`, `state` |
//! | `paired` | `guid`, `node` |
//! | `sas` | `code` |
//! | `chat` | `from` (`user`), `text` |
//! | `path` | `path` (`relay`, `tcp`, `udp`), `rtt_ms`, `detail` — when the session moves; for `relay`, `detail` says why it stays |
//! | `rtt` | `path`, `rtt_ms`, `sent_bytes`, `received_bytes` — every ping (10 s); bytes are the session's payload so far |
//! | `linktest` | `direction` (`to_user`, `from_user`), `state` (`started`, `done`), `bytes`, and when done `ok`, `secs`, `mbps`, `detail` |
//! | `probe` | `rtt_ms` — a byte's round trip on an interactive channel (`probe`) |
//! | `status` | `path`, `sent_bytes`, `received_bytes` — the answer to `status` |
//! | `reconnecting` | `reason` — the path died; reconnecting through the gateway (the session goes on) |
//! | `resumed` | `path` (`relay`), `fresh` (the applet had to start afresh) — frames flow again |
//! | remote work | `requested`, `consent`, `grants`, `started`, `output`, `shell_output`, `exited`, `refused`, `listing`, `system_info`, `url_opened`, `transfer`, `transfer_finished` (see `lifeline_remote::console`) |
//! | `ended` | `by` (`user`, `technician`, `refused`, `lost`), `reason` |
//! | `error` | `message` |
//!
//! SIZE takes a `K`, `M` or `G` suffix (powers of 1024).

use crate::drive::{self, Controls, Handing, Options, Update};
use crate::profile::Profile;
use lifeline_session::link::PathKind;
use lifeline_session::live::{Command, Event};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// Runs `connect`. Returns the process exit code.
pub async fn connect(
    profile: &Profile,
    target: drive::Target,
    options: Options,
) -> anyhow::Result<i32> {
    let (controls, updates) = drive::start(profile.clone(), target, options);
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        return crate::line::run(profile, controls, updates).await;
    }
    Ok(batch(controls, updates).await)
}

/// Something to show: the batch-mode object, and the line for people
/// (`None`: nothing worth a line of its own).
#[derive(Debug)]
pub struct Said {
    /// The JSON event.
    pub json: Value,
    /// The line, not yet neutralized.
    pub human: Option<String>,
}

/// The path in use, as the status line and `/status` say it.
#[derive(Debug, Clone, Default)]
pub struct PathStatus {
    /// In words, e.g. `tcp (10.0.0.2:4000), 1.2 ms round trip`.
    pub words: String,
    /// The path.
    pub kind: Option<PathKind>,
    /// Its last round trip.
    pub rtt: Option<Duration>,
}

impl PathStatus {
    /// The path and the payload moved, as `/status` says them.
    pub fn with_payload(&self, (sent, received): (u64, u64)) -> String {
        format!(
            "{}; {} sent, {} received",
            if self.words.is_empty() {
                "no path yet"
            } else {
                &self.words
            },
            lifeline_remote::transfer::human_size(sent),
            lifeline_remote::transfer::human_size(received)
        )
    }
}

/// Milliseconds with one decimal.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// What an update says, and what it changes in the path's status.
pub fn describe(u: &Update, status: &mut PathStatus, traffic: (u64, u64)) -> Option<Said> {
    let said = |json: Value, human: String| {
        Some(Said {
            json,
            human: Some(human),
        })
    };
    match u {
        Update::Found { guid, label } => Some(Said {
            json: json!({"event": "session", "guid": guid.to_string(), "label": label}),
            human: None,
        }),
        Update::Waiting { node, state } => said(
            json!({"event": "waiting_for_user", "node": node, "state": state}),
            format!("the end user is not connected yet (session is {state}); waiting…"),
        ),
        Update::Paired { guid, node } => said(
            json!({"event": "paired", "guid": guid.to_string(), "node": node}),
            format!("end user connected through gateway {node}; securing the channel…"),
        ),
        Update::Secured { sas } => {
            *status = PathStatus {
                words: "relay".into(),
                kind: Some(PathKind::Relay),
                rtt: None,
            };
            said(
                json!({"event": "sas", "code": sas}),
                format!(
                    "secure channel ready. Verification code: {sas} (the end user sees the same)"
                ),
            )
        }
        Update::Work(n) => Some(Said {
            json: n.json.clone(),
            human: Some(n.human.clone()),
        }),
        Update::Ended { by, reason, .. } => said(
            json!({"event": "ended", "by": by, "reason": reason}),
            format!("session ended by {by}: {reason}"),
        ),
        Update::Failed(message) => said(
            json!({"event": "error", "message": message}),
            format!("error: {message}"),
        ),
        Update::Event(ev) => describe_event(ev, status, traffic),
        Update::Handing(h) => Some(describe_handing(h)),
    }
}

fn describe_handing(h: &Handing) -> Said {
    let (json, human) = match h {
        Handing::Offered(to) => (
            json!({"event": "handover", "state": "offered", "to": to}),
            format!(
                "offered the session to {to}; it is handed over once they accept from their console (/transfer cancel withdraws it)"
            ),
        ),
        Handing::Withdrawn => (
            json!({"event": "handover", "state": "withdrawn"}),
            "the offer is withdrawn; the session stays yours".to_owned(),
        ),
        Handing::Accepted(to) => (
            json!({"event": "handover", "state": "accepted", "to": to}),
            format!("{to} accepted: handing the end user over to their console…"),
        ),
        Handing::Refused(why) => (
            json!({"event": "handover", "state": "refused", "message": why}),
            format!("handing over did not work: {why}"),
        ),
        Handing::Taking(from) => (
            json!({"event": "handover", "state": "taking", "from": from}),
            format!("accepted the session from {from}; waiting for their console to hand it over…"),
        ),
    };
    Said {
        json,
        human: Some(human),
    }
}

fn describe_event(ev: &Event, status: &mut PathStatus, traffic: (u64, u64)) -> Option<Said> {
    let said = |json: Value, human: String| {
        Some(Said {
            json,
            human: Some(human),
        })
    };
    match ev {
        Event::Chat(text) => said(
            json!({"event": "chat", "from": "user", "text": text}),
            format!("end user: {text}"),
        ),
        Event::Rtt(kind, rtt) => {
            status.words = format!("{kind}, {} ms round trip", ms(*rtt));
            status.kind = Some(*kind);
            status.rtt = Some(*rtt);
            Some(Said {
                json: json!({"event": "rtt", "path": kind.as_str(), "rtt_ms": ms(*rtt),
                             "sent_bytes": traffic.0, "received_bytes": traffic.1}),
                human: None,
            })
        }
        Event::PathChanged { kind, detail, rtt } => {
            let rtt_ms = rtt.map(ms);
            status.words = match rtt_ms {
                Some(r) => format!("{kind} ({detail}), {r} ms round trip"),
                None => format!("{kind} ({detail})"),
            };
            status.kind = Some(*kind);
            status.rtt = *rtt;
            said(
                json!({"event": "path", "path": kind.as_str(), "rtt_ms": rtt_ms, "detail": detail}),
                format!("session moved to {kind} ({detail}); the gateway no longer carries it"),
            )
        }
        Event::StaysOnRelay { reason } => {
            status.words = format!("relay (no direct path: {reason})");
            status.kind = Some(PathKind::Relay);
            said(
                json!({"event": "path", "path": PathKind::Relay.as_str(), "rtt_ms": null, "detail": reason}),
                format!("staying on the relay: {reason}"),
            )
        }
        Event::Reconnecting { why } => {
            status.words = format!("reconnecting ({why})");
            status.kind = None;
            said(
                json!({"event": "reconnecting", "reason": why}),
                format!(
                    "connection lost ({why}); reconnecting through the gateway — the session goes on"
                ),
            )
        }
        Event::Resumed { fresh } => {
            status.words = "relay".into();
            status.kind = Some(PathKind::Relay);
            said(
                json!({"event": "resumed", "path": PathKind::Relay.as_str(), "fresh": fresh}),
                "reconnected: the session goes on through the gateway".to_owned(),
            )
        }
        Event::ProbeRtt(rtt) => said(
            json!({"event": "probe", "rtt_ms": ms(*rtt), "path": status.words}),
            format!(
                "probe: {} ms round trip on the interactive channel",
                ms(*rtt)
            ),
        ),
        Event::TestStarted { direction, bytes } => said(
            json!({"event": "linktest", "direction": direction.as_str(), "state": "started", "bytes": bytes}),
            format!("link test {} started ({bytes} bytes)", direction.as_str()),
        ),
        Event::TestDone {
            direction,
            ok,
            bytes,
            secs,
            detail,
        } => {
            let mbps = if *secs > 0.0 {
                *bytes as f64 / secs / 1e6
            } else {
                0.0
            };
            said(
                json!({"event": "linktest", "direction": direction.as_str(), "state": "done",
                       "ok": ok, "bytes": bytes, "secs": secs, "mbps": mbps, "detail": detail}),
                if *ok {
                    format!(
                        "link test {}: {bytes} bytes in {secs:.2} s ({mbps:.1} MB/s), all correct",
                        direction.as_str()
                    )
                } else {
                    format!("link test {} FAILED: {detail}", direction.as_str())
                },
            )
        }
        // Remote work's events go to its task (see `drive`).
        _ => None,
    }
}

/// Batch mode: commands from stdin, JSON lines out. Returns the exit code.
async fn batch(
    controls: Controls,
    mut updates: tokio::sync::mpsc::UnboundedReceiver<Update>,
) -> i32 {
    let status = std::sync::Arc::new(std::sync::Mutex::new(PathStatus::default()));
    let input = tokio::spawn(read_batch(controls.clone(), status.clone()));
    let mut code = 1;
    while let Some(u) = updates.recv().await {
        let said = match status.lock() {
            Ok(mut s) => describe(&u, &mut s, controls.traffic.get()),
            Err(_) => None,
        };
        if let Some(s) = said {
            emit(&s.json);
        }
        match u {
            Update::Ended { clean, .. } => {
                code = if clean { 0 } else { 1 };
                break;
            }
            Update::Failed(_) => break,
            _ => {}
        }
    }
    input.abort();
    code
}

fn emit(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn error(message: &str) {
    emit(&json!({"event": "error", "message": message}));
}

/// Reads batch commands from stdin until it closes (the session goes on).
async fn read_batch(controls: Controls, status: std::sync::Arc<std::sync::Mutex<PathStatus>>) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.trim_end();
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        let ok = match verb {
            "" => true,
            "say" if !rest.is_empty() => controls.command(Command::Say(rest.to_owned())),
            "end" => controls.command(Command::End(if rest.trim().is_empty() {
                "the technician ended the session".into()
            } else {
                rest.trim().to_owned()
            })),
            "status" => {
                let s = status.lock().map(|s| s.words.clone()).unwrap_or_default();
                let (sent, received) = controls.traffic.get();
                emit(
                    &json!({"event": "status", "path": s, "sent_bytes": sent, "received_bytes": received}),
                );
                true
            }
            "probe" => controls.command(Command::Probe),
            "transfer" => match crate::typed::parse_transfer(rest) {
                Ok(to) => controls.hand_to(to),
                Err(e) => {
                    error(&e);
                    true
                }
            },
            "linktest" => match crate::typed::parse_linktest(rest) {
                Ok(cmds) => cmds.into_iter().all(|c| controls.command(c)),
                Err(e) => {
                    error(&e);
                    true
                }
            },
            _ => match crate::work::parse(verb, rest) {
                Some(Ok(r)) => controls.request(r),
                Some(Err(e)) => {
                    error(&e);
                    true
                }
                None => {
                    error(&format!(
                        "unknown command {line:?}; use `say TEXT`, `end [REASON]`, `linktest SIZE [to_user|from_user|both]`, `status`, `probe`, `transfer EMAIL|cancel`, or remote work: {}",
                        crate::work::VERBS
                    ));
                    true
                }
            },
        };
        if !ok {
            break;
        }
    }
    // Stdin closed: the session goes on until the end user ends it (or
    // `end` was sent and it is ending).
}
