//! `abuse`: what hostile clients cost a gateway, and what the real users
//! next to them still get. Four scenes, each on a fresh gateway:
//!
//! 1. **login flood** — 200 parallel logins with wrong passwords from one
//!    address (half to a real account, half to nobody), while a real
//!    technician logs in from another address; then 100 logins with
//!    60 KiB e-mail addresses.
//! 2. **bad console tokens** — one address sends relay hellos with made-up
//!    tokens for 10 s.
//! 3. **STUN flood** — 8,300 and 10,000 source addresses each asking every
//!    0.9 s; 24 fresh sources probe meanwhile.
//! 4. **pending connections** — 12,000 connections that never finish their
//!    handshake (silent, or half a ClientHello) against a gateway limited
//!    to 10,000 open files (more connections than it has descriptors, as
//!    20,000 were against the 20,000 of this machine's hard limit, which a
//!    single client process cannot itself exceed); the operator's health
//!    check meanwhile; memory after they are gone.
//!
//! To compare two builds, run it once per build with
//! `LIFELINE_BENCH_GATEWAY=PATH` (see `benches/README.md`). Scene 4 needs
//! an open-file hard limit of at least 13,000 and `prlimit` (util-linux).

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use lifeline_benches::client::{self, outer_config, tcp_from, tls_connect};
use lifeline_benches::procs::{GatewayProc, gateway_bin};
use lifeline_benches::stats::Table;
use lifeline_benches::sys;
use lifeline_protocol::relay::{Hello, ServerMsg};
use lifeline_protocol::{ALPN_HTTP1, ALPN_RELAY, SessionGuid};
use lifeline_session::gateway_conn;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const PASSWORD: &str = "correct horse battery";

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let bin = gateway_bin()?;
    sys::print_header(&format!("abuse ({})", bin.display()));
    let new_build = supports(&bin, "--health-listen")?;
    let only: String = lifeline_benches::arg("only", String::from("1234"))?;
    if only.contains('1') {
        rt.block_on(login_flood())?;
    }
    if only.contains('2') {
        rt.block_on(bad_tokens())?;
    }
    if only.contains('3') {
        stun_flood()?;
    }
    if only.contains('4') {
        rt.block_on(pending_connections(new_build))?;
    }
    Ok(())
}

/// Whether `gateway serve --help` mentions `flag` (to tell builds apart).
fn supports(bin: &std::path::Path, flag: &str) -> Result<bool> {
    let out = std::process::Command::new(bin)
        .args(["serve", "--help"])
        .output()
        .context("gateway serve --help")?;
    Ok(String::from_utf8_lossy(&out.stdout).contains(flag))
}

fn ip(a: u8, b: u8, c: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, a, b, c))
}

/// One HTTP/1.1 POST with a JSON body from source `src`: `(status, body)`.
async fn post_from(
    gw: &GatewayProc,
    src: IpAddr,
    path: &str,
    body: &serde_json::Value,
) -> Result<(u16, serde_json::Value)> {
    let tls = tls_connect(
        Some(src),
        gw.addr,
        outer_config(gw.fingerprint, ALPN_HTTP1)?,
    )
    .await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("host", gw.addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    ))
}

