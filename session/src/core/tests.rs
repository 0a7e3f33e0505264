//! Two cores stepped against each other in virtual time over simulated
//! paths (as quinn's `Pair` does): each path has a delay and a bandwidth
//! per direction, and a writer per end that sends control frames ahead of
//! bulk ones but never lets anything pass a `Switch` or a close.
#![allow(clippy::unwrap_used)]

use super::*;
use lifeline_protocol::e2e::Handshake;
use proptest::prelude::*;
use std::collections::BTreeMap;

const T_MS: Duration = Duration::from_millis(1);

/// One direction of a simulated path.
#[derive(Debug, Default)]
struct Wire {
    /// What the writer has queued: control (and interactive) frames, and
    /// bulk frames; `Switch` and close are barriers.
    control: VecDeque<Frame>,
    bulk: VecDeque<Frame>,
    close_queued: bool,
    /// On the wire: (arrives at, frame).
    flight: VecDeque<(Instant, Frame)>,
    /// The transmitter is busy until then.
    busy_until: Option<Instant>,
    /// All sent and the writer closed: the reader sees EOF after `flight`.
    closed: bool,
    /// The path is cut: nothing more arrives.
    cut: bool,
    /// EOF was reported to the reader.
    eof_seen: bool,
}

#[derive(Debug)]
struct SimPath {
    delay: Duration,
    /// Bytes per millisecond.
    rate: usize,
    /// [0]: console → applet, [1]: applet → console.
    wires: [Wire; 2],
}

/// Which end: 0 the console, 1 the applet.
type End = usize;

struct Sim {
    now: Instant,
    cores: [Core; 2],
    paths: BTreeMap<PathId, SimPath>,
    events: [Vec<Event>; 2],
    reports: Vec<(Instant, PathChange)>,
    /// When the console's report completes (`None`: never).
    report_delay: Option<Duration>,
    /// (when the answer comes, the report it answers).
    pending_reports: Vec<(Instant, u64)>,
    /// Every report's number, in order.
    report_ids: Vec<u64>,
    closed_paths: [Vec<PathId>; 2],
    negotiations: [usize; 2],
    /// How many times each end asked to reconnect.
    reconnects: [usize; 2],
}

impl Sim {
    fn new(delay: Duration, rate: usize) -> Self {
        Self::with(delay, rate, Config::new(Duration::ZERO, 0))
    }

    /// Cores that resume when their path dies, with a `dead_path` timeout.
    fn resuming(delay: Duration, rate: usize, dead_path: Duration) -> Self {
        let config = Config {
            dead_path,
            resume_window: Some(RESUME_WINDOW),
            ..Config::new(Duration::ZERO, 0)
        };
        Self::with(delay, rate, config)
    }

    fn with(delay: Duration, rate: usize, config: Config) -> Self {
        let now = Instant::now();
        let mut s = Self {
            now,
            cores: [
                Core::new(
                    Role::Console,
                    now,
                    Config {
                        incarnation: 100,
                        ..config.clone()
                    },
                ),
                Core::new(
                    Role::Applet,
                    now,
                    Config {
                        incarnation: 200,
                        ..config
                    },
                ),
            ],
            paths: BTreeMap::new(),
            events: [Vec::new(), Vec::new()],
            reports: Vec::new(),
            report_delay: Some(Duration::from_millis(2)),
            pending_reports: Vec::new(),
            report_ids: Vec::new(),
            closed_paths: [Vec::new(), Vec::new()],
            negotiations: [0, 0],
            reconnects: [0, 0],
        };
        s.add_path(RELAY, delay, rate);
        s
    }

    fn add_path(&mut self, id: PathId, delay: Duration, rate: usize) {
        self.paths.insert(
            id,
            SimPath {
                delay,
                rate,
                wires: [Wire::default(), Wire::default()],
            },
        );
    }

    /// Both ends learn of direct path `id` (with the given path id bytes),
    /// the console at `console_at`, the applet at `applet_at`.
    fn ready(&mut self, end: End, path: PathId) {
        let info = PathInfo {
            kind: PathKind::DirectTcp,
            id: [path as u8; 8],
            detail: format!("sim path {path}"),
            rtt: Some(Duration::from_millis(1)),
        };
        self.cores[end].handle_path_ready(self.now, path, info);
    }

    /// `end` gets a new relay connection, `path` (which must exist).
    fn restore(&mut self, end: End, path: PathId) {
        let info = PathInfo {
            kind: PathKind::Relay,
            id: [0xee; 8],
            detail: "sim relay".into(),
            rtt: None,
        };
        self.cores[end].handle_relay_restored(self.now, path, info);
        self.pump();
    }

    /// Path `path` dies: nothing more crosses it, and each end's read of it
    /// fails (as a reset connection's does).
    fn kill(&mut self, path: PathId) {
        for w in &mut self.paths.get_mut(&path).unwrap().wires {
            w.cut = true;
            w.flight.clear();
        }
        let now = self.now;
        for end in 0..2 {
            if self.cores[end].reading() == Some(path) || self.cores[end].current() == path {
                self.cores[end].handle_path_closed(now, path, Some("connection reset".into()));
            }
        }
        self.pump();
    }

    fn command(&mut self, end: End, cmd: Command) {
        self.cores[end].handle_command(self.now, cmd);
    }

    fn frame_len(f: &Frame) -> usize {
        f.encode().len()
    }

