//! The console's portal helpers: a client for the saved login, and finding
//! one of the technician's sessions by GUID or label.

use crate::profile::{Login, Profile};
use lifeline_protocol::ALPN_HTTP1;
use lifeline_protocol::SessionGuid;
use lifeline_protocol::portal::{SessionInfo, SessionList};
use lifeline_session::portal::PortalClient;
use lifeline_session::tls::{GatewayTrust, gateway_client_config};

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
    if let Ok(guid) = target.parse::<SessionGuid>() {
        return Ok(client.get(&format!("/api/v1/sessions/{guid}")).await?);
    }
    let list: SessionList = client.get("/api/v1/sessions").await?;
    let mut matches: Vec<_> = list
        .sessions
        .into_iter()
        .filter(|s| s.label == target)
        .collect();
    match matches.len() {
        0 => anyhow::bail!("no open session with GUID or label {target:?}"),
        1 => Ok(matches.remove(0)),
        n => anyhow::bail!("{n} open sessions are labelled {target:?}; use the GUID"),
    }
}