fn db_bytes(gw: &GatewayProc) -> u64 {
    ["gateway.db", "gateway.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(gw.data_dir().join(f)).ok())
        .map(|m| m.len())
        .sum()
}

async fn login_flood() -> Result<()> {
    eprintln!("1. login flood");
    let gw = GatewayProc::start("abuse-login", &[])?;
    gw.add_technician("ada@example.com", "Ada", PASSWORD)?;
    gw.add_technician("target@example.com", "Target", PASSWORD)?;
    let gw = Arc::new(gw);
    let cpu0 = sys::process_cpu(gw.pid())?;
    let started = Instant::now();
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..200 {
        let gw = gw.clone();
        flood.spawn(async move {
            let email = if i % 2 == 0 {
                "target@example.com".to_owned()
            } else {
                format!("nobody{i}@example.com")
            };
            post_from(
                &gw,
                ip(0, 0, 1),
                "/api/v1/login",
                &serde_json::json!({"email": email, "password": "wrong guess"}),
            )
            .await
        });
    }
    // The real technician, from elsewhere, a moment into the flood.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let legit_started = Instant::now();
    let legit = loop {
        let (status, body) = post_from(
            &gw,
            ip(0, 0, 2),
            "/api/v1/login",
            &serde_json::json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await?;
        if status == 503 && body["code"] == "busy" {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        break status;
    };
    let legit_took = legit_started.elapsed();
    let mut by_status = std::collections::BTreeMap::<u16, u32>::new();
    for r in flood.join_all().await {
        *by_status.entry(r?.0).or_default() += 1;
    }
    let flood_took = started.elapsed();
    let cpu = sys::process_cpu(gw.pid())? - cpu0;
    let hashed =
        by_status.get(&401).copied().unwrap_or(0) + by_status.get(&403).copied().unwrap_or(0);

    // Huge e-mail addresses, from addresses with budget left.
    let before = db_bytes(&gw);
    let huge = format!("{}@example.com", "A".repeat(60 * 1024));
    for i in 0..100u8 {
        post_from(
            &gw,
            ip(0, 1, 2 + i / 20),
            "/api/v1/login",
            &serde_json::json!({"email": huge, "password": "x"}),
        )
        .await?;
    }
    let after = db_bytes(&gw);
    let mut gw = Arc::try_unwrap(gw).map_err(|_| anyhow!("gateway still shared"))?;
    gw.terminate(Duration::from_secs(30))?;
    let stopped = std::fs::metadata(gw.data_dir().join("gateway.db"))?.len();

    let mut t = Table::new(&[
        "200 parallel wrong logins from one address",
        "hashed (401/403)",
        "429",
        "503 busy",
        "flood answered in s",
        "gateway CPU s",
        "real login from elsewhere",
        "its latency s",
    ]);
    t.row(vec![
        "answers".into(),
        hashed.to_string(),
        by_status.get(&429).copied().unwrap_or(0).to_string(),
        by_status.get(&503).copied().unwrap_or(0).to_string(),
        format!("{:.1}", flood_took.as_secs_f64()),
        format!("{:.1}", cpu.total()),
        legit.to_string(),
        format!("{:.2}", legit_took.as_secs_f64()),
    ]);
    t.print();
    let mut t = Table::new(&[
        "100 logins with 60 KiB e-mails",
        "db+wal before",
        "db+wal after",
        "db file after a clean stop",
    ]);
    t.row(vec![
        "bytes".into(),
        before.to_string(),
        after.to_string(),
        stopped.to_string(),
    ]);
    t.print();
    Ok(())
}

async fn bad_tokens() -> Result<()> {
    eprintln!("2. bad console tokens");
    let gw = GatewayProc::start("abuse-tokens", &[])?;
    let cfg = outer_config(gw.fingerprint, ALPN_RELAY)?;
    let log0 = gw.log_text().len();
    let lines0 = gw.log_text().lines().count();
    let deadline = Instant::now() + Duration::from_secs(10);
    let src = ip(0, 0, 5);
    let mut codes = std::collections::BTreeMap::<String, u32>::new();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let cfg = cfg.clone();
        let addr = gw.addr;
        tasks.spawn(async move {
            let mut seen = Vec::new();
            while Instant::now() < deadline {
                let mut s = tls_connect(Some(src), addr, cfg.clone()).await?;
                let guid = SessionGuid::from_bytes(lifeline_benches::random::<16>()?);
                gateway_conn::send_hello(&mut s, &Hello::console(guid, "made-up-token")).await?;
                match gateway_conn::read_server_msg(&mut s).await {
                    Ok(ServerMsg::Refused { code, .. }) => seen.push(format!("{code:?}")),
                    other => seen.push(format!("{other:?}")),
                }
            }
            anyhow::Ok(seen)
        });
    }
    for r in tasks.join_all().await {
        for c in r? {
            *codes.entry(c).or_default() += 1;
        }
    }
    // Let a summary line, if any, be written.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = gw.log_text();
    let refusal_lines = log
        .lines()
        .skip(lines0)
        .filter(|l| l.contains("refused"))
        .count();
    let total: u32 = codes.values().sum();
    let mut t = Table::new(&[
        "bad tokens from one address for 10 s",
        "refusals",
        "by code",
        "log lines",
        "log bytes",
    ]);
    t.row(vec![
        "answers".into(),
        total.to_string(),
        format!("{codes:?}"),
        refusal_lines.to_string(),
        (log.len() - log0).to_string(),
    ]);
    t.print();
    Ok(())
}

/// A Binding request with FINGERPRINT.
fn binding_request() -> Result<Vec<u8>> {
    Ok(lifeline_protocol::stun::binding_request(
        lifeline_benches::random::<12>()?,
        true,
    ))
}

fn stun_flood() -> Result<()> {
    eprintln!("3. STUN flood");
    let mut t = Table::new(&[
        "busy sources (each every 0.9 s)",
        "fresh sources answered",
        "flood rounds",
    ]);
    for sources in [8_300u32, 10_000] {
        let gw = GatewayProc::start("abuse-stun", &[])?;
        let stun = gw
            .stun
            .ok_or_else(|| anyhow!("the gateway runs no STUN server"))?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let rounds = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let round = Duration::from_millis(900);
        let flood = {
            let (stop, rounds) = (stop.clone(), rounds.clone());
            let req = binding_request()?;
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let started = Instant::now();
                    for i in 0..sources {
                        let ip = Ipv4Addr::from(0x7f01_0001 + i);
                        if let Ok(s) = UdpSocket::bind((ip, 0)) {
                            let _ = s.send_to(&req, stun);
                        }
                        if i % 50 == 49 {
                            let due = round.mul_f64(f64::from(i + 1) / f64::from(sources));
                            if let Some(w) = due.checked_sub(started.elapsed()) {
                                std::thread::sleep(w);
                            }
                        }
                    }
                    rounds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if let Some(w) = round.checked_sub(started.elapsed()) {
                        std::thread::sleep(w);
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_secs(3));
        let mut answered = 0;
        for probe in 0..24u32 {
            let s = UdpSocket::bind((Ipv4Addr::from(0x7fc8_0001 + probe), 0))?;
            s.set_read_timeout(Some(Duration::from_millis(500)))?;
            s.send_to(&binding_request()?, stun)?;
            let mut buf = [0u8; 1500];
            if s.recv_from(&mut buf).is_ok() {
                answered += 1;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = flood.join();
        t.row(vec![
            sources.to_string(),
            format!("{answered} of 24"),
            rounds
                .load(std::sync::atomic::Ordering::Relaxed)
                .to_string(),
        ]);
    }
    t.print();
    Ok(())
}

/// The first `n` bytes of a real TLS ClientHello for the gateway.
fn client_hello_prefix(n: usize) -> Result<Vec<u8>> {
    let config = outer_config([0; 32], ALPN_RELAY)?;
    let mut conn = rustls::ClientConnection::new(
        config,
        rustls::pki_types::ServerName::try_from("127.0.0.1")?,
    )?;
    let mut out = Vec::new();
    conn.write_tls(&mut out)?;
    out.truncate(n);
    Ok(out)
}

/// Health as the operator asks it: the portal on the public port, and the
/// health port when the build has one. `(ok, seconds)` each.
async fn ask_health(gw: &GatewayProc, health_port: Option<SocketAddr>) -> Vec<String> {
    let mut out = Vec::new();
    let started = Instant::now();
    let portal = client::portal(gw.addr, gw.fingerprint);
    let r = match portal {
        Ok(p) => tokio::time::timeout(Duration::from_secs(5), client::health(&p)).await,
        Err(e) => Ok(Err(e)),
    };
    out.push(match r {
        Ok(Ok(_)) => format!("ok in {:.2} s", started.elapsed().as_secs_f64()),
        Ok(Err(e)) => format!("failed ({})", e.root_cause()),
        Err(_) => "no answer in 5 s".into(),
    });
    if let Some(addr) = health_port {
        let started = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(5), async {
            use tokio::io::AsyncReadExt;
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await?;
            let mut b = String::new();
            s.read_to_string(&mut b).await?;
            anyhow::Ok(b.starts_with("HTTP/1.1 200"))
        })
        .await;
        out.push(match r {
            Ok(Ok(true)) => format!("ok in {:.2} s", started.elapsed().as_secs_f64()),
            Ok(Ok(false)) => "not 200".into(),
            Ok(Err(e)) => format!("failed ({e})"),
            Err(_) => "no answer in 5 s".into(),
        });
    } else {
        out.push("(none in this build)".into());
    }
    out
}

async fn pending_connections(new_build: bool) -> Result<()> {
    eprintln!("4. pending connections");
    const N: usize = 12_000;
    // The connections are ours too: as many sockets here.
    sys::raise_nofile(N as u64 + 1_000)?;
    let hello = client_hello_prefix(200)?;
    let mut t = Table::new(&[
        "12,000 pending connections, gateway limited to 10,000 files",
        "opened",
        "RSS before MiB",
        "RSS held MiB",
        "KiB per conn",
        "RSS 10 s after MiB",
        "health via public port",
        "health via health port",
        "`accept failed` log lines",
    ]);
    for (name, send) in [("silent", None), ("half a ClientHello", Some(hello))] {
        let extra: &[&str] = if new_build {
            &[
                "--health-listen",
                "127.0.0.1:0",
                "--handshake-timeout",
                "60",
            ]
        } else {
            &["--handshake-timeout", "60"]
        };
        let gw = GatewayProc::start_wrapped(
            "abuse-pending",
            extra,
            &["prlimit", "--nofile=10000:10000", "--"],
        )?;
        let health_port = if new_build {
            Some(health_addr(&gw)?)
        } else {
            None
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss0 = sys::vm_kib(gw.pid(), "VmRSS")?;
        let mut tasks = tokio::task::JoinSet::new();
        let (tx, mut rx) = tokio::sync::mpsc::channel(N);
        for w in 0..64usize {
            let (tx, send) = (tx.clone(), send.clone());
            let addr = gw.addr;
            tasks.spawn(async move {
                let mut i = w;
                while i < N {
                    // 100 source addresses, 120 connections each (under
                    // the per-address limit of 256).
                    let src = ip(0, 10 + (i % 100) as u8, 2);
                    if let Ok(Ok(mut s)) =
                        tokio::time::timeout(Duration::from_secs(5), tcp_from(Some(src), addr))
                            .await
                    {
                        if let Some(b) = &send {
                            let _ = s.write_all(b).await;
                        }
                        let _ = tx.send(s).await;
                    }
                    i += 64;
                }
            });
        }
        drop(tx);
        tasks.join_all().await;
        let mut held = Vec::with_capacity(N);
        while let Ok(s) = rx.try_recv() {
            held.push(s);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_held = sys::vm_kib(gw.pid(), "VmRSS")?;
        let health = ask_health(&gw, health_port).await;
        let opened = held.len();
        drop(held);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let rss_after = sys::vm_kib(gw.pid(), "VmRSS")?;
        let accept_failed = gw
            .log_text()
            .lines()
            .filter(|l| l.contains("accept failed"))
            .count();
        t.row(vec![
            name.into(),
            opened.to_string(),
            format!("{:.0}", rss0 as f64 / 1024.0),
            format!("{:.0}", rss_held as f64 / 1024.0),
            format!(
                "{:.1}",
                (rss_held.saturating_sub(rss0)) as f64 / opened.max(1) as f64
            ),
            format!("{:.0}", rss_after as f64 / 1024.0),
            health[0].clone(),
            health[1].clone(),
            accept_failed.to_string(),
        ]);
    }
    t.print();
    Ok(())
}

/// The health port the gateway printed (`health and metrics on http://ADDR/...`).
fn health_addr(gw: &GatewayProc) -> Result<SocketAddr> {
    gw.banner()
        .iter()
        .find_map(|l| l.strip_prefix("health and metrics on http://"))
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| anyhow!("no health address in the banner"))
}
