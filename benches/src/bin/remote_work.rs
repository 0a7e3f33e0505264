//! Remote work on each path, with the real binaries: what a file transfer
//! moves next to the link test of the same session, and how fast a
//! shell's keystrokes echo while a file moves, next to the path's round
//! trip.
//!
//! `remote_work [--mib 256] [--paths relay,tcp,udp] [--echo-gap-ms 5]
//! [--lab-rate 100mbit] [--lab-mib 64]`
//!
//! For each path a real `gateway` (release build next to this binary) is
//! started, a session created and its applet run with a home folder of
//! its own (the files land in its `Downloads`, on the disk the system
//! temporary folder is on); `tech-console connect --path P` pairs in batch
//! mode and the end user grants files both ways and a command prompt with
//! one single prompt. Then, in the same session:
//!
//! * **round trip** — the median of ten `probe`s (a byte there and back on
//!   an interactive channel, through both ends' session loops).
//! * **link test** — `linktest MIB to_user`, then `from_user`: the session's
//!   own bulk stream, no disk and no hash (the reference).
//! * **file** — `send` of a MIB file of random bytes to the end user, then
//!   `fetch` of it back: wall clock from the command to the console's
//!   report that the receiver checked the SHA-256 and saved it, so
//!   reading, hashing on both ends, writing and the final sync all count.
//!   **Target:** ≥ 90% of the link test in the same direction.
//! * **echo** — in a shell, one keystroke-sized write (`keys "k0001"`)
//!   every `--echo-gap-ms`, each timed until its echo is back at the
//!   console: first with nothing else running (idle), then while the file
//!   is sent again, then while it is fetched again. **Target:** p99 under
//!   a transfer ≤ round trip + 5 ms.
//!
//! CPU columns: CPU seconds per GB moved of the applet, the console and
//! the gateway together (from `/proc`), for the link test and the file —
//! on a 2-core machine with all three processes on it, the limiter.
//!
//! On loopback the link is faster than the file's own work, so as root
//! the same steps run once more in the NAT lab (`tests/natlab/natlab.sh`,
//! as the tests use it) with nat-a's WAN link limited to
//! `--lab-rate` by the kernel's token bucket, the applet behind nat-a and
//! the console behind nat-b, on the relay and on XTCP: a path where the
//! link is the limit, as an end user's uplink is. A last table measures
//! the file's own work alone: SHA-256 (ring, in memory) and writing plus
//! syncing a file of the same size in the folder the applet saves to.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail};
use lifeline_benches::arg;
use lifeline_benches::stats::{Table, median, percentile};
use lifeline_benches::sys::{Cpu, print_header, process_cpu};
use lifeline_tests::natlab::{self, GW_IP, Lab};
use lifeline_tests::{
    Console, Gateway, Proc, Scenario, TECH_EMAIL, TECH_NAME, TECH_PASSWORD, TempDir, in_netns,
    pair_with,
};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long any one step may take.
const STEP: Duration = Duration::from_secs(300);
/// Echoes measured with nothing else running.
const IDLE_ECHOES: usize = 100;
/// Tokens on one shell line before it is ended (a comment, so it runs
/// nothing).
const PER_LINE: usize = 20;

/// One path's numbers.
struct Row {
    path: String,
    rtt_ms: f64,
    /// Link test MB/s to / from the user.
    link: [f64; 2],
    /// File MB/s to / from the user.
    file: [f64; 2],
    /// CPU-s per GB, link test and file (both directions together).
    cpu_link: f64,
    cpu_file: f64,
    /// Echo times (ms): idle, while sending, while fetching.
    echo: [Vec<f64>; 3],
    /// File MB/s while echoing: sending, fetching.
    busy: [f64; 2],
}

/// Where a session runs: a gateway on loopback, or the NAT lab.
enum Place {
    Loopback(Scenario),
    Lab {
        gw: Gateway,
        console: Console,
        _data: TempDir,
        // Last: the lab goes after the processes in it.
        _lab: Lab,
    },
}

