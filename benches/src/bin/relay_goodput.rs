//! `relay_goodput` (with the `relay_cpu` table): one session moves
//! `--bytes` (default 1 GiB) console → applet through a real gateway
//! process — outer TLS 1.3 on both hops, inner TLS 1.3 AES-256-GCM end to
//! end — and the same through the `splice_proxy` reference, alternating,
//! `--runs` times (default 3). Reports the median goodput of each, their
//! ratio, and the relay process's CPU seconds per GiB next to the cost of
//! the AES-256-GCM work itself (ring, seal + open in 16 KiB records, one
//! thread), also measured in this run.

use anyhow::{Context, Result, bail};
use lifeline_benches::client::{self, Outer, PROXY_WAITING, Tech};
use lifeline_benches::procs::{GatewayProc, ProxyProc};
use lifeline_benches::stats::{Table, median};
use lifeline_benches::{GIB, sys};
use lifeline_protocol::ALPN_RELAY;
use lifeline_session::identity::SessionIdentity;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Plaintext written per `write_all` by the console.
const CHUNK: usize = 64 * 1024;
/// TLS record payload size, for the AES-GCM reference.
const RECORD: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relay {
    Gateway,
    /// The splice proxy with the gateway pump's buffer size.
    Proxy64,
    /// The splice proxy with tokio's default `copy_bidirectional` buffers.
    Proxy8,
}

impl Relay {
    fn name(self) -> &'static str {
        match self {
            Relay::Gateway => "Lifeline gateway (process)",
            Relay::Proxy64 => "splice proxy, copy_bidirectional 64 KiB bufs (reference)",
            Relay::Proxy8 => "splice proxy, copy_bidirectional 8 KiB bufs (tokio default)",
        }
    }
}

#[derive(Debug)]
struct Run {
    secs: f64,
    relay_cpu: sys::Cpu,
    outer_suite: String,
    inner_suite: String,
}

fn suite_name(c: &rustls::CommonState) -> String {
    c.negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_else(|| "?".into())
}

/// Moves `bytes` from console to applet over two already-paired outer TLS
/// streams, with inner TLS between them; measures wall time (first byte
/// written → last byte read) and the relay process's CPU over that time.
async fn transfer(
    bytes: u64,
    applet: Outer,
    console: Outer,
    id: &SessionIdentity,
    relay_pid: u32,
) -> Result<Run> {
    let outer_suite = suite_name(applet.get_ref().1);
    let pin = id.pin();
    let applet_side = tokio::spawn(async move {
        let mut inner = client::inner_client(applet, pin)
            .await
            .context("inner TLS (applet)")?;
        let suite = suite_name(inner.get_ref().1);
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        while got < bytes {
            let n = inner.read(&mut buf).await?;
            if n == 0 {
                bail!("stream ended after {got} of {bytes} bytes");
            }
            got += n as u64;
        }
        anyhow::Ok((Instant::now(), suite, inner))
    });
    let id = id.clone();
    let console_side = tokio::spawn(async move {
        let mut inner = client::inner_server(console, &id)
            .await
            .context("inner TLS (console)")?;
        let chunk = vec![0x5a_u8; CHUNK];
        let cpu0 = sys::process_cpu(relay_pid)?;
        let t0 = Instant::now();
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            inner.write_all(&chunk[..n]).await?;
            left -= n as u64;
        }
        inner.flush().await?;
        anyhow::Ok((t0, cpu0, inner))
    });
    let (t1, inner_suite, applet_inner) = applet_side.await??;
    let cpu1 = sys::process_cpu(relay_pid)?;
    let (t0, cpu0, mut console_inner) = console_side.await??;
    // Close both ends (inner then outer close_notify, then FIN).
    let _ = console_inner.shutdown().await;
    drop(applet_inner);
    Ok(Run {
        secs: (t1 - t0).as_secs_f64(),
        relay_cpu: cpu1 - cpu0,
        outer_suite,
        inner_suite,
    })
}

async fn via_gateway(gw: &GatewayProc, tech: &Tech, bytes: u64) -> Result<Run> {
    let id = SessionIdentity::generate("relay_goodput")?;
    let p = client::paired(gw, tech, id.pin(), "relay_goodput").await?;
    let (applet, console) = (p.applet, p.console);
    let run = transfer(bytes, applet, console, &id, gw.pid()).await?;
    client::wait_relays_closed(&tech.portal, Duration::from_secs(30)).await?;
    Ok(run)
}

async fn via_proxy(proxy: &ProxyProc, bytes: u64) -> Result<Run> {
    let id = SessionIdentity::generate("relay_goodput")?;
    let key = lifeline_benches::random::<16>()?;
    let cfg = client::outer_config(proxy.fingerprint, ALPN_RELAY)?;
    let mut applet = client::tls_connect(None, proxy.addr, cfg.clone()).await?;
    if client::proxy_join(&mut applet, key).await? != PROXY_WAITING {
        bail!("proxy paired the applet with a stranger");
    }
    let mut console = client::tls_connect(None, proxy.addr, cfg).await?;
    client::proxy_join(&mut console, key).await?;
    client::proxy_await_paired(&mut applet).await?;
    transfer(bytes, applet, console, &id, proxy.pid()).await
}

