//! File transfers over the session, the same both ways: the console
//! sending to the end user and the applet sending what the technician
//! fetches.
//!
//! One file per channel (a bulk channel of its own, so two transfers
//! share the path and a keystroke passes both). The exchange:
//!
//! ```text
//! sender                                        receiver
//!   Open(ch, File); Offer{id, ch, path, size} ──▶  safe place, partial copy?
//!                      ◀──  Accept{id, offset, sha256 of what it has}
//!   From{id, start} (offset, or 0 if the partial differs) ──▶
//!   ═══ bytes from `start` on ch, then Close ═══▶
//!   Sent{id, sha256 of the whole file}          ──▶  checks, renames into place
//!                      ◀──  Saved{id, ok, saved_as}
//! ```
//!
//! `Sent` travels on the control lane and may overtake the last bytes;
//! the receiver finishes when it has both the hash and every byte (or the
//! close). An interruption of the path or of the session is not seen here
//! at all (the session core resends what was lost); a transfer that did
//! stop (stopped, the console restarted) leaves its partial file, and the
//! next offer of the same file resumes from it.

use crate::files::disk::{Disk, Done, Job};
use crate::files::{self, FileError};
use crate::flow::{ChannelNumbers, Outbound};
use crate::to_user::{Activity, Progress};
use bytes::Bytes;
use lifeline_protocol::e2e::{ChannelKind, MAX_DATA};
use lifeline_protocol::work::Work;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Transfer ids start here, so that they never meet the ids of the
/// requests they answer (both ride in `Work::Refused`).
pub const FIRST_ID: u64 = 1 << 40;
/// Transfers running at once from this end (more wait their turn).
pub const MAX_ACTIVE: usize = 2;
/// How often a running transfer reports its progress.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Chunks a sender reads ahead of the channel (on a blocking thread, so
/// reading and hashing overlap with sending).
const READ_AHEAD: usize = 8;

/// How a transfer ended (the audit trail's words for it).
pub use lifeline_protocol::portal::FileOutcome as Outcome;

/// What a transfer tells the screen.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// The bytes start flowing, from `from` on (a resumed transfer's
    /// partial copy matched; 0 for a new one or one whose copy did not).
    Started {
        /// This end sends it.
        outgoing: bool,
        /// The transfer's id (the sender's).
        id: u64,
        /// Its path below the transfer's top, as sent.
        name: String,
        /// Its size.
        size: u64,
        /// The first byte sent.
        from: u64,
    },
    /// Bytes moved so far.
    Progress(Progress),
    /// It ended.
    Done(Ended),
    /// Every file of a request was offered and has ended.
    Finished {
        /// The request.
        request: u64,
        /// Files offered.
        files: u64,
    },
}

/// How a transfer ended, for the screen and the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    /// This end sent it.
    pub outgoing: bool,
    /// The transfer's id (the sender's).
    pub id: u64,
    /// The request it belongs to (0: none).
    pub request: u64,
    /// Its path below the transfer's top, as sent.
    pub name: String,
    /// Its size.
    pub size: u64,
    /// SHA-256 of the whole file (hex; "" if it did not get that far).
    pub sha256: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Where it was saved (the receiver's words), or "".
    pub saved_as: String,
    /// What went wrong, or "".
    pub detail: String,
}

impl Ended {
    /// An end with no hash and no place (yet): most of them.
    fn new(
        outgoing: bool,
        id: u64,
        request: u64,
        name: String,
        size: u64,
        outcome: Outcome,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            outgoing,
            id,
            request,
            name,
            size,
            sha256: String::new(),
            outcome,
            saved_as: String::new(),
            detail: detail.into(),
        }
    }

    /// With the whole file's hash.
    fn hash(mut self, sha256: String) -> Self {
        self.sha256 = sha256;
        self
    }

    /// With where it was saved.
    fn saved_as(mut self, saved_as: String) -> Self {
        self.saved_as = saved_as;
        self
    }
}

/// A transfer's progress in words: `45% (1.2 MB of 3.4 MB, 95.0 MB/s,
/// 3 s left)`.
pub fn progress_words(bytes: u64, size: u64, rate: f64, eta_secs: Option<f64>) -> String {
    let pct = (bytes.saturating_mul(100)).checked_div(size).unwrap_or(100);
    let eta = eta_secs.map_or_else(String::new, |s| format!(", {s:.0} s left"));
    format!(
        "{pct}% ({} of {}, {}/s{eta})",
        human_size(bytes),
        human_size(size),
        human_size(rate as u64)
    )
}

