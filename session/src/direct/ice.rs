//! ICE (webrtc-ice) as XTCP's [`DatagramPath`]: gather candidates, exchange an
//! [`IceOffer`] with the peer over any signalling channel, connect, and get
//! the agent's selected candidate pair as an [`IcePath`].
//!
//! The ICE `Conn` has only async `send`/`recv` and no backpressure of its
//! own: a sender that outruns the socket just piles up futures. Here a
//! bounded queue sits in front of it, drained by one task that awaits each
//! `send`; when the queue is full, `try_send` says `WouldBlock` and quinn
//! waits on `writable`, exactly as with a full kernel socket buffer. On the
//! receive side one task reads the `Conn` into a bounded queue, so a slow
//! reader slows the reads instead of growing memory (webrtc-ice drops what
//! does not fit its own 1 MB buffer, which the transport sees as loss).

use bytes::Bytes;
use lifeline_xtcp::path::{BoxFuture, DatagramPath};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use webrtc_ice::agent::Agent;
use webrtc_ice::agent::agent_config::AgentConfig;
use webrtc_ice::candidate::candidate_base::unmarshal_candidate;
use webrtc_ice::candidate::{Candidate, CandidateType};
use webrtc_ice::mdns::MulticastDnsMode;
use webrtc_ice::network_type::NetworkType;
use webrtc_ice::url::Url;
use webrtc_util::Conn;

/// Datagrams queued per direction.
pub const QUEUE: usize = 512;

/// The largest datagram webrtc-ice delivers whole: its receive loop reads
/// into an 8 KiB buffer, so anything larger would arrive truncated.
pub const ICE_MAX_DATAGRAM: usize = 8192;

/// Most candidates an offer may carry (a host has few interfaces; this
/// bounds what a peer can make us parse and probe).
pub const MAX_CANDIDATES: usize = lifeline_protocol::ice::MAX_CANDIDATES;

/// Why ICE failed.
#[derive(Debug, thiserror::Error)]
pub enum IceError {
    /// webrtc-ice refused or failed.
    #[error("ICE: {0}")]
    Agent(#[from] webrtc_ice::Error),
    /// The peer's offer is malformed.
    #[error("ICE offer: {0}")]
    BadOffer(String),
    /// No candidate pair worked in time.
    #[error("ICE: no candidate pair connected within {0:?}")]
    Timeout(Duration),
    /// Gathering found no candidate at all.
    #[error("ICE: no local candidates (no usable network interface)")]
    NoCandidates,
    /// Local I/O.
    #[error("ICE: {0}")]
    Io(#[from] io::Error),
}

/// What one end sends the other so they can run ICE (the wire type, so
/// that there is one of it).
pub use lifeline_protocol::ice::IceOffer;

/// How an agent gathers.
#[derive(Debug, Clone)]
pub struct IceOptions {
    /// STUN servers (`host:port`), for server-reflexive candidates.
    pub stun: Vec<SocketAddr>,
    /// Offer loopback addresses too (tests and one-machine setups).
    pub include_loopback: bool,
    /// Only offer these local addresses (`None`: every interface).
    pub only_ips: Option<Vec<std::net::IpAddr>>,
    /// How long gathering may take (STUN answers that never come).
    pub gather_timeout: Duration,
    /// Bound for path MTU discovery over the selected pair (at most
    /// [`ICE_MAX_DATAGRAM`]).
    pub max_datagram: usize,
}

impl Default for IceOptions {
    fn default() -> Self {
        Self {
            stun: Vec::new(),
            include_loopback: false,
            only_ips: None,
            gather_timeout: Duration::from_secs(3),
            max_datagram: 1452,
        }
    }
}

/// An ICE agent that has gathered its candidates. Dropping it unused
/// closes it (its sockets and tasks go).
pub struct IceAgent {
    /// `None` once [`IceAgent::connect`] has handed it to the path.
    agent: Option<Arc<Agent>>,
    max_datagram: usize,
}

impl Drop for IceAgent {
    fn drop(&mut self) {
        if let (Some(agent), Ok(rt)) = (self.agent.take(), tokio::runtime::Handle::try_current()) {
            rt.spawn(async move {
                let _ = agent.close().await;
            });
        }
    }
}

impl fmt::Debug for IceAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceAgent").finish_non_exhaustive()
    }
}

/// Which side of the ICE exchange we are (RFC 8445 roles): the controlling
/// agent nominates the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceRole {
    /// Nominates (the connecting end).
    Controlling,
    /// Follows (the accepting end).
    Controlled,
}

