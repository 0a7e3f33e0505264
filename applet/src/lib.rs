//! The Lifeline applet: the end user's personalized, self-removing program.
//!
//! # Layout
//! * [`identity`] — reads and verifies the signed trailer on our own
//!   executable (release builds pin the operator key at build time).
//! * [`gateway`] — fetches the signed directory and connects to the fastest
//!   gateway node, falling back on failure.
//! * [`run`] — the session: wait, pair, end-to-end TLS, chat, end, remove.
//! * [`ui`] — what the end user reads and types.
#![forbid(unsafe_code)]

pub mod gateway;
pub mod identity;
pub mod run;
pub mod ui;
