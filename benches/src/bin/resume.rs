//! How long a session is without a path when its path dies: from the death
//! to the first frames flowing again, per case, next to what limits it
//! measured alone in the same run.
//!
//! `resume [--runs 5]` (as root: the direct case drops packets with nft)
//!
//! Every run starts the real release binaries — a `gateway`, an applet
//! made by `tech-console session new`, and `tech-console connect` — on
//! loopback, and kills the path as a user would meet it:
//!
//! * **direct TCP silent** — both ends run with `--dead-path 3`; the session
//!   is on direct TCP; an nft rule drops every packet of the direct
//!   connection. *Noticed*: the console's `reconnecting` event; *flowing
//!   again*: its `resumed` event (the peer's `Resume` arrived on the new
//!   relay connection; what was not acknowledged is being resent). The
//!   limiter is the dead-path setting itself (3 s): target ≤ 4 s.
//! * **gateway killed** — the session is on the relay; `kill -9` of the
//!   gateway, restarted at once on the same data directory and port.
//!   Noticed at once (the connections reset); the limiter is the
//!   gateway's restart, measured alone in the same run (kill → its
//!   "listening" line).
//! * **console restarted** — the technician's console is killed
//!   (*noticed*: the applet says the technician is reconnecting) and
//!   `connect` run again at once: *flowing again* is the new console's
//!   verification code (the session goes on, afresh). The limiter is a
//!   first `connect` (portal lookup, pairing, end-to-end handshake),
//!   measured in the same run on the same session.
#![forbid(unsafe_code)]

use anyhow::Result;
use lifeline_benches::arg;
use lifeline_benches::stats::{Table, median};
use lifeline_benches::sys::print_header;
use lifeline_tests::{Gateway, PortBlock, Proc, Scenario, TECH_NAME, on_direct_tcp, pair_with};
use std::time::{Duration, Instant};

/// The dead-path setting of the direct case.
const DEAD_PATH_SECS: &str = "3";

/// One case: its name, how to run it once, what limits it, the target.
type CaseSpec = (&'static str, fn(&mut Case), &'static str, &'static str);

#[derive(Default)]
struct Case {
    noticed: Vec<f64>,
    flowing: Vec<f64>,
    limiter: Vec<f64>,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The console's next event named `name`, failing on an end.
fn await_event(tech: &mut Proc, name: &str) -> serde_json::Value {
    loop {
        let v = tech.event_any();
        if v["event"] == name {
            return v;
        }
        assert!(
            v["event"] != "ended" && v["event"] != "error",
            "session failed while waiting for {name}: {v}"
        );
    }
}

fn direct_tcp_silent(case: &mut Case) {
    let s = Scenario::start(&[]);
    let (mut applet, mut tech, _, port) = on_direct_tcp(&s, "direct", DEAD_PATH_SECS);
    let block = PortBlock::new(port);
    let t0 = Instant::now();
    await_event(&mut tech, "reconnecting");
    case.noticed.push(secs(t0.elapsed()));
    await_event(&mut tech, "resumed");
    case.flowing.push(secs(t0.elapsed()));
    case.limiter.push(DEAD_PATH_SECS.parse().unwrap_or(0.0));
    drop(block);
    tech.send("say still here");
    applet.out.wait_for("still here");
}

fn gateway_killed(case: &mut Case) {
    let mut s = Scenario::start(&[]);
    let (applet_path, guid) = s.session("killed");
    let mut applet = Proc::applet(&applet_path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let (mut tech, _) = pair_with(&s.console, &mut applet, &guid, &guid, &["--path", "relay"]);
    let addr = s.gw.addr.clone();
    let t0 = Instant::now();
    s.gw.kill();
    s.gw = Gateway::start_at(s.data.path(), None, &addr, &[]);
    case.limiter.push(secs(t0.elapsed()));
    await_event(&mut tech, "reconnecting");
    case.noticed.push(secs(t0.elapsed()));
    await_event(&mut tech, "resumed");
    case.flowing.push(secs(t0.elapsed()));
    tech.send("say still here");
    applet.out.wait_for("still here");
}

fn console_restarted(case: &mut Case) {
    let s = Scenario::start(&[]);
    let (applet_path, guid) = s.session("console");
    let mut applet = Proc::applet(&applet_path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let t0 = Instant::now();
    let (mut tech, _) = pair_with(&s.console, &mut applet, &guid, &guid, &["--path", "relay"]);
    case.limiter.push(secs(t0.elapsed()));
    tech.send("say hello");
    applet.out.wait_for("hello");
    let t0 = Instant::now();
    let _ = tech.child.kill();
    let _ = tech.child.wait();
    applet.out.wait_for("is reconnecting");
    case.noticed.push(secs(t0.elapsed()));
    let mut tech = s.console.connect_with(&guid, &["--path", "relay"]);
    await_event(&mut tech, "sas");
    case.flowing.push(secs(t0.elapsed()));
    applet.out.wait_for(&format!("{TECH_NAME} is back"));
}

fn main() -> Result<()> {
    let runs: usize = arg("runs", 5)?;
    print_header("resume: from a path's death to frames flowing again");
    let cases: [CaseSpec; 3] = [
        (
            "direct TCP silent (dead path 3 s)",
            direct_tcp_silent,
            "dead-path setting",
            "≤ 4 s",
        ),
        (
            "gateway killed, restarted",
            gateway_killed,
            "gateway restart alone",
            "restart + 1 s",
        ),
        (
            "console killed, connect again",
            console_restarted,
            "a first connect",
            "first connect + 1 s",
        ),
    ];
    let mut table = Table::new(&[
        "case",
        "runs",
        "noticed p50 (s)",
        "flowing again p50 / max (s)",
        "limiter",
        "limiter p50 (s)",
        "target",
    ]);
    for (name, run, limiter, target) in cases {
        let mut case = Case::default();
        for i in 0..runs {
            run(&mut case);
            eprintln!(
                "{name} #{i}: noticed {:.2} s, flowing again {:.2} s (limiter {:.2} s)",
                case.noticed[i], case.flowing[i], case.limiter[i]
            );
        }
        let max = case.flowing.iter().copied().fold(0.0, f64::max);
        table.row(vec![
            name.to_owned(),
            runs.to_string(),
            format!("{:.2}", median(&case.noticed)),
            format!("{:.2} / {:.2}", median(&case.flowing), max),
            limiter.to_owned(),
            format!("{:.2}", median(&case.limiter)),
            target.to_owned(),
        ]);
    }
    table.print();
    Ok(())
}