/// Bytes in a size people read.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} bytes")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The progress clock of one transfer: when to say how far it is, and
/// its rate.
struct Meter {
    started: Instant,
    from: u64,
    last: Option<Instant>,
}

impl Meter {
    fn new(from: u64) -> Self {
        Self {
            started: Instant::now(),
            from,
            last: None,
        }
    }

    /// A note if it is time for one (or `force`).
    fn note(
        &mut self,
        outgoing: bool,
        id: u64,
        name: &str,
        bytes: u64,
        size: u64,
        force: bool,
    ) -> Option<Note> {
        let now = Instant::now();
        if !force
            && self
                .last
                .is_some_and(|l| now.duration_since(l) < PROGRESS_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        let secs = now.duration_since(self.started).as_secs_f64().max(1e-3);
        let rate = bytes.saturating_sub(self.from) as f64 / secs;
        let eta_secs = (rate > 0.0).then(|| size.saturating_sub(bytes) as f64 / rate);
        Some(Note::Progress(Progress {
            outgoing,
            id,
            name: name.to_owned(),
            bytes,
            size,
            rate,
            eta_secs,
        }))
    }
}

/// What a sender's reading thread hands the pump.
enum Read {
    /// Sending starts here (the receiver's partial copy matched, or 0).
    From(u64),
    /// The next bytes, and the position after them.
    Chunk(Bytes, u64),
}

/// Moves one file onto its channel: a blocking thread reads and hashes
/// up to [`READ_AHEAD`] chunks ahead while this task writes them out, so
/// neither the disk nor SHA-256 runs on the runtime's threads.
struct Pump {
    id: u64,
    channel: u32,
    name: String,
    size: u64,
    out: Arc<Outbound>,
    notes: mpsc::UnboundedSender<Note>,
}

impl Pump {
    /// Sends from where the receiver's partial copy (`offset` bytes whose
    /// SHA-256 is `partial`) lets it; the file's hash when every byte is
    /// out and the channel closed.
    async fn run(
        self,
        sender: files::Sender,
        offset: u64,
        partial: String,
    ) -> Result<String, String> {
        let (tx, mut rx) = mpsc::channel(READ_AHEAD);
        let reader = tokio::task::spawn_blocking(move || read_ahead(sender, offset, &partial, &tx));
        let mut progress = Meter::new(offset);
        while let Some(read) = rx.recv().await {
            match read {
                Read::From(start) => {
                    self.out
                        .command(lifeline_session::live::Command::Work(Work::From {
                            id: self.id,
                            offset: start,
                        }));
                    let _ = self.notes.send(Note::Started {
                        outgoing: true,
                        id: self.id,
                        name: self.name.clone(),
                        size: self.size,
                        from: start,
                    });
                    progress = Meter::new(start);
                }
                Read::Chunk(chunk, position) => {
                    if !self.out.write(self.channel, chunk).await {
                        return Err("the transfer was stopped".into());
                    }
                    if let Some(n) =
                        progress.note(true, self.id, &self.name, position, self.size, false)
                    {
                        let _ = self.notes.send(n);
                    }
                }
            }
        }
        let sha256 = reader
            .await
            .map_err(|_| "the file could not be read".to_owned())??;
        self.out.close(self.channel);
        Ok(sha256)
    }
}

/// The reading thread of a [`Pump`]: the start, then every chunk, then
/// the hash (an error when the file cannot be read or the pump is gone).
fn read_ahead(
    mut sender: files::Sender,
    offset: u64,
    partial: &str,
    to_pump: &mpsc::Sender<Read>,
) -> Result<String, String> {
    let gone = |_| "the transfer was stopped".to_owned();
    let start = sender
        .resume_from(offset, partial)
        .map_err(|e| e.to_string())?;
    to_pump.blocking_send(Read::From(start)).map_err(gone)?;
    loop {
        let chunk = sender.read_chunk(MAX_DATA).map_err(|e| e.to_string())?;
        if chunk.is_empty() {
            return Ok(sender.finish());
        }
        to_pump
            .blocking_send(Read::Chunk(chunk, sender.position()))
            .map_err(gone)?;
    }
}

struct Sending {
    channel: u32,
    request: u64,
    name: String,
    size: u64,
    sender: Option<files::Sender>,
    pump: Option<tokio::task::AbortHandle>,
    sha256: String,
}

/// A file coming in; its [`files::Receiver`] is on the disk thread.
struct Receiving {
    channel: u32,
    request: u64,
    /// Its path as offered (for a refusal).
    path: Vec<String>,
    name: String,
    size: u64,
    /// The disk thread found its place and we accepted it.
    prepared: bool,
    begun: bool,
    closed: bool,
    /// Handed to the disk thread to be checked and saved.
    finishing: bool,
    sha256: Option<String>,
    /// Bytes held: the resumed start and what arrived since.
    received: u64,
    progress: Meter,
}

/// A file waiting for its turn to be offered.
struct Queued {
    request: u64,
    components: Vec<String>,
    path: PathBuf,
}

/// Per request: files offered, and files still queued or running.
#[derive(Default)]
struct Batch {
    offered: u64,
    open: u64,
    listed: bool,
}

/// Every transfer of one end of a session.
pub struct Transfers {
    out: Arc<Outbound>,
    ids: u64,
    sending: HashMap<u64, Sending>,
    queue: VecDeque<Queued>,
    batches: HashMap<u64, Batch>,
    receiving: HashMap<u64, Receiving>,
    by_channel: HashMap<u32, u64>,
    notes: mpsc::UnboundedSender<Note>,
    /// Where the pumps and the disk thread report back.
    reports: mpsc::UnboundedSender<Report>,
    /// The receivers' disk work.
    disk: Disk,
}

impl std::fmt::Debug for Transfers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfers")
            .field("sending", &self.sending.len())
            .field("receiving", &self.receiving.len())
            .finish_non_exhaustive()
    }
}

