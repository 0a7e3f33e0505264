//! A [`DatagramPath`] over a webrtc-ice `Conn` (the agent's selected
//! candidate pair).
//!
//! The ICE `Conn` has only async `send`/`recv` and no backpressure of its
//! own: a sender that outruns the socket just piles up futures. Here a
//! bounded queue sits in front of it, drained by one task that awaits each
//! `send`; when the queue is full, `try_send` says `WouldBlock` and quinn
//! waits on `writable`, exactly as with a full kernel socket buffer. On the
//! receive side one task reads the `Conn` into a bounded queue, so a slow
//! reader slows the reads instead of growing memory.

use crate::path::{BoxFuture, DatagramPath};
use bytes::Bytes;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use webrtc_util::Conn;

/// Datagrams queued per direction.
pub const QUEUE: usize = 512;

/// An ICE connection as a datagram path.
pub struct IcePath {
    tx: mpsc::Sender<Bytes>,
    rx: Mutex<mpsc::Receiver<Bytes>>,
    local: SocketAddr,
    peer: SocketAddr,
    max_datagram: usize,
    tasks: [tokio::task::AbortHandle; 2],
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
    /// discovery (1452 for the internet; loopback carries more).
    pub fn new(conn: Arc<dyn Conn + Send + Sync>, max_datagram: usize) -> io::Result<Arc<Self>> {
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
            let mut buf = vec![0u8; 65_536];
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
            max_datagram,
            tasks: [sender.abort_handle(), receiver.abort_handle()],
        }))
    }
}

impl Drop for IcePath {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
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
