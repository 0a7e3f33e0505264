//! Going direct (step 6 of a session in `ARCHITECTURE.md`): finding a path between the two ends that
//! bypasses the gateway, securing it, and proving it belongs to this
//! session. The cutover itself is the session core's ([`crate::core`]).
//!
//! * [`tcp`] — the applet listens and offers addresses; the console dials.
//! * [`ice`] — the ICE agent (webrtc-ice) finds a UDP pair; then each end
//!   leaves it for a socket of its own on the same port, which quinn drives.
//! * [`udp`] — ICE with the gateway as STUN server, then XTCP.
//! * [`birthday`] — the NAT probe, and the birthday punch for one end
//!   behind a symmetric NAT, which ICE cannot cross.
//! * [`bind`] — TLS on the new path and the binding proofs.
//!
//! [`Negotiator`] runs the exchange for one end: it takes the peer's
//! negotiation frames, runs the attempts in tasks, and reports
//! [`DirectEvent`]s — frames to send over the current link, proven paths,
//! attempts that failed. The console decides which proven path the session
//! moves to (its [`lifeline_protocol::e2e::Control::Switch`] names it);
//! the applet follows.
//!
//! Timeline with the default policy: right after the end-to-end TLS, the
//! console sends its [`Policy`]; the applet listens and offers its TCP
//! addresses, and at once gathers ICE candidates and sends its ICE offer.
//! The console dials the TCP addresses and, in parallel, answers the ICE
//! offer; both run ICE and XTCP over the selected pair. The two attempts
//! race, and TCP is preferred: a UDP path that is ready first is held
//! until every TCP attempt has failed or TCP's head start
//! ([`Policy::udp_after`], 10 s from the offer) is over, and dropped if
//! TCP wins. So a session is on UDP the moment TCP is known to fail,
//! with ICE already done. (An applet from before the race waits out the
//! head start before ICE, or until the console says every TCP attempt
//! failed, [`Negotiation::UdpNow`], which the console still sends.)

pub mod bind;
pub mod birthday;
pub mod ice;
pub mod tcp;
pub mod udp;

use crate::identity::SessionIdentity;
use crate::link::{Path, PathKind};
use ice::{IceAgent, IceOffer};
use lifeline_protocol::SessionGuid;
use lifeline_protocol::e2e::Negotiation;
use lifeline_protocol::proof::EXPORTER_LEN;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Why a direct path could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    /// Nothing of this kind could be reached.
    #[error("{0}")]
    Unavailable(String),
    /// Something answered but failed TLS or the binding proof.
    #[error("refused: {0}")]
    Refused(String),
    /// Local TLS configuration.
    #[error(transparent)]
    Setup(#[from] crate::tls::TlsSetupError),
}

/// Which end we are, with what that end needs to secure a path.
#[derive(Clone)]
pub enum Side {
    /// The applet: accepts only the console's pinned certificate.
    Applet {
        /// SPKI SHA-256 of the console's session certificate.
        console_pin: [u8; 32],
    },
    /// The console: presents the session certificate.
    Console {
        /// The session's key pair and certificate.
        identity: Arc<SessionIdentity>,
    },
}

impl std::fmt::Debug for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Applet { .. } => "Applet",
            Side::Console { .. } => "Console",
        })
    }
}

/// The two ends of one relayed session, as a new path must prove them.
#[derive(Debug)]
pub struct Ends {
    /// The session.
    pub guid: SessionGuid,
    /// The relayed session's TLS exporter: the key of the binding proofs.
    pub relayed_exporter: [u8; EXPORTER_LEN],
    /// Us.
    pub side: Side,
}

/// Which direct paths an end will try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Direct TCP.
    pub tcp: bool,
    /// ICE over UDP carrying XTCP.
    pub udp: bool,
    /// How long direct TCP gets before ICE starts (when both are on).
    pub udp_after: Duration,
}

impl Policy {
    /// The default head start of direct TCP over ICE.
    pub const DEFAULT_UDP_AFTER: Duration = Duration::from_secs(10);

