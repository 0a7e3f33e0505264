//! Watching a node: `/healthz`, `/readyz` and `/metrics` on the metrics
//! listener during a walkthrough — the session's states, the pairing, the
//! bytes relayed each way, refusals by reason, portal requests and logins
//! — with `promtool check metrics` accepting the page; `/readyz` turns
//! 503 while the node drains and while its store does not answer.
#![allow(clippy::unwrap_used)]

use lifeline_protocol::relay::Role;
use lifeline_tests::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    http_get(addr, path)
}

/// The value of the sample `series` (name and labels as on the page).
fn value(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(&format!("{series} ")))
        .unwrap_or_else(|| panic!("no {series} in:\n{page}"))
        .trim()
        .parse()
        .unwrap()
}

fn promtool_accepts(page: &str) {
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package, installed by .ci/run)");
    p.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool refused the page: {}{}\n{page}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_walkthrough_shows_in_the_metrics_and_promtool_accepts_them() {
    let s = Scenario::start(&["--handshake-timeout", "1"]);
    let m = s.gw.health.expect("the metrics listener");
    assert_eq!(get(m, "/healthz"), (200, "alive\n".into()));
    assert_eq!(get(m, "/readyz"), (200, "ready\n".into()));

    let (path, guid) = s.session("metrics");
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let (_, page) = get(m, "/metrics");
    promtool_accepts(&page);
    assert_eq!(value(&page, "lifeline_sessions{state=\"waiting\"}"), 1.0);
    assert_eq!(value(&page, "lifeline_applets_waiting"), 1.0);
    assert!(
        value(
            &page,
            "lifeline_portal_requests_total{route=\"session_create\",status=\"201\"}"
        ) >= 1.0
    );
    assert!(value(&page, "lifeline_logins_total{result=\"ok\"}") >= 1.0);

    // Refusals, by reason: a silent connection, a console with a token
    // that is none, a wrong password.
    let silent = std::net::TcpStream::connect(&s.gw.addr).unwrap();
    std::thread::sleep(Duration::from_millis(1800));
    drop(silent);
    let unknown: lifeline_protocol::SessionGuid =
        "00000000-0000-4000-8000-000000000001".parse().unwrap();
    let _ = raw::RawClient::ask(&s.gw, Role::Console, unknown, "nope");
    let bad = Console::new().try_login(&s.gw, TECH_EMAIL, "wrong password");
    assert!(!bad.status.success());

    let (mut tech, _) = pair_with(
        &s.console,
        &mut applet,
        "metrics",
        &guid,
        &["--path", "relay"],
    );
    tech.send("linktest 2M both");
    for _ in 0..2 {
        let line = tech.out.wait("a link test's end", WAIT, |l| {
            l.contains("\"linktest\"") && l.contains("\"done\"")
        });
        assert!(line.contains("\"ok\":true"), "{line}");
    }
    let (_, page) = get(m, "/metrics");
    assert_eq!(value(&page, "lifeline_sessions{state=\"paired\"}"), 1.0);
    assert_eq!(value(&page, "lifeline_relays_active"), 1.0);
    assert_eq!(value(&page, "lifeline_pairings_total"), 1.0);
    assert_eq!(value(&page, "lifeline_pairing_seconds_count"), 1.0);
    for reason in ["handshake_deadline", "not_authorized"] {
        assert!(
            value(
                &page,
                &format!("lifeline_connections_refused_total{{reason=\"{reason}\"}}")
            ) >= 1.0,
            "{reason}"
        );
    }
    assert!(value(&page, "lifeline_logins_total{result=\"bad_credentials\"}") >= 1.0);
    assert!(
        value(
            &page,
            "lifeline_connections_accepted_total{protocol=\"relay\"}"
        ) >= 2.0
    );
    end_session(&mut tech, &mut applet);
    // The bytes relayed each way (counted as the relay ends, at the
    // latest): both link tests, and more.
    let page = wait_until("the relayed bytes", WAIT, || {
        let (_, page) = get(m, "/metrics");
        page.contains("lifeline_relay_bytes_total{direction=\"console_to_applet\"}")
            .then_some(page)
    });
    for dir in ["applet_to_console", "console_to_applet"] {
        let b = value(
            &page,
            &format!("lifeline_relay_bytes_total{{direction=\"{dir}\"}}"),
        );
        assert!(b >= 2.0 * 1024.0 * 1024.0, "{dir}: {b}");
    }
    assert!(value(&page, "process_resident_memory_bytes") > 1e6);
    assert!(value(&page, "process_open_fds") > 3.0);
    promtool_accepts(&page);
}

