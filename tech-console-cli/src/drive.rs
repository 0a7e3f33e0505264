//! One session from the console's side, whoever shows it: find the
//! session, meet the end user through the gateway, run the end-to-end
//! handshake, then the live session with remote work — and report every
//! happening as an [`Update`]. Line mode, batch mode and the full-screen
//! console each only show updates and send [`Controls`].

use crate::portal::{Portals, portal, resolve};
use crate::profile::Profile;
use anyhow::Context;
use lifeline_protocol::e2e::EndedBy;
use lifeline_protocol::portal::{
    AcceptTransfer, EndSession, OfferTransfer, PathReport, PickSession, PickedSession, SessionInfo,
    WorkReport,
};
use lifeline_protocol::relay::Hello;
use lifeline_protocol::{ALPN_RELAY, SessionGuid, hex};
use lifeline_remote::console::{ConsoleWork, FINISH_WAIT, Input as WorkInput, Notice, Request};
use lifeline_remote::flow::Outbound;
use lifeline_session::addr::HostPort;
use lifeline_session::direct::{Policy, Settings, Side};
use lifeline_session::gateway_conn;
use lifeline_session::live::{self, Command, Event, PathChange, Traffic};
use lifeline_session::secure;
use lifeline_session::tls::{GatewayTrust, gateway_client_config};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How to run the session's paths (the `connect` flags).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Which direct paths to try.
    pub policy: Policy,
    /// How long to stay on the relay before going direct at all.
    pub start_after: Duration,
    /// Silence after which a path counts as lost.
    pub dead_path: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            start_after: Duration::ZERO,
            dead_path: lifeline_session::core::DEAD_PATH,
        }
    }
}

/// What happened in the session, in order.
#[derive(Debug)]
pub enum Update {
    /// Found: its GUID and label.
    Found {
        /// The session.
        guid: SessionGuid,
        /// Its label ("" if none).
        label: String,
    },
    /// The end user's applet is not connected yet; waiting for it on
    /// `node`. `state` is the session's state at the portal.
    Waiting {
        /// The node.
        node: String,
        /// `created`, `paired`, ….
        state: String,
    },
    /// The gateway paired us with the applet on `node`.
    Paired {
        /// The session.
        guid: SessionGuid,
        /// The node.
        node: String,
    },
    /// The end-to-end channel is up; both ends show this code.
    Secured {
        /// The verification code.
        sas: String,
    },
    /// A session event (chat, path, round trip, link test…; remote
    /// work's own events come as [`Update::Work`]).
    Event(Event),
    /// Remote work has something to show.
    Work(Notice),
    /// The session is over.
    Ended {
        /// `user`, `technician`, `refused` or `lost`.
        by: String,
        /// Why.
        reason: String,
        /// It ended as it should (not lost to an error).
        clean: bool,
    },
    /// It could not start (the session is unknown, the gateway refused…).
    Failed(String),
    /// Handing the session to a colleague, or taking it from one.
    Handing(Handing),
}

/// Where handing a session over got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handing {
    /// Offered to this colleague (e-mail); they accept from their console.
    Offered(String),
    /// The offer was withdrawn.
    Withdrawn,
    /// The colleague accepted: the end user's program is told their key.
    Accepted(String),
    /// An offer could not be made or completed (why).
    Refused(String),
    /// This console accepted the session from a colleague (e-mail): it
    /// waits until their console has handed it over.
    Taking(String),
}

/// The technician's hands on the session. Commands sent before
/// [`Update::Secured`] wait until it.
#[derive(Debug, Clone)]
pub struct Controls {
    /// Chat, end, link tests, probes.
    pub session: mpsc::UnboundedSender<Command>,
    /// Remote work.
    pub work: mpsc::UnboundedSender<WorkInput>,
    /// Payload moved each way.
    pub traffic: Arc<Traffic>,
    /// Offers to hand the session to a colleague (`None`: withdraw).
    pub handing: mpsc::UnboundedSender<Option<String>>,
}

impl Controls {
    /// Sends a session command; false if the session is over.
    pub fn command(&self, c: Command) -> bool {
        self.session.send(c).is_ok()
    }

