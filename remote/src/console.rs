//! The console's side of remote work: the technician's requests go out
//! as [`Work`] messages (with a channel where bytes follow), and what the
//! applet answers comes back as [`Notice`]s — a JSON event for batch mode
//! and a line for people — and as [`WorkReport`]s for the gateway's
//! audit trail.
//!
//! The console asks; it decides nothing. A refusal carries the applet's
//! words (which rule refused it).

use crate::flow::{ChannelNumbers, Outbound};
use crate::to_user::Progress;
use crate::transfer::{self, Note, Transfers, human_size, progress_words};
use bytes::Bytes;
use lifeline_protocol::Permissions;
use lifeline_protocol::e2e::ChannelKind;
use lifeline_protocol::portal::{FileDirection, WorkAction, WorkReport};
use lifeline_protocol::work::{Decision, Work};
use lifeline_session::live::{Command, Event};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What the technician asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Ask the end user for capabilities now (`whole_session`: the single
    /// prompt).
    Ask {
        /// The capabilities.
        caps: Permissions,
        /// For the whole session.
        whole_session: bool,
    },
    /// Open a shell of this size.
    Shell {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// Keystrokes for the open shell.
    Keys(Bytes),
    /// The technician's terminal changed size.
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// Run one command line.
    Run(String),
    /// Send a file or folder to the end user.
    Send(PathBuf),
    /// Copy a file or folder from the end user into `into`.
    Fetch {
        /// On the end user's machine.
        path: String,
        /// A folder here.
        into: PathBuf,
    },
    /// List a folder on the end user's machine.
    List(String),
    /// Describe the end user's machine.
    SystemInfo,
    /// Open a web address on the end user's machine.
    OpenUrl(String),
    /// Stop request `id` (0: the open shell).
    Stop(u64),
}

/// What the console's loop hands in.
#[derive(Debug)]
pub enum Input {
    /// The technician's request.
    Request(Request),
    /// A session event (remote work's and channels'; others are ignored).
    Event(Event),
    /// The session is over: nothing more comes. [`ConsoleWork::run`]
    /// finishes what it can and returns, though the console's controls
    /// may still hold senders of its inputs.
    Over,
}

/// How long a session's end waits for transfers that may still finish on
/// their own (a received file being written and checked).
pub const FINISH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Something to show: the JSON event (batch mode) and the line (people).
/// `raw` is a shell's output, for a terminal in raw mode only.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// The batch-mode event.
    pub json: Value,
    /// The line for people (the caller neutralizes it).
    pub human: String,
    /// A shell's output, raw.
    pub raw: Option<Bytes>,
}

#[derive(Debug)]
enum Asked {
    Ask,
    Shell { channel: u32 },
    Run { channel: u32, command: String },
    List,
    Fetch { into: PathBuf },
    Send,
    SystemInfo,
    OpenUrl(String),
}

impl Asked {
    fn what(&self) -> &'static str {
        match self {
            Asked::Ask => "ask",
            Asked::Shell { .. } => "shell",
            Asked::Run { .. } => "run",
            Asked::List => "list",
            Asked::Fetch { .. } => "fetch",
            Asked::Send => "send",
            Asked::SystemInfo => "system_info",
            Asked::OpenUrl(_) => "open_url",
        }
    }
}

/// The console's remote work for one session.
#[derive(Debug)]
pub struct ConsoleWork {
    out: Arc<Outbound>,
    notices: mpsc::UnboundedSender<Notice>,
    audit: mpsc::UnboundedSender<WorkReport>,
    numbers: ChannelNumbers,
    transfers: Transfers,
    ids: u64,
    asked: HashMap<u64, Asked>,
    /// The open shell: its request and channel.
    shell: Option<(u64, u32)>,
}

fn notice(json: Value, human: String) -> Notice {
    Notice {
        json,
        human,
        raw: None,
    }
}

