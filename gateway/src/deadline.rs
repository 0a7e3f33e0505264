//! A stream whose first read must complete by a deadline.
//!
//! The handshake deadline covers TLS *and* the client's first bytes (the
//! relay hello, or an HTTP request). hyper's own header timeout covers only
//! HTTP/1.1, and its protocol detection would wait forever on a client that
//! completes TLS and then says nothing; wrapping the stream closes that gap
//! for every protocol in one place.

use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Wraps `S`; reads fail with `TimedOut` if no byte arrived by the deadline.
#[derive(Debug)]
pub struct FirstReadDeadline<S> {
    inner: S,
    /// `None` once the first byte has arrived.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<S> FirstReadDeadline<S> {
    /// Wraps `inner` with `deadline`.
    pub fn new(inner: S, deadline: Instant) -> Self {
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstReadDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.deadline.is_none() {
            return res;
        }
        match res {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                self.deadline = None;
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match self.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "nothing received within the handshake deadline",
                ))),
                _ => Poll::Pending,
            },
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstReadDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn silence_times_out_but_data_disarms_the_deadline() {
        let (a, _keep) = tokio::io::duplex(64);
        let mut s = FirstReadDeadline::new(a, Instant::now() + std::time::Duration::from_secs(2));
        let mut b = [0u8; 4];
        let e = s.read(&mut b).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);

        let (a, mut peer) = tokio::io::duplex(64);
        let mut s = FirstReadDeadline::new(a, Instant::now() + std::time::Duration::from_secs(2));
        peer.write_all(b"hi").await.unwrap();
        assert_eq!(s.read(&mut b).await.unwrap(), 2);
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        peer.write_all(b"later").await.unwrap();
        assert_eq!(s.read(&mut b).await.unwrap(), 4);
    }
}