    /// `auto` (TCP, then UDP), `relay` (stay), `tcp` or `udp` (only that).
    pub fn parse(name: &str, udp_after: Duration) -> Result<Self, String> {
        let (tcp, udp) = match name {
            "auto" => (true, true),
            "relay" => (false, false),
            "tcp" => (true, false),
            "udp" => (false, true),
            other => {
                return Err(format!(
                    "unknown path {other:?}: use auto, relay, tcp or udp"
                ));
            }
        };
        Ok(Self {
            tcp,
            udp,
            udp_after,
        })
    }

    /// The default: TCP first, UDP after 10 s.
    pub fn auto() -> Self {
        Self {
            tcp: true,
            udp: true,
            udp_after: Self::DEFAULT_UDP_AFTER,
        }
    }

    /// What both ends allow (the console's head start for TCP).
    pub fn and(self, other: Policy) -> Policy {
        Policy {
            tcp: self.tcp && other.tcp,
            udp: self.udp && other.udp,
            udp_after: self.udp_after,
        }
    }

    /// The name [`Policy::parse`] takes.
    pub fn name(self) -> &'static str {
        match (self.tcp, self.udp) {
            (true, true) => "auto",
            (false, false) => "relay",
            (true, false) => "tcp",
            (false, true) => "udp",
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self::auto()
    }
}

/// One end's settings for going direct.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// What this end allows.
    pub policy: Policy,
    /// Applet: the TCP port to listen on (0: any; a fixed port is what a
    /// router's port forward needs).
    pub tcp_port: u16,
    /// The gateway's STUN server, for ICE.
    pub stun: Option<SocketAddr>,
    /// Applet: our public address as the gateway saw it.
    pub observed: Option<IpAddr>,
    /// Offer loopback addresses and candidates (both ends on one machine,
    /// which is the case when the gateway is on loopback).
    pub loopback: bool,
    /// Console: how long to stay on the relay before trying to go direct
    /// (0 by default; more is for troubleshooting and for watching a
    /// cutover in the middle of a transfer).
    pub start_after: Duration,
}

/// Resolves the STUN server the gateway named in `Paired` (`host:port`);
/// `None` if there is none or it does not resolve (ICE then offers host
/// candidates only).
pub async fn resolve_stun(stun: Option<&str>) -> Option<SocketAddr> {
    let stun = stun?;
    match tokio::net::lookup_host(stun).await {
        Ok(mut addrs) => addrs.next(),
        Err(e) => {
            tracing::warn!(%stun, error = %e, "STUN server does not resolve");
            None
        }
    }
}

/// What the negotiation asks of the session loop.
#[derive(Debug)]
pub enum DirectEvent {
    /// Send this negotiation frame to the peer over the current link.
    Send(Negotiation),
    /// A secured, proven path.
    Ready(Path),
    /// The attempt for this kind of path is over without a path.
    Failed(PathKind, String),
}

/// The going-direct exchange of one end.
pub struct Negotiator {
    ends: Arc<Ends>,
    settings: Settings,
    tx: mpsc::Sender<DirectEvent>,
    rx: mpsc::Receiver<DirectEvent>,
    tasks: Vec<tokio::task::AbortHandle>,
    /// Applet: the gathered agent, waiting for the console's ICE offer.
    agent: Arc<Mutex<Option<IceAgent>>>,
    /// Console: whether the applet's ICE offer came.
    ice_offer_seen: Arc<std::sync::atomic::AtomicBool>,
    /// Console: how direct TCP is doing, and when its head start ends.
    tcp: tokio::sync::watch::Sender<TcpAttempt>,
    /// Where the peer's NAT kind goes, for this end's birthday punch.
    peer_nat: Option<tokio::sync::oneshot::Sender<(bool, SocketAddr)>>,
    stopped: bool,
}

impl std::fmt::Debug for Negotiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Negotiator")
            .field("side", &self.ends.side)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Drop for Negotiator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How long the console waits for the applet's ICE offer beyond the
/// policy's head start for TCP.
pub const ICE_OFFER_WAIT: Duration = Duration::from_secs(15);

