//! The Lifeline applet: the end user's personalized, self-removing program.
//!
//! # Layout
//! * [`identity`] — reads and verifies the signed trailer on our own
//!   executable (release builds pin the operator key at build time).
//! * [`gateway`] — fetches the signed directory and connects to the fastest
//!   gateway node, falling back on failure.
//! * [`run`] — the session: wait, pair, end-to-end TLS, chat, end, remove.
//! * [`ui`] — what the end user reads: lines on the terminal, and the
//!   same lines in the window.
//! * [`window`] — the window, on a desktop: state, code, questions with
//!   buttons, progress bars, messages, and the button that ends it all.
//! * [`words`] — every sentence the end user can see, in English, German
//!   and Dutch; [`locale`] picks the language from the system.
#![forbid(unsafe_code)]

pub mod gateway;
pub mod identity;
pub mod locale;
pub mod run;
pub mod ui;
pub mod window;
pub mod words;
