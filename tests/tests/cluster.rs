//! Two gateway nodes on one PostgreSQL database: the applet's trailer names
//! both, so when the node that issued it is down the applet finds the other
//! through the signed directory, and the technician reaches it there.
#![allow(clippy::unwrap_used)]

use lifeline_tests::*;

/// Ada, logged in at a node, and the applet of a new session of hers
/// waiting on whichever node it chose.
struct Waiting {
    console: Console,
    guid: String,
    applet: Proc,
    path: std::path::PathBuf,
    _files: TempDir,
}

fn ada_with_a_waiting_applet(node: &Gateway, label: &str) -> Waiting {
    node.add_technician("ada@example.com", "Ada", "correct horse battery");
    let console = Console::new();
    console.login(node, "ada@example.com", "correct horse battery");
    let files = TempDir::new("files");
    let path = files.path().join("applet");
    let guid = console.session_new(label, &path);
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for("Waiting for Ada");
    Waiting {
        console,
        guid,
        applet,
        path,
        _files: files,
    }
}

#[test]
fn applet_falls_back_to_another_node_of_the_cluster() {
    let (_store, _dirs, mut a, b) = two_nodes();
    assert_eq!(a.fingerprint, b.fingerprint);

    a.add_technician("ada@example.com", "Ada", "correct horse battery");
    let console = Console::new();
    console.login(&a, "ada@example.com", "correct horse battery");
    let files = TempDir::new("files");
    let path = files.path().join("applet");
    let guid = console.session_new("cluster", &path);
    let verify = std::process::Command::new(&path)
        .args(["--verify"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(
        text.contains(&a.addr) && text.contains(&b.addr),
        "both nodes in the trailer: {text}"
    );

    assert!(a.terminate().success());
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for("Waiting for Ada");

    // The technician's login is in the shared store; log in at B.
    console.login(&b, "ada@example.com", "correct horse battery");
    let queue = console.queue();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert_eq!(queue[0]["waiting_node"], "node-b");
    assert_eq!(queue[0]["waiting_node_addr"], b.addr.as_str());

    let mut tech = console.connect(&guid);
    tech.event("sas");
    tech.send("say hello via node b");
    applet.out.wait_for("Ada: hello via node b");
    tech.send("end");
    tech.event("ended");
    let events: Vec<_> = b
        .audit(Some(&guid))
        .iter()
        .map(|e| e["detail"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        events.iter().any(|d| d.contains("on node node-b")),
        "{events:?}"
    );
}

/// (d) Two nodes on PostgreSQL: the node relaying a session is killed
/// (`kill -9`) in the middle of a transfer. Both ends reconnect — the
/// console through the other node's portal, from the directory it read at
/// the start — and resume through the other node; the link test each way
/// completes byte-exact, and the audit trail says where it resumed.
#[test]
fn the_ends_resume_through_another_node_when_theirs_dies() {
    let (_store, _dirs, a, b) = two_nodes();
    let Waiting {
        console,
        guid,
        mut applet,
        ..
    } = ada_with_a_waiting_applet(&a, "failover");
    // The technician works from the node the applet waits on: that node's
    // death takes the relay and the console's portal with it.
    let waiting_on = console.queue()[0]["waiting_node"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut dying, survivor) = if waiting_on == "node-a" {
        (a, b)
    } else {
        (b, a)
    };
    console.login(&dying, "ada@example.com", "correct horse battery");
    let mut tech = console.connect_with(&guid, &["--path", "relay"]);
    tech.event("sas");
    applet.out.wait_for("Verification code");
    tech.send("linktest 256M both");
    tech.event("linktest");
    std::thread::sleep(std::time::Duration::from_millis(300));
    dying.kill();
    let killed = std::time::Instant::now();
    let resumed = await_resumption_and_linktests(&mut tech, 256 << 20, killed);
    eprintln!(
        "node killed: flowing again through the other node {:.2} s later",
        resumed
    );
    applet.out.wait_for("Reconnected to Ada");
    let other = if waiting_on == "node-a" {
        "node-b"
    } else {
        "node-a"
    };
    let audit = survivor.audit(Some(&guid));
    assert!(
        audit.iter().any(|e| e["event"] == "resumed"
            && e["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("on node {other}"))),
        "{audit:?}"
    );
    tech.send("end");
    tech.event("ended");
    applet.out.wait_for("Session ended");
}

/// A session ended through one node reaches its applet waiting at the
/// other at once (the store's NOTIFY), not at that node's next check of
/// its waiting applets (10 s); the applet ends and removes itself.
#[test]
fn ending_through_one_node_reaches_an_applet_waiting_at_the_other() {
    let (_store, _dirs, a, b) = two_nodes();
    let Waiting {
        console,
        guid,
        mut applet,
        path,
        _files,
    } = ada_with_a_waiting_applet(&a, "ended elsewhere");
    let queue = console.queue();
    assert_eq!(queue.len(), 1, "{queue:?}");
    let other = match queue[0]["waiting_node"].as_str().unwrap() {
        "node-a" => &b,
        _ => &a,
    };
    console.login(other, "ada@example.com", "correct horse battery");
    let t0 = std::time::Instant::now();
    let out = console.run(&["session", "end", &guid], "");
    assert!(out.status.success(), "{out:?}");
    applet.out.wait_for("has already ended");
    let took = t0.elapsed();
    eprintln!(
        "ended through the other node: the applet heard after {:.2} s",
        took.as_secs_f64()
    );
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    assert!(
        !applet
            .wait_exit(std::time::Duration::from_secs(10))
            .success()
    );
    assert!(!path.exists(), "the applet removed itself");
}

/// A waiting applet whose node dies (`kill -9`) waits again on the other
/// node after the applet's one-second pause, from the directory it already
/// has, and the technician reaches it there.
#[test]
fn a_waiting_applet_moves_to_another_node_when_its_node_dies() {
    let (_store, _dirs, a, b) = two_nodes();
    let Waiting {
        console,
        guid,
        mut applet,
        ..
    } = ada_with_a_waiting_applet(&a, "moved");
    let waiting_on = console.queue()[0]["waiting_node"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut dying, survivor, other) = if waiting_on == "node-a" {
        (a, b, "node-b")
    } else {
        (b, a, "node-a")
    };
    dying.kill();
    let killed = std::time::Instant::now();
    applet
        .out
        .wait_for("Reconnected; still waiting for your technician");
    let took = killed.elapsed();
    eprintln!(
        "node killed: the applet waits on {other} {:.2} s later",
        took.as_secs_f64()
    );
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");

    console.login(&survivor, "ada@example.com", "correct horse battery");
    let queue = console.queue();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert_eq!(queue[0]["waiting_node"], other);
    let mut tech = console.connect(&guid);
    tech.event("sas");
    tech.send("say found you");
    applet.out.wait_for("Ada: found you");
    tech.send("end");
    tech.event("ended");
}

/// A second copy of the applet file proves itself on the other node: the
/// session now waits there, and the node the first copy waits on lets it
/// go at its next check of its waiting applets (every 10 s), telling it
/// that the program runs elsewhere, so that it ends instead of taking the
/// session back.
#[test]
fn a_copy_proven_on_the_other_node_replaces_the_waiting_applet() {
    let (_store, _dirs, a, b) = two_nodes();
    let Waiting {
        console,
        mut applet,
        path,
        _files,
        ..
    } = ada_with_a_waiting_applet(&a, "copied");
    let waiting_on = console.queue()[0]["waiting_node"]
        .as_str()
        .unwrap()
        .to_owned();
    let (other, other_name) = if waiting_on == "node-a" {
        (&b, "node-b")
    } else {
        (&a, "node-a")
    };
    let mut copy = lifeline_tests::raw::RawClient::connect(other);
    copy.applet_hello(&path);
    match copy.next_msg().unwrap() {
        lifeline_protocol::relay::ServerMsg::Waiting { node, .. } => assert_eq!(node, other_name),
        m => panic!("the copy got {m:?}"),
    }
    assert_eq!(console.queue()[0]["waiting_node"], other_name);
    let told = "already running for this session";
    applet
        .out
        .wait(told, std::time::Duration::from_secs(20), |l| {
            l.contains(told)
        });
    assert!(
        !applet
            .wait_exit(std::time::Duration::from_secs(10))
            .success()
    );
    // The first copy's leaving did not take the session from the second.
    assert_eq!(console.queue()[0]["waiting_node"], other_name);
}
