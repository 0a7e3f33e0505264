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
//! | `reconnecting` | `reason` — the path died; reconnecting through the gateway (the session goes on) |
//! | `resumed` | `path` (`relay`), `fresh` (the applet had to start afresh) — frames flow again |
//! | `ended` | `by` (`user`, `technician`, `refused`, `lost`), `reason` |
//! | `error` | `message` |
//!
//! SIZE takes a `K`, `M` or `G` suffix (powers of 1024).

use crate::portal::{Portals, portal, resolve};
use crate::profile::Profile;
use anyhow::Context;
use lifeline_protocol::e2e::EndedBy;
use lifeline_protocol::portal::WorkReport;
use lifeline_protocol::portal::{EndSession, PathReport, SessionInfo};
use lifeline_protocol::relay::Hello;
use lifeline_protocol::{ALPN_RELAY, SessionGuid, hex};
use lifeline_remote::console::{ConsoleWork, Input as WorkInput, Notice, Request};
use lifeline_remote::flow::Outbound;
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
    dead_path: Duration,
) -> anyhow::Result<i32> {
    let out = Out {
        batch: !std::io::stdin().is_terminal(),
    };
    match run(profile, target, out, policy, start_after, dead_path).await {
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
    dead_path: Duration,
) -> anyhow::Result<i32> {
    let (login, client) = portal(profile)?;
    let info = resolve(&client, target).await?;
    let guid = info.guid;
    let (local, identity) = profile.load_session(&guid)?;
    let identity = std::sync::Arc::new(identity);
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
    let mut stream =
        gateway_conn::connect(&node_addr, tls.clone(), Duration::from_secs(15)).await?;
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
            end_in_portal(
                &Portals::discover(profile, &login, &client).await?,
                &guid,
                &format!("end-to-end setup failed: {e}"),
            )
            .await;
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
    let portals = Portals::discover(profile, &login, &client).await?;
    let hook_portals = portals.clone();
    let on_path: live::PathHook = std::sync::Arc::new(move |change: PathChange| {
        let client = hook_portals.clone();
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
            identity: identity.clone(),
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
        reconnect: Some(reconnector(Rejoin {
            portals: portals.clone(),
            tls,
            guid,
            token: login.token.clone(),
            identity: identity.clone(),
            secret,
        })),
        dead_path,
    };
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, mut ev_rx) = mpsc::channel(64);
    // Remote work: its own task; what it shows goes out like every other
    // event, and what it records goes to the gateway's audit trail.
    let (notices_tx, mut notices) = mpsc::unbounded_channel::<Notice>();
    let (audit_tx, mut audit) = mpsc::unbounded_channel::<WorkReport>();
    let (work, reports, notes) =
        ConsoleWork::new(Outbound::new(cmd_tx.clone()), notices_tx, audit_tx);
    let (work_tx, work_rx) = mpsc::unbounded_channel();
    let work_task = tokio::spawn(work.run(work_rx, reports, notes));
    // A remote shell on a terminal: its output goes to the screen raw (the
    // only place raw output ever goes), and its end gives the keyboard back.
    let raw_active = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (shell_done_tx, shell_done) = mpsc::unbounded_channel::<()>();
    let raw_shown = raw_active.clone();
    let shower = tokio::spawn(async move {
        while let Some(n) = notices.recv().await {
            let shell = n.json["what"] == "shell";
            let ended = shell && (n.json["event"] == "exited" || n.json["event"] == "refused");
            match n.raw {
                Some(raw) if !out.batch => {
                    let mut o = std::io::stdout().lock();
                    let _ = o.write_all(&raw);
                    let _ = o.flush();
                }
                _ if raw_shown.load(std::sync::atomic::Ordering::Relaxed) => {
                    // Raw mode: a line needs its carriage return.
                    let line = lifeline_protocol::text::neutralize(&n.human).into_owned();
                    let mut o = std::io::stdout().lock();
                    let _ = write!(o, "\r\n{line}\r\n");
                    let _ = o.flush();
                }
                _ => out.emit(n.json, || n.human),
            }
            if ended {
                let _ = shell_done_tx.send(());
            }
        }
    });
    let audit_portals = portals.clone();
    let recorder = tokio::spawn(async move {
        while let Some(a) = audit.recv().await {
            // A failure is logged there; the session goes on.
            let _ = crate::portal::report_work(&audit_portals, &guid, &a).await;
        }
    });
    let session = tokio::spawn(live::run(est, setup, cmd_rx, ev_tx));
    let status = std::sync::Arc::new(std::sync::Mutex::new(String::from("relay")));
    let input = tokio::spawn(read_commands(
        out,
        cmd_tx,
        work_tx.clone(),
        status.clone(),
        Shell {
            done: shell_done,
            raw_active,
        },
    ));
    let printer = tokio::spawn(async move {
        while let Some(ev) = ev_rx.recv().await {
            match ev {
                ev @ (Event::Work(_)
                | Event::ChannelOpened { .. }
                | Event::ChannelData { .. }
                | Event::ChannelClosed { .. }
                | Event::ChannelReset { .. }
                | Event::ChannelSent { .. }) => {
                    let _ = work_tx.send(WorkInput::Event(ev));
                }
                ev => {
                    if let Event::Resumed { fresh } = ev {
                        let _ = work_tx.send(WorkInput::Event(Event::Resumed { fresh }));
                    }
                    print_event(out, &status, ev);
                }
            }
        }
    });
    let result = session.await;
    input.abort();
    let _ = printer.await;
    // What remote work still had to say and record goes out first.
    let _ = tokio::time::timeout(Duration::from_secs(2), work_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), shower).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), recorder).await;
    let (by, reason, code) = match result {
        Ok(Ok(o)) => (o.by.as_str().to_owned(), o.reason, 0),
        Ok(Err(e)) => ("lost".to_owned(), e.to_string(), 1),
        Err(e) => ("lost".to_owned(), e.to_string(), 1),
    };
    out.emit(
        json!({"event": "ended", "by": by, "reason": reason}),
        || format!("session ended by {by}: {reason}"),
    );
    end_in_portal(&portals, &guid, &format!("ended by {by}: {reason}")).await;
    profile.forget_session(&guid);
    Ok(code)
}