    /// Drains actions and bulk data into the wires.
    fn pump(&mut self) {
        for end in 0..2 {
            while let Some(a) = self.cores[end].poll_action() {
                match a {
                    Action::Send { path, frame } => {
                        let w = &mut self.paths.get_mut(&path).unwrap().wires[end];
                        assert!(!w.close_queued, "a frame after the close of path {path}");
                        w.control.push_back(frame);
                    }
                    Action::ClosePath(path) => {
                        self.closed_paths[end].push(path);
                        if let Some(p) = self.paths.get_mut(&path) {
                            p.wires[end].close_queued = true;
                        }
                    }
                    Action::Negotiate(_) | Action::StopNegotiation => {}
                    Action::StartNegotiation => self.negotiations[end] += 1,
                    Action::Report { report, change } => {
                        self.reports.push((self.now, change));
                        self.report_ids.push(report);
                        if let Some(d) = self.report_delay {
                            self.pending_reports.push((self.now + d, report));
                        }
                    }
                    Action::Event(e) => self.events[end].push(e),
                    Action::Reconnect => self.reconnects[end] += 1,
                }
            }
            // Bulk: keep a few frames queued on the current path.
            loop {
                let out = self.cores[end].current();
                let Some(path) = self.paths.get(&out) else {
                    break;
                };
                let queued = path.wires[end].bulk.len();
                if queued >= 4 {
                    break;
                }
                let Some((path, frame)) = self.cores[end].poll_bulk() else {
                    break;
                };
                assert_eq!(path, out);
                let w = &mut self.paths.get_mut(&path).unwrap().wires[end];
                assert!(!w.close_queued, "bulk after the close of path {path}");
                w.bulk.push_back(frame);
            }
        }
    }

    /// Moves frames from writer queues onto the wire.
    fn transmit(&mut self) {
        let now = self.now;
        for p in self.paths.values_mut() {
            for w in &mut p.wires {
                loop {
                    if w.busy_until.is_some_and(|t| t > now) || w.cut {
                        break;
                    }
                    // Control first, but never past a barrier: a Switch
                    // waits for the bulk queue to drain.
                    let next = match w.control.front() {
                        Some(Frame::Control(Control::Switch { .. })) if !w.bulk.is_empty() => {
                            w.bulk.pop_front()
                        }
                        Some(_) => w.control.pop_front(),
                        None => w.bulk.pop_front(),
                    };
                    let Some(f) = next else {
                        if w.close_queued {
                            w.closed = true;
                        }
                        break;
                    };
                    let took = Duration::from_micros(
                        (Self::frame_len(&f) as u64 * 1000 / p.rate as u64).max(1),
                    );
                    let start = w.busy_until.unwrap_or(now).max(now);
                    w.busy_until = Some(start + took);
                    w.flight.push_back((start + took + p.delay, f));
                }
            }
        }
    }

    fn deliver(&mut self) {
        for end in 0..2 {
            let from = 1 - end;
            while let Some(path) = self.cores[end].reading() {
                let Some(p) = self.paths.get_mut(&path) else {
                    break;
                };
                let w = &mut p.wires[from];
                if w.cut {
                    break;
                }
                match w.flight.front() {
                    Some((at, _)) if *at <= self.now => {
                        let (_, f) = w.flight.pop_front().unwrap();
                        self.cores[end].handle_frame(self.now, path, f);
                        self.pump();
                        self.transmit();
                    }
                    None if w.closed
                        && w.control.is_empty()
                        && w.bulk.is_empty()
                        && !w.eof_seen =>
                    {
                        w.eof_seen = true;
                        self.cores[end].handle_path_closed(self.now, path, None);
                        self.pump();
                    }
                    _ => break,
                }
            }
        }
    }

    fn step(&mut self) {
        self.pump();
        self.transmit();
        self.deliver();
        let now = self.now;
        let due: Vec<u64> = self
            .pending_reports
            .iter()
            .filter(|(t, _)| *t <= now)
            .map(|(_, r)| *r)
            .collect();
        self.pending_reports.retain(|(t, _)| *t > now);
        for report in due {
            self.cores[0].handle_reported(now, report);
        }
        for end in 0..2 {
            if self.cores[end].poll_timeout().is_some_and(|t| t <= now) {
                self.cores[end].handle_timeout(now);
            }
        }
        self.pump();
        self.transmit();
        self.now += T_MS;
    }

    fn run_until(&mut self, within: Duration, mut done: impl FnMut(&Sim) -> bool) {
        let deadline = self.now + within;
        while !done(self) {
            assert!(
                self.now < deadline,
                "not done within {within:?}; console: {:?} {:?}; applet: {:?} {:?}",
                self.cores[0].finished(),
                self.events[0],
                self.cores[1].finished(),
                self.events[1]
            );
            self.step();
        }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while self.now < until {
            self.step();
        }
    }

    /// The console asks for a link test each way.
    fn link_tests(&mut self, to_user: u64, from_user: u64) {
        for (bytes, direction) in [
            (to_user, Direction::ToUser),
            (from_user, Direction::FromUser),
        ] {
            self.command(0, Command::LinkTest { bytes, direction });
        }
    }

    /// Runs until both ends have both link tests' verdicts (or an end is
    /// over).
    fn until_both_verdicts(&mut self, within: Duration) {
        self.run_until(within, |s| {
            s.done_tests(0).len() == 2 && s.done_tests(1).len() == 2 || !s.live()
        });
    }

    fn done_tests(&self, end: End) -> Vec<(Direction, bool, u64)> {
        self.events[end]
            .iter()
            .filter_map(|e| match e {
                Event::TestDone {
                    direction,
                    ok,
                    bytes,
                    ..
                } => Some((*direction, *ok, *bytes)),
                _ => None,
            })
            .collect()
    }

