//! The live session both ends run once the end-to-end channel is up: chat,
//! keepalive pings with round-trip times, the link test, going direct
//! (with the cutover), and a clean end.
//!
//! One loop owns the session's state and never waits on the network: it
//! reads what the [`Link`]'s reader saw, what the [`Negotiator`] found,
//! and what the local user asked for, and queues frames on the link.

use crate::channel::ChannelError;
use crate::direct::{DirectEvent, Ends, Negotiator, Settings, Side};
use crate::link::{Inbound, Link, Path, PathKind};
use crate::linktest::{self, Direction, Receiver};
use crate::secure::Established;
use lifeline_protocol::SessionGuid;
use lifeline_protocol::e2e::{EndedBy, Frame};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// How often each end pings.
pub const PING_INTERVAL: Duration = Duration::from_secs(10);
/// Silence after which the peer counts as gone.
pub const DEAD_AFTER: Duration = Duration::from_secs(35);
/// How long the console's [`PathHook`] may take before the cutover goes
/// ahead anyway.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the end that ends the session waits for the other to close.
pub const END_LINGER: Duration = Duration::from_secs(3);

/// What the local user asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send a chat line.
    Say(String),
    /// End the session with a reason.
    End(String),
    /// Console: run a link test of `bytes` in `direction`.
    LinkTest {
        /// Bytes to move.
        bytes: u64,
        /// Which way.
        direction: Direction,
    },
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

/// Called by the console before it moves the session to a direct path
/// (and when it gives up and stays on the relay), so it can be recorded
/// — the gateway must hear of the cutover before the relay closes.
pub type PathHook =
    Arc<dyn Fn(PathChange) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

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

fn protocol_error(why: &'static str) -> ChannelError {
    ChannelError::Protocol(lifeline_protocol::DecodeError::invalid(
        "session frame",
        why,
    ))
}

/// The console's record of its direct attempts.
#[derive(Debug, Default)]
struct Attempts {
    tcp: Option<String>,
    udp: Option<String>,
    reported: bool,
}

