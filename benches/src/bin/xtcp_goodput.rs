//! XTCP goodput and CPU per GiB, next to raw quinn and kernel TCP measured
//! in the same run: on loopback (clean), over the seeded link simulator,
//! and through the NAT lab's router link with its real 1500-byte MTU (as
//! root): unimpaired, where the kernel forwards, and impaired, where the
//! lab's user-space delay/loss relay does. Each lab profile has a UDP
//! flood row (no transport: what the path itself carries) and the relay's
//! share of a core, so a transport row is not read as the relay's ceiling.
//!
//! `xtcp_goodput [--secs 5] [--runs 3] [--lab-secs 20] [--lab-runs 2]
//! [--natlab PATH] [--no-lab] [--congestion tolerant|bbr|cubic]`
//!
//! Each transfer runs between two processes of this binary (`recv` and
//! `send` subcommands; see `lifeline_benches::goodput`), except the
//! simulator rows, whose two ends share one process (`sim`).
#![forbid(unsafe_code)]

use anyhow::{Context, Result, anyhow, bail};
use lifeline_benches::arg;
use lifeline_benches::goodput::{Report, Setup, Transport, receive, send};
use lifeline_benches::stats::{Table, median};
use lifeline_benches::sys::{print_header, process_cpu};
use lifeline_xtcp::Congestion;
use lifeline_xtcp::sim::{LinkProfile, SimLink};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The lab profiles: name, one-way delay on the lab's router link
/// (ping RTT = 2×), loss per direction. The first has no impairment: the
/// kernel forwards at its own speed, with no user-space relay in the way.
const LAB_PROFILES: [(&str, u64, f64); 3] = [
    ("no impairment", 0, 0.0),
    ("40 ms RTT + 1% loss", 20, 1.0),
    ("100 ms RTT + 5% loss", 50, 5.0),
];

const GW_IP: &str = "203.0.113.10";
const HOST_A_IP: &str = "10.0.1.100";

fn congestion() -> Result<Congestion> {
    match arg("congestion", "tolerant".to_owned())?.as_str() {
        "bbr" => Ok(Congestion::Bbr),
        "cubic" => Ok(Congestion::Cubic),
        "tolerant" => Ok(Congestion::LossTolerantCubic),
        other => bail!("--congestion: bbr or cubic, not {other:?}"),
    }
}

fn setup() -> Result<Setup> {
    Ok(Setup {
        transport: Transport::parse(&arg("transport", String::new())?)?,
        max_datagram: arg("max-datagram", 1472usize)?,
        congestion: congestion()?,
    })
}

fn main() -> Result<()> {
    let sub = std::env::args().nth(1).unwrap_or_default();
    // One thread per end: two processes on a 2-core machine, plus the
    // kernel's work, already fill both cores; more threads only add
    // cross-thread wake-ups and run-to-run noise.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match sub.as_str() {
        "recv" => rt.block_on(async {
            let listen: SocketAddr = arg("listen", "127.0.0.1:0".parse()?)?;
            let l = tokio::net::TcpListener::bind(listen).await?;
            println!("READY {}", l.local_addr()?);
            let r = receive(&setup()?, l, arg("secs", 5.0)?).await?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }),
        "send" => rt.block_on(async {
            let to: SocketAddr = arg("connect", "127.0.0.1:0".parse()?)?;
            let local: IpAddr = arg("local", to.ip())?;
            send(&setup()?, to, local).await
        }),
        "sim" => rt.block_on(async {
            let r = sim(
                &arg("profile", "clean".to_owned())?,
                arg("secs", 5.0)?,
                congestion()?,
            )
            .await?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }),
        _ => orchestrate(),
    }
}

fn sim_profile(name: &str) -> Result<LinkProfile> {
    if name == "clean" {
        return Ok(LinkProfile::clean());
    }
    let (_, delay, loss) = LAB_PROFILES
        .iter()
        .find(|p| p.0 == name)
        .ok_or_else(|| anyhow!("unknown profile {name:?}"))?;
    // Like the lab: delay and loss on each direction, Ethernet MTU, no
    // bottleneck of its own.
    Ok(LinkProfile {
        delay: Duration::from_millis(*delay),
        loss: loss / 100.0,
        mtu: 1472,
        ..LinkProfile::clean()
    })
}

