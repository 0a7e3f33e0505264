//! The gateway handshake on ALPN `lifeline/1`.
//!
//! ```text
//! client (applet or console)                    gateway
//!   Hello{version, role, guid, credential} ──▶
//!                                      ◀──────  Waiting{observed, node}   (applet only)
//!                                      ◀──────  Ping                      (while waiting)
//!                                      ◀──────  Paired{stun, console?}
//!   ═══════════ opaque bytes both ways (the end-to-end TLS) ═══════════
//!                                      ◀──────  Refused{code, message}    (instead, then close)
//!   Leave{reason}                      ──▶          (applet, instead of waiting on:
//!                                      ◀──────  Refused{Ended, …}  the user ended the session)
//! ```
//!
//! Every message is a frame `type: u8, len: u16, payload[len]`. After `Paired`
//! nothing on the stream is framed by this module any more.

use crate::codec::{DecodeError, Reader, Writer, clamp_str};
use crate::guid::SessionGuid;

/// Bytes of a frame header: type, then the payload length (u16).
pub const HEADER_LEN: usize = 3;

/// The payload length a frame header announces, refused if over
/// [`MAX_PAYLOAD`]. Readers read exactly the header, then exactly this
/// many bytes, so nothing after a frame is consumed.
pub fn payload_len(header: [u8; HEADER_LEN]) -> Result<usize, DecodeError> {
    let len = usize::from(u16::from_be_bytes([header[1], header[2]]));
    if len > MAX_PAYLOAD {
        return Err(DecodeError::invalid("handshake frame", "too long"));
    }
    Ok(len)
}

/// The only protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Largest payload of a handshake frame.
pub const MAX_PAYLOAD: usize = 1024;
/// Largest credential (console token or applet admission proof).
pub const MAX_CREDENTIAL: usize = 256;
/// Largest human-readable text in a handshake frame.
pub const MAX_TEXT: usize = 512;

const HELLO: u8 = 0x01;
const LEAVE: u8 = LEAVE_TYPE;
/// The first byte of a [`Leave`] frame (a gateway reading a waiting
/// applet's connection byte by byte tells it by this).
pub const LEAVE_TYPE: u8 = 0x02;
const WAITING: u8 = 0x81;
const PAIRED: u8 = 0x82;
const REFUSED: u8 = 0x83;
const PING: u8 = 0x84;

/// Which end of a session a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The end user's applet.
    Applet,
    /// The technician's console.
    Console,
}

impl Role {
    fn code(self) -> u8 {
        match self {
            Role::Applet => 1,
            Role::Console => 2,
        }
    }

    fn from_code(c: u8) -> Result<Self, DecodeError> {
        match c {
            1 => Ok(Role::Applet),
            2 => Ok(Role::Console),
            _ => Err(DecodeError::invalid("hello", "unknown role")),
        }
    }

    /// Lower-case name for logs and audit.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Applet => "applet",
            Role::Console => "console",
        }
    }
}

/// The first and only message a client sends before pairing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version the client speaks.
    pub version: u8,
    /// Applet or console.
    pub role: Role,
    /// The session to join.
    pub guid: SessionGuid,
    /// What shows the gateway this client may take its end of the session:
    /// for a console the technician's bearer token; for an applet the
    /// admission proof ([`crate::proof::admission_proof`]), a signature over
    /// this very TLS connection by a key derived from the applet file's
    /// secret, so knowing the GUID is not enough to take the applet's place.
    pub credential: Vec<u8>,
}

/// Why the gateway refused a connection. The numbers are on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefuseCode {
    /// No session has this GUID.
    UnknownSession,
    /// The session's expiry has passed.
    Expired,
    /// The session has ended.
    Ended,
    /// Another applet or console already holds this end of the session.
    AlreadyConnected,
    /// The console's token is missing, expired or not the session's technician.
    NotAuthorized,
    /// The end user is not (or no longer) waiting.
    NotWaiting,
    /// Too many attempts from this address.
    RateLimited,
    /// The hello was malformed or too slow.
    BadRequest,
    /// The node is shutting down; try another or retry shortly.
    ShuttingDown,
    /// The client speaks a version this gateway does not.
    UnsupportedVersion,
    /// Something failed on the gateway.
    Internal,
    /// A code this build does not know.
    Other(u16),
}

