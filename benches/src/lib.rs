//! Shared pieces of the benchmark programs in `src/bin/`.
//!
//! Every benchmark drives the real `gateway` binary (built next to the
//! benchmark with `cargo build --release --bins`) over loopback, acts as
//! technician, console and applet in-process with `lifeline-session`, and
//! prints a markdown table with a reference measured in the same run —
//! usually the `splice_proxy` binary of this crate, an ideal TLS-terminating
//! proxy that does nothing but pair two clients and copy bytes.
//!
//! * [`sys`] — machine description, CPU seconds and RSS of a process.
//! * [`procs`] — starting the gateway and the splice proxy as child processes.
//! * [`client`] — TCP from a chosen 127.x source, outer TLS, relay hellos,
//!   portal calls, inner TLS.
//! * [`goodput`] — one bulk transfer between two processes over XTCP,
//!   quinn or kernel TCP (for `xtcp_goodput`).
//! * [`stats`] — percentiles and markdown tables.
#![forbid(unsafe_code)]

pub mod client;
pub mod goodput;
pub mod procs;
pub mod stats;
pub mod sys;

/// Bytes in a GiB.
pub const GIB: u64 = 1 << 30;

/// Parses `--name VALUE` from the command line, or returns `default`.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    let args: Vec<String> = std::env::args().collect();
    let flag = format!("--{name}");
    match args.iter().position(|a| *a == flag) {
        None => Ok(default),
        Some(i) => {
            let v = args
                .get(i + 1)
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
            v.parse()
                .map_err(|_| anyhow::anyhow!("{flag}: cannot parse {v:?}"))
        }
    }
}

/// Random bytes from the system RNG.
pub fn random<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut b = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| anyhow::anyhow!("system RNG failed"))?;
    Ok(b)
}
