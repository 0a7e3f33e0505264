//! Fuzz targets of Lifeline's wire formats; see `README.md`.
//!
//! The targets in `fuzz_targets/` are one line each; what they check lives
//! in [`checks`], which the protocol crate's tests also include to replay the
//! seed corpus and every crash regression on the stable toolchain.
#![forbid(unsafe_code)]

pub mod checks;
