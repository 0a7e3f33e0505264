//! A protocol-level relay client, for tests of what a misbehaving or
//! unauthorized client gets (the real binaries never send such hellos).

use crate::Gateway;
use lifeline_protocol::relay::{Hello, Role, ServerMsg, VERSION};
use lifeline_protocol::trailer::SignedTrailer;
use lifeline_protocol::{ALPN_RELAY, SessionGuid};
use lifeline_session::addr::HostPort;
use lifeline_session::gateway_conn::{self, GatewayStream, LinkError};
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
            .block_on(gateway_conn::connect(&addr, tls, Duration::from_secs(10)))
            .expect("connect to gateway");
        Self { rt, stream }
    }

    /// Sends a hello with `credential` as it is (a console's token, or a
    /// made-up applet proof).
    pub fn hello(&mut self, role: Role, guid: SessionGuid, credential: &str) {
        self.send_hello(&Hello {
            version: VERSION,
            role,
            guid,
            credential: credential.as_bytes().to_vec(),
        });
    }

    /// The hello the real applet at `applet_file` would send on this
    /// connection: its admission proof over this connection, made with the
    /// secret in its trailer.
    pub fn applet_hello_for(&self, applet_file: &std::path::Path) -> Hello {
        let file = std::fs::read(applet_file).expect("read the applet");
        let trailer = SignedTrailer::find(&file).expect("a personalized applet");
        let body = trailer
            .verify(&trailer.claimed_key().expect("key"), 0)
            .expect("a valid trailer");
        gateway_conn::applet_hello(&self.stream, body.guid, &body.applet_secret)
            .expect("admission proof")
    }

    /// Sends [`applet_hello_for`](Self::applet_hello_for).
    pub fn applet_hello(&mut self, applet_file: &std::path::Path) {
        let hello = self.applet_hello_for(applet_file);
        self.send_hello(&hello);
    }

    /// Sends this hello as it is.
    pub fn send_hello(&mut self, hello: &Hello) {
        self.rt
            .block_on(gateway_conn::send_hello(&mut self.stream, hello))
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
                tokio::time::timeout(Duration::from_secs(10), gateway_conn::read_server_msg(s))
                    .await
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
