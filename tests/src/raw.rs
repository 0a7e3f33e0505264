//! A protocol-level relay client, for tests of what a misbehaving or
//! unauthorized client gets (the real binaries never send such hellos).

use crate::Gateway;
use lifeline_protocol::relay::{Hello, Role, ServerMsg, VERSION};
use lifeline_protocol::{ALPN_RELAY, SessionGuid};
use lifeline_session::addr::HostPort;
use lifeline_session::relay_link::{self, GatewayStream, LinkError};
use lifeline_session::tls::{GatewayTrust, gateway_client_config};
use std::time::Duration;

/// A relay connection driven by hand.
#[derive(Debug)]
pub struct RawClient {
    rt: tokio::runtime::Runtime,
    stream: GatewayStream,
}

impl RawClient {
    /// Connects with TLS (ALPN `lifeline/1`), trusting the gateway's CA.
    pub fn connect(gw: &Gateway) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let fp = lifeline_protocol::hex::decode_array::<32>(&gw.fingerprint).expect("fingerprint");
        let tls = gateway_client_config(&GatewayTrust::CaFingerprint(fp), &[ALPN_RELAY])
            .expect("tls config");
        let addr = HostPort::parse(&gw.addr, 0).expect("addr");
        let stream = rt
            .block_on(relay_link::connect(&addr, tls, Duration::from_secs(10)))
            .expect("connect to gateway");
        Self { rt, stream }
    }

    /// Sends a hello.
    pub fn hello(&mut self, role: Role, guid: SessionGuid, token: &str) {
        let hello = Hello {
            version: VERSION,
            role,
            guid,
            token: token.as_bytes().to_vec(),
        };
        self.rt
            .block_on(relay_link::send_hello(&mut self.stream, &hello))
            .expect("send hello");
    }

    /// Sends raw bytes (for malformed-input tests).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let s = &mut self.stream;
        self.rt
            .block_on(async { s.write_all(bytes).await.and(s.flush().await) })
            .expect("send");
    }

    /// The next gateway message (10 s at most).
    pub fn next_msg(&mut self) -> Result<ServerMsg, LinkError> {
        let s = &mut self.stream;
        self.rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(10), relay_link::read_server_msg(s)).await
            })
            .unwrap_or(Err(LinkError::Timeout("test".into())))
    }

    /// Hello, then the first answer.
    pub fn ask(gw: &Gateway, role: Role, guid: SessionGuid, token: &str) -> ServerMsg {
        let mut c = Self::connect(gw);
        c.hello(role, guid, token);
        c.next_msg().expect("an answer from the gateway")
    }
}