/// What the console needs to meet the end user again.
struct Rejoin {
    /// Where to ask where the applet waits.
    portals: Portals,
    tls: std::sync::Arc<rustls::ClientConfig>,
    guid: SessionGuid,
    token: String,
    identity: std::sync::Arc<lifeline_session::identity::SessionIdentity>,
    secret: [u8; 32],
}

/// Longest pause between the console's attempts to meet the end user again.
const REJOIN_BACKOFF: Duration = Duration::from_secs(5);

/// How the session meets the end user again after its path died: ask the
/// portal where the applet waits, connect there, be paired, and run the
/// end-to-end handshake — until it works, or the session is over.
fn reconnector(r: Rejoin) -> live::Reconnector {
    let r = std::sync::Arc::new(r);
    std::sync::Arc::new(move || {
        let r = r.clone();
        Box::pin(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match rejoin_once(&r).await {
                    Ok(path) => return Ok(path),
                    Err(Rejoined::Over(why)) => return Err(why),
                    Err(Rejoined::Retry(why)) => {
                        tracing::info!(%why, "the end user is not back yet; trying again");
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(REJOIN_BACKOFF);
            }
        })
    })
}

enum Rejoined {
    /// Worth trying again.
    Retry(String),
    /// The session cannot go on.
    Over(String),
}