/// Runs the session until either end ends it or the connection is lost.
pub async fn run<S>(
    est: Established<S>,
    setup: Setup,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
) -> Result<Outcome, ChannelError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let Established {
        reader,
        writer,
        exporter,
        ..
    } = est;
    let mut link = Link::new(Path {
        kind: PathKind::Relay,
        reader: reader.boxed(),
        writer: writer.boxed(),
        id: [0; 8],
        detail: "gateway".into(),
        rtt: None,
    });
    let console = matches!(setup.side, Side::Console { .. });
    let ends = Arc::new(Ends {
        guid: setup.guid,
        relayed_exporter: exporter,
        side: setup.side.clone(),
    });
    let mut direct = Negotiator::new(ends, setup.direct.clone());
    // The console's policy opens the negotiation, after its start delay.
    let mut opening = direct.start();
    let open_at = tokio::time::sleep(setup.direct.start_after);
    tokio::pin!(open_at);
    let me = setup.me;
    let start = Instant::now();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut commands_open = true;
    let mut attempts = Attempts::default();
    if console && !setup.direct.policy.tcp && !setup.direct.policy.udp {
        // Forced relay: nothing to wait for.
        attempts.tcp = Some("direct paths turned off (--path relay)".into());
        attempts.udp = attempts.tcp.clone();
    }
    // Applet: proven paths, until the console names the one to use.
    let mut candidates: HashMap<[u8; 8], Path> = HashMap::new();
    let mut awaited: Option<[u8; 8]> = None;
    // Link tests: the one we receive, and when we started the one we send.
    let mut receiving: Option<(Direction, Receiver)> = None;
    let mut sending: Option<(Direction, Instant)> = None;
    let mut seed_counter = 0u64;

    macro_rules! emit {
        ($e:expr) => {
            let _ = events.send($e).await;
        };
    }

    loop {
        if console && !attempts.reported && attempts.tcp.is_some() && attempts.udp.is_some() {
            attempts.reported = true;
            if link.switched().is_none() {
                let (tcp, udp) = (
                    attempts.tcp.clone().unwrap_or_default(),
                    attempts.udp.clone().unwrap_or_default(),
                );
                let reason = if tcp == udp {
                    tcp
                } else {
                    format!("{tcp}; {udp}")
                };
                if let Some(hook) = &setup.on_path {
                    let change = PathChange {
                        kind: PathKind::Relay,
                        rtt: None,
                        detail: reason.clone(),
                    };
                    let _ = tokio::time::timeout(HOOK_TIMEOUT, hook(change)).await;
                }
                emit!(Event::StaysOnRelay { reason });
                direct.stop();
            }
        }
        tokio::select! {
            inbound = link.recv() => match inbound {
                Inbound::Frame(frame) => {
                    last_heard = Instant::now();
                    match frame {
                        Frame::Chat { text } => { emit!(Event::Chat(text)); }
                        Frame::Ping(v) => { link.try_send(Frame::Pong(v)); }
                        Frame::Pong(v) => {
                            if let Some(rtt) = start.elapsed().checked_sub(Duration::from_micros(v)) {
                                emit!(Event::Rtt(link.kind(), rtt));
                            }
                        }
                        Frame::End { by, reason } => {
                            link.shutdown(Duration::from_secs(2)).await;
                            return Ok(Outcome { by, reason, local: false });
                        }
                        f @ (Frame::PathPolicy { .. } | Frame::PathOffer { .. } | Frame::IceOffer { .. }) => {
                            direct.on_frame(f).await;
                        }
                        Frame::TestStart { seed, len } => {
                            if receiving.is_some() || len > linktest::MAX_TEST_BYTES {
                                return Err(protocol_error("link test refused (one at a time, at most 4 GiB)"));
                            }
                            let direction = if console { Direction::FromUser } else { Direction::ToUser };
                            emit!(Event::TestStarted { direction, bytes: len });
                            if len == 0 {
                                let v = linktest::Verdict { ok: true, bytes: 0, detail: String::new(), took: Duration::ZERO };
                                finish_test(&link, &events, direction, v).await?;
                            } else {
                                receiving = Some((direction, Receiver::new(seed, len)));
                            }
                        }
                        Frame::Data(bytes) => {
                            let Some((direction, r)) = receiving.as_mut() else {
                                return Err(protocol_error("data without a link test"));
                            };
                            if let Some(v) = r.on_data(&bytes) {
                                let direction = *direction;
                                receiving = None;
                                finish_test(&link, &events, direction, v).await?;
                            }
                        }
                        Frame::TestRequest { seed, len } if !console => {
                            if sending.is_some() || len > linktest::MAX_TEST_BYTES {
                                link.send(Frame::TestResult { ok: false, bytes: 0, detail: "link test refused (one at a time, at most 4 GiB)".into() }).await.map_err(closed)?;
                            } else {
                                sending = Some((Direction::FromUser, Instant::now()));
                                emit!(Event::TestStarted { direction: Direction::FromUser, bytes: len });
                                tokio::spawn(linktest::send(link.bulk(), seed, len));
                            }
                        }
                        Frame::TestResult { ok, bytes, detail } => {
                            if let Some((direction, t0)) = sending.take() {
                                emit!(Event::TestDone { direction, ok, bytes, secs: t0.elapsed().as_secs_f64(), detail });
                            }
                        }
                        Frame::Proof { .. } | Frame::Accepted | Frame::Bind { .. } | Frame::Switch { .. } | Frame::TestRequest { .. } => {
                            return Err(protocol_error("unexpected frame during the session"));
                        }
                    }
                }
                Inbound::PeerSwitched(id) => {
                    last_heard = Instant::now();
                    if console {
                        if link.switched() != Some(id) {
                            return Err(protocol_error("the applet moved to another path than the console"));
                        }
                    } else if let Some(path) = candidates.remove(&id) {
                        switch(&mut link, &mut direct, &events, path, start).await?;
                        candidates.clear();
                    } else {
                        // Still proving it on our side; switch when it is.
                        awaited = Some(id);
                    }
                }
                Inbound::Closed => {
                    return Err(ChannelError::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the other side disconnected without ending the session",
                    )));
                }
                Inbound::Failed(e) => return Err(e),
            },
            ev = direct.next() => match ev {
                DirectEvent::Send(f) => {
                    if link.switched().is_none() {
                        link.send(f).await.map_err(closed)?;
                    }
                }
                DirectEvent::Ready(path) => {
                    if link.switched().is_some() {
                        continue;
                    }
                    if console {
                        if let Some(hook) = &setup.on_path {
                            let change = PathChange { kind: path.kind, rtt: path.rtt, detail: path.detail.clone() };
                            let _ = tokio::time::timeout(HOOK_TIMEOUT, hook(change)).await;
                        }
                        attempts.reported = true;
                        switch(&mut link, &mut direct, &events, path, start).await?;
                    } else if awaited == Some(path.id) {
                        switch(&mut link, &mut direct, &events, path, start).await?;
                        candidates.clear();
                    } else {
                        candidates.insert(path.id, path);
                    }
                }
                DirectEvent::Failed(kind, why) => {
                    tracing::info!(path = %kind, reason = %why, "direct path attempt over");
                    let label = format!("{kind}: {why}");
                    match kind {
                        PathKind::DirectTcp => attempts.tcp = Some(label),
                        _ => attempts.udp = Some(label),
                    }
                }
            },
            cmd = commands.recv(), if commands_open => match cmd {
                Some(Command::Say(text)) => link.send(Frame::Chat { text }).await.map_err(closed)?,
                Some(Command::End(reason)) => {
                    link.send(Frame::End { by: me, reason: reason.clone() }).await.map_err(closed)?;
                    link.shutdown(Duration::from_secs(5)).await;
                    linger(&mut link).await;
                    return Ok(Outcome { by: me, reason, local: true });
                }
                Some(Command::LinkTest { bytes, direction }) => {
                    seed_counter += 1;
                    let seed = start.elapsed().as_nanos() as u64 ^ (seed_counter << 48);
                    match direction {
                        Direction::ToUser if sending.is_none() => {
                            sending = Some((direction, Instant::now()));
                            emit!(Event::TestStarted { direction, bytes });
                            tokio::spawn(linktest::send(link.bulk(), seed, bytes));
                        }
                        Direction::FromUser if receiving.is_none() => {
                            link.send(Frame::TestRequest { seed, len: bytes }).await.map_err(closed)?;
                        }
                        _ => {
                            emit!(Event::TestDone { direction, ok: false, bytes: 0, secs: 0.0, detail: "a link test in this direction is already running".into() });
                        }
                    }
                }
                // The local input closed (e.g. stdin EOF in batch mode):
                // keep the session until the peer ends it.
                None => commands_open = false,
            },
            _ = &mut open_at, if opening.is_some() => {
                if let Some(f) = opening.take() {
                    link.send(f).await.map_err(closed)?;
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > DEAD_AFTER {
                    return Err(ChannelError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut, "the other side stopped answering")));
                }
                link.send(Frame::Ping(start.elapsed().as_micros() as u64)).await.map_err(closed)?;
            }
        }
    }
}

