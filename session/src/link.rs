//! The session's frame link over whichever path carries it, and the
//! lossless cutover from one path to another.
//!
//! One task writes, one task reads, so that a write blocked by
//! backpressure never stops reading (two ends both sending bulk data
//! would otherwise deadlock). The writer takes small control frames ahead
//! of bulk ones.
//!
//! Cutover, per direction ([`Link::switch_to`]): the writer writes
//! [`Frame::Switch`] as the last frame on the old path and everything
//! after it on the new one; the reader reads the old path up to the
//! peer's `Switch`, then the new one. Frames are never lost, duplicated
//! or reordered: each direction is one ordered stream that changes
//! carrier at a marker. Once both directions have switched, the old path
//! is closed.

use crate::channel::{ChannelError, FrameReader, FrameWriter};
use lifeline_protocol::e2e::Frame;
use std::fmt;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

/// A path's read half.
pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// A path's write half.
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Control frames queued for writing (chat, pings, negotiation).
pub const CONTROL_QUEUE: usize = 256;
/// Bulk frames queued for writing (at most 64 KiB each).
pub const BULK_QUEUE: usize = 8;
/// Frames read ahead of the session loop.
pub const INBOUND_QUEUE: usize = 64;
/// How long a reader waits, after the peer's `Switch`, for this end to
/// have the new path.
pub const SWITCH_WAIT: Duration = Duration::from_secs(20);

pub use lifeline_protocol::path::PathKind;

/// An established, authenticated path.
pub struct Path {
    /// What it is.
    pub kind: PathKind,
    /// Frames from the peer.
    pub reader: FrameReader<BoxRead>,
    /// Frames to the peer.
    pub writer: FrameWriter<BoxWrite>,
    /// Identifies the path to both ends (see `direct::path_id`); zero for
    /// the relay.
    pub id: [u8; 8],
    /// Human-readable detail: the peer's address.
    pub detail: String,
    /// Round-trip time measured while setting it up.
    pub rtt: Option<Duration>,
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Path")
            .field("kind", &self.kind)
            .field("detail", &self.detail)
            .finish_non_exhaustive()
    }
}

/// What the reader saw.
#[derive(Debug)]
pub enum Inbound {
    /// A frame from the peer.
    Frame(Frame),
    /// The peer sent its `Switch` for path `id`: its frames now come on
    /// that path, and this end must [`Link::switch_to`] it too.
    PeerSwitched([u8; 8]),
    /// The peer closed the stream cleanly.
    Closed,
    /// Reading failed.
    Failed(ChannelError),
}

enum Out {
    Frame(Frame),
    Switch {
        id: [u8; 8],
        to: FrameWriter<BoxWrite>,
    },
    /// Both directions have switched: close the old path's write side.
    CloseOld,
    /// End of session: flush and close.
    Shutdown(oneshot::Sender<()>),
}

/// The link is gone (its writer failed or was shut down).
#[derive(Debug, thiserror::Error)]
#[error("the session's connection is closed")]
pub struct LinkClosed;

/// Frames in and out over the current path, with cutover.
pub struct Link {
    control: mpsc::Sender<Out>,
    bulk: mpsc::Sender<Frame>,
    inbound: mpsc::Receiver<Inbound>,
    readers: mpsc::Sender<FrameReader<BoxRead>>,
    kind: PathKind,
    /// Path we switched our writing to, if any.
    switched_to: Option<[u8; 8]>,
    /// Path the peer switched its writing to, if any.
    peer_switched_to: Option<[u8; 8]>,
    write_errors: mpsc::Receiver<ChannelError>,
    tasks: [tokio::task::AbortHandle; 2],
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Link {
    /// Starts the reader and writer tasks on the first path.
    pub fn new(path: Path) -> Self {
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let (bulk, bulk_rx) = mpsc::channel(BULK_QUEUE);
        let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE);
        let (readers, readers_rx) = mpsc::channel(2);
        let (err_tx, write_errors) = mpsc::channel(1);
        let writer = tokio::spawn(write_loop(path.writer, control_rx, bulk_rx, err_tx));
        let reader = tokio::spawn(read_loop(path.reader, readers_rx, inbound_tx));
        Self {
            control,
            bulk,
            inbound,
            readers,
            kind: path.kind,
            switched_to: None,
            peer_switched_to: None,
            write_errors,
            tasks: [writer.abort_handle(), reader.abort_handle()],
        }
    }

    /// The path our frames go out on.
    pub fn kind(&self) -> PathKind {
        self.kind
    }

    /// Whether this end has switched to a new path.
    pub fn switched(&self) -> Option<[u8; 8]> {
        self.switched_to
    }

    /// Whether the peer has switched to a new path.
    pub fn peer_switched(&self) -> Option<[u8; 8]> {
        self.peer_switched_to
    }

