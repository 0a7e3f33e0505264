//! XTCP over a real webrtc-ice connection on loopback (host candidates),
//! and the checks an ICE offer from a peer goes through.
#![allow(clippy::unwrap_used)]

use lifeline_session::direct::ice::{
    IceAgent, IceError, IceOffer, IceOptions, IceRole, check_offer,
};
use lifeline_session::identity::SessionIdentity;
use lifeline_xtcp::{UdpPath, XtcpConfig, XtcpStream};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn loopback() -> IceOptions {
    IceOptions {
        include_loopback: true,
        only_ips: Some(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]),
        max_datagram: 8192,
        ..IceOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xtcp_runs_over_a_real_ice_connection_on_loopback() {
    let (a, offer_a) = IceAgent::gather(&loopback()).await.unwrap();
    let (b, offer_b) = IceAgent::gather(&loopback()).await.unwrap();
    assert!(
        offer_a.candidates.iter().all(|c| c.contains("127.0.0.1")),
        "{offer_a:?}"
    );
    let timeout = Duration::from_secs(10);
    let (pa, pb) = tokio::join!(
        a.connect(IceRole::Controlling, &offer_b, timeout),
        b.connect(IceRole::Controlled, &offer_a, timeout),
    );
    let (pa, pb) = (pa.unwrap().path, pb.unwrap().path);

    let (client, server) = pair_over(pa, pb).await;
    // 8 MiB each way at once, byte-exact.
    let client = tokio::time::timeout(Duration::from_secs(60), exchange(client, server, 8 << 20))
        .await
        .unwrap();
    // Path MTU discovery found more than the internet default over ICE's
    // 8 KiB datagrams.
    let mtu = client.stats().path.current_mtu;
    assert!(mtu > 1500, "path MTU stayed at {mtu}");
}

/// An XTCP connection over the two ends of a datagram path.
async fn pair_over(a: UdpPath, b: UdpPath) -> (XtcpStream, XtcpStream) {
    let id = SessionIdentity::generate("ice test").unwrap();
    let (cert, key, pin) = (id.cert.clone(), id.key(), id.pin());
    let cfg = XtcpConfig::default();
    let server_cfg = cfg.clone();
    let server =
        tokio::spawn(async move { lifeline_xtcp::accept(b, cert, key, &server_cfg).await });
    let client = lifeline_xtcp::connect(a, pin, &cfg).await.unwrap();
    (client, server.await.unwrap().unwrap())
}

/// `len` bytes each way at once, each checked on arrival; returns the
/// client's stream (for its statistics).
async fn exchange(client: XtcpStream, server: XtcpStream, len: usize) -> XtcpStream {
    let pattern = |i: usize, seed: u8| (i as u8).wrapping_mul(31).wrapping_add(seed);
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = tokio::io::split(server);
    let send = |seed: u8| (0..len).map(move |i| pattern(i, seed)).collect::<Vec<u8>>();
    let (up, down) = (send(1), send(2));
    let w1 = tokio::spawn(async move {
        cw.write_all(&up).await.unwrap();
        cw.shutdown().await.unwrap();
        cw
    });
    let w2 = tokio::spawn(async move {
        sw.write_all(&down).await.unwrap();
        sw.shutdown().await.unwrap();
    });
    let mut got_up = Vec::with_capacity(len);
    sr.read_to_end(&mut got_up).await.unwrap();
    let mut got_down = Vec::with_capacity(len);
    cr.read_to_end(&mut got_down).await.unwrap();
    assert!(got_up.len() == len && got_up.iter().enumerate().all(|(i, b)| *b == pattern(i, 1)));
    assert!(
        got_down.len() == len
            && got_down
                .iter()
                .enumerate()
                .all(|(i, b)| *b == pattern(i, 2))
    );
    let cw = w1.await.unwrap();
    w2.await.unwrap();
    cr.unsplit(cw)
}

fn good_offer() -> IceOffer {
    IceOffer {
        ufrag: "abcd".into(),
        pwd: "abcdefghijklmnopqrstuv".into(),
        candidates: vec!["candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".into()],
    }
}

#[test]
fn malformed_offers_are_refused_before_reaching_the_agent() {
    check_offer(&good_offer()).unwrap();
    type Edit = Box<dyn Fn(&mut IceOffer)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("short ufrag", Box::new(|o| o.ufrag = "abc".into())),
        ("bad ufrag char", Box::new(|o| o.ufrag = "ab\ncd".into())),
        ("short pwd", Box::new(|o| o.pwd = "short".into())),
        ("no candidates", Box::new(|o| o.candidates.clear())),
        (
            "too many",
            Box::new(|o| o.candidates = vec![o.candidates[0].clone(); 33]),
        ),
        ("long line", Box::new(|o| o.candidates[0] = "x".repeat(300))),
    ];
    for (what, edit) in cases {
        let mut o = good_offer();
        edit(&mut o);
        assert!(
            matches!(check_offer(&o), Err(IceError::BadOffer(_))),
            "{what} was accepted"
        );
    }
}

#[tokio::test]
async fn an_unparseable_candidate_is_a_clear_error() {
    let (a, _) = IceAgent::gather(&loopback()).await.unwrap();
    let mut o = good_offer();
    o.candidates = vec!["candidate:garbage".into()];
    let err = a
        .connect(IceRole::Controlling, &o, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, IceError::BadOffer(_)), "{err}");
}