impl RefuseCode {
    /// The wire number.
    pub fn code(self) -> u16 {
        match self {
            RefuseCode::UnknownSession => 1,
            RefuseCode::Expired => 2,
            RefuseCode::Ended => 3,
            RefuseCode::AlreadyConnected => 4,
            RefuseCode::NotAuthorized => 5,
            RefuseCode::NotWaiting => 6,
            RefuseCode::RateLimited => 7,
            RefuseCode::BadRequest => 8,
            RefuseCode::ShuttingDown => 9,
            RefuseCode::UnsupportedVersion => 10,
            RefuseCode::Internal => 11,
            RefuseCode::Other(c) => c,
        }
    }

    /// From the wire number.
    pub fn from_code(c: u16) -> Self {
        match c {
            1 => RefuseCode::UnknownSession,
            2 => RefuseCode::Expired,
            3 => RefuseCode::Ended,
            4 => RefuseCode::AlreadyConnected,
            5 => RefuseCode::NotAuthorized,
            6 => RefuseCode::NotWaiting,
            7 => RefuseCode::RateLimited,
            8 => RefuseCode::BadRequest,
            9 => RefuseCode::ShuttingDown,
            10 => RefuseCode::UnsupportedVersion,
            11 => RefuseCode::Internal,
            c => RefuseCode::Other(c),
        }
    }

    /// Whether the session itself is over (unknown, expired or ended), as
    /// opposed to this connection being refused.
    pub fn session_is_over(self) -> bool {
        matches!(
            self,
            RefuseCode::UnknownSession | RefuseCode::Expired | RefuseCode::Ended
        )
    }

    /// Whether a client may usefully retry later (same or other node).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            RefuseCode::ShuttingDown | RefuseCode::RateLimited | RefuseCode::Internal
        )
    }
}

/// A message from the gateway during the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMsg {
    /// The applet is registered and waits for its technician.
    Waiting {
        /// The applet's address as the gateway saw it (`ip:port`).
        observed: String,
        /// The gateway node's name.
        node: String,
    },
    /// Keepalive while waiting; ignore.
    Ping,
    /// The other end is here; from now on the stream is opaque.
    Paired {
        /// This node's STUN server (`host:port`) for the ends' ICE, or
        /// empty when it runs none.
        stun: String,
        /// To the applet of a channel's session (whose file names no
        /// console): who picked it and their console's key. `None`
        /// otherwise; an applet that already knows its console ignores it.
        console: Option<PickedBy>,
    },
    /// The gateway refuses; it closes the connection after this.
    Refused {
        /// Machine-readable reason.
        code: RefuseCode,
        /// Human-readable reason.
        message: String,
    },
}

/// The technician who picked a channel's session, as the gateway tells
/// its applet at pairing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickedBy {
    /// SHA-256 of their console session certificate's SPKI.
    pub console_pin: [u8; 32],
    /// Their display name (at most 256 bytes).
    pub technician_name: String,
}

fn frame(ty: u8, payload: &[u8]) -> Vec<u8> {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let mut w = Writer::new();
    w.u8(ty).bytes16(payload);
    w.into_vec()
}

/// Splits one frame off the front of `buf`: `(type, payload, consumed)`.
fn split_frame(buf: &[u8]) -> Result<(u8, &[u8], usize), DecodeError> {
    let mut r = Reader::new(buf);
    let ty = r.u8()?;
    let payload = r.bytes16("handshake frame", MAX_PAYLOAD)?;
    Ok((ty, payload, r.consumed()))
}

