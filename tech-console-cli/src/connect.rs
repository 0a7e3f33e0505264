//! `tech-console connect GUID|LABEL`.
//!
//! On a terminal: line-mode chat (`/end [reason]` ends, `/status` shows the
//! path, `/linktest SIZE [to_user|from_user|both]` tests the link).
//! Otherwise batch mode: one command per input line (`say TEXT`,
//! `end [REASON]`, `linktest SIZE [to_user|from_user|both]`, `probe`,
//! `status`), and
//! one JSON object per output line for every event:
//!
//! | event | fields |
//! |---|---|
//! | `waiting_for_user` | `node` |
//! | `paired` | `guid`, `node` |
//! | `sas` | `code` |
//! | `chat` | `from` (`user`), `text` |
//! | `path` | `path` (`relay`, `tcp`, `udp`), `rtt_ms`, `detail` — when the session moves; for `relay`, `detail` says why it stays |
//! | `rtt` | `path`, `rtt_ms` — every ping (10 s) |
//! | `linktest` | `direction` (`to_user`, `from_user`), `state` (`started`, `done`), `bytes`, and when done `ok`, `secs`, `mbps`, `detail` |
//! | `probe` | `rtt_ms` — a byte's round trip on an interactive channel (`probe`) |
//! | `ended` | `by` (`user`, `technician`, `refused`, `lost`), `reason` |
//! | `error` | `message` |
//!
//! SIZE takes a `K`, `M` or `G` suffix (powers of 1024).

