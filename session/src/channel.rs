//! Framed reading and writing of end-to-end [`Frame`]s.
//!
//! The reader keeps a bounded buffer: a frame header announcing more than
//! [`MAX_PAYLOAD`](lifeline_protocol::e2e::MAX_PAYLOAD) is refused before any
//! of it is buffered. `read_frame` is cancel-safe (bytes are only appended
//! to the buffer after a read completes), so it can sit in `select!`.

use bytes::{Buf, BytesMut};
use lifeline_protocol::DecodeError;
use lifeline_protocol::e2e::Frame;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a channel failed.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The peer sent something that is not a frame.
    #[error("peer protocol error: {0}")]
    Protocol(#[from] DecodeError),
    /// The stream broke.
    #[error("connection lost: {}", plain_io(.0))]
    Io(#[from] std::io::Error),
    /// The stream ended in the middle of a frame.
    #[error("connection closed in the middle of a message")]
    Truncated,
}

/// An I/O error in words for people: what happened to the connection,
/// without the library's pointers to its manual.
pub fn plain_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::UnexpectedEof => "it was cut off without a proper close".into(),
        K::ConnectionReset => "it was reset".into(),
        K::ConnectionAborted => "it was aborted".into(),
        K::BrokenPipe => "the other side had closed it".into(),
        K::TimedOut => "it timed out".into(),
        _ => {
            let text = e.to_string();
            match text.find("https://") {
                Some(at) => text[..at].trim_end_matches([' ', ':']).to_owned(),
                None => text,
            }
        }
    }
}

/// Reads frames from a byte stream.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps a read half.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: BytesMut::with_capacity(8 * 1024),
        }
    }

    /// The next frame, or `None` at a clean end of stream.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, ChannelError> {
        loop {
            match Frame::decode(&self.buf) {
                Ok((frame, used)) => {
                    self.buf.advance(used);
                    return Ok(Some(frame));
                }
                Err(DecodeError::Incomplete) => {}
                Err(e) => return Err(e.into()),
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ChannelError::Truncated)
                };
            }
        }
    }

    /// The wrapped reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The same reader over a boxed stream, keeping what it has buffered
    /// (bytes of frames the peer sent right behind the last one read).
    pub fn boxed(self) -> FrameReader<crate::link::BoxRead>
    where
        R: Send + 'static,
    {
        FrameReader {
            inner: Box::new(self.inner),
            buf: self.buf,
        }
    }
}

/// Writes frames to a byte stream.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Wraps a write half.
    pub fn new(inner: W) -> Self {
        Self { inner }
    }

    /// Writes and flushes one frame.
    pub async fn write_frame(&mut self, frame: &Frame) -> Result<(), ChannelError> {
        self.inner.write_all(&frame.encode()).await?;
        self.inner.flush().await?;
        Ok(())
    }

    /// Writes and flushes frames already encoded back to back (see
    /// [`Frame::encode_into`]): one write for many small frames.
    pub async fn write_encoded(&mut self, frames: &[u8]) -> Result<(), ChannelError> {
        self.inner.write_all(frames).await?;
        self.inner.flush().await?;
        Ok(())
    }

    /// The same writer over a boxed stream.
    pub fn boxed(self) -> FrameWriter<crate::link::BoxWrite>
    where
        W: Send + 'static,
    {
        FrameWriter {
            inner: Box::new(self.inner),
        }
    }

    /// Closes the write side (TLS close_notify, then FIN).
    pub async fn shutdown(&mut self) -> Result<(), ChannelError> {
        self.inner.shutdown().await?;
        Ok(())
    }
}

#[cfg(test)]
mod plain_tests {
    use super::*;

    #[test]
    fn io_errors_read_without_library_links() {
        let eof = std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "peer closed connection without sending TLS close_notify: https://docs.example/manual",
        );
        assert_eq!(
            ChannelError::Io(eof).to_string(),
            "connection lost: it was cut off without a proper close"
        );
        let other = std::io::Error::other("odd: see https://example.invalid/x");
        assert_eq!(plain_io(&other), "odd: see");
    }
}
