//! Remote work in the audit trail, as the gateway sees it: the console
//! reports what happened (`POST /api/v1/sessions/{guid}/work`) — consent
//! decisions, file transfers, actions — and the gateway appends one record
//! per report, as the technician's. A bad report is refused with a reason
//! and leaves no record; another technician cannot write into a session
//! that is not theirs; a file name is kept as given, and `gateway admin
//! audit` shows it neutralized; a session holds at most
//! [`MAX_WORK_RECORDS`] of them.
#![allow(clippy::unwrap_used)]

mod common;

use common::{EMAIL, Node, TempDir};
use lifeline_protocol::portal::{
    FileDirection, FileOutcome, MAX_WORK_NAME, MAX_WORK_RECORDS, WorkAction, WorkReport,
};
use lifeline_protocol::work::Decision;
use lifeline_protocol::{ALPN_HTTP1, SessionGuid};
use lifeline_session::portal::{PortalClient, PortalError};
use lifeline_tech_console::portal::{Portals, report_work};
use lifeline_tests::{GatewayLog, StoreKind, TestStore};
use serde_json::{Value, json};

const OTHER: &str = "other@example.com";
/// The audit events of work reports.
const WORK_EVENTS: [&str; 3] = ["consent", "file", "work"];

async fn post(node: &Node, token: Option<&str>, guid: &str, body: &Value) -> (u16, Value) {
    node.http(
        "POST",
        &format!("/api/v1/sessions/{guid}/work"),
        token,
        Some(body),
    )
    .await
}

/// A session's work records: `(actor, event, detail)`, oldest first.
fn work_records(node: &Node, guid: SessionGuid) -> Vec<(String, String, String)> {
    // All of them: a full session has more than the harness's limit.
    let limit = (MAX_WORK_RECORDS * 2).to_string();
    let out = node.admin(
        &[
            "audit",
            "--json",
            "--limit",
            &limit,
            "--session",
            &guid.to_string(),
        ],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| WORK_EVENTS.contains(&e["event"].as_str().unwrap()))
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_owned();
            (s("actor"), s("event"), s("detail"))
        })
        .collect()
}

/// A node with the test technician logged in and a session of theirs.
async fn node_with_session(dir: &TempDir, store: Option<&str>) -> (Node, String, SessionGuid) {
    let node = Node::launch(Node::launcher(dir.path()).store(store));
    node.add_technician(EMAIL);
    let token = node.login(EMAIL).await;
    let guid = node.create_session(&token).await;
    (node, token, guid)
}

async fn every_kind_is_recorded_as_the_technician(store: Option<&str>) {
    let dir = TempDir::new("work-kinds");
    let (node, token, guid) = node_with_session(&dir, store).await;
    let sha = "0f".repeat(32);
    let reports = [
        (
            json!({"kind": "consent", "capability": "run-command", "decision": "granted", "whole_session": false}),
            "consent",
            "run-command: granted".to_owned(),
        ),
        (
            json!({"kind": "consent", "capability": "open-url, file-to-user", "decision": "asked", "whole_session": true}),
            "consent",
            "file-to-user, open-url: asked (whole session)".into(),
        ),
        (
            json!({"kind": "consent", "capability": "system-info", "decision": "not_allowed", "whole_session": false}),
            "consent",
            "system-info: not_allowed".into(),
        ),
        (
            json!({"kind": "file", "direction": "to_user", "name": "a/b.txt", "size": 1_048_576u64,
                   "sha256": sha, "outcome": "saved", "detail": ""}),
            "file",
            format!("file to user \"a/b.txt\" 1048576 bytes sha256 {sha}: saved"),
        ),
        (
            json!({"kind": "file", "direction": "from_user", "name": "logs/app.log", "size": 10,
                   "sha256": "", "outcome": "failed", "detail": "disk full"}),
            "file",
            "file from user \"logs/app.log\" 10 bytes: failed; disk full".into(),
        ),
        (
            json!({"kind": "action", "what": "shell_opened"}),
            "work",
            "shell opened".into(),
        ),
        (
            json!({"kind": "action", "what": "command_run", "detail": "ls -la /tmp"}),
            "work",
            "command run: ls -la /tmp".into(),
        ),
        (
            json!({"kind": "action", "what": "shell_closed", "detail": "exit 0"}),
            "work",
            "shell closed: exit 0".into(),
        ),
        (
            json!({"kind": "action", "what": "system_info", "detail": ""}),
            "work",
            "system info".into(),
        ),
        (
            json!({"kind": "action", "what": "url_opened", "detail": "https://example.com/help"}),
            "work",
            "URL opened: https://example.com/help".into(),
        ),
        (
            json!({"kind": "action", "what": "listing", "detail": "/home/ada"}),
            "work",
            "listing: /home/ada".into(),
        ),
    ];
    for (body, _, _) in &reports {
        let (status, answer) = post(&node, Some(&token), &guid.to_string(), body).await;
        assert_eq!(
            (status, &answer),
            (200, &json!({"recorded": true})),
            "{body}"
        );
    }
    // A last report may cross the session's end: still recorded.
    let (status, body) = node
        .http(
            "POST",
            &format!("/api/v1/sessions/{guid}/end"),
            Some(&token),
            Some(&json!({"reason": "done"})),
        )
        .await;
    assert_eq!((status, body["state"].as_str()), (200, Some("ended")));
    let last = json!({"kind": "action", "what": "shell_closed", "detail": "killed at the end"});
    assert_eq!(
        post(&node, Some(&token), &guid.to_string(), &last).await.0,
        200
    );

    let mut want: Vec<(String, String, String)> = reports
        .iter()
        .map(|(_, event, detail)| (EMAIL.to_owned(), (*event).to_owned(), detail.clone()))
        .collect();
    want.push((
        EMAIL.into(),
        "work".into(),
        "shell closed: killed at the end".into(),
    ));
    assert_eq!(work_records(&node, guid), want);
    assert_eq!(
        node.metric("lifeline_work_reports_total"),
        want.len() as u64
    );
}