    /// Queues a control frame (ahead of bulk data).
    pub async fn send(&self, frame: Frame) -> Result<(), LinkClosed> {
        self.control
            .send(Out::Frame(frame))
            .await
            .map_err(|_| LinkClosed)
    }

    /// Queues a control frame unless the queue is full (for answers a peer
    /// could make us pile up, such as pongs).
    pub fn try_send(&self, frame: Frame) -> bool {
        self.control.try_send(Out::Frame(frame)).is_ok()
    }

    /// A sender for bulk frames: its bounded queue is what slows a bulk
    /// producer down to the path's speed.
    pub fn bulk(&self) -> mpsc::Sender<Frame> {
        self.bulk.clone()
    }

    /// The next thing the reader saw. Cancel-safe.
    pub async fn recv(&mut self) -> Inbound {
        tokio::select! {
            biased;
            Some(e) = self.write_errors.recv() => Inbound::Failed(e),
            i = self.inbound.recv() => match i {
                Some(Inbound::PeerSwitched(id)) => {
                    self.peer_switched_to = Some(id);
                    self.maybe_close_old();
                    Inbound::PeerSwitched(id)
                }
                Some(other) => other,
                None => Inbound::Failed(ChannelError::Io(std::io::Error::other(
                    "the session's reader stopped",
                ))),
            },
        }
    }

    /// Moves this end's writing to `path` (after a `Switch` marker on the
    /// old one) and hands its read half to the reader, which takes it over
    /// when the peer's `Switch` arrives.
    pub async fn switch_to(&mut self, path: Path) -> Result<(), LinkClosed> {
        let id = path.id;
        self.readers
            .send(path.reader)
            .await
            .map_err(|_| LinkClosed)?;
        self.control
            .send(Out::Switch {
                id,
                to: path.writer,
            })
            .await
            .map_err(|_| LinkClosed)?;
        self.kind = path.kind;
        self.switched_to = Some(id);
        self.maybe_close_old();
        Ok(())
    }

    fn maybe_close_old(&self) {
        if self.switched_to.is_some() && self.peer_switched_to.is_some() {
            let _ = self.control.try_send(Out::CloseOld);
        }
    }

    /// Flushes what is queued and closes the write side (TLS close_notify,
    /// then FIN), waiting at most `within`.
    pub async fn shutdown(&self, within: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Out::Shutdown(tx)).await.is_ok() {
            let _ = tokio::time::timeout(within, rx).await;
        }
    }
}

async fn write_loop(
    mut writer: FrameWriter<BoxWrite>,
    mut control: mpsc::Receiver<Out>,
    mut bulk: mpsc::Receiver<Frame>,
    errors: mpsc::Sender<ChannelError>,
) {
    let mut old: Option<FrameWriter<BoxWrite>> = None;
    let result: Result<(), ChannelError> = async {
        loop {
            let out = tokio::select! {
                biased;
                o = control.recv() => match o {
                    Some(o) => o,
                    None => return Ok(()),
                },
                Some(f) = bulk.recv() => Out::Frame(f),
            };
            match out {
                Out::Frame(f) => writer.write_frame(&f).await?,
                Out::Switch { id, to } => {
                    writer.write_frame(&Frame::Switch { path: id }).await?;
                    old = Some(std::mem::replace(&mut writer, to));
                }
                Out::CloseOld => {
                    if let Some(mut w) = old.take() {
                        // The relay may already be gone; nothing to save.
                        let _ = w.shutdown().await;
                    }
                }
                Out::Shutdown(done) => {
                    let _ = writer.shutdown().await;
                    if let Some(mut w) = old.take() {
                        let _ = w.shutdown().await;
                    }
                    let _ = done.send(());
                    return Ok(());
                }
            }
        }
    }
    .await;
    if let Err(e) = result {
        let _ = errors.send(e).await;
    }
}

async fn read_loop(
    mut reader: FrameReader<BoxRead>,
    mut readers: mpsc::Receiver<FrameReader<BoxRead>>,
    inbound: mpsc::Sender<Inbound>,
) {
    loop {
        let msg = match reader.read_frame().await {
            Ok(Some(Frame::Switch { path })) => {
                if inbound.send(Inbound::PeerSwitched(path)).await.is_err() {
                    return;
                }
                // The peer's frames now come on the new path; this end
                // hands it over once it has it (it may still be checking
                // the peer's binding proof on it).
                match tokio::time::timeout(SWITCH_WAIT, readers.recv()).await {
                    Ok(Some(next)) => {
                        reader = next;
                        continue;
                    }
                    _ => Inbound::Failed(ChannelError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the other side moved to a direct connection this side does not have",
                    ))),
                }
            }
            Ok(Some(f)) => Inbound::Frame(f),
            Ok(None) => Inbound::Closed,
            Err(e) => Inbound::Failed(e),
        };
        let last = !matches!(msg, Inbound::Frame(_));
        if inbound.send(msg).await.is_err() || last {
            return;
        }
    }
}