    fn chats(&self, end: End) -> Vec<String> {
        self.events[end]
            .iter()
            .filter_map(|e| match e {
                Event::Chat(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    fn live(&self) -> bool {
        self.cores[0].finished().is_none() && self.cores[1].finished().is_none()
    }
}

#[test]
fn chat_ping_and_a_clean_end() {
    let mut s = Sim::new(Duration::from_millis(5), 100_000);
    s.command(0, Command::Say("hello".into()));
    s.command(1, Command::Say("hi".into()));
    s.run_until(Duration::from_secs(1), |s| {
        s.chats(0) == ["hi"]
            && s.chats(1) == ["hello"]
            && s.events[0].iter().any(|e| matches!(e, Event::Rtt(..)))
    });
    // The first pings' round trips: about 2 × 5 ms.
    assert!(s.events[0].iter().any(|e| matches!(e,
        Event::Rtt(PathKind::Relay, rtt) if *rtt >= Duration::from_millis(10) && *rtt < Duration::from_millis(15))));
    assert_eq!(s.negotiations, [1, 1], "going direct starts at once");
    s.command(1, Command::End("done".into()));
    s.run_until(Duration::from_secs(5), |s| {
        s.cores[0].finished().is_some() && s.cores[1].finished().is_some()
    });
    assert_eq!(
        s.cores[0].finished(),
        Some(&Ok(Outcome {
            by: EndedBy::User,
            reason: "done".into(),
            local: false
        }))
    );
    assert!(matches!(s.cores[1].finished(), Some(Ok(o)) if o.local));
}

/// A handover goes console → applet and its answer back; neither end may
/// send the other's (an applet cannot name a console to itself).
#[test]
fn a_handover_reaches_the_applet_and_its_answer_the_console() {
    let mut s = Sim::new(Duration::from_millis(5), 100_000);
    // An applet cannot hand over, and a console cannot answer: ignored.
    s.command(
        1,
        Command::Handover {
            console_pin: [1; 32],
            technician: "Mallory".into(),
        },
    );
    s.command(0, Command::TookHandover);
    s.command(
        0,
        Command::Handover {
            console_pin: [7; 32],
            technician: "Grace".into(),
        },
    );
    s.run_until(Duration::from_secs(1), |s| {
        s.events[1]
            .iter()
            .any(|e| matches!(e, Event::Handover { .. }))
    });
    let handovers: Vec<&Event> = s.events[1]
        .iter()
        .filter(|e| matches!(e, Event::Handover { .. }))
        .collect();
    assert_eq!(
        handovers,
        [&Event::Handover {
            console_pin: [7; 32],
            technician: "Grace".into()
        }]
    );
    assert!(
        !s.events[0]
            .iter()
            .any(|e| matches!(e, Event::Handover { .. }))
    );
    assert!(!s.events[0].contains(&Event::HandedOver));
    s.command(1, Command::TookHandover);
    s.run_until(Duration::from_secs(1), |s| {
        s.events[0].contains(&Event::HandedOver)
    });
    assert!(s.live());

    // A handover arriving at a console, or its answer at an applet, breaks
    // the protocol.
    for (end, frame) in [
        (
            0,
            Frame::Control(Control::Handover {
                console_pin: [1; 32],
                technician: "Mallory".into(),
            }),
        ),
        (1, Frame::Control(Control::HandedOver)),
    ] {
        let mut s = Sim::new(Duration::from_millis(1), 50_000);
        let now = s.now;
        s.cores[end].handle_frame(now, RELAY, frame);
        assert!(matches!(
            s.cores[end].finished(),
            Some(Err(SessionError::Protocol(_)))
        ));
    }
}

/// A link test each way while the console moves the session to a direct
/// path: every byte arrives once and in order, both directions switch, and
/// the old path closes on both ends.
#[test]
fn link_tests_cross_a_cutover_byte_exact() {
    let mut s = Sim::new(Duration::from_millis(2), 20_000);
    s.add_path(1, Duration::from_millis(1), 50_000);
    s.link_tests(6 << 20, 6 << 20);
    s.run_for(Duration::from_millis(50));
    s.ready(1, 1);
    s.ready(0, 1);
    s.until_both_verdicts(Duration::from_secs(30));
    for end in 0..2 {
        for (dir, ok, bytes) in s.done_tests(end) {
            assert!(
                ok && bytes == 6 << 20,
                "end {end} {dir:?}: {:?}",
                s.events[end]
            );
        }
        assert!(
            s.closed_paths[end].contains(&RELAY),
            "end {end} kept the relay"
        );
        assert_eq!(s.cores[end].current(), 1);
        assert!(
            s.events[end]
                .iter()
                .any(|e| matches!(e, Event::PathChanged { .. }))
        );
    }
    assert_eq!(s.reports.len(), 1, "the console reported before moving");
    assert_eq!(s.reports[0].1.kind, PathKind::DirectTcp);
}

/// The console's `Switch` reaches the applet before the applet has proven
/// the path: the applet reads nothing until it has, then follows.
#[test]
fn a_switch_before_the_path_is_proven_waits_for_it() {
    let mut s = Sim::new(Duration::from_millis(1), 50_000);
    s.add_path(1, Duration::from_millis(1), 50_000);
    s.command(
        0,
        Command::LinkTest {
            bytes: 2 << 20,
            direction: Direction::ToUser,
        },
    );
    s.ready(0, 1);
    s.run_for(Duration::from_millis(200));
    assert_eq!(s.cores[1].reading(), None, "the applet waits for the path");
    assert!(s.live());
    s.ready(1, 1);
    s.run_until(Duration::from_secs(10), |s| s.done_tests(1).len() == 1);
    assert_eq!(s.done_tests(1), [(Direction::ToUser, true, 2 << 20)]);
    assert_eq!(s.cores[1].reading(), Some(1));
}

/// A `Switch` to a path the applet never gets ends the session after
/// [`SWITCH_WAIT`], with a clear error.
#[test]
fn a_switch_to_a_path_that_never_comes_is_an_error() {
    let mut s = Sim::new(Duration::from_millis(1), 50_000);
    s.add_path(1, Duration::from_millis(1), 50_000);
    s.ready(0, 1);
    s.run_until(SWITCH_WAIT + Duration::from_secs(1), |s| {
        s.cores[1].finished().is_some()
    });
    assert!(matches!(
        s.cores[1].finished(),
        Some(Err(SessionError::Protocol(_)))
    ));
}

/// The portal never answers the console's report: the cutover goes ahead
/// after [`REPORT_TIMEOUT`].
#[test]
fn the_cutover_goes_ahead_when_the_report_times_out() {
    let mut s = Sim::new(Duration::from_millis(1), 50_000);
    s.report_delay = None;
    s.add_path(1, Duration::from_millis(1), 50_000);
    s.ready(1, 1);
    s.ready(0, 1);
    s.run_for(REPORT_TIMEOUT - Duration::from_millis(100));
    assert_eq!(s.cores[0].current(), RELAY, "waits for the report");
    s.run_until(Duration::from_secs(2), |s| {
        s.cores[0].current() == 1 && s.cores[1].current() == 1
    });
    s.run_until(Duration::from_secs(1), |s| {
        s.closed_paths[0].contains(&RELAY) && s.closed_paths[1].contains(&RELAY)
    });
}

/// Every attempt fails: the console reports the relay and says why.
#[test]
fn when_every_attempt_fails_the_session_stays_on_the_relay() {
    let mut s = Sim::new(Duration::from_millis(1), 50_000);
    let now = s.now;
    s.cores[0].handle_path_failed(now, PathKind::DirectTcp, "refused".into());
    s.cores[0].handle_path_failed(now, PathKind::XtcpUdp, "no pair".into());
    s.pump();
    assert_eq!(s.reports.len(), 1);
    assert_eq!(s.reports[0].1.kind, PathKind::Relay);
    // The user hears of it once the report is recorded.
    assert!(
        !s.events[0]
            .iter()
            .any(|e| matches!(e, Event::StaysOnRelay { .. }))
    );
    s.run_for(Duration::from_millis(10));
    assert!(s.events[0].iter().any(|e| matches!(e,
        Event::StaysOnRelay { reason } if reason.contains("refused") && reason.contains("no pair"))));
}

/// The two ends resume at slightly different times, so the console may go
/// direct again before the applet's own wait is over: the applet takes
/// the path the console offers then too (it follows the console; it does
/// not decide when).
#[test]
fn the_applet_takes_a_direct_path_offered_before_its_own_wait_is_over() {
    let mut s = Sim::resuming(Duration::from_millis(50), 50_000, DEAD_PATH);
    s.run_for(Duration::from_millis(10));
    assert_eq!(s.negotiations, [1, 1]);
    s.kill(RELAY);
    s.add_path(2, Duration::from_millis(50), 50_000);
    s.restore(1, 2);
    s.run_for(Duration::from_millis(200));
    s.restore(0, 2);
    // The console resumes at once (the applet's Resume is waiting), the
    // applet 50 ms later: the console's wait ends first.
    s.run_until(Duration::from_secs(11), |s| s.negotiations[0] == 2);
    assert_eq!(s.negotiations[1], 1, "the applet's wait is not over yet");
    s.add_path(3, Duration::from_millis(1), 50_000);
    s.ready(1, 3);
    s.ready(0, 3);
    s.run_until(Duration::from_secs(2), |s| {
        s.cores.iter().all(|c| c.current() == 3) || !s.live()
    });
    assert!(s.live(), "{:?} {:?}", s.cores[1].finished(), s.events[1]);
}

/// The answer to a report that outlived its timeout says nothing about
/// the next one: a late "recorded" for the resumption's report must not
/// start the cutover whose own report is still on its way.
#[test]
fn a_late_answer_is_not_taken_for_the_next_report() {
    let mut s = Sim::resuming(Duration::from_millis(1), 50_000, DEAD_PATH);
    s.report_delay = None;
    s.kill(RELAY);
    s.add_path(2, Duration::from_millis(1), 50_000);
    s.restore(0, 2);
    s.restore(1, 2);
    // The resumption's report is never answered in time; going direct
    // starts again meanwhile.
    s.run_for(REDIRECT_AFTER + Duration::from_millis(10));
    assert_eq!(s.report_ids.len(), 1, "{:?}", s.reports);
    let late = s.report_ids[0];
    s.add_path(3, Duration::from_millis(1), 50_000);
    s.ready(1, 3);
    s.ready(0, 3);
    s.pump();
    assert_eq!(s.report_ids.len(), 2);
    let switch = s.report_ids[1];
    s.cores[0].handle_reported(s.now, late);
    s.run_for(Duration::from_millis(10));
    assert_eq!(s.cores[0].current(), 2, "moved on another report's answer");
    s.cores[0].handle_reported(s.now, switch);
    s.run_until(Duration::from_secs(1), |s| {
        s.cores.iter().all(|c| c.current() == 3)
    });
    assert!(s.live());
}

/// Without a way to resume (no gateway to meet at), a path dying
/// mid-transfer ends the session with a clear error on both ends.
#[test]
fn a_path_dying_mid_transfer_is_reported_when_there_is_no_resuming() {
    let mut s = Sim::new(Duration::from_millis(1), 50_000);
    s.command(
        0,
        Command::LinkTest {
            bytes: 50 << 20,
            direction: Direction::ToUser,
        },
    );
    s.run_for(Duration::from_millis(100));
    let now = s.now;
    for end in 0..2 {
        s.cores[end].handle_path_closed(now, RELAY, Some("connection reset".into()));
    }
    assert!(matches!(
        s.cores[0].finished(),
        Some(Err(SessionError::PathFailed(_)))
    ));
    assert!(matches!(
        s.cores[1].finished(),
        Some(Err(SessionError::PathFailed(_)))
    ));
}

/// A peer that stops answering is found within the dead-path timeout.
#[test]
fn a_silent_peer_is_detected() {
    let mut s = Sim::new(Duration::from_millis(1), 50_000);
    s.run_for(Duration::from_millis(50));
    for w in &mut s.paths.get_mut(&RELAY).unwrap().wires {
        w.cut = true;
    }
    s.run_until(DEAD_PATH + Duration::from_millis(100), |s| {
        s.cores[0].finished().is_some() && s.cores[1].finished().is_some()
    });
    assert_eq!(s.cores[0].finished(), Some(&Err(SessionError::Silent)));
}

/// The relay dies mid-transfer (a gateway killed): both ends reconnect,
/// meet on a new relay connection — at different times — and every byte of
/// both link tests and every chat line arrives once, in order.
#[test]
fn a_relay_dying_mid_transfer_resumes_byte_exact() {
    let mut s = Sim::resuming(Duration::from_millis(2), 20_000, DEAD_PATH);
    s.link_tests(8 << 20, 8 << 20);
    s.command(0, Command::Say("before".into()));
    s.run_for(Duration::from_millis(150));
    s.kill(RELAY);
    assert_eq!(s.reconnects, [1, 1]);
    assert!(s.events[1].iter().any(
        |e| matches!(e, Event::Reconnecting { why } if why.contains("relay connection failed"))
    ));
    // Typed while reconnecting: waits and goes out on the new relay.
    s.command(0, Command::Say("during".into()));
    s.run_for(Duration::from_millis(700));
    s.add_path(2, Duration::from_millis(3), 30_000);
    s.restore(1, 2);
    s.run_for(Duration::from_millis(400));
    assert!(s.live());
    s.restore(0, 2);
    s.until_both_verdicts(Duration::from_secs(30));
    for end in 0..2 {
        for (dir, ok, bytes) in s.done_tests(end) {
            assert!(
                ok && bytes == 8 << 20,
                "end {end} {dir:?}: {:?}",
                s.events[end]
            );
        }
        assert!(
            s.events[end]
                .iter()
                .any(|e| matches!(e, Event::Resumed { fresh: false }))
        );
    }
    s.command(0, Command::Say("after".into()));
    s.run_until(Duration::from_secs(1), |s| s.chats(1).len() == 3);
    assert_eq!(s.chats(1), ["before", "during", "after"]);
    // The console records the relay again, and why.
    let last = &s.reports.last().unwrap().1;
    assert_eq!(last.kind, PathKind::Relay);
    assert!(
        last.detail
            .starts_with("resumed: the relay connection failed"),
        "{last:?}"
    );
}

/// The direct path goes silent (the network between the ends drops every
/// packet): both ends notice within the dead-path timeout, fall back to a
/// new relay connection, and the transfer completes byte-exact.
#[test]
fn a_silent_direct_path_falls_back_to_the_relay() {
    let dead = Duration::from_secs(3);
    let mut s = Sim::resuming(Duration::from_millis(2), 20_000, dead);
    s.add_path(1, Duration::from_millis(1), 50_000);
    s.ready(1, 1);
    s.ready(0, 1);
    s.command(
        0,
        Command::LinkTest {
            bytes: 40 << 20,
            direction: Direction::ToUser,
        },
    );
    s.run_until(Duration::from_secs(2), |s| {
        s.closed_paths[0].contains(&RELAY) && s.closed_paths[1].contains(&RELAY)
    });
    s.run_for(Duration::from_millis(100));
    let cut_at = s.now;
    for w in &mut s.paths.get_mut(&1).unwrap().wires {
        w.cut = true;
    }
    s.run_until(dead + Duration::from_millis(50), |s| s.reconnects == [1, 1]);
    assert!(s.now - cut_at >= dead - Duration::from_millis(500));
    s.add_path(2, Duration::from_millis(2), 20_000);
    s.restore(0, 2);
    s.restore(1, 2);
    s.run_until(Duration::from_secs(30), |s| {
        s.done_tests(1).len() == 1 || !s.live()
    });
    assert_eq!(s.done_tests(1), [(Direction::ToUser, true, 40 << 20)]);
    let last = &s.reports.last().unwrap().1;
    assert_eq!(
        last.detail,
        "fallback to the relay: the direct TCP path was silent for 3 s"
    );
}

/// After a fallback to the relay the session goes direct again — first
/// [`REDIRECT_AFTER`] after the resumption, then twice as long for every
/// further direct path it lost — on a new path, with a new report.
#[test]
fn a_resumed_session_goes_direct_again_with_backoff() {
    let dead = Duration::from_secs(3);
    let mut s = Sim::resuming(Duration::from_millis(2), 20_000, dead);
    s.run_for(Duration::from_millis(10));
    assert_eq!(s.negotiations, [1, 1]);
    let mut direct = 1;
    let mut relay = 100;
    s.add_path(direct, Duration::from_millis(1), 50_000);
    s.ready(1, direct);
    s.ready(0, direct);
    s.run_until(Duration::from_secs(1), |s| {
        s.cores.iter().all(|c| c.current() == 1)
    });
    for (round, wait) in [(2, REDIRECT_AFTER), (3, REDIRECT_AFTER * 2)] {
        for w in &mut s.paths.get_mut(&direct).unwrap().wires {
            w.cut = true;
        }
        let want = [round - 1, round - 1];
        s.run_until(dead + Duration::from_millis(50), |s| s.reconnects == want);
        relay += 1;
        s.add_path(relay, Duration::from_millis(2), 20_000);
        s.restore(0, relay);
        s.restore(1, relay);
        s.run_until(Duration::from_secs(1), |s| {
            s.events[0]
                .iter()
                .filter(|e| matches!(e, Event::Resumed { .. }))
                .count()
                == round - 1
        });
        let resumed = s.now;
        s.run_until(wait + Duration::from_secs(1), |s| {
            s.negotiations == [round, round]
        });
        let waited = s.now - resumed;
        assert!(
            waited + Duration::from_millis(20) >= wait && waited <= wait + T_MS * 20,
            "round {round}: went direct again after {waited:?}, not {wait:?}"
        );
        // A new direct path, proven by both ends: the session takes it and
        // the console reports it first.
        direct += 1;
        s.add_path(direct, Duration::from_millis(1), 50_000);
        s.ready(1, direct);
        s.ready(0, direct);
        s.run_until(Duration::from_secs(1), |s| {
            s.cores.iter().all(|c| c.current() == direct)
        });
        assert_eq!(s.reports.last().unwrap().1.kind, PathKind::DirectTcp);
        assert!(s.live());
    }
    s.command(0, Command::Say("still here".into()));
    s.run_until(Duration::from_secs(1), |s| s.chats(1).len() == 1);
}

/// A console that keeps to the relay (`--path relay`) does not start going
/// direct after a resumption either.
#[test]
fn a_relay_only_session_stays_on_the_relay_after_resuming() {
    let config = Config {
        dead_path: Duration::from_secs(3),
        resume_window: Some(RESUME_WINDOW),
        relay_only: Some("direct paths turned off".into()),
        ..Config::new(Duration::ZERO, 0)
    };
    let mut s = Sim::with(Duration::from_millis(2), 20_000, config);
    s.run_for(Duration::from_millis(10));
    let before = s.negotiations;
    s.kill(RELAY);
    s.add_path(2, Duration::from_millis(2), 20_000);
    s.restore(0, 2);
    s.restore(1, 2);
    s.run_for(REDIRECT_AFTER * 3);
    assert!(s.live());
    assert_eq!(s.negotiations, before);
    let relay_reports = s
        .reports
        .iter()
        .filter(|(_, c)| c.kind == PathKind::Relay)
        .count();
    assert_eq!(
        relay_reports, 2,
        "stays on the relay, then resumed: {:?}",
        s.reports
    );
}

/// The console restarted (closed and opened again: a new core, nothing
/// kept): the applet meets it afresh — what ran on the channels stops, the
/// session and its chat go on.
#[test]
fn a_restarted_console_is_met_afresh() {
    let mut s = Sim::resuming(Duration::from_millis(1), 20_000, DEAD_PATH);
    s.command(
        0,
        Command::LinkTest {
            bytes: 32 << 20,
            direction: Direction::ToUser,
        },
    );
    s.run_for(Duration::from_millis(100));
    s.kill(RELAY);
    s.add_path(2, Duration::from_millis(1), 20_000);
    let config = Config {
        incarnation: 101,
        resume_window: Some(RESUME_WINDOW),
        ..Config::new(Duration::ZERO, 0)
    };
    let now = s.now;
    s.cores[0] = Core::new(Role::Console, now, config);
    // The new console's first frame goes on the new relay.
    let first = s.cores[0].poll_action();
    assert!(matches!(
        first,
        Some(Action::Send {
            path: RELAY,
            frame: Frame::Control(Control::Resume {
                incarnation: 101,
                next: [0, 0]
            })
        })
    ));
    s.paths.get_mut(&2).unwrap().wires[0].control.push_back(
        first
            .map(|a| match a {
                Action::Send { frame, .. } => frame,
                _ => unreachable!(),
            })
            .unwrap(),
    );
    s.cores[0].out = 2;
    s.cores[0].read = Some(2);
    s.cores[0].paths = BTreeMap::from([(2, PathInfo::relay())]);
    s.restore(1, 2);
    s.run_until(Duration::from_secs(1), |s| {
        s.events[1]
            .iter()
            .any(|e| matches!(e, Event::Resumed { fresh: true }))
    });
    assert_eq!(
        s.done_tests(1),
        [(Direction::ToUser, false, s.done_tests(1)[0].2)]
    );
    s.command(0, Command::Say("back".into()));
    s.command(1, Command::Say("hello again".into()));
    s.command(
        0,
        Command::LinkTest {
            bytes: 1 << 20,
            direction: Direction::ToUser,
        },
    );
    s.run_until(Duration::from_secs(5), |s| {
        s.chats(1) == ["back"] && s.chats(0) == ["hello again"] && s.done_tests(1).len() == 2
    });
    assert_eq!(s.done_tests(1)[1], (Direction::ToUser, true, 1 << 20));
}

/// Nobody comes back within the resume window: the session ends, saying
/// what was lost.
#[test]
fn the_resume_window_running_out_ends_the_session() {
    let mut s = Sim::resuming(Duration::from_millis(1), 20_000, DEAD_PATH);
    s.run_for(Duration::from_millis(20));
    s.kill(RELAY);
    s.run_until(RESUME_WINDOW + Duration::from_secs(1), |s| !s.live());
    assert!(
        matches!(s.cores[0].finished(), Some(Err(SessionError::NotResumed(why))) if why.contains("relay connection"))
    );
    // Ending while reconnecting is the user's right and immediate.
    let mut s = Sim::resuming(Duration::from_millis(1), 20_000, DEAD_PATH);
    s.kill(RELAY);
    s.command(1, Command::End("bye".into()));
    assert!(matches!(s.cores[1].finished(), Some(Ok(o)) if o.local));
}

/// A `Resume` on a live path, or acknowledging what was never sent, is a
/// protocol violation, not something to act on.
#[test]
fn replayed_resumes_and_forged_acks_are_refused() {
    let mut s = Sim::resuming(Duration::from_millis(1), 20_000, DEAD_PATH);
    s.run_for(Duration::from_millis(20));
    let now = s.now;
    s.cores[1].handle_frame(
        now,
        RELAY,
        Frame::Control(Control::Resume {
            incarnation: 100,
            next: [0, 0],
        }),
    );
    assert!(matches!(
        s.cores[1].finished(),
        Some(Err(SessionError::Protocol(_)))
    ));
    s.cores[0].handle_frame(
        now,
        RELAY,
        Frame::Control(Control::Ack { next: [1_000, 0] }),
    );
    assert!(matches!(
        s.cores[0].finished(),
        Some(Err(SessionError::Protocol(_)))
    ));
}

/// A probe's byte on the interactive channel is not held up by a bulk
/// transfer that fills the path: it comes back within a round trip plus
/// the one bulk frame already being sent.
#[test]
fn interactive_data_overtakes_bulk() {
    // 2 ms each way; 1 MB/s: a 64 KiB frame takes 64 ms to send.
    let mut s = Sim::new(Duration::from_millis(2), 1_000);
    s.link_tests(64 << 20, 64 << 20);
    s.run_for(Duration::from_millis(500));
    let mut rtts = Vec::new();
    for _ in 0..10 {
        s.command(0, Command::Probe);
        let before = s.events[0].len();
        s.run_until(Duration::from_secs(2), |s| {
            s.events[0][before..]
                .iter()
                .any(|e| matches!(e, Event::ProbeRtt(_)))
        });
        for e in &s.events[0][before..] {
            if let Event::ProbeRtt(r) = e {
                rtts.push(*r);
            }
        }
    }
    // Without priority a probe would wait behind 4 queued 64 KiB frames
    // each way (≥ 512 ms).
    let worst = rtts.iter().max().unwrap();
    assert!(
        *worst < Duration::from_millis(150),
        "probe round trips: {rtts:?}"
    );
    assert!(s.live());
}

/// Bulk data may run 25 ms of queue ahead of chat alone, and only 1 ms
/// once an interactive channel is open (see `pacing`): here 100 MB/s with
/// a 10 ms round trip, caps of about 3.5 MB and 1.1 MB. Chat alone, the
/// simulated path's own queue is the limit (about 2 MB in flight).
#[test]
fn bulk_queues_less_once_an_interactive_channel_is_open() {
    let mut s = Sim::new(Duration::from_millis(5), 100_000);
    s.command(
        0,
        Command::LinkTest {
            bytes: 1 << 30,
            direction: Direction::ToUser,
        },
    );
    let most_in_flight = |s: &mut Sim| {
        s.run_for(Duration::from_millis(500));
        let mut most = 0;
        for _ in 0..300 {
            s.step();
            most = most.max(s.cores[0].pacing.in_flight());
        }
        most
    };
    let chat_only = most_in_flight(&mut s);
    s.command(0, Command::Probe);
    let interactive = most_in_flight(&mut s);
    assert!(
        chat_only > 1_800_000,
        "chat only: {chat_only} bytes in flight"
    );
    assert!(
        (800_000..1_400_000).contains(&interactive),
        "interactive channel open: {interactive} bytes in flight (chat only: {chat_only})"
    );
    assert!(s.live());
}

#[test]
fn protocol_violations_end_the_session() {
    let mut s = Sim::new(Duration::from_millis(1), 50_000);
    let now = s.now;
    s.cores[1].handle_frame(
        now,
        RELAY,
        Frame::Channel(ChannelFrame::Data {
            channel: 9,
            data: vec![1].into(),
        }),
    );
    assert!(matches!(
        s.cores[1].finished(),
        Some(Err(SessionError::Protocol(_)))
    ));
    s.cores[0].handle_frame(
        now,
        RELAY,
        Frame::Handshake(Handshake::Proof { mac: [0; 32] }),
    );
    assert!(matches!(
        s.cores[0].finished(),
        Some(Err(SessionError::Protocol(_)))
    ));
    let mut s = Sim::new(Duration::from_millis(1), 50_000);
    let now = s.now;
    s.cores[0].handle_frame(now, 7, Frame::Control(Control::Chat { text: "x".into() }));
    assert!(matches!(
        s.cores[0].finished(),
        Some(Err(SessionError::Protocol(_)))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// For random delays, bandwidths, traffic and cutover timings, every
    /// link-test byte and chat line arrives exactly once and in order, and
    /// the session ends on the direct path with the relay closed.
    #[test]
    fn traffic_survives_any_cutover_timing(
        relay_delay in 0u64..20,
        direct_delay in 0u64..20,
        relay_rate in 2_000usize..100_000,
        direct_rate in 2_000usize..100_000,
        to_user in 0u64..(3 << 20),
        from_user in 0u64..(3 << 20),
        chats in 0usize..20,
        ready_console in 0u64..300,
        ready_applet in 0u64..300,
    ) {
        let mut s = Sim::new(Duration::from_millis(relay_delay), relay_rate);
        s.add_path(1, Duration::from_millis(direct_delay), direct_rate);
        s.link_tests(to_user, from_user);
        let mut sent = Vec::new();
        let (mut c_ready, mut a_ready) = (false, false);
        for t in 0..400u64 {
            if t.is_multiple_of(20) && sent.len() < chats {
                let line = format!("line {t}");
                s.command(0, Command::Say(line.clone()));
                sent.push(line);
            }
            if t == ready_console { s.ready(0, 1); c_ready = true; }
            if t == ready_applet { s.ready(1, 1); a_ready = true; }
            s.step();
        }
        prop_assert!(c_ready && a_ready);
        s.until_both_verdicts(Duration::from_secs(120));
        prop_assert!(s.live(), "{:?} {:?}", s.cores[0].finished(), s.cores[1].finished());
        for end in 0..2 {
            let mut done = s.done_tests(end);
            done.sort_by_key(|(d, _, _)| d.as_str());
            let want = {
                let mut w = vec![(Direction::FromUser, true, from_user), (Direction::ToUser, true, to_user)];
                w.sort_by_key(|(d, _, _)| d.as_str());
                w
            };
            prop_assert_eq!(done, want);
            prop_assert!(s.closed_paths[end].contains(&RELAY));
        }
        s.run_until(Duration::from_secs(5), |s| s.chats(1).len() == sent.len());
        prop_assert_eq!(s.chats(1), sent);
    }

    /// For random traffic and one to three deaths of the path in use (the
    /// relay or a direct path, at random times, the ends restored at
    /// different times), every link-test byte and chat line arrives exactly
    /// once and in order.
    #[test]
    fn traffic_survives_any_number_of_path_deaths(
        rate in 5_000usize..60_000,
        to_user in 0u64..(4 << 20),
        from_user in 0u64..(4 << 20),
        deaths in proptest::collection::vec((0u64..400, 0u64..200, 0u64..200), 1..4),
        direct_first in any::<bool>(),
    ) {
        let mut s = Sim::resuming(Duration::from_millis(2), rate, Duration::from_secs(2));
        if direct_first {
            s.add_path(1, Duration::from_millis(1), rate);
            s.ready(0, 1);
            s.ready(1, 1);
        }
        s.link_tests(to_user, from_user);
        let mut sent = Vec::new();
        for (next_path, (i, (after, console_at, applet_at))) in
            (10 as PathId..).zip(deaths.into_iter().enumerate())
        {
            for t in 0..after {
                if t % 50 == 0 {
                    let line = format!("line {i}.{t}");
                    s.command(0, Command::Say(line.clone()));
                    sent.push(line);
                }
                s.step();
            }
            if !s.live() { break; }
            let path = s.cores[0].current();
            s.kill(path);
            // The gateway pairs the ends again once both have come back
            // (an end still on a path that is alive notices its loss when
            // the other closes it).
            s.run_until(Duration::from_secs(10), |s| {
                (0..2).all(|e| s.reconnects[e] > 0 && s.cores[e].reading().is_none()) || !s.live()
            });
            s.add_path(next_path, Duration::from_millis(2), rate);
            for t in 0..=console_at.max(applet_at) {
                if t == console_at { s.restore(0, next_path); }
                if t == applet_at { s.restore(1, next_path); }
                s.step();
            }
        }
        s.until_both_verdicts(Duration::from_secs(120));
        prop_assert!(s.live(), "{:?} {:?}", s.cores[0].finished(), s.cores[1].finished());
        for end in 0..2 {
            for (dir, ok, bytes) in s.done_tests(end) {
                let want = if dir == Direction::ToUser { to_user } else { from_user };
                prop_assert!(ok && bytes == want, "end {} {:?}: {:?}", end, dir, s.events[end]);
            }
        }
        s.run_until(Duration::from_secs(5), |s| s.chats(1).len() == sent.len());
        prop_assert_eq!(s.chats(1), sent);
    }
}

/// The application's channels: what one end writes arrives whole and in
/// order at the other, whatever the sizes, with the close after it; the
/// receiver's `Consumed` keeps the credit flowing; two channels at once
/// share the path.
#[test]
fn application_channels_carry_what_is_written_and_close_after_it() {
    let mut s = Sim::new(Duration::from_millis(1), 100_000);
    let base = channels::APP_CHANNELS + 1;
    let sizes = [3 << 20, 70_000usize, 1000, 0];
    for (i, size) in sizes.iter().enumerate() {
        let channel = base + 2 * i as u32;
        s.command(
            0,
            Command::Open {
                channel,
                kind: ChannelKind::File,
            },
        );
        let data: Vec<u8> = (0..*size).map(|b| (b % 251) as u8).collect();
        for chunk in data.chunks(lifeline_protocol::e2e::MAX_DATA) {
            s.command(
                0,
                Command::Write {
                    channel,
                    data: bytes::Bytes::copy_from_slice(chunk),
                },
            );
        }
        s.command(0, Command::Close { channel });
    }
    let mut got: BTreeMap<u32, (Vec<u8>, bool)> = BTreeMap::new();
    // The receiving application: uses what arrives (after the close too,
    // as a real one may), and closes its half once the sender's close is in.
    let deadline = s.now + Duration::from_secs(30);
    while got.values().filter(|(_, closed)| *closed).count() < sizes.len() {
        assert!(s.now < deadline, "not all arrived: {:?}", got.keys());
        s.step();
        for e in std::mem::take(&mut s.events[1]) {
            match e {
                Event::ChannelData { channel, data } => {
                    got.entry(channel).or_default().0.extend(&data);
                    s.command(
                        1,
                        Command::Consumed {
                            channel,
                            bytes: data.len() as u32,
                        },
                    );
                }
                Event::ChannelClosed { channel } => {
                    got.entry(channel).or_default().1 = true;
                    s.command(1, Command::Close { channel });
                }
                _ => {}
            }
        }
    }
    s.run_for(Duration::from_millis(100));
    for (i, size) in sizes.iter().enumerate() {
        let (data, closed) = &got[&(base + 2 * i as u32)];
        assert_eq!(data.len(), *size, "channel {i}");
        assert!(data.iter().enumerate().all(|(b, v)| *v == (b % 251) as u8));
        assert!(closed);
    }
    // Both halves closed: both ends forgot every channel, and nothing the
    // sender sent counts as in flight any more (the receiver granted back
    // in steps and stopped at the close; the rest is forgiven).
    let _ = s.cores[0].poll_bulk();
    assert!(s.cores[0].channels.is_empty() && s.cores[1].channels.is_empty());
    assert_eq!(s.cores[0].pacing.in_flight(), 0);
}

/// A channel is reset while its data is on its way — by the receiver
/// (the end user's side stops a file), or by the sender, whose reset (a
/// control frame, sent first) overtakes the data it queued: what was in
/// flight arrives after the reset and is dropped, and the session goes
/// on. (It was taken for a broken protocol and ended the session.)
#[test]
fn data_in_flight_on_a_channel_reset_by_either_end_is_dropped() {
    for resetter in [1, 0] {
        let mut s = Sim::new(Duration::from_millis(20), 100_000);
        let channel = channels::APP_CHANNELS + 1;
        s.command(
            0,
            Command::Open {
                channel,
                kind: ChannelKind::File,
            },
        );
        for chunk in vec![7u8; 2 << 20].chunks(lifeline_protocol::e2e::MAX_DATA) {
            s.command(
                0,
                Command::Write {
                    channel,
                    data: bytes::Bytes::copy_from_slice(chunk),
                },
            );
        }
        s.command(0, Command::Close { channel });
        // The reset comes at the first data, with more still in flight.
        let deadline = s.now + Duration::from_secs(10);
        'first: loop {
            assert!(s.now < deadline, "no data arrived");
            s.step();
            for e in std::mem::take(&mut s.events[1]) {
                if matches!(e, Event::ChannelData { .. }) {
                    break 'first;
                }
            }
        }
        s.command(
            resetter,
            Command::Reset {
                channel,
                reason: "stopped".into(),
            },
        );
        s.run_for(Duration::from_millis(500));
        assert!(
            s.live(),
            "reset by end {resetter}: the session ended: {:?} / {:?}",
            s.cores[0].finished(),
            s.cores[1].finished()
        );
        s.command(1, Command::Say("still here".into()));
        s.run_until(Duration::from_secs(2), |s| s.chats(0) == ["still here"]);
    }
}
