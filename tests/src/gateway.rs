//! A `gateway` process on a SQLite data directory or a PostgreSQL
//! database of its own, and its `admin` commands.

use crate::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

/// Which store a gateway runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded default.
    Sqlite,
    /// A fresh database on the machine's PostgreSQL.
    Postgres,
}

/// The PostgreSQL admin URL for tests.
pub fn pg_admin_url() -> String {
    std::env::var("LIFELINE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Runs `sql` as the PostgreSQL admin.
pub fn pg_exec(sql: &str) {
    let url = pg_admin_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap_or_else(|e| {
            panic!("PostgreSQL at {url} is unreachable ({e}); these tests need it (set LIFELINE_TEST_PG)")
        });
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut c).await.unwrap();
    });
}

/// A store for one test; a PostgreSQL database is dropped on drop.
#[derive(Debug)]
pub struct TestStore {
    /// `--store` value, if not the default.
    pub url: Option<String>,
    pg_db: Option<String>,
}

impl TestStore {
    /// Creates the store.
    pub fn new(kind: StoreKind) -> Self {
        match kind {
            StoreKind::Sqlite => Self {
                url: None,
                pg_db: None,
            },
            StoreKind::Postgres => {
                let db = format!("lifeline_e2e_{}", random_hex(6));
                pg_exec(&format!("CREATE DATABASE {db}"));
                let admin = pg_admin_url();
                let base = &admin[..admin.rfind('/').unwrap()];
                Self {
                    url: Some(format!("{base}/{db}")),
                    pg_db: Some(db),
                }
            }
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(db) = &self.pg_db {
            pg_exec(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        }
    }
}

/// Two nodes of one operator (same CA and signing key) on a PostgreSQL
/// database of their own: the store, their data directories, node-a and
/// node-b. Fields drop in order: the nodes stop before their store goes.
pub fn two_nodes() -> (TestStore, [TempDir; 2], Gateway, Gateway) {
    let store = TestStore::new(StoreKind::Postgres);
    let url = store.url.as_deref();
    let dir_a = TempDir::new("node-a");
    let a = Gateway::start(dir_a.path(), url, &["--node-name", "node-a"]);
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
    (store, [dir_a, dir_b], a, b)
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    child: Option<Child>,
    /// `host:port` it listens on.
    pub addr: String,
    /// The operator CA fingerprint it printed.
    pub fingerprint: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// `--store`, if any.
    pub store: Option<String>,
    /// Its stdout.
    pub stdout: Lines,
    /// Where `/healthz`, `/readyz` and `/metrics` answer, if on.
    pub health: Option<std::net::SocketAddr>,
}

impl Gateway {
    /// Starts `gateway serve` on 127.0.0.1:0 with `extra` flags.
    pub fn start(data_dir: &Path, store: Option<&str>, extra: &[&str]) -> Self {
        Self::start_at(data_dir, store, "127.0.0.1:0", extra)
    }

    /// Starts on a given listen address.
    pub fn start_at(data_dir: &Path, store: Option<&str>, listen: &str, extra: &[&str]) -> Self {
        Self::launch(
            GatewayLaunch::new(bin("gateway"), data_dir)
                .store(store)
                .listen(listen)
                .args(extra),
        )
    }

    /// Starts inside network namespace `netns` (see [`natlab`]).
    pub fn start_in_netns(netns: &str, data_dir: &Path, listen: &str, extra: &[&str]) -> Self {
        Self::launch(
            GatewayLaunch::new(bin("gateway"), data_dir)
                .wrapped(&["ip", "netns", "exec", netns])
                .listen(listen)
                .args(extra),
        )
    }

    /// Starts on 127.0.0.1:0 with its log (at `info`) written to `log`.
    pub fn start_logged(data_dir: &Path, extra: &[&str], log: &Path) -> Self {
        Self::launch(
            GatewayLaunch::new(bin("gateway"), data_dir)
                .args(extra)
                .log(GatewayLog::File {
                    path: log.to_owned(),
                    level: Some("info".into()),
                }),
        )
    }

    fn launch(launch: GatewayLaunch) -> Self {
        let data_dir = launch.data_dir().to_owned();
        let store = launch.store_url().map(str::to_owned);
        let l = launch.spawn().unwrap_or_else(|e| panic!("{e}"));
        Self {
            child: Some(l.child),
            addr: l.banner.addr.to_string(),
            fingerprint: l.banner.fingerprint,
            data_dir,
            store,
            stdout: l.stdout,
            health: l.banner.health,
        }
    }

    /// Runs `gateway admin ARGS` on the same store, with `stdin` as input.
    pub fn admin(&self, args: &[&str], stdin: &str) -> Output {
        admin(&self.data_dir, self.store.as_deref(), args, stdin)
    }

    /// Runs one SQL statement on the node's store beside it (to make rows
    /// old, as time would); returns the rows it changed.
    pub fn store_exec(&self, statement: &str) -> u64 {
        let url = self
            .store
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", self.data_dir.join("gateway.db").display()));
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                use sqlx::Connection;
                sqlx::any::install_default_drivers();
                let mut c = sqlx::AnyConnection::connect(&url).await.unwrap();
                let done = sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
                    .execute(&mut c)
                    .await
                    .unwrap()
                    .rows_affected();
                let _ = c.close().await;
                done
            })
    }