    /// Sends a remote-work request; false if the session is over.
    pub fn request(&self, r: Request) -> bool {
        self.work.send(WorkInput::Request(r)).is_ok()
    }

    /// Offers the session to the colleague with this e-mail (`None`
    /// withdraws the offer); false if the session is over.
    pub fn hand_to(&self, to: Option<String>) -> bool {
        self.handing.send(to).is_ok()
    }
}

/// Starts the session `target` (a GUID or label) on its own task.
/// Updates come on the receiver until [`Update::Ended`] or
/// [`Update::Failed`], which is the last.
pub fn start(
    profile: Profile,
    target: Target,
    options: Options,
) -> (Controls, mpsc::UnboundedReceiver<Update>) {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (work_tx, work_rx) = mpsc::unbounded_channel();
    let (up_tx, up_rx) = mpsc::unbounded_channel();
    let traffic = Arc::new(Traffic::default());
    let (handing_tx, handing_rx) = mpsc::unbounded_channel();
    let controls = Controls {
        session: cmd_tx.clone(),
        work: work_tx.clone(),
        traffic: traffic.clone(),
        handing: handing_tx,
    };
    tokio::spawn(async move {
        let wiring = Wiring {
            cmd_tx,
            cmd_rx,
            work_tx,
            work_rx,
            traffic,
            handing: handing_rx,
            updates: up_tx.clone(),
        };
        if let Err(e) = run(&profile, &target, options, wiring).await {
            let _ = up_tx.send(Update::Failed(lifeline_clidocs::one_line(e.as_ref())));
        }
    });
    (controls, up_rx)
}

/// The channels [`run`] works with.
struct Wiring {
    cmd_tx: mpsc::UnboundedSender<Command>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    work_tx: mpsc::UnboundedSender<WorkInput>,
    work_rx: mpsc::UnboundedReceiver<WorkInput>,
    traffic: Arc<Traffic>,
    handing: mpsc::UnboundedReceiver<Option<String>>,
    updates: mpsc::UnboundedSender<Update>,
}

/// Which session to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One of the technician's sessions, or one in their group's queue
    /// (which this picks), by GUID or label.
    Session(String),
    /// The end user who has waited longest in the group's queue.
    Next,
}

/// The session `target` names, picked from the group's queue first if it
/// is there (a channel's end user).
async fn find(
    profile: &Profile,
    login: &crate::profile::Login,
    client: &lifeline_session::portal::PortalClient,
    target: &Target,
) -> anyhow::Result<SessionInfo> {
    match target {
        Target::Next => pick(profile, client, None).await,
        Target::Session(t) => {
            let info = resolve(client, t).await?;
            if info.channel.is_some() && info.technician.is_empty() {
                pick(profile, client, Some(info.guid)).await
            } else if info.technician != login.email
                && info.transfer.as_ref().is_some_and(|o| o.to == login.email)
            {
                accept(profile, client, &info).await
            } else {
                Ok(info)
            }
        }
    }
}

/// Accepts a session a colleague offers this technician, with a fresh
/// console identity (never the colleague's).
async fn accept(
    profile: &Profile,
    client: &lifeline_session::portal::PortalClient,
    info: &SessionInfo,
) -> anyhow::Result<SessionInfo> {
    let path = format!("/api/v1/sessions/{}/accept", info.guid);
    take_with_fresh_key(profile, client, &path, |console_pin| AcceptTransfer {
        console_pin,
    })
    .await
}

/// Takes a session with a fresh console identity: `body` carries its key
/// (hex) to `path`, whose answer is the session and its applet secret;
/// both are kept in the profile as `session new` keeps its own.
async fn take_with_fresh_key<B: serde::Serialize>(
    profile: &Profile,
    client: &lifeline_session::portal::PortalClient,
    path: &str,
    body: impl FnOnce(String) -> B,
) -> anyhow::Result<SessionInfo> {
    let identity = lifeline_session::identity::SessionIdentity::generate("Lifeline session")?;
    let taken: PickedSession = client
        .post(path, &body(hex::encode(&identity.pin())))
        .await?;
    profile.save_session(
        &crate::profile::LocalSession {
            guid: taken.session.guid,
            label: taken.session.label.clone(),
            applet_secret: taken.applet_secret,
        },
        &identity,
    )?;
    Ok(taken.session)
}