/// XTCP over the simulator, both ends in this process, real time.
async fn sim(profile: &str, secs: f64, congestion: Congestion) -> Result<Report> {
    let (a, b) = SimLink::pair(sim_profile(profile)?, 42);
    let id = lifeline_session::identity::SessionIdentity::generate("sim")?;
    let cfg = lifeline_xtcp::XtcpConfig {
        congestion,
        ..Default::default()
    };
    let (cert, key, pin) = (id.cert.clone(), id.key(), id.pin());
    let c2 = cfg.clone();
    let server = tokio::spawn(async move { lifeline_xtcp::accept(b, cert, key, &c2).await });
    let mut tx = lifeline_xtcp::connect(a, pin, &cfg).await?;
    let mut rx = server.await??;
    let writer = tokio::spawn(async move {
        let chunk = vec![0x5au8; 64 * 1024];
        while tx.write_all(&chunk).await.is_ok() {}
    });
    let mut buf = vec![0u8; 256 * 1024];
    rx.read_exact(&mut buf[..1]).await?;
    let cpu0 = process_cpu(std::process::id())?;
    let t0 = Instant::now();
    let mut bytes = 0u64;
    let window = Duration::from_secs_f64(secs);
    while let Some(left) = window.checked_sub(t0.elapsed()) {
        match tokio::time::timeout(left, rx.read(&mut buf)).await {
            Err(_) => break,
            Ok(n) => bytes += n? as u64,
        }
    }
    let took = t0.elapsed().as_secs_f64();
    let cpu = process_cpu(std::process::id())? - cpu0;
    writer.abort();
    Ok(Report {
        transport: "xtcp-sim".into(),
        bytes,
        secs: took,
        recv_cpu: (cpu.user, cpu.sys),
        send_cpu: (0.0, 0.0),
        mtu: rx.stats().path.current_mtu,
        lost: rx.stats().path.lost_packets,
    })
}

/// Runs a command (optionally inside a lab namespace) and returns its
/// last stdout line.
fn run_json(ns: Option<&str>, args: &[String]) -> Result<Report> {
    let out = wrap(ns, args).stderr(Stdio::inherit()).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("{args:?} printed {text:?}"))
}

fn wrap(ns: Option<&str>, args: &[String]) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("xtcp_goodput"));
    let mut c = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    c.args(args);
    c
}

