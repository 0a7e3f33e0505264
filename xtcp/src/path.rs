//! What XTCP runs over: a [`UdpPath`] (a real socket, driven by quinn
//! itself) or any [`DatagramPath`] (anything that carries datagrams to one
//! peer: the simulator, a test's link), together a [`Carrier`].

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
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

/// What an XTCP connection runs over.
#[derive(Debug)]
pub enum Carrier {
    /// A UDP socket that quinn drives itself (see [`UdpPath`]).
    Udp(UdpPath),
    /// Any other datagram path: the simulator, a test's impaired link.
    /// One datagram per system call and task hop, so for tests and
    /// simulation, not for line rate.
    Path(Arc<dyn DatagramPath>),
}

impl Carrier {
    /// The largest datagram worth probing for.
    pub fn max_datagram_size(&self) -> usize {
        match self {
            Carrier::Udp(u) => u.max_datagram_size(),
            Carrier::Path(p) => p.max_datagram_size(),
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        match self {
            Carrier::Udp(u) => u.peer,
            Carrier::Path(p) => p.peer_addr(),
        }
    }
}

impl From<UdpPath> for Carrier {
    fn from(u: UdpPath) -> Self {
        Carrier::Udp(u)
    }
}

impl<T: DatagramPath> From<Arc<T>> for Carrier {
    fn from(p: Arc<T>) -> Self {
        Carrier::Path(p)
    }
}

impl From<Arc<dyn DatagramPath>> for Carrier {
    fn from(p: Arc<dyn DatagramPath>) -> Self {
        Carrier::Path(p)
    }
}

/// A UDP socket connected to its peer, handed whole to quinn, which drives
/// it through its own UDP layer: a batch of datagrams per system call each
/// way (GSO and GRO where the kernel has them, `sendmmsg`/`recvmmsg`
/// otherwise), no copy and no task between the socket and the transport.
/// This is what a direct path runs on once hole punching has found it.
#[derive(Debug)]
pub struct UdpPath {
    socket: std::net::UdpSocket,
    local: SocketAddr,
    peer: SocketAddr,
    max_datagram: usize,
}

impl UdpPath {
    /// Wraps a tokio socket connected to its peer. `max_datagram` bounds
    /// path MTU discovery: 1452 suits the internet; loopback carries
    /// 65 527.
    pub fn new(socket: UdpSocket, max_datagram: usize) -> io::Result<Self> {
        Self::from_std(socket.into_std()?, max_datagram)
    }

    /// Wraps a standard socket connected to its peer.
    pub fn from_std(socket: std::net::UdpSocket, max_datagram: usize) -> io::Result<Self> {
        let local = socket.local_addr()?;
        let peer = socket.peer_addr()?;
        socket.set_nonblocking(true)?;
        let sock = socket2::SockRef::from(&socket);
        let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
        let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
        Ok(Self {
            socket,
            local,
            peer,
            max_datagram,
        })
    }

    /// Binds `local`, connects to `peer`.
    pub async fn bind_connect(
        local: SocketAddr,
        peer: SocketAddr,
        max_datagram: usize,
    ) -> io::Result<Self> {
        let socket = UdpSocket::bind(local).await?;
        socket.connect(peer).await?;
        Self::new(socket, max_datagram)
    }

    /// The largest datagram worth probing for.
    pub fn max_datagram_size(&self) -> usize {
        self.max_datagram
    }

    /// Our address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The socket, for quinn.
    pub(crate) fn into_socket(self) -> std::net::UdpSocket {
        self.socket
    }
}
