//! Frames inside the end-to-end TLS between applet and console.
//!
//! Each frame is `type: u8, len: u32, payload[len]`, with `len` bounded by
//! [`MAX_PAYLOAD`] so a peer cannot make the other allocate without limit.
//! The first frame on a fresh channel is the applet's [`Frame::Proof`]; the
//! console answers [`Frame::Accepted`] or [`Frame::End`].

use crate::codec::{DecodeError, Reader, Writer, clamp_str};

/// Largest frame payload.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Largest chat message in bytes.
pub const MAX_CHAT: usize = 4096;
/// Largest end reason in bytes.
pub const MAX_REASON: usize = 256;
/// Bytes of the frame header.
pub const HEADER_LEN: usize = 5;

const PROOF: u8 = 1;
const ACCEPTED: u8 = 2;
const CHAT: u8 = 3;
const END: u8 = 4;
const PING: u8 = 5;
const PONG: u8 = 6;

/// Who ended a session, carried in [`Frame::End`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    /// The end user ended it.
    User,
    /// The technician ended it.
    Technician,
    /// A check failed (bad proof, protocol error).
    Refused,
}

impl EndedBy {
    fn code(self) -> u8 {
        match self {
            EndedBy::User => 1,
            EndedBy::Technician => 2,
            EndedBy::Refused => 3,
        }
    }

    fn from_code(c: u8) -> Result<Self, DecodeError> {
        match c {
            1 => Ok(EndedBy::User),
            2 => Ok(EndedBy::Technician),
            3 => Ok(EndedBy::Refused),
            _ => Err(DecodeError::invalid("end", "unknown party")),
        }
    }

    /// Lower-case name used in events and audit.
    pub fn as_str(self) -> &'static str {
        match self {
            EndedBy::User => "user",
            EndedBy::Technician => "technician",
            EndedBy::Refused => "refused",
        }
    }
}

/// One end-to-end message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Applet → console: HMAC proving possession of the applet secret.
    Proof {
        /// See [`crate::proof::applet_proof`].
        mac: [u8; 32],
    },
    /// Console → applet: the proof checked out; the session is live.
    Accepted,
    /// A chat line, either way.
    Chat {
        /// The text (at most [`MAX_CHAT`] bytes).
        text: String,
    },
    /// Either way: the sender ends the session; no frame follows.
    End {
        /// Who ended it.
        by: EndedBy,
        /// Human-readable reason.
        reason: String,
    },
    /// Either way: liveness and round-trip probe.
    Ping(u64),
    /// Answer to [`Frame::Ping`] with the same value.
    Pong(u64),
}

impl Frame {
    /// Encodes the frame; over-long texts are shortened to their limits.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        let ty = match self {
            Frame::Proof { mac } => {
                w.put(mac);
                PROOF
            }
            Frame::Accepted => ACCEPTED,
            Frame::Chat { text } => {
                w.put(clamp_str(text, MAX_CHAT).as_bytes());
                CHAT
            }
            Frame::End { by, reason } => {
                w.u8(by.code()).str16(clamp_str(reason, MAX_REASON));
                END
            }
            Frame::Ping(v) => {
                w.u64(*v);
                PING
            }
            Frame::Pong(v) => {
                w.u64(*v);
                PONG
            }
        };
        let mut out = Writer::new();
        out.u8(ty).bytes32(w.as_slice());
        out.into_vec()
    }

    /// Decodes one frame from the front of `buf`; returns it and the bytes used.
    pub fn decode(buf: &[u8]) -> Result<(Self, usize), DecodeError> {
        let mut r = Reader::new(buf);
        let ty = r.u8()?;
        let payload = r.bytes32("session frame", MAX_PAYLOAD)?;
        let used = r.consumed();
        let mut p = Reader::new(payload);
        let short = |e| match e {
            DecodeError::Incomplete => DecodeError::invalid("session frame", "payload too short"),
            other => other,
        };
        let frame = match ty {
            PROOF => Frame::Proof {
                mac: p.array().map_err(short)?,
            },
            ACCEPTED => Frame::Accepted,
            CHAT => {
                if payload.len() > MAX_CHAT {
                    return Err(DecodeError::invalid("chat", "too long"));
                }
                let text = std::str::from_utf8(p.take(payload.len()).map_err(short)?)
                    .map_err(|_| DecodeError::invalid("chat", "not UTF-8"))?;
                Frame::Chat {
                    text: text.to_owned(),
                }
            }
            END => Frame::End {
                by: EndedBy::from_code(p.u8().map_err(short)?)?,
                reason: p.str16("reason", MAX_REASON).map_err(short)?.to_owned(),
            },
            PING => Frame::Ping(p.u64().map_err(short)?),
            PONG => Frame::Pong(p.u64().map_err(short)?),
            _ => return Err(DecodeError::invalid("session frame", "unknown type")),
        };
        p.finish("session frame")?;
        Ok((frame, used))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_prefix_is_incomplete() {
        let f = Frame::End {
            by: EndedBy::User,
            reason: "bye".into(),
        };
        let enc = f.encode();
        assert_eq!(Frame::decode(&enc), Ok((f, enc.len())));
        for n in 0..enc.len() {
            assert_eq!(Frame::decode(&enc[..n]), Err(DecodeError::Incomplete));
        }
    }

    #[test]
    fn oversized_length_is_refused_before_buffering() {
        let mut b = vec![CHAT];
        b.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            Frame::decode(&b),
            Err(DecodeError::Invalid { .. })
        ));
    }

    #[test]
    fn chat_is_clamped_on_encode() {
        let long = "x".repeat(MAX_CHAT + 10);
        let enc = Frame::Chat { text: long }.encode();
        let (f, _) = Frame::decode(&enc).unwrap();
        assert_eq!(
            f,
            Frame::Chat {
                text: "x".repeat(MAX_CHAT)
            }
        );
    }
}