use crate::portal::{portal, resolve};
use crate::profile::Profile;
use anyhow::Context;
use lifeline_protocol::e2e::EndedBy;
use lifeline_protocol::portal::{EndSession, PathReport, SessionInfo};
use lifeline_protocol::relay::Hello;
use lifeline_protocol::{ALPN_RELAY, SessionGuid, hex};
use lifeline_session::addr::HostPort;
use lifeline_session::direct::{Policy, Settings, Side};
use lifeline_session::gateway_conn;
use lifeline_session::link::PathKind;
use lifeline_session::linktest::Direction;
use lifeline_session::live::{self, Command, Event, PathChange};
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
    /// One event: the JSON object in batch mode (exact: JSON escapes what
    /// a terminal would obey), else the human line, neutralized — chat,
    /// end reasons and link-test details come from the end user's side and
    /// the terminal must never obey them.
    fn emit(&self, v: serde_json::Value, human: impl FnOnce() -> String) {
        let mut out = std::io::stdout().lock();
        if self.batch {
            let _ = writeln!(out, "{v}");
        } else {
            let _ = writeln!(out, "{}", lifeline_protocol::text::neutralize(&human()));
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

/// Runs `connect`. Returns the process exit code.
pub async fn connect(
    profile: &Profile,
    target: &str,
    policy: Policy,
    start_after: Duration,
) -> anyhow::Result<i32> {
    let out = Out {
        batch: !std::io::stdin().is_terminal(),
    };
    match run(profile, target, out, policy, start_after).await {
        Ok(code) => Ok(code),
        Err(e) => {
            out.error(&format!("{e:#}"));
            Ok(1)
        }
    }
}

async fn run(
    profile: &Profile,
    target: &str,
    out: Out,
    policy: Policy,
    start_after: Duration,
) -> anyhow::Result<i32> {
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
    let mut stream = gateway_conn::connect(&node_addr, tls, Duration::from_secs(15)).await?;
    gateway_conn::send_hello(&mut stream, &Hello::console(guid, &login.token)).await?;
    let gateway_is_local = gateway_conn::gateway_is_local(&stream);
    let pairing = gateway_conn::await_pairing(&mut stream, |_| {}).await?;
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
        println!(
            "type to chat; /end [reason] ends the session; /status shows the path; /linktest 64M both tests the link"
        );
    }

    // The gateway hears of a path change before the relay closes (so the
    // relay closing is not taken for the end of the session).
    let hook_client = client.clone();
    let on_path: live::PathHook = std::sync::Arc::new(move |change: PathChange| {
        let client = hook_client.clone();
        Box::pin(async move {
            let report = PathReport {
                path: change.kind.as_str().to_owned(),
                rtt_ms: change.rtt.map(|r| r.as_secs_f64() * 1e3),
                // The portal refuses longer details; a refused report
                // would leave the gateway thinking the relay's end is
                // the session's.
                detail: lifeline_protocol::codec::clamp_str(
                    &change.detail,
                    lifeline_protocol::portal::MAX_PATH_DETAIL,
                )
                .to_owned(),
            };
            let r: Result<SessionInfo, _> = client
                .post(&format!("/api/v1/sessions/{guid}/path"), &report)
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "could not record the path change");
            }
        })
    });
    let setup = live::Setup {
        me: EndedBy::Technician,
        guid,
        side: Side::Console {
            identity: std::sync::Arc::new(identity),
        },
        direct: Settings {
            policy,
            stun: lifeline_session::direct::resolve_stun(pairing.stun.as_deref()).await,
            loopback: gateway_is_local,
            start_after,
            ..Settings::default()
        },
        on_path: Some(on_path),
        scheduling: Default::default(),
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (ev_tx, mut ev_rx) = mpsc::channel(64);
    let session = tokio::spawn(live::run(est, setup, cmd_rx, ev_tx));
    let status = std::sync::Arc::new(std::sync::Mutex::new(String::from("relay")));
    let input = tokio::spawn(read_commands(out, cmd_tx, status.clone()));
    let printer = tokio::spawn(async move {
        while let Some(ev) = ev_rx.recv().await {
            print_event(out, &status, ev);
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

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

fn print_event(out: Out, status: &std::sync::Mutex<String>, ev: Event) {
    let set_status = |s: String| {
        if let Ok(mut st) = status.lock() {
            *st = s;
        }
    };
    match ev {
        Event::Chat(text) => out.emit(
            json!({"event": "chat", "from": "user", "text": text}),
            || format!("user: {text}"),
        ),
        Event::Rtt(kind, rtt) => {
            set_status(format!("{kind}, {} ms round trip", ms(rtt)));
            if out.batch {
                out.emit(
                    json!({"event": "rtt", "path": kind.as_str(), "rtt_ms": ms(rtt)}),
                    String::new,
                );
            }
        }
        Event::PathChanged { kind, detail, rtt } => {
            let rtt_ms = rtt.map(ms);
            set_status(match rtt_ms {
                Some(r) => format!("{kind} ({detail}), {r} ms round trip"),
                None => format!("{kind} ({detail})"),
            });
            out.emit(
                json!({"event": "path", "path": kind.as_str(), "rtt_ms": rtt_ms, "detail": detail}),
                || format!("session moved to {kind} ({detail}); the gateway no longer carries it"),
            );
        }
        Event::StaysOnRelay { reason } => {
            set_status(format!("relay (no direct path: {reason})"));
            out.emit(
                json!({"event": "path", "path": PathKind::Relay.as_str(), "rtt_ms": null, "detail": reason}),
                || format!("staying on the relay: {reason}"),
            );
        }
        Event::ProbeRtt(rtt) => out.emit(
            json!({"event": "probe", "rtt_ms": ms(rtt), "path": status.lock().map(|s| s.clone()).unwrap_or_default()}),
            || format!("probe: {} ms round trip on the interactive channel", ms(rtt)),
        ),
        Event::TestStarted { direction, bytes } => out.emit(
            json!({"event": "linktest", "direction": direction.as_str(), "state": "started", "bytes": bytes}),
            || format!("link test {} started ({bytes} bytes)", direction.as_str()),
        ),
        Event::TestDone {
            direction,
            ok,
            bytes,
            secs,
            detail,
        } => {
            let mbps = if secs > 0.0 { bytes as f64 / secs / 1e6 } else { 0.0 };
            out.emit(
                json!({"event": "linktest", "direction": direction.as_str(), "state": "done",
                       "ok": ok, "bytes": bytes, "secs": secs, "mbps": mbps, "detail": detail}),
                || {
                    if ok {
                        format!("link test {}: {bytes} bytes in {secs:.2} s ({mbps:.1} MB/s), all correct", direction.as_str())
                    } else {
                        format!("link test {} FAILED: {detail}", direction.as_str())
                    }
                },
            );
        }
    }
}

/// `SIZE [to_user|from_user|both]` of the link test command.
fn parse_linktest(args: &str) -> Result<Vec<Command>, String> {
    let mut words = args.split_whitespace();
    let size = words.next().ok_or("linktest needs a size, e.g. 256M")?;
    let (digits, unit) = size.split_at(
        size.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(size.len()),
    );
    let n: u64 = digits.parse().map_err(|_| format!("bad size {size:?}"))?;
    let mult = match unit {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" | "m" => 1 << 20,
        "G" | "g" => 1 << 30,
        _ => return Err(format!("bad size {size:?}: use a K, M or G suffix")),
    };
    let bytes = n
        .checked_mul(mult)
        .filter(|b| *b <= lifeline_session::linktest::MAX_TEST_BYTES)
        .ok_or("a link test moves at most 4G")?;
    let dirs: &[Direction] = match words.next().unwrap_or("to_user") {
        "to_user" => &[Direction::ToUser],
        "from_user" => &[Direction::FromUser],
        "both" => &[Direction::ToUser, Direction::FromUser],
        other => {
            return Err(format!(
                "bad direction {other:?}: to_user, from_user or both"
            ));
        }
    };
    Ok(dirs
        .iter()
        .map(|&direction| Command::LinkTest { bytes, direction })
        .collect())
}

/// Reads stdin: batch commands or terminal chat lines.
async fn read_commands(
    out: Out,
    tx: mpsc::Sender<Command>,
    status: std::sync::Arc<std::sync::Mutex<String>>,
) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.trim_end();
        let word = line.trim_start_matches('/');
        let (verb, rest) = word.split_once(' ').unwrap_or((word, ""));
        let special = out.batch || line.starts_with('/');
        if special && verb == "status" {
            let s = status.lock().map(|s| s.clone()).unwrap_or_default();
            out.emit(json!({"event": "status", "path": s}), || {
                format!("path: {s}")
            });
            continue;
        }
        if special && verb == "probe" {
            if tx.send(Command::Probe).await.is_err() {
                return;
            }
            continue;
        }
        if special && verb == "linktest" {
            match parse_linktest(rest) {
                Ok(cmds) => {
                    for c in cmds {
                        if tx.send(c).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => out.error(&e),
            }
            continue;
        }
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
                        "unknown command {line:?}; use `say TEXT`, `end [REASON]`, `linktest SIZE [to_user|from_user|both]` or `status`"
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
