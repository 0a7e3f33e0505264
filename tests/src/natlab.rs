//! The NAT lab (`natlab.sh`): network namespaces with a public network, a
//! gateway host and two private networks behind NAT routers whose
//! behaviour can be switched. Needs root, `ip`, `nft` and `ping`.
//!
//! ```text
//!   gw 203.0.113.10 ── "internet" ── nat-a (203.0.113.11) ── host-a 10.0.1.100
//!                                 └─ nat-b (203.0.113.12) ── host-b 10.0.2.100
//! ```
//!
//! Each [`Lab`] has its own namespace prefix, so tests can build labs in
//! parallel; dropping it tears the lab down.
//!
//! The script is `tests/natlab/natlab.sh` in this repository, or the one
//! `$LIFELINE_NATLAB` names.

use std::path::PathBuf;
use std::process::Command;

/// The gateway host's address.
pub const GW_IP: &str = "203.0.113.10";
/// nat-a's public address (host-a's, as the internet sees it).
pub const NAT_A_IP: &str = "203.0.113.11";

/// The lab script.
pub fn script() -> PathBuf {
    if let Some(p) = std::env::var_os("LIFELINE_NATLAB") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("natlab/natlab.sh")
}

/// Fails loudly (never skips) when this machine cannot build the lab.
pub fn require() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    assert!(
        root,
        "the NAT lab tests need root (network namespaces, nftables); run the tests as root"
    );
    for tool in ["ip", "nft", "ping"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            found,
            "the NAT lab tests need `{tool}`: apt-get install iproute2 nftables iputils-ping"
        );
    }
}

/// A NAT lab, torn down on drop.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
}

impl Lab {
    /// Builds a lab whose namespaces are named `<prefix>gw`, … Both NATs
    /// start as port-restricted cone.
    pub fn up(prefix: &str) -> Self {
        require();
        let lab = Self {
            prefix: prefix.to_owned(),
        };
        lab.sh(&["up"]);
        lab
    }

    /// Runs `natlab.sh ARGS` (panics on failure).
    pub fn sh(&self, args: &[&str]) {
        let out = Command::new("bash")
            .arg(script())
            .args(args)
            .env("NATLAB_PREFIX", &self.prefix)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script().display()));
        assert!(
            out.status.success(),
            "natlab {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The full name of lab namespace `ns` (`gw`, `host-a`, …).
    pub fn ns(&self, ns: &str) -> String {
        format!("{}{ns}", self.prefix)
    }

    /// Runs `cmd` inside the lab's namespace `ns`; returns its stdout.
    pub fn exec(&self, ns: &str, cmd: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(ns)])
            .args(cmd)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?} in {ns}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?} in {ns} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("down")
            .env("NATLAB_PREFIX", &self.prefix)
            .output();
    }
}
