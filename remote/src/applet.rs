//! The applet's side of remote work: every request from the console goes
//! through [`Consent`] first, then runs here — a shell, a command, a
//! listing, files either way, system information, a web address.
//!
//! It runs as one task ([`AppletWork::run`]) fed by the applet's screen
//! loop: the session's remote-work events, the end user's answers and
//! commands. It tells the screen what to show in plain words (every
//! line goes through the applet's neutralizing `say`), and the console
//! every decision, for its screen and the gateway's audit trail.

use crate::command;
use crate::consent::{Answered, Consent, Verdict};
use crate::flow::{ChannelNumbers, Outbound};
use crate::shell::Shell;
use crate::to_user::{Activity, Overview, Question, ToUser};
use crate::transfer::{self, Note, Transfers};
use crate::{files, system, url};
use bytes::Bytes;
use lifeline_protocol::Permissions;
use lifeline_protocol::e2e::ChannelKind;
use lifeline_protocol::work::{Decision, Work};
use lifeline_session::live::{Command, Event};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tokio::sync::mpsc;

/// What the applet's screen loop hands in.
#[derive(Debug)]
pub enum Input {
    /// A session event (remote work's and channels'; others are ignored).
    Event(Event),
    /// The end user answered the prompt on the screen.
    Answer(bool),
    /// The end user takes back permissions (all of them: `ALL`).
    Withdraw(Permissions),
    /// The end user stops everything that runs (permissions stay).
    Stop,
    /// The end user asks what is granted and running.
    Overview,
    /// The technician handed the session to a colleague: what the end
    /// user allowed the one who left ends, and everything stops.
    HandedOver,
}

pub use crate::to_user::Asker;

/// The applet's remote work for one session.
#[derive(Debug)]
pub struct AppletWork {
    out: Arc<Outbound>,
    consent: Consent,
    asker: Asker,
    downloads: PathBuf,
    screen: mpsc::UnboundedSender<ToUser>,
    prompt_open: Arc<AtomicBool>,
    numbers: ChannelNumbers,
    transfers: Transfers,
    /// Requests waiting for the end user's answer, by request id.
    pending: HashMap<u64, Vec<Pending>>,
    /// Shells and commands running: request id → their task.
    running: HashMap<u64, Running>,
    /// Channels the console opened and their kind, until a request
    /// names them.
    opened: HashMap<u32, ChannelKind>,
    /// The request whose prompt is on the screen.
    shown_request: Option<u64>,
}

#[derive(Debug)]
enum Pending {
    Shell {
        id: u64,
        channel: u32,
        cols: u16,
        rows: u16,
    },
    Run {
        id: u64,
        channel: u32,
        command: String,
    },
    List {
        id: u64,
        folder: PathBuf,
    },
    Fetch {
        id: u64,
        path: PathBuf,
    },
    SystemInfo {
        id: u64,
    },
    OpenUrl {
        id: u64,
        url: String,
    },
    Offer {
        id: u64,
        request: u64,
        channel: u32,
        path: Vec<String>,
        size: u64,
    },
    Ask {
        id: u64,
    },
}

#[derive(Debug)]
struct Running {
    channel: u32,
    shell: bool,
    input: mpsc::UnboundedSender<ToProcess>,
}

#[derive(Debug)]
enum ToProcess {
    Keys(Bytes),
    Resize(u16, u16),
    Kill(String),
}

/// A shell or command ended: (request id, exit code, why it stopped).
type Exit = (u64, Option<i32>, String);

impl AppletWork {
    /// Remote work under `policy` (the trailer's permissions), writing
    /// through `out`, showing lines on `screen`; files sent to the end
    /// user go to `downloads`. Also returns the flag the input loop reads
    /// to tell a yes/no answer from a chat line.
    pub fn new(
        out: Arc<Outbound>,
        policy: Permissions,
        asker: Asker,
        downloads: PathBuf,
        screen: mpsc::UnboundedSender<ToUser>,
    ) -> (
        Self,
        Arc<AtomicBool>,
        transfer::Reports,
        mpsc::UnboundedReceiver<Note>,
    ) {
        let (notes_tx, notes) = mpsc::unbounded_channel();
        let (transfers, reports) = Transfers::new(out.clone(), notes_tx);
        let prompt_open = Arc::new(AtomicBool::new(false));
        (
            Self {
                out,
                consent: Consent::new(policy),
                asker,
                downloads,
                screen,
                prompt_open: prompt_open.clone(),
                numbers: ChannelNumbers::new(false),
                transfers,
                pending: HashMap::new(),
                running: HashMap::new(),
                opened: HashMap::new(),
                shown_request: None,
            },
            prompt_open,
            reports,
            notes,
        )
    }

