//! Remote work under the end user's consent.
//!
//! Chat is always allowed; everything else a technician does on the end
//! user's machine — a shell, a command, files either way, system
//! information, opening a URL — must be allowed by the operator's policy
//! (the group's [`lifeline_protocol::Permissions`] in the signed trailer)
//! and granted by the end user, who can take it back at any time. The
//! applet decides; the console only asks.
//!
//! # Layout
//! * [`applet`] — the applet's side: every request through [`consent`],
//!   then carried out; what the end user sees, in plain words.
//! * [`console`] — the console's side: requests out, answers back as
//!   events for the screen and records for the gateway's audit trail.
//! * [`transfer`] — file transfers over the session, the same both ways.
//! * [`flow`] — writing on the session's channels within a budget.
//! * [`consent`] — the end user's consent as the applet keeps it: the
//!   policy, grants, prompts with their time limit, withdrawing.
//! * [`files`] — file transfer both ways: safe names on the receiving
//!   side, a temporary name until verified, SHA-256 end to end, resuming
//!   from a partial copy, folder trees and listings.
//! * [`shell`] — a login shell in a pseudo-terminal (applet).
//! * [`command`] — one command without a terminal, output and exit status
//!   (applet).
//! * [`system`] — what the machine is (applet), as a table and as JSON.
//! * [`url`] — checking and opening a web address (applet).
//! * [`to_user`] — what the applet's work tells the end user, as data for
//!   the applet's words table (no sentences here).
#![forbid(unsafe_code)]

pub mod applet;
pub mod command;
pub mod consent;
pub mod console;
pub mod files;
pub mod flow;
pub mod shell;
pub mod system;
pub mod to_user;
pub mod transfer;
pub mod url;