/// How often a console looks for the colleague's answer to its offer, and
/// for an offer made from another command (`session transfer`).
const HANDING_POLL: Duration = Duration::from_secs(1);
const OFFER_POLL: Duration = Duration::from_secs(3);
/// How long a console that accepted a session waits for it to be handed.
const TAKING_WAIT: Duration = Duration::from_secs(600);

/// Waits until the colleague's console has handed the session over and
/// the end user's program is back at the gateway, waiting for us.
async fn await_handover(
    client: &lifeline_session::portal::PortalClient,
    login: &crate::profile::Login,
    guid: SessionGuid,
) -> anyhow::Result<SessionInfo> {
    let deadline = tokio::time::Instant::now() + TAKING_WAIT;
    loop {
        let info: SessionInfo = client.get(&format!("/api/v1/sessions/{guid}")).await?;
        let ours = info.technician == login.email;
        if info.state == "ended" {
            anyhow::bail!("the session ended before it was handed over");
        }
        if ours && info.state == "waiting" {
            return Ok(info);
        }
        if !ours && info.transfer.as_ref().is_none_or(|o| o.to != login.email) {
            anyhow::bail!("the colleague withdrew the offer");
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "the colleague's console did not hand the session over within 10 minutes"
            );
        }
        tokio::time::sleep(HANDING_POLL).await;
    }
}

/// The holder's side of handing over: makes the technician's offers, and
/// once the colleague accepted (seen at the portal, whichever command
/// made the offer) tells the end user's program their key inside the
/// end-to-end channel.
async fn offer_and_watch(
    portals: Portals,
    guid: SessionGuid,
    secret: [u8; 32],
    mut asks: mpsc::UnboundedReceiver<Option<String>>,
    session: mpsc::UnboundedSender<Command>,
    say: impl Fn(Update),
) {
    let path = format!("/api/v1/sessions/{guid}");
    let mut told: Option<String> = None;
    let mut offered: Option<String> = None;
    let mut asks_open = true;
    loop {
        let wait = if offered.is_some() {
            HANDING_POLL
        } else {
            OFFER_POLL
        };
        tokio::select! {
            ask = asks.recv(), if asks_open => {
                let Some(to) = ask else {
                    asks_open = false;
                    continue;
                };
                let offer = OfferTransfer {
                    applet_secret: to.as_ref().map(|_| hex::encode(&secret)),
                    to: to.clone(),
                };
                let r: Result<SessionInfo, _> =
                    portals.post(&format!("{path}/transfer"), &offer).await;
                match (r, to) {
                    (Ok(_), Some(to)) => {
                        offered = Some(to.clone());
                        told = None;
                        say(Update::Handing(Handing::Offered(to)));
                    }
                    (Ok(_), None) => {
                        offered = None;
                        say(Update::Handing(Handing::Withdrawn));
                    }
                    (Err(e), _) => say(Update::Handing(Handing::Refused(e.to_string()))),
                }
            }
            () = tokio::time::sleep(wait) => {
                let Ok((_, info)) = portals.get::<SessionInfo>(&path).await else {
                    continue;
                };
                offered = info.transfer.as_ref().map(|o| o.to.clone());
                let Some(offer) = info.transfer else { continue };
                let Some(pin) = offer.console_pin.as_deref().and_then(hex::decode_array::<32>) else {
                    continue;
                };
                // Once per accepted key (accepted again from another
                // console of theirs: that one's key is told).
                if told.as_deref() == offer.console_pin.as_deref() {
                    continue;
                }
                told = offer.console_pin.clone();
                say(Update::Handing(Handing::Accepted(offer.to.clone())));
                let _ = session.send(Command::Handover {
                    console_pin: pin,
                    technician: if offer.to_name.is_empty() { offer.to } else { offer.to_name },
                });
            }
        }
    }
}

/// Takes an end user from the group's queue with a fresh console identity,
/// kept in the profile as `session new` keeps its own.
async fn pick(
    profile: &Profile,
    client: &lifeline_session::portal::PortalClient,
    guid: Option<SessionGuid>,
) -> anyhow::Result<SessionInfo> {
    take_with_fresh_key(profile, client, "/api/v1/sessions/pick", |console_pin| {
        PickSession { guid, console_pin }
    })
    .await
}

