//! Channels: what an interactive byte sees while a bulk transfer fills the
//! same session, on each kind of path, with the session core's scheduling
//! as shipped (priorities and bulk pacing) next to two references measured
//! in the same run (priorities without pacing; one queue without pacing,
//! as before channels had classes); and what a bulk channel moves, next to
//! the raw end-to-end TLS stream on the relay.
//!
//! `channels [--probes 200] [--bulk-mib 512]`
//!
//! Each row: a real `gateway` (release build next to this binary) relays a
//! session between an in-process applet and console (`lifeline-session`,
//! exactly as the binaries run it), kept on the relay or moved to direct
//! TCP or XTCP over UDP on loopback. The console sends one-byte probes on
//! an interactive echo channel, one after the other, and times each round
//! trip: first idle, then while a link test (a bulk channel) streams
//! console → applet without pause. **p99 target**: the idle p50 (the
//! path's round trip through both session loops) + 5 ms.
//!
//! Bulk goodput: a link test of `--bulk-mib` MiB console → applet through
//! a channel (credit-based flow control, 64 KiB frames), next to the same
//! number of bytes written straight into the end-to-end TLS stream on a
//! fresh relayed session of the same gateway (no session layer at all).
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
use lifeline_session::linktest::Direction;
use lifeline_session::live::{self, Command, Event, Scheduling};
use lifeline_session::secure;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

struct Live {
    cmd: mpsc::UnboundedSender<Command>,
    ev: mpsc::Receiver<Event>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Live {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A session on `policy`'s path (waits for the move when direct).
async fn session(
    gw: &GatewayProc,
    tech: &Tech,
    policy: Policy,
    scheduling: Scheduling,
    label: &str,
) -> Result<Live> {
    let id = Arc::new(SessionIdentity::generate(label)?);
    let p = client::paired(gw, tech, id.pin(), label).await?;
    let stun = lifeline_session::direct::resolve_stun(p.pairing.stun.as_deref()).await;
    let pin = id.pin();
    let (a, c) = tokio::join!(
        secure::applet_side(p.applet, p.session.guid, pin, p.session.secret),
        secure::console_side(p.console, p.session.guid, &id, p.session.secret)
    );
    let (a, c) = (a?, c?);
    let settings = |policy| Settings {
        policy,
        stun,
        loopback: true,
        ..Settings::default()
    };
    let console = live::Setup {
        me: EndedBy::Technician,
        guid: p.session.guid,
        side: Side::Console { identity: id },
        direct: settings(policy),
        on_path: None,
        scheduling,
        reconnect: None,
        dead_path: lifeline_session::core::DEAD_PATH,
        traffic: Default::default(),
    };
    let applet = live::Setup {
        me: EndedBy::User,
        guid: p.session.guid,
        side: Side::Applet { console_pin: pin },
        direct: settings(Policy::parse("auto", Duration::ZERO).map_err(|e| anyhow!(e))?),
        on_path: None,
        scheduling,
        reconnect: None,
        dead_path: lifeline_session::core::DEAD_PATH,
        traffic: Default::default(),
    };
    let (cmd, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, mut ev) = mpsc::channel(4096);
    let (_a_cmd, a_cmd_rx) = mpsc::unbounded_channel::<Command>();
    let (a_ev_tx, mut a_ev) = mpsc::channel(4096);
    let tasks = vec![
        tokio::spawn(async move {
            let _ = live::run(c, console, cmd_rx, ev_tx).await;
        }),
        tokio::spawn(async move {
            let _keep = _a_cmd;
            let _ = live::run(a, applet, a_cmd_rx, a_ev_tx).await;
        }),
        tokio::spawn(async move { while a_ev.recv().await.is_some() {} }),
    ];
    if policy.tcp || policy.udp {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, ev.recv()).await {
                Ok(Some(Event::PathChanged { .. })) => break,
                Ok(Some(Event::StaysOnRelay { reason })) => bail!("stayed on the relay: {reason}"),
                Ok(Some(_)) => {}
                _ => bail!("the session did not go direct"),
            }
        }
    }
    Ok(Live { cmd, ev, tasks })
}

/// `n` probes one after the other; their round trips in ms.
async fn probes(s: &mut Live, n: usize) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        s.cmd.send(Command::Probe)?;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), s.ev.recv()).await {
                Ok(Some(Event::ProbeRtt(r))) => {
                    out.push(r.as_secs_f64() * 1e3);
                    break;
                }
                Ok(Some(Event::TestDone {
                    ok: false, detail, ..
                })) => bail!("link test failed: {detail}"),
                Ok(Some(_)) => {}
                _ => bail!("a probe did not come back"),
            }
        }
        // A keystroke's pace, not a flood.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(out)
}