/// What the work off the owner's loop reports back: the owner's loop
/// hands each to [`Transfers::report`].
#[derive(Debug)]
pub enum Report {
    /// A sender's pump finished reading (the file's hash) or failed.
    Pumped(u64, Result<String, String>),
    /// The disk thread's answer about a file being received.
    Disk(Done),
}

/// The reports, for the owner's loop.
pub type Reports = mpsc::UnboundedReceiver<Report>;

impl Transfers {
    /// Transfers writing through `out`, telling `notes`.
    /// Must be called on a Tokio runtime (the disk thread is on its
    /// blocking pool).
    pub fn new(out: Arc<Outbound>, notes: mpsc::UnboundedSender<Note>) -> (Self, Reports) {
        let (reports, rx) = mpsc::unbounded_channel();
        let to_owner = reports.clone();
        let disk = Disk::start(out.clone(), move |d| {
            let _ = to_owner.send(Report::Disk(d));
        });
        (
            Self {
                out,
                ids: FIRST_ID,
                sending: HashMap::new(),
                queue: VecDeque::new(),
                batches: HashMap::new(),
                receiving: HashMap::new(),
                by_channel: HashMap::new(),
                notes,
                reports,
                disk,
            },
            rx,
        )
    }

    /// Whether any transfer runs or waits.
    pub fn busy(&self) -> bool {
        !self.sending.is_empty() || !self.queue.is_empty() || !self.receiving.is_empty()
    }

    /// What runs, for the overviews of both ends.
    pub fn running(&self) -> Vec<Activity> {
        let mut v: Vec<Activity> = self
            .sending
            .values()
            .map(|s| Activity::Copying(s.name.clone()))
            .chain(
                self.receiving
                    .values()
                    .map(|r| Activity::Receiving(r.name.clone())),
            )
            .collect();
        if !self.queue.is_empty() {
            v.push(Activity::Waiting(self.queue.len() as u64));
        }
        v
    }

    /// Sends the file or folder at `path` as request `request`: every
    /// file is offered in turn. Returns how many files it holds.
    pub fn send(
        &mut self,
        request: u64,
        path: &Path,
        numbers: &mut ChannelNumbers,
    ) -> Result<u64, FileError> {
        let list = files::walk::files(path)?;
        let n = list.len() as u64;
        let batch = self.batches.entry(request).or_default();
        batch.listed = true;
        batch.open += n;
        for (components, path, _) in list {
            self.queue.push_back(Queued {
                request,
                components,
                path,
            });
        }
        self.start_queued(numbers);
        self.check_finished(request);
        Ok(n)
    }