impl Negotiator {
    /// A negotiator for `ends` with this end's `settings`.
    pub fn new(ends: Arc<Ends>, settings: Settings) -> Self {
        let (tx, rx) = mpsc::channel(16);
        let head_start = settings.policy.udp_after;
        Self {
            ends,
            settings,
            tx,
            rx,
            tasks: Vec::new(),
            agent: Arc::new(Mutex::new(None)),
            ice_offer_seen: Arc::default(),
            tcp: tokio::sync::watch::Sender::new(TcpAttempt::Trying {
                until: tokio::time::Instant::now() + head_start,
            }),
            peer_nat: None,
            stopped: false,
        }
    }

    /// What to send first: the console's policy (the applet waits for it).
    pub fn start(&self) -> Option<Negotiation> {
        match self.ends.side {
            Side::Console { .. } => {
                let p = self.settings.policy;
                Some(Negotiation::PathPolicy {
                    tcp: p.tcp,
                    udp: p.udp,
                    udp_after_ms: u32::try_from(p.udp_after.as_millis()).unwrap_or(u32::MAX),
                })
            }
            Side::Applet { .. } => None,
        }
    }

    /// The next event. Cancel-safe.
    pub async fn next(&mut self) -> DirectEvent {
        match self.rx.recv().await {
            Some(e) => e,
            // We hold a sender ourselves, so this never ends.
            None => std::future::pending().await,
        }
    }

    /// Stops every attempt (the session has moved, or is ending): the
    /// listener closes, ICE agents close, losing connections drop.
    pub fn stop(&mut self) {
        self.stopped = true;
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Ok(mut a) = self.agent.lock() {
            a.take();
        }
    }

    fn spawn<F>(&mut self, f: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.push(tokio::spawn(f).abort_handle());
    }

    fn fail(&self, kind: PathKind, why: impl Into<String>) {
        let _ = self.tx.try_send(DirectEvent::Failed(kind, why.into()));
    }

    /// Takes a negotiation frame from the peer.
    pub async fn on_frame(&mut self, frame: Negotiation) {
        if self.stopped {
            return;
        }
        match (&self.ends.side, frame) {
            (
                Side::Applet { .. },
                Negotiation::PathPolicy {
                    tcp,
                    udp,
                    udp_after_ms,
                },
            ) => {
                let asked = Policy {
                    tcp,
                    udp,
                    udp_after: Duration::from_millis(u64::from(udp_after_ms)),
                };
                self.applet_offer(asked.and(self.settings.policy)).await;
            }
            (Side::Console { .. }, Negotiation::PathOffer { tcp, udp, note }) => {
                self.console_on_offer(tcp, udp, note);
            }
            // For an applet from before the race, which waits for it; this
            // one has started ICE already.
            (Side::Applet { .. }, Negotiation::UdpNow) => {}
            (_, Negotiation::NatKind { hard, addr }) => {
                if let Some(to) = self.peer_nat.take() {
                    let _ = to.send((hard, addr));
                }
            }
            (Side::Console { .. }, Negotiation::IceOffer(remote)) => {
                self.ice_offer_seen
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                if remote.candidates.is_empty() {
                    self.fail(
                        PathKind::XtcpUdp,
                        "the end user's side found no ICE candidates",
                    );
                    return;
                }
                let (ends, tx, settings) =
                    (self.ends.clone(), self.tx.clone(), self.settings.clone());
                let tcp = self.tcp.subscribe();
                self.spawn(async move {
                    let r = async {
                        let (agent, offer) = udp::gather(settings.stun, settings.loopback).await?;
                        let _ = tx
                            .send(DirectEvent::Send(Negotiation::IceOffer(offer)))
                            .await;
                        udp::connect(agent, &remote, &ends).await
                    }
                    .await;
                    let event = match r {
                        Ok(path) => match prefer_tcp(path, tcp).await {
                            Some(path) => DirectEvent::Ready(path),
                            None => {
                                tracing::info!("direct TCP won the race; the UDP path is closed");
                                return;
                            }
                        },
                        Err(e) => DirectEvent::Failed(PathKind::XtcpUdp, e.to_string()),
                    };
                    let _ = tx.send(event).await;
                });
            }
            (Side::Applet { .. }, Negotiation::IceOffer(remote)) => {
                let agent = self.agent.lock().ok().and_then(|mut a| a.take());
                let Some(agent) = agent else {
                    tracing::info!("ICE offer from the console before ours; ignored");
                    return;
                };
                let (ends, tx) = (self.ends.clone(), self.tx.clone());
                self.spawn(async move {
                    let r = udp::connect(agent, &remote, &ends).await;
                    let _ = tx.send(ready_or_failed(PathKind::XtcpUdp, r)).await;
                });
            }
            (_, other) => {
                tracing::debug!(frame = ?other, "negotiation frame not for this side; ignored");
            }
        }
    }

