//! `gateway admin` as an operator uses it, against a real node and store:
//! disabling and enabling a technician, a new password, removing one,
//! groups, ending anyone's session, and pruning old records — each seen
//! from the technician's console or the end user's applet, and each in the
//! audit trail (never with a password in it).
#![allow(clippy::unwrap_used)]

use lifeline_tests::{Console, Gateway, Proc, StoreKind, TempDir, TestStore, WAIT, wait_until};
use serde_json::Value;
use std::process::Output;
use std::time::{Duration, Instant};

const ADA: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "a brand new passphrase";

struct Setup {
    // Dropped in this order: the node before its database.
    gw: Gateway,
    console: Console,
    files: TempDir,
    _data: TempDir,
    _db: TestStore,
}

fn setup(kind: StoreKind) -> Setup {
    let db = TestStore::new(kind);
    let data = TempDir::new("gw-admin");
    let gw = Gateway::start(data.path(), db.url.as_deref(), &[]);
    gw.add_technician(ADA, "Ada", PASSWORD);
    let console = Console::new();
    console.login(&gw, ADA, PASSWORD);
    Setup {
        gw,
        console,
        files: TempDir::new("files"),
        _data: data,
        _db: db,
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `gateway admin ARGS`; it must succeed. Its standard output.
fn ok(gw: &Gateway, args: &[&str], stdin: &str) -> String {
    let out = gw.admin(args, stdin);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// Runs `gateway admin ARGS`; it must fail. Its standard error.
fn refused(gw: &Gateway, args: &[&str], stdin: &str) -> String {
    let out = gw.admin(args, stdin);
    assert!(
        !out.status.success(),
        "{args:?} was accepted: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "succeeded: {}", text(&out.stdout));
    text(&out.stderr)
}

/// The admin's audit records (actor `admin`) with this event.
fn admin_records(gw: &Gateway, event: &str) -> Vec<Value> {
    gw.audit(None)
        .into_iter()
        .filter(|e| e["actor"] == "admin" && e["event"] == event)
        .collect()
}

/// The one detail of the admin's records with this event (panics unless
/// there is exactly one).
fn detail(gw: &Gateway, event: &str) -> String {
    let records = admin_records(gw, event);
    assert_eq!(records.len(), 1, "{event}: {records:?}");
    records[0]["detail"].as_str().unwrap().to_owned()
}

/// No audit record holds any of these passwords.
fn assert_no_password(gw: &Gateway, passwords: &[&str]) {
    for e in gw.audit(None) {
        let line = e.to_string();
        for p in passwords {
            assert!(!line.contains(p), "a password in the audit trail: {line}");
        }
    }
}

/// Runs `f` on a connection of its own to the node's store, beside the
/// node.
fn on_store<T>(gw: &Gateway, f: impl AsyncFnOnce(&mut sqlx::AnyConnection) -> T) -> T {
    let url = gw
        .store
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", gw.data_dir.join("gateway.db").display()));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Connection;
            sqlx::any::install_default_drivers();
            let mut c = sqlx::AnyConnection::connect(&url).await.unwrap();
            let v = f(&mut c).await;
            let _ = c.close().await;
            v
        })
}

/// Runs SQL on the node's store beside it (to make rows old).
fn sql(gw: &Gateway, statement: &str) -> u64 {
    on_store(gw, async |c| {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(c)
            .await
            .unwrap()
            .rows_affected()
    })
}

/// One number from the node's store.
fn count(gw: &Gateway, query: &str) -> i64 {
    on_store(gw, async |c| {
        sqlx::query_scalar(sqlx::AssertSqlSafe(query.to_owned()))
            .fetch_one(c)
            .await
            .unwrap()
    })
}

/// The technician's open sessions (`tech-console sessions --json`).
fn sessions(console: &Console) -> Vec<Value> {
    let out = console.run(&["sessions", "--json"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn technician_line(gw: &Gateway, email: &str) -> Option<String> {
    ok(gw, &["technician", "list"], "")
        .lines()
        .find(|l| l.starts_with(email))
        .map(str::to_owned)
}

#[test]
fn a_disabled_technician_cannot_log_in_and_their_logins_end_until_enabled() {
    let s = setup(StoreKind::Sqlite);
    let queue = s.console.run(&["queue"], "");
    assert!(queue.status.success(), "{}", text(&queue.stderr));

    let out = ok(&s.gw, &["technician", "disable", ADA], "");
    assert!(out.contains("1 login ended"), "{out}");
    // The login the console holds stopped working at once.
    let err = failed(&s.console.run(&["queue"], ""));
    assert!(err.contains("not logged in"), "{err}");
    // The right password is told the account is disabled; a wrong one
    // gets what any wrong password gets, and nothing about the account.
    let other = Console::new();
    let err = failed(&other.try_login(&s.gw, ADA, PASSWORD));
    assert!(err.contains("this account is disabled"), "{err}");
    let err = failed(&other.try_login(&s.gw, ADA, "not the password"));
    assert!(
        err.contains("wrong e-mail or password") && !err.contains("disabled"),
        "{err}"
    );
    let unknown = failed(&other.try_login(&s.gw, "nobody@example.com", "not the password"));
    let shape = |e: &str| e.replace("nobody@example.com", ADA);
    assert_eq!(
        shape(&unknown),
        shape(&err),
        "the same answer as for nobody"
    );
    let line = technician_line(&s.gw, ADA).unwrap();
    assert!(line.contains(" disabled "), "{line}");
    let again = ok(&s.gw, &["technician", "disable", ADA], "");
    assert!(again.contains("already disabled"), "{again}");

    let out = ok(&s.gw, &["technician", "enable", ADA], "");
    assert!(out.contains("may log in again"), "{out}");
    s.console.login(&s.gw, ADA, PASSWORD);
    let queue = s.console.run(&["queue"], "");
    assert!(queue.status.success(), "{}", text(&queue.stderr));
    let line = technician_line(&s.gw, ADA).unwrap();
    assert!(line.contains(" enabled "), "{line}");

    for (args, says) in [
        (
            vec!["technician", "disable", "nobody@example.com"],
            "there is no technician",
        ),
        (
            vec!["technician", "enable", "nobody@example.com"],
            "there is no technician",
        ),
    ] {
        let err = refused(&s.gw, &args, "");
        assert!(err.contains(says), "{err}");
    }
    assert_eq!(
        detail(&s.gw, "technician disabled"),
        format!("{ADA}: logins refused; 1 login ended")
    );
    assert_eq!(
        detail(&s.gw, "technician enabled"),
        format!("{ADA}: may log in again")
    );
    let refusals: Vec<_> =
        s.gw.audit(None)
            .into_iter()
            .filter(|e| e["event"] == "login refused")
            .collect();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0]["actor"], ADA);
    assert_no_password(&s.gw, &[PASSWORD, "not the password"]);
}

#[test]
fn a_new_password_lifts_a_lockout_ends_the_logins_and_only_it_works() {
    let s = setup(StoreKind::Sqlite);
    let other = Console::new();
    for _ in 0..5 {
        other.try_login(&s.gw, ADA, "wrong password");
    }
    let err = failed(&other.try_login(&s.gw, ADA, PASSWORD));
    assert!(err.contains("locked until"), "{err}");

    for (args, stdin, says) in [
        (
            vec![
                "technician",
                "reset-password",
                "nobody@example.com",
                "--password-stdin",
            ],
            "whatever password\n",
            "there is no technician",
        ),
        (
            vec!["technician", "reset-password", ADA, "--password-stdin"],
            "short\n",
            "at least 8 characters",
        ),
    ] {
        let err = refused(&s.gw, &args, stdin);
        assert!(err.contains(says), "{err}");
    }
    let out = ok(
        &s.gw,
        &["technician", "reset-password", ADA, "--password-stdin"],
        &format!("{NEW_PASSWORD}\n"),
    );
    assert!(
        out.contains("lockout lifted") && out.contains("1 login ended"),
        "{out}"
    );
    // The console's login ended; the old password no longer works, the
    // new one does at once (the lock is gone).
    let err = failed(&s.console.run(&["queue"], ""));
    assert!(err.contains("not logged in"), "{err}");
    let err = failed(&other.try_login(&s.gw, ADA, PASSWORD));
    assert!(err.contains("wrong e-mail or password"), "{err}");
    other.login(&s.gw, ADA, NEW_PASSWORD);
    assert!(other.run(&["queue"], "").status.success());

    assert_eq!(
        detail(&s.gw, "password reset"),
        format!("{ADA}: new password set; 1 login ended; lockout lifted")
    );
    assert_no_password(&s.gw, &[PASSWORD, NEW_PASSWORD, "wrong password", "short"]);
}

#[test]
fn groups_are_added_listed_moved_between_and_removed_only_when_empty() {
    let s = setup(StoreKind::Sqlite);
    let list = ok(&s.gw, &["group", "list"], "");
    let default = list.lines().find(|l| l.starts_with("default")).unwrap();
    assert!(default.contains(ADA), "{list}");

    let out = ok(
        &s.gw,
        &["group", "add", "night", "--permissions", "system-info"],
        "",
    );
    assert!(
        out.contains("added group night [chat, system-info]"),
        "{out}"
    );
    let list = ok(&s.gw, &["group", "list"], "");
    let night = list.lines().find(|l| l.starts_with("night")).unwrap();
    assert!(
        night.contains("chat, system-info") && night.contains("(none)"),
        "{list}"
    );
    for (args, says) in [
        (vec!["group", "add", "night"], "already a group named"),
        (
            vec!["group", "add", "day", "--permissions", "telepathy"],
            "telepathy",
        ),
        (
            vec!["technician", "move", ADA, "--group", "nowhere"],
            "there is no group named \"nowhere\"",
        ),
        (
            vec![
                "technician",
                "move",
                "nobody@example.com",
                "--group",
                "night",
            ],
            "there is no technician",
        ),
        (
            vec!["group", "remove", "nowhere"],
            "there is no group named",
        ),
        (
            vec!["group", "permissions", "nowhere", "none"],
            "there is no group named",
        ),
    ] {
        let err = refused(&s.gw, &args, "");
        assert!(err.contains(says), "{args:?}: {err}");
    }

    let out = ok(&s.gw, &["technician", "move", ADA, "--group", "night"], "");
    assert!(out.contains("from group default to night"), "{out}");
    let line = technician_line(&s.gw, ADA).unwrap();
    assert!(line.contains(" night "), "{line}");
    let list = ok(&s.gw, &["group", "list"], "");
    let night = list.lines().find(|l| l.starts_with("night")).unwrap();
    assert!(night.contains(ADA), "{list}");
    // A session created now gets the new group's permissions.
    let guid = s
        .console
        .session_new("after the move", &s.files.path().join("applet"));
    let open = sessions(&s.console);
    let session = open.iter().find(|q| q["guid"] == guid.as_str()).unwrap();
    assert_eq!(session["permissions"], "chat, system-info", "{session}");

    let err = refused(&s.gw, &["group", "remove", "night"], "");
    assert!(
        err.contains("1 technician is in it") && err.contains(ADA) && err.contains("move"),
        "{err}"
    );
    ok(
        &s.gw,
        &["technician", "move", ADA, "--group", "default"],
        "",
    );
    let out = ok(&s.gw, &["group", "remove", "night"], "");
    assert!(out.contains("removed group night"), "{out}");
    assert!(!ok(&s.gw, &["group", "list"], "").contains("night"));
    ok(&s.gw, &["group", "permissions", "default", "none"], "");
    ok(&s.gw, &["technician", "revoke-tokens", ADA], "");

    assert_eq!(
        detail(&s.gw, "group added"),
        "night: permissions: chat, system-info"
    );
    let moves: Vec<_> = admin_records(&s.gw, "technician moved")
        .into_iter()
        .map(|e| e["detail"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(moves.len(), 2, "{moves:?}");
    assert!(
        moves[0].starts_with(&format!(
            "{ADA}: group default → night; permissions: chat, "
        )) && moves[0].ends_with(" → chat, system-info"),
        "{moves:?}"
    );
    assert_eq!(
        detail(&s.gw, "group removed"),
        "night: permissions were chat, system-info"
    );
    let perms = detail(&s.gw, "group permissions");
    assert!(
        perms.starts_with("default: permissions: chat, file-to-user")
            && perms.ends_with(" → chat only"),
        "{perms}"
    );
    assert_eq!(
        detail(&s.gw, "technician added"),
        format!("{ADA} (Ada), group default")
    );
    assert!(detail(&s.gw, "tokens revoked").starts_with(ADA));
    assert_no_password(&s.gw, &[PASSWORD]);
}

/// The applet waits; the administrator ends its session: the applet is
/// told, says so and removes itself. `within`: at once where every node
/// hears of endings (PostgreSQL), by the node's check of its waiting
/// applets (every 10 s) where another process's endings are not announced
/// (SQLite).
fn admin_ending_reaches_the_waiting_applet(kind: StoreKind, within: Duration) {
    let s = setup(kind);
    let path = s.files.path().join("applet");
    let guid = s.console.session_new("to be ended", &path);
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for("Waiting for Ada");
    let t0 = Instant::now();
    let out = ok(
        &s.gw,
        &[
            "session",
            "end",
            &guid,
            "--reason",
            "the customer called back",
        ],
        "",
    );
    assert!(out.contains("the applet waiting in it is told"), "{out}");
    applet
        .out
        .wait("the ending", within + Duration::from_secs(5), |l| {
            l.contains("has already ended")
        });
    let took = t0.elapsed();
    assert!(took < within, "took {took:?}");
    assert!(!applet.wait_exit(Duration::from_secs(10)).success());
    assert!(!path.exists(), "the applet removed itself");

    let again = ok(&s.gw, &["session", "end", &guid], "");
    assert!(again.contains("had already ended"), "{again}");
    let err = refused(
        &s.gw,
        &["session", "end", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"],
        "",
    );
    assert!(err.contains("there is no session"), "{err}");
    let records = s.gw.audit(Some(&guid));
    let ended: Vec<_> = records.iter().filter(|e| e["event"] == "ended").collect();
    assert_eq!(ended.len(), 1, "{records:?}");
    assert_eq!(ended[0]["actor"], "admin");
    assert_eq!(
        ended[0]["detail"],
        "ended by the administrator: the customer called back"
    );
    assert!(
        records
            .iter()
            .any(|e| e["event"] == "left" && e["detail"] == "told that the session has ended"),
        "{records:?}"
    );
    // The technician's console no longer lists it as open.
    let open = sessions(&s.console);
    assert!(open.iter().all(|q| q["guid"] != guid.as_str()), "{open:?}");
}

#[test]
fn the_administrator_ending_a_session_reaches_its_waiting_applet_at_once_on_postgres() {
    admin_ending_reaches_the_waiting_applet(StoreKind::Postgres, Duration::from_secs(5));
}

#[test]
fn the_administrator_ending_a_session_reaches_its_waiting_applet_on_sqlite() {
    admin_ending_reaches_the_waiting_applet(StoreKind::Sqlite, Duration::from_secs(15));
}

/// Removing: refused while an end user waits in one of the technician's
/// sessions, and moments after one ended; then their open sessions are
/// ended (audited, with the reason), and their logins, sessions and
/// account go — the audit trail stays, naming them by e-mail.
#[test]
fn removing_a_technician_ends_their_open_sessions_and_refuses_while_an_end_user_waits() {
    let s = setup(StoreKind::Postgres);
    let open = s
        .console
        .session_new("not yet run", &s.files.path().join("open"));
    let path = s.files.path().join("waiting");
    let waiting = s.console.session_new("waiting", &path);
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for("Waiting for Ada");

    let err = refused(&s.gw, &["technician", "remove", ADA], "");
    assert!(
        err.contains("was not removed")
            && err.contains(&waiting)
            && err.contains("the end user is waiting")
            && err.contains("session end"),
        "{err}"
    );
    assert!(
        s.console.run(&["queue"], "").status.success(),
        "nothing changed"
    );

    ok(&s.gw, &["session", "end", &waiting], "");
    applet.out.wait_for("has already ended");
    let err = refused(&s.gw, &["technician", "remove", ADA], "");
    assert!(
        err.contains("ended moments ago") && err.contains("try again in"),
        "{err}"
    );
    // Rather than wait half a minute: the ending made old.
    let aged = sql(
        &s.gw,
        &format!("UPDATE sessions SET ended_at_ms = ended_at_ms - 60000 WHERE guid = '{waiting}'"),
    );
    assert_eq!(aged, 1);

    let out = ok(&s.gw, &["technician", "remove", ADA], "");
    assert!(
        out.contains("1 open session ended")
            && out.contains("2 session records deleted")
            && out.contains("1 login ended"),
        "{out}"
    );
    let ended = s.gw.audit(Some(&open));
    let ended = ended.iter().find(|e| e["event"] == "ended").unwrap();
    assert_eq!(ended["actor"], "admin");
    assert_eq!(
        ended["detail"],
        format!("ended by the administrator: the technician {ADA} was removed")
    );
    assert_eq!(
        detail(&s.gw, "technician removed"),
        format!(
            "{ADA} (Ada), group default: 1 open session ended, 2 session records deleted, \
             1 login ended"
        )
    );
    // Their own records stay, under their e-mail.
    assert!(
        s.gw.audit(None)
            .iter()
            .any(|e| e["actor"] == ADA && e["event"] == "login")
    );
    assert_eq!(count(&s.gw, "SELECT COUNT(*) FROM sessions"), 0);
    let err = failed(&s.console.run(&["queue"], ""));
    assert!(err.contains("not logged in"), "{err}");
    let err = failed(&Console::new().try_login(&s.gw, ADA, PASSWORD));
    assert!(err.contains("wrong e-mail or password"), "{err}");
    assert_eq!(technician_line(&s.gw, ADA), None);
    let err = refused(&s.gw, &["technician", "remove", ADA], "");
    assert!(err.contains("there is no technician"), "{err}");
    // The address may be given to someone again.
    s.gw.add_technician(ADA, "Ada", PASSWORD);
    assert_no_password(&s.gw, &[PASSWORD]);
}

/// Ended sessions and audit records older than the cutoff go (a dry run
/// only counts them); a session that never ended stays however old.
#[test]
fn prune_deletes_old_ended_sessions_and_audit_records_and_keeps_open_sessions() {
    let s = setup(StoreKind::Sqlite);
    let mut guids = Vec::new();
    for label in ["old", "recent", "open"] {
        guids.push(s.console.session_new(label, &s.files.path().join(label)));
    }
    let [old, recent, open] = [&guids[0], &guids[1], &guids[2]];
    for g in [old, recent] {
        let out = s.console.run(&["session", "end", g], "");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    const DAYS_100: i64 = 100 * 86_400_000;
    assert_eq!(
        sql(
            &s.gw,
            &format!(
                "UPDATE sessions SET created_at_ms = created_at_ms - {DAYS_100}, \
                 expires_at_ms = expires_at_ms - {DAYS_100}, \
                 ended_at_ms = ended_at_ms - {DAYS_100} WHERE guid IN ('{old}', '{open}')"
            )
        ),
        2
    );
    // The old session's records and the technician's login are old too.
    let old_records = sql(
        &s.gw,
        &format!(
            "UPDATE audit SET at_ms = at_ms - {DAYS_100} \
             WHERE session_guid = '{old}' OR event = 'login'"
        ),
    );
    assert!(old_records >= 3, "{old_records}");
    let audit_before = count(&s.gw, "SELECT COUNT(*) FROM audit");

    let err = refused(&s.gw, &["prune", "--older-than", "30m"], "");
    assert!(err.contains("less than an hour"), "{err}");
    let err = refused(&s.gw, &["prune", "--older-than", "ninety days"], "");
    assert!(err.contains("is not a duration"), "{err}");

    let out = ok(&s.gw, &["prune", "--older-than", "90d", "--dry-run"], "");
    assert!(
        out.contains(&format!(
            "would delete 1 ended session and {old_records} audit records (older than 90d"
        )) && out.contains("nothing was deleted"),
        "{out}"
    );
    assert_eq!(count(&s.gw, "SELECT COUNT(*) FROM sessions"), 3);
    assert_eq!(count(&s.gw, "SELECT COUNT(*) FROM audit"), audit_before);

    let out = ok(&s.gw, &["prune", "--older-than", "90d"], "");
    assert!(
        out.contains(&format!(
            "deleted 1 ended session and {old_records} audit records older than 90d"
        )),
        "{out}"
    );
    let left: Vec<i64> = [old, recent, open]
        .iter()
        .map(|g| {
            count(
                &s.gw,
                &format!("SELECT COUNT(*) FROM sessions WHERE guid = '{g}'"),
            )
        })
        .collect();
    assert_eq!(left, [0, 1, 1], "the old open session stays");
    assert_eq!(
        count(&s.gw, "SELECT COUNT(*) FROM audit"),
        audit_before - old_records as i64 + 1
    );
    assert!(s.gw.audit(Some(old)).is_empty());
    let pruned = detail(&s.gw, "pruned");
    assert!(
        pruned.starts_with(&format!(
            "deleted 1 ended session and {old_records} audit records older than 90d (before "
        )),
        "{pruned}"
    );
    // The technician's console still lists the open one.
    let listed = sessions(&s.console);
    assert!(
        listed.iter().any(|q| q["guid"] == open.as_str()),
        "{listed:?}"
    );
    // Nothing more to do.
    let out = ok(&s.gw, &["prune", "--older-than", "90d"], "");
    assert!(
        out.contains("deleted 0 ended sessions and 0 audit records"),
        "{out}"
    );
}

#[test]
fn serve_with_retention_prunes_at_start_on_its_own() {
    let mut s = setup(StoreKind::Sqlite);
    let old = s.console.session_new("old", &s.files.path().join("old"));
    let open = s.console.session_new("open", &s.files.path().join("open"));
    let out = s.console.run(&["session", "end", &old], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    const DAYS_100: i64 = 100 * 86_400_000;
    sql(
        &s.gw,
        &format!(
            "UPDATE sessions SET created_at_ms = created_at_ms - {DAYS_100}, \
             expires_at_ms = expires_at_ms - {DAYS_100}, \
             ended_at_ms = ended_at_ms - {DAYS_100} WHERE guid IN ('{old}', '{open}')"
        ),
    );
    sql(
        &s.gw,
        &format!("UPDATE audit SET at_ms = at_ms - {DAYS_100} WHERE session_guid = '{old}'"),
    );
    // A retention too short is refused before the node starts.
    let data_dir = s.gw.data_dir.clone();
    let short = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["serve", "--retention", "5m", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!short.status.success());
    assert!(
        text(&short.stderr).contains("less than an hour"),
        "{}",
        text(&short.stderr)
    );
    // Restarted with a retention of 90 days: the old ended session and its
    // records go, the open session stays, and the deletion is recorded.
    assert!(s.gw.terminate().success());
    s.gw = Gateway::start(&data_dir, None, &["--retention", "90d"]);
    // Its record is written once both deletions are done.
    let pruned = "SELECT COUNT(*) FROM audit WHERE actor = 'retention' AND event = 'pruned' \
         AND detail LIKE 'deleted 1 ended session and %'";
    wait_until("the retention run", WAIT, || {
        (count(&s.gw, pruned) == 1).then_some(())
    });
    assert_eq!(
        count(
            &s.gw,
            &format!("SELECT COUNT(*) FROM sessions WHERE guid = '{old}'")
        ),
        0
    );
    assert_eq!(
        count(
            &s.gw,
            &format!("SELECT COUNT(*) FROM sessions WHERE guid = '{open}'")
        ),
        1
    );
    assert_eq!(
        count(
            &s.gw,
            &format!("SELECT COUNT(*) FROM audit WHERE session_guid = '{old}'")
        ),
        0
    );
    assert_eq!(count(&s.gw, pruned), 1);
}

#[test]
fn a_group_s_idle_time_ends_unused_logins() {
    let s = setup(StoreKind::Sqlite);
    let err = refused(&s.gw, &["group", "idle", "default", "30s"], "");
    assert!(err.contains("is not a duration"), "{err}");
    let out = ok(&s.gw, &["group", "idle", "default", "30m"], "");
    assert!(out.contains("logins end after 30 min unused"), "{out}");
    // In use: the login goes on (its last use is now).
    let queue = s.console.run(&["queue"], "");
    assert!(queue.status.success(), "{}", text(&queue.stderr));
    // Unused for 31 minutes (the clock moved by aging the token's times).
    const MIN_31: i64 = 31 * 60_000;
    sql(
        &s.gw,
        &format!(
            "UPDATE tokens SET created_at_ms = created_at_ms - {MIN_31}, \
             last_used_ms = COALESCE(last_used_ms, created_at_ms) - {MIN_31}"
        ),
    );
    let queue = s.console.run(&["queue"], "");
    assert!(!queue.status.success());
    let err = text(&queue.stderr);
    assert!(
        err.contains("unused longer than your group allows"),
        "{err}"
    );
    // Logging in again works; with the limit off, an old login lives on.
    s.console.login(&s.gw, ADA, PASSWORD);
    ok(&s.gw, &["group", "idle", "default", "off"], "");
    sql(
        &s.gw,
        &format!(
            "UPDATE tokens SET created_at_ms = created_at_ms - {MIN_31}, \
             last_used_ms = COALESCE(last_used_ms, created_at_ms) - {MIN_31}"
        ),
    );
    let queue = s.console.run(&["queue"], "");
    assert!(queue.status.success(), "{}", text(&queue.stderr));
    let audit = ok(&s.gw, &["audit"], "");
    assert!(
        audit.contains("group idle logout")
            && audit.contains("default: only when they expire → after 30 min unused"),
        "{audit}"
    );
}

/// `POST /api/v1/login` over TLS from the source address `from` (a
/// loopback address of its own): the HTTP status and body.
fn login_from(gw: &Gateway, from: &str, email: &str, password: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let src: std::net::SocketAddr = format!("{from}:0").parse().unwrap();
    sock.bind(&src.into()).unwrap();
    sock.connect(&gw.socket_addr().into()).unwrap();
    let mut tcp: std::net::TcpStream = sock.into();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(gw.client_config(&[b"http/1.1"]), name).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    let body = serde_json::json!({"email": email, "password": password}).to_string();
    write!(
        tls,
        "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = tls.read_to_string(&mut answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[test]
fn a_group_s_networks_refuse_and_accept_by_source_address() {
    let s = setup(StoreKind::Sqlite);
    let err = refused(&s.gw, &["group", "networks", "default", "127.0.0.1/8"], "");
    assert!(err.contains("did you mean 127.0.0.0/8"), "{err}");
    // A session made while any network would do, and the login's token.
    let guid = s
        .console
        .session_new("outside", &s.files.path().join("outside"));
    let login: Value =
        serde_json::from_slice(&std::fs::read(s.console.dir.path().join("login.json")).unwrap())
            .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    let out = ok(&s.gw, &["group", "networks", "default", "127.0.0.2/32"], "");
    assert!(out.contains("from 127.0.0.2/32"), "{out}");
    // A console connecting to the relay from 127.0.0.1 is refused there
    // too, and says why.
    match lifeline_tests::raw::RawClient::ask(
        &s.gw,
        lifeline_protocol::relay::Role::Console,
        guid.parse().unwrap(),
        &token,
    ) {
        lifeline_protocol::relay::ServerMsg::Refused { message, .. } => {
            assert!(message.contains("only from its own networks"), "{message}")
        }
        other => panic!("a console from outside the networks got {other:?}"),
    }
    ok(&s.gw, &["group", "idle", "default", "45m"], "");
    let list = ok(&s.gw, &["group", "list"], "");
    assert!(
        list.contains("logins end after 45 min unused; only from 127.0.0.2/32"),
        "{list}"
    );
    // The console on 127.0.0.1: its login no longer works here, and a new
    // one is refused, each saying why.
    let queue = s.console.run(&["queue"], "");
    assert!(!queue.status.success());
    let err = text(&queue.stderr);
    assert!(err.contains("127.0.0.1 is not one of them"), "{err}");
    let again = s.console.try_login(&s.gw, ADA, PASSWORD);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("only from its own networks"),
        "{}",
        text(&again.stderr)
    );
    // From 127.0.0.2: accepted. A wrong password from outside says only
    // that.
    let (status, body) = login_from(&s.gw, "127.0.0.2", ADA, PASSWORD);
    assert_eq!(status, 200, "{body}");
    let (status, body) = login_from(&s.gw, "127.0.0.3", ADA, "wrong password");
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains("network"), "{body}");
    // Any again: the console works.
    ok(&s.gw, &["group", "networks", "default", "any"], "");
    s.console.login(&s.gw, ADA, PASSWORD);
    assert!(s.console.run(&["queue"], "").status.success());
    let audit = ok(&s.gw, &["audit"], "");
    for needle in [
        "group networks",
        "default: any → 127.0.0.2/32",
        "request refused",
        "login refused",
        "console refused",
        "outside the networks of group default",
    ] {
        assert!(audit.contains(needle), "{needle:?} not in:\n{audit}");
    }
}
