//! The portal API as an HTTP client sees it: HTTP/2 and HTTP/1.1 on the
//! same TLS port as the relay, JSON errors for bad input, the one-time
//! applet download, the signed directory; and malformed relay hellos get a
//! clear refusal.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use lifeline_protocol::directory::SignedDirectory;
use lifeline_protocol::relay::{RefuseCode, ServerMsg};
use lifeline_protocol::{ALPN_H2, ALPN_HTTP1};
use lifeline_session::addr::HostPort;
use lifeline_session::tls::{GatewayTrust, gateway_client_config};
use lifeline_tests::raw::RawClient;
use lifeline_tests::*;
use std::time::Duration;

/// One request over a fresh TLS connection with the given ALPN.
fn request(
    gw: &Gateway,
    alpn: &[u8],
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>, String) {
    let mut req = https::Request::new(method, path);
    req.alpn = alpn;
    req.body = body.to_vec();
    if let Some(t) = token {
        req.headers.push(("authorization", format!("Bearer {t}")));
    }
    let a = https::https(gw, &req);
    (a.status, a.body, a.alpn)
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(b)))
}

#[test]
fn portal_speaks_h2_and_http1_and_answers_errors_in_json() {
    let data = TempDir::new("gw");
    let gw = Gateway::start(data.path(), None, &[]);
    for alpn in [ALPN_H2, ALPN_HTTP1] {
        let (status, body, negotiated) = request(&gw, alpn, "GET", "/api/v1/health", None, b"");
        assert_eq!(negotiated.as_bytes(), alpn);
        assert_eq!(status, 200);
        assert_eq!(json(&body)["status"], "ok");
    }
    let (status, body, _) = request(&gw, ALPN_H2, "GET", "/api/v1/sessions", None, b"");
    assert_eq!(status, 401);
    assert_eq!(json(&body)["code"], "unauthorized");
    let (status, body, _) = request(&gw, ALPN_HTTP1, "POST", "/api/v1/login", None, b"{not json");
    assert_eq!(status, 400);
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("invalid JSON")
    );
    let big = vec![b'x'; 200 * 1024];
    // Over HTTP/2 an early answer to an unread body is delivered cleanly
    // (over HTTP/1.1 the close races the client's upload).
    let (status, body, _) = request(&gw, ALPN_H2, "POST", "/api/v1/login", None, &big);
    assert_eq!(status, 413);
    assert_eq!(json(&body)["code"], "too_large");
    let (status, _, _) = request(&gw, ALPN_H2, "GET", "/no/such/thing", None, b"");
    assert_eq!(status, 404);
}

#[test]
fn applet_download_is_one_time_and_directory_is_signed() {
    let data = TempDir::new("gw");
    let gw = Gateway::start(data.path(), None, &[]);
    gw.add_technician("ada@example.com", "Ada", "correct horse battery");
    let console = Console::new();
    console.login(&gw, "ada@example.com", "correct horse battery");
    let files = TempDir::new("files");
    let guid = console.session_new("once", &files.path().join("applet"));
    let login: serde_json::Value =
        serde_json::from_slice(&std::fs::read(console.dir.path().join("login.json")).unwrap())
            .unwrap();
    let token = login["token"].as_str().unwrap();

    let (status, body, _) = request(
        &gw,
        ALPN_H2,
        "GET",
        &format!("/api/v1/sessions/{guid}/applet"),
        Some(token),
        b"",
    );
    assert_eq!(status, 410);
    assert_eq!(json(&body)["code"], "already_downloaded");
    let (status, body, _) = request(
        &gw,
        ALPN_H2,
        "GET",
        &format!("/api/v1/sessions/{guid}"),
        Some(token),
        b"",
    );
    assert_eq!(status, 200);
    assert_eq!(json(&body)["downloaded"], true);

    let (status, body, _) = request(&gw, ALPN_HTTP1, "GET", "/api/v1/directory", None, b"");
    assert_eq!(status, 200);
    let signed: SignedDirectory = serde_json::from_slice(&body).unwrap();
    let key_hex = String::from_utf8(gw.admin(&["operator-key"], "").stdout).unwrap();
    let key = lifeline_protocol::hex::decode_array::<32>(key_hex.trim()).unwrap();
    let dir = signed.verify(&key).unwrap();
    assert_eq!(dir.nodes[0].addr, gw.addr);
    let mut forged = signed.clone();
    forged.directory = forged.directory.replace(&gw.addr, "203.0.113.9:443");
    assert!(forged.verify(&key).is_err());
}