    fn start_queued(&mut self, numbers: &mut ChannelNumbers) {
        while self.sending.len() < MAX_ACTIVE {
            let Some(q) = self.queue.pop_front() else {
                return;
            };
            self.ids += 1;
            let id = self.ids;
            let name = q.components.join("/");
            if let Some(b) = self.batches.get_mut(&q.request) {
                b.offered += 1;
            }
            match files::Sender::open(&q.path) {
                Ok(sender) => {
                    let channel = numbers.allocate();
                    let size = sender.size();
                    self.out.open(channel, ChannelKind::File);
                    self.out
                        .command(lifeline_session::live::Command::Work(Work::Offer {
                            id,
                            request: q.request,
                            channel,
                            path: q.components,
                            size,
                        }));
                    self.sending.insert(
                        id,
                        Sending {
                            channel,
                            request: q.request,
                            name,
                            size,
                            sender: Some(sender),
                            pump: None,
                            sha256: String::new(),
                        },
                    );
                }
                Err(e) => {
                    self.done(Ended::new(
                        true,
                        id,
                        q.request,
                        name,
                        0,
                        Outcome::Failed,
                        e.to_string(),
                    ));
                }
            }
        }
    }

    fn done(&mut self, ended: Ended) {
        let (outgoing, request) = (ended.outgoing, ended.request);
        let _ = self.notes.send(Note::Done(ended));
        if outgoing && let Some(b) = self.batches.get_mut(&request) {
            b.open = b.open.saturating_sub(1);
            self.check_finished(request);
        }
    }

    fn check_finished(&mut self, request: u64) {
        if let Some(b) = self.batches.get(&request)
            && b.listed
            && b.open == 0
        {
            let files = b.offered;
            self.batches.remove(&request);
            self.out
                .command(lifeline_session::live::Command::Work(Work::Finished {
                    request,
                    files,
                }));
            let _ = self.notes.send(Note::Finished { request, files });
        }
    }

    /// The receiver's answer to our offer: start pumping from where it
    /// can use the bytes.
    pub fn on_accept(&mut self, id: u64, offset: u64, partial_sha256: &str) {
        let Some(s) = self.sending.get_mut(&id) else {
            return;
        };
        let Some(sender) = s.sender.take() else {
            return;
        };
        let pump = Pump {
            id,
            channel: s.channel,
            name: s.name.clone(),
            size: s.size,
            out: self.out.clone(),
            notes: self.notes.clone(),
        };
        let reports = self.reports.clone();
        let partial = partial_sha256.to_owned();
        let task = tokio::spawn(async move {
            let result = pump.run(sender, offset, partial).await;
            let _ = reports.send(Report::Pumped(id, result));
        });
        s.pump = Some(task.abort_handle());
    }

    /// What the pumps and the disk thread report.
    pub fn report(&mut self, report: Report) {
        match report {
            Report::Pumped(id, result) => self.pumped(id, result),
            Report::Disk(Done::Prepared { id, result }) => self.prepared(id, result),
            Report::Disk(Done::Failed { id, why }) => self.fail_receiving(id, why),
            Report::Disk(Done::Finished { id, result }) => self.finished(id, result),
        }
    }

    /// A pump finished reading (its hash) or failed.
    fn pumped(&mut self, id: u64, result: Result<String, String>) {
        let Some(s) = self.sending.get_mut(&id) else {
            return;
        };
        match result {
            Ok(sha256) => {
                s.sha256 = sha256.clone();
                self.out
                    .command(lifeline_session::live::Command::Work(Work::Sent {
                        id,
                        sha256,
                    }));
            }
            Err(why) => {
                let channel = s.channel;
                self.out.reset(channel, &why);
                self.fail_sending(id, Outcome::Failed, why);
            }
        }
    }

    fn fail_sending(&mut self, id: u64, outcome: Outcome, detail: String) {
        if let Some(s) = self.sending.remove(&id) {
            if let Some(p) = s.pump {
                p.abort();
            }
            self.done(
                Ended::new(true, id, s.request, s.name, s.size, outcome, detail).hash(s.sha256),
            );
        }
    }