/// A session on one path, with everything granted and a shell open.
struct Bench {
    /// Kept for its processes and folders (dropped with the bench).
    _place: Place,
    home: TempDir,
    files: TempDir,
    applet: Proc,
    tech: Proc,
    gateway: u32,
    /// Shell output not yet matched.
    shell: String,
    tokens: usize,
    on_line: usize,
}

impl Bench {
    /// A session on loopback, or (with `lab_rate`) in the NAT lab.
    fn start(path: &str, lab_rate: Option<&str>) -> Result<Self> {
        let home = TempDir::new("bench-home");
        let files = TempDir::new("bench-files");
        let applet_path = files.path().join("support");
        let (place, ns) = match lab_rate {
            None => (Place::Loopback(Scenario::start(&[])), None),
            Some(rate) => {
                let lab = Lab::up("rw-");
                lab.sh(&["rate", "nat-a", rate]);
                let data = TempDir::new("bench-lab-gw");
                let gw = Gateway::start_in_netns(
                    &lab.ns("gw"),
                    data.path(),
                    &format!("{GW_IP}:8443"),
                    &[
                        "--stun-listen",
                        &format!("{GW_IP}:3478"),
                        "--public-name",
                        GW_IP,
                    ],
                );
                gw.add_technician(TECH_EMAIL, TECH_NAME, TECH_PASSWORD);
                let console = Console::in_netns(&lab.ns("host-b"));
                console.login(&gw, TECH_EMAIL, TECH_PASSWORD);
                let ns = lab.ns("host-a");
                (
                    Place::Lab {
                        gw,
                        console,
                        _data: data,
                        _lab: lab,
                    },
                    Some(ns),
                )
            }
        };
        let (gw, console) = match &place {
            Place::Loopback(s) => (&s.gw, &s.console),
            Place::Lab { gw, console, .. } => (gw, console),
        };
        let out = gw.admin(
            &["group", "permissions", "default", "all,single-prompt"],
            "",
        );
        if !out.status.success() {
            bail!("group permissions: {out:?}");
        }
        let gateway = gw.pid();
        let guid = console.session_new("remote-work", &applet_path);
        let mut cmd = match &ns {
            None => Command::new(&applet_path),
            Some(ns) => in_netns(ns, &applet_path),
        };
        cmd.env("HOME", home.path()).current_dir(home.path());
        let mut applet = Proc::spawn(&mut cmd);
        applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
        let (tech, _) = pair_with(
            console,
            &mut applet,
            &guid,
            &guid,
            &["--path", path, "--udp-after", "1"],
        );
        let mut b = Bench {
            _place: place,
            home,
            files,
            applet,
            tech,
            gateway,
            shell: String::new(),
            tokens: 0,
            on_line: 0,
        };
        let want = path.to_owned();
        b.until(&format!("the {path} path"), |v| {
            v["event"] == "path" && v["path"] == want.as_str()
        })?;
        b.tech
            .send("ask run-command,file-to-user,file-from-user session");
        b.applet.out.wait_for("Allow it?");
        b.applet.send("yes");
        b.until("consent", |v| {
            v["event"] == "consent" && v["decision"] == "granted"
        })?;
        Ok(b)
    }

