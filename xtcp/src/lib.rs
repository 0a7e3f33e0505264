//! XTCP: one reliable, ordered, flow- and congestion-controlled byte stream
//! over any datagram path — what makes a hole-punched UDP path behave like
//! TCP for a Lifeline session.
//!
//! The transport is QUIC (quinn): modern loss recovery (RACK-style time
//! thresholds, PTO instead of TCP's 1 s minimum RTO), SACK-like ACK ranges,
//! path MTU discovery and TLS 1.3. This crate adapts it to arbitrary
//! datagram paths, gives it TCP's shape, and adds a congestion controller
//! that keeps a lossy Wi-Fi or mobile path usable.
//!
//! # Layout
//! * [`path`] — what XTCP runs over, a [`Carrier`]: a [`UdpPath`] (a real
//!   socket that quinn drives with batched system calls: the session's
//!   direct path once hole punching found it) or any [`DatagramPath`]
//!   (the simulator, tests).
//! * [`sim`] — a deterministic, seeded impairment simulator: delay, jitter,
//!   loss, burst loss, reordering, duplication, a bottleneck with a finite
//!   queue, MTU, a process restart. Public so other crates' tests can use it.
//! * [`socket`] — quinn's `AsyncUdpSocket` over a [`DatagramPath`].
//! * [`tls`] — QUIC TLS configurations: the server's certificate, the
//!   client's SPKI pin, TLS13_AES_256_GCM_SHA384 for all traffic keys.
//! * [`stream`] — [`XtcpStream`] (AsyncRead + AsyncWrite), [`connect`] and
//!   [`accept`].
//! * [`congestion`] — loss-tolerant CUBIC, the default controller.
//! * [`config`] — keepalive, dead-path timeout, windows, MTU bounds,
//!   congestion controller.
//!
//! # What it does not do
//! No NAT traversal (the session's direct-path code runs ICE and hands the
//! path it found to XTCP), no connection migration (a path is fixed; a new path is a
//! new stream), one stream per connection.
#![forbid(unsafe_code)]

pub mod config;
pub mod congestion;
pub mod path;
pub mod sim;
pub mod socket;
pub mod stream;
pub mod tls;

pub use config::{Congestion, XtcpConfig};
pub use path::{Carrier, DatagramPath, UdpPath};
pub use stream::{XtcpError, XtcpStream, accept, connect};