    /// The receiver's verdict on our file.
    pub fn on_saved(
        &mut self,
        id: u64,
        ok: bool,
        saved_as: &str,
        detail: &str,
        numbers: &mut ChannelNumbers,
    ) {
        if let Some(s) = self.sending.remove(&id) {
            let outcome = if ok { Outcome::Saved } else { Outcome::Failed };
            self.done(
                Ended::new(
                    true,
                    id,
                    s.request,
                    s.name,
                    s.size,
                    outcome,
                    detail.to_owned(),
                )
                .hash(s.sha256)
                .saved_as(saved_as.to_owned()),
            );
        }
        self.start_queued(numbers);
    }

    /// The receiver refused our offer `id` (or one of ours was refused
    /// for a reason), or we stop it.
    pub fn on_refused(&mut self, id: u64, reason: &str, numbers: &mut ChannelNumbers) -> bool {
        let Some(s) = self.sending.get(&id) else {
            return false;
        };
        let (channel, request) = (s.channel, s.request);
        self.out.reset(channel, reason);
        self.fail_sending(id, Outcome::Refused, reason.to_owned());
        // The rest of the same send would only be refused (or asked about)
        // again, file after file.
        let before = self.queue.len();
        self.queue.retain(|q| q.request != request);
        let dropped = (before - self.queue.len()) as u64;
        if let Some(b) = self.batches.get_mut(&request) {
            b.open = b.open.saturating_sub(dropped);
        }
        self.check_finished(request);
        self.start_queued(numbers);
        true
    }