/// One transfer between a `recv` process (in `recv_ns`, listening on
/// `recv_ip`) and a `send` process (in `send_ns`, from `send_ip`).
fn pair_run(
    t: Transport,
    max_datagram: usize,
    secs: f64,
    recv: (Option<&str>, &str),
    send: (Option<&str>, &str),
) -> Result<Report> {
    let common = |extra: Vec<String>| {
        let mut v = vec![
            "--transport".to_owned(),
            t.name().to_owned(),
            "--max-datagram".into(),
            max_datagram.to_string(),
            "--congestion".into(),
            arg("congestion", "tolerant".to_owned()).unwrap_or_else(|_| "tolerant".into()),
        ];
        v.extend(extra);
        v
    };
    let mut rx = wrap(
        recv.0,
        &[
            vec!["recv".to_owned()],
            common(vec![
                "--listen".into(),
                format!("{}:0", recv.1),
                "--secs".into(),
                secs.to_string(),
            ]),
        ]
        .concat(),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .spawn()?;
    let mut lines = BufReader::new(rx.stdout.take().ok_or_else(|| anyhow!("no stdout"))?).lines();
    let ready = lines.next().ok_or_else(|| anyhow!("receiver died"))??;
    let addr = ready
        .strip_prefix("READY ")
        .ok_or_else(|| anyhow!("receiver said {ready:?}"))?
        .to_owned();
    let mut tx = wrap(
        send.0,
        &[
            vec!["send".to_owned()],
            common(vec![
                "--connect".into(),
                addr,
                "--local".into(),
                send.1.to_owned(),
            ]),
        ]
        .concat(),
    )
    .stdout(Stdio::null())
    .spawn()?;
    let report = lines
        .next()
        .ok_or_else(|| anyhow!("receiver printed no report"))??;
    let _ = rx.wait();
    let _ = tx.wait();
    Ok(serde_json::from_str(&report)?)
}

struct Row {
    profile: String,
    what: String,
    runs: Vec<Report>,
    /// The lab relay's share of one core while the row ran (impaired lab
    /// rows only): near 100% means the relay, not the transport, was the
    /// ceiling.
    relay_cpu: Option<f64>,
}

fn summarize(table: &mut Table, row: &Row, reference: Option<f64>) -> f64 {
    let mbps: Vec<f64> = row.runs.iter().map(Report::mbps).collect();
    let m = median(&mbps);
    // The run with the median goodput gives the CPU and MTU columns.
    let med = row
        .runs
        .iter()
        .min_by(|a, b| (a.mbps() - m).abs().total_cmp(&(b.mbps() - m).abs()));
    let (cpu, mtu) = med.map_or((f64::NAN, 0), |r| (r.cpu_per_gib(), r.mtu));
    table.row(vec![
        row.profile.clone(),
        row.what.clone(),
        format!("{m:.1}"),
        mbps.iter()
            .map(|v| format!("{v:.1}"))
            .collect::<Vec<_>>()
            .join(" / "),
        reference.map_or("—".into(), |r| format!("{:.0}%", m / r * 100.0)),
        format!("{cpu:.2}"),
        if mtu == 0 {
            "—".into()
        } else {
            mtu.to_string()
        },
        row.relay_cpu
            .map_or("—".into(), |c| format!("{:.0}%", c * 100.0)),
    ]);
    m
}

fn orchestrate() -> Result<()> {
    let secs: f64 = arg("secs", 5.0)?;
    let runs: usize = arg("runs", 3)?;
    let lab_secs: f64 = arg("lab-secs", 20.0)?;
    let lab_runs: usize = arg("lab-runs", 2)?;
    let cc = arg("congestion", "tolerant".to_owned())?;
    print_header("XTCP goodput");
    println!(
        "XTCP congestion control: {cc}. Goodput = in-order bytes the receiving application read in a \
         {secs} s window (lab: {lab_secs} s) from its first byte, MB = 10⁶ B. CPU = both processes' \
         utime+stime over the window per GiB moved.\n"
    );
    let mut table = Table::new(&[
        "profile",
        "transport",
        "goodput MB/s (median)",
        "runs MB/s",
        "of reference",
        "CPU s/GiB",
        "path MTU",
        "lab relay CPU",
    ]);

    // Clean loopback. Reference: raw quinn on a plain UDP socket.
    let lo = (None, "127.0.0.1");
    let clean: Vec<(&str, Transport, usize)> = vec![
        ("raw quinn, UDP socket (reference)", Transport::Quinn, 1472),
        (
            "XTCP after ICE (the session's UDP path)",
            Transport::XtcpIce,
            65_527,
        ),
        ("XTCP after ICE, 1500-byte MTU", Transport::XtcpIce, 1472),
        ("XTCP over UDP socket", Transport::XtcpUdp, 65_527),
        (
            "XTCP over UDP socket, 1500-byte MTU",
            Transport::XtcpUdp,
            1472,
        ),
        ("kernel TCP (CUBIC)", Transport::Tcp("cubic"), 0),
        ("kernel TCP (BBR)", Transport::Tcp("bbr"), 0),
    ];
    let mut reference = None;
    for (what, t, md) in clean {
        let mut row = Row {
            profile: "clean loopback".into(),
            what: what.into(),
            runs: Vec::new(),
            relay_cpu: None,
        };
        for i in 0..runs {
            eprintln!("clean loopback: {what}, run {}/{runs}", i + 1);
            row.runs.push(pair_run(t, md, secs, lo, lo)?);
        }
        let m = summarize(&mut table, &row, reference);
        reference.get_or_insert(m);
    }
    let mut row = Row {
        profile: "clean loopback".into(),
        what: "XTCP over simulator (one process)".into(),
        runs: Vec::new(),
        relay_cpu: None,
    };
    for i in 0..runs {
        eprintln!("clean: simulator, run {}/{runs}", i + 1);
        row.runs.push(run_json(
            None,
            &[
                "sim",
                "--profile",
                "clean",
                "--secs",
                &secs.to_string(),
                "--congestion",
                &cc,
            ]
            .map(String::from),
        )?);
    }
    summarize(&mut table, &row, reference);

    let natlab: PathBuf = arg(
        "natlab",
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/natlab/natlab.sh"
        )),
    )?;
    let lab = if std::env::args().any(|a| a == "--no-lab") {
        Err("--no-lab".to_owned())
    } else {
        lab_ready(&natlab)
    };
    match lab {
        Err(why) => println!("(NAT lab rows skipped: {why})\n"),
        Ok(()) => {
            let r = lab_rows(&natlab, &mut table, lab_secs, lab_runs, &cc);
            let _ = Command::new("bash").arg(&natlab).arg("down").output();
            r?;
        }
    }
    table.print();
    Ok(())
}