    /// The next console event matching `f`; an error on the session's end
    /// or after [`STEP`].
    fn until(&mut self, what: &str, f: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .tech
                .out
                .next(left)
                .with_context(|| format!("no {what} within {STEP:?}"))?;
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["event"] == "ended" {
                bail!("the session ended while waiting for {what}: {v}");
            }
            if v["event"] == "shell_output" {
                self.shell.push_str(v["data"].as_str().unwrap_or(""));
            }
            if f(&v) {
                return Ok(v);
            }
        }
    }

    /// CPU the three processes have used so far.
    fn cpu(&self) -> Result<Cpu> {
        let mut sum = Cpu::default();
        for pid in [self.applet.child.id(), self.tech.child.id(), self.gateway] {
            let c = process_cpu(pid)?;
            sum.user += c.user;
            sum.sys += c.sys;
        }
        Ok(sum)
    }

    fn probe_ms(&mut self) -> Result<f64> {
        let mut rtts = Vec::new();
        for _ in 0..10 {
            self.tech.send("probe");
            let v = self.until("probe", |v| v["event"] == "probe")?;
            rtts.push(v["rtt_ms"].as_f64().unwrap_or(f64::NAN));
        }
        Ok(median(&rtts))
    }

    fn linktest(&mut self, mib: u64, dir: &str) -> Result<f64> {
        self.tech.send(&format!("linktest {mib}M {dir}"));
        let done = self.until("the link test", |v| {
            v["event"] == "linktest" && v["state"] == "done"
        })?;
        if done["ok"] != true {
            bail!("link test failed: {done}");
        }
        Ok(done["mbps"].as_f64().unwrap_or(0.0))
    }

    /// Starts `line` (a `send` or `fetch`) of `name`; [`Bench::ended`]
    /// waits for its end.
    fn transfer(&mut self, line: &str) -> Instant {
        self.tech.send(line);
        Instant::now()
    }

    fn is_end(v: &Value, name: &str) -> bool {
        v["event"] == "transfer"
            && v["name"] == name
            && !matches!(v["state"].as_str(), Some("started" | "progress"))
    }

    /// Waits for the end of transfer `name` started at `t0`; MB/s.
    fn ended(&mut self, name: &str, t0: Instant, size: u64) -> Result<f64> {
        let v = self.until(&format!("the end of {name}"), |v| Self::is_end(v, name))?;
        Self::saved(&v)?;
        Ok(size as f64 / t0.elapsed().as_secs_f64() / 1e6)
    }

    fn saved(v: &Value) -> Result<()> {
        if v["state"] != "saved" {
            bail!("the transfer did not save: {v}");
        }
        Ok(())
    }

    fn open_shell(&mut self) -> Result<()> {
        self.tech.send("shell 80x24");
        self.until("the shell", |v| v["event"] == "started")?;
        // The prompt, then a comment line for the tokens.
        self.until("the prompt", |v| v["event"] == "shell_output")?;
        self.tech.send("keys \"#\"");
        Ok(())
    }

    /// One keystroke-sized write, timed until its echo is back. While a
    /// transfer `name` runs, its end is noted in `ended` instead of
    /// failing.
    fn echo(&mut self, name: Option<&str>, ended: &mut Option<Value>) -> Result<f64> {
        self.tokens += 1;
        let token = format!("k{:04}", self.tokens % 10_000);
        let t0 = Instant::now();
        self.tech.send(&format!("keys \"{token}\""));
        while !self.shell.contains(&token) {
            let v = self.until("an echo", |v| {
                v["event"] == "shell_output"
                    || v["event"] == "exited"
                    || name.is_some_and(|n| Self::is_end(v, n))
            })?;
            if v["event"] == "exited" {
                bail!("the shell ended: {v}");
            }
            if v["event"] == "transfer" {
                *ended = Some(v);
            }
        }
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        if let Some(i) = self.shell.find(&token) {
            self.shell.drain(..i + token.len());
        }
        self.on_line += 1;
        if self.on_line == PER_LINE {
            // Runs the comment; a new one starts.
            self.tech.send("keys ");
            self.tech.send("keys \"#\"");
            self.on_line = 0;
        }
        Ok(ms)
    }

    /// Echoes every `gap` until transfer `name` ends; its MB/s and the
    /// echo times.
    fn echo_during(
        &mut self,
        line: &str,
        name: &str,
        size: u64,
        gap: Duration,
    ) -> Result<(f64, Vec<f64>)> {
        let t0 = self.transfer(line);
        let mut ended = None;
        let mut echoes = Vec::new();
        while ended.is_none() {
            let next = Instant::now() + gap;
            echoes.push(self.echo(Some(name), &mut ended)?);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            if ended.is_none()
                && let Some(line) = self.tech.out.next(Duration::ZERO)
                && let Ok(v) = serde_json::from_str::<Value>(&line)
            {
                if v["event"] == "shell_output" {
                    self.shell.push_str(v["data"].as_str().unwrap_or(""));
                }
                if Self::is_end(&v, name) {
                    ended = Some(v);
                }
            }
        }
        let v = ended.unwrap_or_default();
        Self::saved(&v)?;
        Ok((size as f64 / t0.elapsed().as_secs_f64() / 1e6, echoes))
    }
}