    /// Applet: listen and offer TCP, and schedule ICE, as `policy` allows.
    async fn applet_offer(&mut self, policy: Policy) {
        let mut notes = Vec::new();
        if !self.settings.policy.tcp {
            notes.push("direct TCP is turned off on the end user's side");
        }
        if !self.settings.policy.udp {
            notes.push("UDP is turned off on the end user's side");
        }
        let mut addrs = Vec::new();
        if policy.tcp {
            match tcp::listen(self.settings.tcp_port).await {
                Ok(listener) => {
                    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
                    addrs = tcp::offer_addrs(port, self.settings.observed, self.settings.loopback);
                    tracing::info!(?addrs, "direct TCP: listening");
                    let (ends, tx) = (self.ends.clone(), self.tx.clone());
                    self.spawn(tcp::accept_paths(listener, ends, tx));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "direct TCP: cannot listen");
                    notes.push("the end user's side could not listen for TCP");
                }
            }
        }
        let _ = self
            .tx
            .send(DirectEvent::Send(Negotiation::PathOffer {
                tcp: addrs.clone(),
                udp: policy.udp,
                note: notes.join("; "),
            }))
            .await;
        if policy.udp {
            self.start_punch();
            // ICE starts at once, racing TCP: the console, which decides,
            // prefers TCP (see the module's doc).
            let (tx, slot, settings) = (self.tx.clone(), self.agent.clone(), self.settings.clone());
            self.spawn(async move {
                let frame = match udp::gather(settings.stun, settings.loopback).await {
                    Ok((agent, offer)) => {
                        if let Ok(mut s) = slot.lock() {
                            *s = Some(agent);
                        }
                        // If the console's offer never comes, the agent's
                        // sockets do not stay open for the whole session.
                        let slot = slot.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(ICE_OFFER_WAIT).await;
                            if let Ok(mut s) = slot.lock() {
                                s.take();
                            }
                        });
                        Negotiation::IceOffer(offer)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "ICE gathering failed");
                        Negotiation::IceOffer(IceOffer {
                            ufrag: String::new(),
                            pwd: String::new(),
                            candidates: Vec::new(),
                        })
                    }
                };
                let _ = tx.send(DirectEvent::Send(frame)).await;
            });
        }
    }

    /// Both ends, when UDP is tried: learn this end's NAT kind and tell the
    /// peer; when one end's NAT is hard and the other's easy, punch by the
    /// birthday paradox ([`birthday`]) alongside ICE. A punched path is a
    /// UDP path like ICE's (the console still prefers TCP); whichever is
    /// ready first is taken, the other closed.
    fn start_punch(&mut self) {
        let Some(stun) = self.settings.stun else {
            return;
        };
        let (to_us, peer) = tokio::sync::oneshot::channel();
        self.peer_nat = Some(to_us);
        let (ends, tx, tcp) = (self.ends.clone(), self.tx.clone(), self.tcp.subscribe());
        self.spawn(async move {
            let Some(probe) = birthday::probe(stun).await else {
                return;
            };
            tracing::info!(
                hard = probe.hard,
                "NAT probe: this end's NAT maps {}",
                if probe.hard {
                    "anew per destination"
                } else {
                    "the same for every destination"
                }
            );
            let kind = Negotiation::NatKind {
                hard: probe.hard,
                addr: probe.mapped,
            };
            let _ = tx.send(DirectEvent::Send(kind)).await;
            let Ok(Ok(peer)) = tokio::time::timeout(ICE_OFFER_WAIT, peer).await else {
                return;
            };
            // Both easy: ICE's to find. Both hard: nobody's.
            if probe.hard == peer.0 {
                return;
            }
            match udp::punch(probe, peer, &ends).await {
                Ok(path) => {
                    let path = match ends.side {
                        Side::Console { .. } => prefer_tcp(path, tcp).await,
                        Side::Applet { .. } => Some(path),
                    };
                    if let Some(path) = path {
                        let _ = tx.send(DirectEvent::Ready(path)).await;
                    }
                }
                Err(e) => tracing::info!(error = %e, "birthday punch failed"),
            }
        });
    }

    /// Console: dial the offered addresses; expect the applet's ICE offer.
    fn console_on_offer(&mut self, tcp: Vec<SocketAddr>, udp: bool, note: String) {
        let mine = self.settings.policy;
        let because = |what: &str| {
            if note.is_empty() {
                what.to_owned()
            } else {
                format!("{what} ({note})")
            }
        };
        self.tcp.send_replace(TcpAttempt::Trying {
            until: tokio::time::Instant::now() + mine.udp_after,
        });
        if !mine.tcp {
            self.tcp.send_replace(TcpAttempt::Failed);
            self.fail(PathKind::DirectTcp, "direct TCP not tried (path policy)");
        } else if tcp.is_empty() {
            self.tcp.send_replace(TcpAttempt::Failed);
            self.fail(
                PathKind::DirectTcp,
                because("the end user's side offered no TCP address"),
            );
        } else {
            let (ends, tx, state) = (self.ends.clone(), self.tx.clone(), self.tcp.clone());
            let udp_follows = mine.udp && udp;
            self.spawn(async move {
                let r = tcp::dial(tcp, ends).await;
                state.send_replace(if r.is_ok() {
                    TcpAttempt::Won
                } else {
                    TcpAttempt::Failed
                });
                if r.is_err() && udp_follows {
                    // An applet from before the race starts ICE only now.
                    let _ = tx.send(DirectEvent::Send(Negotiation::UdpNow)).await;
                }
                let _ = tx.send(ready_or_failed(PathKind::DirectTcp, r)).await;
            });
        }
        if !mine.udp {
            self.fail(PathKind::XtcpUdp, "UDP not tried (path policy)");
        } else if !udp {
            self.fail(
                PathKind::XtcpUdp,
                because("the end user's side does not do UDP"),
            );
        } else {
            self.start_punch();
            // The applet starts ICE at once (one from before the race,
            // after TCP's head start); if its offer never comes, give up
            // on UDP rather than wait forever.
            let wait = mine.udp_after + ICE_OFFER_WAIT;
            let (tx, seen) = (self.tx.clone(), self.ice_offer_seen.clone());
            self.spawn(async move {
                tokio::time::sleep(wait).await;
                if !seen.load(std::sync::atomic::Ordering::SeqCst) {
                    let _ = tx
                        .send(DirectEvent::Failed(
                            PathKind::XtcpUdp,
                            "no ICE offer came from the end user's side".into(),
                        ))
                        .await;
                }
            });
        }
    }
}

