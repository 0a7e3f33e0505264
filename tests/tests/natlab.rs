//! Going direct across real NATs (the NAT lab; needs root): the gateway on
//! the public network, the applet on host-a behind nat-a, the console on
//! host-b behind nat-b.
//!
//! * Both NATs port-restricted cone: nobody can reach the applet's TCP
//!   listener, so direct TCP fails and the session ends up on XTCP over
//!   UDP (ICE with the gateway's STUN server punches the hole).
//! * The applet's port forwarded on nat-a: direct TCP to nat-a's public
//!   address, although UDP raced it and would have worked too.
//! * UDP blocked by nat-a: no direct path; the session stays on the relay.
//! * nat-a symmetric, nat-b port-restricted: the birthday punch, counted
//!   over 20 sessions. Both symmetric: the relay.
//!
//! Each case asserts the path the session ended on and runs a link test
//! both ways whose every byte the receivers check.
#![allow(clippy::unwrap_used)]

use lifeline_tests::natlab::{self, GW_IP, Lab};
use lifeline_tests::*;
use serde_json::Value;
use std::time::Duration;

const TEST_BYTES: u64 = 64 << 20;

/// Gateway in the lab's `gw`, a technician logged in from host-b.
struct LabSession {
    // Dropped first: processes, then the gateway, then the lab.
    applet: Proc,
    tech: Proc,
    gw: Gateway,
    _files: TempDir,
    _data: TempDir,
    _console: Console,
    lab: Lab,
    guid: String,
}

fn start(
    prefix: &str,
    setup_lab: impl Fn(&Lab),
    applet_flags: &[&str],
    connect_flags: &[&str],
) -> LabSession {
    let lab = Lab::up(prefix);
    setup_lab(&lab);
    let (gw, data, console) = lab_gateway(&lab, &["--stun-listen", &format!("{GW_IP}:3478")]);
    let files = TempDir::new("lab-files");
    let applet_path = files.path().join("support");
    let guid = console.session_new("lab", &applet_path);
    let mut applet = Proc::spawn(in_netns(&lab.ns("host-a"), &applet_path).args(applet_flags));
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let queue = console.queue();
    assert!(
        queue[0]["waiting_from"]
            .as_str()
            .unwrap()
            .starts_with(natlab::NAT_A_IP),
        "the gateway sees the applet at nat-a's address: {queue:?}"
    );
    let mut tech = console.connect_with(&guid, connect_flags);
    tech.send(&format!("linktest {}M both", TEST_BYTES >> 20));
    tech.event("sas");
    LabSession {
        applet,
        tech,
        gw,
        _files: files,
        _data: data,
        _console: console,
        lab,
        guid,
    }
}

/// The lab's gateway (with `extra` flags) and a technician logged in
/// from host-b.
fn lab_gateway(lab: &Lab, extra: &[&str]) -> (Gateway, TempDir, Console) {
    let data = TempDir::new("lab-gw");
    let mut args = vec!["--public-name", GW_IP];
    args.extend(extra);
    let gw = Gateway::start_in_netns(&lab.ns("gw"), data.path(), &format!("{GW_IP}:8443"), &args);
    gw.add_technician(TECH_EMAIL, TECH_NAME, TECH_PASSWORD);
    let console = Console::in_netns(&lab.ns("host-b"));
    console.login(&gw, TECH_EMAIL, TECH_PASSWORD);
    (gw, data, console)
}

/// Waits for the path event and both link tests; ends the session;
/// returns the path event.
fn finish(mut s: LabSession) -> Value {
    let path =
        await_path_and_linktests(&mut s.tech, &s.applet, TEST_BYTES, Duration::from_secs(180));
    chat_both_ways(
        &mut s.tech,
        &mut s.applet,
        "over the NATs",
        "loud and clear",
    );
    end_session(&mut s.tech, &mut s.applet);
    let audit = s.gw.audit(Some(&s.guid));
    assert!(
        audit.iter().any(|e| e["event"] == "path"),
        "the path is in the audit trail: {audit:?}"
    );
    // No path here uses an address inside a LAN: neither end's private
    // address reaches the other's screen or the audit trail.
    for (what, lines, private) in [
        ("the console's screen", s.tech.out.seen.clone(), HOST_A_LAN),
        ("the applet's screen", s.applet.out.seen.clone(), HOST_B_LAN),
        (
            "the audit trail",
            audit.iter().map(ToString::to_string).collect(),
            HOST_A_LAN,
        ),
        (
            "the audit trail",
            audit.iter().map(ToString::to_string).collect(),
            HOST_B_LAN,
        ),
    ] {
        let leaked: Vec<&String> = lines.iter().filter(|l| l.contains(private)).collect();
        assert!(leaked.is_empty(), "{private}… shown on {what}: {leaked:#?}");
    }
    let _ = &s.lab;
    path
}

