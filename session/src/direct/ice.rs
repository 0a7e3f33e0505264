//! ICE (webrtc-ice) finds the UDP path; then the ends leave it: gather
//! candidates, exchange an [`IceOffer`] with the peer over any signalling
//! channel, run the connectivity checks, and hand the selected pair to
//! XTCP as a plain UDP socket ([`UdpPath`]) that quinn drives itself.
//!
//! # Why the ICE connection is left
//! webrtc-ice's `Conn` carries one datagram per `send`/`recv` future, with
//! a copy and a task hop each way and no backpressure, and it owns the
//! socket. XTCP over it moved 20–35 MB/s where the relay moved 100–200.
//! So once a pair is selected, each end closes its agent and binds a
//! socket of its own to the same local port ([`leave_ice`]): the NATs on
//! the way keep their mappings (they are keyed by addresses and ports,
//! not by sockets), and quinn batches datagrams through it (GSO/GRO).
//! ICE's consent checks end with the agent; XTCP's authenticated
//! keepalives and dead-path timeout do that job from then on (a peer that
//! stops answering ends the path within [`XtcpConfig::dead_after`]).
//!
//! Leaving is a two-step handshake, because an end must not close its
//! agent while the peer still needs its answers to finish ICE: each end
//! says DONE through its agent until it hears DONE (or UP) from the peer;
//! then it rebinds and says UP from its own socket until it hears UP.
//! Both waits are bounded; QUIC's handshake retries cover a lost marker.
//!
//! [`XtcpConfig::dead_after`]: lifeline_xtcp::XtcpConfig::dead_after

use lifeline_xtcp::UdpPath;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
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

/// The largest datagram a direct UDP path probes for: 64 KiB, the most
/// a UDP datagram carries (XTCP caps its own use below that).
pub const MAX_DATAGRAM: usize = 65_527;

/// What path MTU discovery probes up to by default: a 1500-byte internet
/// path less IPv6 and UDP headers.
pub const DEFAULT_MAX_DATAGRAM: usize = 1452;

/// "My ICE is done": sent through the agent. Its first byte is 0, so it is
/// neither STUN (no magic cookie at bytes 4–8) nor QUIC (the fixed bit is
/// clear): the agent hands it to its reader, and quinn drops it.
const DONE: &[u8; 16] = b"\0lifeline ice ok";
/// "My own socket is up": sent from the rebound socket.
const UP: &[u8; 16] = b"\0lifeline-own-up";
/// How often the markers repeat while unanswered.
const MARK_EVERY: Duration = Duration::from_millis(20);
/// How long each step of leaving ICE waits for the peer's marker.
const LEAVE_WAIT: Duration = Duration::from_secs(1);
/// How long a closed agent's port may take to come free (its tasks let
/// go of the socket as they see the close).
const REBIND_WAIT: Duration = Duration::from_secs(2);

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
    /// [`MAX_DATAGRAM`]).
    pub max_datagram: usize,
}

impl Default for IceOptions {
    fn default() -> Self {
        Self {
            stun: Vec::new(),
            include_loopback: false,
            only_ips: None,
            gather_timeout: Duration::from_secs(3),
            max_datagram: DEFAULT_MAX_DATAGRAM,
        }
    }
}

/// The UDP path ICE found, on a socket of this end's own.
#[derive(Debug)]
pub struct IcePath {
    /// The socket on the selected pair's local port, connected to the
    /// peer's address on the pair.
    pub path: UdpPath,
    /// Our address as the peer sees it: the selected local candidate (a
    /// host address, or the NAT's mapping of one).
    pub local: SocketAddr,
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
                max_datagram: opts.max_datagram.clamp(1200, MAX_DATAGRAM),
            },
            IceOffer {
                ufrag,
                pwd,
                candidates,
            },
        ))
    }

    /// Runs connectivity checks against the peer's offer until a pair is
    /// selected, leaves ICE, and returns the pair as a UDP socket of this
    /// end's own on the same port, connected to the peer.
    pub async fn connect(
        mut self,
        role: IceRole,
        remote: &IceOffer,
        timeout: Duration,
    ) -> Result<IcePath, IceError> {
        // Taken out, so that this value's drop does not close it: on
        // success the path owns it, on failure it is closed here.
        let agent = self
            .agent
            .take()
            .ok_or_else(|| IceError::BadOffer("agent already used".into()))?;
        let result = connect_agent(&agent, role, remote, timeout).await;
        match result {
            Ok(conn) => leave_ice(agent, conn, self.max_datagram).await,
            Err(e) => {
                let _ = agent.close().await;
                Err(e)
            }
        }
    }
}

