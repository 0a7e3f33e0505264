//! One HTTPS request to a gateway's port, as a browser or the console
//! would make it: TLS pinned to the operator CA, `h2` or `http/1.1` by
//! ALPN, from a chosen loopback source address (for per-source limits).

use crate::Gateway;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lifeline_protocol::ALPN_H2;
use lifeline_session::tls::{GatewayTrust, gateway_client_config};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// What came back.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// Response body.
    pub body: Vec<u8>,
    /// The ALPN protocol the gateway chose.
    pub alpn: String,
}

impl Answer {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text, or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A request to be sent with [`https`].
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// ALPN to offer (`h2` or `http/1.1`).
    pub alpn: &'a [u8],
    /// Method.
    pub method: &'a str,
    /// Path (and query).
    pub path: &'a str,
    /// Extra headers.
    pub headers: Vec<(&'a str, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Source address to connect from (loopback addresses other than
    /// 127.0.0.1 work on Linux without set-up).
    pub from: Option<IpAddr>,
}

impl<'a> Request<'a> {
    /// `METHOD PATH` over h2 from 127.0.0.1, no headers, no body.
    pub fn new(method: &'a str, path: &'a str) -> Self {
        Self {
            alpn: ALPN_H2,
            method,
            path,
            headers: Vec::new(),
            body: Vec::new(),
            from: None,
        }
    }
}

/// Sends `req` over a fresh connection to `gw`.
pub fn https(gw: &Gateway, req: &Request<'_>) -> Answer {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let fp = lifeline_protocol::hex::decode_array::<32>(&gw.fingerprint).unwrap();
        let tls = gateway_client_config(&GatewayTrust::CaFingerprint(fp), &[req.alpn]).unwrap();
        let target: SocketAddr = gw.addr.parse().unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(from) = req.from {
            socket.bind(SocketAddr::new(from, 0)).unwrap();
        }
        let tcp = tokio::time::timeout(Duration::from_secs(10), socket.connect(target))
            .await
            .expect("connect in time")
            .expect("connect");
        let name = rustls::pki_types::ServerName::IpAddress(target.ip().into());
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .expect("TLS with the gateway");
        let alpn =
            String::from_utf8_lossy(stream.get_ref().1.alpn_protocol().unwrap_or(b"")).into_owned();
        let mut builder = http::Request::builder()
            .method(req.method)
            .uri(format!("https://{}{}", gw.addr, req.path));
        for (k, v) in &req.headers {
            builder = builder.header(*k, v.as_str());
        }
        let request = builder
            .body(Full::new(Bytes::copy_from_slice(&req.body)))
            .unwrap();
        let resp = if alpn.as_bytes() == ALPN_H2 {
            let (mut s, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            s.send_request(request).await.unwrap()
        } else {
            let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            s.send_request(request).await.unwrap()
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Answer {
            status,
            headers,
            body,
            alpn,
        }
    })
}
