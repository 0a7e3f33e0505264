//! The session core: one end of a live session as a sans-IO state machine
//! (the quinn-proto shape). No tokio, no sockets, no clock of its own: the
//! driver ([`crate::live`]) passes `now` in, performs the [`Action`]s it
//! asks for, and feeds back what happened.
//!
//! Everything that decides is here: chat, pings and round-trip times,
//! dead-path detection, ending, the channels with their flow control and
//! priorities, the link test, going direct (when to start, which proven
//! path to take, the path report), and the cutover.
//!
//! # Paths and the cutover
//!
//! The driver gives every established path a [`PathId`] ([`RELAY`] for the
//! one the session starts on). The core says where frames go (every
//! [`Action::Send`] names its path; [`Core::poll_bulk`] uses the current
//! one) and which single path the driver reads ([`Core::reading`]). To
//! move, this end writes `Switch{id}` as the last frame on the old path and
//! everything after it on the new one; the peer reads the old path up to
//! that marker and only then the new one — so no frame is lost, duplicated
//! or reordered. Once both directions have moved, the old path is closed.
//! The console decides which proven path the session takes (after its
//! [`Action::Report`] to the portal, or [`REPORT_TIMEOUT`]); the applet
//! follows the console's `Switch`.
//!
//! # Losing a path
//!
//! When the path in use dies the core asks for [`Action::Reconnect`]; the
//! driver hands it the new relay connection ([`Core::handle_relay_restored`])
//! and both ends resume (see [`resume`]). [`REDIRECT_AFTER`] later (doubled
//! for every further direct path lost) the core starts going direct again:
//! [`Action::StartNegotiation`], which the driver runs with a negotiator
//! for the new relay connection.
//!
//! # Call order
//!
//! 1. [`Core::new`].
//! 2. Feed inputs as they happen: [`Core::handle_frame`] for every frame
//!    read from [`Core::reading`], [`Core::handle_path_closed`],
//!    [`Core::handle_command`], [`Core::handle_path_ready`],
//!    [`Core::handle_path_failed`], [`Core::handle_negotiation_send`],
//!    [`Core::handle_reported`], and [`Core::handle_timeout`] when
//!    [`Core::poll_timeout`]'s instant has come.
//! 3. After each input, drain [`Core::poll_action`] until `None`, and pull
//!    bulk data with [`Core::poll_bulk`] while the current path's bulk
//!    queue has room.
//! 4. Stop once [`Core::finished`] is `Some` and the actions are drained.

pub mod channels;
pub mod pacing;
pub mod resume;
pub mod role;
#[cfg(test)]
mod tests;

use crate::linktest::{self, Direction, Receiver, TestSource};
use channels::{Channels, Outgoing, Produced};
use lifeline_protocol::e2e::{
    ChannelFrame, ChannelKind, Control, EndedBy, Frame, Negotiation, Priority, TestFrame,
};
use lifeline_protocol::path::PathKind;
use lifeline_protocol::work::Work;
pub use resume::{DEAD_PATH, RESUME_WINDOW};
use resume::{Lane, Sequencing};
pub use role::{Role, RoleExt};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// How often each end pings at most (more often with a short
/// [`Config::dead_path`]: four times within it).
pub const PING_INTERVAL: Duration = Duration::from_secs(10);
/// How long the console's path report may take before the cutover goes
/// ahead anyway.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the end that ends the session waits for the other to close.
pub const END_LINGER: Duration = Duration::from_secs(3);
/// How long the applet waits, after the console's `Switch`, to have the
/// path the console moved to.
pub const SWITCH_WAIT: Duration = Duration::from_secs(20);
/// How long a resumed session stays on the relay before it tries going
/// direct again; doubled for every direct path the session lost after
/// the first, up to [`REDIRECT_MAX`] (a direct path that keeps dying is
/// not worth a cutover every few seconds).
pub const REDIRECT_AFTER: Duration = Duration::from_secs(10);
/// The longest wait before going direct again.
pub const REDIRECT_MAX: Duration = Duration::from_secs(300);

/// A path as the driver names it.
pub type PathId = u32;
/// The path every session starts on: the gateway's relay.
pub const RELAY: PathId = 0;

/// What is known of an established path.
#[derive(Debug, Clone, PartialEq)]
pub struct PathInfo {
    /// What it is.
    pub kind: PathKind,
    /// Its id, the same on both ends (see `proof::path_id`); zero for the
    /// relay.
    pub id: [u8; 8],
    /// The peer's address(es), for people.
    pub detail: String,
    /// Round trip measured while setting it up.
    pub rtt: Option<Duration>,
}

impl PathInfo {
    /// The relay the session starts on.
    pub fn relay() -> Self {
        Self {
            kind: PathKind::Relay,
            id: [0; 8],
            detail: "gateway".into(),
            rtt: None,
        }
    }
}

/// What the local user asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send a chat line.
    Say(String),
    /// End the session with a reason.
    End(String),
    /// Run a link test of `bytes` in `direction`.
    LinkTest {
        /// Bytes to move.
        bytes: u64,
        /// Which way.
        direction: Direction,
    },
    /// Send one byte on an interactive echo channel and time its return.
    Probe,
    /// Send a remote-work message.
    Work(Work),
    /// Open channel `channel` of `kind` (an application's channel:
    /// numbered from [`channels::APP_CHANNELS`] with this end's parity).
    Open {
        /// Its number.
        channel: u32,
        /// What it carries.
        kind: ChannelKind,
    },
    /// Queue bytes on an open channel. The application keeps what it
    /// queues bounded: [`Event::ChannelSent`] says what left.
    Write {
        /// The channel.
        channel: u32,
        /// The bytes.
        data: bytes::Bytes,
    },
    /// Nothing more will be written on `channel`; it half-closes once
    /// what is queued has gone.
    Close {
        /// The channel.
        channel: u32,
    },
    /// Abandon `channel` at once, both ways.
    Reset {
        /// The channel.
        channel: u32,
        /// Why, for the other end.
        reason: String,
    },
    /// The application is done with `bytes` of the data that arrived on
    /// `channel`: the peer may send that much more.
    Consumed {
        /// The channel.
        channel: u32,
        /// Bytes.
        bytes: u32,
    },
    /// Console: hand the session to a colleague's console, which will
    /// prove `console_pin` ([`Event::HandedOver`] when the applet took it).
    Handover {
        /// SHA-256 of the new console certificate's SPKI.
        console_pin: [u8; 32],
        /// The colleague's display name.
        technician: String,
    },
    /// Applet: the [`Event::Handover`] is applied; tell the console.
    TookHandover,
}