/// After sending `End` and closing our side: waits (at most
/// [`END_LINGER`]) for the peer to close its side, which it does once it
/// has read the `End`. On a direct path nothing else confirms delivery, and
/// a process that exits with the peer's data unread makes its kernel reset
/// the connection, which can destroy the `End` still in flight.
async fn linger(link: &mut Link) {
    let _ = tokio::time::timeout(END_LINGER, async {
        loop {
            match link.recv().await {
                Inbound::Frame(_) | Inbound::PeerSwitched(_) => {}
                Inbound::Closed | Inbound::Failed(_) => return,
            }
        }
    })
    .await;
}

fn closed(_: crate::link::LinkClosed) -> ChannelError {
    ChannelError::Io(std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        "the session's connection is closed",
    ))
}

async fn switch(
    link: &mut Link,
    direct: &mut Negotiator,
    events: &mpsc::Sender<Event>,
    path: Path,
    start: Instant,
) -> Result<(), ChannelError> {
    let (kind, detail, rtt) = (path.kind, path.detail.clone(), path.rtt);
    link.switch_to(path).await.map_err(closed)?;
    direct.stop();
    // A ping at once: its pong gives the new path's round trip.
    link.send(Frame::Ping(start.elapsed().as_micros() as u64))
        .await
        .map_err(closed)?;
    tracing::info!(path = %kind, %detail, ?rtt, "session moved to a direct path");
    let _ = events.send(Event::PathChanged { kind, detail, rtt }).await;
    Ok(())
}

async fn finish_test(
    link: &Link,
    events: &mpsc::Sender<Event>,
    direction: Direction,
    v: linktest::Verdict,
) -> Result<(), ChannelError> {
    link.send(Frame::TestResult {
        ok: v.ok,
        bytes: v.bytes,
        detail: v.detail.clone(),
    })
    .await
    .map_err(closed)?;
    let _ = events
        .send(Event::TestDone {
            direction,
            ok: v.ok,
            bytes: v.bytes,
            secs: v.took.as_secs_f64(),
            detail: v.detail,
        })
        .await;
    if !v.ok {
        return Err(protocol_error(
            "the link test found lost, duplicated or reordered data",
        ));
    }
    Ok(())
}
