//! The client side of every benchmark: technician (portal), applet and
//! console (relay), and the same roles against the splice proxy.

use anyhow::{Context, Result, anyhow, bail};
use lifeline_protocol::portal::{CreateSession, Health, LoginRequest, LoginResponse, SessionInfo};
use lifeline_protocol::relay::{Hello, ServerMsg};
use lifeline_protocol::{ALPN_HTTP1, SessionGuid, hex};
use lifeline_session::addr::HostPort;
use lifeline_session::gateway_conn;
use lifeline_session::identity::SessionIdentity;
use lifeline_session::portal::PortalClient;
use lifeline_session::tls::{self, GatewayTrust};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// An outer TLS connection (to the gateway or to the splice proxy).
pub type Outer = tokio_rustls::client::TlsStream<TcpStream>;

/// Connect + TLS deadline for every benchmark connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Addresses per source block: 127.0.B.2 ..= 127.0.B.251.
pub const SOURCES_PER_BLOCK: usize = 250;

/// Source address number `i` of block `block`: `127.0.block.(2 + i)`, so
/// block 0 starts at 127.0.0.2 (127.0.0.1 is left to the portal calls).
pub fn loopback_source(block: u8, i: usize) -> IpAddr {
    let i = i % SOURCES_PER_BLOCK;
    IpAddr::V4(Ipv4Addr::new(127, 0, block, 2 + i as u8))
}

/// Connection `i`'s source among `sources` addresses that fill blocks
/// from `first_block` on (250 to a block): spreads many connections over
/// enough addresses for the gateway's per-IP limit.
pub fn spread_source(i: usize, sources: usize, first_block: u8) -> IpAddr {
    let j = i % sources.max(1);
    loopback_source(first_block + (j / SOURCES_PER_BLOCK) as u8, j)
}

/// Client configuration for the outer TLS, pinning the CA fingerprint the
/// server printed (exactly what a technician's first login does).
pub fn outer_config(fingerprint: [u8; 32], alpn: &[u8]) -> Result<Arc<ClientConfig>> {
    Ok(tls::gateway_client_config(
        &GatewayTrust::CaFingerprint(fingerprint),
        &[alpn],
    )?)
}

