//! Lifeline's wire formats, sans-IO.
//!
//! This crate holds every byte layout that crosses a process boundary and
//! nothing else: no tokio, no sockets, no clock (callers pass `now`). Every
//! decoder distinguishes "need more bytes" ([`DecodeError::Incomplete`]) from
//! "this is not valid" ([`DecodeError::Invalid`]) and is fuzzed (see `fuzz/`).
//!
//! # Layout
//! * [`codec`] — the [`Reader`]/[`Writer`] cursor every binary format uses.
//! * [`guid`] — the 128-bit session GUID and its text form.
//! * [`relay`] — the gateway handshake on ALPN `lifeline/1`: the client's
//!   hello and the gateway's answers; after `Paired` the stream is opaque.
//! * [`e2e`] — frames inside the end-to-end TLS between applet and console,
//!   including the going-direct negotiation and the cutover marker.
//! * [`trailer`] — the signed trailer the portal appends to the applet.
//! * [`directory`] — the operator-signed list of gateway nodes.
//! * [`proof`] — applet-secret proof, short authentication string and the
//!   direct-path binding proof, all derived from TLS exporters.
//! * [`path`] — which kind of path carries a session.
//! * [`permissions`] — what a session may do beyond chat.
//! * [`work`] — remote work's messages: consent, shell, commands, files,
//!   system information, URLs.
//! * [`portal`] — JSON bodies of the portal HTTP API.
//! * [`ice`] — the ICE offer the ends exchange to punch a UDP path.
//! * [`stun`] — STUN Binding requests and answers (the gateway's server).
//! * [`text`] — showing text from the other side safely on a terminal,
//!   and checking names people will read.
//! * [`hex`], [`time`] — small text helpers shared by all binaries.
#![forbid(unsafe_code)]

pub mod codec;
pub mod directory;
pub mod e2e;
pub mod guid;
pub mod hex;
pub mod ice;
pub mod path;
pub mod permissions;
pub mod portal;
pub mod proof;
pub mod relay;
pub mod stun;
pub mod text;
pub mod time;
pub mod trailer;
pub mod work;

pub use codec::{DecodeError, Reader, Writer};
pub use guid::SessionGuid;
pub use permissions::Permissions;

/// ALPN protocol id of the relay protocol on the gateway's TLS port.
pub const ALPN_RELAY: &[u8] = b"lifeline/1";
/// ALPN id of the portal API over HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN id of the portal API over HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";
