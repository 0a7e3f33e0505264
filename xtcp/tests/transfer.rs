//! XTCP under impairment, with virtual time: byte-exact transfers in both
//! directions for each profile, TCP-like half-close, abort, dead-path
//! detection, keepalive, peer restart, and pin refusal.
#![allow(clippy::unwrap_used)]

mod common;

use common::{exchange, pair_over};
use lifeline_tls::identity::SessionIdentity;
use lifeline_xtcp::sim::{BurstLoss, LinkProfile, LinkStats, LossWindow, SimLink, SimPath};
use lifeline_xtcp::{Congestion, XtcpConfig, XtcpStream, accept, connect};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn pair(
    profile: LinkProfile,
    seed: u64,
) -> (XtcpStream, XtcpStream, Arc<SimPath>, Arc<SimPath>) {
    let (a, b) = SimLink::pair(profile, seed);
    let (c, s) = pair_over(a.clone(), b.clone(), &XtcpConfig::default()).await;
    (c, s, a, b)
}

/// Transfers of several sizes each way at once over `profile`; checks
/// every byte and returns the link statistics of the largest run (both
/// directions summed) and its virtual duration.
async fn transfers_under(name: &str, profile: LinkProfile, big: usize) -> (LinkStats, Duration) {
    let mut last = (LinkStats::default(), Duration::ZERO);
    for (seed, len) in [(1u64, 0usize), (2, 1), (3, 100_000), (4, big)] {
        let (c, s, a, b) = pair(profile.clone(), seed).await;
        let t0 = tokio::time::Instant::now();
        exchange(c, s, len).await;
        let took = t0.elapsed();
        let (x, y) = (a.sent_stats(), b.sent_stats());
        let st = LinkStats {
            sent: x.sent + y.sent,
            lost: x.lost + y.lost,
            queue_drops: x.queue_drops + y.queue_drops,
            reordered: x.reordered + y.reordered,
            duplicated: x.duplicated + y.duplicated,
            ..LinkStats::default()
        };
        eprintln!("{name}: {len} B each way in {took:?} (virtual); link {st:?}");
        last = (st, took);
    }
    last
}

const MS: fn(u64) -> Duration = Duration::from_millis;

#[tokio::test(start_paused = true)]
async fn byte_exact_on_a_clean_lan() {
    // Under a paused clock a link needs some delay: with none, every RTT
    // sample is zero and quinn stalls.
    let profile = LinkProfile {
        delay: Duration::from_micros(100),
        ..LinkProfile::clean()
    };
    let (st, _) = transfers_under("clean", profile, 8 << 20).await;
    assert_eq!(st.lost, 0);
}

#[tokio::test(start_paused = true)]
async fn byte_exact_at_40ms_rtt_and_1_percent_loss() {
    let (st, _) = transfers_under(
        "40ms+1%",
        LinkProfile::wan(MS(40), 0.01, 100_000_000),
        8 << 20,
    )
    .await;
    assert!(st.lost > 50, "the link must have dropped packets: {st:?}");
}

#[tokio::test(start_paused = true)]
async fn byte_exact_at_100ms_rtt_and_5_percent_loss() {
    let (st, _) = transfers_under(
        "100ms+5%",
        LinkProfile::wan(MS(100), 0.05, 100_000_000),
        8 << 20,
    )
    .await;
    assert!(st.lost > 250, "the link must have dropped packets: {st:?}");
}

#[tokio::test(start_paused = true)]
async fn byte_exact_with_reordering_and_duplication() {
    let profile = LinkProfile {
        jitter: MS(2),
        reorder: 0.05,
        reorder_delay: MS(15),
        duplicate: 0.03,
        ..LinkProfile::wan(MS(20), 0.0, 100_000_000)
    };
    let (st, _) = transfers_under("reorder+dup", profile, 8 << 20).await;
    assert!(st.reordered > 100 && st.duplicated > 50, "{st:?}");
}

#[tokio::test(start_paused = true)]
async fn byte_exact_through_2s_of_10_percent_burst_loss_mid_transfer() {
    // 16 MiB each way at 50 Mbit/s takes at least 2.7 s: the loss window
    // (0.3 s to 2.3 s after the link comes up) falls inside the transfer.
    let profile = LinkProfile {
        windows: vec![LossWindow {
            from: MS(300),
            length: MS(2000),
            loss: 0.10,
        }],
        burst: Some(BurstLoss {
            enter: 0.001,
            exit: 0.3,
            loss: 0.5,
        }),
        ..LinkProfile::wan(MS(40), 0.0, 50_000_000)
    };
    let (st, took) = transfers_under("burst", profile, 16 << 20).await;
    assert!(
        took > MS(2300),
        "the transfer ended before the loss window did: {took:?}"
    );
    assert!(st.lost > 500, "{st:?}");
}

