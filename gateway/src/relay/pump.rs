//! Copies opaque bytes between a paired applet and console.
//!
//! Each direction reads into one fixed buffer, turns the outer TLS
//! records in it around in place (see [`super::record`]) and writes them
//! out before reading again, so a slow receiver stops reading from the
//! sender: TCP backpressure, no unbounded queue, and no byte is ever
//! dropped. A half close is forwarded; the other direction then gets
//! [`LINGER`] to finish.

use super::record::{self, APPLICATION_DATA, Content, HEADER, Keys, TakenOver};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::watch;
use tokio::time::Instant;

/// A direction's buffer to begin with: room for two whole records.
pub const BUF: usize = 2 * (HEADER + record::MAX_BODY);
/// The most a direction's buffer grows to: each read that fills it
/// doubles it, so bulk moves in large reads and writes (a system call
/// per 256 KiB instead of per 64 KiB cut the relay's system time by a
/// third, see `benches/`), while an interactive session keeps the small
/// one.
pub const MAX_BUF: usize = 256 * 1024;
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

/// How one direction ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// The sender closed cleanly (close_notify, forwarded).
    Closed,
    /// The sender was silent for [`IDLE`].
    Idle,
    /// A read or write failed, or the sender broke TLS.
    Error,
}

/// One direction: opens each record from `from` in place, seals it again
/// for `to` in the same bytes, and writes every whole record a read
/// brought in one write. A record cut by the read's end waits, at the
/// buffer's start, for the rest.
async fn forward(
    from: &mut ReadHalf<'_>,
    mut open: Keys,
    to: &mut WriteHalf<'_>,
    mut seal: Keys,
    early: Vec<u8>,
    mut record: Option<tokio::fs::File>,
    count: &AtomicU64,
) -> End {
    let mut buf = vec![0u8; BUF];
    let mut filled = 0;
    let mut close_sent = false;
    let idle = tokio::time::sleep(IDLE);
    tokio::pin!(idle);
    let mut last = Instant::now();
    let end = 'pump: {
        if !early.is_empty() {
            let mut out = Vec::new();
            if seal.seal_new(APPLICATION_DATA, &early, &mut out).is_err()
                || to.write_all(&out).await.is_err()
            {
                break 'pump End::Error;
            }
            count.fetch_add(early.len() as u64, Ordering::Relaxed);
        }
        loop {
            let read = tokio::select! {
                read = from.read(&mut buf[filled..]) => read,
                () = &mut idle => {
                    if last.elapsed() >= IDLE {
                        break 'pump End::Idle;
                    }
                    idle.as_mut().reset(last + IDLE);
                    continue;
                }
            };
            let n = match read {
                Ok(0) | Err(_) => break 'pump End::Error,
                Ok(n) => n,
            };
            last = Instant::now();
            filled += n;
            if filled == buf.len() && buf.len() < MAX_BUF {
                buf.resize((buf.len() * 2).min(MAX_BUF), 0);
            }
            let batch = relay_records(&mut buf[..filled], &mut open, &mut seal, record.is_some());
            if let (Some(f), Some(plain)) = (record.as_mut(), &batch.recorded)
                && f.write_all(plain).await.is_err()
            {
                record = None;
            }
            if to.write_all(&buf[..batch.done]).await.is_err() {
                break 'pump End::Error;
            }
            count.fetch_add(batch.moved, Ordering::Relaxed);
            if let Some(end) = batch.end {
                close_sent = end == End::Closed;
                break 'pump end;
            }
            buf.copy_within(batch.done..filled, 0);
            filled -= batch.done;
        }
    };
    // The receiver hears a clean close either way: the peer's own
    // close_notify, forwarded, or the gateway's.
    if !close_sent && let Ok(alert) = seal.close_notify() {
        let _ = to.write_all(&alert).await;
    }
    let _ = to.shutdown().await;
    end
}

/// What one read's worth of records came to.
struct Batch {
    /// Bytes of whole records, sealed for the other hop.
    done: usize,
    /// Application bytes among them.
    moved: u64,
    /// Their application bytes in the clear, when the relay records.
    recorded: Option<Vec<u8>>,
    /// This direction ends after these records.
    end: Option<End>,
}