/// STUN binding requests the lab's gateway has answered (its metrics,
/// read inside the lab): as soon as there are two, or after a minute.
fn stun_requests(lab: &Lab, gw: &Gateway) -> f64 {
    let health = gw.health.expect("the gateway serves metrics");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let page = lab.exec(
            "gw",
            &[
                "python3",
                "-c",
                "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())",
                &format!("http://{health}/metrics"),
            ],
        );
        let n = page
            .lines()
            .find_map(|l| l.strip_prefix("lifeline_stun_requests_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no STUN counter in the metrics: {page}"));
        if n >= 2.0 || std::time::Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The two LANs behind the NATs (`natlab.sh`): host-a is 10.0.1.100,
/// host-b 10.0.2.100.
const HOST_A_LAN: &str = "10.0.1.";
const HOST_B_LAN: &str = "10.0.2.";

/// Direct TCP cannot cross nat-a, so the session ends on UDP, which raced
/// it from the start: it is taken as soon as every TCP attempt has failed
/// (each gives up after 3 s), not after TCP's head start, which is a
/// minute here so that only that can explain a UDP path within half of it.
#[test]
fn port_restricted_cone_nats_end_on_xtcp_over_udp() {
    let s = start("ll1-", |_| {}, &[], &["--udp-after", "60"]);
    let path = finish(s);
    // `start` returns once the secure channel is up.
    let took = path["seen_after_secs"].as_f64().unwrap();
    eprintln!(
        "UDP path {took:.1} s after the secure channel (TCP gives up after 3 s; its head start: 60 s)"
    );
    assert!(took < 30.0, "UDP waited for TCP's head start: {path}");
    assert_eq!(path["path"], "udp", "{path}");
    assert!(
        path["detail"].as_str().unwrap().contains("203.0.113.1"),
        "the pair is between the NATs' public addresses: {path}"
    );
}

/// Both direct TCP (to the forwarded port) and UDP (both NATs are
/// port-restricted cones) can work here. They race, and TCP is preferred:
/// the session ends on TCP although ICE ran too — both ends asked the
/// gateway's STUN server for their public address while TCP was dialled.
#[test]
fn a_forwarded_applet_port_ends_on_direct_tcp() {
    let port = "47001";
    let s = start(
        "ll2-",
        |lab| lab.sh(&["forward", "nat-a", "tcp", port]),
        &["--tcp-port", port],
        &[],
    );
    let stun = stun_requests(&s.lab, &s.gw);
    let path = finish(s);
    assert_eq!(path["path"], "tcp", "{path}");
    assert!(
        stun >= 2.0,
        "ICE did not race direct TCP: {stun} STUN requests at the gateway"
    );
    assert_eq!(
        path["detail"],
        format!("{}:{port}", natlab::NAT_A_IP),
        "dialled nat-a's forwarded port: {path}"
    );
}

#[test]
fn udp_blocked_on_one_side_stays_on_the_relay() {
    let s = start(
        "ll3-",
        |lab| lab.sh(&["nat", "nat-a", "noudp"]),
        &[],
        &["--udp-after", "1"],
    );
    let path = finish(s);
    assert_eq!(path["path"], "relay", "{path}");
    let why = path["detail"].as_str().unwrap();
    assert!(
        why.contains("direct TCP") && why.contains("XTCP over UDP"),
        "the reason names both attempts: {why}"
    );
}

/// A symmetric NAT facing a full cone (emulated: every inbound UDP
/// datagram on nat-b's address goes to host-b): the session goes direct
/// over UDP — ICE or the birthday punch, whichever is first.
#[test]
fn symmetric_and_full_cone_nats_go_direct() {
    let s = start(
        "ll9-",
        |lab| {
            lab.sh(&["nat", "nat-a", "sym"]);
            lab.sh(&["nat", "nat-b", "full"]);
        },
        &[],
        &["--path", "udp"],
    );
    let path = finish(s);
    assert_eq!(path["path"], "udp", "{path}");
}

/// Two symmetric NATs: neither end's public port can be predicted, so
/// neither ICE nor the birthday punch can cross (both ends say "hard");
/// the session stays on the relay and says why.
#[test]
fn two_symmetric_nats_stay_on_the_relay() {
    let s = start(
        "ll8-",
        |lab| {
            lab.sh(&["nat", "nat-a", "sym"]);
            lab.sh(&["nat", "nat-b", "sym"]);
        },
        &[],
        &["--path", "udp"],
    );
    let path = finish(s);
    assert_eq!(path["path"], "relay", "{path}");
    assert!(
        path["detail"].as_str().unwrap().contains("XTCP over UDP"),
        "the reason names the UDP attempt: {path}"
    );
}

/// (a) A session on XTCP over UDP between the NATs runs a link test both
/// ways; mid-transfer nat-a starts dropping all UDP: both ends notice
/// within the dead-path time (3 s here), fall back to the relay, and every
/// byte of both tests arrives once, in order.
#[test]
fn udp_dropped_mid_transfer_falls_back_to_the_relay_byte_exact() {
    let mut s = start(
        "ll4-",
        |_| {},
        &["--dead-path", "3"],
        &["--udp-after", "2", "--dead-path", "3"],
    );
    let path =
        await_path_and_linktests(&mut s.tech, &s.applet, TEST_BYTES, Duration::from_secs(180));
    assert_eq!(path["path"], "udp", "{path}");
    s.tech.send("linktest 256M both");
    s.tech.event("linktest");
    s.lab.sh(&["nat", "nat-a", "noudp"]);
    let cut = std::time::Instant::now();
    let lost = s.tech.event("reconnecting");
    eprintln!(
        "UDP dropped: noticed after {:.2} s ({})",
        cut.elapsed().as_secs_f64(),
        lost["reason"]
    );
    s.applet.out.wait_for("is reconnecting");
    let resumed = await_resumption_and_linktests(&mut s.tech, 256 << 20, cut);
    eprintln!("UDP dropped: flowing again after {:.2} s", resumed);
    let audit = s.gw.audit(Some(&s.guid));
    assert!(
        audit.iter().any(|e| e["event"] == "path"
            && e["detail"]
                .as_str()
                .unwrap()
                .contains("fallback to the relay: the direct UDP path")),
        "{audit:?}"
    );
    chat_both_ways(
        &mut s.tech,
        &mut s.applet,
        "after the fallback",
        "still here",
    );
    end_session(&mut s.tech, &mut s.applet);
}

/// (e) The end user's machine loses its network for 20 s (every packet in
/// and out of host-a dropped) in the middle of a link test: both ends
/// notice within the dead-path time, the console waits at the gateway,
/// the applet gets through once its network is back, and the session
/// resumes — every byte of the link test arrives, once, in order.
#[test]
fn the_end_users_network_gone_for_20_s_resumes() {
    let mut s = start("ll5-", |_| {}, &[], &["--path", "relay"]);
    await_path_and_linktests(&mut s.tech, &s.applet, TEST_BYTES, Duration::from_secs(180));
    s.tech.send("linktest 64M both");
    s.tech.event("linktest");
    let host_a = s.lab.ns("host-a");
    let block = "table inet outage {\n\
        chain i { type filter hook input priority -10; iifname != \"lo\" drop; }\n\
        chain o { type filter hook output priority -10; oifname != \"lo\" drop; }\n\
        }\n";
    let out = run_with_stdin(
        std::process::Command::new("ip").args(["netns", "exec", &host_a, "nft", "-f", "-"]),
        block,
    );
    assert!(out.status.success(), "{out:?}");
    let cut = std::time::Instant::now();
    s.tech.event("reconnecting");
    eprintln!(
        "network gone: the console noticed after {:.1} s",
        cut.elapsed().as_secs_f64()
    );
    s.applet.out.wait_for("is reconnecting");
    std::thread::sleep(Duration::from_secs(20).saturating_sub(cut.elapsed()));
    let status = std::process::Command::new("ip")
        .args([
            "netns", "exec", &host_a, "nft", "delete", "table", "inet", "outage",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let resumed = await_resumption_and_linktests(&mut s.tech, 64 << 20, cut);
    eprintln!(
        "network back after 20 s: flowing again after {:.1} s",
        resumed
    );
    let audit = s.gw.audit(Some(&s.guid));
    assert!(audit.iter().any(|e| e["event"] == "resumed"), "{audit:?}");
    chat_both_ways(&mut s.tech, &mut s.applet, "welcome back", "thanks");
    end_session(&mut s.tech, &mut s.applet);
}

/// The round trip a direct TCP path reports is the path's own, not the
/// time it took to set up (TLS and the binding proofs take two round
/// trips and more): with 20 ms added each way on nat-a's link, a path of
/// about 40 ms says about 40 ms.
#[test]
fn a_direct_tcp_path_reports_its_own_round_trip() {
    let port = "47002";
    let lab = Lab::up("ll6-");
    lab.sh(&["forward", "nat-a", "tcp", port]);
    lab.sh(&["impair", "nat-a", "20", "0"]);
    let (gw, _data, console) = lab_gateway(&lab, &[]);
    let files = TempDir::new("lab-files");
    let applet_path = files.path().join("support");
    let guid = console.session_new("rtt", &applet_path);
    let mut applet =
        Proc::spawn(in_netns(&lab.ns("host-a"), &applet_path).args(["--tcp-port", port]));
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let mut tech = console.connect_with(&guid, &["--path", "tcp"]);
    tech.event("sas");
    let path = tech.event("path");
    assert_eq!(path["path"], "tcp", "{path}");
    let rtt = path["rtt_ms"].as_f64().unwrap();
    eprintln!("direct TCP path across 2 × 20 ms: {rtt:.1} ms round trip reported");
    assert!(
        (38.0..75.0).contains(&rtt),
        "a 40 ms path reported {rtt} ms: {path}"
    );
    end_session(&mut tech, &mut applet);
    drop(gw);
    drop(lab);
}

/// A symmetric NAT on the end user's side (nat-a gives every destination
/// a new random port) and a port-restricted cone on the technician's:
/// ICE cannot cross, the birthday punch can. Counted, not assumed: 20
/// sessions, each given 5 s from its secure channel to be on UDP; at
/// least 18 must be. The console (the easy end) reports its probes.
#[test]
fn symmetric_and_port_restricted_nats_go_direct_by_the_birthday_punch() {
    let lab = Lab::up("ll7-");
    lab.sh(&["nat", "nat-a", "sym"]);
    let (gw, _data, console) = lab_gateway(&lab, &["--stun-listen", &format!("{GW_IP}:3478")]);
    let files = TempDir::new("lab-files");
    let runs = 20;
    let mut probes = Vec::new();
    let mut missed = Vec::new();
    for i in 0..runs {
        let applet_path = files.path().join(format!("support-{i}"));
        let guid = console.session_new(&format!("punch {i}"), &applet_path);
        let mut applet = Proc::spawn(&mut in_netns(&lab.ns("host-a"), &applet_path));
        applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
        let mut tech = console.connect_with(&guid, &["--path", "udp"]);
        tech.event("sas");
        let secure = std::time::Instant::now();
        match udp_path_within(&mut tech, Duration::from_secs(5)) {
            Some(path) => {
                let detail = path["detail"].as_str().unwrap_or_default().to_owned();
                assert!(detail.contains("birthday punch"), "{path}");
                let n: usize = detail
                    .split("punch: ")
                    .nth(1)
                    .and_then(|t| t.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("no probe count in {detail:?}"));
                probes.push(n);
                eprintln!(
                    "run {i}: direct {:.2} s after the secure channel, {n} probes",
                    secure.elapsed().as_secs_f64()
                );
                chat_both_ways(&mut tech, &mut applet, "punched", "through");
            }
            None => missed.push(i),
        }
        let ending = std::time::Instant::now();
        end_session(&mut tech, &mut applet);
        eprintln!("run {i}: ended in {:.2} s", ending.elapsed().as_secs_f64());
    }
    probes.sort_unstable();
    let direct = probes.len();
    eprintln!(
        "birthday punch: {direct}/{runs} direct within 5 s; probes per punch: min {}, median {}, max {} (the hard end opens 256 ports); missed runs {missed:?}",
        probes.first().unwrap_or(&0),
        probes.get(direct / 2).unwrap_or(&0),
        probes.last().unwrap_or(&0),
    );
    assert!(
        direct * 10 >= runs * 9,
        "only {direct} of {runs} sessions went direct within 5 s"
    );
    drop(gw);
}

/// The console's first path event on UDP within `within`, or `None`.
fn udp_path_within(tech: &mut Proc, within: Duration) -> Option<Value> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = tech.out.next(left)?;
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["event"] == "path"
            && v["path"] == "udp"
        {
            return Some(v);
        }
    }
}