impl Hello {
    /// An applet's hello with its admission proof.
    pub fn applet(guid: SessionGuid, proof: [u8; 64]) -> Self {
        Self {
            version: VERSION,
            role: Role::Applet,
            guid,
            credential: proof.to_vec(),
        }
    }

    /// A console's hello with the technician's bearer token.
    pub fn console(guid: SessionGuid, token: &str) -> Self {
        Self {
            version: VERSION,
            role: Role::Console,
            guid,
            credential: token.as_bytes().to_vec(),
        }
    }

    /// Encodes the frame.
    pub fn encode(&self) -> Vec<u8> {
        assert!(
            self.credential.len() <= MAX_CREDENTIAL,
            "credential too long"
        );
        let mut w = Writer::new();
        w.u8(self.version).u8(self.role.code());
        self.guid.write(&mut w);
        w.bytes16(&self.credential);
        frame(HELLO, w.as_slice())
    }

    /// Decodes one frame from the front of `buf`; returns it and the bytes used.
    pub fn decode(buf: &[u8]) -> Result<(Self, usize), DecodeError> {
        let (ty, payload, used) = split_frame(buf)?;
        if ty != HELLO {
            return Err(DecodeError::invalid("hello", "unexpected frame type"));
        }
        let mut r = Reader::new(payload);
        let version = r.u8().map_err(truncated("hello"))?;
        let role = Role::from_code(r.u8().map_err(truncated("hello"))?)?;
        let guid = SessionGuid::read(&mut r).map_err(truncated("hello"))?;
        let credential = r
            .bytes16("credential", MAX_CREDENTIAL)
            .map_err(truncated("hello"))?
            .to_vec();
        r.finish("hello")?;
        Ok((
            Hello {
                version,
                role,
                guid,
                credential,
            },
            used,
        ))
    }
}

/// A waiting applet's last word: the end user ended the session while the
/// technician was away (the gateway records it, and ends the session, for
/// an applet that proved it holds the session's file). Sent on the
/// connection whose hello registered it; nothing follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leave {
    /// Why, in the end user's words (at most [`MAX_TEXT`] bytes).
    pub reason: String,
}

impl Leave {
    /// Encodes the frame; a longer reason is shortened.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.str16(clamp_str(&self.reason, MAX_TEXT));
        frame(LEAVE, w.as_slice())
    }

    /// Decodes one frame from the front of `buf`; returns it and the bytes
    /// used.
    pub fn decode(buf: &[u8]) -> Result<(Self, usize), DecodeError> {
        let (ty, payload, used) = split_frame(buf)?;
        if ty != LEAVE {
            return Err(DecodeError::invalid("leave", "unexpected frame type"));
        }
        let mut r = Reader::new(payload);
        let reason = r
            .str16("reason", MAX_TEXT)
            .map_err(truncated("leave"))?
            .to_owned();
        r.finish("leave")?;
        Ok((Self { reason }, used))
    }
}

/// Inside a complete frame, running out of bytes means the frame is invalid.
fn truncated(what: &'static str) -> impl Fn(DecodeError) -> DecodeError {
    move |e| match e {
        DecodeError::Incomplete => DecodeError::invalid(what, "payload too short"),
        other => other,
    }
}