/// What happened on the session.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The peer sent a chat line.
    Chat(String),
    /// A round trip was measured on the path in use.
    Rtt(PathKind, Duration),
    /// The session moved to a direct path.
    PathChanged {
        /// The new path.
        kind: PathKind,
        /// Its peer address(es).
        detail: String,
        /// Round trip measured while setting it up.
        rtt: Option<Duration>,
    },
    /// Every direct attempt is over: the session stays on the relay.
    StaysOnRelay {
        /// Why, per attempt.
        reason: String,
    },
    /// A link test started.
    TestStarted {
        /// Which way.
        direction: Direction,
        /// Bytes announced.
        bytes: u64,
    },
    /// A link test ended (as the receiving end judged it).
    TestDone {
        /// Which way.
        direction: Direction,
        /// Every byte arrived, once, in order.
        ok: bool,
        /// Bytes received.
        bytes: u64,
        /// Seconds from start to the verdict.
        secs: f64,
        /// The first problem, or "".
        detail: String,
    },
    /// A probe's byte came back.
    ProbeRtt(Duration),
    /// The path in use died; both ends are reconnecting through the
    /// gateway (the session goes on if they meet within the resume window).
    Reconnecting {
        /// What happened, in plain words.
        why: String,
    },
    /// The peer sent a remote-work message.
    Work(Work),
    /// Applet: the technician hands the session to a colleague, whose
    /// console will prove `console_pin`; apply it, then
    /// [`Command::TookHandover`].
    Handover {
        /// SHA-256 of the new console certificate's SPKI.
        console_pin: [u8; 32],
        /// The colleague's display name.
        technician: String,
    },
    /// Console: the applet took the handover; this console may leave.
    HandedOver,
    /// The peer opened an application channel.
    ChannelOpened {
        /// Its number.
        channel: u32,
        /// What it carries.
        kind: ChannelKind,
    },
    /// Data arrived on an application channel; say when it is used
    /// ([`Command::Consumed`]).
    ChannelData {
        /// The channel.
        channel: u32,
        /// The bytes.
        data: bytes::Bytes,
    },
    /// The peer will send no more on an application channel.
    ChannelClosed {
        /// The channel.
        channel: u32,
    },
    /// An application channel was abandoned (by the peer, or refused
    /// here).
    ChannelReset {
        /// The channel.
        channel: u32,
        /// Why.
        reason: String,
    },
    /// Bytes queued on an application channel left for the path: that
    /// much more may be queued.
    ChannelSent {
        /// The channel.
        channel: u32,
        /// Bytes.
        bytes: usize,
    },
    /// The session goes on over a new relay connection.
    Resumed {
        /// The other end had restarted (the technician's console was
        /// closed and opened again): what ran on the session's channels
        /// (a link test, the application's channels) was stopped; the
        /// session itself goes on.
        fresh: bool,
    },
}

/// How the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Who ended it.
    pub by: EndedBy,
    /// Why.
    pub reason: String,
    /// Whether we ended it (rather than the peer).
    pub local: bool,
}

/// A change of path, as the console reports it before acting on it.
#[derive(Debug, Clone, PartialEq)]
pub struct PathChange {
    /// The path the session moves to (or stays on).
    pub kind: PathKind,
    /// Round trip measured on it.
    pub rtt: Option<Duration>,
    /// The addresses used, or why no direct path was found.
    pub detail: String,
}

/// Why a session stopped without an `End`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The path in use closed without an `End`.
    #[error("the other side disconnected without ending the session")]
    PeerGone,
    /// Nothing heard for [`Config::dead_path`] (and no resumption).
    #[error("the other side stopped answering")]
    Silent,
    /// The path died and the ends did not meet again within the resume
    /// window.
    #[error("the connection was lost ({0}) and could not be restored in time")]
    NotResumed(String),
    /// Reconnecting found the session cannot go on (it was ended
    /// meanwhile): the reason, in plain words.
    #[error("{0}")]
    Over(String),
    /// Reading or writing the path in use failed.
    #[error("the session's connection failed: {0}")]
    PathFailed(String),
    /// The peer broke the protocol.
    #[error("the other side broke the session protocol: {0}")]
    Protocol(&'static str),
    /// More channels than [`channels::MAX_CHANNELS`].
    #[error("too many channels are open")]
    TooManyChannels,
    /// A link test found lost, duplicated or reordered data.
    #[error("the link test found lost, duplicated or reordered data")]
    LinkTestFailed,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write `frame` on `path`, ahead of bulk data queued there.
    Send {
        /// Where.
        path: PathId,
        /// What.
        frame: Frame,
    },
    /// Flush what is queued on `path`, then close it (and stop reading it).
    ClosePath(PathId),
    /// Hand a going-direct frame from the peer to the negotiator.
    Negotiate(Negotiation),
    /// Start going direct (the negotiator's opening, if any, comes back
    /// through [`Core::handle_negotiation_send`]).
    StartNegotiation,
    /// Stop every direct attempt.
    StopNegotiation,
    /// Console: record this path change at the portal, then call
    /// [`Core::handle_reported`] with `report`.
    Report {
        /// Which report this is (its answer names it).
        report: u64,
        /// What to record.
        change: PathChange,
    },
    /// Tell the user.
    Event(Event),
    /// The path in use died: reconnect through the gateway and give the
    /// new relay connection to [`Core::handle_relay_restored`] (or say it
    /// is hopeless with [`Core::handle_reconnect_failed`]).
    Reconnect,
}

/// Set-up of a core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// When going direct starts, after the session does.
    pub negotiate_after: Duration,
    /// Console: direct paths are off altogether (why, for the report).
    pub relay_only: Option<String>,
    /// How data is scheduled; the binaries always use the default, the
    /// `channels` benchmark measures the others as references.
    pub scheduling: Scheduling,
    /// Silence after which the path in use counts as dead.
    pub dead_path: Duration,
    /// How long a session whose path died may take to resume (`None`: it
    /// ends at once, as it must when there is no gateway to meet at).
    pub resume_window: Option<Duration>,
    /// This run's identity in [`Control::Resume`]: random, so that a peer
    /// that restarted is told apart from one that kept its state.
    pub incarnation: u64,
    /// How long after a resumption going direct starts again (see
    /// [`REDIRECT_AFTER`]).
    pub redirect_after: Duration,
}

impl Config {
    /// Defaults for a session that starts going direct after
    /// `negotiate_after` and cannot resume.
    pub fn new(negotiate_after: Duration, incarnation: u64) -> Self {
        Self {
            negotiate_after,
            relay_only: None,
            scheduling: Scheduling::default(),
            dead_path: DEAD_PATH,
            resume_window: None,
            incarnation,
            redirect_after: REDIRECT_AFTER,
        }
    }
}

/// How the core schedules channel data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scheduling {
    /// Interactive data goes out with control frames, ahead of bulk, and
    /// bulk data in flight is capped by [`pacing`].
    #[default]
    PacedPriorities,
    /// Priorities without the bulk pacing (a benchmark reference).
    Priorities,
    /// All data in one queue and no pacing, as before channels had
    /// classes (a benchmark reference).
    OneQueue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Live,
    /// We sent `End` and closed our side: waiting for the peer's close.
    Ending {
        outcome: Outcome,
        until: Instant,
    },
    /// The path in use died: waiting for the relay to be restored and then
    /// for the peer's `Resume` on it, until `until`.
    Reconnecting {
        why: String,
        lost: PathKind,
        until: Instant,
    },
    Done,
}

