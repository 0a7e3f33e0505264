//! The node: shared state, the accept loop, ALPN dispatch and shutdown.
//!
//! [`Node::prepare`] loads the data directory, opens the store and builds
//! the TLS configuration; [`Node::serve`] takes a bound listener and a
//! shutdown future (as mini-redis does), so tests can run a node on
//! `127.0.0.1:0` and stop it when they like. The STUN socket and the
//! health listener, if any, are bound by the caller too and handed to
//! `prepare`, which derives the address the node tells paired ends from
//! the STUN socket.
//!
//! A flood of connections that never finish their handshake must neither
//! exhaust the node's memory nor its file descriptors:
//! * a connection gets no TLS state until its first bytes arrive (a
//!   silent connection costs a socket and a small task, not a TLS
//!   session's buffers);
//! * the public port takes at most [`connection_cap`] connections — the
//!   open-file limit less [`FD_RESERVE`] — and closes the rest at once, so
//!   `accept` never fails for lack of descriptors and the store, the STUN
//!   socket and the health listener ([`crate::health`]) always have some.

use crate::config::Config;
use crate::datadir;
use crate::limits::{Budgets, ConnLimiter};
use crate::refusals::RefusalLog;
use crate::registry::Registry;
use crate::state::{Gateway, HEARTBEAT, Open, Phase, Stats};
use lifeline_protocol::{ALPN_H2, ALPN_HTTP1, ALPN_RELAY};
use lifeline_store::Store;
use rustls::ServerConfig;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

/// Password checks run at once (scrypt uses 32 MiB and a core each).
pub const HASH_CONCURRENCY: usize = 2;
/// Password checks that may wait for a turn; more get "busy, retry".
pub const HASH_QUEUE: usize = 16;
/// How long the login history is kept.
pub const LOGIN_HISTORY: Duration = Duration::from_secs(30 * 24 * 3600);
/// The most login-history rows kept, whatever their age.
pub const LOGIN_HISTORY_ROWS: i64 = 100_000;