/// CPU seconds (this thread) and wall seconds to seal and open `bytes` with
/// ring's AES-256-GCM in TLS-sized records, as one relay hop must (open
/// from one TLS connection, seal into the other).
fn aes_gcm_cost(bytes: u64) -> Result<(sys::Cpu, f64)> {
    let err = |_| anyhow::anyhow!("ring AEAD failure");
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &lifeline_benches::random::<32>()?).map_err(err)?,
    );
    let records = bytes.div_ceil(RECORD as u64);
    let mut buf = Vec::with_capacity(RECORD + AES_256_GCM.tag_len());
    let nonce = |i: u64| {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&i.to_be_bytes());
        Nonce::assume_unique_for_key(n)
    };
    let header = [0x17, 0x03, 0x03, 0x40, 0x11];
    let cpu0 = sys::thread_cpu()?;
    let t0 = Instant::now();
    for i in 0..records {
        buf.clear();
        buf.resize(RECORD, 0x5a);
        key.seal_in_place_append_tag(nonce(i), Aad::from(header), &mut buf)
            .map_err(err)?;
        let plain = key
            .open_in_place(nonce(i), Aad::from(header), &mut buf)
            .map_err(err)?;
        if plain.len() != RECORD {
            bail!("AES-GCM round trip lost bytes");
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    Ok((sys::thread_cpu()? - cpu0, wall))
}

fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

#[tokio::main]
async fn main() -> Result<()> {
    let bytes: u64 = lifeline_benches::arg("bytes", GIB)?;
    let runs: usize = lifeline_benches::arg("runs", 3)?;
    if bytes == 0 || runs == 0 {
        bail!("--bytes and --runs must be positive");
    }
    sys::print_header("relay_goodput / relay_cpu");

    let gw = GatewayProc::start("goodput", &[])?;
    let tech = client::bench_technician(&gw).await?;
    let proxy64 = ProxyProc::start(64 * 1024)?;
    let proxy8 = ProxyProc::start(8 * 1024)?;

    let relays = [Relay::Gateway, Relay::Proxy64, Relay::Proxy8];
    let mut results: Vec<(Relay, Run)> = Vec::new();
    for i in 0..runs {
        for relay in relays {
            let run = match relay {
                Relay::Gateway => via_gateway(&gw, &tech, bytes)
                    .await
                    .with_context(|| format!("gateway run; gateway log:\n{}", gw.log_tail(20)))?,
                Relay::Proxy64 => via_proxy(&proxy64, bytes).await.context("proxy run")?,
                Relay::Proxy8 => via_proxy(&proxy8, bytes).await.context("proxy run")?,
            };
            eprintln!(
                "run {}/{runs} {relay:?}: {:.1} MB/s, relay CPU {:.2} s",
                i + 1,
                mb_s(bytes, run.secs),
                run.relay_cpu.total()
            );
            results.push((relay, run));
        }
    }
    let mut aes = Vec::new();
    for _ in 0..runs {
        let b = bytes;
        aes.push(tokio::task::spawn_blocking(move || aes_gcm_cost(b)).await??);
    }

    let gib = bytes as f64 / GIB as f64;
    let of = |r: Relay| results.iter().filter(move |(k, _)| *k == r).map(|(_, v)| v);
    let goodput = |r: Relay| median(&of(r).map(|v| mb_s(bytes, v.secs)).collect::<Vec<_>>());
    let all = |r: Relay| {
        of(r)
            .map(|v| format!("{:.0}", mb_s(bytes, v.secs)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // CPU of the run with the median total, so user and system add up.
    let cpu_per_gib = |r: Relay| {
        let mut v: Vec<sys::Cpu> = of(r).map(|v| v.relay_cpu).collect();
        v.sort_by(|a, b| a.total().total_cmp(&b.total()));
        let m = v[(v.len() - 1) / 2];
        sys::Cpu {
            user: m.user / gib,
            sys: m.sys / gib,
        }
    };
    let aes_cpu = median(&aes.iter().map(|(c, _)| c.total() / gib).collect::<Vec<_>>());
    let aes_wall = median(&aes.iter().map(|(_, w)| w / gib).collect::<Vec<_>>());
    let first = &results[0].1;

    println!(
        "{gib:.2} GiB console → applet, one session, {runs} runs alternating, median shown. \
         Outer TLS {} on both hops, inner TLS {} end to end; MB = 10^6 bytes; \
         goodput = inner plaintext bytes / (first byte written → last byte read).\n",
        first.outer_suite, first.inner_suite
    );
    let reference = goodput(Relay::Proxy64);
    let mut t = Table::new(&[
        "relay",
        "goodput MB/s (median)",
        "runs MB/s",
        "of reference",
    ]);
    for r in relays {
        let g = goodput(r);
        let pct = format!("{:.0}%", 100.0 * g / reference);
        t.row(vec![
            r.name().into(),
            format!("{g:.0}"),
            all(r),
            if r == Relay::Gateway {
                format!("{pct} (target ≥ 100%)")
            } else {
                pct
            },
        ]);
    }
    t.print();

    let mut t = Table::new(&[
        "CPU per relayed GiB (median run)",
        "user s",
        "system s",
        "total s",
        "of reference",
        "× AES-GCM work",
    ]);
    let reference = cpu_per_gib(Relay::Proxy64).total();
    for r in relays {
        let c = cpu_per_gib(r);
        let pct = format!("{:.0}%", 100.0 * c.total() / reference);
        t.row(vec![
            format!("{}: process utime+stime", r.name()),
            format!("{:.3}", c.user),
            format!("{:.3}", c.sys),
            format!("{:.3}", c.total()),
            if r == Relay::Gateway {
                format!("{pct} (target ≤ 80%)")
            } else {
                pct
            },
            format!("{:.2}", c.total() / aes_cpu),
        ]);
    }
    t.row(vec![
        format!(
            "ring AES-256-GCM seal + open, 16 KiB records, 1 thread (wall {aes_wall:.3} s/GiB)"
        ),
        String::new(),
        String::new(),
        format!("{aes_cpu:.3}"),
        String::new(),
        "1.00".into(),
    ]);
    t.print();
    Ok(())
}