#[tokio::test]
async fn every_kind_is_recorded_as_the_technician_on_sqlite() {
    every_kind_is_recorded_as_the_technician(None).await;
}

#[test]
fn every_kind_is_recorded_as_the_technician_on_postgres() {
    // Made and dropped outside the runtime (it runs one of its own).
    let store = TestStore::new(StoreKind::Postgres);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(every_kind_is_recorded_as_the_technician(
            store.url.as_deref(),
        ));
}

/// The console's own call: its portal client, its body, clamped so that a
/// long name is recorded rather than refused; a refusal comes back as an
/// error (which the console logs and goes on).
#[tokio::test]
async fn the_consoles_report_work_is_recorded() {
    let dir = TempDir::new("work-console");
    let (node, token, guid) = node_with_session(&dir, None).await;
    let ca = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_file(dir.path().join("operator-ca.pem"))
            .unwrap()
    };
    let tls = lifeline_session::tls::gateway_client_config(
        &lifeline_session::tls::GatewayTrust::Ca(ca),
        &[ALPN_HTTP1],
    )
    .unwrap();
    let addr = lifeline_session::addr::HostPort::parse(&node.addr.to_string(), 8443).unwrap();
    let client = PortalClient::new(addr.clone(), tls).with_token(token);
    let portals = Portals::new(vec![(addr, client)]);

    let consent = WorkReport::Consent {
        capability: "run-command,file-from-user".into(),
        decision: Decision::Withdrawn,
        whole_session: true,
    };
    report_work(&portals, &guid, &consent).await.unwrap();
    let long_name = format!("{}/é.txt", "d".repeat(4000));
    let file = WorkReport::File {
        direction: FileDirection::FromUser,
        name: long_name.clone(),
        size: 3,
        sha256: String::new(),
        outcome: FileOutcome::Stopped,
        detail: "the end user stopped it".into(),
    };
    report_work(&portals, &guid, &file).await.unwrap();
    let action = WorkReport::Action {
        what: WorkAction::CommandRun,
        detail: "uname -a".into(),
    };
    report_work(&portals, &guid, &action).await.unwrap();

    let got = work_records(&node, guid);
    let details: Vec<&str> = got.iter().map(|(_, _, d)| d.as_str()).collect();
    assert_eq!(
        details,
        [
            "file-from-user, run-command: withdrawn (whole session)".to_owned(),
            format!(
                "file from user \"{}\" 3 bytes: stopped; the end user stopped it",
                &long_name[..MAX_WORK_NAME]
            ),
            "command run: uname -a".to_owned(),
        ]
    );
    assert!(got.iter().all(|(actor, _, _)| actor == EMAIL));

    // Not a session of this technician: refused, returned, not fatal.
    let unknown = SessionGuid::from_bytes([7; 16]);
    match report_work(&portals, &unknown, &action).await {
        Err(PortalError::Api { status, error }) => {
            assert_eq!((status.as_u16(), error.code.as_str()), (404, "not_found"));
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    assert_eq!(work_records(&node, guid).len(), 3);
}

#[tokio::test]
async fn bad_reports_are_refused_with_a_reason_and_leave_no_record() {
    let dir = TempDir::new("work-bad");
    let (node, token, guid) = node_with_session(&dir, None).await;
    let guid_text = guid.to_string();
    let file = |name: &str, sha: &str| {
        json!({"kind": "file", "direction": "to_user", "name": name, "size": 1,
               "sha256": sha, "outcome": "saved", "detail": ""})
    };
    let cases = [
        (
            json!({"kind": "consent", "capability": "run-command", "decision": "maybe", "whole_session": false}),
            "unknown variant `maybe`, expected one of `asked`, `granted`",
        ),
        (
            json!({"kind": "consent", "capability": "format-disk", "decision": "granted", "whole_session": false}),
            "capability must name one or more of file-to-user, file-from-user",
        ),
        (
            file("a.txt", &"a".repeat(65)),
            "sha256 must be 64 lower-case hex digits, or \"\" if the transfer ended early (got 65 characters)",
        ),
        (
            file(&"n".repeat(MAX_WORK_NAME + 1), &"a".repeat(64)),
            "name must be at most 1024 bytes (got 1025)",
        ),
        (
            file("a.txt", ""),
            "a saved file's report must carry its sha256",
        ),
        (
            json!({"kind": "action", "what": "command_run", "detail": "c".repeat(1025)}),
            "detail must be at most 1024 bytes (got 1025)",
        ),
        (
            json!({"kind": "action", "what": "reboot_now"}),
            "unknown variant `reboot_now`",
        ),
        (json!({"kind": "screen"}), "unknown variant `screen`"),
        (json!("not a report"), "invalid JSON body"),
    ];
    for (body, why) in &cases {
        let (status, answer) = post(&node, Some(&token), &guid_text, body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["code"], "bad_request", "{answer}");
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains(why), "{body}: {message:?} lacks {why:?}");
    }
    // Larger than any portal body: 413.
    let huge = file(&"n".repeat(70_000), &"a".repeat(64));
    let (status, answer) = post(&node, Some(&token), &guid_text, &huge).await;
    assert_eq!((status, answer["code"].as_str()), (413, Some("too_large")));
    // Not a GUID.
    let ok = json!({"kind": "action", "what": "shell_opened"});
    let (status, answer) = post(&node, Some(&token), "printer", &ok).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("not a session GUID"))
    );

    assert_eq!(work_records(&node, guid), []);
    assert_eq!(node.metric("lifeline_work_reports_total"), 0);
    // The same session takes a good one.
    assert_eq!(post(&node, Some(&token), &guid_text, &ok).await.0, 200);
    assert_eq!(work_records(&node, guid).len(), 1);
}