impl IceAgent {
    /// Creates an agent (UDP over IPv4 and IPv6; host and server-reflexive
    /// candidates; mDNS off, so no multicast socket and real addresses)
    /// and gathers its candidates. Returns it with the offer to send.
    pub async fn gather(opts: &IceOptions) -> Result<(Self, IceOffer), IceError> {
        let urls = opts
            .stun
            .iter()
            .map(|a| Url::parse_url(&format!("stun:{a}")))
            .collect::<Result<Vec<_>, _>>()?;
        let only = opts.only_ips.clone();
        let config = AgentConfig {
            urls,
            network_types: network_types(),
            candidate_types: vec![CandidateType::Host, CandidateType::ServerReflexive],
            multicast_dns_mode: MulticastDnsMode::Disabled,
            include_loopback: opts.include_loopback,
            ip_filter: Arc::new(only.map(|ips| Box::new(move |ip| ips.contains(&ip)) as Box<_>)),
            // Checks every 50 ms instead of 200 ms: a session waits on this.
            check_interval: Duration::from_millis(50),
            ..AgentConfig::default()
        };
        let agent = Arc::new(Agent::new(config).await?);
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        agent.on_candidate(Box::new(
            move |c: Option<Arc<dyn Candidate + Send + Sync>>| {
                let done = done_tx.clone();
                Box::pin(async move {
                    if c.is_none() {
                        let _ = done.send(()).await;
                    }
                })
            },
        ));
        agent.gather_candidates()?;
        // Gathering ends with a `None` candidate; a STUN server that never
        // answers is cut off by the timeout and the host candidates serve.
        let _ = tokio::time::timeout(opts.gather_timeout, done_rx.recv()).await;
        let candidates: Vec<String> = agent
            .get_local_candidates()
            .await?
            .iter()
            .map(|c| c.marshal())
            .take(MAX_CANDIDATES)
            .collect();
        if candidates.is_empty() {
            let _ = agent.close().await;
            return Err(IceError::NoCandidates);
        }
        let (ufrag, pwd) = agent.get_local_user_credentials().await;
        Ok((
            Self {
                agent: Some(agent),
                max_datagram: opts.max_datagram.clamp(1200, ICE_MAX_DATAGRAM),
            },
            IceOffer {
                ufrag,
                pwd,
                candidates,
            },
        ))
    }

    /// Runs connectivity checks against the peer's offer until a pair is
    /// selected, and returns it as a datagram path.
    pub async fn connect(
        mut self,
        role: IceRole,
        remote: &IceOffer,
        timeout: Duration,
    ) -> Result<Arc<IcePath>, IceError> {
        // Taken out, so that this value's drop does not close it: on
        // success the path owns it, on failure it is closed here.
        let agent = self
            .agent
            .take()
            .ok_or_else(|| IceError::BadOffer("agent already used".into()))?;
        let result = connect_agent(&agent, self.max_datagram, role, remote, timeout).await;
        if result.is_err() {
            let _ = agent.close().await;
        }
        result
    }
}

async fn connect_agent(
    agent: &Arc<Agent>,
    max_datagram: usize,
    role: IceRole,
    remote: &IceOffer,
    timeout: Duration,
) -> Result<Arc<IcePath>, IceError> {
    check_offer(remote)?;
    for line in &remote.candidates {
        let c = unmarshal_candidate(line)
            .map_err(|e| IceError::BadOffer(format!("candidate {line:?}: {e}")))?;
        let c: Arc<dyn Candidate + Send + Sync> = Arc::new(c);
        agent.add_remote_candidate(&c)?;
    }
    // Dropping the sender cancels; it lives until the timeout fires.
    let (_cancel_tx, cancel_rx) = mpsc::channel(1);
    let (ufrag, pwd) = (remote.ufrag.clone(), remote.pwd.clone());
    let conn: Arc<dyn Conn + Send + Sync> = match role {
        IceRole::Controlling => tokio::time::timeout(timeout, agent.dial(cancel_rx, ufrag, pwd))
            .await
            .map_err(|_| IceError::Timeout(timeout))??,
        IceRole::Controlled => tokio::time::timeout(timeout, agent.accept(cancel_rx, ufrag, pwd))
            .await
            .map_err(|_| IceError::Timeout(timeout))??,
    };
    Ok(IcePath::new(conn, Some(agent.clone()), max_datagram)?)
}

