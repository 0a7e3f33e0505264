//! `pairing_latency`: with many applets waiting on one gateway, consoles
//! arrive at a steady rate (open loop: `--rates RATE:SECONDS,...`, default
//! 100/s for 5 s then 500/s for 4 s), each pairing with its own session.
//! Per pairing it measures the console's TCP + TLS connect, and the time
//! from its hello being sent to `Paired` being received. Paired sessions
//! stay open until the end of their phase, then close.
//!
//! The reference, run after each phase at the same rate and count, is the
//! splice proxy: a TCP + TLS connect to it, and a 64-byte round trip
//! A → proxy → B → proxy → A between two TLS clients it has already paired.

use anyhow::{Context, Result, bail};
use lifeline_benches::client::{self, Outer};
use lifeline_benches::procs::{GatewayProc, ProxyProc};
use lifeline_benches::stats::{Latencies, Table};
use lifeline_benches::sys;
use lifeline_protocol::ALPN_RELAY;
use lifeline_session::identity::SessionIdentity;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc};
use tokio::time::MissedTickBehavior;

/// Source addresses per block (applets: 127.0.0.x, consoles: 127.0.1.x).
const SOURCES: usize = 20;
/// Pre-paired client pairs through the proxy for the round-trip reference.
const PROXY_PAIRS: usize = 32;
/// Round-trip message size.
const MSG: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Phase {
    rate: u32,
    secs: u32,
}

impl Phase {
    fn count(self) -> usize {
        (self.rate * self.secs) as usize
    }
    fn label(self) -> String {
        format!("{}/s for {} s", self.rate, self.secs)
    }
}

fn parse_phases(s: &str) -> Result<Vec<Phase>> {
    s.split(',')
        .map(|p| {
            let (r, d) = p
                .split_once(':')
                .with_context(|| format!("phase {p:?} is not RATE:SECONDS"))?;
            let phase = Phase {
                rate: r.trim().parse()?,
                secs: d.trim().parse()?,
            };
            if phase.rate == 0 || phase.secs == 0 {
                bail!("phase {p:?}: rate and seconds must be positive");
            }
            Ok(phase)
        })
        .collect()
}

/// Runs `job(i)` for i in 0..count, started at `rate` per second on a
/// fixed schedule (late ticks fire at once, so the offered load holds).
/// Returns the results in start order and the achieved start rate.
async fn open_loop<T, F, Fut>(phase: Phase, job: F) -> Result<(Vec<T>, f64)>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T>> + Send + 'static,
{
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(phase.rate)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut handles = Vec::with_capacity(phase.count());
    let t0 = Instant::now();
    for i in 0..phase.count() {
        tick.tick().await;
        handles.push(tokio::spawn(job(i)));
    }
    let started = phase.count() as f64 / t0.elapsed().as_secs_f64().max(1e-9);
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await??);
    }
    Ok((out, started))
}