fn relay_records(buf: &mut [u8], open: &mut Keys, seal: &mut Keys, recording: bool) -> Batch {
    let mut batch = Batch {
        done: 0,
        moved: 0,
        recorded: recording.then(Vec::new),
        end: None,
    };
    batch.end = loop {
        let at = batch.done;
        let len = match record::whole(&buf[at..]) {
            Ok(Some(len)) => len,
            Ok(None) => break None,
            Err(_) => break Some(End::Error),
        };
        let (head, body) = buf[at..at + HEADER + len].split_at_mut(HEADER);
        let header: [u8; HEADER] = head.try_into().expect("a header's length");
        let ends = match open.open(&header, body) {
            Ok(Content::Data(content)) => {
                batch.moved += content as u64;
                if let Some(plain) = batch.recorded.as_mut() {
                    plain.extend_from_slice(&body[..content]);
                }
                None
            }
            // A close_notify is forwarded as it came; any other alert too,
            // and this direction then ends.
            Ok(Content::CloseNotify) => Some(End::Closed),
            Ok(Content::Alert) => Some(End::Error),
            // A key update (or a broken record): the other hop cannot
            // follow, so the direction ends before it.
            Err(_) => break Some(End::Error),
        };
        if seal.seal(&header, body).is_err() {
            break Some(End::Error);
        }
        batch.done = at + HEADER + len;
        if ends.is_some() {
            break ends;
        }
    };
    batch
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
pub async fn run(
    applet: TakenOver,
    console: TakenOver,
    record_dir: Option<&Path>,
    record_name: &str,
    mut stop: watch::Receiver<bool>,
    counters: &Counters,
) -> PumpReport {
    let (mut applet, mut console) = (applet, console);
    let (mut ar, mut aw) = applet.tcp.split();
    let (mut cr, mut cw) = console.tcp.split();
    let rec_a = recorder(record_dir, &format!("{record_name}.applet-to-console")).await;
    let rec_c = recorder(record_dir, &format!("{record_name}.console-to-applet")).await;
    let a2c = forward(
        &mut ar,
        applet.open,
        &mut cw,
        console.seal,
        applet.early,
        rec_a,
        &counters.applet_to_console,
    );
    let c2a = forward(
        &mut cr,
        console.open,
        &mut aw,
        applet.seal,
        console.early,
        rec_c,
        &counters.console_to_applet,
    );
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
                End::Closed => format!("{side} closed the connection"),
                End::Idle => format!("{side} silent for {}s", IDLE.as_secs()),
                End::Error => format!("{side} connection failed"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use lifeline_tls::{PinnedSpkiVerifier, identity::SessionIdentity};
    use rustls::crypto::{CryptoProvider, ring as ring_provider};
    use rustls::{ClientConfig, ServerConfig, SupportedCipherSuite};
    use std::sync::Arc;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::client::TlsStream;
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    struct Server {
        config: Arc<ServerConfig>,
        pin: [u8; 32],
    }

    fn server() -> Server {
        let id = SessionIdentity::generate("relay test").unwrap();
        let mut config = ServerConfig::builder_with_provider(lifeline_tls::outer_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![id.cert.clone()], id.key())
            .unwrap();
        config.send_tls13_tickets = 0;
        config.enable_secret_extraction = true;
        Server {
            config: Arc::new(config),
            pin: id.pin(),
        }
    }

    /// A client offering only `suite` that sends `early` at once, and the
    /// gateway's end of its connection, taken over from rustls after
    /// reading half of `early` through it.
    async fn connect(
        server: &Server,
        suite: SupportedCipherSuite,
        early: &[u8],
    ) -> (TlsStream<TcpStream>, TakenOver) {
        let provider = Arc::new(CryptoProvider {
            cipher_suites: vec![suite],
            ..ring_provider::default_provider()
        });
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedSpkiVerifier::new(server.pin)))
            .with_no_client_auth();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(server.config.clone());
        let (client, accepted) = tokio::join!(
            async {
                let tcp = TcpStream::connect(addr).await.unwrap();
                let name =
                    rustls::pki_types::ServerName::try_from(lifeline_tls::E2E_SERVER_NAME).unwrap();
                let mut tls = TlsConnector::from(Arc::new(client))
                    .connect(name, tcp)
                    .await
                    .unwrap();
                tls.write_all(early).await.unwrap();
                tls.flush().await.unwrap();
                tls
            },
            async {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut tls = acceptor.accept(tcp).await.unwrap();
                // The relay takes over after reading a hello: read a part
                // of what came, so that rustls holds the rest.
                if !early.is_empty() {
                    let mut first = vec![0u8; early.len() / 2];
                    tls.read_exact(&mut first).await.unwrap();
                    assert_eq!(first, early[..first.len()]);
                }
                tls
            }
        );
        (client, record::take_over(accepted).unwrap())
    }

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    }

    async fn write_in_odd_pieces(mut to: impl AsyncWriteExt + Unpin, data: &[u8]) {
        let mut at = 0;
        for size in [1, 100, 16_384, 16_385, 65_536, 3].iter().cycle() {
            if at == data.len() {
                break;
            }
            let end = (at + size).min(data.len());
            to.write_all(&data[at..end]).await.unwrap();
            at = end;
        }
        to.flush().await.unwrap();
        to.shutdown().await.unwrap();
    }

    async fn read_to_end(mut from: impl AsyncReadExt + Unpin) -> Vec<u8> {
        let mut got = Vec::new();
        from.read_to_end(&mut got).await.unwrap();
        got
    }

    #[tokio::test]
    async fn records_are_turned_around_in_place_between_suites_with_nothing_lost() {
        let server = server();
        let aes = ring_provider::cipher_suite::TLS13_AES_256_GCM_SHA384;
        let chacha = ring_provider::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256;
        let (applet, applet_end) = connect(&server, aes, b"held by rustls when taken over").await;
        let (console, console_end) = connect(&server, chacha, b"").await;
        let (_stop_tx, stop) = watch::channel(false);
        let counters = Counters::default();
        let up = bytes(3 << 20, 1);
        let down = bytes(1 << 20, 2);
        let (ar, aw) = tokio::io::split(applet);
        let (cr, cw) = tokio::io::split(console);
        let (report, (), (), got_down, got_up) = tokio::join!(
            run(applet_end, console_end, None, "t", stop, &counters),
            write_in_odd_pieces(aw, &up),
            write_in_odd_pieces(cw, &down),
            read_to_end(ar),
            read_to_end(cr),
        );
        let early = &b"held by rustls when taken over"[15..];
        assert_eq!(&got_up[..early.len()], early);
        assert!(got_up[early.len()..] == up[..], "applet → console differs");
        assert!(got_down == down, "console → applet differs");
        assert_eq!(report.applet_to_console, (early.len() + up.len()) as u64);
        assert_eq!(report.console_to_applet, down.len() as u64);
        assert!(
            report.reason.ends_with("closed the connection"),
            "{}",
            report.reason
        );
    }

    #[tokio::test]
    async fn a_key_update_ends_the_relay_after_what_came_before_it() {
        let server = server();
        let aes = ring_provider::cipher_suite::TLS13_AES_256_GCM_SHA384;
        let (mut applet, applet_end) = connect(&server, aes, b"").await;
        let (console, console_end) = connect(&server, aes, b"").await;
        let (_stop_tx, stop) = watch::channel(false);
        let counters = Counters::default();
        let before = bytes(100_000, 3);
        let writer = async {
            applet.write_all(&before).await.unwrap();
            applet.get_mut().1.refresh_traffic_keys().unwrap();
            applet.write_all(b"after the key update").await.unwrap();
            applet.flush().await.unwrap();
            applet
        };
        let (console_r, mut console_w) = tokio::io::split(console);
        let console_side = async {
            let got = read_to_end(console_r).await;
            console_w.shutdown().await.unwrap();
            got
        };
        let (report, _applet, got) = tokio::join!(
            run(applet_end, console_end, None, "t", stop, &counters),
            writer,
            console_side,
        );
        // The console gets every byte from before the update and then a
        // clean close, not garbage.
        assert!(got == before);
        assert_eq!(report.applet_to_console, before.len() as u64);
        assert_eq!(report.reason, "applet connection failed");
    }
}
