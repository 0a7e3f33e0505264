//! The applet as the end user gets it: how big the download is, and how
//! soon its window is on the screen after a double-click.
//!
//! `applet_window [--stock target/applet/applet] [--runs 15]`
//!
//! * **size** — the stock applet (built with `cargo build --profile applet
//!   --bin applet`: optimized for size, link-time optimized, stripped) and
//!   the same file personalized by a real gateway (release build next to
//!   this binary) for a real session. **Target:** ≤ 12 MiB.
//! * **start** — on a virtual desktop (Xvfb; `tests/src/desktop.rs`), from
//!   starting the personalized applet to the X server's MapNotify of its
//!   window (`tests/window/a11y.py maptime`), the median of `--runs`.
//!   **Target:** ≤ 300 ms. The references in the same run: `xmessage` (a
//!   plain X toolkit program: the floor of starting any window here) and
//!   the applet with `--no-window` until its first line on the terminal
//!   (starting the process and verifying its signed trailer), and — the
//!   suspected limiter alone — `glxinfo -B` (Debian's mesa-utils), which
//!   opens the display, creates an OpenGL context (Mesa's llvmpipe, as
//!   the applet's window gets on a machine without a GPU) and exits.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail};
use lifeline_benches::arg;
use lifeline_benches::stats::{Table, median, percentile};
use lifeline_benches::sys::print_header;
use lifeline_tests::{Desktop, Proc, Scenario};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn mib(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / (1 << 20) as f64)
}

fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let stock: PathBuf = arg("--stock", root.join("target/applet/applet"))?;
    let runs: usize = arg("--runs", 15)?;
    if !stock.exists() {
        bail!(
            "{} is missing: build it with `cargo build --profile applet --bin applet`",
            stock.display()
        );
    }
    print_header("applet_window: the applet's size and the time to its window");
    let platform = format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH);
    let s = Scenario::start(&["--applet", &format!("{platform}={}", stock.display())]);
    let (applet, _guid) = s.session("bench");

    let mut sizes = Table::new(&["file", "MiB", "target ≤ 12 MiB"]);
    for (what, path) in [("stock (size profile)", &stock), ("personalized", &applet)] {
        let n = std::fs::metadata(path)?.len();
        let ok = n <= 12 << 20;
        sizes.row(vec![
            what.to_owned(),
            mib(n),
            if ok { "✔" } else { "✘" }.to_owned(),
        ]);
    }
    sizes.print();

    let desk = Desktop::start();
    let xmessage = PathBuf::from("/usr/bin/xmessage");
    let mut window = Vec::new();
    let mut floor = Vec::new();
    let mut terminal = Vec::new();
    let mut gl = Vec::new();
    let glxinfo = PathBuf::from("/usr/bin/glxinfo");
    for run in 0..runs {
        // --keep: the file stays for the next run (it is killed, not
        // ended, so it would stay anyway).
        let w = desk
            .map_time_ms(&applet, &["--keep"], &[("LANG", "en_US.UTF-8")])
            .context("the applet's window never appeared")?;
        window.push(w);
        if xmessage.exists()
            && let Some(x) = desk.map_time_ms(&xmessage, &["-timeout", "5", "Lifeline"], &[])
        {
            floor.push(x);
        }
        let started = Instant::now();
        let mut cmd = Command::new(&applet);
        cmd.args(["--keep", "--no-window"]);
        let mut p = Proc::spawn(&mut cmd);
        p.out
            .next(Duration::from_secs(10))
            .context("the applet printed nothing")?;
        terminal.push(started.elapsed().as_secs_f64() * 1e3);
        drop(p);
        if glxinfo.exists() {
            let started = Instant::now();
            let mut cmd = Command::new(&glxinfo);
            cmd.arg("-B");
            desk.env(&mut cmd);
            if lifeline_tests::run_bounded(&mut cmd, Duration::from_secs(30))
                .status
                .success()
            {
                gl.push(started.elapsed().as_secs_f64() * 1e3);
            }
        }
        eprintln!(
            "run {run}: window {w:.0} ms, xmessage {:.0} ms, terminal {:.0} ms",
            floor.last().copied().unwrap_or(f64::NAN),
            terminal.last().copied().unwrap_or(f64::NAN)
        );
    }
    let mut t = Table::new(&["to the screen", "median ms", "p90 ms", "target ≤ 300 ms"]);
    let row = |t: &mut Table, what: &str, v: &[f64], target: bool| {
        let m = median(v);
        t.row(vec![
            what.to_owned(),
            format!("{m:.0}"),
            format!("{:.0}", percentile(v, 90.0)),
            if !target {
                "(reference)".to_owned()
            } else if m <= 300.0 {
                "✔".to_owned()
            } else {
                "✘".to_owned()
            },
        ]);
    };
    row(&mut t, "applet: window mapped", &window, true);
    if !floor.is_empty() {
        row(&mut t, "xmessage: window mapped", &floor, false);
    }
    row(&mut t, "applet --no-window: first line", &terminal, false);
    if !gl.is_empty() {
        row(&mut t, "glxinfo -B: an OpenGL context", &gl, false);
    }
    t.print();
    Ok(())
}
