//! A real `gateway serve` process for the gateway's own integration tests,
//! and just enough client to talk to it: the portal over HTTPS (HTTP/1.1,
//! one request per connection, as the gateway serves it) and the relay
//! handshake on ALPN `lifeline/1`.
#![allow(dead_code)]

use lifeline_protocol::relay::{Hello, Role, ServerMsg};
use lifeline_protocol::{ALPN_HTTP1, ALPN_RELAY, SessionGuid};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A client TLS stream to the node.
pub type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// The technician every test logs in as.
pub const EMAIL: &str = "tech@example.com";
/// Their password.
pub const PASSWORD: &str = "correct horse battery";
/// The applet secret of every session [`Node::create_session`] makes.
pub const APPLET_SECRET: [u8; 32] = [0x5e; 32];

pub use lifeline_tests::GatewayLaunch;
use lifeline_tests::Lines;
pub use lifeline_tests::TempDir;

/// A running `gateway serve`.
#[derive(Debug)]
pub struct Node {
    child: Child,
    /// The rest of its output, read to the end (a closed pipe would make
    /// the gateway's next print fail, and kill it).
    pub stdout: Lines,
    /// The data directory (and SQLite store).
    pub data_dir: PathBuf,
    /// `--store`, when not the data directory's SQLite.
    pub store: Option<String>,
    /// Where it listens (TLS).
    pub addr: SocketAddr,
    /// The banner's STUN line.
    pub stun_line: String,
    /// `STUN on BOUND (clients use ADVERTISED)`: the two addresses.
    pub stun: Option<(SocketAddr, String)>,
    /// Where `/health` and `/metrics` answer, if on.
    pub health: Option<SocketAddr>,
}

