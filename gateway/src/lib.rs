//! The Lifeline gateway: one binary that relays sessions, serves the
//! portal API and keeps the store.
//!
//! # Layout
//! * [`cli`] — the `gateway` command line; [`admin`] — `gateway admin ...`.
//! * [`config`] — flags, environment, TOML file, defaults.
//! * [`datadir`] — operator CA, node certificate, signing key on disk.
//! * [`state`] — the node's shared state (settings, store, limits, registry,
//!   counters, shutdown phase).
//! * [`server`] — building a node, the accept loop, ALPN dispatch, drain on
//!   shutdown.
//! * [`relay`] — the `lifeline/1` handshake and the byte pump (the gateway
//!   never holds a session key); `relay::waiting_check`, the node's
//!   periodic check of its waiting applets against the store.
//! * [`registry`] — which sessions have an applet or a console on this node.
//! * [`portal`] — the HTTP API: login (two-factor, password changes),
//!   sessions, applet download, directory.
//! * [`personalize`] — appends the signed trailer to the stock applet.
//! * [`auth`] — scrypt passwords, bearer tokens; [`totp`] — one-time
//!   codes (RFC 6238) and recovery codes for two-factor logins;
//!   [`passwords`] — a group's password policy (length, strength, age).
//! * [`limits`] — per-source connection limits and failed-attempt budgets;
//!   [`networks`] — the networks a group's technicians may use.
//! * [`refusals`] — relay refusals logged once per reason per minute.
//! * [`stun`] — the STUN server (UDP) the ends' ICE agents use to go direct.
//! * [`webcert`] — the node's certificate, or the operator's web
//!   certificate for browsers, by SNI (reloaded on SIGHUP).
//! * [`health`] — `/healthz`, `/readyz`, `/health` and `/metrics` on a
//!   loopback port of their own; [`metrics`] — the Prometheus metrics;
//!   [`process`] — the process's CPU, memory and file descriptors.
//!
//! The store lives in its own crate, `lifeline-store`.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod networks;
pub mod passwords;
pub mod personalize;
pub mod portal;
pub mod process;
pub mod refusals;
pub mod registry;
pub mod relay;
pub mod server;
pub mod state;
pub mod stun;
pub mod totp;
pub mod webcert;
