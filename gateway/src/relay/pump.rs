//! Copies opaque bytes between a paired applet and console.
//!
//! Each direction reads into one fixed buffer and writes it out before
//! reading again, so a slow receiver stops reading from the sender: TCP
//! backpressure, no unbounded queue, and no byte is ever dropped. A half
//! close is forwarded; the other direction then gets [`LINGER`] to finish.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// Bytes buffered per direction.
pub const BUF: usize = 64 * 1024;
/// How long the second direction may run after the first has closed.
pub const LINGER: Duration = Duration::from_secs(10);
/// A direction with no bytes for this long is considered dead. Both ends
/// ping every 10 s through the relay, so a live session never gets here.
pub const IDLE: Duration = Duration::from_secs(120);

/// Bytes moved so far, each way; readable while the pump runs.
#[derive(Debug, Default)]
pub struct Counters {
    applet_to_console: AtomicU64,
    console_to_applet: AtomicU64,
}

impl Counters {
    /// `(applet → console, console → applet)` so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.applet_to_console.load(Ordering::Relaxed),
            self.console_to_applet.load(Ordering::Relaxed),
        )
    }
}

/// What the pump did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PumpReport {
    /// Bytes applet → console.
    pub applet_to_console: u64,
    /// Bytes console → applet.
    pub console_to_applet: u64,
    /// Why it stopped, for the audit trail.
    pub reason: String,
}

async fn copy<R, W>(
    mut from: R,
    mut to: W,
    mut record: Option<tokio::fs::File>,
    count: &AtomicU64,
) -> &'static str
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF];
    let end = loop {
        let n = match tokio::time::timeout(IDLE, from.read(&mut buf)).await {
            Err(_) => break "idle",
            Ok(Err(_)) => break "error",
            Ok(Ok(0)) => break "closed",
            Ok(Ok(n)) => n,
        };
        if let Some(f) = record.as_mut()
            && f.write_all(&buf[..n]).await.is_err()
        {
            record = None;
        }
        // TLS streams hold written data until flushed; flushing per read
        // keeps interactive latency at one read.
        if to.write_all(&buf[..n]).await.is_err() || to.flush().await.is_err() {
            break "error";
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
    };
    let _ = to.shutdown().await;
    end
}

async fn recorder(dir: Option<&Path>, name: &str) -> Option<tokio::fs::File> {
    let dir = dir?;
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .await
        .ok()
}

/// Runs until both directions end, a direction idles out, or `stop`
/// turns true (forced shutdown after the drain timeout).
pub async fn run<A, C>(
    applet: A,
    console: C,
    record_dir: Option<&Path>,
    record_name: &str,
    mut stop: watch::Receiver<bool>,
    counters: &Counters,
) -> PumpReport
where
    A: AsyncRead + AsyncWrite + Unpin,
    C: AsyncRead + AsyncWrite + Unpin,
{
    let (ar, aw) = tokio::io::split(applet);
    let (cr, cw) = tokio::io::split(console);
    let rec_a = recorder(record_dir, &format!("{record_name}.applet-to-console")).await;
    let rec_c = recorder(record_dir, &format!("{record_name}.console-to-applet")).await;
    let a2c = copy(ar, cw, rec_a, &counters.applet_to_console);
    let c2a = copy(cr, aw, rec_c, &counters.console_to_applet);
    tokio::pin!(a2c, c2a);
    let stopped = async {
        while !*stop.borrow_and_update() {
            if stop.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::pin!(stopped);

    let first = tokio::select! {
        end = &mut a2c => Some(("applet", end)),
        end = &mut c2a => Some(("console", end)),
        _ = &mut stopped => None,
    };
    let reason = match first {
        None => "gateway shut down".to_owned(),
        Some((side, end)) => {
            let rest = async {
                if side == "applet" {
                    (&mut c2a).await
                } else {
                    (&mut a2c).await
                }
            };
            tokio::select! {
                _ = rest => {}
                _ = tokio::time::sleep(LINGER) => {}
                _ = &mut stopped => {}
            }
            match end {
                "closed" => format!("{side} closed the connection"),
                "idle" => format!("{side} silent for {}s", IDLE.as_secs()),
                _ => format!("{side} connection failed"),
            }
        }
    };
    let (applet_to_console, console_to_applet) = counters.get();
    PumpReport {
        applet_to_console,
        console_to_applet,
        reason,
    }
}
