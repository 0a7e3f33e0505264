//! The console's portal helpers: a client for the saved login, finding
//! one of the technician's sessions by GUID or label, and reporting remote
//! work for the gateway's audit trail.

use crate::profile::{Login, Profile};
use lifeline_protocol::ALPN_HTTP1;
use lifeline_protocol::SessionGuid;
use lifeline_protocol::portal::{SessionInfo, SessionList, WorkRecorded, WorkReport};
use lifeline_session::addr::HostPort;
use lifeline_session::portal::{PortalClient, PortalError};
use lifeline_session::tls::{GatewayTrust, gateway_client_config};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// A portal client for the saved login.
pub fn portal(profile: &Profile) -> anyhow::Result<(Login, PortalClient)> {
    let login = profile.login()?;
    let tls = gateway_client_config(&GatewayTrust::Ca(profile.gateway_ca()?), &[ALPN_HTTP1])?;
    let client = PortalClient::new(profile.gateway(&login)?, tls).with_token(login.token.clone());
    Ok((login, client))
}

/// Resolves a GUID or one of the technician's labels.
pub async fn resolve(
    client: &lifeline_session::portal::PortalClient,
    target: &str,
) -> anyhow::Result<SessionInfo> {
    // The list holds the technician's open sessions and the group's queue
    // (whose sessions `GET /sessions/GUID` does not show until picked).
    let list: SessionList = client.get("/api/v1/sessions").await?;
    let guid = target.parse::<SessionGuid>().ok();
    let mut matches: Vec<_> = list
        .sessions
        .into_iter()
        .filter(|s| Some(s.guid) == guid || s.label == target)
        .collect();
    if let (Some(guid), true) = (guid, matches.is_empty()) {
        // Ended or expired: the session itself says so.
        return Ok(client.get(&format!("/api/v1/sessions/{guid}")).await?);
    }
    match matches.len() {
        0 => anyhow::bail!("no open session with GUID or label {target:?}"),
        1 => Ok(matches.remove(0)),
        n => anyhow::bail!("{n} open sessions are labelled {target:?}; use the GUID"),
    }
}

/// The portals a console may ask about its session: the gateway it logged
/// in to first, then the other nodes of the directory — so that a session
/// whose node died can still be found, reported on and ended.
#[derive(Debug, Clone)]
pub struct Portals(Arc<Vec<(HostPort, PortalClient)>>);

impl Portals {
    /// These portals, asked in this order.
    pub fn new(portals: Vec<(HostPort, PortalClient)>) -> Self {
        Self(Arc::new(portals))
    }

    /// The login's gateway and the nodes of its directory (read, not
    /// verified: it comes from the portal the console trusts, whose TLS is
    /// pinned to the operator's CA). Without a directory, the first only.
    pub async fn discover(
        profile: &Profile,
        login: &Login,
        home: &PortalClient,
    ) -> anyhow::Result<Self> {
        let home_addr = profile.gateway(login)?;
        let mut all = vec![(home_addr.clone(), home.clone())];
        let signed: Result<lifeline_protocol::directory::SignedDirectory, _> =
            home.get("/api/v1/directory").await;
        let nodes = signed
            .ok()
            .and_then(|s| {
                serde_json::from_str::<lifeline_protocol::directory::Directory>(&s.directory).ok()
            })
            .map(|d| d.nodes)
            .unwrap_or_default();
        let tls = gateway_client_config(&GatewayTrust::Ca(profile.gateway_ca()?), &[ALPN_HTTP1])?;
        for n in nodes {
            let Ok(addr) = HostPort::parse(&n.addr, 8443) else {
                continue;
            };
            if addr != home_addr && all.len() < 8 {
                let client =
                    PortalClient::new(addr.clone(), tls.clone()).with_token(login.token.clone());
                all.push((addr, client));
            }
        }
        Ok(Self(Arc::new(all)))
    }

    /// GET from the first portal that answers; with its address. A portal's
    /// refusal is the answer; only an unreachable one is passed over.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<(HostPort, T), PortalError> {
        let mut last = None;
        for (addr, client) in self.0.iter() {
            match client.get(path).await {
                Ok(v) => return Ok((addr.clone(), v)),
                Err(e @ PortalError::Api { .. }) => return Err(e),
                Err(e) => {
                    tracing::info!(node = %addr, error = %e, "portal unavailable");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| PortalError::Http("no gateway to ask".into())))
    }

    /// POST to the first portal that answers (see [`Portals::get`]).
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, PortalError> {
        let mut last = None;
        for (addr, client) in self.0.iter() {
            match client.post(path, body).await {
                Ok(v) => return Ok(v),
                Err(e @ PortalError::Api { .. }) => return Err(e),
                Err(e) => {
                    tracing::info!(node = %addr, error = %e, "portal unavailable");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| PortalError::Http("no gateway to ask".into())))
    }
}

/// Tells the gateway what remote work happened in session `guid` (a
/// consent decision the applet reported, a file transfer's end, a shell, a
/// command, system information, a URL, a listing), for its audit trail:
/// `POST /api/v1/sessions/{guid}/work`. Texts longer than the portal takes
/// are cut first ([`WorkReport::clamped`]), so a long file name or command
/// line is still recorded. A failure is logged and returned, never fatal:
/// the session goes on without that record.
pub async fn report_work(
    client: &Portals,
    guid: &SessionGuid,
    report: &WorkReport,
) -> Result<(), PortalError> {
    let r: Result<WorkRecorded, _> = client
        .post(&format!("/api/v1/sessions/{guid}/work"), &report.clamped())
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, kind = report.kind(), "could not record remote work in the audit trail");
            Err(e)
        }
    }
}