/// Errors starting a node.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Data directory problem.
    #[error("data directory: {0}")]
    DataDir(#[from] datadir::DataDirError),
    /// Store problem.
    #[error("store: {0}")]
    Store(#[from] lifeline_store::StoreError),
    /// TLS configuration problem.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// Listener problem.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    /// The web certificate cannot be used.
    #[error("web certificate: {0}")]
    WebCert(String),
}

/// File descriptors the public port leaves free for everything else.
pub const FD_RESERVE: u64 = 256;

/// The most connections the public port takes at once: the open-file
/// limit (as raised at start) less [`FD_RESERVE`].
pub fn connection_cap() -> u64 {
    open_file_limit().saturating_sub(FD_RESERVE).max(64)
}

/// The process's (soft) open-file limit.
pub fn open_file_limit() -> u64 {
    rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
}

/// Connections a node is built to hold (waiting applets, mostly); below
/// this the banner names the open-file limit that stops it.
pub const CONNECTIONS_WANTED: u64 = 100_000;

/// How far the connection count must have fallen from its peak before the
/// node gives the freed memory back to the system (see
/// [`lifeline_memtrim`]): a burst's worth, not everyday churn.
pub const TRIM_AFTER_DROP: u64 = 1_000;

/// A node ready to serve.
#[derive(Debug)]
pub struct Node {
    gw: Arc<Gateway>,
    tls: Arc<ServerConfig>,
    stun: Option<UdpSocket>,
    health: Option<TcpListener>,
    phase_tx: watch::Sender<Phase>,
    stop_tx: watch::Sender<bool>,
    /// Whether the data directory was created by this start.
    pub first_run: bool,
    /// The data directory is this node's while it runs.
    _lock: datadir::DirLock,
    /// The certificates TLS clients get (the web one reloads on SIGHUP).
    pub certificates: Arc<crate::webcert::Certificates>,
}

impl Node {
    /// Loads or creates the data directory, opens (and migrates) the store.
    /// `local_addr` is where the listener is bound (to derive the advertised
    /// address when none is configured); `stun` is the bound STUN socket,
    /// if the node runs a STUN server; `health` the bound health and
    /// metrics listener, if any.
    pub async fn prepare(
        config: Config,
        local_addr: SocketAddr,
        stun: Option<UdpSocket>,
        health: Option<TcpListener>,
    ) -> Result<Self, StartError> {
        let lock = datadir::lock(&config.data_dir)?;
        let (identity, first_run) = datadir::open(
            &config.data_dir,
            config.operator_name.as_deref(),
            &config.public_names,
        )?;
        // The embedded store's file is the operator's alone, as the keys
        // next to it are (SQLite would create it with the umask's mode).
        if let Some(path) = sqlite_file(&config.store_url) {
            private_file(&path)?;
        }
        let store = Store::open(&config.store_url).await?;
        let node_name = config
            .node_name
            .clone()
            .unwrap_or_else(|| identity.node_name.clone());
        let advertise =
            config
                .advertise
                .clone()
                .unwrap_or_else(|| match config.public_names.first() {
                    Some(name) => format!("{name}:{}", local_addr.port()),
                    None if local_addr.ip().is_unspecified() => {
                        format!("127.0.0.1:{}", local_addr.port())
                    }
                    None => local_addr.to_string(),
                });
        // The ends reach STUN at the same host as the relay: whatever name
        // or address the operator advertises for this node is the one that
        // works from outside. Only the port is the STUN socket's own.
        let stun_addr = match &stun {
            Some(s) => crate::stun::advertised(&advertise, s.local_addr()?.port()),
            None => String::new(),
        };
        let provider = lifeline_tls::outer_provider();
        let certificates = Arc::new(
            crate::webcert::Certificates::new(
                identity.chain.clone(),
                identity.node_key.clone_key(),
                config.web_cert.clone(),
                provider.clone(),
            )
            .map_err(StartError::WebCert)?,
        );
        let mut tls = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_cert_resolver(certificates.clone());
        tls.alpn_protocols = vec![ALPN_RELAY.to_vec(), ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
        // Waiting applets are the bulk of connections; no session tickets
        // or resumption state need to be held for them.
        tls.send_tls13_tickets = 0;
        // A paired relay takes its connections' keys from rustls and
        // turns records around in place (`relay::record`).
        tls.enable_secret_extraction = true;

        let (phase_tx, phase) = watch::channel(Phase::Running);
        let (stop_tx, stop_relays) = watch::channel(false);
        let gw = Gateway {
            conns: ConnLimiter::new(config.max_conns_per_ip),
            budgets: Budgets::new(config.max_bad_attempts_per_minute),
            refusals: RefusalLog::default(),
            hasher: crate::auth::PasswordHasher::new(HASH_CONCURRENCY, HASH_QUEUE),
            registry: Registry::new(),
            stats: Stats::default(),
            metrics: crate::metrics::Metrics::new(),
            work_capped: Default::default(),
            config,
            identity,
            node_name,
            advertise,
            stun: stun_addr,
            store,
            phase,
            stop_relays,
        };
        recover(&gw).await?;
        // Known before the banner says the node is up: its metrics are
        // right from the first scrape.
        gw.stats
            .connection_cap
            .store(connection_cap(), Ordering::Relaxed);
        Ok(Self {
            gw: Arc::new(gw),
            tls: Arc::new(tls),
            stun,
            health,
            phase_tx,
            stop_tx,
            first_run,
            _lock: lock,
            certificates,
        })
    }

    /// Shared state (for printing the banner).
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gw
    }

    /// Serves until `shutdown` completes, then drains: stops accepting,
    /// releases waiting applets, gives relayed sessions the drain timeout
    /// to finish — or less, if `hurry` completes first (a second Ctrl-C):
    /// what is still relayed then is cut and recorded as such — and closes
    /// the store.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        hurry: impl Future<Output = ()>,
    ) -> Result<(), StartError> {
        let gw = self.gw.clone();
        let heartbeat = tokio::spawn(heartbeat_loop(gw.clone()));
        let endings = tokio::spawn(hear_endings(gw.clone()));
        let waiting_check = tokio::spawn(crate::relay::waiting_check::run(gw.clone()));
        // STUN stops with the listener, at the shutdown signal (the phase
        // turning to Draining): draining sessions keep their relay, and a
        // node restarted in the meantime can bind the port at once.
        let stun = self.stun.map(|socket| {
            let mut phase = gw.phase.clone();
            let counted = gw.clone();
            tokio::spawn(crate::stun::serve(
                socket,
                move || counted.metrics.stun_request(),
                async move {
                    let _ = phase.wait_for(|p| *p == Phase::Draining).await;
                },
            ))
        });

        // Health and metrics answer until the very end, draining included.
        let (health_stop, health_stopped) = tokio::sync::oneshot::channel::<()>();
        let health = self.health.map(|listener| {
            tokio::spawn(crate::health::serve(gw.clone(), listener, async move {
                let _ = health_stopped.await;
            }))
        });

        let cap = gw.stats.connection_cap.load(Ordering::Relaxed);
        let acceptor = tokio_rustls::TlsAcceptor::from(self.tls.clone());
        let mut accept_errors = crate::refusals::Throttle::new(Duration::from_secs(10));
        let mut shed_log = crate::refusals::Throttle::new(Duration::from_secs(60));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                res = listener.accept() => match res {
                    Ok((tcp, peer)) => {
                        if gw.stats.connections.load(Ordering::Relaxed) >= cap {
                            gw.metrics.refused(crate::metrics::Refusal::AtCap);
                            // Closed at once: the descriptor goes back now,
                            // and the reserve stays for the store, STUN and
                            // health.
                            drop(tcp);
                            let shed = gw.stats.shed.fetch_add(1, Ordering::Relaxed) + 1;
                            if let Some(since) = shed_log.due() {
                                tracing::warn!(%peer, cap, shed_total = shed, since_last = since,
                                    "at the connection cap: closing new connections at once");
                            }
                            continue;
                        }
                        let now_open = gw.stats.connections.fetch_add(1, Ordering::Relaxed) + 1;
                        gw.stats.peak_connections.fetch_max(now_open, Ordering::Relaxed);
                        let open = Open(gw.clone());
                        let acceptor = acceptor.clone();
                        tokio::spawn(handle_connection(open, acceptor, tcp, peer));
                    }
                    Err(e) => {
                        // Out of file descriptors and similar: back off
                        // instead of spinning, and say so once in a while,
                        // not once per failure.
                        if let Some(n) = accept_errors.due() {
                            tracing::warn!(error = %e, failures = n, "accept failed");
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = &mut shutdown => break,
            }
        }
        drop(listener);
        let relaying = gw.stats.relaying.load(Ordering::Relaxed);
        tracing::info!(
            relaying,
            drain_secs = gw.config.drain_timeout.as_secs(),
            "shutting down: no new connections; waiting up to {} s for {relaying} relayed \
             session(s) to finish (a second Ctrl-C or SIGTERM stops at once)",
            gw.config.drain_timeout.as_secs()
        );
        let _ = self.phase_tx.send(Phase::Draining);
        if let Some(stun) = stun {
            let _ = stun.await;
        }
        let deadline = tokio::time::Instant::now() + gw.config.drain_timeout;
        tokio::pin!(hurry);
        while gw.stats.relaying.load(Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
                () = &mut hurry => {
                    tracing::warn!(
                        relaying = gw.stats.relaying.load(Ordering::Relaxed),
                        "stopping at once: the sessions still relayed are cut (recorded; their \
                         ends can resume them on another node)"
                    );
                    break;
                }
            }
        }
        let _ = self.stop_tx.send(true);
        // Give stopped relays, and the released waiting applets, a moment
        // to write their audit records before the store closes.
        let grace = tokio::time::Instant::now() + Duration::from_secs(3);
        while (gw.stats.relaying.load(Ordering::Relaxed) > 0
            || gw.stats.connections.load(Ordering::Relaxed) > 0)
            && tokio::time::Instant::now() < grace
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        heartbeat.abort();
        endings.abort();
        waiting_check.abort();
        gw.refusals.flush_all();
        let _ = health_stop.send(());
        if let Some(h) = health {
            let _ = h.await;
        }
        gw.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The file of a `sqlite:` store URL (not an in-memory one).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split_once('?').map_or(rest, |(p, _)| p);
    (path != ":memory:" && !path.is_empty()).then(|| path.into())
}

/// Makes `path` (created empty if missing) readable by its owner only.
fn private_file(path: &std::path::Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    drop(f);
    Ok(())
}

/// Gives the memory of a burst of connections back to the system once the
/// burst has gone (the allocator would otherwise keep it resident for good).
fn release_memory_after_a_burst(stats: &Stats) {
    let now = stats.connections.load(Ordering::Relaxed);
    let peak = stats.peak_connections.load(Ordering::Relaxed);
    if peak.saturating_sub(now) >= TRIM_AFTER_DROP {
        stats.peak_connections.store(now, Ordering::Relaxed);
        let released = lifeline_memtrim::release_free_memory();
        tracing::info!(
            peak,
            now,
            released,
            "connection burst over; freed memory returned to the system"
        );
    }
}

/// Brings the store in line with a node that (re)starts: what its previous
/// run left behind is put right before the node says it is listening.
async fn recover(gw: &Gateway) -> Result<(), StartError> {
    let now = lifeline_protocol::time::now_ms();
    let reset = gw.store.reset_node_sessions(&gw.node_name).await?;
    if reset > 0 {
        tracing::info!(
            sessions = reset,
            "sessions from before the restart are waiting for their applets again"
        );
    }
    // Sessions this node was relaying when it stopped without closing
    // them (a crash, kill -9): their relay is gone. They are interrupted —
    // their ends reconnect and resume them within the resume window.
    let why = format!("gateway node {} stopped while relaying it", gw.node_name);
    let interrupted = gw.store.interrupt_node_relays(&gw.node_name, now).await?;
    for guid in &interrupted {
        // The relay's byte counters reached the store while it ran
        // (every few seconds), so the record says what it carried.
        let bytes = match gw.store.session(guid).await {
            Ok(Some(r)) => format!(
                "; relayed {} bytes applet→console, {} bytes console→applet \
                 (as last counted, at most {} s before the stop)",
                r.bytes_applet_to_console,
                r.bytes_console_to_applet,
                crate::relay::COUNTER_FLUSH.as_secs()
            ),
            _ => String::new(),
        };
        crate::relay::audit(
            gw,
            Some(guid),
            "gateway",
            "interrupted",
            &format!("{why}{bytes}; its ends may resume it"),
        )
        .await;
    }
    if !interrupted.is_empty() {
        tracing::warn!(
            sessions = interrupted.len(),
            "sessions relayed when this node last stopped are interrupted until their ends resume them"
        );
    }
    // Sessions that had gone direct keep running without us: their ends
    // talk to each other, not to this node. They are left `direct` (not
    // reset: a reset would let a second applet take the GUID while the
    // first one is still in session), only noted as no longer relayed,
    // and end when the console says so or when they expire.
    let unrelayed = gw.store.mark_node_relays_closed(&gw.node_name, now).await?;
    if unrelayed > 0 {
        tracing::info!(
            sessions = unrelayed,
            "direct sessions relayed before the restart continue without the relay"
        );
    }
    gw.store
        .node_started(&gw.node_name, &gw.advertise, now)
        .await?;
    Ok(())
}

/// Ends the sessions interrupted longer than the resume window ago; an
/// applet still waiting for one on this node is told at once.
async fn end_unresumed(gw: &Gateway, now: i64) {
    let window = gw.config.resume_window;
    let reason = format!("interrupted and not resumed within {} s", window.as_secs());
    match gw
        .store
        .end_unresumed(now - window.as_millis() as i64, &reason, now)
        .await
    {
        Ok(ended) => {
            for guid in ended {
                gw.registry.session_ended(&guid);
                crate::relay::audit(gw, Some(&guid), "gateway", "ended", &reason).await;
                tracing::info!(%guid, "{reason}");
            }
        }
        Err(e) => tracing::warn!(error = %e, "ending unresumed sessions failed"),
    }
}

/// Tells an applet waiting on this node at once when its session ends on
/// another node (PostgreSQL; on SQLite every ending is this node's own).
/// Should the listening fail, the node's check of its waiting applets
/// still finds the ending, within `relay::waiting_check::CHECK_EVERY`.
async fn hear_endings(gw: Arc<Gateway>) {
    let mut endings = loop {
        match gw.store.watch_endings().await {
            Ok(Some(e)) => break e,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for session endings; retrying");
                tokio::time::sleep(HEARTBEAT).await;
            }
        }
    };
    loop {
        match endings.next().await {
            Ok(guid) => gw.registry.session_ended(&guid),
            Err(e) => {
                // The listener reconnects on the next call.
                tracing::warn!(error = %e, "listening for session endings failed; reconnecting");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Heartbeats between two retention runs (an hour).
const RETENTION_EVERY: u64 = 3600 / HEARTBEAT.as_secs();

async fn heartbeat_loop(gw: Arc<Gateway>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    let mut beats: u64 = 0;
    loop {
        tick.tick().await;
        let now = lifeline_protocol::time::now_ms();
        let started = std::time::Instant::now();
        match gw.store.heartbeat(&gw.node_name, &gw.advertise, now).await {
            Ok(()) => gw.metrics.store_query("heartbeat", started.elapsed()),
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
        if let Err(e) = gw.store.purge_expired_tokens(now).await {
            tracing::warn!(error = %e, "token purge failed");
        }
        end_unresumed(&gw, now).await;
        release_memory_after_a_burst(&gw.stats);
        // Retention: at start, then once an hour.
        if let Some(age) = gw.config.retention
            && beats.is_multiple_of(RETENTION_EVERY)
        {
            match crate::admin::prune_now(&gw.store, age, now, "retention").await {
                Ok(what) => tracing::info!("retention: deleted {what}"),
                Err(e) => tracing::warn!(error = %e, "retention: pruning failed"),
            }
        }
        // Once a minute: refusal summaries, and the login history trimmed.
        if beats.is_multiple_of(6) {
            gw.refusals.flush();
            let before = now - LOGIN_HISTORY.as_millis() as i64;
            if let Err(e) = gw
                .store
                .purge_login_attempts(before, LOGIN_HISTORY_ROWS)
                .await
            {
                tracing::warn!(error = %e, "login history purge failed");
            }
        }
        beats += 1;
    }
}

/// One TCP connection: per-source limit, TLS within the handshake
/// deadline, then the relay protocol or the portal by ALPN.
use crate::metrics::Refusal;

async fn handle_connection(
    open: Open,
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
) {
    let gw = open.0.clone();
    let open = Some(open);
    let Some(_slot) = gw.conns.acquire(peer.ip()) else {
        gw.metrics.refused(Refusal::PerIpLimit);
        tracing::debug!(%peer, "too many connections from this address");
        return;
    };
    let _ = tcp.set_nodelay(true);
    let deadline = tokio::time::Instant::now() + gw.config.handshake_timeout;
    // No TLS state (its buffers are most of a pending connection's cost)
    // until the client has sent something. A peek, not `readable()`: tokio
    // reports a fresh socket readable before anything has arrived.
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, tcp.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => {}
        Ok(_) => return,
        Err(_) => {
            gw.metrics.refused(Refusal::HandshakeDeadline);
            tracing::debug!(%peer, "nothing sent within the handshake deadline");
            return;
        }
    }
    // The handshake and what follows are boxed: a task's future is as large
    // as its largest state, and the relay's and the portal's are many KiB
    // — which every pending connection would otherwise hold from accept on.
    let handshake = Box::pin(tokio::time::timeout_at(deadline, acceptor.accept(tcp)));
    // The protocol handler is built and boxed in a statement of its own, so
    // that neither the TLS stream nor the unboxed handler keeps space in
    // this task's future while the handler runs.
    let serve: Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>> = match handshake.await {
        Ok(Ok(tls)) => {
            let protocol = match tls.get_ref().1.alpn_protocol() {
                Some(ALPN_RELAY) => Some("relay"),
                Some(ALPN_H2) => Some("portal_h2"),
                Some(ALPN_HTTP1) | None => Some("portal_http1"),
                Some(_) => None,
            };
            match protocol {
                Some(p) => gw.metrics.accepted(p),
                None => gw.metrics.refused(Refusal::BadAlpn),
            }
            match protocol {
                Some("relay") => Some(Box::pin(crate::relay::handle(
                    gw.clone(),
                    tls,
                    peer,
                    deadline,
                    open,
                ))),
                Some(p) => Some(Box::pin(crate::portal::serve_connection(
                    gw.clone(),
                    tls,
                    peer,
                    p == "portal_h2",
                    deadline,
                ))),
                None => None,
            }
        }
        Ok(Err(e)) => {
            gw.metrics.refused(Refusal::TlsFailed);
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            gw.metrics.refused(Refusal::HandshakeDeadline);
            tracing::debug!(%peer, "handshake deadline passed");
            None
        }
    };
    if let Some(serve) = serve {
        serve.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What every pending connection holds before its first byte: the
    /// task's future, which must stay small (the handshake and the
    /// protocol handlers are boxed, allocated only when used). Measured
    /// on a future that is never built: only its type matters.
    #[test]
    #[allow(unreachable_code, clippy::diverging_sub_expression)]
    fn a_pending_connection_task_is_small() {
        let never = if std::hint::black_box(false) {
            Some(handle_connection(
                unreachable!(),
                unreachable!(),
                unreachable!(),
                unreachable!(),
            ))
        } else {
            None
        };
        let size = std::mem::size_of_val(&never);
        eprintln!("a pending connection's task: {size} bytes");
        assert!(size <= 1024, "a pending connection's task is {size} bytes");
    }
}
