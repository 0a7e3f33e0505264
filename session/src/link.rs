//! Frame I/O on one path: a reader task and a writer task, so that a write
//! blocked by backpressure never stops reading (two ends both sending bulk
//! data would otherwise deadlock).
//!
//! The writer has two queues: control (the session's frames and
//! interactive channel data) and bulk (bulk channel data, a few frames
//! deep, so the session core produces bulk data no faster than the path
//! takes it). It writes control frames first — except that nothing passes
//! a `Switch` or the close: before either, it writes every bulk frame
//! already queued. That is what makes a cutover lossless: `Switch` is the
//! last frame on its path (see [`crate::core`], which decides when). What
//! is queued when the writer writes goes out in one write (up to
//! [`BATCH`]).

use crate::channel::{ChannelError, FrameReader, FrameWriter};
use lifeline_protocol::e2e::{Control, Frame, MAX_DATA};
use std::fmt;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// A path's read half.
pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// A path's write half.
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Control frames queued for writing (chat, pings, negotiation, credit).
pub const CONTROL_QUEUE: usize = 256;
/// Bulk frames queued for writing (at most 64 KiB each).
pub const BULK_QUEUE: usize = 8;
/// Frames read ahead of the session core.
pub const INBOUND_QUEUE: usize = 64;
/// How long closing a path may take to flush.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames already queued are written together up to about this many bytes.
pub const BATCH: usize = 256 << 10;

pub use lifeline_protocol::path::PathKind;

/// An established, authenticated path, before its I/O starts.
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
    /// The peer closed the stream cleanly.
    Closed,
    /// Reading failed.
    Failed(ChannelError),
}

enum Out {
    Frame(Frame),
    /// Flush, then close the write side.
    Close,
}

/// The writing half of a running path.
pub struct PathWriter {
    control: mpsc::Sender<Out>,
    bulk: mpsc::Sender<Frame>,
    task: tokio::task::AbortHandle,
}

/// The reading half of a running path: what its reader saw, and its
/// writer's failure.
pub struct PathReader {
    /// What the reader saw, in order.
    pub inbound: mpsc::Receiver<Inbound>,
    /// A write failure, once.
    pub write_errors: mpsc::Receiver<ChannelError>,
    task: tokio::task::AbortHandle,
}

impl fmt::Debug for PathWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PathWriter").finish_non_exhaustive()
    }
}

impl fmt::Debug for PathReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PathReader").finish_non_exhaustive()
    }
}

impl Drop for PathReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the reader and writer tasks of `path`.
pub fn start(path: Path) -> (PathWriter, PathReader) {
    let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let (bulk, bulk_rx) = mpsc::channel(BULK_QUEUE);
    let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE);
    let (err_tx, write_errors) = mpsc::channel(1);
    let writer = tokio::spawn(write_loop(path.writer, control_rx, bulk_rx, err_tx)).abort_handle();
    let task = tokio::spawn(read_loop(path.reader, inbound_tx)).abort_handle();
    (
        PathWriter {
            control,
            bulk,
            task: writer,
        },
        PathReader {
            inbound,
            write_errors,
            task,
        },
    )
}

impl PathWriter {
    /// Queues a control frame (ahead of bulk data). `false` if the writer
    /// is gone.
    pub async fn send(&self, frame: Frame) -> bool {
        self.control.send(Out::Frame(frame)).await.is_ok()
    }

    /// Waits for room in the bulk queue.
    pub async fn bulk_room(&self) -> Option<mpsc::Permit<'_, Frame>> {
        self.bulk.reserve().await.ok()
    }

    /// Room in the bulk queue, if there is some now.
    pub fn try_bulk_room(&self) -> Option<mpsc::Permit<'_, Frame>> {
        self.bulk.try_reserve().ok()
    }

    /// Asks the writer to write what is queued, then close. The writer
    /// task finishes on its own — or is stopped after [`CLOSE_TIMEOUT`]
    /// if the path is stuck (a dead path's queue may never drain), so the
    /// caller never waits on it.
    pub async fn close(self) {
        let Self { control, task, .. } = self;
        if let Err(mpsc::error::TrySendError::Full(close)) = control.try_send(Out::Close) {
            tokio::spawn(async move {
                if tokio::time::timeout(CLOSE_TIMEOUT, control.send(close))
                    .await
                    .is_err()
                {
                    task.abort();
                }
            });
        }
    }
}

async fn write_loop(
    mut writer: FrameWriter<BoxWrite>,
    mut control: mpsc::Receiver<Out>,
    mut bulk: mpsc::Receiver<Frame>,
    errors: mpsc::Sender<ChannelError>,
) {
    let mut buf = Vec::with_capacity(BATCH + MAX_DATA + 64);
    let result: Result<(), ChannelError> = async {
        loop {
            let (first, mut bulk_taken) = tokio::select! {
                biased;
                o = control.recv() => match o {
                    Some(o) => (o, false),
                    None => return Ok(()),
                },
                Some(f) = bulk.recv() => (Out::Frame(f), true),
            };
            // The control frames already queued and at most one bulk frame
            // go out in one write: a credit grant, an acknowledgement and
            // the data behind them cost one TLS record and one system call,
            // not one each — and a keystroke queued meanwhile still waits
            // behind at most one bulk frame.
            buf.clear();
            let mut next = Some(first);
            let mut closing = false;
            while let Some(out) = next.take() {
                match out {
                    // A barrier: everything queued before it goes first.
                    Out::Frame(f @ Frame::Control(Control::Switch { .. })) => {
                        while let Ok(b) = bulk.try_recv() {
                            b.encode_into(&mut buf);
                        }
                        f.encode_into(&mut buf);
                    }
                    Out::Frame(f) => f.encode_into(&mut buf),
                    Out::Close => {
                        while let Ok(b) = bulk.try_recv() {
                            b.encode_into(&mut buf);
                        }
                        closing = true;
                        break;
                    }
                }
                if buf.len() >= BATCH {
                    break;
                }
                next = match control.try_recv() {
                    Ok(o) => Some(o),
                    Err(_) if !bulk_taken => {
                        bulk_taken = true;
                        bulk.try_recv().ok().map(Out::Frame)
                    }
                    Err(_) => None,
                };
            }
            writer.write_encoded(&buf).await?;
            if closing {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer.shutdown()).await;
                return Ok(());
            }
        }
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "writing a path failed");
        let _ = errors.send(e).await;
    }
}

async fn read_loop(mut reader: FrameReader<BoxRead>, inbound: mpsc::Sender<Inbound>) {
    loop {
        let msg = match reader.read_frame().await {
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