async fn rejoin_once(r: &Rejoin) -> Result<live::RelayPath, Rejoined> {
    let retry = |e: &dyn std::fmt::Display| Rejoined::Retry(e.to_string());
    let path = format!("/api/v1/sessions/{}", r.guid);
    let (portal_node, info): (HostPort, SessionInfo) =
        r.portals.get(&path).await.map_err(|e| retry(&e))?;
    if info.state == "ended" {
        return Err(Rejoined::Over("the session has ended".into()));
    }
    if info.state == "paired" {
        // The gateway may not know yet that this relay is gone (its node
        // died): say so, so the applet may wait for us again anywhere.
        let said: Result<SessionInfo, _> = r
            .portals
            .post(
                &format!("{path}/interrupted"),
                &EndSession {
                    reason: "the console lost its relay connection and is reconnecting".into(),
                },
            )
            .await;
        if let Err(e) = said {
            tracing::info!(error = %e, "could not record the interruption");
        }
    }
    let node = match &info.waiting_node_addr {
        Some(a) if info.state == "waiting" => HostPort::parse(a, 8443).map_err(|e| retry(&e))?,
        _ => portal_node,
    };
    let mut stream = gateway_conn::connect(&node, r.tls.clone(), Duration::from_secs(15))
        .await
        .map_err(|e| retry(&e))?;
    gateway_conn::send_hello(&mut stream, &Hello::console(r.guid, &r.token))
        .await
        .map_err(|e| retry(&e))?;
    match gateway_conn::await_pairing(&mut stream, |_| {}).await {
        Ok(_) => {}
        Err(gateway_conn::LinkError::Refused { code, message })
            if code.session_is_over()
                || code == lifeline_protocol::relay::RefuseCode::NotAuthorized =>
        {
            return Err(Rejoined::Over(message));
        }
        Err(e) => return Err(retry(&e)),
    }
    let est = secure::console_side(stream, r.guid, &r.identity, r.secret)
        .await
        .map_err(|e| retry(&e))?;
    Ok(live::relay_path(est))
}