impl ConsoleWork {
    /// Remote work writing through `out`, showing `notices`, recording
    /// `audit` (the gateway's audit trail: metadata only, never contents).
    pub fn new(
        out: Arc<Outbound>,
        notices: mpsc::UnboundedSender<Notice>,
        audit: mpsc::UnboundedSender<WorkReport>,
    ) -> (Self, transfer::Reports, mpsc::UnboundedReceiver<Note>) {
        let (notes_tx, notes) = mpsc::unbounded_channel();
        let (transfers, reports) = Transfers::new(out.clone(), notes_tx);
        (
            Self {
                out,
                notices,
                audit,
                numbers: ChannelNumbers::new(true),
                transfers,
                ids: 0,
                asked: HashMap::new(),
                shell: None,
            },
            reports,
            notes,
        )
    }

    fn show(&self, n: Notice) {
        let _ = self.notices.send(n);
    }

    fn record(&self, a: WorkReport) {
        let _ = self.audit.send(a);
    }

    fn work(&self, w: Work) {
        self.out.command(Command::Work(w));
    }

    fn error(&self, id: u64, message: &str) {
        self.show(notice(
            json!({"event": "error", "id": id, "message": message}),
            format!("error: {message}"),
        ));
    }

    /// Runs until the session is over ([`Input::Over`]) or the inputs end,
    /// then finishes: transfers still running get up to [`FINISH_WAIT`],
    /// whatever runs then is reported stopped, and every note goes out
    /// (so that the notices and audit channels close right after).
    pub async fn run(
        mut self,
        mut inputs: mpsc::UnboundedReceiver<Input>,
        mut reports: transfer::Reports,
        mut notes: mpsc::UnboundedReceiver<Note>,
    ) {
        loop {
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(Input::Request(r)) => self.request(r),
                    Some(Input::Event(e)) => self.on_event(e),
                    Some(Input::Over) | None => break,
                },
                Some(report) = reports.recv() => self.transfers.report(report),
                Some(note) = notes.recv() => self.on_note(note),
            }
        }
        let deadline = tokio::time::Instant::now() + FINISH_WAIT;
        while self.transfers.busy() {
            tokio::select! {
                Some(report) = reports.recv() => self.transfers.report(report),
                Some(note) = notes.recv() => self.on_note(note),
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        self.transfers.forget_all("the session ended");
        while let Ok(note) = notes.try_recv() {
            self.on_note(note);
        }
    }

    fn next_id(&mut self) -> u64 {
        self.ids += 1;
        self.ids
    }

    /// Sends the technician's request.
    pub fn request(&mut self, r: Request) {
        match r {
            Request::Ask {
                caps,
                whole_session,
            } => {
                let id = self.next_id();
                self.asked.insert(id, Asked::Ask);
                self.work(Work::Ask {
                    id,
                    caps: caps.bits(),
                    whole_session,
                });
                let names: Vec<&str> = caps.each().map(Permissions::name).collect();
                self.sent(id, "ask", &names.join(","));
            }
            Request::Shell { cols, rows } => {
                if self.shell.is_some() {
                    return self.error(0, "a shell is already open; stop it first");
                }
                let id = self.next_id();
                let channel = self.numbers.allocate();
                self.out.open(channel, ChannelKind::Shell);
                self.work(Work::Shell {
                    id,
                    channel,
                    cols,
                    rows,
                });
                self.asked.insert(id, Asked::Shell { channel });
                self.shell = Some((id, channel));
                self.sent(id, "shell", &format!("{cols}x{rows}"));
            }
            Request::Keys(keys) => match self.shell {
                Some((_, channel)) => {
                    // Keystrokes are few; the budget never makes them wait
                    // long, but the loop must not: queue them directly.
                    self.out.command(Command::Write {
                        channel,
                        data: keys,
                    });
                }
                None => self.error(0, "no shell is open (use `shell` first)"),
            },
            Request::Resize { cols, rows } => {
                if let Some((_, channel)) = self.shell {
                    self.work(Work::Resize {
                        channel,
                        cols,
                        rows,
                    });
                }
            }
            Request::Run(command) => {
                let id = self.next_id();
                let channel = self.numbers.allocate();
                self.out.open(channel, ChannelKind::Run);
                self.work(Work::Run {
                    id,
                    channel,
                    command: command.clone(),
                });
                self.sent(id, "run", &command);
                self.asked.insert(id, Asked::Run { channel, command });
            }
            Request::Send(path) => {
                let id = self.next_id();
                match self.transfers.send(id, &path, &mut self.numbers) {
                    Ok(files) => {
                        self.asked.insert(id, Asked::Send);
                        self.show(notice(
                            json!({"event": "sending", "id": id, "path": path.display().to_string(), "files": files}),
                            format!("[{id}] sending {} ({files} files)", path.display()),
                        ));
                    }
                    Err(e) => self.error(id, &e.to_string()),
                }
            }
            Request::Fetch { path, into } => {
                if let Err(e) = std::fs::create_dir_all(&into) {
                    return self.error(0, &format!("cannot use {}: {e}", into.display()));
                }
                let id = self.next_id();
                self.work(Work::Fetch {
                    id,
                    path: path.clone(),
                });
                self.asked.insert(id, Asked::Fetch { into });
                self.sent(id, "fetch", &path);
            }
            Request::List(path) => {
                let id = self.next_id();
                self.work(Work::List {
                    id,
                    path: path.clone(),
                });
                self.asked.insert(id, Asked::List);
                self.sent(id, "list", &path);
            }
            Request::SystemInfo => {
                let id = self.next_id();
                self.work(Work::SystemInfo { id });
                self.asked.insert(id, Asked::SystemInfo);
                self.sent(id, "system_info", "");
            }
            Request::OpenUrl(url) => {
                let id = self.next_id();
                self.work(Work::OpenUrl {
                    id,
                    url: url.clone(),
                });
                self.sent(id, "open_url", &url);
                self.asked.insert(id, Asked::OpenUrl(url));
            }
            Request::Stop(id) => {
                let id = if id == 0 {
                    self.shell.map_or(0, |(id, _)| id)
                } else {
                    id
                };
                if self.asked.contains_key(&id) {
                    self.work(Work::Stop { id });
                    self.transfers
                        .stop_request(id, "the technician stopped it", &mut self.numbers);
                } else {
                    self.error(id, "nothing runs under that number");
                }
            }
        }
    }

    /// Says that request `id` went out.
    fn sent(&self, id: u64, what: &str, detail: &str) {
        self.show(notice(
            json!({"event": "requested", "id": id, "what": what, "detail": detail}),
            format!("[{id}] asked the end user's computer: {what} {detail}"),
        ));
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Work(w) => self.on_work(w),
            Event::ChannelOpened { channel, .. } => {
                // Files the applet sends: named by the offer that follows.
                let _ = channel;
            }
            Event::ChannelData { channel, data } => {
                let Some(data) = self.transfers.on_data(channel, data) else {
                    return;
                };
                self.out.consumed(channel, data.len());
                let owner = self.asked.iter().find_map(|(id, a)| match a {
                    Asked::Shell { channel: c } if *c == channel => Some((*id, true)),
                    Asked::Run { channel: c, .. } if *c == channel => Some((*id, false)),
                    _ => None,
                });
                if let Some((id, shell)) = owner {
                    let text = String::from_utf8_lossy(&data).into_owned();
                    self.show(Notice {
                        json: json!({"event": if shell { "shell_output" } else { "output" }, "id": id, "data": text}),
                        human: text,
                        raw: shell.then_some(data),
                    });
                }
            }
            Event::ChannelClosed { channel } => {
                self.transfers.on_closed(channel);
            }
            Event::ChannelReset { channel, reason } => {
                self.out.forget(channel);
                self.transfers.on_reset(channel, &reason, &mut self.numbers);
            }
            Event::ChannelSent { channel, bytes } => self.out.sent(channel, bytes),
            Event::Resumed { fresh: true } => {
                // The applet restarted? It cannot (it keeps its state for
                // the session); this is our own fresh start after the
                // console was restarted — nothing of ours runs.
                self.out.forget_all();
                self.transfers.forget_all("the session started afresh");
                self.asked.clear();
                self.shell = None;
            }
            _ => {}
        }
    }

    fn on_work(&mut self, w: Work) {
        match w {
            Work::Decision {
                id,
                caps,
                decision,
                whole_session,
            } => {
                let caps = Permissions::from_bits(caps).capabilities();
                let names = caps
                    .each()
                    .map(Permissions::name)
                    .collect::<Vec<_>>()
                    .join(",");
                let scope = if whole_session {
                    " for the whole session"
                } else {
                    ""
                };
                self.show(notice(
                    json!({"event": "consent", "id": id, "capabilities": names, "decision": decision.as_str(), "whole_session": whole_session}),
                    format!("[{id}] {names}{scope}: {}", decision_words(decision)),
                ));
                self.record(WorkReport::Consent {
                    capability: names,
                    decision,
                    whole_session,
                });
            }
            Work::Refused { id, reason } => {
                if self.transfers.on_refused(id, &reason, &mut self.numbers) {
                    return;
                }
                let what = self.asked.remove(&id).map_or("request", |a| {
                    if let Asked::Shell { channel } | Asked::Run { channel, .. } = a {
                        self.out.forget(channel);
                    }
                    a.what()
                });
                if self.shell.is_some_and(|(s, _)| s == id) {
                    self.shell = None;
                }
                self.show(notice(
                    json!({"event": "refused", "id": id, "what": what, "reason": reason}),
                    format!("[{id}] {what} refused: {reason}"),
                ));
            }
            Work::Started { id } => {
                let (what, detail) = match self.asked.get(&id) {
                    Some(Asked::Shell { .. }) => (WorkAction::ShellOpened, String::new()),
                    Some(Asked::Run { command, .. }) => (WorkAction::CommandRun, command.clone()),
                    _ => return,
                };
                self.show(notice(
                    json!({"event": "started", "id": id, "what": what}),
                    format!("[{id}] started"),
                ));
                self.record(WorkReport::Action { what, detail });
            }
            Work::Exited { id, code, detail } => {
                let Some(a) = self.asked.remove(&id) else {
                    return;
                };
                if let Asked::Shell { channel } | Asked::Run { channel, .. } = &a {
                    // Our half: nothing more to type.
                    self.out.close(*channel);
                }
                if self.shell.is_some_and(|(s, _)| s == id) {
                    self.shell = None;
                }
                let status = match code {
                    Some(c) => format!("exit status {c}"),
                    None => "stopped".to_owned(),
                };
                let why = if detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({detail})")
                };
                self.show(notice(
                    json!({"event": "exited", "id": id, "what": a.what(), "code": code, "detail": detail}),
                    format!("[{id}] {} ended: {status}{why}", a.what()),
                ));
                if matches!(a, Asked::Shell { .. }) {
                    self.record(WorkReport::Action {
                        what: WorkAction::ShellClosed,
                        detail: format!("{status}{why}"),
                    });
                }
            }
            Work::Listing {
                id,
                path,
                entries,
                truncated,
            } => {
                self.asked.remove(&id);
                let mut human = format!("[{id}] {path}:");
                for e in &entries {
                    human.push_str(&format!(
                        "\n  {}{}  {}",
                        e.name,
                        if e.dir { "/" } else { "" },
                        if e.dir {
                            String::new()
                        } else {
                            e.size.to_string()
                        }
                    ));
                }
                if truncated {
                    human.push_str("\n  (more entries left out)");
                }
                self.record(WorkReport::Action {
                    what: WorkAction::Listing,
                    detail: path.clone(),
                });
                self.show(notice(
                    json!({"event": "listing", "id": id, "path": path, "entries": entries, "truncated": truncated}),
                    human,
                ));
            }
            Work::SystemReport { id, info } => {
                self.asked.remove(&id);
                self.record(WorkReport::Action {
                    what: WorkAction::SystemInfo,
                    detail: String::new(),
                });
                self.show(notice(
                    json!({"event": "system_info", "id": id, "info": info}),
                    crate::system::table(&info),
                ));
            }
            Work::Opened { id } => {
                let url = match self.asked.remove(&id) {
                    Some(Asked::OpenUrl(u)) => u,
                    _ => String::new(),
                };
                self.record(WorkReport::Action {
                    what: WorkAction::UrlOpened,
                    detail: url.clone(),
                });
                self.show(notice(
                    json!({"event": "url_opened", "id": id, "url": url}),
                    format!("[{id}] opened {url}"),
                ));
            }
            Work::Grants {
                granted,
                allowed,
                running,
            } => {
                let name = |bits| {
                    Permissions::from_bits(bits)
                        .capabilities()
                        .each()
                        .map(Permissions::name)
                        .collect::<Vec<_>>()
                };
                let (g, a) = (name(granted), name(allowed));
                self.show(notice(
                    json!({"event": "grants", "granted": g, "allowed": a, "running": running}),
                    format!(
                        "end user granted: {}; running: {}",
                        if g.is_empty() {
                            "nothing".to_owned()
                        } else {
                            g.join(", ")
                        },
                        if running.is_empty() {
                            "nothing".to_owned()
                        } else {
                            running.join("; ")
                        }
                    ),
                ));
            }
            Work::Offer {
                id,
                request,
                channel,
                path,
                size,
            } => match self.asked.get(&request) {
                Some(Asked::Fetch { into }) => {
                    let into = into.clone();
                    self.transfers
                        .receive(id, request, channel, &path, size, &into);
                }
                _ => self.transfers.refuse(
                    id,
                    request,
                    channel,
                    &path,
                    size,
                    "the technician did not ask for it",
                ),
            },
            Work::Finished { request, files } => {
                if matches!(self.asked.get(&request), Some(Asked::Fetch { .. })) {
                    self.asked.remove(&request);
                    self.show(notice(
                        json!({"event": "transfer_finished", "id": request, "files": files}),
                        format!("[{request}] fetched {files} files"),
                    ));
                }
            }
            Work::Accept {
                id,
                offset,
                partial_sha256,
            } => self.transfers.on_accept(id, offset, &partial_sha256),
            Work::From { id, offset } => self.transfers.on_from(id, offset),
            Work::Sent { id, sha256 } => self.transfers.on_sent(id, sha256),
            Work::Saved {
                id,
                ok,
                saved_as,
                detail,
            } => self
                .transfers
                .on_saved(id, ok, &saved_as, &detail, &mut self.numbers),
            // Requests never come this way.
            _ => {}
        }
    }

    fn on_note(&mut self, note: Note) {
        match note {
            Note::Started {
                outgoing,
                id,
                name,
                size,
                from,
            } => {
                let resumed = if from > 0 {
                    format!(", resuming at {}", human_size(from))
                } else {
                    String::new()
                };
                self.show(notice(
                    json!({"event": "transfer", "id": id, "direction": direction(outgoing), "name": name,
                           "state": "started", "size": size, "from": from}),
                    format!(
                        "{} {name} ({}{resumed})",
                        if outgoing { "sending" } else { "receiving" },
                        human_size(size)
                    ),
                ));
            }
            Note::Progress(Progress {
                outgoing,
                id,
                name,
                bytes,
                size,
                rate,
                eta_secs,
            }) => {
                self.show(notice(
                    json!({"event": "transfer", "id": id, "direction": direction(outgoing), "name": name,
                           "state": "progress", "bytes": bytes, "size": size, "rate_bps": rate, "eta_s": eta_secs}),
                    format!(
                        "{} {name}: {}",
                        if outgoing { "sending" } else { "receiving" },
                        progress_words(bytes, size, rate, eta_secs)
                    ),
                ));
            }
            Note::Done(transfer::Ended {
                outgoing,
                id,
                request,
                name,
                size,
                sha256,
                outcome,
                saved_as,
                detail,
            }) => {
                let why = if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                };
                self.show(notice(
                    json!({"event": "transfer", "id": id, "request": request, "direction": direction(outgoing),
                           "name": name, "state": outcome.as_str(), "size": size, "sha256": sha256,
                           "saved_as": saved_as, "detail": detail}),
                    format!(
                        "{} {name} ({}): {}{why}",
                        if outgoing { "sent" } else { "received" },
                        human_size(size),
                        outcome.as_str()
                    ),
                ));
                self.record(WorkReport::File {
                    direction: direction(outgoing),
                    name,
                    size,
                    sha256,
                    outcome,
                    detail,
                });
            }
            Note::Finished { request, files } => {
                if matches!(self.asked.get(&request), Some(Asked::Send)) {
                    self.asked.remove(&request);
                }
                self.show(notice(
                    json!({"event": "transfer_finished", "id": request, "files": files}),
                    format!("[{request}] done: {files} files"),
                ));
            }
        }
    }
}

