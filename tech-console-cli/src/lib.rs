//! The technician's console: log in once per shift, create sessions, see
//! who is waiting, and work with end users — several at once in the
//! full-screen console, one at a time in line mode, or from a script.
//!
//! # Layout
//! * [`cli`] — the `tech-console` command line.
//! * [`profile`] — the login (token, gateway, CA), per-session secrets and
//!   notes, kept in the user's config directory with 0600 permissions.
//! * [`login`] — `login` and `password`, with [`second_factor`]: the code,
//!   or setting up an authenticator app (a QR code in the terminal).
//! * [`commands`] — `session new`, `queue`, `sessions`, `logout`.
//! * [`portal`] — a portal client for the saved login; sessions by GUID or
//!   label.
//! * [`drive`] — one session: pair through the gateway, end-to-end TLS,
//!   the live session and remote work, reported as updates.
//! * [`connect`] — `connect`: one session in line mode on a terminal, or
//!   JSON-lines batch mode otherwise; what each update says.
//! * [`line`] — line mode: messages above a prompt that they never disturb.
//! * [`ui`] — `tech-console ui`: the full-screen console (queue, session
//!   tabs, chat, shell pane, transfers, system information, notes).
//! * [`typed`] — what a typed line means (chat or an exact `/command`).
//! * [`editor`] — the input line: editing keys and history.
//! * [`keys`] — keys as the bytes a terminal sends, for the remote shell.
//! * [`work`] — the remote-work verbs (`shell`, `send`, `fetch`, …).
//! * [`terminal`] — the terminal while the console owns it, and its
//!   restoration on every way out.
#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod connect;
pub mod drive;
pub mod editor;
pub mod keys;
pub mod line;
pub mod login;
pub mod portal;
pub mod profile;
pub mod second_factor;
pub mod terminal;
pub mod typed;
pub mod ui;
pub mod work;