/// The console's record of its direct attempts.
#[derive(Debug, Default)]
struct Attempts {
    tcp: Option<String>,
    udp: Option<String>,
    reported: bool,
}

/// What the console does once its path report is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reported {
    /// Move to this proven path.
    Switch(PathId),
    /// Tell the user the session stays on the relay, and why.
    StayOnRelay(String),
    /// Nothing more: the resumed relay is recorded.
    Resumed,
}

/// The link test this end receives.
#[derive(Debug)]
struct Incoming {
    channel: u32,
    direction: Direction,
    receiver: Receiver,
}

/// One end of a live session. See the module doc for the call order.
#[derive(Debug)]
pub struct Core {
    role: Role,
    start: Instant,
    phase: Phase,
    finished: Option<Result<Outcome, SessionError>>,
    paths: BTreeMap<PathId, PathInfo>,
    out: PathId,
    read: Option<PathId>,
    /// The path we moved our writing from, until both directions moved.
    old: Option<PathId>,
    switched: bool,
    peer_switched: bool,
    /// Applet: the console moved to a path we do not have yet.
    awaited: Option<([u8; 8], Instant)>,
    /// Console: what waits for the path report to be recorded, until
    /// when, and that report's number.
    pending: Option<(Reported, Instant, u64)>,
    /// Console: path reports asked for so far.
    reports: u64,
    negotiate_at: Option<Instant>,
    attempts: Attempts,
    /// Console: direct paths are off altogether (never tried again).
    relay_only: bool,
    /// Direct paths the session lost (each doubles the wait before going
    /// direct again).
    direct_losses: u32,
    redirect_after: Duration,
    last_heard: Instant,
    next_ping: Instant,
    channels: Channels,
    /// Link-test parameters announced before the channel's data.
    incoming: Option<Incoming>,
    /// The link test we send: its channel, direction and start.
    outgoing: Option<(u32, Direction, Instant)>,
    seeds: u64,
    /// The probe channel, and when each probe byte left.
    probe: Option<u32>,
    probes: VecDeque<Instant>,
    scheduling: Scheduling,
    pacing: pacing::Pacing,
    /// Grants per channel and an acknowledgement earned and not yet sent
    /// (see [`Core::poll_action`]).
    owed_credit: BTreeMap<u32, u32>,
    owed_ack: Option<Frame>,
    seq: Sequencing,
    dead_path: Duration,
    resume_window: Option<Duration>,
    actions: VecDeque<Action>,
}

impl Core {
    /// A session that has just become live on the relay at `now`.
    pub fn new(role: Role, now: Instant, config: Config) -> Self {
        let mut core = Self {
            role,
            start: now,
            phase: Phase::Live,
            finished: None,
            paths: BTreeMap::from([(RELAY, PathInfo::relay())]),
            out: RELAY,
            read: Some(RELAY),
            old: None,
            switched: false,
            peer_switched: false,
            awaited: None,
            pending: None,
            reports: 0,
            negotiate_at: Some(now + config.negotiate_after),
            attempts: Attempts::default(),
            relay_only: config.relay_only.is_some(),
            direct_losses: 0,
            redirect_after: config.redirect_after,
            last_heard: now,
            next_ping: now,
            channels: Channels::new(role.first_channel()),
            incoming: None,
            outgoing: None,
            seeds: 0,
            probe: None,
            probes: VecDeque::new(),
            scheduling: config.scheduling,
            pacing: pacing::Pacing::default(),
            owed_credit: BTreeMap::new(),
            owed_ack: None,
            seq: Sequencing::new(config.incarnation),
            dead_path: config.dead_path,
            resume_window: config.resume_window,
            actions: VecDeque::new(),
        };
        // The first frame each way says who we are (see `resume`).
        let hello = core.seq.resume_frame();
        core.send(hello);
        if role.decides_path()
            && let Some(why) = config.relay_only
        {
            core.attempts.tcp = Some(why.clone());
            core.attempts.udp = Some(why);
            core.report_if_all_failed(now);
        }
        core
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        if self.actions.is_empty() {
            self.send_owed();
        }
        self.actions.pop_front()
    }

    /// Sends the grants and the acknowledgement that frames handled since
    /// the last call earned: one of each for a batch of frames, not one
    /// per frame (each is a small write on the way back).
    fn send_owed(&mut self) {
        if !matches!(self.phase, Phase::Live | Phase::Reconnecting { .. }) {
            // Ending or ended: the path is closing, nothing more goes out.
            self.owed_credit.clear();
            self.owed_ack = None;
            return;
        }
        for (channel, bytes) in std::mem::take(&mut self.owed_credit) {
            self.send(Frame::Channel(ChannelFrame::Credit { channel, bytes }));
        }
        if let Some(due) = self.owed_ack.take() {
            // A later one says more, if frames came since.
            let ack = self.seq.ack_if_any().unwrap_or(due);
            self.send(ack);
        }
    }