    /// Stops every transfer of `request` (ours or theirs), and what waits.
    pub fn stop_request(&mut self, request: u64, why: &str, numbers: &mut ChannelNumbers) {
        self.queue.retain(|q| q.request != request);
        if let Some(b) = self.batches.get_mut(&request) {
            b.open = self
                .sending
                .values()
                .filter(|s| s.request == request)
                .count() as u64;
        }
        let ids: Vec<u64> = self
            .sending
            .iter()
            .filter(|(_, s)| s.request == request)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(s) = self.sending.get(&id) {
                self.out.reset(s.channel, why);
            }
            self.fail_sending(id, Outcome::Stopped, why.to_owned());
        }
        let theirs: Vec<u64> = self
            .receiving
            .iter()
            .filter(|(_, r)| r.request == request)
            .map(|(id, _)| *id)
            .collect();
        for id in theirs {
            self.stop_receiving(id, why);
        }
        self.start_queued(numbers);
    }

    /// Stops everything (withdrawn, the session is over).
    pub fn stop_all(&mut self, why: &str, numbers: &mut ChannelNumbers) {
        let requests: Vec<u64> = self
            .sending
            .values()
            .map(|s| s.request)
            .chain(self.queue.iter().map(|q| q.request))
            .chain(self.receiving.values().map(|r| r.request))
            .collect();
        for r in requests {
            self.stop_request(r, why, numbers);
        }
    }

    /// Stops what this end sends (reading files was withdrawn).
    pub fn stop_sending(&mut self, why: &str, numbers: &mut ChannelNumbers) {
        let requests: Vec<u64> = self
            .sending
            .values()
            .map(|s| s.request)
            .chain(self.queue.iter().map(|q| q.request))
            .collect();
        for r in requests {
            self.queue.retain(|q| q.request != r);
            let ids: Vec<u64> = self
                .sending
                .iter()
                .filter(|(_, s)| s.request == r)
                .map(|(i, _)| *i)
                .collect();
            for id in ids {
                if let Some(s) = self.sending.get(&id) {
                    self.out.reset(s.channel, why);
                }
                self.fail_sending(id, Outcome::Stopped, why.to_owned());
            }
        }
        let _ = numbers;
    }

    /// Stops what this end receives (sending files to it was withdrawn).
    pub fn stop_receiving_all(&mut self, why: &str) {
        let ids: Vec<u64> = self.receiving.keys().copied().collect();
        for id in ids {
            self.stop_receiving(id, why);
        }
    }

    fn stop_receiving(&mut self, id: u64, why: &str) {
        if let Some(r) = self.receiving.remove(&id) {
            self.by_channel.remove(&r.channel);
            self.out.reset(r.channel, why);
            // Its partial copy is kept: the same file offered again
            // resumes from it.
            self.disk.submit(Job::Abandon { id });
            self.done(Ended::new(
                false,
                id,
                r.request,
                r.name,
                r.size,
                Outcome::Stopped,
                why.to_owned(),
            ));
        }
    }

    /// The other end restarted: nothing of ours or theirs goes on (partial
    /// files are kept for a resume).
    pub fn forget_all(&mut self, why: &str) {
        for (id, s) in std::mem::take(&mut self.sending) {
            if let Some(p) = s.pump {
                p.abort();
            }
            self.done(Ended::new(
                true,
                id,
                s.request,
                s.name,
                s.size,
                Outcome::Stopped,
                why.to_owned(),
            ));
        }
        self.queue.clear();
        self.batches.clear();
        for (id, r) in std::mem::take(&mut self.receiving) {
            self.disk.submit(Job::Abandon { id });
            self.done(Ended::new(
                false,
                id,
                r.request,
                r.name,
                r.size,
                Outcome::Stopped,
                why.to_owned(),
            ));
        }
        self.by_channel.clear();
    }

    /// Refuses an offered file (the receiving side said no, or cannot).
    pub fn refuse(
        &mut self,
        id: u64,
        request: u64,
        channel: u32,
        path: &[String],
        size: u64,
        reason: &str,
    ) {
        // The refusal first: the sender learns why before its channel goes.
        self.out
            .command(lifeline_session::live::Command::Work(Work::Refused {
                id,
                reason: reason.to_owned(),
            }));
        self.out.reset(channel, reason);
        self.done(Ended::new(
            false,
            id,
            request,
            path.join("/"),
            size,
            Outcome::Refused,
            reason.to_owned(),
        ));
    }

    /// Accepts an offered file into `root`: the disk thread finds its
    /// place, and [`Report::Disk`] brings what a partial copy there holds
    /// for the answer.
    pub fn receive(
        &mut self,
        id: u64,
        request: u64,
        channel: u32,
        path: &[String],
        size: u64,
        root: &Path,
    ) {
        self.disk.submit(Job::Prepare {
            id,
            root: root.to_path_buf(),
            path: path.to_vec(),
            size,
        });
        self.by_channel.insert(channel, id);
        self.receiving.insert(
            id,
            Receiving {
                channel,
                request,
                path: path.to_vec(),
                name: path.join("/"),
                size,
                prepared: false,
                begun: false,
                closed: false,
                finishing: false,
                sha256: None,
                received: 0,
                progress: Meter::new(0),
            },
        );
    }

    /// The disk thread prepared a file: accept it from what it holds, or
    /// refuse it.
    fn prepared(&mut self, id: u64, result: Result<(u64, String), String>) {
        let Some(r) = self.receiving.get_mut(&id) else {
            // Stopped meanwhile.
            self.disk.submit(Job::Abandon { id });
            return;
        };
        match result {
            Ok((offset, partial_sha256)) => {
                r.prepared = true;
                r.received = offset;
                r.progress = Meter::new(offset);
                self.out.register(r.channel, ChannelKind::File);
                self.out
                    .command(lifeline_session::live::Command::Work(Work::Accept {
                        id,
                        offset,
                        partial_sha256,
                    }));
            }
            Err(why) => {
                if let Some(r) = self.receiving.remove(&id) {
                    self.by_channel.remove(&r.channel);
                    self.refuse(id, r.request, r.channel, &r.path, r.size, &why);
                }
            }
        }
    }

    /// The sender starts at `offset`.
    pub fn on_from(&mut self, id: u64, offset: u64) {
        let Some(r) = self.receiving.get_mut(&id) else {
            return;
        };
        if !r.prepared || r.begun {
            let why = "the sender said twice where it starts".to_owned();
            return self.fail_receiving(id, why);
        }
        self.disk.submit(Job::Begin { id, from: offset });
        r.begun = true;
        // More than we hold: the disk thread refuses it.
        r.received = offset;
        r.progress = Meter::new(offset);
        let _ = self.notes.send(Note::Started {
            outgoing: false,
            id,
            name: r.name.clone(),
            size: r.size,
            from: offset,
        });
        self.try_finish(id);
    }

    /// The sender's hash of the whole file.
    pub fn on_sent(&mut self, id: u64, sha256: String) {
        if let Some(r) = self.receiving.get_mut(&id) {
            r.sha256 = Some(sha256);
            self.try_finish(id);
        }
    }

    /// Data on a channel: the disk thread writes a transfer's (and only
    /// then opens the channel's window); the data of any other channel
    /// is handed back.
    pub fn on_data(&mut self, channel: u32, data: Bytes) -> Option<Bytes> {
        let Some(&id) = self.by_channel.get(&channel) else {
            return Some(data);
        };
        let len = data.len() as u64;
        let why = match self.receiving.get_mut(&id) {
            Some(r) if r.begun && !r.finishing && r.received.saturating_add(len) <= r.size => {
                self.disk.submit(Job::Write { id, channel, data });
                r.received += len;
                if let Some(n) = r
                    .progress
                    .note(false, id, &r.name, r.received, r.size, false)
                {
                    let _ = self.notes.send(n);
                }
                if r.received == r.size {
                    self.try_finish(id);
                }
                return None;
            }
            Some(r) if r.begun => FileError::TooLong { size: r.size }.to_string(),
            Some(_) => "the sender sent data before saying where it starts".to_owned(),
            None => String::new(),
        };
        self.out.consumed(channel, data.len());
        if !why.is_empty() {
            self.fail_receiving(id, why);
        }
        None
    }

    /// The sender closed a channel: true if it was a transfer's.
    pub fn on_closed(&mut self, channel: u32) -> bool {
        let Some(&id) = self.by_channel.get(&channel) else {
            return false;
        };
        if let Some(r) = self.receiving.get_mut(&id) {
            r.closed = true;
        }
        self.try_finish(id);
        true
    }

    /// The peer reset a channel: true if it was a transfer's.
    pub fn on_reset(&mut self, channel: u32, reason: &str, numbers: &mut ChannelNumbers) -> bool {
        if let Some(id) = self.by_channel.remove(&channel) {
            if let Some(r) = self.receiving.remove(&id) {
                self.disk.submit(Job::Abandon { id });
                self.done(Ended::new(
                    false,
                    id,
                    r.request,
                    r.name,
                    r.size,
                    Outcome::Stopped,
                    reason.to_owned(),
                ));
            }
            return true;
        }
        let id = self
            .sending
            .iter()
            .find(|(_, s)| s.channel == channel)
            .map(|(id, _)| *id);
        if let Some(id) = id {
            self.fail_sending(id, Outcome::Stopped, reason.to_owned());
            self.start_queued(numbers);
            return true;
        }
        false
    }

    fn fail_receiving(&mut self, id: u64, why: String) {
        if let Some(r) = self.receiving.remove(&id) {
            self.by_channel.remove(&r.channel);
            self.out.reset(r.channel, &why);
            self.disk.submit(Job::Abandon { id });
            self.out
                .command(lifeline_session::live::Command::Work(Work::Saved {
                    id,
                    ok: false,
                    saved_as: String::new(),
                    detail: why.clone(),
                }));
            self.done(Ended::new(
                false,
                id,
                r.request,
                r.name,
                r.size,
                Outcome::Failed,
                why,
            ));
        }
    }

    /// Once the sender's hash and every byte (or the close) are in, the
    /// disk thread checks and saves the file ([`Report::Disk`] says how).
    fn try_finish(&mut self, id: u64) {
        let Some(r) = self.receiving.get_mut(&id) else {
            return;
        };
        let complete = r.begun && !r.finishing && (r.closed || r.received == r.size);
        let Some(sha256) = r.sha256.clone().filter(|_| complete) else {
            return;
        };
        r.finishing = true;
        self.by_channel.remove(&r.channel);
        // Our (unused) half of the channel: closing it lets both ends
        // forget the channel.
        self.out.close(r.channel);
        if let Some(n) = r
            .progress
            .note(false, id, &r.name, r.received, r.size, true)
        {
            let _ = self.notes.send(n);
        }
        self.disk.submit(Job::Finish { id, sha256 });
    }

    /// The disk thread checked and saved a file (or found it wrong).
    fn finished(&mut self, id: u64, result: Result<PathBuf, String>) {
        let Some(r) = self.receiving.remove(&id) else {
            return;
        };
        let (ok, saved_as, detail, outcome) = match result {
            Ok(path) => (
                true,
                path.display().to_string(),
                String::new(),
                Outcome::Saved,
            ),
            Err(e) => (false, String::new(), e, Outcome::Failed),
        };
        self.out
            .command(lifeline_session::live::Command::Work(Work::Saved {
                id,
                ok,
                saved_as: saved_as.clone(),
                detail: detail.clone(),
            }));
        self.done(
            Ended::new(false, id, r.request, r.name, r.size, outcome, detail)
                .hash(r.sha256.unwrap_or_default())
                .saved_as(saved_as),
        );
    }
}