/// UDP over IPv4, and over IPv6 when this host has a routable IPv6
/// address (a link-local one alone cannot be bound without a scope, and
/// asking webrtc-ice for IPv6 then only yields warnings).
fn network_types() -> Vec<NetworkType> {
    let v6 = local_ips().iter().any(|ip| match ip {
        std::net::IpAddr::V6(a) => !a.is_loopback() && (a.segments()[0] & 0xffc0) != 0xfe80,
        std::net::IpAddr::V4(_) => false,
    });
    let mut t = vec![NetworkType::Udp4];
    if v6 {
        t.push(NetworkType::Udp6);
    }
    t
}

/// This host's interface addresses (the ones ICE gathers host candidates
/// from), without duplicates. Empty if the interfaces cannot be listed.
pub fn local_ips() -> Vec<std::net::IpAddr> {
    let mut ips = Vec::new();
    for iface in webrtc_util::ifaces::ifaces().unwrap_or_default() {
        if let Some(a) = iface.addr
            && !ips.contains(&a.ip())
        {
            ips.push(a.ip());
        }
    }
    ips
}

/// Checks an offer's shape before any of it reaches the agent (see
/// [`IceOffer::check`]).
pub fn check_offer(offer: &IceOffer) -> Result<(), IceError> {
    offer.check().map_err(|e| IceError::BadOffer(e.to_string()))
}

/// An ICE connection (the selected candidate pair) as a datagram path.
pub struct IcePath {
    tx: mpsc::Sender<Bytes>,
    rx: Mutex<mpsc::Receiver<Bytes>>,
    local: SocketAddr,
    peer: SocketAddr,
    max_datagram: usize,
    tasks: [tokio::task::AbortHandle; 2],
    /// Kept alive while the path is: closing the agent closes its sockets.
    agent: Option<Arc<Agent>>,
}

impl fmt::Debug for IcePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IcePath")
            .field("local", &self.local)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl IcePath {
    /// Wraps a connected ICE `Conn`. `max_datagram` bounds path MTU
    /// discovery (1452 for the internet; at most [`ICE_MAX_DATAGRAM`]).
    /// `agent`, if given, is closed when the path is dropped.
    pub fn new(
        conn: Arc<dyn Conn + Send + Sync>,
        agent: Option<Arc<Agent>>,
        max_datagram: usize,
    ) -> io::Result<Arc<Self>> {
        let local = conn.local_addr().map_err(io::Error::other)?;
        let peer = conn.remote_addr().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotConnected,
                "ICE conn has no remote address",
            )
        })?;
        let (tx, mut out_rx) = mpsc::channel::<Bytes>(QUEUE);
        let (in_tx, rx) = mpsc::channel::<Bytes>(QUEUE);
        let sender = {
            let conn = conn.clone();
            tokio::spawn(async move {
                while let Some(d) = out_rx.recv().await {
                    if let Err(e) = conn.send(&d).await {
                        tracing::debug!(error = %e, "ICE send failed");
                    }
                }
            })
        };
        let receiver = tokio::spawn(async move {
            let mut buf = vec![0u8; ICE_MAX_DATAGRAM];
            loop {
                match conn.recv(&mut buf).await {
                    Ok(n) => {
                        if in_tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "ICE recv ended");
                        break;
                    }
                }
            }
        });
        Ok(Arc::new(Self {
            tx,
            rx: Mutex::new(rx),
            local,
            peer,
            max_datagram: max_datagram.clamp(1200, ICE_MAX_DATAGRAM),
            tasks: [sender.abort_handle(), receiver.abort_handle()],
            agent,
        }))
    }
}

impl Drop for IcePath {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let (Some(agent), Ok(rt)) = (self.agent.take(), tokio::runtime::Handle::try_current()) {
            rt.spawn(async move {
                let _ = agent.close().await;
            });
        }
    }
}

impl DatagramPath for IcePath {
    fn try_send(&self, datagram: &[u8]) -> io::Result<()> {
        match self.tx.try_send(Bytes::copy_from_slice(datagram)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(io::ErrorKind::WouldBlock.into()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn writable(self: Arc<Self>) -> BoxFuture<io::Result<()>> {
        Box::pin(async move {
            // A reserved slot is released on drop; the next try_send takes
            // it (or another task did, and quinn simply waits again).
            self.tx
                .reserve()
                .await
                .map(drop)
                .map_err(|_| io::ErrorKind::NotConnected.into())
        })
    }

    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut rx = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        match rx.poll_recv(cx) {
            Poll::Ready(Some(d)) => {
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(None) => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn max_datagram_size(&self) -> usize {
        self.max_datagram
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
}