#[tokio::test]
async fn only_the_sessions_technician_may_report_work_in_it() {
    let dir = TempDir::new("work-others");
    let (node, token, guid) = node_with_session(&dir, None).await;
    node.add_technician(OTHER);
    let other = node.login(OTHER).await;
    let report = json!({"kind": "action", "what": "command_run", "detail": "rm -rf /"});
    // Another technician's session is none of theirs: as for path reports.
    let (status, answer) = post(&node, Some(&other), &guid.to_string(), &report).await;
    assert_eq!((status, answer["code"].as_str()), (404, Some("not_found")));
    let (status, answer) = post(&node, None, &guid.to_string(), &report).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = post(&node, Some("not-a-token"), &guid.to_string(), &report).await;
    assert_eq!(status, 401);
    let unknown = SessionGuid::from_bytes([9; 16]).to_string();
    assert_eq!(post(&node, Some(&token), &unknown, &report).await.0, 404);
    assert_eq!(work_records(&node, guid), []);
    // Its own technician may.
    assert_eq!(
        post(&node, Some(&token), &guid.to_string(), &report)
            .await
            .0,
        200
    );
    assert_eq!(
        work_records(&node, guid),
        [(EMAIL.into(), "work".into(), "command run: rm -rf /".into())]
    );
}

/// Characters a terminal obeys (or that make text read otherwise).
fn raw_controls(s: &str) -> Vec<char> {
    s.chars()
        .filter(|&c| c != '\n' && lifeline_protocol::text::is_unsafe(c))
        .collect()
}

