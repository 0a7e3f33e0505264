//! One bulk transfer between a sender and a receiver process over a chosen
//! transport, for `xtcp_goodput`.
//!
//! The receiver listens on a TCP *control* port. The sender connects to it
//! and they set up the data transport (exchanging the session pin, ICE
//! offers, or the sender's UDP address as the receiver sees it through a
//! NAT). The sender then writes 64 KiB chunks as fast as the transport
//! takes them. The receiver measures from its first received byte for a
//! fixed time: goodput is the in-order bytes the application read in that
//! window. It tells the sender on the control connection when the window
//! opens and closes, so each side reports its own process CPU over the
//! same window.

use crate::sys::{Cpu, process_cpu};
use anyhow::{Context, Result, anyhow, bail};
use lifeline_session::direct::ice::{IceAgent, IceOffer, IceOptions, IceRole};
use lifeline_session::identity::SessionIdentity;
use lifeline_xtcp::{Congestion, UdpPath, XtcpConfig};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// What carries the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// XTCP over a connected UDP socket ([`UdpPath`]).
    XtcpUdp,
    /// XTCP on the UDP path a webrtc-ice run found (host candidates), as
    /// a session's direct path does: ICE, then each end's own socket.
    XtcpIce,
    /// quinn with its default transport settings on its own UDP socket
    /// (GSO/GRO), one bidirectional stream, the same TLS as XTCP.
    Quinn,
    /// Kernel TCP with a congestion controller (`cubic`, `bbr`).
    Tcp(&'static str),
    /// No transport: the sender writes `max_datagram`-byte UDP datagrams
    /// as fast as its socket takes them and the receiver counts what
    /// arrives. Through the NAT lab's delay/loss relay this is the most
    /// the relay forwards, so a transport row can be read against it.
    UdpFlood,
}

impl Transport {
    /// Name on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Transport::XtcpUdp => "xtcp-udp",
            Transport::XtcpIce => "xtcp-ice",
            Transport::Quinn => "quinn-udp",
            Transport::Tcp("cubic") => "tcp-cubic",
            Transport::Tcp(_) => "tcp-bbr",
            Transport::UdpFlood => "udp-flood",
        }
    }

    /// Parses [`Transport::name`].
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "xtcp-udp" => Transport::XtcpUdp,
            "xtcp-ice" => Transport::XtcpIce,
            "quinn-udp" => Transport::Quinn,
            "tcp-cubic" => Transport::Tcp("cubic"),
            "udp-flood" => Transport::UdpFlood,
            "tcp-bbr" => Transport::Tcp("bbr"),
            _ => bail!("unknown transport {s:?}"),
        })
    }
}

/// Settings both ends share.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The transport.
    pub transport: Transport,
    /// Largest datagram for XTCP's path MTU discovery.
    pub max_datagram: usize,
    /// XTCP's congestion controller.
    pub congestion: Congestion,
}

impl Setup {
    fn xtcp(&self) -> XtcpConfig {
        XtcpConfig {
            congestion: self.congestion,
            ..XtcpConfig::default()
        }
    }
}

/// What the receiver tells the sender first.
#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    pin: String,
    data_port: u16,
    ice: Option<(String, String, Vec<String>)>,
}

/// Control messages after the hello.
#[derive(Debug, Serialize, Deserialize)]
enum Ctl {
    /// Sender → receiver: the sender's ICE offer.
    Ice(String, String, Vec<String>),
    /// Receiver → sender: UDP hello seen (the NAT mapping exists).
    UdpSeen,
    /// Receiver → sender: the measured window starts now.
    Start,
    /// Receiver → sender: it ended; report your CPU.
    Stop,
    /// Sender → receiver: CPU seconds over the window.
    Cpu(f64, f64),
}

/// Result of one measured transfer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Transport name.
    pub transport: String,
    /// Bytes read in the window.
    pub bytes: u64,
    /// Window length in seconds.
    pub secs: f64,
    /// Receiver process CPU (user, system) over the window.
    pub recv_cpu: (f64, f64),
    /// Sender process CPU over the window.
    pub send_cpu: (f64, f64),
    /// Path MTU the transport ended on (XTCP and quinn), or 0.
    pub mtu: u16,
    /// Lost packets the sender's transport counted (XTCP and quinn).
    pub lost: u64,
}