    /// When [`Core::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Done {
            return None;
        }
        match self.phase {
            Phase::Ending { until, .. } | Phase::Reconnecting { until, .. } => return Some(until),
            _ => {}
        }
        [
            Some(self.next_ping),
            self.dead_at(),
            self.negotiate_at,
            self.pending.as_ref().map(|(_, t, _)| *t),
            self.awaited.map(|(_, t)| t),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The path the driver reads now (`None`: none yet — the applet waits
    /// for the path the console moved to).
    pub fn reading(&self) -> Option<PathId> {
        (self.phase != Phase::Done).then_some(self.read).flatten()
    }

    /// When the path we read counts as dead if nothing comes (not while
    /// we wait for the path the console moved to: that has its own wait).
    fn dead_at(&self) -> Option<Instant> {
        (self.phase == Phase::Live && self.read.is_some())
            .then_some(self.last_heard + self.dead_path)
    }

    /// The path our frames go out on.
    pub fn current(&self) -> PathId {
        self.out
    }

    /// What the path our frames go out on is.
    pub fn current_kind(&self) -> PathKind {
        self.paths
            .get(&self.out)
            .map_or(PathKind::Relay, |p| p.kind)
    }

    /// How the session ended, once it has.
    pub fn finished(&self) -> Option<&Result<Outcome, SessionError>> {
        self.finished.as_ref()
    }

    /// The next bulk frame for the current path, if a channel has data
    /// and credit. The driver asks while the path's bulk queue has room.
    pub fn poll_bulk(&mut self) -> Option<(PathId, Frame)> {
        if self.phase != Phase::Live {
            return None;
        }
        // Bytes of channels that are gone will never be granted back:
        // they no longer count as in flight.
        self.pacing.forgive(self.channels.take_forgiven());
        let mut limit = lifeline_protocol::e2e::MAX_DATA;
        if self.scheduling == Scheduling::PacedPriorities {
            // A keystroke's budget while an interactive channel is open;
            // a chat line's otherwise (see `pacing`).
            let target = if self.channels.any_open(Priority::Interactive) {
                pacing::QUEUE_TARGET
            } else {
                pacing::CHAT_QUEUE_TARGET
            };
            if !self.pacing.may_send(target) {
                tracing::trace!(cap = self.pacing.cap(target), "bulk paced");
                return None;
            }
            limit = self.pacing.frame_limit(target);
        }
        if self.seq.full() {
            tracing::trace!("bulk waits for acknowledgements");
            // Until the peer acknowledges: what is not acknowledged must
            // stay resendable, and that buffer is bounded.
            return None;
        }
        let produced = match self.scheduling {
            Scheduling::OneQueue => self
                .channels
                .next_data(Priority::Interactive)
                .or_else(|| self.channels.next_data(Priority::Bulk))?,
            _ => self.channels.next_data_within(Priority::Bulk, limit)?,
        };
        if let Produced::Data {
            priority: Priority::Bulk,
            data,
            ..
        } = &produced
        {
            self.pacing.sent(data.len());
        }
        // Classified before `frame_of`, which may forget a closed channel.
        let lane = match &produced {
            Produced::Data { priority, .. } if *priority != Priority::Bulk => Lane::Control,
            Produced::Close(c) if self.channels.priority(*c) != Some(Priority::Bulk) => {
                Lane::Control
            }
            _ => Lane::Bulk,
        };
        let frame = self.frame_of(produced);
        self.seq.on_send(lane, &frame);
        Some((self.out, frame))
    }

    fn frame_of(&mut self, produced: Produced) -> Frame {
        match produced {
            Produced::Data { channel, data, .. } => {
                if channel >= channels::APP_CHANNELS
                    && self.channels.kind(channel).is_some_and(channels::is_app)
                {
                    self.event(Event::ChannelSent {
                        channel,
                        bytes: data.len(),
                    });
                }
                Frame::Channel(ChannelFrame::Data { channel, data })
            }
            Produced::Close(channel) => {
                self.channels.we_closed(channel);
                Frame::Channel(ChannelFrame::Close { channel })
            }
        }
    }

    /// Which lane of the sequenced stream `frame` travels on (`None`: not
    /// sequenced). Called before the frame changes a channel's state.
    fn lane_of(&self, frame: &Frame) -> Option<Lane> {
        if !frame.is_sequenced() {
            return None;
        }
        Some(match frame {
            Frame::Channel(ChannelFrame::Data { channel, .. })
            | Frame::Channel(ChannelFrame::Close { channel })
                if self
                    .channels
                    .priority(*channel)
                    .or_else(|| self.channels.reset_priority(*channel))
                    == Some(Priority::Bulk) =>
            {
                Lane::Bulk
            }
            _ => Lane::Control,
        })
    }

    fn send(&mut self, frame: Frame) {
        if let Some(lane) = self.lane_of(&frame) {
            self.seq.on_send(lane, &frame);
        }
        if matches!(self.phase, Phase::Reconnecting { .. }) {
            // No path: a sequenced frame waits in the resend buffer and
            // goes out when the session resumes; anything else belonged to
            // the dead path.
            return;
        }
        self.actions.push_back(Action::Send {
            path: self.out,
            frame,
        });
    }

    /// Sends what is not sequenced and so never resent (the `Resume`).
    fn send_unsequenced(&mut self, path: PathId, frame: Frame) {
        self.actions.push_back(Action::Send { path, frame });
    }

    fn event(&mut self, e: Event) {
        self.actions.push_back(Action::Event(e));
    }

    fn finish(&mut self, result: Result<Outcome, SessionError>) {
        if self.finished.is_none() {
            self.finished = Some(result);
        }
        self.phase = Phase::Done;
        self.actions.push_back(Action::StopNegotiation);
    }

    fn micros(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_micros() as u64
    }

    /// The path in use died (`why`, in plain words): reconnect if the
    /// session may resume, else end with `error`.
    fn lose_path(&mut self, now: Instant, why: String, error: SessionError) {
        let Some(window) = self.resume_window else {
            return self.finish(Err(error));
        };
        tracing::info!(reason = %why, "the session's path died; reconnecting");
        let lost = self.current_kind();
        if lost.is_direct() {
            self.direct_losses += 1;
        }
        for (k, _) in std::mem::take(&mut self.paths) {
            self.actions.push_back(Action::ClosePath(k));
        }
        self.read = None;
        self.old = None;
        self.switched = false;
        self.peer_switched = false;
        self.awaited = None;
        self.pending = None;
        // Going direct again starts after the resumption, with a new
        // negotiator for the new relay connection.
        self.negotiate_at = None;
        self.attempts.reported = true;
        self.actions.push_back(Action::StopNegotiation);
        self.phase = Phase::Reconnecting {
            why: why.clone(),
            lost,
            until: now + window,
        };
        self.actions.push_back(Action::Reconnect);
        self.event(Event::Reconnecting { why });
    }

    /// The relay is back: a new connection through the gateway, its
    /// end-to-end handshake done (the driver named it `path`). The session
    /// goes on once the peer's `Resume` arrives on it.
    pub fn handle_relay_restored(&mut self, now: Instant, path: PathId, info: PathInfo) {
        if !matches!(self.phase, Phase::Reconnecting { .. }) {
            self.actions.push_back(Action::ClosePath(path));
            return;
        }
        self.paths.insert(path, info);
        self.out = path;
        self.read = Some(path);
        self.last_heard = now;
        let hello = self.seq.resume_frame();
        self.send_unsequenced(path, hello);
    }

    /// Reconnecting is hopeless (the session ended meanwhile, say): `why`,
    /// in plain words.
    pub fn handle_reconnect_failed(&mut self, now: Instant, why: String) {
        let _ = now;
        if let Phase::Reconnecting { .. } = &self.phase {
            self.finish(Err(SessionError::Over(why)));
        }
    }

    /// The peer's `Resume`: the first frame of the session and of every
    /// resumption.
    fn on_resume(
        &mut self,
        now: Instant,
        incarnation: u64,
        next: [u64; 2],
    ) -> Result<(), SessionError> {
        let reconnecting = match &self.phase {
            Phase::Reconnecting { why, lost, .. } => Some(if lost.is_direct() {
                format!("fallback to the relay: {why}")
            } else {
                format!("resumed: {why}")
            }),
            _ => None,
        };
        if reconnecting.is_none() && self.seq.peer().is_some() {
            return Err(SessionError::Protocol("a resumption on a live path"));
        }
        let replay = self
            .seq
            .on_resume(incarnation, next, reconnecting.is_some())
            .map_err(|e| SessionError::Protocol(resume_error_text(e)))?;
        let Some(why) = reconnecting else {
            // The session's start: nothing was sent that the peer lacks.
            return Ok(());
        };
        self.phase = Phase::Live;
        self.pacing = pacing::Pacing::default();
        self.next_ping = now;
        let fresh = replay.is_none();
        match replay {
            Some(frames) => {
                for frame in frames {
                    self.actions.push_back(Action::Send {
                        path: self.out,
                        frame,
                    });
                }
            }
            None => self.start_afresh(),
        }
        self.event(Event::Resumed { fresh });
        if !self.relay_only {
            self.negotiate_at = Some(now + self.redirect_delay());
        }
        if self.role.decides_path() {
            // The gateway records that the session is on its relay again,
            // and why it left the path it was on.
            let info = self.paths.get(&self.out).cloned();
            let change = PathChange {
                kind: PathKind::Relay,
                rtt: info.and_then(|i| i.rtt),
                detail: why,
            };
            self.report(now, Reported::Resumed, change);
        }
        Ok(())
    }

    /// How long a resumed session waits before going direct again.
    fn redirect_delay(&self) -> Duration {
        let doublings = self.direct_losses.saturating_sub(1).min(16);
        self.redirect_after
            .saturating_mul(1 << doublings)
            .min(REDIRECT_MAX)
    }

    /// The peer restarted and kept nothing: what rode on the session's
    /// channels is over; the session itself goes on.
    fn start_afresh(&mut self) {
        let over = "the other side restarted".to_owned();
        if let Some(i) = self.incoming.take() {
            self.event(Event::TestDone {
                direction: i.direction,
                ok: false,
                bytes: i.receiver.received(),
                secs: 0.0,
                detail: over.clone(),
            });
        }
        if let Some((_, direction, _)) = self.outgoing.take() {
            self.event(Event::TestDone {
                direction,
                ok: false,
                bytes: 0,
                secs: 0.0,
                detail: over,
            });
        }
        let old = std::mem::replace(&mut self.channels, Channels::new(self.role.first_channel()));
        self.pacing.forgive(old.outstanding());
        self.probe = None;
        self.probes.clear();
    }

    /// Interactive channel data goes out with the control frames.
    fn flush_interactive(&mut self) {
        while self.phase == Phase::Live && self.scheduling != Scheduling::OneQueue {
            let Some(p) = self.channels.next_data(Priority::Interactive) else {
                break;
            };
            let frame = self.frame_of(p);
            self.send(frame);
        }
    }

    /// A frame read from [`Core::reading`].
    pub fn handle_frame(&mut self, now: Instant, path: PathId, frame: Frame) {
        if self.phase == Phase::Done {
            return;
        }
        if Some(path) != self.read {
            return self.finish(Err(SessionError::Protocol("a frame on a path not in use")));
        }
        self.last_heard = now;
        if matches!(self.phase, Phase::Reconnecting { .. })
            && !matches!(frame, Frame::Control(Control::Resume { .. }))
        {
            return self.finish(Err(SessionError::Protocol(
                "a resumed path that does not start with Resume",
            )));
        }
        if let Some(lane) = self.lane_of(&frame)
            && let Some(ack) = self.seq.on_receive(lane, &frame)
        {
            self.owed_ack = Some(ack);
        }
        if let Err(e) = self.on_frame(now, frame) {
            self.finish(Err(e));
        }
        self.flush_interactive();
    }

    fn on_frame(&mut self, now: Instant, frame: Frame) -> Result<(), SessionError> {
        match frame {
            Frame::Control(c) => self.on_control(now, c),
            Frame::Channel(c) => self.on_channel(now, c),
            Frame::Test(t) => self.on_test(now, t),
            Frame::Work(w) => {
                self.event(Event::Work(w));
                Ok(())
            }
            Frame::Negotiation(n) => {
                if !self.switched && !matches!(self.phase, Phase::Ending { .. }) {
                    self.actions.push_back(Action::Negotiate(n));
                }
                Ok(())
            }
            Frame::Handshake(_) => Err(SessionError::Protocol(
                "unexpected frame during the session",
            )),
        }
    }

    fn on_control(&mut self, now: Instant, frame: Control) -> Result<(), SessionError> {
        let ending = matches!(self.phase, Phase::Ending { .. });
        match frame {
            Control::Chat { text } => self.event(Event::Chat(text)),
            Control::Ping(v) => {
                if !ending {
                    self.send(Frame::Control(Control::Pong(v)));
                }
            }
            Control::Pong(v) => {
                let sent = self.start + Duration::from_micros(v);
                if let Some(rtt) = now.checked_duration_since(sent) {
                    self.pacing.rtt(rtt);
                    let kind = self.current_kind();
                    self.event(Event::Rtt(kind, rtt));
                }
            }
            Control::End { by, reason } => {
                self.actions.push_back(Action::ClosePath(self.out));
                self.finish(Ok(Outcome {
                    by,
                    reason,
                    local: false,
                }));
            }
            Control::Switch { path } => self.on_peer_switch(now, path)?,
            // Only a console hands over, and only an applet answers.
            Control::Handover {
                console_pin,
                technician,
            } => {
                if self.role != Role::Applet {
                    return Err(SessionError::Protocol("the applet sent a handover"));
                }
                self.event(Event::Handover {
                    console_pin,
                    technician,
                });
            }
            Control::HandedOver => {
                if self.role != Role::Console {
                    return Err(SessionError::Protocol("the console answered a handover"));
                }
                self.event(Event::HandedOver);
            }
            Control::Resume { incarnation, next } => self.on_resume(now, incarnation, next)?,
            Control::Ack { next } => self
                .seq
                .on_ack(next)
                .map_err(|e| SessionError::Protocol(resume_error_text(e)))?,
        }
        Ok(())
    }

    fn on_channel(&mut self, now: Instant, frame: ChannelFrame) -> Result<(), SessionError> {
        match frame {
            ChannelFrame::Open { channel, kind } => {
                if self.role.opened(channel) {
                    return Err(SessionError::Protocol("the peer opened a channel of ours"));
                }
                self.channels.open_remote(channel, kind)?;
                if (kind == ChannelKind::Echo || channels::is_app(kind))
                    && let Some(c) = self.channels.get_mut(channel)
                {
                    // Echo: what arrives goes straight back. The
                    // application's channels carry data both ways.
                    c.source = Some(Outgoing::queue());
                }
                if channels::is_app(kind) {
                    self.event(Event::ChannelOpened { channel, kind });
                }
            }
            // Sent before a reset (ours, or the peer's that overtook it):
            // dropped.
            ChannelFrame::Data { channel, .. } | ChannelFrame::Close { channel }
                if self.channels.was_reset(channel) => {}
            ChannelFrame::Data { channel, data } => self.on_data(now, channel, data)?,
            ChannelFrame::Credit { channel, bytes } => {
                if self.channels.credit(channel, bytes)? == Some(Priority::Bulk) {
                    self.pacing.credited(now, bytes);
                }
            }
            ChannelFrame::Close { channel } => {
                let app = self.channels.kind(channel).is_some_and(channels::is_app);
                self.channels.peer_closed(channel)?;
                if app {
                    self.event(Event::ChannelClosed { channel });
                }
            }
            ChannelFrame::Reset { channel, reason } => {
                if let Some(c) = self.channels.reset(channel)
                    && channels::is_app(c.kind)
                {
                    self.event(Event::ChannelReset {
                        channel,
                        reason: lifeline_protocol::codec::clamp_str(&reason, 256).to_owned(),
                    });
                }
                if self.incoming.as_ref().is_some_and(|i| i.channel == channel) {
                    let i = self.incoming.take().ok_or(SessionError::LinkTestFailed)?;
                    self.event(Event::TestDone {
                        direction: i.direction,
                        ok: false,
                        bytes: i.receiver.received(),
                        secs: 0.0,
                        detail: lifeline_protocol::codec::clamp_str(&reason, 256).to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    fn on_test(&mut self, now: Instant, frame: TestFrame) -> Result<(), SessionError> {
        match frame {
            TestFrame::Start { channel, seed, len } => {
                if self.incoming.is_some() || len > linktest::MAX_TEST_BYTES {
                    return Err(SessionError::Protocol(
                        "link test refused (one at a time, at most 4 GiB)",
                    ));
                }
                if self.role.opened(channel) {
                    return Err(SessionError::Protocol("a link test on a channel of ours"));
                }
                let direction = match self.role.sends() {
                    Direction::ToUser => Direction::FromUser,
                    Direction::FromUser => Direction::ToUser,
                };
                self.event(Event::TestStarted {
                    direction,
                    bytes: len,
                });
                let mut receiver = Receiver::new(seed, len, now);
                if len == 0 {
                    if let Some(v) = receiver.on_data(&[], now) {
                        self.test_verdict(direction, v)?;
                    } else {
                        self.test_verdict(
                            direction,
                            linktest::Verdict {
                                ok: true,
                                bytes: 0,
                                detail: String::new(),
                                took: Duration::ZERO,
                            },
                        )?;
                    }
                } else {
                    self.incoming = Some(Incoming {
                        channel,
                        direction,
                        receiver,
                    });
                }
            }
            TestFrame::Request { seed, len } => {
                if self.role.decides_path() {
                    return Err(SessionError::Protocol(
                        "only the console asks for link tests",
                    ));
                }
                if self.outgoing.is_some() || len > linktest::MAX_TEST_BYTES {
                    self.send(Frame::Test(TestFrame::Result {
                        ok: false,
                        bytes: 0,
                        detail: "link test refused (one at a time, at most 4 GiB)".into(),
                    }));
                } else {
                    self.start_test(now, seed, len)?;
                }
            }
            TestFrame::Result { ok, bytes, detail } => {
                if let Some((_, direction, t0)) = self.outgoing.take() {
                    self.event(Event::TestDone {
                        direction,
                        ok,
                        bytes,
                        secs: now.saturating_duration_since(t0).as_secs_f64(),
                        detail,
                    });
                }
            }
        }
        Ok(())
    }

    fn on_data(
        &mut self,
        now: Instant,
        channel: u32,
        data: bytes::Bytes,
    ) -> Result<(), SessionError> {
        let kind = self.channels.received(channel, data.len())?;
        match kind {
            ChannelKind::Shell | ChannelKind::Run | ChannelKind::File => {
                // The application consumes it (`Command::Consumed`).
                self.event(Event::ChannelData { channel, data });
                return Ok(());
            }
            ChannelKind::LinkTest => {
                let Some(i) = self.incoming.as_mut().filter(|i| i.channel == channel) else {
                    return Err(SessionError::Protocol("link-test data without its start"));
                };
                if let Some(v) = i.receiver.on_data(&data, now) {
                    let direction = i.direction;
                    self.incoming = None;
                    self.test_verdict(direction, v)?;
                }
            }
            ChannelKind::Echo => {
                if self.role.opened(channel) {
                    // Our probe's bytes, back.
                    for _ in 0..data.len() {
                        if let Some(sent) = self.probes.pop_front() {
                            let rtt = now.saturating_duration_since(sent);
                            self.pacing.rtt(rtt);
                            self.event(Event::ProbeRtt(rtt));
                        }
                    }
                } else if let Some(c) = self.channels.get_mut(channel)
                    && let Some(src) = c.source.as_mut()
                {
                    // Bounded by the channel's credit: we only echo what
                    // the peer was allowed to send.
                    src.push(data.clone());
                }
            }
        }
        if let Some(grant) = self.channels.consumed(channel, data.len()) {
            let owed = self.owed_credit.entry(channel).or_default();
            *owed = owed.saturating_add(grant);
        }
        Ok(())
    }

    fn test_verdict(
        &mut self,
        direction: Direction,
        v: linktest::Verdict,
    ) -> Result<(), SessionError> {
        self.send(Frame::Test(TestFrame::Result {
            ok: v.ok,
            bytes: v.bytes,
            detail: v.detail.clone(),
        }));
        self.event(Event::TestDone {
            direction,
            ok: v.ok,
            bytes: v.bytes,
            secs: v.took.as_secs_f64(),
            detail: v.detail,
        });
        if v.ok {
            Ok(())
        } else {
            Err(SessionError::LinkTestFailed)
        }
    }

    fn start_test(&mut self, now: Instant, seed: u64, len: u64) -> Result<(), SessionError> {
        let channel = self.channels.open_own(
            ChannelKind::LinkTest,
            Some(Outgoing::LinkTest(Box::new(TestSource::new(seed, len)))),
        )?;
        let direction = self.role.sends();
        self.outgoing = Some((channel, direction, now));
        self.send(Frame::Channel(ChannelFrame::Open {
            channel,
            kind: ChannelKind::LinkTest,
        }));
        self.send(Frame::Test(TestFrame::Start { channel, seed, len }));
        self.event(Event::TestStarted {
            direction,
            bytes: len,
        });
        Ok(())
    }

    fn on_peer_switch(&mut self, now: Instant, id: [u8; 8]) -> Result<(), SessionError> {
        if self.peer_switched || self.awaited.is_some() {
            return Err(SessionError::Protocol(
                "the other side switched paths twice",
            ));
        }
        if self.role.decides_path() {
            let ours = self.paths.get(&self.out).map(|p| p.id);
            if !self.switched || ours != Some(id) {
                return Err(SessionError::Protocol(
                    "the applet moved to another path than the console",
                ));
            }
            self.peer_switched = true;
            self.read = Some(self.out);
            self.close_old_if_done();
            return Ok(());
        }
        match self.paths.iter().find(|(_, p)| p.id == id).map(|(k, _)| *k) {
            Some(path) => self.follow(now, path),
            None => {
                // Still proving it on our side: read nothing until it is.
                self.awaited = Some((id, now + SWITCH_WAIT));
                self.read = None;
            }
        }
        Ok(())
    }

    /// Applet: move both directions to `path`, which the console moved to.
    fn follow(&mut self, now: Instant, path: PathId) {
        self.switch_writing(now, path);
        self.peer_switched = true;
        self.awaited = None;
        self.read = Some(path);
        self.last_heard = now;
        self.close_old_if_done();
    }

    /// Writes `Switch` as the last frame on the current path and moves our
    /// writing to `path`.
    fn switch_writing(&mut self, now: Instant, path: PathId) {
        let Some(info) = self.paths.get(&path).cloned() else {
            return;
        };
        self.send(Frame::Control(Control::Switch { path: info.id }));
        self.old = Some(self.out);
        self.out = path;
        self.switched = true;
        self.actions.push_back(Action::StopNegotiation);
        // A ping at once: its pong gives the new path's round trip.
        let v = self.micros(now);
        self.send(Frame::Control(Control::Ping(v)));
        // Paths proven but not taken are closed.
        let spare: Vec<PathId> = self
            .paths
            .keys()
            .copied()
            .filter(|k| *k != path && Some(*k) != self.old)
            .collect();
        for k in spare {
            self.paths.remove(&k);
            self.actions.push_back(Action::ClosePath(k));
        }
        self.event(Event::PathChanged {
            kind: info.kind,
            detail: info.detail,
            rtt: info.rtt,
        });
    }

    fn close_old_if_done(&mut self) {
        if self.switched
            && self.peer_switched
            && let Some(old) = self.old.take()
        {
            self.paths.remove(&old);
            self.actions.push_back(Action::ClosePath(old));
        }
    }

    /// A path closed (end of stream) or failed (`error`).
    pub fn handle_path_closed(&mut self, now: Instant, path: PathId, error: Option<String>) {
        let _ = now;
        if self.phase == Phase::Done {
            return;
        }
        let in_use = path == self.out || Some(path) == self.read;
        if !in_use {
            // A spare or old path: nothing depends on it any more.
            self.paths.remove(&path);
            return;
        }
        if let Phase::Ending { outcome, .. } = &self.phase {
            let outcome = outcome.clone();
            return self.finish(Ok(outcome));
        }
        let what = self
            .paths
            .get(&path)
            .map_or(PathKind::Relay, |p| p.kind)
            .describe();
        let (why, error) = match error {
            None => (format!("{what} closed"), SessionError::PeerGone),
            Some(e) => (format!("{what} failed ({e})"), SessionError::PathFailed(e)),
        };
        if let Phase::Reconnecting { .. } = self.phase {
            // The restored relay died before the resumption: try again.
            self.paths.remove(&path);
            self.read = None;
            self.actions.push_back(Action::ClosePath(path));
            self.actions.push_back(Action::Reconnect);
            return;
        }
        self.lose_path(now, why, error);
    }

    /// What the local user asked for.
    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        match (&self.phase, &cmd) {
            (Phase::Live, _) => {}
            // While reconnecting a chat line waits in the resend buffer;
            // ending is always possible.
            (
                Phase::Reconnecting { .. },
                Command::Say(_)
                | Command::Work(_)
                | Command::Open { .. }
                | Command::Write { .. }
                | Command::Close { .. }
                | Command::Reset { .. }
                | Command::Consumed { .. }
                | Command::Handover { .. }
                | Command::TookHandover,
            ) => {}
            (Phase::Reconnecting { .. }, Command::End(reason)) => {
                let by = self.role.ended_by();
                return self.finish(Ok(Outcome {
                    by,
                    reason: reason.clone(),
                    local: true,
                }));
            }
            _ => return,
        }
        match cmd {
            Command::Say(text) => self.send(Frame::Control(Control::Chat { text })),
            Command::Handover {
                console_pin,
                technician,
            } if self.role == Role::Console => self.send(Frame::Control(Control::Handover {
                console_pin,
                technician,
            })),
            Command::TookHandover if self.role == Role::Applet => {
                self.send(Frame::Control(Control::HandedOver));
            }
            Command::Handover { .. } | Command::TookHandover => {}
            Command::Work(w) => self.send(Frame::Work(w)),
            Command::Open { channel, kind } => {
                let refused = if !channels::is_app(kind) {
                    Some("not an application channel")
                } else if channel < channels::APP_CHANNELS || !self.role.opened(channel) {
                    Some("not a channel number of ours")
                } else {
                    self.channels
                        .open_app(channel, kind)
                        .err()
                        .map(|e| match e {
                            SessionError::TooManyChannels => "too many channels open",
                            _ => "already open",
                        })
                };
                match refused {
                    Some(why) => self.event(Event::ChannelReset {
                        channel,
                        reason: why.into(),
                    }),
                    None => self.send(Frame::Channel(ChannelFrame::Open { channel, kind })),
                }
            }
            Command::Write { channel, data } => {
                if let Some(c) = self.channels.get_mut(channel)
                    && channels::is_app(c.kind)
                    && let Some(src) = c.source.as_mut()
                {
                    src.push(data);
                }
            }
            Command::Close { channel } => {
                if let Some(c) = self.channels.get_mut(channel)
                    && channels::is_app(c.kind)
                    && let Some(src) = c.source.as_mut()
                {
                    src.finish();
                }
            }
            Command::Reset { channel, reason } => {
                if self.channels.kind(channel).is_some_and(channels::is_app) {
                    self.channels.reset(channel);
                    self.owed_credit.remove(&channel);
                    self.send(Frame::Channel(ChannelFrame::Reset { channel, reason }));
                }
            }
            Command::Consumed { channel, bytes } => {
                if self.channels.kind(channel).is_some_and(channels::is_app)
                    && let Some(grant) = self.channels.consumed(channel, bytes as usize)
                {
                    let owed = self.owed_credit.entry(channel).or_default();
                    *owed = owed.saturating_add(grant);
                }
            }
            Command::End(reason) => {
                let by = self.role.ended_by();
                self.send(Frame::Control(Control::End {
                    by,
                    reason: reason.clone(),
                }));
                self.actions.push_back(Action::ClosePath(self.out));
                self.actions.push_back(Action::StopNegotiation);
                self.phase = Phase::Ending {
                    outcome: Outcome {
                        by,
                        reason,
                        local: true,
                    },
                    until: now + END_LINGER,
                };
            }
            Command::LinkTest { bytes, direction } => {
                self.seeds += 1;
                let seed = self.micros(now) ^ (self.seeds << 48);
                let busy = |on: bool| Event::TestDone {
                    direction,
                    ok: false,
                    bytes: 0,
                    secs: 0.0,
                    detail: if on {
                        "a link test in this direction is already running".into()
                    } else {
                        "a link test moves at most 4 GiB".into()
                    },
                };
                if bytes > linktest::MAX_TEST_BYTES {
                    self.event(busy(false));
                } else if direction == self.role.sends() {
                    if self.outgoing.is_some() {
                        self.event(busy(true));
                    } else if let Err(e) = self.start_test(now, seed, bytes) {
                        self.finish(Err(e));
                    }
                } else if self.incoming.is_some() {
                    self.event(busy(true));
                } else {
                    self.send(Frame::Test(TestFrame::Request { seed, len: bytes }));
                }
            }
            Command::Probe => {
                let channel = match self.probe {
                    Some(c) => c,
                    None => match self
                        .channels
                        .open_own(ChannelKind::Echo, Some(Outgoing::queue()))
                    {
                        Ok(c) => {
                            self.probe = Some(c);
                            self.send(Frame::Channel(ChannelFrame::Open {
                                channel: c,
                                kind: ChannelKind::Echo,
                            }));
                            c
                        }
                        Err(e) => return self.finish(Err(e)),
                    },
                };
                if let Some(c) = self.channels.get_mut(channel)
                    && let Some(src) = c.source.as_mut()
                {
                    src.push(bytes::Bytes::from_static(&[0x2a]));
                    self.probes.push_back(now);
                }
            }
        }
        self.flush_interactive();
    }

    /// A direct path was established and proven (the driver named it
    /// `path`).
    pub fn handle_path_ready(&mut self, now: Instant, path: PathId, info: PathInfo) {
        if self.phase != Phase::Live
            || self.switched
            || matches!(self.pending, Some((Reported::Switch(_), _, _)))
            || (self.role.decides_path() && self.attempts.reported)
        {
            // Too late: the session already moved, is about to, or the
            // console gave up on direct paths. (The applet follows: a path
            // the console's negotiation made is one the console may take,
            // even while the applet's own wait after a resumption runs.)
            self.actions.push_back(Action::ClosePath(path));
            return;
        }
        let id = info.id;
        let change = PathChange {
            kind: info.kind,
            rtt: info.rtt,
            detail: info.detail.clone(),
        };
        self.paths.insert(path, info);
        if self.role.decides_path() {
            // The gateway must hear of the cutover before the relay closes.
            self.attempts.reported = true;
            self.report(now, Reported::Switch(path), change);
        } else if self.awaited.is_some_and(|(want, _)| want == id) {
            self.follow(now, path);
        }
    }

    /// Console: asks the driver to record `change`; `then` happens once it
    /// is recorded, or [`REPORT_TIMEOUT`] has passed.
    fn report(&mut self, now: Instant, then: Reported, change: PathChange) {
        self.reports += 1;
        let report = self.reports;
        self.pending = Some((then, now + REPORT_TIMEOUT, report));
        self.actions.push_back(Action::Report { report, change });
    }

    /// Console: path report `report` is recorded (or given up on). The
    /// answer to an older report (one that outlived its timeout) is
    /// ignored: it says nothing about the one now pending.
    pub fn handle_reported(&mut self, now: Instant, report: u64) {
        if self.pending.as_ref().is_some_and(|(_, _, r)| *r == report) {
            self.report_done(now);
        }
    }

    fn report_done(&mut self, now: Instant) {
        match self.pending.take() {
            Some((Reported::Switch(path), _, _)) if self.phase == Phase::Live => {
                self.switch_writing(now, path);
            }
            Some((Reported::StayOnRelay(reason), _, _)) => {
                self.event(Event::StaysOnRelay { reason });
            }
            Some((Reported::Resumed, _, _)) => {}
            _ => {}
        }
    }

    /// A direct attempt is over without a path.
    pub fn handle_path_failed(&mut self, now: Instant, kind: PathKind, why: String) {
        let label = format!("{kind}: {why}");
        match kind {
            PathKind::DirectTcp => self.attempts.tcp = Some(label),
            _ => self.attempts.udp = Some(label),
        }
        self.report_if_all_failed(now);
    }

    fn report_if_all_failed(&mut self, now: Instant) {
        if !self.role.decides_path()
            || self.attempts.reported
            || self.switched
            || self.phase != Phase::Live
        {
            return;
        }
        let (Some(tcp), Some(udp)) = (&self.attempts.tcp, &self.attempts.udp) else {
            return;
        };
        let reason = if tcp == udp {
            tcp.clone()
        } else {
            format!("{tcp}; {udp}")
        };
        self.attempts.reported = true;
        let change = PathChange {
            kind: PathKind::Relay,
            rtt: None,
            detail: reason.clone(),
        };
        // The user hears of it once the gateway has (as for a switch).
        self.report(now, Reported::StayOnRelay(reason), change);
        self.actions.push_back(Action::StopNegotiation);
    }

    /// The negotiator wants `frame` sent to the peer.
    pub fn handle_negotiation_send(&mut self, _now: Instant, frame: Negotiation) {
        if self.phase == Phase::Live && !self.switched {
            self.send(frame.into());
        }
    }

    /// Time has come (see [`Core::poll_timeout`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        match &self.phase {
            Phase::Done => return,
            Phase::Ending { outcome, until } => {
                if now >= *until {
                    let outcome = outcome.clone();
                    self.finish(Ok(outcome));
                }
                return;
            }
            Phase::Reconnecting { why, until, .. } => {
                if now >= *until {
                    let why = why.clone();
                    self.finish(Err(SessionError::NotResumed(why)));
                }
                return;
            }
            Phase::Live => {}
        }
        if self.negotiate_at.is_some_and(|t| now >= t) {
            self.negotiate_at = None;
            if !self.relay_only {
                // A new round of attempts (after a resumption: the last
                // round's outcome was for another relay connection).
                self.attempts = Attempts::default();
            }
            self.actions.push_back(Action::StartNegotiation);
        }
        if self.pending.as_ref().is_some_and(|(_, t, _)| now >= *t) {
            self.report_done(now);
        }
        if self.awaited.is_some_and(|(_, t)| now >= t) {
            return self.finish(Err(SessionError::Protocol(
                "the console moved to a path this end never established",
            )));
        }
        if self.dead_at().is_some_and(|t| now >= t) {
            let what = self.current_kind().describe();
            let secs = self.dead_path.as_secs_f64();
            return self.lose_path(
                now,
                format!("{what} was silent for {secs} s"),
                SessionError::Silent,
            );
        }
        if now >= self.next_ping {
            let v = self.micros(now);
            self.send(Frame::Control(Control::Ping(v)));
            if let Some(ack) = self.seq.ack_if_any() {
                self.send(ack);
            }
            self.next_ping = now + (self.dead_path / 4).min(PING_INTERVAL);
        }
    }
}

fn resume_error_text(e: resume::ResumeError) -> &'static str {
    match e {
        resume::ResumeError::AheadOfSent => "acknowledged data that was never sent",
        resume::ResumeError::Forgotten => "asked to resend data it had acknowledged",
    }
}
