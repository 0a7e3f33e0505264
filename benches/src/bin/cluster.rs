//! `cluster`: three gateway nodes on one PostgreSQL database — how fast
//! sessions are made through their portals and what share of that the
//! store costs, how the directory spreads waiting applets over the nodes,
//! and how fast a killed node's applets wait again on the others and pair
//! there.
//!
//! 1. Starts a PostgreSQL database of its own (dropped at the end) and
//!    three nodes of one operator on it, and waits until each node's
//!    directory lists all three.
//! 2. Creates `--applets` sessions (default 30,000) through the portal:
//!    a fifth through node-a alone (the same-run reference), the rest
//!    through all three at once, with `--create-in-flight` requests in
//!    flight either way. Measures the nodes' CPU, PostgreSQL's (every
//!    `postgres` process) and this process's.
//! 3. Starts [`WORKERS`] copies of itself (`--worker K`; one process
//!    cannot hold 30,000 connections under this machine's open-file
//!    limit), each acting as the applets of every `WORKERS`-th session:
//!    one directory fetch per worker, then per applet the applet's own
//!    choice of node (`lifeline_session::race`) from its own 127.x source
//!    address, the hello with the admission proof, and waiting. An applet
//!    whose connection breaks tries again after the applet's own pause.
//!    `--in-flight` first connections at a time per worker. With
//!    `--race-tls` the applets race whole TLS handshakes instead, as the
//!    applet did before it raced TCP connects (for comparison).
//! 4. Kills (SIGKILL) the node holding the most applets and times each of
//!    its applets until it waits again on another node.
//! 5. Pairs `--pairs` of those re-homed applets with a console that asks
//!    the portal where the applet waits and connects there.

use anyhow::{Context, Result, anyhow, bail};
use lifeline_benches::client::{self, Outer, Tech};
use lifeline_benches::procs::GatewayProc;
use lifeline_benches::stats::{Latencies, Table};
use lifeline_benches::sys;
use lifeline_protocol::directory::{Directory, SignedDirectory};
use lifeline_protocol::portal::SessionInfo;
use lifeline_protocol::relay::ServerMsg;
use lifeline_protocol::{ALPN_RELAY, SessionGuid, hex};
use lifeline_session::gateway_conn;
use lifeline_session::identity::SessionIdentity;
use lifeline_session::live;
use lifeline_session::portal::PortalClient;
use lifeline_session::race::{self, Race};
use lifeline_tests::{StoreKind, TestStore};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Applet processes: each holds its share of the waiting connections.
const WORKERS: usize = 3;
/// Applets per source address: within the gateway's 256 per IP.
const PER_SOURCE: usize = 200;
/// The applet's first pause before trying again after its waiting
/// connection broke, doubling up to [`MAX_BACKOFF`] (`applet/src/run.rs`).
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// See [`FIRST_BACKOFF`].
const MAX_BACKOFF: Duration = Duration::from_secs(15);
/// The bound on re-homing a dead node's applets.
const REHOME_TARGET: Duration = Duration::from_secs(10);
/// How long the benchmark waits for a dead node's applets to wait again.
const REHOME_PATIENCE: Duration = Duration::from_secs(60);
/// How long the benchmark waits for any phase before it gives up.
const PHASE_TIMEOUT: Duration = Duration::from_secs(300);

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn main() -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    if std::env::args().any(|a| a == "--worker") {
        return rt.block_on(worker::main());
    }
    // Made and dropped outside the runtime: it runs its SQL on one of its
    // own.
    let store = TestStore::new(StoreKind::Postgres);
    let url = store
        .url
        .clone()
        .ok_or_else(|| anyhow!("no PostgreSQL URL"))?;
    let r = rt.block_on(coordinator(&url));
    drop(rt);
    drop(store);
    r
}

/// What a worker reports, one line each on its stdout.
#[derive(Debug)]
enum Event {
    /// Applet `i` waits on `node` since `at_ms`.
    Waiting { i: usize, node: String, at_ms: u64 },
    /// Applet `i` was paired.
    Paired { i: usize },
    /// The worker failed.
    Failed(String),
}