impl Report {
    /// Goodput in MB/s (10⁶ bytes).
    pub fn mbps(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }

    /// CPU seconds per GiB over both processes.
    pub fn cpu_per_gib(&self) -> f64 {
        let cpu = self.recv_cpu.0 + self.recv_cpu.1 + self.send_cpu.0 + self.send_cpu.1;
        cpu / (self.bytes as f64 / crate::GIB as f64)
    }
}

struct Control {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    /// A line read so far: kept across a cancelled `recv` (in `select!`).
    line: String,
}

impl Control {
    fn new(s: TcpStream) -> Self {
        let (r, w) = s.into_split();
        Self {
            reader: BufReader::new(r),
            writer: w,
            line: String::new(),
        }
    }

    async fn send<T: Serialize>(&mut self, v: &T) -> Result<()> {
        let mut line = serde_json::to_vec(v)?;
        line.push(b'\n');
        self.writer.write_all(&line).await?;
        Ok(())
    }

    async fn recv<T: for<'de> Deserialize<'de>>(&mut self) -> Result<T> {
        if self.reader.read_line(&mut self.line).await? == 0 {
            bail!("control connection closed");
        }
        let line = std::mem::take(&mut self.line);
        Ok(serde_json::from_str(&line)?)
    }
}

fn me_cpu() -> Result<Cpu> {
    process_cpu(std::process::id())
}

/// A connected data stream and a way to read transport statistics.
enum Data {
    Xtcp(lifeline_xtcp::XtcpStream),
    Quinn(quinn::SendStream, quinn::RecvStream, quinn::Connection),
    Tcp(TcpStream),
    /// A connected UDP socket and the datagram size the sender uses.
    Udp(UdpSocket, usize),
}

impl Data {
    fn stats(&self) -> (u16, u64) {
        let s = match self {
            Data::Xtcp(x) => x.stats(),
            Data::Quinn(_, _, c) => c.stats(),
            Data::Tcp(_) => return (0, 0),
            Data::Udp(_, size) => return (u16::try_from(*size).unwrap_or(u16::MAX), 0),
        };
        (s.path.current_mtu, s.path.lost_packets)
    }

    /// Reads some bytes (one datagram for UDP).
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Data::Xtcp(x) => x.read(buf).await,
            Data::Quinn(_, r, _) => AsyncReadExt::read(r, buf).await,
            Data::Tcp(t) => t.read(buf).await,
            Data::Udp(s, _) => s.recv(buf).await,
        }
    }

    /// Writes all of `chunk` (UDP: one datagram of the flood's size).
    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        match self {
            Data::Xtcp(x) => x.write_all(chunk).await,
            Data::Quinn(w, _, _) => AsyncWriteExt::write_all(w, chunk).await,
            Data::Tcp(t) => t.write_all(chunk).await,
            // A full path refuses a datagram (ENOBUFS, ECONNREFUSED while
            // the far end is not yet up): the flood goes on, as UDP does.
            Data::Udp(s, size) => s.send(&chunk[..*size]).await.map(drop).or(Ok(())),
        }
    }
}