/// TCP from `src` (any loopback address; `None`: the kernel's choice) to
/// `dst`, with Nagle off as the product's clients do.
pub async fn tcp_from(src: Option<IpAddr>, dst: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    if let Some(ip) = src {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let s = sock.connect(dst).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// TCP + outer TLS 1.3 handshake, as `gateway_conn::connect` does but from a
/// chosen source address.
pub async fn tls_connect(
    src: Option<IpAddr>,
    dst: SocketAddr,
    config: Arc<ClientConfig>,
) -> Result<Outer> {
    let work = async {
        let tcp = tcp_from(src, dst)
            .await
            .with_context(|| format!("TCP connect {src:?} -> {dst}"))?;
        tls_over(tcp, dst, config).await
    };
    tokio::time::timeout(CONNECT_TIMEOUT, work)
        .await
        .map_err(|_| anyhow!("connect {src:?} -> {dst}: timed out"))?
}

/// The outer TLS 1.3 handshake with `dst` on `tcp`.
pub async fn tls_over(tcp: TcpStream, dst: SocketAddr, config: Arc<ClientConfig>) -> Result<Outer> {
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::from(dst.ip()), tcp)
        .await
        .with_context(|| format!("TLS handshake with {dst}"))
}

/// Applet: sends the hello (with the admission proof the real applet
/// makes from its secret) and reads until the gateway says `Waiting`.
/// Returns the address the gateway observed.
pub async fn applet_wait(s: &mut Outer, session: &BenchSession) -> Result<String> {
    let hello = gateway_conn::applet_hello(s, session.guid, &session.secret)?;
    gateway_conn::send_hello(s, &hello).await?;
    loop {
        match gateway_conn::read_server_msg(s).await? {
            ServerMsg::Waiting { observed, .. } => return Ok(observed),
            ServerMsg::Ping => {}
            other => bail!("applet expected Waiting, got {other:?}"),
        }
    }
}

/// Console: sends the hello (with the login token).
pub async fn console_hello(s: &mut Outer, guid: SessionGuid, token: &str) -> Result<()> {
    gateway_conn::send_hello(s, &Hello::console(guid, token)).await?;
    Ok(())
}

/// Either end: reads until `Paired`; returns what the gateway said then.
pub async fn await_paired(s: &mut Outer) -> Result<gateway_conn::Pairing> {
    Ok(gateway_conn::await_pairing(s, |_| {}).await?)
}

/// The splice proxy's rendezvous: the client sends a 16-byte key; the proxy
/// answers [`PROXY_WAITING`] if it is the first of the pair, and
/// [`PROXY_PAIRED`] once both are there; then bytes are copied.
pub const PROXY_WAITING: u8 = 0x00;
/// See [`PROXY_WAITING`].
pub const PROXY_PAIRED: u8 = 0x01;

/// Sends the rendezvous key and reads the proxy's first answer.
pub async fn proxy_join(s: &mut Outer, key: [u8; 16]) -> Result<u8> {
    s.write_all(&key).await?;
    s.flush().await?;
    Ok(s.read_u8().await?)
}

/// Reads until the proxy says `PROXY_PAIRED`.
pub async fn proxy_await_paired(s: &mut Outer) -> Result<()> {
    loop {
        match s.read_u8().await? {
            PROXY_PAIRED => return Ok(()),
            PROXY_WAITING => {}
            b => bail!("unexpected byte {b:#x} from the splice proxy"),
        }
    }
}

/// Inner TLS, applet end: client pinned to the console's SPKI
/// (TLS 1.3, AES-256-GCM only), exactly as `secure::applet_side` starts.
pub async fn inner_client<S>(s: S, pin: [u8; 32]) -> Result<tokio_rustls::client::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = ServerName::try_from(tls::E2E_SERVER_NAME)?;
    Ok(
        tokio_rustls::TlsConnector::from(tls::e2e_client_config(pin)?)
            .connect(name, s)
            .await?,
    )
}

/// Inner TLS, console end: server with the session certificate.
pub async fn inner_server<S>(
    s: S,
    id: &SessionIdentity,
) -> Result<tokio_rustls::server::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = tls::e2e_server_config(id.cert.clone(), id.key())?;
    Ok(tokio_rustls::TlsAcceptor::from(config).accept(s).await?)
}

/// A logged-in technician.
#[derive(Debug, Clone)]
pub struct Tech {
    /// Portal client carrying the bearer token.
    pub portal: PortalClient,
    /// The token (also the console's relay credential).
    pub token: String,
}

/// A portal client for the gateway at `addr` without a token.
pub fn portal(addr: SocketAddr, fingerprint: [u8; 32]) -> Result<PortalClient> {
    let hp = HostPort {
        host: addr.ip().to_string(),
        port: addr.port(),
    };
    Ok(PortalClient::new(
        hp,
        outer_config(fingerprint, ALPN_HTTP1)?,
    ))
}

/// `POST /api/v1/login`.
pub async fn login(
    addr: SocketAddr,
    fingerprint: [u8; 32],
    email: &str,
    password: &str,
) -> Result<Tech> {
    let anon = portal(addr, fingerprint)?;
    let resp: LoginResponse = anon
        .post(
            "/api/v1/login",
            &LoginRequest {
                email: email.into(),
                password: password.into(),
                code: None,
            },
        )
        .await
        .context("login")?;
    Ok(Tech {
        portal: anon.with_token(resp.token.clone()),
        token: resp.token,
    })
}

/// A session created for a benchmark.
#[derive(Debug, Clone, Copy)]
pub struct BenchSession {
    /// Its GUID.
    pub guid: SessionGuid,
    /// The applet secret given at creation.
    pub secret: [u8; 32],
}

