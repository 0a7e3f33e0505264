//! Frames inside the end-to-end TLS between applet and console.
//!
//! Each frame is `type: u8, len: u32, payload[len]`, with `len` bounded by
//! [`MAX_PAYLOAD`] so a peer cannot make the other allocate without limit.
//! The first frame on a fresh channel is the applet's [`Handshake::Proof`];
//! the console answers [`Handshake::Accepted`] or [`Control::End`].
//!
//! A [`Frame`] is one of six families, each handled whole by one piece of
//! code: [`Handshake`] (securing the session and new paths), [`Control`]
//! (the session core: chat, pings, ending, the cutover, resumption),
//! [`Negotiation`] (the going-direct negotiators), [`ChannelFrame`] (the
//! core's channels), [`TestFrame`] (the link test) and [`Work`] (remote
//! work's requests and answers, `crate::work`).
//!
//! Going direct (see `lifeline_session::direct`):
//!
//! ```text
//! console                                         applet
//!   PathPolicy{tcp, udp, udp_after_ms}  ──────▶              (relay)
//!                                       ◀──────  PathOffer{tcp addrs, udp, note}
//!   ── dials the addresses ──── TCP + TLS ────▶  (or, later, ICE:)
//!   UdpNow (every dial failed: no wait) ──────▶              (relay)
//!                                       ◀──────  IceOffer{…}   (relay)
//!   IceOffer{…}                         ──────▶              (relay)
//!   NatKind{hard, addr}                 ◀─────▶  NatKind{hard, addr}
//!     (one hard, one easy: the birthday punch, besides ICE)
//!   Bind{mac}   ◀══════ on the new path ══════▶  Bind{mac}
//!   Switch{path id} (last on the relay) ──────▶
//!                                       ◀──────  Switch{path id} (last on the relay)
//!   ═════════ everything else on the new path ═════════
//! ```

use crate::codec::{DecodeError, Reader, Writer, clamp_str};
pub use crate::ice::IceOffer;
use crate::work::Work;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Largest frame payload.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Largest chat message in bytes.
pub const MAX_CHAT: usize = 4096;
/// Largest end reason in bytes.
pub const MAX_REASON: usize = 256;
/// Bytes of the frame header.
pub const HEADER_LEN: usize = 5;
/// Most direct TCP addresses an applet offers.
pub const MAX_TCP_ADDRS: usize = 16;
/// Most ICE candidates in one offer.
pub const MAX_ICE_CANDIDATES: usize = crate::ice::MAX_CANDIDATES;
/// Longest ICE credential or candidate line.
pub const MAX_ICE_TEXT: usize = crate::ice::MAX_TEXT;
/// Largest [`ChannelFrame::Data`] payload.
pub const MAX_DATA: usize = 64 * 1024;
/// Largest channel number.
pub const MAX_CHANNEL: u32 = u32::MAX;

const PROOF: u8 = 1;
const ACCEPTED: u8 = 2;
const CHAT: u8 = 3;
const END: u8 = 4;
const PING: u8 = 5;
const PONG: u8 = 6;
const PATH_POLICY: u8 = 7;
const PATH_OFFER: u8 = 8;
const ICE_OFFER: u8 = 9;
const BIND: u8 = 10;
const SWITCH: u8 = 11;
const CHANNEL_DATA: u8 = 12;
const TEST_START: u8 = 13;
const TEST_REQUEST: u8 = 14;
const TEST_RESULT: u8 = 15;
const CHANNEL_OPEN: u8 = 16;
const CHANNEL_CREDIT: u8 = 17;
const CHANNEL_CLOSE: u8 = 18;
const CHANNEL_RESET: u8 = 19;
const RESUME: u8 = 20;
const ACK: u8 = 21;
const WORK: u8 = 22;
const HANDOVER: u8 = 23;
const HANDED_OVER: u8 = 24;
const UDP_NOW: u8 = 25;
const NAT_KIND: u8 = 26;

/// Which traffic class a channel's data belongs to. The sender's scheduler
/// sends control frames first, then interactive channels' data, then bulk
/// channels' data (fairly among them), so a file transfer never holds up
/// a keystroke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// The session's own frames: chat, pings, negotiation, credit, end.
    Control,
    /// Small, latency-sensitive data (a shell's keystrokes and screen).
    Interactive,
    /// Throughput over latency (file transfer, the link test).
    Bulk,
}