async fn connect_agent(
    agent: &Arc<Agent>,
    role: IceRole,
    remote: &IceOffer,
    timeout: Duration,
) -> Result<Arc<dyn Conn + Send + Sync>, IceError> {
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
    Ok(conn)
}

/// Leaves ICE for a socket of our own on the selected pair's local port
/// (see the module's doc). Closes the agent in every case.
async fn leave_ice(
    agent: Arc<Agent>,
    conn: Arc<dyn Conn + Send + Sync>,
    max_datagram: usize,
) -> Result<IcePath, IceError> {
    let selected = agent
        .get_selected_candidate_pair()
        .map(|pair| {
            let base = base_address(&*pair.local)?;
            Ok::<_, IceError>((base, pair.remote.addr(), pair.local.addr()))
        })
        .transpose();
    // Step 1: keep the agent answering until the peer's ICE is done too.
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let heard = tokio::time::timeout(LEAVE_WAIT, async {
        let mut tick = tokio::time::interval(MARK_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => { let _ = conn.send(DONE).await; }
                r = conn.recv(&mut buf) => match r {
                    Ok(n) if &buf[..n] == DONE || &buf[..n] == UP => return,
                    Ok(_) => {}
                    // The agent closed under us: nothing more to hear.
                    Err(_) => return,
                },
            }
        }
    })
    .await;
    if heard.is_err() {
        tracing::debug!("the peer's ICE-done marker never came; leaving ICE anyway");
    }
    // The socket closes when the last reference to it goes: the agent's,
    // its connection's (through the selected pair) and its tasks' (which
    // end on close). `rebind` waits for that.
    drop(conn);
    let _ = agent.close().await;
    drop(agent);
    let (base, peer, local) =
        selected?.ok_or_else(|| IceError::Io(io::ErrorKind::NotConnected.into()))?;
    // Step 2: our own socket on the same port; say so until the peer does.
    let socket = rebind(base).await?;
    socket.connect(peer).await?;
    let heard = tokio::time::timeout(LEAVE_WAIT, async {
        let mut tick = tokio::time::interval(MARK_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => { let _ = socket.send(UP).await; }
                // Errors (an ICMP refusal while the peer's socket was not
                // yet bound) and stray ICE checks are ignored.
                r = socket.recv(&mut buf) => match r {
                    Ok(n) if &buf[..n] == UP => {
                        // Ours may all have gone before its socket was up.
                        let _ = socket.send(UP).await;
                        return;
                    }
                    // QUIC (the first byte's fixed or long-header bit):
                    // the peer heard us and has started XTCP already. This
                    // packet is lost; QUIC sends it again.
                    Ok(n) if n > 0 && buf[0] & 0xc0 != 0 => return,
                    _ => {}
                },
            }
        }
    })
    .await;
    if heard.is_err() {
        tracing::debug!("the peer's socket-up marker never came; starting XTCP anyway");
    }
    tracing::debug!(%base, %peer, "left ICE for our own socket");
    Ok(IcePath {
        path: UdpPath::new(socket, max_datagram)?,
        local,
    })
}

/// The address our side of the pair was bound to: a host candidate's own
/// address; a server-reflexive candidate's base (webrtc-ice binds those to
/// the unspecified address and records the port as the related address).
fn base_address(local: &(dyn Candidate + Send + Sync)) -> Result<SocketAddr, IceError> {
    match local.candidate_type() {
        CandidateType::Host => Ok(local.addr()),
        _ => {
            let rel = local.related_address().ok_or_else(|| {
                IceError::BadOffer("the selected local candidate has no base".into())
            })?;
            let ip = rel
                .address
                .parse()
                .map_err(|_| IceError::BadOffer(format!("base address {:?}", rel.address)))?;
            Ok(SocketAddr::new(ip, rel.port))
        }
    }
}

/// Binds `addr` once the closed agent has let go of it.
async fn rebind(addr: SocketAddr) -> Result<tokio::net::UdpSocket, IceError> {
    let deadline = tokio::time::Instant::now() + REBIND_WAIT;
    loop {
        match tokio::net::UdpSocket::bind(addr).await {
            Ok(s) => return Ok(s),
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
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