/// The receiving end: accepts one sender on `control`, measures `secs`.
pub async fn receive(setup: &Setup, control: TcpListener, secs: f64) -> Result<Report> {
    let ip = control.local_addr()?.ip();
    let (ctl, _) = control.accept().await.context("accepting the sender")?;
    let mut ctl = Control::new(ctl);
    let id = SessionIdentity::generate("xtcp bench")?;
    let cfg = setup.xtcp();
    let mut data = match setup.transport {
        Transport::XtcpUdp => {
            let sock = UdpSocket::bind((ip, 0)).await?;
            ctl.send(&hello(&id, sock.local_addr()?.port(), None))
                .await?;
            // The sender's first datagram shows its address as seen from
            // here (through its NAT); the path is then connected to it.
            let mut b = [0u8; 64];
            let (_, from) = tokio::time::timeout(Duration::from_secs(10), sock.recv_from(&mut b))
                .await
                .context("no UDP hello from the sender")??;
            sock.connect(from).await?;
            ctl.send(&Ctl::UdpSeen).await?;
            // Stale hellos still in flight are not QUIC; quinn drops them.
            let path = UdpPath::new(sock, setup.max_datagram)?;
            Data::Xtcp(lifeline_xtcp::accept(path, id.cert.clone(), id.key(), &cfg).await?)
        }
        Transport::XtcpIce => {
            let (agent, offer) = IceAgent::gather(&ice_options(ip, setup)).await?;
            ctl.send(&hello(&id, 0, Some(&offer))).await?;
            let Ctl::Ice(ufrag, pwd, candidates) = ctl.recv().await? else {
                bail!("expected the sender's ICE offer");
            };
            let remote = IceOffer {
                ufrag,
                pwd,
                candidates,
            };
            let path = agent
                .connect(IceRole::Controlled, &remote, Duration::from_secs(15))
                .await?
                .path;
            Data::Xtcp(lifeline_xtcp::accept(path, id.cert.clone(), id.key(), &cfg).await?)
        }
        Transport::Quinn => {
            let server = quinn::ServerConfig::with_crypto(Arc::new(
                lifeline_xtcp::tls::server_config(id.cert.clone(), id.key())?,
            ));
            let ep = quinn::Endpoint::server(server, SocketAddr::new(ip, 0))?;
            ctl.send(&hello(&id, ep.local_addr()?.port(), None)).await?;
            let conn = ep
                .accept()
                .await
                .ok_or_else(|| anyhow!("quinn endpoint closed"))?
                .await?;
            let (w, r) = conn.accept_bi().await?;
            Data::Quinn(w, r, conn)
        }
        Transport::UdpFlood => {
            let sock = UdpSocket::bind((ip, 0)).await?;
            let _ = socket2::SockRef::from(&sock)
                .set_recv_buffer_size(lifeline_xtcp::path::SOCKET_BUFFER);
            ctl.send(&hello(&id, sock.local_addr()?.port(), None))
                .await?;
            let mut b = [0u8; 2048];
            let (_, from) = tokio::time::timeout(Duration::from_secs(10), sock.recv_from(&mut b))
                .await
                .context("no UDP datagram from the sender")??;
            sock.connect(from).await?;
            Data::Udp(sock, setup.max_datagram)
        }
        Transport::Tcp(_) => {
            let l = TcpListener::bind((ip, 0)).await?;
            ctl.send(&hello(&id, l.local_addr()?.port(), None)).await?;
            let (s, _) = l.accept().await?;
            Data::Tcp(s)
        }
    };
    let mut buf = vec![0u8; 256 * 1024];
    let first = data.read(&mut buf).await?;
    if first == 0 {
        bail!("sender sent nothing");
    }
    ctl.send(&Ctl::Start).await?;
    let cpu0 = me_cpu()?;
    let t0 = Instant::now();
    let window = Duration::from_secs_f64(secs);
    let mut bytes = 0u64;
    loop {
        let left = window.saturating_sub(t0.elapsed());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, data.read(&mut buf)).await {
            Err(_) => break,
            Ok(Ok(0)) => bail!("sender stopped early"),
            Ok(Ok(n)) => bytes += n as u64,
            Ok(Err(e)) => return Err(e).context("receiving"),
        }
    }
    let took = t0.elapsed().as_secs_f64();
    let cpu = me_cpu()? - cpu0;
    ctl.send(&Ctl::Stop).await?;
    let Ctl::Cpu(su, ss) = ctl.recv().await? else {
        bail!("expected the sender's CPU report");
    };
    let (mtu, _) = data.stats();
    let lost = match ctl.recv::<(u16, u64)>().await {
        Ok((_, lost)) => lost,
        Err(_) => 0,
    };
    Ok(Report {
        transport: setup.transport.name().into(),
        bytes,
        secs: took,
        recv_cpu: (cpu.user, cpu.sys),
        send_cpu: (su, ss),
        mtu,
        lost,
    })
}

fn hello(id: &SessionIdentity, data_port: u16, ice: Option<&IceOffer>) -> Hello {
    Hello {
        pin: lifeline_protocol::hex::encode(&id.pin()),
        data_port,
        ice: ice.map(|o| (o.ufrag.clone(), o.pwd.clone(), o.candidates.clone())),
    }
}

fn ice_options(ip: IpAddr, setup: &Setup) -> IceOptions {
    IceOptions {
        include_loopback: ip.is_loopback(),
        only_ips: Some(vec![ip]),
        max_datagram: setup.max_datagram,
        ..IceOptions::default()
    }
}

