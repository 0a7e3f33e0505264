//! XTCP: one reliable, ordered, flow- and congestion-controlled byte stream
//! over any datagram path — what makes a hole-punched UDP path behave like
//! TCP for a Lifeline session.
//!
//! The transport is QUIC (quinn): modern loss recovery (RACK-style time
//! thresholds, PTO instead of a 1 s minimum RTO), SACK-like ACK ranges,
//! CUBIC congestion control, path MTU discovery and TLS 1.3. This crate
//! adapts it to arbitrary datagram paths and gives it TCP's shape.
//!
//! # Layout
//! * [`path`] — the [`DatagramPath`] trait and its UDP-socket implementation.
//! * [`ice`] — a [`DatagramPath`] over a webrtc-ice `Conn` (the selected
//!   candidate pair), with the bounded queue that gives it backpressure.
//! * [`sim`] — a deterministic, seeded impairment simulator: delay, jitter,
//!   loss, burst loss, reordering, duplication, a bottleneck with a finite
//!   queue, MTU. Public so other crates' tests can use it.
//! * [`socket`] — quinn's `AsyncUdpSocket` over a [`DatagramPath`].
//! * [`tls`] — QUIC TLS configurations: the server's certificate, the
//!   client's SPKI pin, TLS13_AES_256_GCM_SHA384 for all traffic keys.
//! * [`stream`] — [`XtcpStream`] (AsyncRead + AsyncWrite), [`connect`] and
//!   [`accept`].
//! * [`config`] — keepalive, dead-path timeout, windows, MTU bounds.
#![forbid(unsafe_code)]

pub mod config;
pub mod ice;
pub mod path;
pub mod sim;
pub mod socket;
pub mod stream;
pub mod tls;

pub use config::XtcpConfig;
pub use path::{DatagramPath, UdpPath};
pub use stream::{XtcpError, XtcpStream, accept, connect};
