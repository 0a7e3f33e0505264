//! Harness for end-to-end tests that run the real `gateway`, `applet` and
//! `tech-console` binaries as a user would: separate processes, real TLS on
//! loopback, a real SQLite file or PostgreSQL database.
//!
//! The binaries are the ones cargo built next to this test executable
//! (`target/<profile>/`); `cargo test --workspace` builds them because each
//! binary's own package has integration tests (benchmarks use this harness
//! too, with the release binaries next to them).
//!
//! * `process` — finding the binaries, scratch directories, a process's
//!   output line by line ([`Lines`]), [`Proc`], deadlines.
//! * `gateway` — a [`Gateway`] process on SQLite or a PostgreSQL database
//!   of its own ([`TestStore`]), and its `admin` commands.
//! * [`https`] — one HTTPS request to a gateway's port (h2 or HTTP/1.1,
//!   from a chosen loopback address), as a browser or the console makes it.
//! * `launch` — the one way a `gateway serve` is started ([`GatewayLaunch`]:
//!   its flags, log and banner), for these tests, the gateway's own and the
//!   benchmarks.
//! * `console` — a technician's [`Console`] profile.
//! * `desktop` — a virtual [`Desktop`] (Xvfb, D-Bus, accessibility bus)
//!   to open the applet's window on, read it and press its buttons.
//! * `pty` — a program on a real terminal ([`Pty`], via `script`).
//! * `tmux` — a full-screen program in tmux ([`Tmux`]): keys in, screen out.
//! * `network` — free ports and paths made silent ([`PortBlock`]).
//! * `scenario` — [`Scenario`] and the steps scenarios share.
//! * [`natlab`] — the NAT lab; [`raw`] — a raw relay client for refusals.
#![allow(clippy::unwrap_used)]

mod console;
mod desktop;
mod gateway;
pub mod https;
mod launch;
pub mod natlab;
mod network;
mod process;
mod pty;
pub mod raw;
mod scenario;
mod tmux;

pub use console::*;
pub use desktop::*;
pub use gateway::*;
pub use launch::*;
pub use network::*;
pub use process::*;
pub use pty::*;
pub use scenario::*;
pub use tmux::*;