impl Node {
    /// Starts a node on 127.0.0.1:0 in `data_dir` with `extra` flags.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(data_dir, extra, &[])
    }

    /// [`Node::start`] with extra environment variables.
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_wrapped(data_dir, extra, env, &[])
    }

    /// [`Node::start_with_env`], run through `wrapper` (e.g. `prlimit
    /// --nofile=400:400 --`) when it is not empty.
    pub fn start_wrapped(
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        wrapper: &[&str],
    ) -> Self {
        Self::launch(
            Self::launcher(data_dir)
                .args(extra)
                .envs(env)
                .wrapped(wrapper),
        )
    }

    /// How this crate's `gateway` starts on `data_dir`, to be refined
    /// (a store, a log file) and given to [`Node::launch`].
    pub fn launcher(data_dir: &Path) -> GatewayLaunch {
        GatewayLaunch::new(env!("CARGO_BIN_EXE_gateway"), data_dir)
    }

    /// Starts `launch`; its data directory and store are the node's.
    pub fn launch(launch: GatewayLaunch) -> Self {
        let data_dir = launch.data_dir().to_owned();
        let store = launch.store_url().map(str::to_owned);
        let l = launch.spawn().unwrap_or_else(|e| panic!("{e}"));
        Self {
            child: l.child,
            stdout: l.stdout,
            data_dir,
            store,
            addr: l.banner.addr,
            stun_line: l.banner.stun_line,
            stun: l.banner.stun,
            health: l.banner.health,
        }
    }

    /// `GET PATH` on the health and metrics port: `(status, body)`.
    pub fn health_get(&self, path: &str) -> (u16, String) {
        lifeline_tests::http_get(self.health.expect("health is on"), path)
    }

    /// The value of the counter or gauge `name` on `/metrics`.
    pub fn metric(&self, name: &str) -> u64 {
        let (status, text) = self.health_get("/metrics");
        assert_eq!(status, 200, "{text}");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// The advertised STUN address (what `Paired` carries), or "".
    pub fn stun_advertised(&self) -> String {
        self.stun.as_ref().map(|s| s.1.clone()).unwrap_or_default()
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Kills the process at once (no drain), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the process cleanly (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    /// `gateway admin ARGS` on the node's store.
    pub fn admin(&self, args: &[&str], stdin: &str) -> Output {
        lifeline_tests::admin_with(
            Path::new(env!("CARGO_BIN_EXE_gateway")),
            &self.data_dir,
            self.store.as_deref(),
            args,
            stdin,
        )
    }

    /// Adds the test technician.
    pub fn add_technician(&self, email: &str) {
        lifeline_tests::technician_add(
            Path::new(env!("CARGO_BIN_EXE_gateway")),
            &self.data_dir,
            self.store.as_deref(),
            email,
            "Tess Tech",
            PASSWORD,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// A session's audit trail.
    pub fn audit(&self, guid: &str) -> Vec<Value> {
        lifeline_tests::audit_entries(
            Path::new(env!("CARGO_BIN_EXE_gateway")),
            &self.data_dir,
            self.store.as_deref(),
            Some(guid),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits for the first audit entry of `event` and returns its detail.
    pub fn wait_for_audit(&self, guid: &str, event: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(e) = self.audit(guid).into_iter().find(|e| e["event"] == event) {
                return e["detail"].as_str().unwrap().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no {event:?} audit entry: {:?}",
                self.audit(guid)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn tls_config(&self, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
        let ca = CertificateDer::from_pem_file(self.data_dir.join("operator-ca.pem")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(cfg)
    }

    /// A TLS connection offering `alpn`.
    pub async fn connect(&self, alpn: &[u8]) -> Tls {
        self.connect_from("127.0.0.1".parse().unwrap(), alpn).await
    }

    /// A TLS connection offering `alpn` from source address `from` (all of
    /// 127/8 is this host's, so tests can play several addresses).
    pub async fn connect_from(&self, from: std::net::IpAddr, alpn: &[u8]) -> Tls {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(from, 0)).unwrap();
        let tcp = sock.connect(self.addr).await.unwrap();
        let name = ServerName::IpAddress(self.addr.ip().into());
        tokio_rustls::TlsConnector::from(self.tls_config(alpn))
            .connect(name, tcp)
            .await
            .unwrap()
    }

    /// One portal request: `(status, JSON body)`.
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.http_from("127.0.0.1".parse().unwrap(), method, path, token, body)
            .await
    }

    /// [`Node::http`] from source address `from`.
    pub async fn http_from(
        &self,
        from: std::net::IpAddr,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut tls = self.connect_from(from, ALPN_HTTP1).await;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: gateway\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tls.write_all(req.as_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        let mut resp = Vec::new();
        // The peer may skip close_notify; what was read is what counts.
        let _ = tls.read_to_end(&mut resp).await;
        let text = String::from_utf8_lossy(&resp);
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let json = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
        };
        (status, json)
    }

    /// Logs in; returns the bearer token.
    pub async fn login(&self, email: &str) -> String {
        let (status, body) = self
            .http(
                "POST",
                "/api/v1/login",
                None,
                Some(&serde_json::json!({"email": email, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// Creates a session; returns its GUID.
    pub async fn create_session(&self, token: &str) -> SessionGuid {
        let (status, body) = self
            .http(
                "POST",
                "/api/v1/sessions",
                Some(token),
                Some(&serde_json::json!({
                    "console_pin": "c0".repeat(32),
                    "applet_secret": lifeline_protocol::hex::encode(&APPLET_SECRET),
                })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["guid"].as_str().unwrap().parse().unwrap()
    }

    /// Sends a relay hello: a console's with `token`, an applet's with the
    /// admission proof of [`APPLET_SECRET`] over this connection (the
    /// secret every session of [`Node::create_session`] has).
    pub async fn hello(&self, role: Role, guid: SessionGuid, token: &str) -> Tls {
        let mut tls = self.connect(ALPN_RELAY).await;
        let hello = match role {
            Role::Console => Hello::console(guid, token),
            Role::Applet => {
                let mut exporter = [0u8; 32];
                tls.get_ref()
                    .1
                    .export_keying_material(
                        &mut exporter,
                        lifeline_protocol::proof::ADMISSION_EXPORTER_LABEL,
                        Some(guid.as_bytes()),
                    )
                    .unwrap();
                Hello::applet(
                    guid,
                    lifeline_protocol::proof::admission_proof(&APPLET_SECRET, &guid, &exporter),
                )
            }
        };
        tls.write_all(&hello.encode()).await.unwrap();
        tls.flush().await.unwrap();
        tls
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads one gateway message (with exact reads: nothing after it).
pub async fn read_msg(tls: &mut Tls) -> ServerMsg {
    tokio::time::timeout(
        Duration::from_secs(20),
        lifeline_session::gateway_conn::read_server_msg(tls),
    )
    .await
    .expect("no message from the gateway within 20 s")
    .unwrap()
}

/// An applet that waits: hello, then `Waiting`.
pub async fn waiting_applet(node: &Node, guid: SessionGuid) -> Tls {
    let mut applet = node.hello(Role::Applet, guid, "").await;
    match read_msg(&mut applet).await {
        ServerMsg::Waiting { .. } => applet,
        other => panic!("expected Waiting, got {other:?}"),
    }
}

/// Pairs a waiting applet with a console: `(applet, console, stun)` where
/// `stun` is what both were told in `Paired` (asserted equal).
pub async fn pair(node: &Node, guid: SessionGuid, token: &str) -> (Tls, Tls, String) {
    let mut applet = waiting_applet(node, guid).await;
    let mut console = node.hello(Role::Console, guid, token).await;
    let for_console = match read_msg(&mut console).await {
        ServerMsg::Paired { stun, .. } => stun,
        other => panic!("console: expected Paired, got {other:?}"),
    };
    let for_applet = loop {
        match read_msg(&mut applet).await {
            ServerMsg::Paired { stun, .. } => break stun,
            ServerMsg::Ping => {}
            other => panic!("applet: expected Paired, got {other:?}"),
        }
    };
    assert_eq!(for_console, for_applet);
    (applet, console, for_console)
}