    /// Adds a technician (panics on failure).
    pub fn add_technician(&self, email: &str, name: &str, password: &str) {
        technician_add(
            &bin("gateway"),
            &self.data_dir,
            self.store.as_deref(),
            email,
            name,
            password,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The audit trail as JSON objects (optionally of one session).
    pub fn audit(&self, session: Option<&str>) -> Vec<Value> {
        audit_entries(
            &bin("gateway"),
            &self.data_dir,
            self.store.as_deref(),
            session,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sends SIGTERM and waits for exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("gateway already stopped");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        wait_timeout(&mut child, Duration::from_secs(60))
            .expect("gateway did not exit after SIGTERM")
    }

    /// Waits (up to `within`) for the gateway to exit on its own (after
    /// a signal sent some other way).
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("gateway already stopped");
        wait_timeout(&mut child, within).expect("gateway did not exit")
    }

    /// Sends it a signal (`TERM`, `HUP`, …), as an operator's `kill`.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{name} {} failed", self.pid());
    }

    /// Its process id (0 once stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Kills the process at once (SIGKILL: no drain, no goodbye), as a
    /// crash or `kill -9` would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `gateway admin` without a running node.
pub fn admin(data_dir: &Path, store: Option<&str>, args: &[&str], stdin: &str) -> Output {
    admin_with(&bin("gateway"), data_dir, store, args, stdin)
}

/// `PROGRAM admin technician add` (a gateway binary) on a data directory
/// and store; the error is what it printed.
pub fn technician_add(
    program: &Path,
    data_dir: &Path,
    store: Option<&str>,
    email: &str,
    name: &str,
    password: &str,
) -> Result<(), String> {
    let args = [
        "technician",
        "add",
        "--email",
        email,
        "--name",
        name,
        "--password-stdin",
    ];
    let out = admin_with(program, data_dir, store, &args, &format!("{password}\n"));
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "technician add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `PROGRAM admin audit --json` (optionally of one session), as JSON
/// objects; the error is what it printed.
pub fn audit_entries(
    program: &Path,
    data_dir: &Path,
    store: Option<&str>,
    session: Option<&str>,
) -> Result<Vec<Value>, String> {
    let mut args = vec!["audit", "--json", "--limit", "10000"];
    if let Some(s) = session {
        args.extend(["--session", s]);
    }
    let out = admin_with(program, data_dir, store, &args, "");
    if !out.status.success() {
        return Err(format!(
            "audit failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("audit line {l:?}: {e}")))
        .collect()
}

/// `PROGRAM admin` (a gateway binary) on a data directory and store, with
/// `stdin` as input.
pub fn admin_with(
    program: &Path,
    data_dir: &Path,
    store: Option<&str>,
    args: &[&str],
    stdin: &str,
) -> Output {
    let mut cmd = Command::new(program);
    cmd.arg("--data-dir").arg(data_dir);
    if let Some(s) = store {
        cmd.arg("--store").arg(s);
    }
    run_with_stdin(cmd.arg("admin").args(args), stdin)
}

impl Gateway {
    /// The operator CA certificate from the data directory.
    pub fn ca_cert(&self) -> rustls::pki_types::CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        let path = self.data_dir.join("operator-ca.pem");
        rustls::pki_types::CertificateDer::from_pem_file(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A client TLS configuration that trusts this gateway's operator CA
    /// and offers `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> std::sync::Arc<rustls::ClientConfig> {
        lifeline_session::tls::gateway_client_config(
            &lifeline_session::tls::GatewayTrust::Ca(self.ca_cert()),
            alpn,
        )
        .unwrap()
    }

    /// The listen address as a socket address.
    pub fn socket_addr(&self) -> std::net::SocketAddr {
        self.addr.parse().unwrap()
    }

    /// The relay-end audit record of a session, once the relay has ended:
    /// `(bytes applet→console, bytes console→applet)`.
    pub fn relayed_bytes(&self, guid: &str, within: Duration) -> (u64, u64) {
        let detail = wait_until("the \"relay ended\" audit record", within, || {
            self.audit(Some(guid))
                .into_iter()
                .find(|e| e["event"] == "relay ended")
                .map(|e| e["detail"].as_str().unwrap().to_owned())
        });
        let num_before = |marker: &str| -> u64 {
            let head = &detail[..detail
                .find(marker)
                .unwrap_or_else(|| panic!("no {marker:?} in {detail:?}"))];
            head.trim_end()
                .rsplit(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|_| panic!("no byte count before {marker:?} in {detail:?}"))
        };
        (
            num_before("bytes applet→console"),
            num_before("bytes console→applet"),
        )
    }
}
