//! Logins under abuse: parallel guesses from one address reach scrypt at
//! most the address's budget of times, however many arrive at once, and a
//! real technician elsewhere still logs in; huge e-mail addresses do not
//! grow the database; logging out, or an operator revoking a technician's
//! logins, ends their tokens at once.
#![allow(clippy::unwrap_used)]

mod common;

use common::{EMAIL, Node, PASSWORD, TempDir};
use serde_json::json;
use std::net::IpAddr;

const BUDGET: u32 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_logins_from_one_address_are_hashed_at_most_the_budget() {
    let dir = TempDir::new("login-flood");
    let node = std::sync::Arc::new(Node::start(
        dir.path(),
        &["--max-bad-attempts-per-minute", &BUDGET.to_string()],
    ));
    node.add_technician(EMAIL);
    // The guesses go to another technician's account (which locks after 5
    // wrong passwords: per-account lockout, by design) and to addresses
    // that belong to nobody.
    node.add_technician("target@example.com");
    let attacker: IpAddr = "127.0.0.1".parse().unwrap();
    let checks_before = node.metric("lifeline_password_checks_total");
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..200 {
        let node = node.clone();
        flood.spawn(async move {
            let email = if i % 2 == 0 {
                "target@example.com".to_owned()
            } else {
                format!("nobody{i}@example.com")
            };
            node.http_from(
                attacker,
                "POST",
                "/api/v1/login",
                None,
                Some(&json!({"email": email, "password": "wrong guess"})),
            )
            .await
        });
    }
    // Meanwhile the real technician logs in from another address.
    let legit = {
        let node = node.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            loop {
                let (status, body) = node
                    .http_from(
                        "127.0.0.2".parse().unwrap(),
                        "POST",
                        "/api/v1/login",
                        None,
                        Some(&json!({"email": EMAIL, "password": PASSWORD})),
                    )
                    .await;
                // "Busy, retry in a second" is an honest answer under load.
                if status == 503 && body["code"] == "busy" {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
                return (status, body, started.elapsed());
            }
        })
    };
    let mut by_status = std::collections::BTreeMap::<u16, u32>::new();
    for r in flood.join_all().await {
        let (status, body) = r;
        if status == 429 || status == 503 {
            assert!(body["retry_after_secs"].as_u64().is_some(), "{body}");
        }
        *by_status.entry(status).or_default() += 1;
    }
    let (status, body, took) = legit.await.unwrap();
    eprintln!("flood answers: {by_status:?}; the real login took {took:?}");
    assert_eq!(status, 200, "{body}");
    // The node counts every scrypt run: the flood got at most its budget,
    // the real technician one. (A 403 can be either: the guess that locked
    // the account was hashed, the ones that met the lock were not.)
    let hashed = node.metric("lifeline_password_checks_total") - checks_before;
    assert!(
        hashed <= u64::from(BUDGET) + 1,
        "{hashed} logins were hashed: {by_status:?}"
    );
    let answered_401 = u64::from(by_status.get(&401).copied().unwrap_or(0));
    assert!(
        hashed > answered_401 && answered_401 >= 1,
        "every 401 is a check that ran: {hashed} checks, {by_status:?}"
    );
    assert_eq!(
        by_status.values().sum::<u32>(),
        200,
        "every request was answered: {by_status:?}"
    );
    assert!(
        by_status.keys().all(|s| [401, 403, 429, 503].contains(s)),
        "{by_status:?}"
    );
}

#[tokio::test]
async fn huge_email_addresses_do_not_grow_the_database() {
    let dir = TempDir::new("login-huge");
    let mut node = Node::start(dir.path(), &["--max-bad-attempts-per-minute", "1000"]);
    let huge = format!("{}@example.com", "A".repeat(60 * 1024));
    for _ in 0..100 {
        let (status, _) = node
            .http(
                "POST",
                "/api/v1/login",
                None,
                Some(&json!({"email": huge, "password": "x"})),
            )
            .await;
        assert_eq!(status, 401);
    }
    // A clean stop checkpoints SQLite's write-ahead log into the file.
    node.stop();
    let size = std::fs::metadata(dir.path().join("gateway.db"))
        .unwrap()
        .len();
    // Unclamped, the e-mails alone are 6 MB (12 MB with their index).
    assert!(size < 1024 * 1024, "the database is {size} bytes");
}

#[tokio::test]
async fn logout_and_revoke_end_tokens_at_once() {
    let dir = TempDir::new("logout");
    let node = Node::start(dir.path(), &[]);
    node.add_technician(EMAIL);
    let a = node.login(EMAIL).await;
    let b = node.login(EMAIL).await;
    let c = node.login(EMAIL).await;
    let list = |t: String| {
        let node = &node;
        async move { node.http("GET", "/api/v1/sessions", Some(&t), None).await.0 }
    };
    assert_eq!(list(a.clone()).await, 200);
    let (status, _) = node
        .http("POST", "/api/v1/logout", Some(&a), Some(&json!({})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(list(a.clone()).await, 401, "a logged-out token still works");
    let (status, _) = node
        .http(
            "POST",
            "/api/v1/sessions",
            Some(&a),
            Some(&json!({"console_pin": "c0".repeat(32), "applet_secret": "5e".repeat(32)})),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(list(b.clone()).await, 200, "other logins go on");
    // The operator ends every login of the technician.
    let out = node.admin(&["technician", "revoke-tokens", EMAIL], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ended 2 login(s)"));
    assert_eq!(list(b).await, 401);
    assert_eq!(list(c).await, 401);
    let audit = node.admin(&["audit", "--json"], "");
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.contains("\"event\":\"logout\"") && audit.contains("tokens revoked"),
        "{audit}"
    );
    let out = node.admin(&["technician", "revoke-tokens", "nobody@example.com"], "");
    assert!(!out.status.success());
}