#[tokio::main]
async fn main() -> Result<()> {
    let phases = parse_phases(&lifeline_benches::arg("rates", "100:5,500:4".to_owned())?)?;
    let extra: usize = lifeline_benches::arg("extra-waiting", 1000)?;
    let total: usize = phases.iter().map(|p| p.count()).sum();
    let applets = total + extra;
    let max_consoles = phases.iter().map(|p| p.count()).max().unwrap_or(0);
    // Applets from 200 to an address (blocks 127.0.2.x on), consoles
    // from block 127.0.1.x.
    let applet_sources = applets.div_ceil(200).max(SOURCES);
    if applet_sources > 6 * client::SOURCES_PER_BLOCK || max_consoles.div_ceil(SOURCES) > 256 {
        bail!(
            "too many connections for the source addresses at 256 per IP; lower the rates or --extra-waiting"
        );
    }
    sys::print_header("pairing_latency");
    sys::raise_nofile((applets + max_consoles) as u64 + 1024)?;

    let gw = GatewayProc::start("pairing", &[])?;
    let tech = client::bench_technician(&gw).await?;
    let id = SessionIdentity::generate("pairing_latency")?;
    let sessions = client::create_sessions(&tech, id.pin(), applets, 32).await?;
    let guids: Arc<Vec<_>> = Arc::new(sessions.iter().map(|s| s.guid).collect());
    let sessions = Arc::new(sessions);

    // Applets: connect, wait, and once paired hand the stream over to be
    // closed at the end of the phase.
    let cfg = client::outer_config(gw.fingerprint, ALPN_RELAY)?;
    let (paired_tx, mut paired_rx) = mpsc::unbounded_channel::<Outer>();
    let connected = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..128 {
        let (cfg, sessions, next, connected, paired_tx) = (
            cfg.clone(),
            sessions.clone(),
            next.clone(),
            connected.clone(),
            paired_tx.clone(),
        );
        let addr = gw.addr;
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= sessions.len() {
                    return anyhow::Ok(());
                }
                let mut s = client::tls_connect(
                    Some(client::spread_source(i, applet_sources, 2)),
                    addr,
                    cfg.clone(),
                )
                .await?;
                client::applet_wait(&mut s, &sessions[i]).await?;
                connected.fetch_add(1, Ordering::Relaxed);
                let paired_tx = paired_tx.clone();
                tokio::spawn(async move {
                    if client::await_paired(&mut s).await.is_ok() {
                        let _ = paired_tx.send(s);
                    }
                });
            }
        });
    }
    drop(paired_tx);
    while let Some(r) = workers.join_next().await {
        r?.with_context(|| format!("connecting applets; gateway log:\n{}", gw.log_tail(20)))?;
    }
    let waiting = client::health(&tech.portal).await?.waiting;
    if waiting != applets as u64 {
        bail!("{applets} applets connected but the gateway reports {waiting} waiting");
    }
    eprintln!("{waiting} applets waiting");

    let proxy = ProxyProc::start(64 * 1024)?;
    let pcfg = client::outer_config(proxy.fingerprint, ALPN_RELAY)?;
    let mut pairs = Vec::new();
    for _ in 0..PROXY_PAIRS {
        let key = lifeline_benches::random::<16>()?;
        let mut a = client::tls_connect(None, proxy.addr, pcfg.clone()).await?;
        client::proxy_join(&mut a, key).await?;
        let mut b = client::tls_connect(None, proxy.addr, pcfg.clone()).await?;
        client::proxy_join(&mut b, key).await?;
        client::proxy_await_paired(&mut a).await?;
        // B echoes whatever arrives.
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            loop {
                match b.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if b.write_all(&buf[..n]).await.is_err() || b.flush().await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        pairs.push(Mutex::new(a));
    }
    let pairs = Arc::new(pairs);

    let mut table = Table::new(&[
        "offered load",
        "measurement",
        "n",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
    ]);
    let mut cost = Table::new(&[
        "offered load",
        "gateway CPU per pairing (phase start → all paired)",
        "relays closed after the phase in",
    ]);
    let mut base = 0usize;
    for phase in &phases {
        let phase = *phase;
        // Lifeline.
        let (cfg, guids, token, addr) = (cfg.clone(), guids.clone(), tech.token.clone(), gw.addr);
        let cpu0 = sys::process_cpu(gw.pid())?;
        let (results, started) = open_loop(phase, |i| {
            let (cfg, guids, token) = (cfg.clone(), guids.clone(), token.clone());
            async move {
                let t0 = Instant::now();
                let mut s =
                    client::tls_connect(Some(client::loopback_source(1, i % SOURCES)), addr, cfg)
                        .await?;
                let connect = t0.elapsed();
                client::console_hello(&mut s, guids[base + i], &token).await?;
                let t1 = Instant::now();
                client::await_paired(&mut s).await?;
                Ok((connect, t1.elapsed(), s))
            }
        })
        .await
        .with_context(|| format!("pairing; gateway log:\n{}", gw.log_tail(20)))?;
        let cpu = sys::process_cpu(gw.pid())? - cpu0;
        base += phase.count();
        let (mut conn, mut pair) = (Latencies::default(), Latencies::default());
        let mut consoles = Vec::with_capacity(results.len());
        for (c, p, s) in results {
            conn.push(c);
            pair.push(p);
            consoles.push(s);
        }
        // Every applet of this phase must have seen `Paired` too.
        let mut applet_ends = Vec::with_capacity(consoles.len());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while applet_ends.len() < consoles.len() {
            match tokio::time::timeout_at(deadline, paired_rx.recv()).await {
                Ok(Some(s)) => applet_ends.push(s),
                _ => bail!(
                    "only {} of {} applets saw Paired",
                    applet_ends.len(),
                    consoles.len()
                ),
            }
        }
        eprintln!(
            "{}: {} pairings, started at {started:.0}/s",
            phase.label(),
            consoles.len()
        );
        let load = format!("{} ({started:.0}/s achieved)", phase.label());
        let mut cells = vec![
            load.clone(),
            "Lifeline: console hello sent → Paired received (target p99 ≤ 1 ms)".into(),
        ];
        cells.extend(pair.cells());
        table.row(cells);
        let mut cells = vec![load, "Lifeline: console TCP + TLS connect".into()];
        cells.extend(conn.cells());
        table.row(cells);
        let n = consoles.len() as f64;
        let t_close = Instant::now();
        drop(consoles);
        drop(applet_ends);
        client::wait_relays_closed(&tech.portal, Duration::from_secs(120)).await?;
        cost.row(vec![
            phase.label(),
            format!(
                "{:.2} ms (user {:.2}, system {:.2})",
                cpu.total() * 1e3 / n,
                cpu.user * 1e3 / n,
                cpu.sys * 1e3 / n
            ),
            format!("{:.2} s", t_close.elapsed().as_secs_f64()),
        ]);

        // Reference, same schedule.
        let (pcfg, pairs, paddr) = (pcfg.clone(), pairs.clone(), proxy.addr);
        let (results, started) = open_loop(phase, |i| {
            let (pcfg, pairs) = (pcfg.clone(), pairs.clone());
            async move {
                let t0 = Instant::now();
                let s =
                    client::tls_connect(Some(client::loopback_source(1, i % SOURCES)), paddr, pcfg)
                        .await?;
                let connect = t0.elapsed();
                drop(s);
                let mut a = pairs[i % PROXY_PAIRS].lock().await;
                let msg = [0x42u8; MSG];
                let mut back = [0u8; MSG];
                let t1 = Instant::now();
                a.write_all(&msg).await?;
                a.flush().await?;
                a.read_exact(&mut back).await?;
                Ok((connect, t1.elapsed()))
            }
        })
        .await
        .context("proxy reference")?;
        let (mut conn, mut rtt) = (Latencies::default(), Latencies::default());
        for (c, r) in results {
            conn.push(c);
            rtt.push(r);
        }
        let load = format!("{} ({started:.0}/s achieved)", phase.label());
        let mut cells = vec![
            load.clone(),
            format!("splice proxy: {MSG}-byte round trip A→proxy→B→proxy→A (reference)"),
        ];
        cells.extend(rtt.cells());
        table.row(cells);
        let mut cells = vec![load, "splice proxy: TCP + TLS connect (reference)".into()];
        cells.extend(conn.cells());
        table.row(cells);
    }

    println!(
        "{applets} applets waiting on one gateway (each its own session, from {applet_sources} addresses 127.0.2.2…, 200 or fewer each); \
         consoles arrive open-loop at the offered rate from {SOURCES} addresses 127.0.1.2… and each pairs with \
         a different waiting applet; paired sessions stay open until the phase ends. \
         The splice proxy reference runs after each phase on the same schedule.\n"
    );
    table.print();
    cost.print();
    Ok(())
}
