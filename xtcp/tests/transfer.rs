//! XTCP under impairment, with virtual time: byte-exact transfers in both
//! directions for each profile, TCP-like half-close, abort, dead-path
//! detection, keepalive, peer restart, and pin refusal.
#![allow(clippy::unwrap_used)]

use lifeline_session::identity::SessionIdentity;
use lifeline_xtcp::sim::{BurstLoss, LinkProfile, LossWindow, SimLink, SimPath};
use lifeline_xtcp::{DatagramPath, XtcpConfig, XtcpStream, accept, connect};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn pair_over(
    a: Arc<dyn DatagramPath>,
    b: Arc<dyn DatagramPath>,
    cfg: &XtcpConfig,
) -> (XtcpStream, XtcpStream) {
    let id = SessionIdentity::generate("xtcp test").unwrap();
    let (cert, key, pin) = (id.cert.clone(), id.key(), id.pin());
    let server_cfg = cfg.clone();
    let server = tokio::spawn(async move { accept(b, cert, key, &server_cfg).await });
    let client = connect(a, pin, cfg).await.unwrap();
    (client, server.await.unwrap().unwrap())
}

async fn pair(
    profile: LinkProfile,
    seed: u64,
) -> (XtcpStream, XtcpStream, Arc<SimPath>, Arc<SimPath>) {
    let (a, b) = SimLink::pair(profile, seed);
    let (c, s) = pair_over(a.clone(), b.clone(), &XtcpConfig::default()).await;
    (c, s, a, b)
}

/// Deterministic, non-repeating-looking test data.
fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x1234_5678u32 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Sends `len` bytes each way at once; checks both arrive byte-exact.
async fn exchange(client: XtcpStream, server: XtcpStream, len: usize) {
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = tokio::io::split(server);
    let up = data(len, 1);
    let down = data(len, 2);
    let (up2, down2) = (up.clone(), down.clone());
    let w1 = tokio::spawn(async move {
        cw.write_all(&up2).await.unwrap();
        cw.shutdown().await.unwrap();
        cw
    });
    let w2 = tokio::spawn(async move {
        sw.write_all(&down2).await.unwrap();
        sw.shutdown().await.unwrap();
        sw
    });
    let r1 = tokio::spawn(async move {
        let mut got = Vec::with_capacity(len);
        sr.read_to_end(&mut got).await.unwrap();
        (got, sr)
    });
    let r2 = tokio::spawn(async move {
        let mut got = Vec::with_capacity(len);
        cr.read_to_end(&mut got).await.unwrap();
        (got, cr)
    });
    let (got_up, _sr) = r1.await.unwrap();
    let (got_down, _cr) = r2.await.unwrap();
    assert!(
        got_up == up,
        "client→server bytes differ ({} of {len})",
        got_up.len()
    );
    assert!(
        got_down == down,
        "server→client bytes differ ({} of {len})",
        got_down.len()
    );
    let _ = (w1.await.unwrap(), w2.await.unwrap());
}

fn profiles() -> Vec<(&'static str, LinkProfile)> {
    let ms = Duration::from_millis;
    vec![
        ("clean", LinkProfile::clean()),
        (
            "40ms RTT + 1% loss",
            LinkProfile::wan(ms(40), 0.01, 100_000_000),
        ),
        (
            "100ms RTT + 5% loss",
            LinkProfile::wan(ms(100), 0.05, 100_000_000),
        ),
        (
            "reordering + duplication",
            LinkProfile {
                delay: ms(10),
                jitter: ms(2),
                reorder: 0.05,
                reorder_delay: ms(15),
                duplicate: 0.03,
                ..LinkProfile::wan(ms(20), 0.0, 100_000_000)
            },
        ),
        (
            "10% burst loss for 2 s mid-transfer",
            LinkProfile {
                windows: vec![LossWindow {
                    from: ms(300),
                    length: ms(2000),
                    loss: 0.10,
                }],
                burst: Some(BurstLoss {
                    enter: 0.001,
                    exit: 0.3,
                    loss: 0.5,
                }),
                ..LinkProfile::wan(ms(40), 0.0, 50_000_000)
            },
        ),
    ]
}