/// What a channel carries. The numbers are on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// The link test's checked byte stream (see `TestFrame::Start`).
    LinkTest,
    /// Bytes the other end sends straight back: a round-trip probe that
    /// measures what interactive traffic would see.
    Echo,
    /// A remote shell: keystrokes one way, the terminal's output the other.
    Shell,
    /// One command's output (no terminal).
    Run,
    /// One file's bytes, from its sender to its receiver.
    File,
}

impl ChannelKind {
    fn code(self) -> u8 {
        match self {
            ChannelKind::LinkTest => 1,
            ChannelKind::Echo => 2,
            ChannelKind::Shell => 3,
            ChannelKind::Run => 4,
            ChannelKind::File => 5,
        }
    }

    fn from_code(c: u8) -> Result<Self, DecodeError> {
        match c {
            1 => Ok(ChannelKind::LinkTest),
            2 => Ok(ChannelKind::Echo),
            3 => Ok(ChannelKind::Shell),
            4 => Ok(ChannelKind::Run),
            5 => Ok(ChannelKind::File),
            _ => Err(DecodeError::invalid("channel open", "unknown kind")),
        }
    }

    /// The traffic class of its data.
    pub fn priority(self) -> Priority {
        match self {
            ChannelKind::LinkTest | ChannelKind::File => Priority::Bulk,
            ChannelKind::Echo | ChannelKind::Shell | ChannelKind::Run => Priority::Interactive,
        }
    }
}

/// Who ended a session, carried in [`Control::End`].
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

/// One end-to-end message, by purpose: each family goes whole to the code
/// that handles it. On the wire every frame has its own type byte; the
/// families are only how the code sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Securing the relayed session or a new direct path.
    Handshake(Handshake),
    /// The session's own frames: chat, liveness, ending, the cutover,
    /// resumption.
    Control(Control),
    /// Going direct: what the two negotiators exchange.
    Negotiation(Negotiation),
    /// The channels and their flow control.
    Channel(ChannelFrame),
    /// The link test's announcements and verdicts.
    Test(TestFrame),
    /// Remote work: requests, consent and answers (see [`crate::work`]).
    Work(Work),
}

/// Securing a channel or a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// Applet → console: HMAC proving possession of the applet secret.
    Proof {
        /// See [`crate::proof::applet_proof`].
        mac: [u8; 32],
    },
    /// Console → applet: the proof checked out; the session is live.
    Accepted,
    /// The first frame on a new direct path, both ways: the binding proof
    /// (see [`crate::proof::binding_proof`]).
    Bind {
        /// HMAC over the new channel's exporter, keyed by the relayed one.
        mac: [u8; 32],
    },
}

/// The session's own frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
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
    /// Answer to [`Control::Ping`] with the same value.
    Pong(u64),
    /// The last frame the sender writes on the old path; everything after
    /// it comes on the new path, the one with this id (see
    /// [`crate::proof::path_id`]), so both ends use the same one.
    Switch {
        /// The new path's id.
        path: [u8; 8],
    },
    /// Either way, the first frame of a session and of every resumption
    /// (on the new relay connection, after its end-to-end handshake):
    /// who the sender's session state is, and how many of the peer's
    /// sequenced frames it has processed, per lane. The peer resends what
    /// follows if `incarnation` is the one it knew, and starts afresh
    /// otherwise (the sender restarted and kept nothing).
    Resume {
        /// Random per run of the sender's session core.
        incarnation: u64,
        /// Sequenced frames of the peer's processed so far: the control
        /// lane and the bulk lane.
        next: [u64; 2],
    },
    /// Either way: these many sequenced frames of the peer's (control
    /// lane, bulk lane) have been processed; the peer may forget them.
    Ack {
        /// Sequenced frames processed so far, per lane.
        next: [u64; 2],
    },
    /// Console → applet: the technician hands the session to a colleague
    /// whose console will prove this key. From now on the applet accepts
    /// only that key (the console it already trusts introduced it; the
    /// gateway never can), and answers [`Control::HandedOver`].
    Handover {
        /// SHA-256 of the new console certificate's SPKI.
        console_pin: [u8; 32],
        /// The new technician's display name.
        technician: String,
    },
    /// Applet → console: the [`Control::Handover`] is taken; the handing
    /// console may leave.
    HandedOver,
}