/// The direction of a file, seen from the console.
fn direction(outgoing: bool) -> FileDirection {
    if outgoing {
        FileDirection::ToUser
    } else {
        FileDirection::FromUser
    }
}

fn decision_words(d: Decision) -> &'static str {
    match d {
        Decision::Asked => "asking the end user…",
        Decision::Granted => "granted",
        Decision::Refused => "refused by the end user",
        Decision::TimedOut => "no answer in 60 s (refused)",
        Decision::Withdrawn => "withdrawn by the end user",
        Decision::NotAllowed => "not allowed by the group's policy",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::files::testdir::TestDir;
    use lifeline_protocol::portal::FileOutcome;

    /// Remote work and the channels it reports on, as the console wires
    /// them; `inputs` stays open, as the console's controls keep it.
    struct Wired {
        inputs: mpsc::UnboundedSender<Input>,
        task: tokio::task::JoinHandle<()>,
        audit: mpsc::UnboundedReceiver<WorkReport>,
        _session: mpsc::UnboundedReceiver<Command>,
    }

    fn wired() -> Wired {
        let (cmd_tx, session) = mpsc::unbounded_channel();
        let (notices_tx, mut notices) = mpsc::unbounded_channel();
        let (audit_tx, audit) = mpsc::unbounded_channel();
        let (work, reports, notes) = ConsoleWork::new(Outbound::new(cmd_tx), notices_tx, audit_tx);
        tokio::spawn(async move { while notices.recv().await.is_some() {} });
        let (inputs, inputs_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(work.run(inputs_rx, reports, notes));
        Wired {
            inputs,
            task,
            audit,
            _session: session,
        }
    }

    /// With nothing running, the session's end (`Over`) finishes remote
    /// work at once, though a sender of its inputs is still open, and
    /// closes its audit channel (what the console waits for before it
    /// shows the end).
    #[tokio::test]
    async fn the_sessions_end_finishes_idle_remote_work_at_once() {
        let mut w = wired();
        w.inputs.send(Input::Over).unwrap();
        // Not waiting out FINISH_WAIT (a bound, not a timing: it takes
        // microseconds).
        tokio::time::timeout(FINISH_WAIT / 2, &mut w.task)
            .await
            .expect("remote work did not finish at once")
            .unwrap();
        assert!(w.audit.recv().await.is_none());
        drop(w.inputs);
    }

    /// A file still being offered when the session ends cannot finish:
    /// after [`FINISH_WAIT`] it is recorded as stopped, with the reason.
    #[tokio::test]
    async fn a_transfer_running_at_the_end_is_recorded_as_stopped() {
        let dir = TestDir::new("console-end");
        let file = dir.write("notes.txt", b"the end user's notes");
        let mut w = wired();
        w.inputs.send(Input::Request(Request::Send(file))).unwrap();
        w.inputs.send(Input::Over).unwrap();
        let t0 = tokio::time::Instant::now();
        tokio::time::timeout(FINISH_WAIT * 10, &mut w.task)
            .await
            .expect("remote work did not finish after the session's end")
            .unwrap();
        assert!(t0.elapsed() >= FINISH_WAIT, "{:?}", t0.elapsed());
        let mut stopped = Vec::new();
        while let Some(report) = w.audit.recv().await {
            if let WorkReport::File {
                name,
                outcome,
                detail,
                ..
            } = report
            {
                stopped.push((name, outcome, detail));
            }
        }
        assert_eq!(
            stopped,
            [(
                "notes.txt".to_owned(),
                FileOutcome::Stopped,
                "the session ended".to_owned()
            )]
        );
        drop(w.inputs);
    }
}