fn random_file(path: &Path, mib: u64) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        f.write_all(&block)?;
    }
    f.flush()?;
    Ok(())
}

fn one_path(path: &str, lab_rate: Option<&str>, mib: u64, gap: Duration) -> Result<Row> {
    let size = mib << 20;
    let mut b = Bench::start(path, lab_rate)?;
    let path = &match lab_rate {
        None => path.to_owned(),
        Some(rate) => format!("lab {path} ({rate})"),
    };
    let rtt_ms = b.probe_ms()?;
    eprintln!("{path}: round trip {rtt_ms:.2} ms");

    let c0 = b.cpu()?;
    let link = [b.linktest(mib, "to_user")?, b.linktest(mib, "from_user")?];
    let c1 = b.cpu()?;
    eprintln!("{path}: link test {:.0} / {:.0} MB/s", link[0], link[1]);

    let src = b.files.path().join("bench.bin");
    random_file(&src, mib)?;
    let c2 = b.cpu()?;
    let t0 = b.transfer(&format!("send {}", src.display()));
    let to = b.ended("bench.bin", t0, size)?;
    let back = b.files.path().join("back");
    std::fs::create_dir_all(&back)?;
    let t0 = b.transfer(&format!("fetch ~/Downloads/bench.bin {}", back.display()));
    let from = b.ended("bench.bin", t0, size)?;
    let c3 = b.cpu()?;
    eprintln!("{path}: file {to:.0} / {from:.0} MB/s");
    let gb = 2.0 * size as f64 / 1e9;

    b.open_shell()?;
    let mut idle = Vec::new();
    let mut none = None;
    for _ in 0..IDLE_ECHOES {
        let next = Instant::now() + gap;
        idle.push(b.echo(None, &mut none)?);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let (busy_to, sending) =
        b.echo_during(&format!("send {}", src.display()), "bench.bin", size, gap)?;
    let downloads = b.home.path().join("Downloads");
    let (busy_from, fetching) = b.echo_during(
        &format!("fetch ~/Downloads/bench.bin {}", back.display()),
        "bench.bin",
        size,
        gap,
    )?;
    eprintln!(
        "{path}: echo p99 idle {:.1} ms, sending {:.1} ms, fetching {:.1} ms ({} / {} samples)",
        percentile(&idle, 99.0),
        percentile(&sending, 99.0),
        percentile(&fetching, 99.0),
        sending.len(),
        fetching.len()
    );
    let _ = std::fs::remove_dir_all(downloads);
    b.tech.send("end");
    let _ = b.until("the end", |v| v["event"] == "ended");
    Ok(Row {
        path: path.to_owned(),
        rtt_ms,
        link,
        file: [to, from],
        cpu_link: (c1 - c0).total() / gb,
        cpu_file: (c3 - c2).total() / gb,
        echo: [idle, sending, fetching],
        busy: [busy_to, busy_from],
    })
}

fn main() -> Result<()> {
    let mib: u64 = arg("mib", 256)?;
    let paths: String = arg("paths", "relay,tcp,udp".to_owned())?;
    let gap = Duration::from_millis(arg("echo-gap-ms", 5)?);
    print_header(&format!(
        "remote_work: {mib} MiB files next to {mib} MiB link tests, and shell echo under a transfer"
    ));
    let lab_rate: String = arg("lab-rate", "100mbit".to_owned())?;
    let lab_mib: u64 = arg("lab-mib", 64)?;
    let mut rows = Vec::new();
    for path in paths.split(',') {
        rows.push(one_path(path, None, mib, gap)?);
    }
    if lab_rate.is_empty() || lab_rate == "none" {
        eprintln!("the lab rows are off (--lab-rate none)");
    } else if !is_root() {
        eprintln!("not root: no NAT lab rows (they need network namespaces)");
    } else {
        natlab::require();
        for path in ["relay", "udp"] {
            rows.push(one_path(path, Some(&lab_rate), lab_mib, gap)?);
        }
    }
    let alone = limiters_alone(mib)?;
    let mut files = Table::new(&[
        "path",
        "direction",
        "link test MB/s",
        "file MB/s",
        "of link test",
        "target ≥ 90%",
        "CPU-s/GB link test / file (3 processes)",
    ]);
    let mut echo = Table::new(&[
        "path",
        "round trip ms",
        "echo idle p50 / p99 ms",
        "while sending p50 / p99 / max ms (n), file MB/s",
        "while fetching p50 / p99 / max ms (n), file MB/s",
        "target p99 ≤ RTT + 5 ms",
    ]);
    for r in &rows {
        for (d, dir) in ["to user (send)", "from user (fetch)"].iter().enumerate() {
            let ratio = r.file[d] / r.link[d];
            files.row(vec![
                r.path.clone(),
                (*dir).to_owned(),
                format!("{:.0}", r.link[d]),
                format!("{:.0}", r.file[d]),
                format!("{:.0}%", ratio * 100.0),
                if ratio >= 0.9 { "✔" } else { "✘" }.to_owned(),
                format!("{:.2} / {:.2}", r.cpu_link, r.cpu_file),
            ]);
        }
        let under = |v: &Vec<f64>, mbps: f64| {
            format!(
                "{:.1} / {:.1} / {:.1} ({}), {mbps:.0}",
                percentile(v, 50.0),
                percentile(v, 99.0),
                v.iter().copied().fold(0.0, f64::max),
                v.len()
            )
        };
        let worst = percentile(&r.echo[1], 99.0).max(percentile(&r.echo[2], 99.0));
        echo.row(vec![
            r.path.clone(),
            format!("{:.2}", r.rtt_ms),
            format!(
                "{:.1} / {:.1}",
                percentile(&r.echo[0], 50.0),
                percentile(&r.echo[0], 99.0)
            ),
            under(&r.echo[1], r.busy[0]),
            under(&r.echo[2], r.busy[1]),
            if worst <= r.rtt_ms + 5.0 {
                "✔"
            } else {
                "✘"
            }
            .to_owned(),
        ]);
    }
    println!("### File goodput next to the link test\n");
    files.print();
    println!("\n### Keystroke echo in the shell\n");
    echo.print();
    println!("\n### A file's own work alone ({mib} MiB, same run)\n");
    alone.print();
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// SHA-256 (ring, in memory, as both ends hash) and writing plus syncing
/// `mib` MiB in the folder the applet saves to (the system temporary
/// folder's disk), each alone on an otherwise idle machine.
fn limiters_alone(mib: u64) -> Result<Table> {
    let size = mib << 20;
    let data = vec![0x5au8; usize::try_from(size)?];
    let mut t = Table::new(&["step", "MB/s", "CPU-s/GB"]);
    let c0 = lifeline_benches::sys::thread_cpu()?;
    let t0 = Instant::now();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for chunk in data.chunks(64 << 10) {
        ctx.update(chunk);
    }
    std::hint::black_box(ctx.finish());
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (lifeline_benches::sys::thread_cpu()? - c0).total();
    t.row(vec![
        "SHA-256, 64 KiB chunks (each end does it once)".into(),
        format!("{:.0}", size as f64 / secs / 1e6),
        format!("{:.2}", cpu / (size as f64 / 1e9)),
    ]);
    let dir = TempDir::new("bench-disk");
    let path = dir.path().join("w.bin");
    let c0 = lifeline_benches::sys::thread_cpu()?;
    let t0 = Instant::now();
    let mut f = std::fs::File::create(&path)?;
    for chunk in data.chunks(64 << 10) {
        f.write_all(chunk)?;
    }
    let written = t0.elapsed().as_secs_f64();
    f.sync_all()?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (lifeline_benches::sys::thread_cpu()? - c0).total();
    t.row(vec![
        format!(
            "write 64 KiB chunks, then sync (the sync alone: {:.0} ms)",
            (secs - written) * 1e3
        ),
        format!("{:.0}", size as f64 / secs / 1e6),
        format!("{:.2}", cpu / (size as f64 / 1e9)),
    ]);
    Ok(t)
}
