//! The Lifeline gateway: one binary that relays sessions, serves the
//! portal API and keeps the store.
//!
//! # Layout
//! * [`cli`] — the `gateway` command line; [`admin`] — `gateway admin ...`.
//! * [`config`] — flags, environment, TOML file, defaults.
//! * [`datadir`] — operator CA, node certificate, signing key on disk.
//! * [`server`] — node state, accept loop, ALPN dispatch, drain on shutdown.
//! * [`relay`] — the `lifeline/1` handshake, the pairing registry and the
//!   byte pump (the gateway never holds a session key).
//! * [`portal`] — the HTTP API: login, sessions, applet download, directory.
//! * [`personalize`] — appends the signed trailer to the stock applet.
//! * [`auth`] — scrypt passwords, bearer tokens.
//! * [`limits`] — per-IP connection and bad-attempt limits.
//! * [`stun`] — the STUN server (UDP) the ends' ICE agents use to go direct.
//!
//! The store lives in its own crate, `lifeline-store`.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod limits;
pub mod personalize;
pub mod portal;
pub mod relay;
pub mod server;
pub mod stun;