async fn run(
    profile: &Profile,
    target: &Target,
    options: Options,
    w: Wiring,
) -> anyhow::Result<()> {
    let up = w.updates.clone();
    let say = move |u: Update| {
        let _ = up.send(u);
    };
    let (login, client) = portal(profile)?;
    let mut info = find(profile, &login, &client, target).await?;
    let guid = info.guid;
    say(Update::Found {
        guid,
        label: info.label.clone(),
    });
    // A session not created here cannot be joined: said before waiting.
    profile.load_session(&guid)?;
    if info.technician != login.email && info.transfer.is_some() {
        say(Update::Handing(Handing::Taking(info.technician.clone())));
        info = await_handover(&client, &login, guid).await?;
    }

    // The applet waits on one node; connect there (the portal says which).
    let node_addr = match &info.waiting_node_addr {
        Some(a) => HostPort::parse(a, 8443)?,
        None => profile.gateway(&login)?,
    };
    if info.state != "waiting" {
        say(Update::Waiting {
            node: node_addr.to_string(),
            state: info.state.clone(),
        });
    }
    let tls = gateway_client_config(&GatewayTrust::Ca(profile.gateway_ca()?), &[ALPN_RELAY])?;
    let mut stream =
        gateway_conn::connect(&node_addr, tls.clone(), Duration::from_secs(15)).await?;
    gateway_conn::send_hello(&mut stream, &Hello::console(guid, &login.token)).await?;
    let gateway_is_local = gateway_conn::gateway_is_local(&stream);
    let pairing = gateway_conn::await_pairing(&mut stream, |_| {}).await?;
    say(Update::Paired {
        guid,
        node: node_addr.to_string(),
    });
    // Read now, not before waiting: the applet may have been fetched
    // again meanwhile (`session applet`), with a new secret.
    let (local, identity) = profile.load_session(&guid)?;
    let identity = Arc::new(identity);
    let secret =
        hex::decode_array::<32>(&local.applet_secret).context("stored applet secret is damaged")?;
    let portals = Portals::discover(profile, &login, &client).await?;
    let est = match secure::console_side(stream, guid, &identity, secret).await {
        Ok(e) => e,
        Err(e) => {
            end_in_portal(&portals, &guid, &format!("end-to-end setup failed: {e}")).await;
            return Err(e.into());
        }
    };
    say(Update::Secured {
        sas: est.sas.clone(),
    });

    let setup = live::Setup {
        me: EndedBy::Technician,
        guid,
        side: Side::Console {
            identity: identity.clone(),
        },
        direct: Settings {
            policy: options.policy,
            stun: lifeline_session::direct::resolve_stun(pairing.stun.as_deref()).await,
            loopback: gateway_is_local,
            start_after: options.start_after,
            ..Settings::default()
        },
        on_path: Some(path_hook(portals.clone(), guid)),
        scheduling: Default::default(),
        reconnect: Some(reconnector(Rejoin {
            portals: portals.clone(),
            tls,
            guid,
            token: login.token.clone(),
            identity: identity.clone(),
            secret,
        })),
        dead_path: options.dead_path,
        traffic: w.traffic.clone(),
    };
    let (ev_tx, mut ev_rx) = mpsc::channel(64);
    // Remote work: its own task; what it shows goes out like every other
    // update, and what it records goes to the gateway's audit trail.
    let (notices_tx, mut notices) = mpsc::unbounded_channel::<Notice>();
    let (audit_tx, mut audit) = mpsc::unbounded_channel::<WorkReport>();
    let (work, reports, notes) =
        ConsoleWork::new(Outbound::new(w.cmd_tx.clone()), notices_tx, audit_tx);
    let work_task = tokio::spawn(work.run(w.work_rx, reports, notes));
    let up = w.updates.clone();
    let shower = tokio::spawn(async move {
        while let Some(n) = notices.recv().await {
            let _ = up.send(Update::Work(n));
        }
    });
    let audit_portals = portals.clone();
    let recorder = tokio::spawn(async move {
        while let Some(a) = audit.recv().await {
            // A failure is logged there; the session goes on.
            let _ = crate::portal::report_work(&audit_portals, &guid, &a).await;
        }
    });
    let mut session = tokio::spawn(live::run(est, setup, w.cmd_rx, ev_tx));
    let up = w.updates.clone();
    let handing = tokio::spawn(offer_and_watch(
        portals.clone(),
        guid,
        secret,
        w.handing,
        w.cmd_tx.clone(),
        move |u| {
            let _ = up.send(u);
        },
    ));
    let (handed_tx, handed_rx) = tokio::sync::oneshot::channel::<()>();
    let mut handed_tx = Some(handed_tx);
    let (up, work_tx) = (w.updates.clone(), w.work_tx);
    let router = tokio::spawn(async move {
        while let Some(ev) = ev_rx.recv().await {
            match ev {
                ev @ (Event::Work(_)
                | Event::ChannelOpened { .. }
                | Event::ChannelData { .. }
                | Event::ChannelClosed { .. }
                | Event::ChannelReset { .. }
                | Event::ChannelSent { .. }) => {
                    let _ = work_tx.send(WorkInput::Event(ev));
                }
                Event::HandedOver => {
                    if let Some(tx) = handed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                ev => {
                    if let Event::Resumed { fresh } = ev {
                        let _ = work_tx.send(WorkInput::Event(Event::Resumed { fresh }));
                    }
                    let _ = up.send(Update::Event(ev));
                }
            }
        }
        // The session is over. Remote work finishes now, not when the
        // last sender of its inputs goes: the controls hold one until the
        // console has shown the end, which waits for remote work.
        let _ = work_tx.send(WorkInput::Over);
    });
    let result = tokio::select! {
        r = &mut session => r,
        Ok(()) = handed_rx => {
            // The end user's program took the colleague's key: the
            // session is theirs once the gateway records it, and this
            // console leaves without ending it.
            let done = complete_handover(&portals, guid).await;
            handing.abort();
            match done {
                Ok(to) => {
                    session.abort();
                    let _ = router.await;
                    profile.forget_session(&guid);
                    say(Update::Ended {
                        by: "handover".into(),
                        reason: format!("handed over to {to}"),
                        clean: true,
                    });
                    return Ok(());
                }
                Err(e) => {
                    say(Update::Handing(Handing::Refused(e)));
                    session.await
                }
            }
        }
    };
    handing.abort();
    let _ = router.await;
    // What remote work still had to say and record goes out first (it
    // finishes within `FINISH_WAIT`; the bounds are for a stuck one).
    let _ = tokio::time::timeout(FINISH_WAIT + Duration::from_secs(1), work_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), shower).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), recorder).await;
    let (by, reason, clean) = match result {
        Ok(Ok(o)) => (o.by.as_str().to_owned(), o.reason, true),
        Ok(Err(e)) => ("lost".to_owned(), e.to_string(), false),
        Err(e) => ("lost".to_owned(), e.to_string(), false),
    };
    end_in_portal(&portals, &guid, &format!("ended by {by}: {reason}")).await;
    profile.forget_session(&guid);
    say(Update::Ended { by, reason, clean });
    Ok(())
}

