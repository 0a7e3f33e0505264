//! Direct TCP: the applet listens and offers its addresses; the console
//! dials them all, staggered (Happy Eyeballs, RFC 8305), and keeps the
//! first that becomes a secured, proven path.

use super::bind::secure_stream;
use super::{DirectError, DirectEvent, Ends};
use crate::link::{Path, PathKind};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

/// Delay between starting connection attempts to successive addresses.
pub const STAGGER: Duration = Duration::from_millis(250);
/// How long one TCP connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Incoming connections being secured at once; more are dropped at once
/// (a flood of strangers cannot queue up work).
pub const MAX_PENDING: usize = 16;
/// ... and from one source address, so that a stranger holding silent
/// connections open cannot keep the console's own out (the console dials
/// the offered addresses 250 ms apart, so it rarely has two pending).
pub const MAX_PENDING_PER_SOURCE: usize = 4;
/// Connections accepted from one source address in all; after that its
/// connections are dropped unread.
pub const MAX_ACCEPTS_PER_SOURCE: usize = 8;
/// Source addresses remembered (the map of the two limits above).
pub const MAX_SOURCES: usize = 1024;
/// How long the applet's listener stays open: the console dials within a
/// few seconds of the offer, and a port left open for the whole session
/// would only be a target.
pub const LISTEN_FOR: Duration = Duration::from_secs(30);

/// Binds the applet's listener on all IPv4 interfaces, on `port` (0: the
/// OS picks).
pub async fn listen(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)).await
}

/// The addresses to offer for a listener on `port`: every local IPv4
/// address (loopback only when `loopback`), and the public address the
/// gateway saw us at, in case a router forwards the port.
pub fn offer_addrs(port: u16, observed: Option<IpAddr>, loopback: bool) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = super::ice::local_ips()
        .into_iter()
        .filter(|ip| ip.is_ipv4() && (loopback || !ip.is_loopback()))
        .map(|ip| SocketAddr::new(ip, port))
        .collect();
    if let Some(ip) = observed {
        let public = SocketAddr::new(ip, port);
        if !addrs.contains(&public) {
            addrs.push(public);
        }
    }
    addrs.truncate(lifeline_protocol::e2e::MAX_TCP_ADDRS);
    addrs
}

/// Accepts connections on `listener` and secures each as a path; every
/// proven path goes to `paths`. Anything else that connects is dropped
/// without disturbing the session. Runs until the task is aborted, for at
/// most [`LISTEN_FOR`].
pub async fn accept_paths(
    listener: TcpListener,
    ends: Arc<Ends>,
    paths: mpsc::Sender<DirectEvent>,
) {
    if tokio::time::timeout(LISTEN_FOR, accept_loop(listener, ends, paths))
        .await
        .is_err()
    {
        tracing::info!("direct TCP: listener closed after {LISTEN_FOR:?}");
    }
}

/// Per source address: connections being secured now, accepted so far.
type Sources = Arc<std::sync::Mutex<HashMap<IpAddr, (usize, usize)>>>;

/// Releases a source's pending slot when its handshake ends.
struct PendingGuard {
    sources: Sources,
    ip: IpAddr,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.sources.lock()
            && let Some(e) = m.get_mut(&self.ip)
        {
            e.0 = e.0.saturating_sub(1);
        }
    }
}

/// Admits a connection from `ip` under the per-source limits.
fn admit(sources: &Sources, ip: IpAddr) -> Option<PendingGuard> {
    let mut m = sources.lock().ok()?;
    if !m.contains_key(&ip) && m.len() >= MAX_SOURCES {
        return None;
    }
    let e = m.entry(ip).or_insert((0, 0));
    if e.0 >= MAX_PENDING_PER_SOURCE || e.1 >= MAX_ACCEPTS_PER_SOURCE {
        return None;
    }
    *e = (e.0 + 1, e.1 + 1);
    Some(PendingGuard {
        sources: sources.clone(),
        ip,
    })
}