/// The terminal window's size changes (SIGWINCH); never, where there is
/// no such signal.
struct Resizes {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Resizes {
    fn new() -> Self {
        Self {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
                .ok(),
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(s) = self.signal.as_mut() {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    }
}

/// What the line-mode console needs to hand the keyboard to a remote
/// shell: when it ended, and whether the screen is raw.
struct Shell {
    done: mpsc::UnboundedReceiver<()>,
    raw_active: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// The keyboard belongs to the remote shell: raw bytes go to it, the
/// window's size follows it, until Ctrl-] or the shell's end.
async fn raw_shell<R: tokio::io::AsyncRead + Unpin>(
    stdin: &mut R,
    work: &mpsc::UnboundedSender<WorkInput>,
    shell: &mut Shell,
) {
    use tokio::io::AsyncReadExt;
    while shell.done.try_recv().is_ok() {}
    let raw = crate::terminal::RawMode::enter();
    shell
        .raw_active
        .store(raw.is_some(), std::sync::atomic::Ordering::Relaxed);
    let mut winch = Resizes::new();
    let mut buf = [0u8; 4096];
    let keys = |b: &[u8]| {
        if !b.is_empty() {
            let _ = work.send(WorkInput::Request(Request::Keys(b.to_vec().into())));
        }
    };
    loop {
        tokio::select! {
            n = stdin.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(at) = buf[..n].iter().position(|b| *b == crate::terminal::LEAVE_KEY) {
                        keys(&buf[..at]);
                        let _ = work.send(WorkInput::Request(Request::Stop(0)));
                        break;
                    }
                    keys(&buf[..n]);
                }
            },
            () = winch.next() => {
                if let Some((cols, rows)) = crate::terminal::size() {
                    let _ = work.send(WorkInput::Request(Request::Resize { cols, rows }));
                }
            }
            Some(()) = shell.done.recv() => break,
        }
    }
    shell
        .raw_active
        .store(false, std::sync::atomic::Ordering::Relaxed);
    drop(raw);
}

async fn end_in_portal(client: &Portals, guid: &SessionGuid, reason: &str) {
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
        // Remote work's events go to its task (see `run`).
        Event::Work(_)
        | Event::ChannelOpened { .. }
        | Event::ChannelData { .. }
        | Event::ChannelClosed { .. }
        | Event::ChannelReset { .. }
        | Event::ChannelSent { .. } => {}
        Event::Chat(text) => out.emit(
            json!({"event": "chat", "from": "user", "text": text}),
            || format!("end user: {text}"),
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
        Event::Reconnecting { why } => {
            set_status(format!("reconnecting ({why})"));
            out.emit(
                json!({"event": "reconnecting", "reason": why}),
                || format!("connection lost ({why}); reconnecting through the gateway — the session goes on"),
            );
        }
        Event::Resumed { fresh } => {
            set_status("relay".into());
            out.emit(
                json!({"event": "resumed", "path": PathKind::Relay.as_str(), "fresh": fresh}),
                || "reconnected: the session goes on through the gateway".to_owned(),
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

/// The line-mode commands, for `/help`.
const LINE_MODE_HELP: &str = "\
commands (anything else is chat; //text sends a line starting with /):
  /end [REASON]      end the session (/quit too)
  /status            the path in use and its round trip
  /probe             measure the round trip once
  /linktest SIZE [to_user|from_user|both]   check the link byte for byte
  /shell             the end user's command prompt, full screen (Ctrl-] returns)
  /ask CAPS [session], /run COMMAND, /send PATH, /fetch PATH [INTO], /ls [PATH],
  /sysinfo, /open URL, /stop [ID]   remote work, each with the end user's consent
  /help              this list";

/// Reads stdin: batch commands or terminal chat lines.
async fn read_commands(
    out: Out,
    tx: mpsc::UnboundedSender<Command>,
    work: mpsc::UnboundedSender<WorkInput>,
    status: std::sync::Arc<std::sync::Mutex<String>>,
    mut shell: Shell,
) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if !out.batch && (line.trim() == "/shell") {
            let (cols, rows) = crate::terminal::size().unwrap_or((80, 24));
            let _ = work.send(WorkInput::Request(Request::Shell { cols, rows }));
            println!("remote shell: asking the end user; Ctrl-] closes it and returns to the chat");
            raw_shell(lines.get_mut(), &work, &mut shell).await;
            println!("\r\n(back to the chat)");
            continue;
        }
        let line = line.trim_end();
        // `//text` is chat that starts with a slash.
        if !out.batch
            && let Some(text) = line.strip_prefix("//")
        {
            if tx.send(Command::Say(format!("/{text}"))).is_err() {
                return;
            }
            continue;
        }
        let word = line.strip_prefix('/').unwrap_or(line);
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
            if tx.send(Command::Probe).is_err() {
                return;
            }
            continue;
        }
        if special && let Some(request) = crate::work::parse(verb, rest) {
            match request {
                Ok(r) => {
                    let _ = work.send(WorkInput::Request(r));
                }
                Err(e) => out.error(&e),
            }
            continue;
        }
        if special && verb == "linktest" {
            match parse_linktest(rest) {
                Ok(cmds) => {
                    for c in cmds {
                        if tx.send(c).is_err() {
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
                        "unknown command {line:?}; use `say TEXT`, `end [REASON]`, `linktest SIZE [to_user|from_user|both]`, `status`, or remote work: {}",
                        crate::work::VERBS
                    ));
                    continue;
                }
            }
        } else if line.starts_with('/') {
            // Commands are recognised exactly; anything else that starts
            // with a slash is a typo, never chat.
            match verb {
                "end" | "quit" => {
                    let r = rest.trim();
                    Command::End(if r.is_empty() {
                        "the technician ended the session".into()
                    } else {
                        r.to_owned()
                    })
                }
                "help" | "?" => {
                    println!("{LINE_MODE_HELP}");
                    continue;
                }
                _ => {
                    out.error(&format!(
                        "unknown command /{verb} (not sent); /help lists the commands, //{verb}… sends it as chat"
                    ));
                    continue;
                }
            }
        } else if line.is_empty() {
            continue;
        } else {
            Command::Say(line.to_owned())
        };
        let end = matches!(cmd, Command::End(_));
        if tx.send(cmd).is_err() || end {
            break;
        }
    }
}