/// Virtual time to move `len` bytes one way over `profile` with `cc`.
async fn one_way(profile: LinkProfile, cc: Congestion, len: usize) -> (Duration, LinkStats) {
    let (a, b) = SimLink::pair(profile, 21);
    let cfg = XtcpConfig {
        congestion: cc,
        ..XtcpConfig::default()
    };
    let (mut c, mut s) = pair_over(a.clone(), b, &cfg).await;
    let t0 = tokio::time::Instant::now();
    let w = tokio::spawn(async move {
        c.write_all(&vec![1u8; len]).await.unwrap();
        c.shutdown().await.unwrap();
        c
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert_eq!(got.len(), len);
    let _c = w.await.unwrap();
    (t0.elapsed(), a.sent_stats())
}

#[tokio::test(start_paused = true)]
async fn random_loss_does_not_collapse_the_window_as_it_does_cubics() {
    // 100 ms RTT, 5% random loss, a 20 Mbit/s bottleneck with a queue of
    // one bandwidth-delay product.
    let profile = LinkProfile::wan(MS(100), 0.05, 20_000_000);
    let len = 4 << 20;
    let (tolerant, st) = one_way(profile.clone(), Congestion::LossTolerantCubic, len).await;
    let (cubic, _) = one_way(profile, Congestion::Cubic, len).await;
    eprintln!("4 MiB at 100 ms + 5%: loss-tolerant {tolerant:?}, CUBIC {cubic:?}; {st:?}");
    // 4 MiB at 20 Mbit/s is 1.7 s of serialisation.
    assert!(
        tolerant < Duration::from_secs(6),
        "loss-tolerant took {tolerant:?}"
    );
    assert!(
        cubic > tolerant * 4,
        "CUBIC {cubic:?} vs loss-tolerant {tolerant:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_congested_bottleneck_still_gets_backoff() {
    // No random loss; a 10 Mbit/s bottleneck whose queue (64 KiB ≈ 50 ms)
    // overflows when the sender pushes too hard. The queue's delay marks
    // those drops as congestion, so the sender backs off as CUBIC does:
    // few drops, and the link's rate is used.
    let profile = LinkProfile::wan(MS(40), 0.0, 10_000_000);
    let len = 8 << 20;
    let (took, st) = one_way(profile, Congestion::LossTolerantCubic, len).await;
    let rate = len as f64 * 8.0 / took.as_secs_f64() / 1e6;
    eprintln!("8 MiB through 10 Mbit/s: {took:?} = {rate:.1} Mbit/s; {st:?}");
    assert!(rate > 7.0, "only {rate:.1} Mbit/s of 10");
    let drop_rate = st.queue_drops as f64 / st.sent as f64;
    assert!(
        drop_rate < 0.03,
        "{:.1}% of packets dropped at the queue",
        drop_rate * 100.0
    );
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
async fn a_restarted_peer_resets_the_old_stream_and_accepts_a_new_one() {
    let (a, b) = SimLink::pair(
        LinkProfile::wan(Duration::from_millis(20), 0.0, 100_000_000),
        13,
    );
    let id = SessionIdentity::generate("restart").unwrap();
    let cfg = XtcpConfig::default();
    let (cert, key, pin) = (id.cert.clone(), id.key(), id.pin());
    let (b1, c1, k1, cfg1) = (b.clone(), cert.clone(), id.key(), cfg.clone());
    let server = tokio::spawn(async move { accept(b1, c1, k1, &cfg1).await.unwrap() });
    let mut client = connect(a.clone(), pin, &cfg).await.unwrap();
    let old = server.await.unwrap();
    // The accepting end crashes: its socket goes dead without a goodbye,
    // and the restarted process listens on the same address with the same
    // session key.
    let b2 = b.restart();
    std::mem::forget(old);
    let cfg2 = cfg.clone();
    let server = tokio::spawn(async move { accept(b2, cert, key, &cfg2).await.unwrap() });
    let t0 = tokio::time::Instant::now();
    client.write_all(b"are you there?").await.unwrap();
    let mut buf = [0u8; 1];
    let err = client.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    // A stateless reset, not the dead-path timeout.
    assert!(
        t0.elapsed() < Duration::from_secs(1),
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