#[tokio::test]
async fn a_hostile_file_name_is_kept_as_given_and_shown_neutralized() {
    let dir = TempDir::new("work-escapes");
    let (node, token, guid) = node_with_session(&dir, None).await;
    // Clears the operator's screen, retitles the window, forges a row,
    // and reverses what follows.
    let name = "report\u{1b}[2J\u{1b}]0;owned\u{7}\r2026-12-01T00:00:00Z  -  admin  technician added\u{9b}31m\u{202e}fdp.exe\u{2028}x.txt";
    let sha = "ab".repeat(32);
    let body = json!({"kind": "file", "direction": "from_user", "name": name, "size": 3,
                      "sha256": sha, "outcome": "saved", "detail": "\u{1b}[1A"});
    assert_eq!(
        post(&node, Some(&token), &guid.to_string(), &body).await.0,
        200
    );

    // Stored as given: `--json` reads back the exact text.
    let stored = format!("file from user \"{name}\" 3 bytes sha256 {sha}: saved; \u{1b}[1A");
    assert_eq!(
        work_records(&node, guid),
        [(EMAIL.into(), "file".into(), stored)]
    );
    // ... and its lines never carry the characters raw.
    let out = node.admin(&["audit", "--json", "--session", &guid.to_string()], "");
    assert!(out.status.success());
    let json_text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        raw_controls(&json_text),
        Vec::<char>::new(),
        "{json_text:?}"
    );
    assert!(
        json_text.contains(r"\u009b31m\u202efdp.exe\u2028x.txt"),
        "{json_text}"
    );

    // The table shows them escaped.
    let out = node.admin(&["audit", "--session", &guid.to_string()], "");
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert_eq!(raw_controls(&table), Vec::<char>::new(), "{table:?}");
    let row = table.lines().find(|l| l.contains("fdp.exe")).unwrap();
    assert!(
        row.contains(
            r#"file from user "report\e[2J\e]0;owned\x07\r2026-12-01T00:00:00Z  -  admin  technician added\u{9b}31m\u{202e}fdp.exe\u{2028}x.txt" 3 bytes"#
        ),
        "{row}"
    );
    assert!(row.ends_with(r": saved; \e[1A"), "{row}");
}

#[tokio::test]
async fn a_session_holds_at_most_its_cap_of_work_records() {
    let dir = TempDir::new("work-cap");
    let log = dir.path().join("gateway.log");
    let node = Node::launch(Node::launcher(dir.path()).log(GatewayLog::File {
        path: log.clone(),
        level: Some("info".into()),
    }));
    node.add_technician(EMAIL);
    let token = node.login(EMAIL).await;
    let guid = node.create_session(&token).await;
    let second = node.create_session(&token).await;
    // One short of the cap, written straight into the store (10,000
    // requests would take a while), with other events that do not count.
    {
        use sqlx::Connection;
        let url = format!("sqlite:{}", dir.path().join("gateway.db").display());
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2) \
             INSERT INTO audit (at_ms, session_guid, actor, event, detail) \
             SELECT 0, $1, 'tech@example.com', \
                    CASE i % 3 WHEN 0 THEN 'consent' WHEN 1 THEN 'file' ELSE 'work' END, \
                    'filler ' || i FROM n",
        )
        .bind(guid.to_string())
        .bind(i64::try_from(MAX_WORK_RECORDS).unwrap() - 1)
        .execute(&mut db)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO audit (at_ms, session_guid, actor, event, detail) \
             VALUES (0, $1, 'gateway', 'path', 'relay')",
        )
        .bind(guid.to_string())
        .execute(&mut db)
        .await
        .unwrap();
        db.close().await.unwrap();
    }
    let report = json!({"kind": "action", "what": "command_run", "detail": "yes"});
    assert_eq!(
        post(&node, Some(&token), &guid.to_string(), &report)
            .await
            .0,
        200
    );
    for _ in 0..3 {
        let (status, answer) = post(&node, Some(&token), &guid.to_string(), &report).await;
        assert_eq!(status, 429, "{answer}");
        assert_eq!(answer["code"], "too_many_work_records");
        assert_eq!(
            answer["error"],
            "this session already has 10000 remote-work records in the audit trail; \
             no more are recorded for it"
        );
    }
    let records = work_records(&node, guid);
    assert_eq!(records.len() as u64, MAX_WORK_RECORDS);
    assert_eq!(
        records.last().unwrap().2,
        "command run: yes",
        "the last one in is the one under the cap"
    );
    // Other sessions are not affected; nor are other events of this one.
    assert_eq!(
        post(&node, Some(&token), &second.to_string(), &report)
            .await
            .0,
        200
    );
    let (status, _) = node
        .http(
            "POST",
            &format!("/api/v1/sessions/{guid}/end"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        node.audit(&guid.to_string())
            .iter()
            .any(|e| e["event"] == "ended")
    );
    assert_eq!(node.metric("lifeline_work_reports_total"), 2);
    // One log line for the session, however many reports it refused.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("cap of remote-work records"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains(&guid.to_string()), "{}", lines[0]);
}