impl Event {
    fn parse(line: &str) -> Option<Event> {
        let mut w = line.split(' ');
        match w.next()? {
            "W" => Some(Event::Waiting {
                i: w.next()?.parse().ok()?,
                node: w.next()?.to_owned(),
                at_ms: w.next()?.parse().ok()?,
            }),
            "P" => Some(Event::Paired {
                i: w.next()?.parse().ok()?,
            }),
            "F" => Some(Event::Failed(line[2..].to_owned())),
            _ => None,
        }
    }
}

/// The applet processes and their merged events.
struct Workers {
    children: Vec<Child>,
    events: mpsc::Receiver<Event>,
}

impl Workers {
    fn spawn(args: &[String]) -> Result<Self> {
        let (tx, events) = mpsc::channel();
        let mut children = Vec::new();
        for k in 0..WORKERS {
            let mut child = Command::new(std::env::current_exe()?)
                .args(["--worker", &k.to_string()])
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .context("starting an applet worker")?;
            let out = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                    if let Some(e) = Event::parse(&line) {
                        let _ = tx.send(e);
                    }
                }
                let _ = tx.send(Event::Failed(format!("worker {k} exited")));
            });
            children.push(child);
        }
        Ok(Self { children, events })
    }

    /// The next event, failing on a worker's failure or after `deadline`.
    fn next(&self, deadline: Instant) -> Result<Event> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.events.recv_timeout(left) {
            Ok(Event::Failed(why)) => bail!("applet worker: {why}"),
            Ok(e) => Ok(e),
            Err(_) => bail!("no word from the applet workers in time"),
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// CPU used by the nodes, PostgreSQL and this process over one phase.
struct CpuMeter {
    nodes: Vec<(u32, sys::Cpu)>,
    pg: HashMap<u32, sys::Cpu>,
    me: sys::Cpu,
}

/// What a phase cost, in CPU seconds.
struct PhaseCpu {
    nodes: f64,
    pg: f64,
    me: f64,
}

impl CpuMeter {
    fn start(nodes: &[&GatewayProc]) -> Result<Self> {
        Ok(Self {
            nodes: nodes
                .iter()
                .map(|n| Ok((n.pid(), sys::process_cpu(n.pid())?)))
                .collect::<Result<_>>()?,
            pg: sys::command_cpu("postgres")?,
            me: sys::process_cpu(std::process::id())?,
        })
    }

    fn stop(self) -> Result<PhaseCpu> {
        let mut nodes = 0.0;
        for (pid, before) in self.nodes {
            nodes += (sys::process_cpu(pid)? - before).total();
        }
        Ok(PhaseCpu {
            nodes,
            pg: sys::cpu_between(&self.pg, &sys::command_cpu("postgres")?).total(),
            me: (sys::process_cpu(std::process::id())? - self.me).total(),
        })
    }
}

/// Creates `n` sessions through each of `techs` at once, `in_flight`
/// requests in flight in all; returns them, the time and the CPU.
async fn create_through(
    techs: &[&Tech],
    pin: [u8; 32],
    n: usize,
    in_flight: usize,
    nodes: &[&GatewayProc],
) -> Result<(Vec<client::BenchSession>, Duration, PhaseCpu)> {
    let meter = CpuMeter::start(nodes)?;
    let t = Instant::now();
    let mut parts = tokio::task::JoinSet::new();
    for (k, tech) in techs.iter().enumerate() {
        let share = n / techs.len() + usize::from(k < n % techs.len());
        let flight = in_flight / techs.len() + usize::from(k < in_flight % techs.len());
        let tech = (*tech).clone();
        parts.spawn(async move { client::create_sessions(&tech, pin, share, flight).await });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(r) = parts.join_next().await {
        all.extend(r??);
    }
    let took = t.elapsed();
    Ok((all, took, meter.stop()?))
}

/// Waits until `node`'s directory lists `n` nodes (their heartbeats).
async fn await_directory(portal: &PortalClient, n: usize) -> Result<Directory> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let dir = fetch_directory(portal).await?;
        if dir.nodes.len() >= n {
            return Ok(dir);
        }
        if Instant::now() > deadline {
            bail!("the directory lists {} of {n} nodes", dir.nodes.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn fetch_directory(portal: &PortalClient) -> Result<Directory> {
    let signed: SignedDirectory = portal.get("/api/v1/directory").await?;
    // The signature is the applet's business; the benchmark needs the list.
    Ok(serde_json::from_str(&signed.directory)?)
}

/// The nodes still running.
fn live(nodes: &[Option<GatewayProc>]) -> Vec<&GatewayProc> {
    nodes.iter().flatten().collect()
}

async fn coordinator(url: &str) -> Result<()> {
    let n: usize = lifeline_benches::arg("applets", 30_000)?;
    let in_flight: usize = lifeline_benches::arg("in-flight", 64)?;
    let create_in_flight: usize = lifeline_benches::arg("create-in-flight", 32)?;
    let pairs: usize = lifeline_benches::arg("pairs", 200)?;
    sys::print_header("cluster");
    sys::raise_nofile(4096)?;

    let a = GatewayProc::start_node("cluster-a", url, "node-a", None)?;
    let b = GatewayProc::start_node("cluster-b", url, "node-b", Some(&a))?;
    let c = GatewayProc::start_node("cluster-c", url, "node-c", Some(&a))?;
    let mut nodes: Vec<Option<GatewayProc>> = vec![Some(a), Some(b), Some(c)];
    let first = live(&nodes)[0];
    let tech_a = client::bench_technician(first).await?;
    let directory = await_directory(&tech_a.portal, 3).await?;
    let names: Vec<String> = directory.nodes.iter().map(|d| d.name.clone()).collect();
    eprintln!("directory: {names:?}");
    // The login is in the shared store: the same token works at every node.
    let techs: Vec<Tech> = live(&nodes)
        .iter()
        .map(|g| {
            Ok(Tech {
                portal: client::portal(g.addr, g.fingerprint)?.with_token(tech_a.token.clone()),
                token: tech_a.token.clone(),
            })
        })
        .collect::<Result<_>>()?;

    // 2. Sessions through one portal, then through three.
    let id = SessionIdentity::generate("cluster")?;
    let one = n / 5;
    let (mut sessions, one_time, one_cpu) =
        create_through(&[&techs[0]], id.pin(), one, create_in_flight, &live(&nodes)).await?;
    let three_refs: Vec<&Tech> = techs.iter().collect();
    let (more, three_time, three_cpu) = create_through(
        &three_refs,
        id.pin(),
        n - one,
        create_in_flight,
        &live(&nodes),
    )
    .await?;
    sessions.extend(more);
    eprintln!("created {n} sessions");

    // 3. The applets.
    let scratch =
        std::env::temp_dir().join(format!("lifeline-bench-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let list = scratch.join("sessions");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&list)?);
    for s in &sessions {
        writeln!(f, "{} {}", s.guid, hex::encode(&s.secret))?;
    }
    f.flush()?;
    drop(f);
    let mut worker_args = vec![
        "--sessions".to_owned(),
        list.display().to_string(),
        "--portal".to_owned(),
        first.addr.to_string(),
        "--fingerprint".to_owned(),
        hex::encode(&first.fingerprint),
        "--in-flight".to_owned(),
        in_flight.to_string(),
    ];
    if std::env::args().any(|a| a == "--race-tls") {
        worker_args.push("--race-tls".to_owned());
    }
    let meter = CpuMeter::start(&live(&nodes))?;
    let started = Instant::now();
    let workers = Workers::spawn(&worker_args)?;
    let mut on: HashMap<usize, String> = HashMap::new();
    let deadline = Instant::now() + PHASE_TIMEOUT;
    while on.len() < n {
        if let Event::Waiting { i, node, .. } = workers.next(deadline)? {
            on.insert(i, node);
        }
    }
    let connect_time = started.elapsed();
    let connect_cpu = meter.stop()?;
    let mut per_node: Vec<(String, usize)> = names
        .iter()
        .map(|name| (name.clone(), on.values().filter(|v| *v == name).count()))
        .collect();
    let mut held = Vec::new();
    for (g, t) in live(&nodes).iter().zip(&techs) {
        let h = client::health(&t.portal).await?;
        held.push((h.node, h.waiting, sys::vm_kib(g.pid(), "VmRSS")?));
    }
    eprintln!("{n} applets waiting after {connect_time:.1?}: {per_node:?}");

    // 4. Kill the node holding the most.
    per_node.sort_by_key(|(_, k)| std::cmp::Reverse(*k));
    let victim = per_node[0].0.clone();
    let vi = names
        .iter()
        .position(|x| *x == victim)
        .ok_or_else(|| anyhow!("{victim} is not in the directory"))?;
    // Directory order is by name (node-a first); so is `nodes`.
    let orphans: Vec<usize> = on
        .iter()
        .filter(|(_, v)| **v == victim)
        .map(|(i, _)| *i)
        .collect();
    let mut dying = nodes[vi]
        .take()
        .ok_or_else(|| anyhow!("no node {victim}"))?;
    let survivors_cpu = CpuMeter::start(&live(&nodes))?;
    let killed_at = unix_ms();
    dying.kill()?;
    let mut rehomed: HashMap<usize, (String, u64)> = HashMap::new();
    let deadline = Instant::now() + REHOME_PATIENCE;
    while rehomed.len() < orphans.len() {
        // Past the deadline, the table says how many made it.
        let Ok(e) = workers.next(deadline) else { break };
        if let Event::Waiting { i, node, at_ms } = e {
            if node != victim && on.get(&i) == Some(&victim) {
                rehomed.entry(i).or_insert((node.clone(), at_ms));
            }
            on.insert(i, node);
        }
    }
    let rehome_cpu = survivors_cpu.stop()?;
    let mut rehome = Latencies::default();
    for (_, at) in rehomed.values() {
        rehome.push(Duration::from_millis(at.saturating_sub(killed_at)));
    }
    let within = rehome
        .0
        .iter()
        .filter(|ms| **ms <= REHOME_TARGET.as_secs_f64() * 1e3)
        .count();
    let survivors: Vec<(&GatewayProc, &Tech)> = nodes
        .iter()
        .zip(&techs)
        .filter_map(|(g, t)| g.as_ref().map(|g| (g, t)))
        .collect();
    let mut after = Vec::new();
    for (g, t) in &survivors {
        let h = client::health(&t.portal).await?;
        after.push((h.node, h.waiting, sys::vm_kib(g.pid(), "VmRSS")?));
    }
    eprintln!("re-homed {} applets of {victim}", rehomed.len());

    // 5. Pair some of them, as a technician would: ask the portal where
    // the applet waits, connect there.
    let mut pick: Vec<usize> = rehomed.keys().copied().collect();
    pick.sort_unstable();
    pick.truncate(pairs);
    let portal = survivors[0].1.clone();
    let fingerprint = survivors[0].0.fingerprint;
    let cfg = client::outer_config(fingerprint, ALPN_RELAY)?;
    let mut pair_lat = Latencies::default();
    let mut consoles: Vec<Outer> = Vec::new();
    for &i in &pick {
        let guid = sessions[i].guid;
        let info: SessionInfo = portal
            .portal
            .get(&format!("/api/v1/sessions/{guid}"))
            .await?;
        let addr: SocketAddr = info
            .waiting_node_addr
            .as_deref()
            .ok_or_else(|| anyhow!("the portal does not say where {guid} waits"))?
            .parse()?;
        let t = Instant::now();
        let mut s = client::tls_connect(None, addr, cfg.clone()).await?;
        client::console_hello(&mut s, guid, &portal.token).await?;
        client::await_paired(&mut s)
            .await
            .with_context(|| format!("pairing {guid} on {addr}"))?;
        pair_lat.push(t.elapsed());
        consoles.push(s);
    }
    let mut paired = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while paired < pick.len() {
        if let Event::Paired { i } = workers.next(deadline)?
            && pick.contains(&i)
        {
            paired += 1;
        }
    }
    drop(consoles);
    drop(workers);
    let _ = std::fs::remove_dir_all(&scratch);

    // The tables.
    println!(
        "Three nodes of one operator on one PostgreSQL database (a database of its own on the machine's \
         server, dropped at the end), this benchmark's applets in {WORKERS} processes of their own. \
         Every process shares the machine's 2 cores: the nodes, PostgreSQL and the benchmark's \
         clients. CPU = user + system seconds from /proc; PostgreSQL's is every `postgres` process's.\n"
    );
    println!(
        "**Sessions created through the portal** ({create_in_flight} requests in flight, each its own TLS connection):\n"
    );
    let mut t = Table::new(&[
        "through",
        "sessions",
        "rate",
        "nodes' CPU per session",
        "PostgreSQL's CPU per session",
        "store's share of the server CPU",
        "the clients' CPU per session",
    ]);
    for (label, k, time, cpu) in [
        ("node-a's portal alone (reference)", one, one_time, &one_cpu),
        ("all three portals at once", n - one, three_time, &three_cpu),
    ] {
        t.row(vec![
            label.into(),
            k.to_string(),
            format!("{:.0}/s", k as f64 / time.as_secs_f64()),
            format!("{:.2} ms", cpu.nodes * 1e3 / k as f64),
            format!("{:.2} ms", cpu.pg * 1e3 / k as f64),
            format!("{:.0}%", 100.0 * cpu.pg / (cpu.pg + cpu.nodes)),
            format!("{:.2} ms", cpu.me * 1e3 / k as f64),
        ]);
    }
    t.print();

    println!(
        "\n**Waiting applets spread by the directory** ({n} applets from {} source addresses, \
         {in_flight} first connections in flight per worker; each applet races the directory's nodes as the applet does):\n",
        n.div_ceil(PER_SOURCE)
    );
    let mut t = Table::new(&[
        "node",
        "applets (the applets' count)",
        "node's own waiting count",
        "node's RSS",
    ]);
    for (node, waiting, rss) in &held {
        let ours = per_node
            .iter()
            .find(|(name, _)| name == node)
            .map_or(0, |(_, k)| *k);
        t.row(vec![
            node.clone(),
            ours.to_string(),
            waiting.to_string(),
            format!("{:.1} MiB", *rss as f64 / 1024.0),
        ]);
    }
    t.print();
    println!(
        "\nAll {n} waiting after {:.1} s ({:.0}/s); \
         CPU while connecting: nodes {:.2} ms, PostgreSQL {:.2} ms per applet.\n",
        connect_time.as_secs_f64(),
        n as f64 / connect_time.as_secs_f64(),
        connect_cpu.nodes * 1e3 / n as f64,
        connect_cpu.pg * 1e3 / n as f64,
    );

    println!(
        "**{victim} killed (SIGKILL) while holding {} applets**; each tries again after the applet's pause \
         ({:.0} s, doubling):\n",
        orphans.len(),
        FIRST_BACKOFF.as_secs_f64()
    );
    let mut t = Table::new(&["", "value"]);
    let c = rehome.cells();
    t.row(vec![
        "kill → waiting on another node, p50 / p90 / p99 / max".into(),
        format!("{} / {} / {} / {} ms", c[1], c[2], c[3], c[4]),
    ]);
    t.row(vec![
        format!(
            "re-homed within {} s (target: all)",
            REHOME_TARGET.as_secs()
        ),
        format!("{within} of {}", orphans.len()),
    ]);
    t.row(vec![
        format!("re-homed within {} s", REHOME_PATIENCE.as_secs()),
        format!("{} of {}", rehomed.len(), orphans.len()),
    ]);
    for (node, waiting, rss) in &after {
        let took = rehomed.values().filter(|(n, _)| n == node).count();
        t.row(vec![
            format!("{node} afterwards"),
            format!(
                "{waiting} waiting ({took} of them re-homed), RSS {:.1} MiB",
                *rss as f64 / 1024.0
            ),
        ]);
    }
    t.row(vec![
        format!("survivors' CPU per applet of {victim}"),
        format!(
            "nodes {:.2} ms, PostgreSQL {:.2} ms",
            rehome_cpu.nodes * 1e3 / orphans.len() as f64,
            rehome_cpu.pg * 1e3 / orphans.len() as f64
        ),
    ]);
    let c = pair_lat.cells();
    t.row(vec![
        format!("re-homed applets paired by a console (of {})", pick.len()),
        format!(
            "{paired}; console hello → Paired p50 / p99 {} / {} ms",
            c[1], c[3]
        ),
    ]);
    t.print();
    Ok(())
}

/// The applets of one worker process.
mod worker {
    use super::*;
    use tokio::sync::Semaphore;

    /// One applet's session.
    #[derive(Clone, Copy)]
    struct Applet {
        i: usize,
        session: client::BenchSession,
    }

    fn say(line: String) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    pub async fn main() -> Result<()> {
        match run().await {
            Ok(()) => Ok(()),
            Err(e) => {
                say(format!("F {e:#}"));
                Err(e)
            }
        }
    }

    async fn run() -> Result<()> {
        let k: usize = lifeline_benches::arg("worker", 0)?;
        let list: String = lifeline_benches::arg("sessions", String::new())?;
        let portal: SocketAddr = lifeline_benches::arg("portal", "127.0.0.1:1".parse()?)?;
        let fingerprint: String = lifeline_benches::arg("fingerprint", String::new())?;
        let in_flight: usize = lifeline_benches::arg("in-flight", 64)?;
        let race_tls = std::env::args().any(|a| a == "--race-tls");
        let fingerprint = hex::decode_array::<32>(&fingerprint)
            .ok_or_else(|| anyhow!("--fingerprint: not 32 hex bytes"))?;
        let mut applets = Vec::new();
        for (i, line) in std::fs::read_to_string(&list)?.lines().enumerate() {
            if i % WORKERS != k {
                continue;
            }
            let (guid, secret) = line.split_once(' ').ok_or_else(|| anyhow!("bad line"))?;
            applets.push(Applet {
                i,
                session: client::BenchSession {
                    guid: guid.parse::<SessionGuid>().map_err(|e| anyhow!("{e}"))?,
                    secret: hex::decode_array::<32>(secret).ok_or_else(|| anyhow!("bad secret"))?,
                },
            });
        }
        // Each applet's connection, and while a dead node's third of them
        // race the two others, two more each.
        let held = applets.len() as u64;
        sys::raise_nofile(held + held / 3 * 2 + 512)?;
        let dir = fetch_directory(&client::portal(portal, fingerprint)?).await?;
        let nodes: Vec<(String, SocketAddr)> = dir
            .nodes
            .iter()
            .map(|n| Ok((n.name.clone(), n.addr.parse::<SocketAddr>()?)))
            .collect::<Result<_>>()?;
        let nodes = Arc::new(nodes);
        let cfg = client::outer_config(fingerprint, ALPN_RELAY)?;
        let first_connects = Arc::new(Semaphore::new(in_flight.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for a in applets {
            let (nodes, cfg, gate) = (nodes.clone(), cfg.clone(), first_connects.clone());
            tasks.spawn(applet(a, nodes, cfg, gate, race_tls));
        }
        // Run until the coordinator closes stdin (or kills us).
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
        });
        // An applet's task ends once it is paired; one that fails ends
        // the worker.
        let watch = async {
            while let Some(r) = tasks.join_next().await {
                r??;
            }
            anyhow::Ok(())
        };
        tokio::select! {
            _ = stdin_closed => Ok(()),
            r = watch => {
                r?;
                // Every applet was paired: hold on until told to stop.
                std::future::pending().await
            }
        }
    }

    /// One applet: reach a node, wait there; when the connection breaks,
    /// pause as the applet does and try again.
    async fn applet(
        a: Applet,
        nodes: Arc<Vec<(String, SocketAddr)>>,
        cfg: Arc<rustls::ClientConfig>,
        first_connects: Arc<Semaphore>,
        race_tls: bool,
    ) -> Result<()> {
        let src = source_of(a.i);
        let mut permit = Some(first_connects.acquire_owned().await?);
        let mut backoff = FIRST_BACKOFF;
        loop {
            match reach_and_wait(&a, src, &nodes, &cfg, &mut permit, race_tls).await {
                Ok(()) => return Ok(()),
                Err(_) => {
                    permit = None;
                    // The applet's pause: up to half again, at random.
                    let jitter = backoff
                        .mul_f64((live::random_u64() >> 11) as f64 / (1u64 << 53) as f64 / 2.0);
                    tokio::time::sleep(backoff + jitter).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn source_of(i: usize) -> std::net::IpAddr {
        let j = i / PER_SOURCE;
        client::loopback_source((j / client::SOURCES_PER_BLOCK) as u8, j)
    }

    /// The applet's choice of node (`applet/src/gateway.rs`
    /// `connect_fastest`): TCP connects to the nodes in a random order, all
    /// at once; TLS with the first to answer, then the next.
    async fn first_answer(
        src: std::net::IpAddr,
        nodes: &[(String, SocketAddr)],
        cfg: &Arc<rustls::ClientConfig>,
    ) -> Result<(String, Outer)> {
        race::first_to_answer(
            race::shuffled(nodes.to_vec()),
            move |(_, addr)| async move {
                let tcp = tokio::time::timeout(
                    client::CONNECT_TIMEOUT,
                    client::tcp_from(Some(src), addr),
                );
                tcp.await
                    .map_err(|_| anyhow!("TCP connect to {addr}: timed out"))?
                    .map_err(anyhow::Error::from)
            },
            |(_, addr), tcp| client::tls_over(tcp, addr, cfg.clone()),
        )
        .await
        .map(|((node, _), s)| (node, s))
        .map_err(|last| last.unwrap_or_else(|| anyhow!("no node in the directory")))
    }

    /// The earlier applet's choice (`--race-tls`): full TLS handshakes with
    /// every node of the directory at once, the first to finish kept.
    async fn first_handshake(
        src: std::net::IpAddr,
        nodes: &[(String, SocketAddr)],
        cfg: &Arc<rustls::ClientConfig>,
    ) -> Result<(String, Outer)> {
        let mut race = Race::start(nodes.iter().cloned(), |(_, addr)| {
            let cfg = cfg.clone();
            async move { client::tls_connect(Some(src), addr, cfg).await }
        });
        match race.next_success().await {
            Some(((node, _), s)) => Ok((node, s)),
            None => Err(race
                .take_last_error()
                .unwrap_or_else(|| anyhow!("no node in the directory"))),
        }
    }

    /// Connects as the applet does, says hello, reports `Waiting`, and
    /// holds the connection until it is paired (`Ok`) or breaks (`Err`).
    async fn reach_and_wait(
        a: &Applet,
        src: std::net::IpAddr,
        nodes: &[(String, SocketAddr)],
        cfg: &Arc<rustls::ClientConfig>,
        permit: &mut Option<tokio::sync::OwnedSemaphorePermit>,
        race_tls: bool,
    ) -> Result<()> {
        let (node, mut s) = if race_tls {
            first_handshake(src, nodes, cfg).await?
        } else {
            first_answer(src, nodes, cfg).await?
        };
        client::applet_wait(&mut s, &a.session).await?;
        say(format!("W {} {node} {}", a.i, unix_ms()));
        *permit = None;
        loop {
            match gateway_conn::read_server_msg(&mut s).await? {
                ServerMsg::Ping => {}
                ServerMsg::Paired { .. } => {
                    say(format!("P {}", a.i));
                    return Ok(());
                }
                other => bail!("a waiting applet got {other:?}"),
            }
        }
    }
}