#[test]
fn readyz_is_503_while_the_node_drains() {
    let s = Scenario::start(&["--drain-timeout", "60"]);
    let m = s.gw.health.expect("the metrics listener");
    let (path, guid) = s.session("drain");
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let (_tech, _) = pair_with(
        &s.console,
        &mut applet,
        "drain",
        &guid,
        &["--path", "relay"],
    );
    assert_eq!(get(m, "/readyz").0, 200);
    s.gw.signal("TERM");
    let (status, body) = wait_until("readyz to turn", WAIT, || {
        let r = get(m, "/readyz");
        (r.0 == 503).then_some(r)
    });
    assert_eq!(status, 503);
    assert!(body.contains("draining"), "{body}");
    // Alive all the same.
    assert_eq!(get(m, "/healthz").0, 200);
}

#[test]
fn readyz_is_503_while_the_store_does_not_answer() {
    // The node's own PostgreSQL role, whose logins are then refused and
    // its connections ended: the store is down for this node.
    let db = TestStore::new(StoreKind::Postgres);
    let url = db.url.clone().unwrap();
    let role = format!("lifeline_ready_{}", std::process::id());
    let psql = pg_exec;
    let dbname = url.rsplit('/').next().unwrap().to_owned();
    psql(&format!("DROP ROLE IF EXISTS {role}"));
    psql(&format!("CREATE ROLE {role} LOGIN"));
    psql(&format!("ALTER DATABASE {dbname} OWNER TO {role}"));
    let base = url.rsplit_once('/').unwrap().0;
    let as_role = base.replacen("://", &format!("://{role}@"), 1);
    let as_role = match as_role.find('@') {
        // A URL that had its own user: keep only ours.
        Some(_) if base.contains('@') => {
            format!("postgres://{role}@{}", base.rsplit_once('@').unwrap().1)
        }
        _ => as_role,
    };
    let store = format!("{as_role}/{dbname}");
    let data = TempDir::new("gw");
    let gw = Gateway::start(data.path(), Some(&store), &[]);
    let m = gw.health.expect("the metrics listener");
    assert_eq!(get(m, "/readyz"), (200, "ready\n".into()));
    psql(&format!("ALTER ROLE {role} NOLOGIN"));
    psql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
    ));
    let (status, body) = wait_until("readyz to turn", WAIT, || {
        let r = get(m, "/readyz");
        (r.0 == 503).then_some(r)
    });
    assert_eq!(status, 503);
    assert!(body.contains("store"), "{body}");
    assert_eq!(get(m, "/healthz").0, 200);
    // Back: ready again.
    psql(&format!("ALTER ROLE {role} LOGIN"));
    wait_until("readyz to come back", WAIT, || {
        (get(m, "/readyz").0 == 200).then_some(())
    });
    drop(gw);
    drop(db);
    psql(&format!("DROP ROLE IF EXISTS {role}"));
}

#[test]
fn the_json_log_is_one_object_per_line_and_holds_no_secret() {
    let data = TempDir::new("gw");
    let log = data.path().join("gateway.log");
    let mut gw = Gateway::start_logged(data.path(), &["--log-format", "json"], &log);
    gw.add_technician(TECH_EMAIL, TECH_NAME, TECH_PASSWORD);
    let console = Console::new();
    console.login(&gw, TECH_EMAIL, TECH_PASSWORD);
    assert!(
        !Console::new()
            .try_login(&gw, TECH_EMAIL, "a wrong one")
            .status
            .success()
    );
    let login: serde_json::Value =
        serde_json::from_slice(&std::fs::read(console.dir.path().join("login.json")).unwrap())
            .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    let files = TempDir::new("files");
    let path = files.path().join("applet");
    let guid = console.session_new("logged", &path);
    let local: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            console
                .dir
                .path()
                .join("sessions")
                .join(&guid)
                .join("session.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let applet_secret = local["applet_secret"].as_str().unwrap().to_owned();
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let (mut tech, _) = pair_with(&console, &mut applet, "logged", &guid, &["--path", "relay"]);
    chat_both_ways(&mut tech, &mut applet, "hello", "hi");
    end_session(&mut tech, &mut applet);
    assert!(gw.terminate().success());

    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{line}"
        );
        lines += 1;
    }
    assert!(lines >= 5, "{text}");
    assert!(text.contains("paired; relaying"), "{text}");
    for (what, secret) in [
        ("the password", TECH_PASSWORD),
        ("the wrong password", "a wrong one"),
        ("the console's token", token.as_str()),
        ("the applet's secret", applet_secret.as_str()),
    ] {
        assert!(!text.contains(secret), "{what} is in the log:\n{text}");
    }
}