/// The gateway hears of a path change before the relay closes (so the
/// relay closing is not taken for the end of the session).
fn path_hook(portals: Portals, guid: SessionGuid) -> live::PathHook {
    Arc::new(move |change: PathChange| {
        let client = portals.clone();
        Box::pin(async move {
            let report = PathReport {
                path: change.kind.as_str().to_owned(),
                rtt_ms: change.rtt.map(|r| r.as_secs_f64() * 1e3),
                // The portal refuses longer details; a refused report
                // would leave the gateway thinking the relay's end is
                // the session's.
                detail: lifeline_protocol::codec::clamp_str(
                    &change.detail,
                    lifeline_protocol::portal::MAX_PATH_DETAIL,
                )
                .to_owned(),
            };
            let r: Result<SessionInfo, _> = client
                .post(&format!("/api/v1/sessions/{guid}/path"), &report)
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "could not record the path change");
            }
        })
    })
}

/// What the console needs to meet the end user again.
struct Rejoin {
    /// Where to ask where the applet waits.
    portals: Portals,
    tls: Arc<rustls::ClientConfig>,
    guid: SessionGuid,
    token: String,
    identity: Arc<lifeline_session::identity::SessionIdentity>,
    secret: [u8; 32],
}

/// Longest pause between the console's attempts to meet the end user again.
const REJOIN_BACKOFF: Duration = Duration::from_secs(5);

