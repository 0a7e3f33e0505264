//! quinn's `AsyncUdpSocket`s: [`NativeSocket`], quinn's own UDP layer on a
//! real socket, and [`PathSocket`], over any [`DatagramPath`].
//!
//! Over a path: one datagram per transmit (no GSO: most paths cannot segment), no
//! fragmentation (so quinn runs path MTU discovery), and the path's own
//! backpressure surfaces as `WouldBlock` + a writable poller, which is what
//! stops quinn from outrunning a path that has no kernel buffer under it.

use crate::path::{BoxFuture, DatagramPath};
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// A [`DatagramPath`] seen by quinn as a UDP socket.
pub struct PathSocket {
    path: Arc<dyn DatagramPath>,
}

impl fmt::Debug for PathSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PathSocket")
            .field("path", &self.path)
            .finish()
    }
}

impl PathSocket {
    /// Wraps a path.
    pub fn new(path: Arc<dyn DatagramPath>) -> Arc<Self> {
        Arc::new(Self { path })
    }
}

struct Poller {
    path: Arc<dyn DatagramPath>,
    /// quinn wants pollers `Sync`; the future is only ever touched by the
    /// one task polling, so the lock is uncontended.
    pending: Mutex<Option<BoxFuture<io::Result<()>>>>,
}

impl fmt::Debug for Poller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Poller").finish_non_exhaustive()
    }
}

impl UdpPoller for Poller {
    fn poll_writable(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let pending = this.pending.get_mut().unwrap_or_else(|p| p.into_inner());
        let fut = pending.get_or_insert_with(|| this.path.clone().writable());
        let r = fut.as_mut().poll(cx);
        if r.is_ready() {
            *pending = None;
        }
        r
    }
}

impl AsyncUdpSocket for PathSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Poller {
            path: self.path.clone(),
            pending: Mutex::new(None),
        })
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        // max_transmit_segments() is 1, so quinn never hands us a batch.
        self.path.try_send(transmit.contents)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        match self.path.poll_recv(cx, buf) {
            Poll::Ready(Ok(len)) => {
                *m = RecvMeta {
                    addr: self.path.peer_addr(),
                    len,
                    stride: len,
                    ecn: None,
                    dst_ip: None,
                };
                Poll::Ready(Ok(1))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.path.local_addr())
    }

    fn may_fragment(&self) -> bool {
        false
    }
}

/// quinn's own socket (its UDP layer: GSO/GRO, `sendmmsg`/`recvmmsg`) with
/// one bound added: a GSO batch is one kernel buffer of at most 64 KiB, so
/// with large datagrams (loopback carries 64 KiB) fewer may go together
/// than quinn would put in one batch. quinn does not know this: a batch
/// over the limit fails with `EMSGSIZE`, which its UDP layer drops
/// silently, and path MTU discovery reads that as a black hole.
#[derive(Debug)]
pub struct NativeSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    max_segments: usize,
}

/// The most payload one GSO batch carries (the kernel's 64 KiB, less the
/// IP and UDP headers).
const GSO_BATCH_BYTES: usize = 65_000;

impl NativeSocket {
    /// Wraps `socket` for datagrams of at most `max_datagram` bytes.
    pub fn new(socket: std::net::UdpSocket, max_datagram: usize) -> io::Result<Arc<Self>> {
        use quinn::Runtime;
        Ok(Arc::new(Self {
            inner: quinn::TokioRuntime.wrap_udp_socket(socket)?,
            max_segments: (GSO_BATCH_BYTES / max_datagram.max(1)).max(1),
        }))
    }
}

impl AsyncUdpSocket for NativeSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments().min(self.max_segments)
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }
}
