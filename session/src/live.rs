//! The live session's driver: runs the [`crate::core`] state machine with
//! real paths, the going-direct negotiator, the local user's commands and
//! the clock. Applet and console both run it; they keep only their user
//! interface.
//!
//! The driver decides nothing: it performs the core's [`Action`]s (write a
//! frame on a path, close a path, hand a frame to the negotiator, report a
//! path change, tell the user), reads the one path the core reads, pulls
//! bulk data while the current path's bulk queue has room, and feeds every
//! happening back to the core with the time.

pub use crate::core::Scheduling;
use crate::core::{
    Action, Config, Core, PathId, PathInfo, RELAY, RESUME_WINDOW, Role, SessionError,
};
use crate::direct::{DirectEvent, Ends, Negotiator, Settings, Side};
use crate::link::{self, Inbound, Path, PathKind, PathReader, PathWriter};
use crate::secure::Established;
use lifeline_protocol::SessionGuid;
use lifeline_protocol::e2e::EndedBy;
use lifeline_protocol::proof::EXPORTER_LEN;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

pub use crate::core::{Command, Event, Outcome, PathChange};

/// Called by the console before it moves the session to a direct path
/// (and when it gives up and stays on the relay), so it can be recorded
/// — the gateway must hear of the cutover before the relay closes.
pub type PathHook =
    Arc<dyn Fn(PathChange) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Reconnects through the gateway after the session's path died: finds
/// the gateway, waits to be paired with the other end again, runs the
/// end-to-end handshake on the new relay connection and returns it
/// ([`relay_path`]). It keeps trying (with backoff) while that makes
/// sense, and fails with a reason in plain words when it cannot (the
/// session ended meanwhile); the resume window bounds it from outside.
pub type Reconnector =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<RelayPath, String>> + Send>> + Send + Sync>;

/// A relay connection whose end-to-end handshake is done.
pub struct RelayPath {
    path: Path,
    /// Its TLS exporter: what direct paths made while the session is on
    /// it are bound to (both ends have the same).
    exporter: [u8; EXPORTER_LEN],
}

impl std::fmt::Debug for RelayPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayPath").finish_non_exhaustive()
    }
}

/// `est` as a relay path (what [`Reconnector`] returns).
pub fn relay_path<S>(est: Established<S>) -> RelayPath
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    RelayPath {
        path: Path {
            kind: PathKind::Relay,
            reader: est.reader.boxed(),
            writer: est.writer.boxed(),
            id: lifeline_protocol::proof::path_id(&est.exporter),
            detail: "gateway".into(),
            rtt: None,
        },
        exporter: est.exporter,
    }
}

/// What [`run`] needs besides the channel.
#[derive(Clone)]
pub struct Setup {
    /// Who we are, for the End frame we send.
    pub me: EndedBy,
    /// The session.
    pub guid: SessionGuid,
    /// Our side and what securing a path needs.
    pub side: Side,
    /// Going-direct settings.
    pub direct: Settings,
    /// Console: see [`PathHook`].
    pub on_path: Option<PathHook>,
    /// See [`Scheduling`] (the binaries use the default).
    pub scheduling: Scheduling,
    /// How to meet the other end again when the path dies (`None`: the
    /// session ends with its path).
    pub reconnect: Option<Reconnector>,
    /// Silence after which the path in use counts as dead.
    pub dead_path: std::time::Duration,
    /// Where the payload moved each way is counted, for a display.
    pub traffic: Arc<Traffic>,
}

/// The session's payload each way — chat text and the bytes of its
/// channels (files, shells, link tests) — as frames leave for a path and
/// arrive from one (a frame resent after a reconnect counts again).
#[derive(Debug, Default)]
pub struct Traffic {
    sent: std::sync::atomic::AtomicU64,
    received: std::sync::atomic::AtomicU64,
}

impl Traffic {
    /// (sent, received) so far.
    pub fn get(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.sent.load(Relaxed), self.received.load(Relaxed))
    }

    fn count(counter: &std::sync::atomic::AtomicU64, frame: &lifeline_protocol::e2e::Frame) {
        use lifeline_protocol::e2e::{ChannelFrame, Control, Frame};
        let n = match frame {
            Frame::Channel(ChannelFrame::Data { data, .. }) => data.len(),
            Frame::Control(Control::Chat { text }) => text.len(),
            _ => return,
        };
        counter.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("me", &self.me)
            .field("side", &self.side)
            .field("direct", &self.direct)
            .finish_non_exhaustive()
    }
}

/// Most frames handled in one turn of the loop (then timers, commands and
/// the writers get their turn).
const READ_BATCH: usize = 16;

/// What woke the driver.
enum Happened {
    WriteFailed(String),
    Read(Option<Inbound>),
    Command(Option<Command>),
    Direct(DirectEvent),
    Reported(u64),
    Restored(Result<RelayPath, String>),
    Timeout,
}