#[tokio::test(start_paused = true)]
#[ignore = "XTCP in progress (issue 3): takes minutes in a debug build; run with --ignored"]
async fn transfers_arrive_byte_exact_under_every_profile() {
    for (name, profile) in profiles() {
        for (seed, len) in [(1u64, 0usize), (2, 1), (3, 100_000), (4, 3 << 20)] {
            let (c, s, a, _b) = pair(profile.clone(), seed).await;
            let t0 = tokio::time::Instant::now();
            exchange(c, s, len).await;
            let st = a.sent_stats();
            eprintln!(
                "{name}: {len} B each way in {:?} (virtual); link {st:?}",
                t0.elapsed()
            );
            if len >= 100_000 && profile.loss > 0.0 {
                assert!(
                    st.lost > 0,
                    "{name}: the profile must have dropped something"
                );
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn half_close_is_seen_as_eof_and_the_other_way_stays_open() {
    let (mut c, mut s, _a, _b) = pair(
        LinkProfile::wan(Duration::from_millis(20), 0.0, 100_000_000),
        9,
    )
    .await;
    c.write_all(b"request").await.unwrap();
    c.shutdown().await.unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"request");
    s.write_all(b"response after the peer's EOF").await.unwrap();
    s.shutdown().await.unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"response after the peer's EOF");
}

#[tokio::test(start_paused = true)]
async fn abort_is_seen_as_a_reset() {
    let (mut c, mut s, _a, _b) = pair(
        LinkProfile::wan(Duration::from_millis(20), 0.0, 100_000_000),
        10,
    )
    .await;
    c.write_all(b"partial").await.unwrap();
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).await.unwrap();
    c.abort();
    let err = s.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_dead_path_is_detected_within_the_timeout() {
    let (mut c, mut s, a, _b) = pair(
        LinkProfile::wan(Duration::from_millis(20), 0.0, 100_000_000),
        11,
    )
    .await;
    let t0 = tokio::time::Instant::now();
    a.cut();
    let (mut b1, mut b2) = ([0u8; 1], [0u8; 1]);
    let (e1, e2) = tokio::join!(c.read(&mut b1), s.read(&mut b2));
    let took = t0.elapsed();
    for e in [e1.unwrap_err(), e2.unwrap_err()] {
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    }
    let cfg = XtcpConfig::default();
    assert!(
        took >= cfg.dead_after - Duration::from_secs(1)
            && took <= cfg.dead_after + Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn keepalive_keeps_an_idle_binding_warm() {
    let (mut c, mut s, a, b) = pair(
        LinkProfile::wan(Duration::from_millis(20), 0.0, 100_000_000),
        12,
    )
    .await;
    let before = (a.sent_stats().sent, b.sent_stats().sent);
    // A minute of silence: far beyond the dead-path timeout.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let after = (a.sent_stats().sent, b.sent_stats().sent);
    let keepalives = (after.0 - before.0) + (after.1 - before.1);
    // One keepalive (and its ack) every few seconds, from at least one side.
    assert!(
        keepalives >= 20,
        "only {keepalives} packets in an idle minute"
    );
    c.write_all(b"still here").await.unwrap();
    let mut buf = [0u8; 10];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"still here");
}

#[tokio::test(start_paused = true)]
#[ignore = "XTCP in progress (issue 3): the reset is seen, but the reconnect times out (old and new endpoint drivers share one path waker)"]
async fn a_restarted_peer_resets_the_old_stream_and_accepts_a_new_one() {
    let (a, b) = SimLink::pair(
        LinkProfile::wan(Duration::from_millis(20), 0.0, 100_000_000),
        13,
    );
    let id = SessionIdentity::generate("restart").unwrap();
    let cfg = XtcpConfig::default();
    let (cert, key, pin) = (id.cert.clone(), id.key(), id.pin());
    let b2 = b.clone();
    let (c2, k2, cfg2) = (cert.clone(), id.key(), cfg.clone());
    let server = tokio::spawn(async move { accept(b2, c2, k2, &cfg2).await.unwrap() });
    let mut client = connect(a.clone(), pin, &cfg).await.unwrap();
    let mut old = server.await.unwrap();
    // The accepting end "crashes": its state is gone without a goodbye
    // (its close frame never makes it onto the link).
    b.block_outbound(true);
    old.abort();
    drop(old);
    tokio::time::sleep(Duration::from_millis(50)).await;
    b.block_outbound(false);
    let b3 = b.clone();
    let cfg3 = cfg.clone();
    let server = tokio::spawn(async move { accept(b3, cert, key, &cfg3).await.unwrap() });
    let t0 = tokio::time::Instant::now();
    client.write_all(b"are you there?").await.unwrap();
    let mut buf = [0u8; 1];
    let err = client.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert!(
        t0.elapsed() < cfg.dead_after / 2,
        "reset noticed in {:?}",
        t0.elapsed()
    );
    let mut fresh = connect(a, pin, &cfg).await.unwrap();
    let mut new = server.await.unwrap();
    fresh.write_all(b"hello again").await.unwrap();
    let mut got = [0u8; 11];
    new.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"hello again");
}

#[tokio::test(start_paused = true)]
async fn a_wrong_pin_is_refused() {
    let (a, b) = SimLink::pair(LinkProfile::clean(), 14);
    let real = SessionIdentity::generate("real").unwrap();
    let other = SessionIdentity::generate("other").unwrap();
    let cfg = XtcpConfig::default();
    let (cert, key) = (real.cert.clone(), real.key());
    let cfg2 = cfg.clone();
    let _server = tokio::spawn(async move { accept(b, cert, key, &cfg2).await });
    let err = connect(a, other.pin(), &cfg).await.unwrap_err();
    assert!(err.is_handshake_refusal(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn exporter_matches_on_both_ends() {
    let (c, s, _a, _b) = pair(LinkProfile::clean(), 15).await;
    let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
    c.export_keying_material(&mut x, b"EXPORTER-test", b"ctx")
        .unwrap();
    s.export_keying_material(&mut y, b"EXPORTER-test", b"ctx")
        .unwrap();
    assert_eq!(x, y);
    let mut z = [0u8; 32];
    c.export_keying_material(&mut z, b"EXPORTER-test", b"other")
        .unwrap();
    assert_ne!(x, z);
}
