//! The technician's console: log in once per shift, create sessions, see
//! who is waiting, connect and chat.
//!
//! # Layout
//! * [`cli`] — the `tech-console` command line.
//! * [`profile`] — the login (token, gateway, CA) and per-session secrets
//!   kept in the user's config directory with 0600 permissions.
//! * [`commands`] — `login`, `session new`, `queue`, `sessions`, `logout`.
//! * [`portal`] — a portal client for the saved login; sessions by GUID or
//!   label.
//! * [`connect`] — `connect`: pair through the gateway, end-to-end TLS,
//!   then line-mode chat on a terminal or JSON-lines batch mode otherwise.
//! * [`work`] — the remote-work verbs (`shell`, `send`, `fetch`, …).
//! * [`terminal`] — the technician's terminal in raw mode while a remote
//!   shell has it.
#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod connect;
pub mod portal;
pub mod profile;
pub mod terminal;
pub mod work;
