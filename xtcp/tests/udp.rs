//! XTCP over real, connected UDP sockets on loopback.
#![allow(clippy::unwrap_used)]

mod common;

use common::pair_over;
use lifeline_xtcp::{UdpPath, XtcpConfig};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

/// Two loopback sockets connected to each other, as paths probing up to
/// `max_datagram`.
async fn connected_pair(max_datagram: usize) -> (UdpPath, UdpPath) {
    let sa = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sb = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sa.connect(sb.local_addr().unwrap()).await.unwrap();
    sb.connect(sa.local_addr().unwrap()).await.unwrap();
    (
        UdpPath::new(sa, max_datagram).unwrap(),
        UdpPath::new(sb, max_datagram).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xtcp_over_udp_sockets_moves_bytes_exactly_and_finds_a_large_mtu() {
    // Loopback carries 64 KiB datagrams; discovery may go that far.
    let (pa, pb) = connected_pair(65_527).await;
    let (mut client, mut server) = pair_over(pa, pb, &XtcpConfig::default()).await;

    let len = 32 << 20;
    let data: Vec<u8> = (0..len).map(|i| (i % 241) as u8).collect();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        client.write_all(&sent).await.unwrap();
        client.shutdown().await.unwrap();
        client
    });
    let mut got = Vec::with_capacity(len);
    tokio::time::timeout(Duration::from_secs(60), server.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(got == data, "bytes differ ({} of {len})", got.len());
    let client = writer.await.unwrap();
    let mtu = client.stats().path.current_mtu;
    assert!(mtu > 8192, "path MTU discovery stopped at {mtu}");
}

/// On a real socket at an internet-sized MTU, quinn sends the bulk in
/// batches through its own UDP layer (GSO, or `sendmmsg`): many datagrams
/// per system call, not one per call and task hop as over a
/// [`lifeline_xtcp::DatagramPath`]. (quinn counts received datagrams per
/// packet, not per call, so its statistics cannot show GRO.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_path_sends_datagrams_in_batches() {
    let (pa, pb) = connected_pair(1472).await;
    let (mut client, mut server) = pair_over(pa, pb, &XtcpConfig::default()).await;
    let data = common::data(16 << 20, 7);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        client.write_all(&sent).await.unwrap();
        client.shutdown().await.unwrap();
        client
    });
    let mut got = Vec::with_capacity(data.len());
    tokio::time::timeout(Duration::from_secs(60), server.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(
        got == data,
        "bytes differ ({} of {})",
        got.len(),
        data.len()
    );
    let client = writer.await.unwrap();
    let tx = client.stats().udp_tx;
    assert!(
        client.stats().path.current_mtu <= 1472,
        "the path MTU went past its bound"
    );
    assert!(
        tx.datagrams >= 4 * tx.ios,
        "sent {} datagrams in {} system calls",
        tx.datagrams,
        tx.ios
    );
}