/// How the session meets the end user again after its path died: ask the
/// portal where the applet waits, connect there, be paired, and run the
/// end-to-end handshake — until it works, or the session is over.
fn reconnector(r: Rejoin) -> live::Reconnector {
    let r = Arc::new(r);
    Arc::new(move || {
        let r = r.clone();
        Box::pin(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match rejoin_once(&r).await {
                    Ok(path) => return Ok(path),
                    Err(Rejoined::Over(why)) => return Err(why),
                    Err(Rejoined::Retry(why)) => {
                        tracing::info!(%why, "the end user is not back yet; trying again");
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(REJOIN_BACKOFF);
            }
        })
    })
}

enum Rejoined {
    /// Worth trying again.
    Retry(String),
    /// The session cannot go on.
    Over(String),
}

async fn rejoin_once(r: &Rejoin) -> Result<live::RelayPath, Rejoined> {
    let retry = |e: &dyn std::fmt::Display| Rejoined::Retry(e.to_string());
    let path = format!("/api/v1/sessions/{}", r.guid);
    let (portal_node, info): (HostPort, SessionInfo) =
        r.portals.get(&path).await.map_err(|e| retry(&e))?;
    if info.state == "ended" {
        return Err(Rejoined::Over("the session has ended".into()));
    }
    if info.state == "paired" {
        // The gateway may not know yet that this relay is gone (its node
        // died): say so, so the applet may wait for us again anywhere.
        let said: Result<SessionInfo, _> = r
            .portals
            .post(
                &format!("{path}/interrupted"),
                &EndSession {
                    reason: "the console lost its relay connection and is reconnecting".into(),
                },
            )
            .await;
        if let Err(e) = said {
            tracing::info!(error = %e, "could not record the interruption");
        }
    }
    let node = match &info.waiting_node_addr {
        Some(a) if info.state == "waiting" => HostPort::parse(a, 8443).map_err(|e| retry(&e))?,
        _ => portal_node,
    };
    let mut stream = gateway_conn::connect(&node, r.tls.clone(), Duration::from_secs(15))
        .await
        .map_err(|e| retry(&e))?;
    gateway_conn::send_hello(&mut stream, &Hello::console(r.guid, &r.token))
        .await
        .map_err(|e| retry(&e))?;
    match gateway_conn::await_pairing(&mut stream, |_| {}).await {
        Ok(_) => {}
        Err(gateway_conn::LinkError::Refused { code, message })
            if code.session_is_over()
                || code == lifeline_protocol::relay::RefuseCode::NotAuthorized =>
        {
            return Err(Rejoined::Over(message));
        }
        Err(e) => return Err(retry(&e)),
    }
    let est = secure::console_side(stream, r.guid, &r.identity, r.secret)
        .await
        .map_err(|e| retry(&e))?;
    Ok(live::relay_path(est))
}

/// Records at the gateway that the session is handed over (a few tries:
/// the end user's program already expects the colleague). The new
/// holder's e-mail, or why it could not be recorded.
async fn complete_handover(portals: &Portals, guid: SessionGuid) -> Result<String, String> {
    let mut last = String::new();
    for _ in 0..5 {
        let r: Result<SessionInfo, _> = portals
            .post(&format!("/api/v1/sessions/{guid}/handed-over"), &())
            .await;
        match r {
            Ok(info) => return Ok(info.technician),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(format!("the handover could not be recorded: {last}"))
}

async fn end_in_portal(client: &Portals, guid: &SessionGuid, reason: &str) {
    let r: Result<SessionInfo, _> = client
        .post(
            &format!("/api/v1/sessions/{guid}/end"),
            &EndSession {
                reason: reason.to_owned(),
            },
        )
        .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "could not record the end of the session");
    }
}
