//! Two gateway nodes on one PostgreSQL database: the applet's trailer names
//! both, so when the node that issued it is down the applet finds the other
//! through the signed directory, and the technician reaches it there.
#![allow(clippy::unwrap_used)]

use lifeline_tests::*;

#[test]
fn applet_falls_back_to_another_node_of_the_cluster() {
    let store = TestStore::new(StoreKind::Postgres);
    let url = store.url.as_deref();
    let dir_a = TempDir::new("node-a");
    let mut a = Gateway::start(dir_a.path(), url, &["--node-name", "node-a"]);
    // A second node of the same operator: same CA and signing key.
    let dir_b = TempDir::new("node-b");
    for f in [
        "operator.toml",
        "operator-ca.pem",
        "operator-ca.key.pem",
        "operator-signing.pk8",
    ] {
        std::fs::copy(dir_a.path().join(f), dir_b.path().join(f)).unwrap();
    }
    let b = Gateway::start(dir_b.path(), url, &["--node-name", "node-b"]);
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