/// `POST /api/v1/sessions` with this console pin and a fresh applet secret.
pub async fn create_session(
    tech: &Tech,
    pin: [u8; 32],
    label: Option<String>,
) -> Result<BenchSession> {
    let secret = crate::random::<32>()?;
    let info: SessionInfo = tech
        .portal
        .post(
            "/api/v1/sessions",
            &CreateSession {
                label,
                console_pin: hex::encode(&pin),
                applet_secret: hex::encode(&secret),
                expires_in_secs: Some(3600),
                pin: false,
                link: false,
            },
        )
        .await
        .context("creating a session")?;
    Ok(BenchSession {
        guid: info.guid,
        secret,
    })
}

/// Creates `n` sessions through the portal with `concurrency` requests in
/// flight (each request is its own TLS connection, as the portal client
/// does). The pin may be shared: the gateway only stores it.
pub async fn create_sessions(
    tech: &Tech,
    pin: [u8; 32],
    n: usize,
    concurrency: usize,
) -> Result<Vec<BenchSession>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (tech, next) = (tech.clone(), next.clone());
        workers.spawn(async move {
            let mut made = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                made.push(create_session(&tech, pin, None).await?);
            }
            anyhow::Ok(made)
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(r) = workers.join_next().await {
        all.extend(r??);
    }
    Ok(all)
}

/// `GET /api/v1/health`.
pub async fn health(portal: &PortalClient) -> Result<Health> {
    portal.get("/api/v1/health").await.context("health")
}

/// Polls health until no session is relayed (the gateway has finished
/// writing the end of every relay), or fails after `within`.
pub async fn wait_relays_closed(portal: &PortalClient, within: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let h = health(portal).await?;
        if h.relaying == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{} relays still open after {within:?}", h.relaying);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The technician every benchmark uses.
pub const BENCH_EMAIL: &str = "bench@example.com";
const BENCH_PASSWORD: &str = "bench password 1";

/// Adds the benchmark technician to `gw` and logs in.
pub async fn bench_technician(gw: &crate::procs::GatewayProc) -> Result<Tech> {
    gw.add_technician(BENCH_EMAIL, "Bench", BENCH_PASSWORD)?;
    login(gw.addr, gw.fingerprint, BENCH_EMAIL, BENCH_PASSWORD).await
}

/// A session created and paired on `gw`: an applet and a console on the
/// relay, both told `Paired`, ready for the end-to-end TLS.
#[derive(Debug)]
pub struct PairedSession {
    /// The session.
    pub session: BenchSession,
    /// The applet's relay connection.
    pub applet: Outer,
    /// The console's relay connection.
    pub console: Outer,
    /// What the gateway said on pairing (its STUN server).
    pub pairing: gateway_conn::Pairing,
}

/// Creates a session for `pin` and pairs an applet and a console on it.
pub async fn paired(
    gw: &crate::procs::GatewayProc,
    tech: &Tech,
    pin: [u8; 32],
    label: &str,
) -> Result<PairedSession> {
    // The portal refuses a second open session with one label, and a
    // bench pairs many: each gets a number.
    static PAIRED: AtomicUsize = AtomicUsize::new(1);
    let label = format!("{label} #{}", PAIRED.fetch_add(1, Ordering::Relaxed));
    let session = create_session(tech, pin, Some(label)).await?;
    let cfg = outer_config(gw.fingerprint, lifeline_protocol::ALPN_RELAY)?;
    let mut applet = tls_connect(None, gw.addr, cfg.clone()).await?;
    applet_wait(&mut applet, &session).await?;
    let mut console = tls_connect(None, gw.addr, cfg).await?;
    console_hello(&mut console, session.guid, &tech.token).await?;
    let (a, c) = tokio::join!(await_paired(&mut applet), await_paired(&mut console));
    let pairing = a.context("applet pairing")?;
    c.context("console pairing")?;
    Ok(PairedSession {
        session,
        applet,
        console,
        pairing,
    })
}