fn lab_ready(natlab: &Path) -> Result<(), String> {
    if !natlab.exists() {
        return Err(format!("{} not found (--natlab PATH)", natlab.display()));
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    if !root {
        return Err("needs root".into());
    }
    for tool in ["nft", "ethtool", "ping"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Err(format!(
                "{tool} missing: apt-get install nftables ethtool iputils-ping"
            ));
        }
    }
    Ok(())
}

/// The pid of the lab's delay/loss relay on nat-a's link, from the pid
/// file `natlab.sh impair` writes.
fn relay_pid() -> Option<u32> {
    let run = std::env::var("NATLAB_RUN").unwrap_or_else(|_| "/tmp/natlab/run".into());
    std::fs::read_to_string(format!("{run}/relay-nat-a.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn lab(natlab: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("bash").arg(natlab).args(args).output()?;
    if !out.status.success() {
        bail!(
            "natlab {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn lab_rows(natlab: &Path, table: &mut Table, secs: f64, runs: usize, cc: &str) -> Result<()> {
    lab(natlab, &["up"])?;
    // Segmentation offloads off on every lab interface: the lab's
    // delay/loss relay then sees (and drops) single MTU-sized packets, as
    // a real lossy link does, instead of 64 KiB offload batches.
    for (ns, ifs) in [
        ("gw", &["eth0"][..]),
        ("host-a", &["eth0"]),
        ("host-b", &["eth0"]),
        ("nat-a", &["wan", "lan"]),
        ("nat-b", &["wan", "lan"]),
    ] {
        for i in ifs {
            let _ = Command::new("ip")
                .args(["netns", "exec", ns, "ethtool", "-K", i])
                .args(["tso", "off", "gso", "off", "gro", "off"])
                .output();
        }
    }
    let rows: Vec<(&str, Transport)> = vec![
        ("kernel TCP (CUBIC) (reference)", Transport::Tcp("cubic")),
        ("XTCP over UDP socket", Transport::XtcpUdp),
        (
            "XTCP after ICE (the session's UDP path)",
            Transport::XtcpIce,
        ),
        ("raw quinn, UDP socket", Transport::Quinn),
        ("kernel TCP (BBR)", Transport::Tcp("bbr")),
        (
            "UDP flood, a datagram per call, no transport",
            Transport::UdpFlood,
        ),
    ];
    for (profile, delay, loss) in LAB_PROFILES {
        let impaired = delay > 0 || loss > 0.0;
        if impaired {
            lab(
                natlab,
                &["impair", "nat-a", &delay.to_string(), &loss.to_string()],
            )?;
        }
        let mut reference = None;
        for (what, t) in &rows {
            let mut row = Row {
                profile: format!("{profile} (NAT lab)"),
                what: (*what).into(),
                runs: Vec::new(),
                relay_cpu: None,
            };
            let relay = impaired.then(relay_pid).flatten();
            let (cpu0, t0) = (relay.and_then(|p| process_cpu(p).ok()), Instant::now());
            for i in 0..runs {
                eprintln!("{profile}: {what}, run {}/{runs}", i + 1);
                row.runs.push(pair_run(
                    *t,
                    1472,
                    secs,
                    (Some("gw"), GW_IP),
                    (Some("host-a"), HOST_A_IP),
                )?);
            }
            if let (Some(p), Some(c0)) = (relay, cpu0)
                && let Ok(c1) = process_cpu(p)
            {
                let used = c1 - c0;
                row.relay_cpu = Some((used.user + used.sys) / t0.elapsed().as_secs_f64());
            }
            let m = summarize(table, &row, reference);
            reference.get_or_insert(m);
        }
        if !impaired {
            continue;
        }
        // The simulator rows run with the lab's relay stopped, so it takes
        // no CPU from them.
        lab(natlab, &["unimpair", "nat-a"])?;
        let mut row = Row {
            profile: format!("{profile} (simulator)"),
            what: "XTCP over simulator (one process)".into(),
            runs: Vec::new(),
            relay_cpu: None,
        };
        for i in 0..runs {
            eprintln!("{profile}: simulator, run {}/{runs}", i + 1);
            row.runs.push(run_json(
                None,
                &[
                    "sim",
                    "--profile",
                    profile,
                    "--secs",
                    &secs.to_string(),
                    "--congestion",
                    cc,
                ]
                .map(String::from),
            )?);
        }
        summarize(table, &row, reference);
    }
    Ok(())
}
