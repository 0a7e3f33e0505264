//! The technician's `tech-console`, with a configuration directory of
//! its own.

use crate::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// A technician's console profile (its own config directory).
#[derive(Debug)]
pub struct Console {
    /// The config directory.
    pub dir: TempDir,
    /// Network namespace every command runs in, if any.
    pub netns: Option<String>,
}

impl Console {
    /// A fresh profile.
    pub fn new() -> Self {
        Self {
            dir: TempDir::new("console"),
            netns: None,
        }
    }

    /// A fresh profile whose commands run in network namespace `netns`.
    pub fn in_netns(netns: &str) -> Self {
        Self {
            dir: TempDir::new("console"),
            netns: Some(netns.to_owned()),
        }
    }

    /// `tech-console --config-dir DIR`, in the profile's namespace.
    pub fn command(&self) -> Command {
        let mut c = match &self.netns {
            Some(ns) => in_netns(ns, &bin("tech-console")),
            None => Command::new(bin("tech-console")),
        };
        c.arg("--config-dir").arg(self.dir.path());
        c
    }

    /// Runs `tech-console ARGS` with `stdin`.
    pub fn run(&self, args: &[&str], stdin: &str) -> Output {
        run_with_stdin(self.command().args(args), stdin)
    }

    /// Logs in (panics on failure).
    pub fn login(&self, gw: &Gateway, email: &str, password: &str) {
        let out = self.try_login(gw, email, password);
        assert!(
            out.status.success(),
            "login failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Logs in and returns the output.
    pub fn try_login(&self, gw: &Gateway, email: &str, password: &str) -> Output {
        self.run(
            &[
                "login",
                "--gateway",
                &gw.addr,
                "--ca-fingerprint",
                &gw.fingerprint,
                "--email",
                email,
                "--password-stdin",
            ],
            &format!("{password}\n"),
        )
    }

    /// Creates a session; returns its GUID.
    pub fn session_new(&self, label: &str, out: &Path) -> String {
        self.session_new_with(label, out, &[])
    }

    /// Creates a session with `extra` flags for `session new` (e.g.
    /// `["--expires-in", "2"]`); returns its GUID.
    pub fn session_new_with(&self, label: &str, out: &Path, extra: &[&str]) -> String {
        let mut args = vec![
            "session",
            "new",
            "--label",
            label,
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = self.run(&args, "");
        assert!(
            o.status.success(),
            "session new failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix("session "))
            .unwrap_or_else(|| panic!("no GUID in: {text}"))
            .trim()
            .to_owned()
    }

    /// `queue --json`.
    pub fn queue(&self) -> Vec<Value> {
        let o = self.run(&["queue", "--json"], "");
        assert!(
            o.status.success(),
            "queue failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Starts `connect TARGET` in batch mode.
    pub fn connect(&self, target: &str) -> Proc {
        self.connect_with(target, &[])
    }

    /// Starts `connect TARGET EXTRA…` in batch mode (e.g. `--path relay`).
    pub fn connect_with(&self, target: &str, extra: &[&str]) -> Proc {
        Proc::spawn(self.command().args(["connect", target]).args(extra))
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}