    fn say(&self, what: ToUser) {
        let _ = self.screen.send(what);
    }

    fn work(&self, w: Work) {
        self.out.command(Command::Work(w));
    }

    /// Runs until the inputs end (the session is over); then stops
    /// everything that still runs.
    pub async fn run(
        mut self,
        mut inputs: mpsc::UnboundedReceiver<Input>,
        mut reports: transfer::Reports,
        mut notes: mpsc::UnboundedReceiver<Note>,
    ) {
        let (exits_tx, mut exits) = mpsc::unbounded_channel::<Exit>();
        self.send_grants();
        loop {
            let deadline = self.consent.deadline();
            let timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(i) => self.on_input(i, &exits_tx).await,
                    None => break,
                },
                Some(report) = reports.recv() => self.transfers.report(report),
                Some(note) = notes.recv() => self.on_note(note),
                Some(exit) = exits.recv() => self.on_exit(exit),
                () = timer => {
                    if let Some(a) = self.consent.expire(Instant::now()) {
                        self.decided(a, &exits_tx).await;
                    }
                }
            }
        }
        self.stop_everything("the session ended");
    }

    async fn on_input(&mut self, input: Input, exits: &mpsc::UnboundedSender<Exit>) {
        match input {
            Input::Event(ev) => self.on_event(ev, exits).await,
            Input::Answer(yes) => {
                if let Some(a) = self.consent.answer(Instant::now(), yes) {
                    self.decided(a, exits).await;
                }
            }
            Input::Withdraw(caps) => self.withdraw(caps),
            Input::Stop => {
                self.stop_everything("the end user stopped it");
                self.say(ToUser::StoppedEverything);
                self.send_grants();
            }
            Input::Overview => self.overview(),
            Input::HandedOver => {
                // Consent was given to a person: none carries over to the
                // colleague, who asks again.
                self.stop_everything("the session was handed to another technician");
                let taken = self.consent.withdraw(Permissions::ALL);
                if !taken.is_empty() {
                    self.decision(0, taken, Decision::Withdrawn, false);
                }
                self.send_grants();
            }
        }
    }

    async fn on_event(&mut self, ev: Event, exits: &mpsc::UnboundedSender<Exit>) {
        match ev {
            Event::Work(w) => self.on_work(w, exits).await,
            Event::ChannelOpened { channel, kind } => {
                if kind == ChannelKind::File {
                    // Named by the offer that follows.
                } else {
                    self.opened.insert(channel, kind);
                }
            }
            Event::ChannelData { channel, data } => {
                let Some(data) = self.transfers.on_data(channel, data) else {
                    return;
                };
                self.out.consumed(channel, data.len());
                if let Some(r) = self
                    .running
                    .values()
                    .find(|r| r.channel == channel && r.shell)
                {
                    let _ = r.input.send(ToProcess::Keys(data));
                }
            }
            Event::ChannelClosed { channel } => {
                self.transfers.on_closed(channel);
            }
            Event::ChannelReset { channel, reason } => {
                self.out.forget(channel);
                if !self.transfers.on_reset(channel, &reason, &mut self.numbers)
                    && let Some(r) = self.running.values().find(|r| r.channel == channel)
                {
                    let _ = r
                        .input
                        .send(ToProcess::Kill("the technician closed it".into()));
                }
                self.opened.remove(&channel);
            }
            Event::ChannelSent { channel, bytes } => self.out.sent(channel, bytes),
            Event::Resumed { fresh: true } => {
                // The technician's console restarted: nothing it started
                // goes on, and its questions are void. What the end user
                // granted stays (the session goes on).
                self.out.forget_all();
                self.stop_everything("the technician's program restarted");
                self.transfers
                    .forget_all("the technician's program restarted");
                if !self.consent.drain_prompts().is_empty() {
                    self.say(ToUser::QuestionWithdrawn);
                }
                self.pending.clear();
                self.opened.clear();
                self.prompt_open.store(false, Ordering::Relaxed);
                self.send_grants();
            }
            _ => {}
        }
    }

    async fn on_work(&mut self, w: Work, exits: &mpsc::UnboundedSender<Exit>) {
        let now = Instant::now();
        match w {
            Work::Ask {
                id,
                caps,
                whole_session,
            } => {
                let caps = Permissions::from_bits(caps).capabilities();
                let verdict = if whole_session {
                    self.consent.ask_whole_session(now, id, caps)
                } else {
                    match caps.each().next() {
                        Some(cap) if caps == cap => self.consent.request(now, id, cap, None, None),
                        // Not a policy matter: a malformed request.
                        _ => {
                            return self.refuse(
                                id,
                                "ask for one permission at a time, or for the whole session",
                            );
                        }
                    }
                };
                self.judge(id, caps, whole_session, verdict, Pending::Ask { id }, exits)
                    .await;
            }
            Work::Shell {
                id,
                channel,
                cols,
                rows,
            } => {
                if self.opened.remove(&channel) != Some(ChannelKind::Shell) {
                    return self.refuse(id, "the shell's channel is not open");
                }
                self.ask(
                    now,
                    id,
                    Permissions::RUN_COMMAND,
                    None,
                    None,
                    Pending::Shell {
                        id,
                        channel,
                        cols,
                        rows,
                    },
                    exits,
                )
                .await;
            }
            Work::Run {
                id,
                channel,
                command,
            } => {
                if self.opened.remove(&channel) != Some(ChannelKind::Run) {
                    return self.refuse(id, "the command's channel is not open");
                }
                self.ask(
                    now,
                    id,
                    Permissions::RUN_COMMAND,
                    None,
                    None,
                    Pending::Run {
                        id,
                        channel,
                        command,
                    },
                    exits,
                )
                .await;
            }
            Work::Resize {
                channel,
                cols,
                rows,
            } => {
                if let Some(r) = self.running.values().find(|r| r.channel == channel) {
                    let _ = r.input.send(ToProcess::Resize(cols, rows));
                }
            }
            Work::List { id, path } => match resolve(&path) {
                Ok(folder) if folder.is_dir() => {
                    self.ask(
                        now,
                        id,
                        Permissions::FILE_FROM_USER,
                        Some(folder.clone()),
                        None,
                        Pending::List { id, folder },
                        exits,
                    )
                    .await;
                }
                Ok(_) => self.refuse(id, "that is not a folder"),
                Err(why) => self.refuse(id, &why),
            },
            Work::Fetch { id, path } => match resolve(&path) {
                Ok(path) => {
                    let folder = if path.is_dir() {
                        path.clone()
                    } else {
                        path.parent()
                            .map_or_else(|| path.clone(), Path::to_path_buf)
                    };
                    self.ask(
                        now,
                        id,
                        Permissions::FILE_FROM_USER,
                        Some(folder),
                        None,
                        Pending::Fetch { id, path },
                        exits,
                    )
                    .await;
                }
                Err(why) => self.refuse(id, &why),
            },
            Work::SystemInfo { id } => {
                let p = Pending::SystemInfo { id };
                self.ask(now, id, Permissions::SYSTEM_INFO, None, None, p, exits)
                    .await;
            }
            Work::OpenUrl { id, url } => match url::check(&url) {
                Ok(url) => {
                    let shown = Some(url.clone());
                    let p = Pending::OpenUrl { id, url };
                    self.ask(now, id, Permissions::OPEN_URL, None, shown, p, exits)
                        .await;
                }
                Err(why) => self.refuse(id, why),
            },
            Work::Stop { id } => {
                if let Some(r) = self.running.get(&id) {
                    let _ = r
                        .input
                        .send(ToProcess::Kill("the technician stopped it".into()));
                }
                self.transfers
                    .stop_request(id, "the technician stopped it", &mut self.numbers);
            }
            Work::Offer {
                id,
                request,
                channel,
                path,
                size,
            } => {
                let p = Pending::Offer {
                    id,
                    request,
                    channel,
                    path,
                    size,
                };
                // Every file of one send shares the first file's question.
                if let Some(waiting) = self.pending.get_mut(&request) {
                    waiting.push(p);
                    return;
                }
                self.ask(
                    now,
                    request,
                    Permissions::FILE_TO_USER,
                    None,
                    None,
                    p,
                    exits,
                )
                .await;
            }
            Work::From { id, offset } => self.transfers.on_from(id, offset),
            Work::Sent { id, sha256 } => self.transfers.on_sent(id, sha256),
            Work::Accept {
                id,
                offset,
                partial_sha256,
            } => self.transfers.on_accept(id, offset, &partial_sha256),
            Work::Saved {
                id,
                ok,
                saved_as,
                detail,
            } => self
                .transfers
                .on_saved(id, ok, &saved_as, &detail, &mut self.numbers),
            Work::Refused { id, reason } => {
                self.transfers.on_refused(id, &reason, &mut self.numbers);
            }
            // The console's own answers never come this way.
            _ => {}
        }
    }

    /// Asks consent for one use of `cap` and acts on the verdict.
    #[allow(clippy::too_many_arguments)]
    async fn ask(
        &mut self,
        now: Instant,
        id: u64,
        cap: Permissions,
        folder: Option<PathBuf>,
        url: Option<String>,
        pending: Pending,
        exits: &mpsc::UnboundedSender<Exit>,
    ) {
        let verdict = self
            .consent
            .request(now, id, cap, folder.as_deref(), url.as_deref());
        self.judge(id, cap, false, verdict, pending, exits).await;
    }

    /// Acts on a consent verdict for request `id`.
    async fn judge(
        &mut self,
        id: u64,
        caps: Permissions,
        whole_session: bool,
        verdict: Verdict,
        pending: Pending,
        exits: &mpsc::UnboundedSender<Exit>,
    ) {
        match verdict {
            Verdict::Allowed => self.go(pending, exits).await,
            Verdict::NotAllowed(why) => {
                self.decision(id, caps, Decision::NotAllowed, whole_session);
                self.refuse_pending(pending, &why);
            }
            Verdict::Busy => self.refuse_pending(
                pending,
                "too many questions are waiting for the end user; ask again later",
            ),
            Verdict::Asking => {
                self.decision(id, caps, Decision::Asked, whole_session);
                self.pending.entry(id).or_default().push(pending);
                self.show_prompt();
            }
        }
    }

    /// A prompt was answered (or timed out).
    async fn decided(&mut self, a: Answered, exits: &mpsc::UnboundedSender<Exit>) {
        let Answered { prompt, decision } = a;
        self.decision(prompt.request, prompt.caps, decision, prompt.whole_session);
        let waiting = self.pending.remove(&prompt.request).unwrap_or_default();
        if decision == Decision::Granted {
            self.say(ToUser::Allowed {
                briefly: prompt.url.is_some(),
            });
            for p in waiting {
                self.go(p, exits).await;
            }
        } else {
            self.say(if decision == Decision::TimedOut {
                ToUser::TimedOut {
                    secs: crate::consent::PROMPT_TIMEOUT.as_secs(),
                }
            } else {
                ToUser::Refused
            });
            let why = if decision == Decision::TimedOut {
                "the end user did not answer within 60 seconds"
            } else {
                "the end user said no"
            };
            for p in waiting {
                self.refuse_pending(p, why);
            }
        }
        // Requests a grant made unnecessary to ask about.
        for p in self.consent.take_covered() {
            self.decision(p.request, p.caps, Decision::Granted, false);
            for w in self.pending.remove(&p.request).unwrap_or_default() {
                self.go(w, exits).await;
            }
        }
        self.send_grants();
        self.show_prompt();
    }

    fn show_prompt(&mut self) {
        let Some((p, _)) = self.consent.shown() else {
            self.prompt_open.store(false, Ordering::Relaxed);
            return;
        };
        if self.prompt_open.swap(true, Ordering::Relaxed) && self.shown_request == Some(p.request) {
            return;
        }
        let question = Question {
            who: self.asker.clone(),
            caps: p.caps,
            whole_session: p.whole_session,
            folder: p.folder.as_ref().map(|f| f.display().to_string()),
            url: p.url.clone(),
            downloads: self.downloads.display().to_string(),
            timeout_secs: crate::consent::PROMPT_TIMEOUT.as_secs(),
        };
        self.shown_request = Some(p.request);
        self.say(ToUser::Ask(question));
    }

    /// Carries out a request that may go ahead.
    async fn go(&mut self, p: Pending, exits: &mpsc::UnboundedSender<Exit>) {
        match p {
            Pending::Ask { .. } => {}
            Pending::Shell {
                id,
                channel,
                cols,
                rows,
            } => self.start_shell(id, channel, cols, rows, exits).await,
            Pending::Run {
                id,
                channel,
                command,
            } => self.start_command(id, channel, &command, exits),
            Pending::List { id, folder } => {
                let listed = tokio::task::spawn_blocking({
                    let folder = folder.clone();
                    move || files::walk::list(&folder)
                })
                .await;
                match listed {
                    Ok(Ok((entries, truncated))) => {
                        self.say(ToUser::Listed {
                            folder: folder.display().to_string(),
                        });
                        self.work(listing(
                            id,
                            folder.display().to_string(),
                            entries,
                            truncated,
                        ));
                    }
                    Ok(Err(e)) => self.refuse(id, &e.to_string()),
                    Err(_) => self.refuse(id, "the folder could not be read"),
                }
            }
            Pending::Fetch { id, path } => {
                match self.transfers.send(id, &path, &mut self.numbers) {
                    Ok(files) => self.say(ToUser::Copying {
                        path: path.display().to_string(),
                        files,
                    }),
                    Err(e) => self.refuse(id, &e.to_string()),
                }
            }
            Pending::SystemInfo { id } => {
                let info = system::collect().await;
                self.say(ToUser::ReadSystemInfo);
                self.work(Work::SystemReport {
                    id,
                    info: Box::new(info),
                });
            }
            Pending::OpenUrl { id, url } => match url::open(&url).await {
                Ok(()) => {
                    self.say(ToUser::OpenedPage { url: url.clone() });
                    self.work(Work::Opened { id });
                }
                Err(e) => {
                    self.say(ToUser::PageFailed);
                    self.refuse(id, &e.to_string());
                }
            },
            Pending::Offer {
                id,
                request,
                channel,
                path,
                size,
            } => {
                if let Err(e) = std::fs::create_dir_all(&self.downloads) {
                    tracing::info!(error = %e, "downloads folder");
                }
                self.say(ToUser::Receiving {
                    name: path.join("/"),
                    size,
                    into: self.downloads.display().to_string(),
                });
                let root = self.downloads.clone();
                self.transfers
                    .receive(id, request, channel, &path, size, &root);
            }
        }
    }

    async fn start_shell(
        &mut self,
        id: u64,
        channel: u32,
        cols: u16,
        rows: u16,
        exits: &mpsc::UnboundedSender<Exit>,
    ) {
        let (mut shell, mut output) = match Shell::spawn(cols, rows).await {
            Ok(s) => s,
            Err(e) => {
                self.out.reset(channel, "the shell could not start");
                return self.refuse(id, &e.to_string());
            }
        };
        self.out.register(channel, ChannelKind::Shell);
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.running.insert(
            id,
            Running {
                channel,
                shell: true,
                input: tx,
            },
        );
        self.work(Work::Started { id });
        self.say(ToUser::ShellOpened);
        let out = self.out.clone();
        let pump = tokio::spawn(async move {
            while let Some(chunk) = output.read().await {
                if !out.write(channel, chunk).await {
                    break;
                }
            }
        });
        let exits = exits.clone();
        tokio::spawn(async move {
            let mut why = String::new();
            let code = loop {
                tokio::select! {
                    code = shell.wait() => break code,
                    input = rx.recv() => match input {
                        Some(ToProcess::Keys(k)) => {
                            if shell.write(&k).await.is_err() {
                                shell.kill();
                            }
                        }
                        Some(ToProcess::Resize(c, r)) => {
                            let _ = shell.resize(c, r);
                        }
                        Some(ToProcess::Kill(w)) => {
                            why = w;
                            shell.kill();
                        }
                        None => shell.kill(),
                    },
                }
            };
            // What it printed last goes out before the channel closes.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), pump).await;
            let _ = exits.send((id, code, why));
        });
    }

    fn start_command(
        &mut self,
        id: u64,
        channel: u32,
        line: &str,
        exits: &mpsc::UnboundedSender<Exit>,
    ) {
        let (mut child, mut output) = match command::Command::spawn(line) {
            Ok(c) => c,
            Err(e) => {
                self.out.reset(channel, "the command could not start");
                return self.refuse(id, &e.to_string());
            }
        };
        self.out.register(channel, ChannelKind::Run);
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.running.insert(
            id,
            Running {
                channel,
                shell: false,
                input: tx,
            },
        );
        self.work(Work::Started { id });
        self.say(ToUser::CommandRunning {
            line: line.to_owned(),
        });
        let out = self.out.clone();
        let pump = tokio::spawn(async move {
            while let Some(chunk) = output.read().await {
                if !out.write(channel, chunk).await {
                    break;
                }
            }
        });
        let exits = exits.clone();
        tokio::spawn(async move {
            let mut why = String::new();
            let code = loop {
                tokio::select! {
                    code = child.wait() => break code,
                    input = rx.recv() => match input {
                        Some(ToProcess::Kill(w)) => {
                            why = w;
                            child.kill();
                        }
                        Some(_) => {}
                        None => child.kill(),
                    },
                }
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), pump).await;
            let _ = exits.send((id, code, why));
        });
    }

    fn on_exit(&mut self, (id, code, detail): Exit) {
        let Some(r) = self.running.remove(&id) else {
            return;
        };
        self.out.close(r.channel);
        self.work(Work::Exited { id, code, detail });
        if r.shell {
            self.say(ToUser::ShellClosed);
        }
        self.send_grants();
    }

    fn on_note(&mut self, note: Note) {
        match note {
            Note::Started { .. } => {}
            Note::Progress(p) => self.say(ToUser::Progress(p)),
            Note::Done(transfer::Ended {
                outgoing,
                id,
                name,
                outcome,
                saved_as,
                detail,
                ..
            }) => {
                self.say(match (outgoing, outcome) {
                    (false, transfer::Outcome::Saved) => ToUser::Saved { id, path: saved_as },
                    (false, _) => ToUser::ReceiveFailed { id, name, detail },
                    (true, transfer::Outcome::Saved) => ToUser::Copied { id, name },
                    (true, _) => ToUser::CopyFailed { id, name, detail },
                });
            }
            Note::Finished { .. } => self.send_grants(),
        }
    }

    /// Refuses request `id` with a reason for the technician.
    fn refuse(&self, id: u64, reason: &str) {
        self.work(Work::Refused {
            id,
            reason: reason.to_owned(),
        });
    }

    fn refuse_pending(&mut self, p: Pending, reason: &str) {
        match p {
            Pending::Shell { id, channel, .. } | Pending::Run { id, channel, .. } => {
                self.out.reset(channel, reason);
                self.refuse(id, reason);
            }
            Pending::Offer {
                id,
                request,
                channel,
                path,
                size,
            } => self
                .transfers
                .refuse(id, request, channel, &path, size, reason),
            Pending::List { id, .. }
            | Pending::Fetch { id, .. }
            | Pending::SystemInfo { id }
            | Pending::OpenUrl { id, .. }
            | Pending::Ask { id } => self.refuse(id, reason),
        }
    }

    fn decision(&self, id: u64, caps: Permissions, decision: Decision, whole_session: bool) {
        self.work(Work::Decision {
            id,
            caps: caps.bits(),
            decision,
            whole_session,
        });
    }

    /// Tells both ends what is granted and running (whenever it may have
    /// changed).
    fn send_grants(&self) {
        let now = self.overview_now();
        self.work(Work::Grants {
            granted: now.granted.bits(),
            allowed: now.allowed.bits(),
            running: now.running.iter().map(Activity::for_technician).collect(),
        });
        self.say(ToUser::State(now));
    }

    fn overview_now(&self) -> Overview {
        let mut running: Vec<Activity> = self
            .running
            .values()
            .map(|r| {
                if r.shell {
                    Activity::Shell
                } else {
                    Activity::Command
                }
            })
            .collect();
        running.extend(self.transfers.running());
        Overview {
            allowed: self.consent.policy(),
            granted: self.consent.granted(),
            folders: self
                .consent
                .folders()
                .iter()
                .map(|f| f.display().to_string())
                .collect(),
            running,
        }
    }

    /// The end user takes `caps` back; what runs under them stops at once.
    fn withdraw(&mut self, caps: Permissions) {
        let taken = self.consent.withdraw(caps);
        if taken.contains(Permissions::RUN_COMMAND) {
            self.kill_processes("the end user withdrew the permission");
        }
        if taken.contains(Permissions::FILE_FROM_USER) {
            self.transfers
                .stop_sending("the end user withdrew the permission", &mut self.numbers);
        }
        if taken.contains(Permissions::FILE_TO_USER) {
            self.transfers
                .stop_receiving_all("the end user withdrew the permission");
        }
        if !taken.is_empty() {
            self.decision(0, taken, Decision::Withdrawn, false);
        }
        self.say(ToUser::Withdrew { taken });
        self.send_grants();
    }

    fn kill_processes(&mut self, why: &str) {
        for r in self.running.values() {
            let _ = r.input.send(ToProcess::Kill(why.to_owned()));
        }
    }

    fn stop_everything(&mut self, why: &str) {
        self.kill_processes(why);
        self.transfers.stop_all(why, &mut self.numbers);
    }

    fn overview(&self) {
        self.say(ToUser::Overview(self.overview_now()));
    }
}

