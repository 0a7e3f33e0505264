//! Finding and reaching a gateway: the signed directory, then the node
//! that answers first among up to [`CANDIDATES`] (see [`connect_fastest`]).

use lifeline_protocol::ALPN_HTTP1;
use lifeline_protocol::ALPN_RELAY;
use lifeline_protocol::directory::SignedDirectory;
use lifeline_protocol::relay::{Leave, RefuseCode, ServerMsg};
use lifeline_protocol::trailer::TrailerBody;
use lifeline_session::addr::{HostPort, parse_https_url};
use lifeline_session::gateway_conn::{self, GatewayStream, LinkError};
use lifeline_session::portal::PortalClient;
use lifeline_session::race;
use lifeline_session::tls::{GatewayTrust, gateway_client_config};
use rustls::pki_types::CertificateDer;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How many nodes are raced.
pub const CANDIDATES: usize = 3;
/// Connect + TLS deadline per node.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The operator CA from the trailer.
pub fn trust(body: &TrailerBody) -> GatewayTrust {
    GatewayTrust::Ca(CertificateDer::from(body.operator_ca_der.clone()))
}

/// Gateway addresses to try: from the first directory that verifies, else
/// the directory URLs' own hosts (so a node whose store is briefly down
/// still gets its applets).
pub async fn candidates(body: &TrailerBody) -> Vec<(String, HostPort)> {
    let mut fallback = Vec::new();
    let Ok(tls) = gateway_client_config(&trust(body), &[ALPN_HTTP1]) else {
        return fallback;
    };
    for url in &body.directory_urls {
        let Ok((addr, path)) = parse_https_url(url) else {
            continue;
        };
        fallback.push((addr.host.clone(), addr.clone()));
        let client = PortalClient::new(addr, tls.clone());
        match client.get::<SignedDirectory>(&path).await {
            Ok(signed) => match signed.verify(&body.operator_key) {
                Ok(dir) => {
                    let nodes: Vec<_> = dir
                        .nodes
                        .into_iter()
                        .filter_map(|n| HostPort::parse(&n.addr, 443).ok().map(|a| (n.name, a)))
                        .collect();
                    if !nodes.is_empty() {
                        return nodes;
                    }
                }
                Err(e) => tracing::warn!(%url, error = %e, "directory refused"),
            },
            Err(e) => tracing::info!(%url, error = %e, "directory unavailable"),
        }
    }
    fallback
}

/// Reaches a gateway node: TCP connects to up to [`CANDIDATES`] nodes of
/// the directory, in a random order, all at once; the outer TLS handshake
/// (ALPN `lifeline/1`) runs with the first to answer, and with the next if
/// that handshake fails. The random order spreads a cluster's applets over
/// its nodes when they are equally near; racing the cheap TCP connects
/// still finds the nearest node and skips a dead one, and only the winner
/// costs a node a TLS handshake.
pub async fn connect_fastest(
    body: &TrailerBody,
    nodes: &[(String, HostPort)],
) -> Result<(String, GatewayStream), LinkError> {
    let tls = gateway_client_config(&trust(body), &[ALPN_RELAY]).map_err(|e| LinkError::Tls {
        addr: "-".into(),
        source: std::io::Error::other(e),
    })?;
    let started = std::time::Instant::now();
    let won = race::first_to_answer(
        race::shuffled(nodes.to_vec()).into_iter().take(CANDIDATES),
        |(_, addr): (String, HostPort)| async move {
            tokio::time::timeout(CONNECT_TIMEOUT, gateway_conn::dial(&addr))
                .await
                .map_err(|_| LinkError::Timeout(addr.to_string()))?
        },
        |(_, addr), tcp| {
            let tls = tls.clone();
            async move {
                tokio::time::timeout(CONNECT_TIMEOUT, gateway_conn::tls_over(tcp, &addr, tls))
                    .await
                    .map_err(|_| LinkError::Timeout(addr.to_string()))?
            }
        },
    )
    .await;
    match won {
        Ok(((name, _), stream)) => {
            let ms = started.elapsed().as_millis() as u64;
            tracing::info!(node = %name, ms, "connected to gateway");
            Ok((name, stream))
        }
        Err(last) => {
            Err(last.unwrap_or_else(|| LinkError::Timeout("no gateway in the directory".into())))
        }
    }
}

/// How long telling the gateway that the end user left may take.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Tells the gateway that the end user ended the session while the
/// technician was away (no one else can record it then): registers as the
/// waiting applet once more, with the admission proof, and says `Leave`.
/// Whether the gateway recorded it.
pub async fn leave(body: &TrailerBody, reason: &str) -> bool {
    // Retried: a reconnection attempt cut short by the ending may still
    // reach the gateway after this one and take its place.
    let retried = async {
        loop {
            if leave_once(body, reason).await.is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(LEAVE_TIMEOUT, retried).await.is_ok()
}

async fn leave_once(body: &TrailerBody, reason: &str) -> Option<()> {
    let work = async {
        let nodes = candidates(body).await;
        let (_, mut stream) = connect_fastest(body, &nodes).await.ok()?;
        let hello = gateway_conn::applet_hello(&stream, body.guid, &body.applet_secret).ok()?;
        gateway_conn::send_hello(&mut stream, &hello).await.ok()?;
        loop {
            match gateway_conn::read_server_msg(&mut stream).await.ok()? {
                ServerMsg::Waiting { .. } => break,
                ServerMsg::Ping => {}
                // Over already, or never to be: nothing left to tell.
                ServerMsg::Refused { code, .. }
                    if !code.is_transient() && code != RefuseCode::AlreadyConnected =>
                {
                    return Some(());
                }
                _ => return None,
            }
        }
        let leave = Leave {
            reason: reason.to_owned(),
        };
        stream.write_all(&leave.encode()).await.ok()?;
        stream.flush().await.ok()?;
        match gateway_conn::read_server_msg(&mut stream).await.ok()? {
            ServerMsg::Refused {
                code: RefuseCode::Ended,
                ..
            } => Some(()),
            _ => None,
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, work)
        .await
        .ok()
        .flatten()
}