/// Going direct (the exchange drawn in the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Negotiation {
    /// Console → applet, when going direct starts: which direct paths the
    /// console will try.
    PathPolicy {
        /// Try direct TCP (console dials the applet's offered addresses).
        tcp: bool,
        /// Try ICE over UDP carrying XTCP.
        udp: bool,
        /// Start ICE this long after the offer if TCP has not worked.
        udp_after_ms: u32,
    },
    /// Applet → console: the answer to [`Negotiation::PathPolicy`].
    PathOffer {
        /// Addresses the applet's TCP listener may be reached at (empty:
        /// no direct TCP).
        tcp: Vec<SocketAddr>,
        /// Whether the applet will run ICE.
        udp: bool,
        /// Why something was left out (the applet's policy), or "".
        note: String,
    },
    /// Either way: ICE credentials and candidates.
    IceOffer(IceOffer),
    /// Console → applet: every direct TCP attempt has failed, so the
    /// applet starts ICE now instead of waiting out TCP's head start.
    UdpNow,
    /// Either way, when both do UDP: how this end's NAT maps. One socket
    /// asked the gateway's STUN server on its two ports; `hard` if the
    /// mapped ports differed (a new mapping per destination: a symmetric
    /// NAT), and `addr` is that socket's mapped address. A hard end and an
    /// easy one then punch by the birthday paradox, which ICE cannot.
    NatKind {
        /// The mapping depends on the destination.
        hard: bool,
        /// The probing socket's public address.
        addr: SocketAddr,
    },
}

/// The channels: numbered streams of one [`ChannelKind`] each, with
/// credit-based flow control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelFrame {
    /// Either way: opens channel `channel` (the opener's numbers are odd
    /// for the console, even for the applet, so both can open at once).
    Open {
        /// Its number.
        channel: u32,
        /// What it carries.
        kind: ChannelKind,
    },
    /// Bytes on a channel, within the credit the receiver granted.
    Data {
        /// The channel.
        channel: u32,
        /// The bytes (at most [`MAX_DATA`]); shared, so that keeping them
        /// for a resend copies nothing.
        data: bytes::Bytes,
    },
    /// The receiver consumed `bytes` of a channel's data: the sender may
    /// send that many more.
    Credit {
        /// The channel.
        channel: u32,
        /// Bytes of new credit.
        bytes: u32,
    },
    /// The sender will send no more on this channel (half-close).
    Close {
        /// The channel.
        channel: u32,
    },
    /// The channel is abandoned, both ways, at once.
    Reset {
        /// The channel.
        channel: u32,
        /// Why.
        reason: String,
    },
}

/// The link test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestFrame {
    /// The data of channel `channel` (a link-test channel the sender
    /// opened) is the link-test stream of `seed`, `len` bytes; the
    /// receiver checks them and answers [`TestFrame::Result`].
    Start {
        /// The channel carrying it.
        channel: u32,
        /// Seed of the test stream.
        seed: u64,
        /// Bytes that follow.
        len: u64,
    },
    /// Console → applet: please run a link test towards me.
    Request {
        /// Seed of the test stream.
        seed: u64,
        /// Bytes to send.
        len: u64,
    },
    /// The receiver's verdict on a link test.
    Result {
        /// Every byte arrived, in order, once.
        ok: bool,
        /// Bytes received.
        bytes: u64,
        /// The first problem, or "".
        detail: String,
    },
}

macro_rules! family {
    ($($ty:ident => $variant:ident),*) => {$(
        impl From<$ty> for Frame {
            fn from(f: $ty) -> Self {
                Frame::$variant(f)
            }
        }
    )*};
}

family!(
    Handshake => Handshake,
    Control => Control,
    Negotiation => Negotiation,
    ChannelFrame => Channel,
    TestFrame => Test,
    Work => Work
);

fn put_addr(w: &mut Writer, a: &SocketAddr) {
    match a.ip() {
        IpAddr::V4(ip) => w.u8(4).put(&ip.octets()),
        IpAddr::V6(ip) => w.u8(6).put(&ip.octets()),
    };
    w.u16(a.port());
}

fn read_addr(r: &mut Reader<'_>) -> Result<SocketAddr, DecodeError> {
    let ip = match r.u8()? {
        4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
        6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
        _ => return Err(DecodeError::invalid("address", "unknown family")),
    };
    Ok(SocketAddr::new(ip, r.u16()?))
}

fn flag(b: bool) -> u8 {
    u8::from(b)
}