#[test]
fn malformed_hellos_get_a_clear_refusal() {
    let data = TempDir::new("gw");
    let gw = Gateway::start(data.path(), None, &[]);
    let mut c = RawClient::connect(&gw);
    c.send_raw(b"GET / HTTP/1.1\r\n\r\n");
    match c.next_msg().unwrap() {
        ServerMsg::Refused { code, message } => {
            assert_eq!(code, RefuseCode::BadRequest);
            assert!(message.contains("hello"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let mut c = RawClient::connect(&gw);
    c.send_raw(&[0x01, 0xff, 0xff]);
    match c.next_msg().unwrap() {
        ServerMsg::Refused { code, message } => {
            assert_eq!(code, RefuseCode::BadRequest);
            assert!(message.contains("too large"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn zero_config_start_creates_and_reuses_the_data_dir() {
    let home = TempDir::new("home");
    let start = || {
        let mut child = std::process::Command::new(bin("gateway"))
            .arg("serve")
            .env("HOME", home.path())
            .env_remove("XDG_DATA_HOME")
            .env("LIFELINE_LISTEN", "127.0.0.1:0")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(out));
        let mut text = String::new();
        while !text.contains("fingerprint") {
            text.push_str(&lines.next().unwrap().unwrap());
            text.push('\n');
        }
        let _ = child.kill();
        let _ = child.wait();
        text
    };
    let first = start();
    assert!(first.contains("created data directory"), "{first}");
    assert!(first.contains("listening on 127.0.0.1:"), "{first}");
    let dir = home.path().join(".local/share/lifeline-gateway");
    for f in [
        "operator-ca.pem",
        "operator-ca.key.pem",
        "operator-signing.pk8",
        "gateway.db",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let second = start();
    assert!(!second.contains("created data directory"));
    let fp = |t: &str| {
        t.lines()
            .find(|l| l.contains("fingerprint"))
            .unwrap()
            .to_owned()
    };
    assert_eq!(fp(&first), fp(&second), "the operator CA is reused");
}

/// A request body that sends a little and then nothing more, while
/// claiming more is coming (its exact size says so).
struct StallingBody {
    first: Option<Bytes>,
    claimed: u64,
}

impl hyper::body::Body for StallingBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        match self.first.take() {
            Some(b) => std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(b)))),
            None => std::task::Poll::Pending,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.claimed)
    }
}

/// Once the headers are in, the body has its own deadline: a client that
/// stalls mid-body gets 408 and loses its connection, over HTTP/1.1 and
/// HTTP/2 alike, instead of holding it for the connection's whole life.
#[test]
fn a_stalled_request_body_is_cut_at_the_body_deadline() {
    let data = TempDir::new("gw");
    let gw = Gateway::start(data.path(), None, &["--body-timeout", "2"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for alpn in [ALPN_HTTP1, ALPN_H2] {
        let started = std::time::Instant::now();
        let status = rt.block_on(async {
            let fp = lifeline_protocol::hex::decode_array::<32>(&gw.fingerprint).unwrap();
            let tls = gateway_client_config(&GatewayTrust::CaFingerprint(fp), &[alpn]).unwrap();
            let addr = HostPort::parse(&gw.addr, 0).unwrap();
            let stream =
                lifeline_session::gateway_conn::connect(&addr, tls, Duration::from_secs(10))
                    .await
                    .unwrap();
            let body = StallingBody {
                first: Some(Bytes::from_static(b"{\"email\": \"ada@exa")),
                claimed: 4096,
            };
            let req = http::Request::builder()
                .method("POST")
                .uri(format!("https://{}/api/v1/login", gw.addr))
                .header("content-type", "application/json")
                .body(body)
                .unwrap();
            let resp = if alpn == ALPN_H2 {
                let (mut s, conn) = hyper::client::conn::http2::handshake(
                    TokioExecutor::new(),
                    TokioIo::new(stream),
                )
                .await
                .unwrap();
                tokio::spawn(conn);
                s.send_request(req).await
            } else {
                let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .unwrap();
                tokio::spawn(conn);
                s.send_request(req).await
            };
            tokio::time::timeout(Duration::from_secs(30), async {
                resp.map(|r| r.status().as_u16())
            })
            .await
            .expect("no answer")
        });
        let took = started.elapsed();
        assert_eq!(
            status.ok(),
            Some(408),
            "over {}",
            String::from_utf8_lossy(alpn)
        );
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(20),
            "answered after {took:?}"
        );
    }
}