/// A listing that fits in one work message: 500 long names would not,
/// and a message over the limit ends the session at the other end. The
/// entries that do not fit are left out, and the listing says so.
fn listing(
    id: u64,
    path: String,
    mut entries: Vec<lifeline_protocol::work::Entry>,
    mut truncated: bool,
) -> Work {
    // Room for the path and the message's own words.
    let budget = lifeline_protocol::work::MAX_WORK - 1024 - path.len() * 2;
    let mut used = 0;
    let mut keep = 0;
    for e in &entries {
        // An entry's JSON: its name (escaped: at most 6 bytes a byte) and
        // about 80 bytes of keys and numbers.
        let cost = e.name.len() * 6 + 80;
        if used + cost > budget {
            break;
        }
        used += cost;
        keep += 1;
    }
    if keep < entries.len() {
        entries.truncate(keep);
        truncated = true;
    }
    Work::Listing {
        id,
        path,
        entries,
        truncated,
    }
}

/// A path the technician named, on this machine: `~` is the home
/// folder; the result is absolute, with links resolved, so the folder the
/// end user sees in a prompt is the one read.
fn resolve(path: &str) -> Result<PathBuf, String> {
    let home = home();
    let p = if path.is_empty() || path == "~" {
        home.ok_or("there is no home folder")?
    } else if let Some(rest) = path.strip_prefix("~/") {
        home.ok_or("there is no home folder")?.join(rest)
    } else {
        PathBuf::from(path)
    };
    p.canonicalize()
        .map_err(|_| "no such file or folder on the end user's computer".to_owned())
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map(PathBuf::from)
}

/// Where files sent to the end user go: their Downloads folder.
pub fn downloads_folder() -> PathBuf {
    home().unwrap_or_else(std::env::temp_dir).join("Downloads")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lifeline_protocol::work::{Entry, MAX_LISTING, MAX_WORK};

    #[test]
    fn a_listing_of_long_names_fits_in_one_message() {
        let entries: Vec<Entry> = (0..MAX_LISTING)
            .map(|i| Entry {
                name: format!("{i:03}{}", "\u{1b}".repeat(250)),
                dir: false,
                size: u64::MAX,
                modified_ms: u64::MAX,
            })
            .collect();
        let w = listing(1, "/".repeat(4096), entries, false);
        assert!(w.encode().len() <= MAX_WORK, "{}", w.encode().len());
        let Work::Listing {
            entries, truncated, ..
        } = &w
        else {
            unreachable!()
        };
        assert!(*truncated && !entries.is_empty());
        assert_eq!(Work::decode(&w.encode()).unwrap(), w);
    }
}