/// Console: where direct TCP stands, for the UDP attempt racing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TcpAttempt {
    /// Still dialling; TCP is preferred until `until` (its head start).
    Trying { until: tokio::time::Instant },
    /// Every TCP attempt failed, or none was made.
    Failed,
    /// A TCP path is ready: the session takes it.
    Won,
}

/// Console: holds a ready UDP path while direct TCP may still win. `None`
/// if it did (the path is dropped, which closes it).
async fn prefer_tcp(path: Path, mut tcp: tokio::sync::watch::Receiver<TcpAttempt>) -> Option<Path> {
    loop {
        let state = *tcp.borrow_and_update();
        match state {
            TcpAttempt::Won => return None,
            TcpAttempt::Failed => return Some(path),
            TcpAttempt::Trying { until } => {
                if tokio::time::Instant::now() >= until {
                    return Some(path);
                }
                tracing::info!("UDP path ready while direct TCP is still trying: held");
                tokio::select! {
                    () = tokio::time::sleep_until(until) => return Some(path),
                    r = tcp.changed() => if r.is_err() {
                        return Some(path);
                    },
                }
            }
        }
    }
}

fn ready_or_failed(kind: PathKind, r: Result<Path, DirectError>) -> DirectEvent {
    match r {
        Ok(p) => DirectEvent::Ready(p),
        Err(e) => DirectEvent::Failed(kind, e.to_string()),
    }
}
