//! The end-to-end session that both Lifeline endpoints run.
//!
//! The applet and the tech-console share everything here, so neither binary
//! carries a private copy of logic the other also needs.
//!
//! # Layers, outside in
//! * [`tls`] — rustls configurations: the outer TLS to a gateway (trusting an
//!   operator CA, or a CA fingerprint on first contact) and the inner,
//!   end-to-end TLS 1.3 (TLS13_AES_256_GCM_SHA384 only; the applet accepts
//!   only the pinned SPKI of the console's session certificate).
//! * [`identity`] — the console's per-session key pair and certificate.
//! * [`addr`] — `host:port` and `https://` URL parsing shared by clients.
//! * [`portal`] — a small JSON client for the gateway's portal API.
//! * [`gateway_conn`] — connect to a gateway on ALPN `lifeline/1`, send the
//!   hello, and wait to be paired; the result is an opaque byte stream.
//! * [`race`] — connection attempts to several gateway nodes at once, the
//!   first to work taken.
//! * [`secure`] — the end-to-end handshake over that stream: inner TLS,
//!   applet-secret proof, short authentication string.
//! * [`channel`] — framed reading/writing of [`lifeline_protocol::e2e::Frame`]s.
//! * [`link`] — frame I/O on one path: a reader task and a writer task with
//!   a control and a bulk queue; `Switch` and the close are barriers.
//! * [`direct`] — going direct: direct TCP, ICE + XTCP over UDP, the TLS and
//!   binding proof that make a new path part of the session.
//! * [`linktest`] — the link test's checked byte stream.
//! * [`core`] — the session core: one end of a live session as a sans-IO
//!   state machine (chat, pings, channels with flow control and priorities,
//!   the link test, going direct and the cutover, ending).
//! * [`live`] — the driver: runs a [`core`] over real paths (reader and
//!   writer tasks from [`link`], the negotiator from [`direct`], the clock)
//!   and turns the user's commands into the core's inputs.
#![forbid(unsafe_code)]

// TLS lives in its own crate (the XTCP transport needs it too); these keep
// the paths `lifeline_session::tls` and `lifeline_session::identity`.
pub use lifeline_tls as tls;
pub use lifeline_tls::identity;

pub mod addr;
pub mod channel;
pub mod core;
pub mod direct;
pub mod gateway_conn;
pub mod link;
pub mod linktest;
pub mod live;
pub mod portal;
pub mod race;
pub mod secure;

/// The applet's and console's log filter unless `LIFELINE_LOG` says
/// otherwise: warnings, but not webrtc-ice's, which reports every
/// interface it cannot use and every STUN server that has no IPv6 address
/// as a warning, nor quinn's UDP layer's, which reports a refused send
/// (the peer's port closed as the session ended) — noise on an end
/// user's screen, not a problem.
pub const DEFAULT_LOG_FILTER: &str =
    "warn,webrtc_ice=error,webrtc_mdns=error,webrtc_util=error,quinn_udp=error";

/// Freed heap memory the applet and the console keep rather than return
/// at once (`lifeline_memtrim::keep_freed_memory`): more than a session
/// holds at its busiest (two bulk windows, the resend buffer, the queues),
/// so a transfer stops faulting its frames' pages in again and again.
pub const FREED_MEMORY_KEPT: usize = 64 << 20;

pub use lifeline_protocol::time::now_ms;
