//! `waiting_applets`: how many waiting applets one gateway holds, and
//! what each costs in memory.
//!
//! Creates `--applets` sessions (default 10,000) through the portal API,
//! then connects one applet per session (TCP + outer TLS + hello, until the
//! gateway's `Waiting` message) from `--sources` loopback addresses
//! 127.0.0.2, 127.0.0.3, …, 127.0.1.2, … (by default 200 per address, so
//! the default per-IP limit of 256 holds),
//! `--in-flight` at a time. Reports the gateway's RSS before and after, the
//! RSS per waiting applet, and the time to connect them all; checks the
//! gateway's own `waiting` count, and what holding them costs in CPU for
//! `--idle-secs` (default 30 s: more than one keepalive round and several
//! of the gateway's checks of its waiting applets). The reference is the
//! splice proxy holding the same number of unpaired TLS clients, each
//! watched by a task.

use anyhow::{Context, Result, bail};
use lifeline_benches::client::{self, Outer, PROXY_WAITING};
use lifeline_benches::procs::{GatewayProc, ProxyProc};
use lifeline_benches::stats::{Latencies, Table};
use lifeline_benches::sys;
use lifeline_protocol::ALPN_RELAY;
use lifeline_session::identity::SessionIdentity;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Connection `i`'s work: connect and wait; returns the held stream.
type Connect = Arc<
    dyn Fn(usize) -> std::pin::Pin<Box<dyn Future<Output = Result<Outer>> + Send>> + Send + Sync,
>;

/// Runs `connect(0..n)` with `in_flight` at a time; returns the streams,
/// the per-connection latencies and the total time.
async fn connect_all(
    n: usize,
    in_flight: usize,
    connect: Connect,
) -> Result<(Vec<Outer>, Latencies, Duration)> {
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..in_flight.max(1) {
        let (next, connect) = (next.clone(), connect.clone());
        workers.spawn(async move {
            let mut held = Vec::new();
            let mut lat = Latencies::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t = Instant::now();
                held.push(
                    connect(i)
                        .await
                        .with_context(|| format!("connection {i}"))?,
                );
                lat.push(t.elapsed());
            }
            anyhow::Ok((held, lat))
        });
    }
    let mut all = Vec::with_capacity(n);
    let mut lat = Latencies::default();
    while let Some(r) = workers.join_next().await {
        let (h, l) = r??;
        all.extend(h);
        lat.0.extend(l.0);
    }
    Ok((all, lat, t0.elapsed()))
}

