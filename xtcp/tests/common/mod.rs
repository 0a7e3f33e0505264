//! What the XTCP test files share: a connected pair over two paths, and a
//! byte-exact exchange both ways at once.
#![allow(dead_code, clippy::unwrap_used)]

use lifeline_tls::identity::SessionIdentity;
use lifeline_xtcp::{Carrier, XtcpConfig, XtcpStream, accept, connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An XTCP connection over `a` (connecting end) and `b` (accepting end,
/// with a fresh session certificate the connecting end pins).
pub async fn pair_over(
    a: impl Into<Carrier>,
    b: impl Into<Carrier>,
    cfg: &XtcpConfig,
) -> (XtcpStream, XtcpStream) {
    let b: Carrier = b.into();
    let id = SessionIdentity::generate("xtcp test").unwrap();
    let (cert, key, pin) = (id.cert.clone(), id.key(), id.pin());
    let server_cfg = cfg.clone();
    let server = tokio::spawn(async move { accept(b, cert, key, &server_cfg).await });
    let client = connect(a, pin, cfg).await.unwrap();
    (client, server.await.unwrap().unwrap())
}

/// Deterministic, non-repeating-looking test data.
pub fn data(len: usize, seed: u8) -> Vec<u8> {
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
/// Returns the streams (for their statistics).
pub async fn exchange(
    client: XtcpStream,
    server: XtcpStream,
    len: usize,
) -> (XtcpStream, XtcpStream) {
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
    let (got_up, sr) = r1.await.unwrap();
    let (got_down, cr) = r2.await.unwrap();
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
    let (cw, sw) = (w1.await.unwrap(), w2.await.unwrap());
    (cr.unsplit(cw), sr.unsplit(sw))
}
