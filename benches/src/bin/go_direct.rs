//! Going direct on loopback: how long from the start of the negotiation to
//! the first byte on the direct path, and the longest pause a continuous
//! stream sees during the cutover, next to the old path's round trip
//! measured in the same run.
//!
//! `go_direct [--runs 20] [--udp-runs 10]`
//!
//! Each run: a real `gateway` (release build next to this binary) relays a
//! session between an in-process applet and console (`lifeline-session`,
//! exactly as the binaries run it). For the first half second the console
//! stays on the relay (`start_after`): it measures the relay's round trip
//! with ten chat ping-pongs (the applet answers each), then sends a chat
//! message every millisecond. At 500 ms it opens the negotiation; the
//! applet timestamps every tick it receives.
//!
//! * **to direct** — negotiation start → the first tick the applet received
//!   over the direct path (the first after its cutover event).
//! * **switch pause** — the gap between the last tick that came over the
//!   relay and the first that came over the direct path: the cutover
//!   itself (the target).
//! * **longest gap ±200 ms** — the longest gap between consecutive ticks
//!   within ±200 ms of the applet's cutover, which also covers setting up
//!   the direct path (its TLS handshake runs on the same two cores);
//!   **steady max gap** is the same measure over 200 ms of ticks on the
//!   relay before the negotiation, as a baseline. Every tick must arrive,
//!   in order, once.
//! * **relay RTT** — chat round trip (console → relay → applet → relay →
//!   console, through both ends' session loops).
#![forbid(unsafe_code)]

use anyhow::{Context, Result, anyhow, bail};
use lifeline_benches::arg;
use lifeline_benches::client::{self, Tech};
use lifeline_benches::procs::GatewayProc;
use lifeline_benches::stats::{Table, median, percentile};
use lifeline_benches::sys::print_header;
use lifeline_protocol::e2e::EndedBy;
use lifeline_session::direct::{Policy, Settings, Side};
use lifeline_session::identity::SessionIdentity;
use lifeline_session::live::{self, Command, Event};
use lifeline_session::secure;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long the console stays on the relay before negotiating.
const START_AFTER: Duration = Duration::from_millis(500);
/// When the ticks start (after the ping-pongs).
const TICKS_FROM: Duration = Duration::from_millis(250);
/// Tick interval.
const TICK: Duration = Duration::from_millis(1);
/// Window around the cutover searched for the longest pause.
const WINDOW: Duration = Duration::from_millis(200);

#[derive(Debug)]
struct Sample {
    to_direct_ms: f64,
    switch_ms: f64,
    pause_ms: f64,
    steady_gap_ms: f64,
    relay_rtt_ms: f64,
}

fn main() -> Result<()> {
    let runs: usize = arg("runs", 20)?;
    let udp_runs: usize = arg("udp-runs", 10)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        print_header("Going direct: time to the direct path and the cutover pause (loopback)");
        let gw = GatewayProc::start("go_direct", &["--stun-listen", "127.0.0.1:0"])?;
        let tech = client::bench_technician(&gw).await?;
        let mut table = Table::new(&[
            "path",
            "runs",
            "to direct p50 / p90 / max ms",
            "switch pause p50 / max ms",
            "longest gap ±200 ms p50 / max ms",
            "steady max gap p50 ms",
            "relay RTT p50 ms",
            "switch pause target (RTT + 5 ms)",
        ]);
        let tcp = Policy::parse("tcp", Duration::ZERO).map_err(|e| anyhow!(e))?;
        let udp = Policy::parse("udp", Duration::ZERO).map_err(|e| anyhow!(e))?;
        for (name, policy, n) in [
            ("direct TCP", tcp, runs),
            ("XTCP over UDP (ICE at once, TCP off)", udp, udp_runs),
        ] {
            let mut samples = Vec::new();
            for i in 0..n {
                eprintln!("{name}: run {}/{n}", i + 1);
                samples.push(
                    one_run(&gw, &tech, policy)
                        .await
                        .with_context(|| format!("{name}, run {}", i + 1))?,
                );
            }
            let col = |f: fn(&Sample) -> f64| samples.iter().map(f).collect::<Vec<_>>();
            let to = col(|s| s.to_direct_ms);
            let switch = col(|s| s.switch_ms);
            let pause = col(|s| s.pause_ms);
            let rtt = median(&col(|s| s.relay_rtt_ms));
            let max = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
            table.row(vec![
                name.into(),
                n.to_string(),
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    median(&to),
                    percentile(&to, 90.0),
                    max(&to)
                ),
                format!("{:.2} / {:.2}", median(&switch), max(&switch)),
                format!("{:.2} / {:.2}", median(&pause), max(&pause)),
                format!("{:.2}", median(&col(|s| s.steady_gap_ms))),
                format!("{rtt:.2}"),
                format!(
                    "{:.2} {}",
                    rtt + 5.0,
                    if max(&switch) <= rtt + 5.0 {
                        "✔"
                    } else {
                        "✘ (max)"
                    }
                ),
            ]);
        }
        println!(
            "Targets: direct TCP in ≤ 50 ms; pause ≤ 1 RTT of the old path + 5 ms. \
             Negotiation starts {} ms after the end-to-end TLS is up; ticks every {} ms.\n",
            START_AFTER.as_millis(),
            TICK.as_millis()
        );
        table.print();
        Ok(())
    })
}