/// Runs the session until either end ends it or it is lost.
pub async fn run<S>(
    est: Established<S>,
    mut setup: Setup,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::Sender<Event>,
) -> Result<Outcome, SessionError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let role = match setup.side {
        Side::Console { .. } => Role::Console,
        Side::Applet { .. } => Role::Applet,
    };
    let policy = setup.direct.policy;
    let config = Config {
        relay_only: (role == Role::Console && !policy.tcp && !policy.udp)
            .then(|| "direct paths turned off (--path relay)".to_owned()),
        scheduling: setup.scheduling,
        dead_path: setup.dead_path,
        resume_window: setup.reconnect.is_some().then_some(RESUME_WINDOW),
        ..Config::new(setup.direct.start_after, random_u64())
    };
    let mut core = Core::new(role, Instant::now(), config);
    // Writers and readers apart: the loop waits on one path's reader while
    // it waits for room in (maybe) another's bulk queue.
    let mut writers: HashMap<PathId, PathWriter> = HashMap::new();
    let mut readers: HashMap<PathId, PathReader> = HashMap::new();
    let relay = relay_path(est);
    let mut direct = negotiator(&setup, &relay);
    let (w, r) = link::start(relay.path);
    writers.insert(RELAY, w);
    readers.insert(RELAY, r);
    let mut next_id: PathId = RELAY + 1;
    let (reported_tx, mut reported) = mpsc::channel::<u64>(4);
    let (restored_tx, mut restored) = mpsc::channel::<Result<RelayPath, String>>(1);
    let mut reconnecting: Option<tokio::task::AbortHandle> = None;
    let mut commands_open = true;
    // Whether the core may have bulk data (false after it said it had
    // none, until something happens).
    let mut bulk_maybe = true;
    let timer = tokio::time::sleep(std::time::Duration::ZERO);
    tokio::pin!(timer);
    let mut armed: Option<tokio::time::Instant> = None;

    loop {
        while let Some(action) = core.poll_action() {
            match action {
                Action::Send { path, frame } => {
                    Traffic::count(&setup.traffic.sent, &frame);
                    if let Some(w) = writers.get(&path)
                        && !w.send(frame).await
                    {
                        core.handle_path_closed(
                            Instant::now(),
                            path,
                            Some("the connection's writer stopped".into()),
                        );
                    }
                }
                Action::ClosePath(path) => {
                    // The writer writes what is queued, then closes; the
                    // reader stops.
                    if let Some(w) = writers.remove(&path) {
                        w.close().await;
                    }
                    if Some(path) != core.reading() {
                        readers.remove(&path);
                    }
                }
                Action::Negotiate(frame) => direct.on_frame(frame).await,
                Action::StartNegotiation => {
                    if let Some(f) = direct.start() {
                        core.handle_negotiation_send(Instant::now(), f);
                    }
                }
                Action::StopNegotiation => direct.stop(),
                Action::Report { report, change } => match &setup.on_path {
                    Some(hook) => {
                        let (hook, tx) = (hook.clone(), reported_tx.clone());
                        tokio::spawn(async move {
                            // The core stops waiting after REPORT_TIMEOUT.
                            hook(change).await;
                            let _ = tx.send(report).await;
                        });
                    }
                    None => core.handle_reported(Instant::now(), report),
                },
                Action::Event(e) => {
                    // A handed-over session's next console proves the new
                    // key, on the relay and on any direct path.
                    if let (Event::Handover { console_pin, .. }, Side::Applet { .. }) =
                        (&e, &setup.side)
                    {
                        setup.side = Side::Applet {
                            console_pin: *console_pin,
                        };
                    }
                    let _ = events.send(e).await;
                }
                Action::Reconnect => match &setup.reconnect {
                    Some(reconnect) => {
                        let (reconnect, tx) = (reconnect.clone(), restored_tx.clone());
                        if let Some(old) = reconnecting.take() {
                            old.abort();
                        }
                        reconnecting = Some(
                            tokio::spawn(async move {
                                let _ = tx.send(reconnect().await).await;
                            })
                            .abort_handle(),
                        );
                    }
                    None => core.handle_reconnect_failed(
                        Instant::now(),
                        "this session cannot reconnect".into(),
                    ),
                },
            }
        }
        if let Some(result) = core.finished() {
            let result = result.clone();
            if let Some(task) = reconnecting.take() {
                task.abort();
            }
            // The writers write what the core last asked for (an End, say)
            // and close.
            for (_, w) in writers.drain() {
                w.close().await;
            }
            return result;
        }
        let current = core.current();
        // One timer for the loop's life, moved only when the core's next
        // deadline comes sooner: a later one just wakes the core early,
        // which it takes calmly (every frame moves the dead-path deadline;
        // re-arming a timer per frame costs more than it saves).
        let deadline = core.poll_timeout().map(tokio::time::Instant::from_std);
        if let Some(d) = deadline
            && armed.is_none_or(|a| d < a)
        {
            timer.as_mut().reset(d);
            armed = Some(d);
        }
        let read_path = core.reading();
        let (inbound, write_errors) = match read_path.and_then(|p| readers.get_mut(&p)) {
            Some(r) => (Some(&mut r.inbound), Some(&mut r.write_errors)),
            None => (None, None),
        };
        let happened = tokio::select! {
            biased;
            Some(e) = async { match write_errors { Some(w) => w.recv().await, None => std::future::pending().await } } => {
                Happened::WriteFailed(e.to_string())
            }
            msg = async { match inbound { Some(i) => i.recv().await, None => std::future::pending().await } } => {
                Happened::Read(msg)
            }
            cmd = commands.recv(), if commands_open => Happened::Command(cmd),
            ev = direct.next() => Happened::Direct(ev),
            Some(report) = reported.recv() => Happened::Reported(report),
            Some(r) = restored.recv() => Happened::Restored(r),
            permit = async {
                match writers.get(&current) {
                    Some(w) if bulk_maybe => w.bulk_room().await,
                    _ => std::future::pending().await,
                }
            } => {
                // Fill every free slot of the bulk queue at once, not one
                // per turn of the loop.
                let mut permit = permit;
                while let Some(p) = permit.take() {
                    let Some((_, frame)) = core.poll_bulk() else {
                        bulk_maybe = false;
                        break;
                    };
                    Traffic::count(&setup.traffic.sent, &frame);
                    p.send(frame);
                    permit = writers.get(&current).and_then(PathWriter::try_bulk_room);
                }
                continue;
            }
            _ = &mut timer, if armed.is_some() => {
                armed = None;
                Happened::Timeout
            }
        };
        let now = Instant::now();
        bulk_maybe = true;
        match happened {
            Happened::WriteFailed(e) => {
                if let Some(p) = read_path {
                    core.handle_path_closed(now, p, Some(e));
                }
            }
            Happened::Read(msg) => {
                if let Some(p) = read_path {
                    // What has already arrived is handled together, so the
                    // grants and acknowledgement it earns go back as one.
                    let mut next = Some(msg);
                    let mut batch = 0;
                    while let Some(msg) = next.take() {
                        match msg {
                            Some(Inbound::Frame(f)) => {
                                Traffic::count(&setup.traffic.received, &f);
                                core.handle_frame(now, p, f)
                            }
                            Some(Inbound::Closed) | None => core.handle_path_closed(now, p, None),
                            Some(Inbound::Failed(e)) => {
                                core.handle_path_closed(now, p, Some(e.to_string()))
                            }
                        }
                        batch += 1;
                        if batch < READ_BATCH
                            && core.reading() == Some(p)
                            && core.finished().is_none()
                            && let Some(r) = readers.get_mut(&p)
                        {
                            next = r.inbound.try_recv().ok().map(Some);
                        }
                    }
                }
            }
            Happened::Command(Some(c)) => core.handle_command(now, c),
            // The local input closed (e.g. stdin EOF in batch mode): keep
            // the session until the peer ends it.
            Happened::Command(None) => commands_open = false,
            Happened::Direct(DirectEvent::Send(f)) => core.handle_negotiation_send(now, f),
            Happened::Direct(DirectEvent::Ready(path)) => {
                let (id, info) = start_path(path, &mut next_id, &mut writers, &mut readers);
                core.handle_path_ready(now, id, info);
            }
            Happened::Direct(DirectEvent::Failed(kind, why)) => {
                tracing::info!(path = %kind, reason = %why, "direct path attempt over");
                core.handle_path_failed(now, kind, why);
            }
            Happened::Reported(report) => core.handle_reported(now, report),
            Happened::Restored(Ok(relay)) => {
                reconnecting = None;
                // Going direct again happens on this relay connection and
                // binds to its keys.
                direct = negotiator(&setup, &relay);
                let (id, info) = start_path(relay.path, &mut next_id, &mut writers, &mut readers);
                core.handle_relay_restored(now, id, info);
            }
            Happened::Restored(Err(why)) => {
                reconnecting = None;
                core.handle_reconnect_failed(now, why);
            }
            Happened::Timeout => core.handle_timeout(now),
        }
    }
}

/// A negotiator for going direct while the session is on `relay`.
fn negotiator(setup: &Setup, relay: &RelayPath) -> Negotiator {
    let ends = Arc::new(Ends {
        guid: setup.guid,
        relayed_exporter: relay.exporter,
        side: setup.side.clone(),
    });
    Negotiator::new(ends, setup.direct.clone())
}

/// Starts the I/O of a new path under the next id; returns the id and what
/// the core is told about the path.
fn start_path(
    path: Path,
    next_id: &mut PathId,
    writers: &mut HashMap<PathId, PathWriter>,
    readers: &mut HashMap<PathId, PathReader>,
) -> (PathId, PathInfo) {
    let id = *next_id;
    *next_id += 1;
    let info = PathInfo {
        kind: path.kind,
        id: path.id,
        detail: path.detail.clone(),
        rtt: path.rtt,
    };
    let (w, r) = link::start(path);
    writers.insert(id, w);
    readers.insert(id, r);
    (id, info)
}

/// A random number that is not a secret: a core's incarnation (see
/// `e2e::Control::Resume`), a pause's jitter. Should the system's
/// generator fail, the time still tells one run from the next.
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        return lifeline_protocol::time::now_ms() as u64;
    }
    u64::from_le_bytes(b)
}
