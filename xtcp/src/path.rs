//! Datagram paths: anything that carries datagrams to one peer.

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;

/// A boxed future, as [`DatagramPath::writable`] returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A bidirectional datagram path to one peer.
///
/// The contract mirrors a non-blocking UDP socket, because that is what the
/// transport above expects: `try_send` either takes the datagram or says
/// `WouldBlock` (the path is full: *backpressure*), and `writable` resolves
/// when sending may succeed again. Any number of tasks may wait on
/// `writable` at once; only one task receives.
pub trait DatagramPath: Send + Sync + Debug + 'static {
    /// Sends one datagram, or fails with `WouldBlock` when the path's send
    /// buffer is full.
    fn try_send(&self, datagram: &[u8]) -> io::Result<()>;

    /// Resolves when [`try_send`](Self::try_send) may succeed.
    fn writable(self: Arc<Self>) -> BoxFuture<io::Result<()>>;

    /// Receives one datagram into `buf`, returning its length.
    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;

    /// The largest datagram worth probing for (path MTU discovery searches
    /// up to this; the path drops anything larger than its real MTU).
    fn max_datagram_size(&self) -> usize;

    /// Our address on the path.
    fn local_addr(&self) -> SocketAddr;

    /// The peer's address on the path.
    fn peer_addr(&self) -> SocketAddr;
}

/// Socket buffer asked for each way. The kernel caps it at
/// `net.core.rmem_max` / `wmem_max`; with its default of ~208 KiB a burst
/// of a congestion window overflows the receive buffer, which the
/// transport sees as loss.
pub const SOCKET_BUFFER: usize = 4 << 20;

/// A connected UDP socket as a path.
#[derive(Debug)]
pub struct UdpPath {
    socket: UdpSocket,
    local: SocketAddr,
    peer: SocketAddr,
    max_datagram: usize,
}

impl UdpPath {
    /// Wraps a socket connected to its peer. `max_datagram` bounds path MTU
    /// discovery: 1452 suits the internet; loopback carries 65 527.
    pub fn new(socket: UdpSocket, max_datagram: usize) -> io::Result<Arc<Self>> {
        let local = socket.local_addr()?;
        let peer = socket.peer_addr()?;
        let sock = socket2::SockRef::from(&socket);
        let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
        let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
        Ok(Arc::new(Self {
            socket,
            local,
            peer,
            max_datagram,
        }))
    }

    /// Binds `local`, connects to `peer`.
    pub async fn bind_connect(
        local: SocketAddr,
        peer: SocketAddr,
        max_datagram: usize,
    ) -> io::Result<Arc<Self>> {
        let socket = UdpSocket::bind(local).await?;
        socket.connect(peer).await?;
        Self::new(socket, max_datagram)
    }
}

impl DatagramPath for UdpPath {
    fn try_send(&self, datagram: &[u8]) -> io::Result<()> {
        self.socket.try_send(datagram).map(|_| ())
    }

    fn writable(self: Arc<Self>) -> BoxFuture<io::Result<()>> {
        Box::pin(async move { self.socket.writable().await })
    }

    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut rb = ReadBuf::new(buf);
        match self.socket.poll_recv(cx, &mut rb) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
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