/// Bulk goodput of a link test, MB/s.
async fn link_test(s: &mut Live, bytes: u64) -> Result<f64> {
    s.cmd.send(Command::LinkTest {
        bytes,
        direction: Direction::ToUser,
    })?;
    loop {
        match tokio::time::timeout(Duration::from_secs(120), s.ev.recv()).await {
            Ok(Some(Event::TestDone {
                ok, secs, detail, ..
            })) => {
                if !ok {
                    bail!("link test failed: {detail}");
                }
                return Ok(bytes as f64 / secs / 1e6);
            }
            Ok(Some(_)) => {}
            _ => bail!("the link test did not finish"),
        }
    }
}

/// The reference: `bytes` written straight into the end-to-end TLS
/// stream of a relayed session, read at the other end; MB/s.
async fn raw_tls(gw: &GatewayProc, tech: &Tech, bytes: u64) -> Result<f64> {
    let id = Arc::new(SessionIdentity::generate("channels-raw")?);
    let p = client::paired(gw, tech, id.pin(), "channels-raw").await?;
    let pin = id.pin();
    let (a, c) = tokio::join!(
        client::inner_client(p.applet, pin),
        client::inner_server(p.console, &id)
    );
    let (mut a, mut c) = (a?, c?);
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        let chunk = vec![0x5a; 64 << 10];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            c.write_all(&chunk[..n]).await?;
            left -= n as u64;
        }
        c.flush().await?;
        anyhow::Ok(c)
    });
    let mut buf = vec![0u8; 256 << 10];
    let mut got = 0u64;
    while got < bytes {
        let n = a.read(&mut buf).await?;
        if n == 0 {
            bail!("the stream ended early");
        }
        got += n as u64;
    }
    let took = started.elapsed();
    let _ = writer.await?;
    Ok(bytes as f64 / took.as_secs_f64() / 1e6)
}

fn fmt_p(v: &[f64]) -> String {
    format!("{:.2} / {:.2}", median(v), percentile(v, 99.0))
}

fn main() -> Result<()> {
    let n: usize = arg("probes", 200)?;
    let bulk_mib: u64 = arg("bulk-mib", 512)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        print_header("Channels: interactive round trips under a bulk transfer, and bulk goodput (loopback)");
        let gw = GatewayProc::start("channels", &["--stun-listen", "127.0.0.1:0"])?;
        let tech = client::bench_technician(&gw).await?;
        let mut latency = Table::new(&[
            "path",
            "scheduling",
            "idle p50 / p99 ms",
            "bulk running p50 / p99 ms",
            "target p99 (idle p50 + 5 ms)",
        ]);
        let mut goodput = Table::new(&[
            "path",
            "scheduling",
            "link test through a channel MB/s",
            "raw end-to-end TLS on the relay MB/s",
            "of raw",
        ]);
        let paths = [
            ("relay", "relay"),
            ("direct TCP", "tcp"),
            ("XTCP over UDP", "udp"),
        ];
        let schedulings = [
            (Scheduling::PacedPriorities, "priorities + bulk pacing (shipped)"),
            (Scheduling::Priorities, "priorities, no pacing (reference)"),
            (Scheduling::OneQueue, "one queue, no pacing (reference: before channels)"),
        ];
        let raw = raw_tls(&gw, &tech, bulk_mib << 20).await.context("raw reference")?;
        let mut sessions = 0;
        // A label of its own per session: the previous one may still be
        // closing on the gateway, and a technician's open labels are unique.
        let mut label = || {
            sessions += 1;
            format!("channels {sessions}")
        };
        for (name, policy) in paths {
            let policy = Policy::parse(policy, Duration::ZERO).map_err(|e| anyhow!(e))?;
            for (scheduling, what) in schedulings {
                eprintln!("{name}, {what}");
                let mut s = session(&gw, &tech, policy, scheduling, &label())
                    .await
                    .with_context(|| name.to_owned())?;
                let idle = probes(&mut s, n).await?;
                s.cmd
                    .send(Command::LinkTest {
                        bytes: 4 << 30,
                        direction: Direction::ToUser,
                    })
                    ?;
                tokio::time::sleep(Duration::from_millis(500)).await;
                let busy = probes(&mut s, n).await?;
                let target = median(&idle) + 5.0;
                latency.row(vec![
                    name.into(),
                    what.into(),
                    fmt_p(&idle),
                    fmt_p(&busy),
                    format!(
                        "{target:.2} {}",
                        if percentile(&busy, 99.0) <= target { "✔" } else { "✘" }
                    ),
                ]);
                drop(s);
                if scheduling != Scheduling::OneQueue {
                    let mut s = session(&gw, &tech, policy, scheduling, &label()).await?;
                    let mbps = link_test(&mut s, bulk_mib << 20).await?;
                    goodput.row(vec![
                        name.into(),
                        what.into(),
                        format!("{mbps:.0}"),
                        format!("{raw:.0}"),
                        format!("{:.0}%", mbps / raw * 100.0),
                    ]);
                }
            }
        }
        println!("{n} one-byte probes, one at a time, 2 ms apart; the bulk transfer is a link test console → applet that runs throughout.\n");
        latency.print();
        println!("{bulk_mib} MiB console → applet.\n");
        goodput.print();
        Ok(())
    })
}
