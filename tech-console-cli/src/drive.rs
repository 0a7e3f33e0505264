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
    EndSession, PathReport, PickSession, PickedSession, SessionInfo, WorkReport,
};
use lifeline_protocol::relay::Hello;
use lifeline_protocol::{ALPN_RELAY, SessionGuid, hex};
use lifeline_remote::console::{ConsoleWork, Input as WorkInput, Notice, Request};
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
    let controls = Controls {
        session: cmd_tx.clone(),
        work: work_tx.clone(),
        traffic: traffic.clone(),
    };
    tokio::spawn(async move {
        let wiring = Wiring {
            cmd_tx,
            cmd_rx,
            work_tx,
            work_rx,
            traffic,
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
    client: &lifeline_session::portal::PortalClient,
    target: &Target,
) -> anyhow::Result<SessionInfo> {
    match target {
        Target::Next => pick(profile, client, None).await,
        Target::Session(t) => {
            let info = resolve(client, t).await?;
            if info.channel.is_some() && info.technician.is_empty() {
                pick(profile, client, Some(info.guid)).await
            } else {
                Ok(info)
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
    let identity = lifeline_session::identity::SessionIdentity::generate("Lifeline session")?;
    let picked: PickedSession = client
        .post(
            "/api/v1/sessions/pick",
            &PickSession {
                guid,
                console_pin: hex::encode(&identity.pin()),
            },
        )
        .await?;
    profile.save_session(
        &crate::profile::LocalSession {
            guid: picked.session.guid,
            label: picked.session.label.clone(),
            applet_secret: picked.applet_secret,
        },
        &identity,
    )?;
    Ok(picked.session)
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
    let info = find(profile, &client, target).await?;
    let guid = info.guid;
    say(Update::Found {
        guid,
        label: info.label.clone(),
    });
    // A session not created here cannot be joined: said before waiting.
    profile.load_session(&guid)?;

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
    let session = tokio::spawn(live::run(est, setup, w.cmd_rx, ev_tx));
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
                ev => {
                    if let Event::Resumed { fresh } = ev {
                        let _ = work_tx.send(WorkInput::Event(Event::Resumed { fresh }));
                    }
                    let _ = up.send(Update::Event(ev));
                }
            }
        }
    });
    let result = session.await;
    let _ = router.await;
    // What remote work still had to say and record goes out first.
    let _ = tokio::time::timeout(Duration::from_secs(2), work_task).await;
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