/// The sending end: connects to the receiver's `control` address (from
/// `local`, this host's address on the path), sends until told to stop.
pub async fn send(setup: &Setup, control: SocketAddr, local: IpAddr) -> Result<()> {
    let mut ctl = Control::new(
        TcpStream::connect(control)
            .await
            .with_context(|| format!("connecting to the receiver at {control}"))?,
    );
    let hello: Hello = ctl.recv().await?;
    let pin: [u8; 32] = lifeline_protocol::hex::decode_array(&hello.pin)
        .ok_or_else(|| anyhow!("bad pin from the receiver"))?;
    let data_addr = SocketAddr::new(control.ip(), hello.data_port);
    let cfg = setup.xtcp();
    let mut data = match setup.transport {
        Transport::XtcpUdp => {
            let sock = UdpSocket::bind((local, 0)).await?;
            sock.connect(data_addr).await?;
            // Repeat the hello until the receiver has seen one (the path
            // may be lossy).
            let seen = async {
                loop {
                    sock.send(b"hello").await?;
                    if let Ok(r) =
                        tokio::time::timeout(Duration::from_millis(200), ctl.recv::<Ctl>()).await
                    {
                        return match r? {
                            Ctl::UdpSeen => Ok(()),
                            other => Err(anyhow!("unexpected {other:?}")),
                        };
                    }
                }
            };
            tokio::time::timeout(Duration::from_secs(10), seen)
                .await
                .context("the receiver never saw our UDP hello")??;
            let path = UdpPath::new(sock, setup.max_datagram)?;
            Data::Xtcp(lifeline_xtcp::connect(path, pin, &cfg).await?)
        }
        Transport::XtcpIce => {
            let (local_ufrag, local_pwd, cands) = hello
                .ice
                .ok_or_else(|| anyhow!("receiver sent no ICE offer"))?;
            let (agent, offer) = IceAgent::gather(&ice_options(local, setup)).await?;
            ctl.send(&Ctl::Ice(offer.ufrag, offer.pwd, offer.candidates))
                .await?;
            let remote = IceOffer {
                ufrag: local_ufrag,
                pwd: local_pwd,
                candidates: cands,
            };
            let path = agent
                .connect(IceRole::Controlling, &remote, Duration::from_secs(15))
                .await?
                .path;
            Data::Xtcp(lifeline_xtcp::connect(path, pin, &cfg).await?)
        }
        Transport::Quinn => {
            let mut ep = quinn::Endpoint::client(SocketAddr::new(local, 0))?;
            ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(
                lifeline_xtcp::tls::client_config(pin)?,
            )));
            let conn = ep
                .connect(data_addr, lifeline_session::tls::E2E_SERVER_NAME)?
                .await?;
            let (w, r) = conn.open_bi().await?;
            Data::Quinn(w, r, conn)
        }
        Transport::UdpFlood => {
            let sock = UdpSocket::bind((local, 0)).await?;
            sock.connect(data_addr).await?;
            Data::Udp(sock, setup.max_datagram.min(65_507))
        }
        Transport::Tcp(cc) => {
            let sock = socket2::Socket::new(
                socket2::Domain::for_address(data_addr),
                socket2::Type::STREAM,
                None,
            )?;
            sock.set_tcp_congestion(cc.as_bytes())
                .with_context(|| format!("TCP congestion control {cc} unavailable"))?;
            sock.bind(&SocketAddr::new(local, 0).into())?;
            sock.set_nonblocking(true)?;
            let s = tokio::net::TcpSocket::from_std_stream(sock.into());
            Data::Tcp(s.connect(data_addr).await?)
        }
    };
    let chunk = vec![0x5au8; 64 * 1024];
    let mut cpu0 = None;
    let cpu = loop {
        tokio::select! {
            r = data.write(&chunk) => {
                r.context("sending")?;
            }
            m = ctl.recv::<Ctl>() => match m? {
                Ctl::Start => cpu0 = Some(me_cpu()?),
                Ctl::Stop => {
                    let c0 = cpu0.ok_or_else(|| anyhow!("stopped before the window opened"))?;
                    break me_cpu()? - c0;
                }
                other => bail!("unexpected {other:?}"),
            }
        }
    };
    ctl.send(&Ctl::Cpu(cpu.user, cpu.sys)).await?;
    ctl.send(&data.stats()).await?;
    Ok(())
}