fn read_flag(r: &mut Reader<'_>, what: &'static str) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::invalid(what, "flag is not 0 or 1")),
    }
}

impl Frame {
    /// Whether the frame belongs to the session's sequenced stream: it is
    /// counted, acknowledged and resent after a resumption. The others
    /// belong to the path they travel on (pings, the cutover, going
    /// direct, the handshakes) and mean nothing on another.
    pub fn is_sequenced(&self) -> bool {
        match self {
            Frame::Channel(_) | Frame::Test(_) | Frame::Work(_) => true,
            Frame::Control(c) => matches!(
                c,
                Control::Chat { .. }
                    | Control::End { .. }
                    | Control::Handover { .. }
                    | Control::HandedOver
            ),
            Frame::Handshake(_) | Frame::Negotiation(_) => false,
        }
    }

    /// Appends the encoded frame to `out` — channel data without an
    /// intermediate copy (it is most of a session's bytes).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        if let Frame::Channel(ChannelFrame::Data { channel, data }) = self {
            assert!(data.len() <= MAX_DATA, "data frame too large");
            out.reserve(HEADER_LEN + 4 + data.len());
            out.push(CHANNEL_DATA);
            out.extend_from_slice(&(4 + data.len() as u32).to_be_bytes());
            out.extend_from_slice(&channel.to_be_bytes());
            out.extend_from_slice(data);
        } else {
            out.extend_from_slice(&self.encode());
        }
    }

    /// Encodes the frame; over-long texts are shortened to their limits.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        let ty = match self {
            Frame::Handshake(Handshake::Proof { mac }) => {
                w.put(mac);
                PROOF
            }
            Frame::Handshake(Handshake::Accepted) => ACCEPTED,
            Frame::Control(Control::Chat { text }) => {
                w.put(clamp_str(text, MAX_CHAT).as_bytes());
                CHAT
            }
            Frame::Control(Control::End { by, reason }) => {
                w.u8(by.code()).str16(clamp_str(reason, MAX_REASON));
                END
            }
            Frame::Control(Control::Ping(v)) => {
                w.u64(*v);
                PING
            }
            Frame::Control(Control::Pong(v)) => {
                w.u64(*v);
                PONG
            }
            Frame::Negotiation(Negotiation::PathPolicy {
                tcp,
                udp,
                udp_after_ms,
            }) => {
                w.u8(flag(*tcp)).u8(flag(*udp)).u32(*udp_after_ms);
                PATH_POLICY
            }
            Frame::Negotiation(Negotiation::PathOffer { tcp, udp, note }) => {
                let addrs = &tcp[..tcp.len().min(MAX_TCP_ADDRS)];
                w.u8(addrs.len() as u8);
                for a in addrs {
                    put_addr(&mut w, a);
                }
                w.u8(flag(*udp)).str16(clamp_str(note, MAX_REASON));
                PATH_OFFER
            }
            Frame::Negotiation(Negotiation::IceOffer(IceOffer {
                ufrag,
                pwd,
                candidates,
            })) => {
                w.str16(clamp_str(ufrag, MAX_ICE_TEXT))
                    .str16(clamp_str(pwd, MAX_ICE_TEXT));
                let cands = &candidates[..candidates.len().min(MAX_ICE_CANDIDATES)];
                w.u8(cands.len() as u8);
                for c in cands {
                    w.str16(clamp_str(c, MAX_ICE_TEXT));
                }
                ICE_OFFER
            }
            Frame::Handshake(Handshake::Bind { mac }) => {
                w.put(mac);
                BIND
            }
            Frame::Control(Control::Switch { path }) => {
                w.put(path);
                SWITCH
            }
            Frame::Control(Control::Handover {
                console_pin,
                technician,
            }) => {
                w.put(console_pin).str16(clamp_str(technician, MAX_REASON));
                HANDOVER
            }
            Frame::Control(Control::HandedOver) => HANDED_OVER,
            Frame::Negotiation(Negotiation::UdpNow) => UDP_NOW,
            Frame::Negotiation(Negotiation::NatKind { hard, addr }) => {
                w.u8(flag(*hard));
                put_addr(&mut w, addr);
                NAT_KIND
            }
            Frame::Channel(ChannelFrame::Data { channel, data }) => {
                assert!(data.len() <= MAX_DATA, "data frame too large");
                w.u32(*channel).put(data);
                CHANNEL_DATA
            }
            Frame::Channel(ChannelFrame::Open { channel, kind }) => {
                w.u32(*channel).u8(kind.code());
                CHANNEL_OPEN
            }
            Frame::Channel(ChannelFrame::Credit { channel, bytes }) => {
                w.u32(*channel).u32(*bytes);
                CHANNEL_CREDIT
            }
            Frame::Channel(ChannelFrame::Close { channel }) => {
                w.u32(*channel);
                CHANNEL_CLOSE
            }
            Frame::Channel(ChannelFrame::Reset { channel, reason }) => {
                w.u32(*channel).str16(clamp_str(reason, MAX_REASON));
                CHANNEL_RESET
            }
            Frame::Test(TestFrame::Start { channel, seed, len }) => {
                w.u32(*channel).u64(*seed).u64(*len);
                TEST_START
            }
            Frame::Test(TestFrame::Request { seed, len }) => {
                w.u64(*seed).u64(*len);
                TEST_REQUEST
            }
            Frame::Control(Control::Resume { incarnation, next }) => {
                w.u64(*incarnation).u64(next[0]).u64(next[1]);
                RESUME
            }
            Frame::Control(Control::Ack { next }) => {
                w.u64(next[0]).u64(next[1]);
                ACK
            }
            Frame::Test(TestFrame::Result { ok, bytes, detail }) => {
                w.u8(flag(*ok))
                    .u64(*bytes)
                    .str16(clamp_str(detail, MAX_REASON));
                TEST_RESULT
            }
            Frame::Work(work) => {
                w.put(&work.encode());
                WORK
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
            PROOF => Frame::Handshake(Handshake::Proof {
                mac: p.array().map_err(short)?,
            }),
            ACCEPTED => Frame::Handshake(Handshake::Accepted),
            CHAT => {
                if payload.len() > MAX_CHAT {
                    return Err(DecodeError::invalid("chat", "too long"));
                }
                let text = std::str::from_utf8(p.take(payload.len()).map_err(short)?)
                    .map_err(|_| DecodeError::invalid("chat", "not UTF-8"))?;
                Frame::Control(Control::Chat {
                    text: text.to_owned(),
                })
            }
            END => Frame::Control(Control::End {
                by: EndedBy::from_code(p.u8().map_err(short)?)?,
                reason: p.str16("reason", MAX_REASON).map_err(short)?.to_owned(),
            }),
            PING => Frame::Control(Control::Ping(p.u64().map_err(short)?)),
            PONG => Frame::Control(Control::Pong(p.u64().map_err(short)?)),
            PATH_POLICY => Frame::Negotiation(Negotiation::PathPolicy {
                tcp: read_flag(&mut p, "path policy").map_err(short)?,
                udp: read_flag(&mut p, "path policy").map_err(short)?,
                udp_after_ms: p.u32().map_err(short)?,
            }),
            PATH_OFFER => {
                let n = usize::from(p.u8().map_err(short)?);
                if n > MAX_TCP_ADDRS {
                    return Err(DecodeError::invalid("path offer", "too many addresses"));
                }
                let tcp = (0..n)
                    .map(|_| read_addr(&mut p))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(short)?;
                Frame::Negotiation(Negotiation::PathOffer {
                    tcp,
                    udp: read_flag(&mut p, "path offer").map_err(short)?,
                    note: p.str16("note", MAX_REASON).map_err(short)?.to_owned(),
                })
            }
            ICE_OFFER => {
                let ufrag = p.str16("ufrag", MAX_ICE_TEXT).map_err(short)?.to_owned();
                let pwd = p.str16("pwd", MAX_ICE_TEXT).map_err(short)?.to_owned();
                let n = usize::from(p.u8().map_err(short)?);
                if n > MAX_ICE_CANDIDATES {
                    return Err(DecodeError::invalid("ICE offer", "too many candidates"));
                }
                let candidates = (0..n)
                    .map(|_| p.str16("candidate", MAX_ICE_TEXT).map(str::to_owned))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(short)?;
                Frame::Negotiation(Negotiation::IceOffer(IceOffer {
                    ufrag,
                    pwd,
                    candidates,
                }))
            }
            BIND => Frame::Handshake(Handshake::Bind {
                mac: p.array().map_err(short)?,
            }),
            SWITCH => Frame::Control(Control::Switch {
                path: p.array().map_err(short)?,
            }),
            HANDOVER => Frame::Control(Control::Handover {
                console_pin: p.array().map_err(short)?,
                technician: p.str16("technician", MAX_REASON).map_err(short)?.to_owned(),
            }),
            HANDED_OVER => Frame::Control(Control::HandedOver),
            UDP_NOW => Frame::Negotiation(Negotiation::UdpNow),
            NAT_KIND => Frame::Negotiation(Negotiation::NatKind {
                hard: read_flag(&mut p, "NAT kind").map_err(short)?,
                addr: read_addr(&mut p).map_err(short)?,
            }),
            CHANNEL_DATA => {
                let channel = p.u32().map_err(short)?;
                if p.remaining() > MAX_DATA {
                    return Err(DecodeError::invalid("channel data", "too long"));
                }
                Frame::Channel(ChannelFrame::Data {
                    channel,
                    data: bytes::Bytes::copy_from_slice(p.take(p.remaining()).map_err(short)?),
                })
            }
            CHANNEL_OPEN => Frame::Channel(ChannelFrame::Open {
                channel: p.u32().map_err(short)?,
                kind: ChannelKind::from_code(p.u8().map_err(short)?)?,
            }),
            CHANNEL_CREDIT => Frame::Channel(ChannelFrame::Credit {
                channel: p.u32().map_err(short)?,
                bytes: p.u32().map_err(short)?,
            }),
            CHANNEL_CLOSE => Frame::Channel(ChannelFrame::Close {
                channel: p.u32().map_err(short)?,
            }),
            CHANNEL_RESET => Frame::Channel(ChannelFrame::Reset {
                channel: p.u32().map_err(short)?,
                reason: p.str16("reason", MAX_REASON).map_err(short)?.to_owned(),
            }),
            TEST_START => Frame::Test(TestFrame::Start {
                channel: p.u32().map_err(short)?,
                seed: p.u64().map_err(short)?,
                len: p.u64().map_err(short)?,
            }),
            TEST_REQUEST => Frame::Test(TestFrame::Request {
                seed: p.u64().map_err(short)?,
                len: p.u64().map_err(short)?,
            }),
            RESUME => Frame::Control(Control::Resume {
                incarnation: p.u64().map_err(short)?,
                next: [p.u64().map_err(short)?, p.u64().map_err(short)?],
            }),
            ACK => Frame::Control(Control::Ack {
                next: [p.u64().map_err(short)?, p.u64().map_err(short)?],
            }),
            TEST_RESULT => Frame::Test(TestFrame::Result {
                ok: read_flag(&mut p, "test result").map_err(short)?,
                bytes: p.u64().map_err(short)?,
                detail: p.str16("detail", MAX_REASON).map_err(short)?.to_owned(),
            }),
            WORK => Frame::Work(Work::decode(p.take(p.remaining()).map_err(short)?)?),
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
        let f = Frame::Control(Control::End {
            by: EndedBy::User,
            reason: "bye".into(),
        });
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
    fn encode_into_appends_what_encode_returns() {
        let mut out = vec![7];
        let frames = [
            Frame::Channel(ChannelFrame::Data {
                channel: 9,
                data: vec![1, 2, 3].into(),
            }),
            Frame::Control(Control::Ack { next: [1, 2] }),
        ];
        let mut want = vec![7];
        for f in &frames {
            f.encode_into(&mut out);
            want.extend(f.encode());
        }
        assert_eq!(out, want);
    }

    #[test]
    fn a_handover_and_its_answer_round_trip_and_are_sequenced() {
        for f in [
            Frame::Control(Control::Handover {
                console_pin: [7; 32],
                technician: "Grace".into(),
            }),
            Frame::Control(Control::HandedOver),
        ] {
            let enc = f.encode();
            assert_eq!(Frame::decode(&enc), Ok((f.clone(), enc.len())));
            assert!(f.is_sequenced(), "{f:?} must survive a path change");
            for n in 0..enc.len() {
                assert_eq!(Frame::decode(&enc[..n]), Err(DecodeError::Incomplete));
            }
        }
    }

    #[test]
    fn chat_is_clamped_on_encode() {
        let long = "x".repeat(MAX_CHAT + 10);
        let enc = Frame::Control(Control::Chat { text: long }).encode();
        let (f, _) = Frame::decode(&enc).unwrap();
        assert_eq!(
            f,
            Frame::Control(Control::Chat {
                text: "x".repeat(MAX_CHAT)
            })
        );
    }
}
