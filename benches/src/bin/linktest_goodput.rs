//! What the link test moves through the real binaries on each path, next
//! to the same link test of another build (before the session core and its
//! channels, say) measured in the same run on the same machine.
//!
//! `linktest_goodput --reference DIR [--runs 3] [--mib 512] [--paths relay,tcp,udp]`
//!
//! DIR holds the reference build's `gateway` and `tech-console` (a
//! `target/release` directory). For each build and path, each run starts
//! that build's gateway, creates a session with its console (so the applet
//! is that build's too), connects with `--path relay|tcp|udp` and runs
//! `linktest MIB to_user` then `from_user`; the receiving end checks every
//! byte and the console prints the goodput. The table gives the median per
//! direction. **Target:** this build ≥ 95% of the reference on every path.
//! Both builds' three processes share the machine's cores: the limiter on
//! loopback is CPU (see `relay_goodput` and `xtcp_goodput`).
#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail};
use lifeline_benches::arg;
use lifeline_benches::stats::{Table, median};
use lifeline_benches::sys::print_header;
use lifeline_tests::{Proc, Scenario, TECH_NAME, pair_with, use_binaries_from};
use std::path::PathBuf;

/// Goodput of one link test each way, MB/s.
fn one_run(path: &str, mib: u64) -> (f64, f64) {
    let s = Scenario::start(&[]);
    let (applet_path, guid) = s.session("goodput");
    let mut applet = Proc::applet(&applet_path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let (mut tech, _) = pair_with(&s.console, &mut applet, &guid, &guid, &["--path", path]);
    let want = if path == "relay" { "relay" } else { path };
    // Direct paths: wait until the session is on them.
    loop {
        let v = tech.event("path");
        if v["path"] == want {
            break;
        }
        assert!(path == "relay", "did not reach {path}: {v}");
    }
    let mut mbps = [0.0; 2];
    for (i, dir) in ["to_user", "from_user"].into_iter().enumerate() {
        tech.send(&format!("linktest {mib}M {dir}"));
        let done = loop {
            let v = tech.event("linktest");
            if v["state"] == "done" {
                break v;
            }
        };
        assert_eq!(done["ok"], true, "{done}");
        mbps[i] = done["mbps"].as_f64().unwrap_or(0.0);
    }
    tech.send("end");
    tech.event("ended");
    (mbps[0], mbps[1])
}

fn main() -> Result<()> {
    let runs: usize = arg("runs", 3)?;
    let mib: u64 = arg("mib", 512)?;
    let reference: String = arg("reference", String::new())?;
    if reference.is_empty() {
        bail!("--reference DIR (the other build's target/release) is required");
    }
    let reference = PathBuf::from(reference);
    for b in ["gateway", "tech-console"] {
        if !reference.join(b).exists() {
            bail!("{} has no {b}", reference.display());
        }
    }
    let reference = reference.canonicalize().context("--reference")?;
    let paths: String = arg("paths", "relay,tcp,udp".to_owned())?;
    print_header(&format!(
        "linktest_goodput: {mib} MiB link tests, this build next to {}",
        reference.display()
    ));
    let mut table = Table::new(&[
        "path",
        "direction",
        "reference MB/s",
        "this build MB/s",
        "of reference",
        "target ≥ 95%",
    ]);
    for path in paths.split(',') {
        let mut results: [[Vec<f64>; 2]; 2] = Default::default();
        for run in 0..runs {
            // Alternate the builds, so a drift of the machine hits both.
            for (b, dir) in [(0, Some(reference.clone())), (1, None)] {
                use_binaries_from(dir);
                let (to, from) = one_run(path, mib);
                eprintln!(
                    "{path} {} run {run}: to_user {to:.0} MB/s, from_user {from:.0} MB/s",
                    ["reference", "this build"][b]
                );
                results[b][0].push(to);
                results[b][1].push(from);
            }
        }
        for (d, dir) in ["to_user", "from_user"].into_iter().enumerate() {
            let (r, t) = (median(&results[0][d]), median(&results[1][d]));
            let ratio = if r > 0.0 { t / r } else { 0.0 };
            table.row(vec![
                path.to_owned(),
                dir.to_owned(),
                format!("{r:.0}"),
                format!("{t:.0}"),
                format!("{:.0}%", ratio * 100.0),
                if ratio >= 0.95 { "✔" } else { "✘" }.to_owned(),
            ]);
        }
    }
    use_binaries_from(None);
    table.print();
    Ok(())
}