async fn accept_loop(listener: TcpListener, ends: Arc<Ends>, paths: mpsc::Sender<DirectEvent>) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING));
    let sources: Sources = Arc::default();
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let Some(guard) = admit(&sources, peer.ip()) else {
            tracing::info!(%peer, "direct TCP: too many connections from this address; dropped");
            continue;
        };
        let Ok(permit) = pending.clone().try_acquire_owned() else {
            tracing::info!(%peer, "direct TCP: too many pending connections; dropped");
            continue;
        };
        let (ends, paths) = (ends.clone(), paths.clone());
        tokio::spawn(async move {
            let _held = (permit, guard);
            let _ = stream.set_nodelay(true);
            match secure_stream(stream, &ends, PathKind::DirectTcp, peer.to_string()).await {
                Ok(path) => {
                    let _ = paths.send(DirectEvent::Ready(path)).await;
                }
                Err(e) => tracing::info!(%peer, error = %e, "direct TCP connection refused"),
            }
        });
    }
}

/// Dials `addrs` staggered by [`STAGGER`] and returns the first secured,
/// proven path, or why none worked.
pub async fn dial(addrs: Vec<SocketAddr>, ends: Arc<Ends>) -> Result<Path, DirectError> {
    if addrs.is_empty() {
        return Err(DirectError::Unavailable(
            "the end user's side offered no TCP address".into(),
        ));
    }
    let (tx, mut rx) = mpsc::channel(addrs.len());
    let mut tasks = Vec::new();
    for (i, addr) in addrs.iter().copied().enumerate() {
        let (tx, ends) = (tx.clone(), ends.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(STAGGER * i as u32).await;
            let r = attempt(addr, &ends).await;
            let _ = tx.send((addr, r)).await;
        }));
    }
    drop(tx);
    let mut failures = Vec::new();
    let result = loop {
        match rx.recv().await {
            Some((_, Ok(path))) => break Ok(path),
            Some((addr, Err(e))) => {
                // Which address failed how stays in this end's log: the
                // reason is shown to the technician and audited, and the
                // end user's private addresses are not theirs to read.
                tracing::info!(%addr, error = %e, "direct TCP attempt failed");
                failures.push(e.to_string());
            }
            None => break Err(DirectError::Unavailable(failed_attempts(&failures))),
        }
    };
    // The losers' connections close as their tasks go.
    for t in tasks {
        t.abort();
    }
    result
}

/// "no direct TCP connection (3 addresses tried: timed out ×2, connection
/// refused)" — how the attempts failed, without the addresses.
fn failed_attempts(failures: &[String]) -> String {
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for f in failures {
        match kinds.iter_mut().find(|(k, _)| *k == f.as_str()) {
            Some((_, n)) => *n += 1,
            None => kinds.push((f, 1)),
        }
    }
    let kinds: Vec<String> = kinds
        .iter()
        .map(|(k, n)| {
            if *n > 1 {
                format!("{k} ×{n}")
            } else {
                (*k).to_owned()
            }
        })
        .collect();
    let n = failures.len();
    format!(
        "no direct TCP connection ({n} address{} tried: {})",
        if n == 1 { "" } else { "es" },
        kinds.join(", ")
    )
}

async fn attempt(addr: SocketAddr, ends: &Ends) -> Result<Path, DirectError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| DirectError::Unavailable("timed out".into()))?
        .map_err(|e| DirectError::Unavailable(e.kind().to_string()))?;
    let _ = stream.set_nodelay(true);
    secure_stream(stream, ends, PathKind::DirectTcp, addr.to_string()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_attempts_are_counted_by_kind_without_addresses() {
        let f =
            |v: &[&str]| failed_attempts(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(
            f(&["timed out", "connection refused", "timed out"]),
            "no direct TCP connection (3 addresses tried: timed out ×2, connection refused)"
        );
        assert_eq!(
            f(&["timed out"]),
            "no direct TCP connection (1 address tried: timed out)"
        );
    }
}