/// Source addresses span blocks 127.0.0.x … 127.0.7.x.
const MAX_SOURCES: usize = 8 * client::SOURCES_PER_BLOCK;

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The CPU `pid` spends over `idle` while the connections it holds are
/// idle.
async fn idle_cpu(pid: u32, idle: Duration) -> Result<sys::Cpu> {
    let cpu0 = sys::process_cpu(pid)?;
    tokio::time::sleep(idle).await;
    Ok(sys::process_cpu(pid)? - cpu0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let n: usize = lifeline_benches::arg("applets", 10_000)?;
    // 200 per address by default: within the gateway's 256 per IP, and
    // each address's ~28,000 ephemeral ports.
    let sources: usize = lifeline_benches::arg("sources", n.div_ceil(200).max(50))?;
    let in_flight: usize = lifeline_benches::arg("in-flight", 128)?;
    let create_in_flight: usize = lifeline_benches::arg("create-in-flight", 32)?;
    let idle = Duration::from_secs(lifeline_benches::arg("idle-secs", 30)?);
    if sources == 0 || sources > MAX_SOURCES {
        bail!("--sources must be 1..={MAX_SOURCES}");
    }
    if n.div_ceil(sources) > 256 {
        bail!(
            "{n} applets from {sources} addresses exceed the gateway's default 256 connections per IP"
        );
    }
    sys::print_header("waiting_applets");
    sys::raise_nofile(n as u64 + 512)?;

    let gw = GatewayProc::start("waiting", &[])?;
    let tech = client::bench_technician(&gw).await?;
    let id = SessionIdentity::generate("waiting_applets")?;
    let t = Instant::now();
    let cpu0 = sys::process_cpu(gw.pid())?;
    let sessions = client::create_sessions(&tech, id.pin(), n, create_in_flight).await?;
    let create_cpu = sys::process_cpu(gw.pid())? - cpu0;
    let create_time = t.elapsed();
    eprintln!("created {n} sessions in {create_time:.1?}");
    let gw_idle = sys::vm_kib(gw.pid(), "VmRSS")?;
    let gw_create_hwm = sys::vm_kib(gw.pid(), "VmHWM")?;

    let (addr, cfg) = (gw.addr, client::outer_config(gw.fingerprint, ALPN_RELAY)?);
    let sessions = Arc::new(sessions);
    let connect: Connect = Arc::new(move |i| {
        let (cfg, sessions) = (cfg.clone(), sessions.clone());
        Box::pin(async move {
            let mut s =
                client::tls_connect(Some(client::spread_source(i, sources, 0)), addr, cfg).await?;
            client::applet_wait(&mut s, &sessions[i]).await?;
            Ok(s)
        })
    });
    let cpu0 = sys::process_cpu(gw.pid())?;
    let (held, gw_lat, gw_time) = connect_all(n, in_flight, connect)
        .await
        .with_context(|| format!("gateway log:\n{}", gw.log_tail(20)))?;
    let gw_cpu = sys::process_cpu(gw.pid())? - cpu0;
    let health = client::health(&tech.portal).await?;
    let gw_after = sys::vm_kib(gw.pid(), "VmRSS")?;
    let gw_hwm = sys::vm_kib(gw.pid(), "VmHWM")?;
    let gw_idle_cpu = idle_cpu(gw.pid(), idle).await?;
    eprintln!(
        "{} applets waiting on the gateway after {gw_time:.1?}",
        held.len()
    );
    if health.waiting != n as u64 || held.len() != n {
        bail!(
            "expected {n} waiting applets; the bench holds {} and the gateway reports {}",
            held.len(),
            health.waiting
        );
    }
    drop(held);
    drop(gw);

    let proxy = ProxyProc::start(64 * 1024)?;
    let proxy_idle = sys::vm_kib(proxy.pid(), "VmRSS")?;
    let (addr, cfg) = (
        proxy.addr,
        client::outer_config(proxy.fingerprint, ALPN_RELAY)?,
    );
    let connect: Connect = Arc::new(move |i| {
        let cfg = cfg.clone();
        Box::pin(async move {
            let mut s =
                client::tls_connect(Some(client::spread_source(i, sources, 0)), addr, cfg).await?;
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&(i as u64).to_be_bytes());
            if client::proxy_join(&mut s, key).await? != PROXY_WAITING {
                bail!("proxy did not put client {i} in waiting");
            }
            Ok(s)
        })
    });
    let cpu0 = sys::process_cpu(proxy.pid())?;
    let (held, px_lat, px_time) = connect_all(n, in_flight, connect).await?;
    let px_cpu = sys::process_cpu(proxy.pid())? - cpu0;
    let proxy_after = sys::vm_kib(proxy.pid(), "VmRSS")?;
    let proxy_hwm = sys::vm_kib(proxy.pid(), "VmHWM")?;
    let px_idle_cpu = idle_cpu(proxy.pid(), idle).await?;
    drop(held);

    println!(
        "{n} applets, each with its own session created through the portal ({create_in_flight} requests in flight: \
         {:.1} s, {:.0}/s, gateway CPU {:.2} ms per session), connecting from {sources} addresses 127.0.0.2… with {in_flight} in flight. \
         RSS = VmRSS of the relay process from /proc; \"idle\" is after the sessions were created. \
         A gateway applet counts when its `Waiting` message arrived; a proxy client when its `waiting` byte did.\n",
        create_time.as_secs_f64(),
        n as f64 / create_time.as_secs_f64(),
        create_cpu.total() * 1e3 / n as f64
    );
    let per = |after: u64, idle: u64| (after.saturating_sub(idle)) as f64 / n as f64;
    let mut t = Table::new(&["", "Lifeline gateway", "splice proxy (reference)"]);
    t.row(vec![
        "waiting connections held".into(),
        format!("{n} (gateway health: waiting {})", health.waiting),
        n.to_string(),
    ]);
    t.row(vec!["RSS idle".into(), mib(gw_idle), mib(proxy_idle)]);
    t.row(vec![
        "RSS with all waiting".into(),
        mib(gw_after),
        mib(proxy_after),
    ]);
    t.row(vec![
        "RSS per waiting connection".into(),
        format!("{:.1} KiB (target ≤ 12 KiB)", per(gw_after, gw_idle)),
        format!("{:.1} KiB", per(proxy_after, proxy_idle)),
    ]);
    t.row(vec![
        "peak RSS (VmHWM) by the end of creating the sessions".into(),
        mib(gw_create_hwm),
        "—".into(),
    ]);
    t.row(vec![
        "peak RSS (VmHWM) by the end".into(),
        mib(gw_hwm),
        mib(proxy_hwm),
    ]);
    t.row(vec![
        "time to connect all".into(),
        format!(
            "{:.2} s ({:.0}/s)",
            gw_time.as_secs_f64(),
            n as f64 / gw_time.as_secs_f64()
        ),
        format!(
            "{:.2} s ({:.0}/s)",
            px_time.as_secs_f64(),
            n as f64 / px_time.as_secs_f64()
        ),
    ]);
    let cpu = |c: sys::Cpu| {
        format!(
            "{:.2} ms (user {:.2}, system {:.2})",
            c.total() * 1e3 / n as f64,
            c.user * 1e3 / n as f64,
            c.sys * 1e3 / n as f64
        )
    };
    t.row(vec![
        "relay CPU per connection while connecting".into(),
        cpu(gw_cpu),
        cpu(px_cpu),
    ]);
    let idle_row = |c: sys::Cpu| {
        format!(
            "{:.1} ms/s ({:.2} µs per connection per second)",
            c.total() * 1e3 / idle.as_secs_f64(),
            c.total() * 1e6 / idle.as_secs_f64() / n as f64
        )
    };
    t.row(vec![
        format!("CPU while holding them all, idle for {} s", idle.as_secs()),
        idle_row(gw_idle_cpu),
        idle_row(px_idle_cpu),
    ]);
    let lat = |l: &Latencies| {
        let c = l.cells();
        format!("{} / {} / {} ms", c[1], c[3], c[4])
    };
    t.row(vec![
        "connect → waiting, p50 / p99 / max".into(),
        lat(&gw_lat),
        lat(&px_lat),
    ]);
    t.print();
    Ok(())
}