async fn one_run(gw: &GatewayProc, tech: &Tech, policy: Policy) -> Result<Sample> {
    let id = Arc::new(SessionIdentity::generate("go_direct")?);
    // A label of its own: an open session's label is taken (the sessions
    // of earlier runs stay open in the store, their relay gone).
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let label = format!(
        "go_direct {}",
        RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let p = client::paired(gw, tech, id.pin(), &label).await?;
    let (session, applet, console) = (p.session, p.applet, p.console);
    let stun = p.pairing.stun;
    let stun = lifeline_session::direct::resolve_stun(stun.as_deref()).await;
    let pin = id.pin();
    let (a_est, c_est) = tokio::join!(
        secure::applet_side(applet, session.guid, pin, session.secret),
        secure::console_side(console, session.guid, &id, session.secret)
    );
    let (a_est, c_est) = (a_est?, c_est?);
    let tls_ready = Instant::now();
    let negotiation = tls_ready + START_AFTER;

    let console_setup = live::Setup {
        me: EndedBy::Technician,
        guid: session.guid,
        side: Side::Console { identity: id },
        direct: Settings {
            policy,
            stun,
            loopback: true,
            start_after: START_AFTER,
            ..Settings::default()
        },
        on_path: None,
        scheduling: Default::default(),
        reconnect: None,
        dead_path: lifeline_session::core::DEAD_PATH,
        traffic: Default::default(),
    };
    let applet_setup = live::Setup {
        me: EndedBy::User,
        guid: session.guid,
        side: Side::Applet { console_pin: pin },
        direct: Settings {
            stun,
            loopback: true,
            ..Settings::default()
        },
        on_path: None,
        scheduling: Default::default(),
        reconnect: None,
        dead_path: lifeline_session::core::DEAD_PATH,
        traffic: Default::default(),
    };
    let (c_cmd, c_cmd_rx) = mpsc::unbounded_channel();
    let (c_ev_tx, mut c_ev) = mpsc::channel(4096);
    let (a_cmd, a_cmd_rx) = mpsc::unbounded_channel();
    let (a_ev_tx, mut a_ev) = mpsc::channel(4096);
    let console_task = tokio::spawn(live::run(c_est, console_setup, c_cmd_rx, c_ev_tx));
    let applet_task = tokio::spawn(live::run(a_est, applet_setup, a_cmd_rx, a_ev_tx));

    // The applet: answers pings, timestamps ticks, notes its cutover.
    let applet_side = tokio::spawn(async move {
        let mut ticks: Vec<(Instant, u64)> = Vec::new();
        let mut cutover = None;
        let mut first_direct = None;
        while let Some(ev) = a_ev.recv().await {
            let now = Instant::now();
            match ev {
                Event::Chat(text) => {
                    if let Some(n) = text.strip_prefix("ping ") {
                        let _ = a_cmd.send(Command::Say(format!("pong {n}")));
                    } else if let Some(n) = text.strip_prefix("tick ") {
                        let n: u64 = n.parse()?;
                        if cutover.is_some() && first_direct.is_none() {
                            first_direct = Some(now);
                        }
                        ticks.push((now, n));
                        if let Some(t) = cutover
                            && now > t + WINDOW * 2
                        {
                            break;
                        }
                    }
                }
                Event::PathChanged { .. } => cutover = Some(now),
                _ => {}
            }
        }
        anyhow::Ok((ticks, cutover, first_direct, a_cmd))
    });

    // The console: ping-pongs on the relay, then ticks until the applet
    // has what it needs.
    let mut rtts = Vec::new();
    for i in 0..10 {
        let t0 = Instant::now();
        c_cmd.send(Command::Say(format!("ping {i}")))?;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), c_ev.recv()).await {
                Ok(Some(Event::Chat(t))) if t == format!("pong {i}") => break,
                Ok(Some(_)) => {}
                _ => bail!("no pong on the relay"),
            }
        }
        rtts.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    tokio::time::sleep_until((tls_ready + TICKS_FROM).into()).await;
    let mut tick = tokio::time::interval(TICK);
    let mut n = 0u64;
    let deadline = negotiation + Duration::from_secs(20);
    while !applet_side.is_finished() {
        if Instant::now() > deadline {
            bail!("the session did not go direct within 20 s");
        }
        tick.tick().await;
        c_cmd.send(Command::Say(format!("tick {n}")))?;
        n += 1;
        while let Ok(ev) = c_ev.try_recv() {
            if let Event::StaysOnRelay { reason } = ev {
                bail!("stayed on the relay: {reason}");
            }
        }
    }
    let (ticks, cutover, first_direct, _a_cmd) = applet_side.await??;
    c_cmd.send(Command::End("bench run over".into()))?;
    let _ = console_task.await;
    let _ = applet_task.await;

    let cutover = cutover.ok_or_else(|| anyhow!("the applet never moved"))?;
    let first_direct = first_direct.ok_or_else(|| anyhow!("no tick over the direct path"))?;
    for (i, w) in ticks.windows(2).enumerate() {
        if w[1].1 != w[0].1 + 1 {
            bail!(
                "tick {} followed by {} (at {i}): lost, duplicated or reordered",
                w[0].1,
                w[1].1
            );
        }
    }
    let max_gap = |from: Instant, to: Instant| {
        ticks
            .windows(2)
            .filter(|w| w[0].0 >= from && w[1].0 <= to)
            .map(|w| (w[1].0 - w[0].0).as_secs_f64() * 1e3)
            .fold(0.0, f64::max)
    };
    let before = ticks
        .iter()
        .rev()
        .find(|t| t.0 < first_direct)
        .ok_or_else(|| anyhow!("no tick before the cutover"))?
        .0;
    Ok(Sample {
        to_direct_ms: (first_direct - negotiation).as_secs_f64() * 1e3,
        switch_ms: (first_direct - before).as_secs_f64() * 1e3,
        pause_ms: max_gap(cutover - WINDOW, cutover + WINDOW),
        steady_gap_ms: max_gap(negotiation - WINDOW, negotiation),
        relay_rtt_ms: median(&rtts),
    })
}