impl ServerMsg {
    /// Encodes the frame; texts longer than the limits are shortened.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        let ty = match self {
            ServerMsg::Waiting { observed, node } => {
                w.str16(clamp_str(observed, 128))
                    .str16(clamp_str(node, 128));
                WAITING
            }
            ServerMsg::Ping => PING,
            ServerMsg::Paired { stun, console } => {
                w.str16(clamp_str(stun, 128));
                if let Some(c) = console {
                    w.u8(1)
                        .put(&c.console_pin)
                        .str16(clamp_str(&c.technician_name, 256));
                } else {
                    w.u8(0);
                }
                PAIRED
            }
            ServerMsg::Refused { code, message } => {
                w.u16(code.code()).str16(clamp_str(message, MAX_TEXT));
                REFUSED
            }
        };
        frame(ty, w.as_slice())
    }

    /// Decodes one frame from the front of `buf`; returns it and the bytes used.
    pub fn decode(buf: &[u8]) -> Result<(Self, usize), DecodeError> {
        let (ty, payload, used) = split_frame(buf)?;
        let mut r = Reader::new(payload);
        let msg = match ty {
            WAITING => ServerMsg::Waiting {
                observed: r
                    .str16("observed", 128)
                    .map_err(truncated("waiting"))?
                    .to_owned(),
                node: r
                    .str16("node", 128)
                    .map_err(truncated("waiting"))?
                    .to_owned(),
            },
            PING => ServerMsg::Ping,
            PAIRED => ServerMsg::Paired {
                stun: r
                    .str16("stun", 128)
                    .map_err(truncated("paired"))?
                    .to_owned(),
                console: match r.u8().map_err(truncated("paired"))? {
                    0 => None,
                    1 => Some(PickedBy {
                        console_pin: r.array().map_err(truncated("paired"))?,
                        technician_name: r
                            .str16("technician name", 256)
                            .map_err(truncated("paired"))?
                            .to_owned(),
                    }),
                    _ => return Err(DecodeError::invalid("paired", "bad console flag")),
                },
            },
            REFUSED => ServerMsg::Refused {
                code: RefuseCode::from_code(r.u16().map_err(truncated("refused"))?),
                message: r
                    .str16("message", MAX_TEXT)
                    .map_err(truncated("refused"))?
                    .to_owned(),
            },
            _ => {
                return Err(DecodeError::invalid(
                    "gateway message",
                    "unknown frame type",
                ));
            }
        };
        r.finish("gateway message")?;
        Ok((msg, used))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip_and_prefixes_are_incomplete() {
        let h = Hello {
            version: VERSION,
            role: Role::Console,
            guid: SessionGuid::from_bytes([7; 16]),
            credential: b"tok".to_vec(),
        };
        let enc = h.encode();
        assert_eq!(Hello::decode(&enc), Ok((h, enc.len())));
        for n in 0..enc.len() {
            assert_eq!(Hello::decode(&enc[..n]), Err(DecodeError::Incomplete));
        }
    }

    #[test]
    fn leave_round_trips_and_is_not_a_hello() {
        let l = Leave {
            reason: "done".into(),
        };
        let enc = l.encode();
        assert_eq!(Leave::decode(&enc), Ok((l, enc.len())));
        for n in 0..enc.len() {
            assert_eq!(Leave::decode(&enc[..n]), Err(DecodeError::Incomplete));
        }
        assert!(matches!(
            Hello::decode(&enc),
            Err(DecodeError::Invalid { .. })
        ));
    }

    #[test]
    fn garbage_is_invalid() {
        assert!(matches!(
            Hello::decode(b"GET / HTTP/1.1\r\n"),
            Err(DecodeError::Invalid { .. })
        ));
        assert!(matches!(
            Hello::decode(&[HELLO, 0, 1, 1]),
            Err(DecodeError::Invalid { .. })
        ));
    }

    #[test]
    fn server_messages_round_trip() {
        for m in [
            ServerMsg::Waiting {
                observed: "127.0.0.1:5".into(),
                node: "n1".into(),
            },
            ServerMsg::Ping,
            ServerMsg::Paired {
                stun: "203.0.113.10:3478".into(),
                console: None,
            },
            ServerMsg::Paired {
                stun: String::new(),
                console: Some(PickedBy {
                    console_pin: [3; 32],
                    technician_name: "Ada".into(),
                }),
            },
            ServerMsg::Refused {
                code: RefuseCode::Expired,
                message: "expired".into(),
            },
        ] {
            let enc = m.encode();
            assert_eq!(ServerMsg::decode(&enc), Ok((m, enc.len())));
        }
    }
}
