//! Remote work: what the technician asks of the end user's machine and
//! what the applet answers — consent, a shell, commands, files, system
//! information, opening a URL.
//!
//! These messages ride in [`crate::e2e::Frame::Work`] frames (sequenced,
//! in order with the channels' openings, so a request naming a channel
//! always arrives after that channel's `Open`); the bytes of shells,
//! commands and files ride on channels of their own kind
//! ([`crate::e2e::ChannelKind`]). The payload is JSON: the messages change
//! as capabilities grow, are small and rare next to the channels' bytes,
//! and a JSON decoder over a bounded buffer is as robust as a hand-written
//! one (it is fuzzed like the rest).
//!
//! Who may do what is decided by the applet alone (see `lifeline-remote`):
//! a request is only a request.
//!
//! ```text
//! console                                            applet
//!   Ask{id, caps, whole_session} ───────────▶  (asks the end user)
//!                                 ◀───────────  Decision{id, caps, decision, rule}
//!   Open(ch, Shell); Shell{id, ch, cols, rows} ▶  (asks if not granted; PTY)
//!                                 ◀───────────  Started{id} | Refused{id, rule}
//!   ═══ keystrokes / screen on ch ═══════════════════════════════
//!   Resize{ch, cols, rows}        ───────────▶
//!                                 ◀───────────  Exited{id, code}
//!   Offer{id, ch, path, size} (file sender → receiver, either way)
//!                                 ◀───────────  Accept{id, offset, partial_sha256} | Refused
//!   ═══ file bytes from offset on ch, then Close ═════════════════
//!   Sent{id, sha256}              ───────────▶
//!                                 ◀───────────  Saved{id, ok, saved_as, detail}
//! ```

use crate::codec::DecodeError;
use crate::permissions::Permissions;
use serde::{Deserialize, Serialize};

/// Largest encoded work message.
pub const MAX_WORK: usize = 64 * 1024;
/// Longest command line for [`Work::Run`].
pub const MAX_COMMAND: usize = 4096;
/// Longest path or URL in a message.
pub const MAX_PATH: usize = 4096;
/// Most entries in one [`Work::Listing`] (the rest is cut, and said so).
pub const MAX_LISTING: usize = 500;

/// How the end user (or the policy) answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The end user was asked (the prompt is on their screen).
    Asked,
    /// Yes.
    Granted,
    /// No.
    Refused,
    /// No answer within the prompt's time: a no.
    TimedOut,
    /// The end user took back what they had granted.
    Withdrawn,
    /// The operator's policy does not allow it; nobody was asked.
    NotAllowed,
}

impl Decision {
    /// Lower-case name used in events and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Asked => "asked",
            Decision::Granted => "granted",
            Decision::Refused => "refused",
            Decision::TimedOut => "timed_out",
            Decision::Withdrawn => "withdrawn",
            Decision::NotAllowed => "not_allowed",
        }
    }
}

/// One entry of a folder listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The entry's own name (no path).
    pub name: String,
    /// Whether it is a folder.
    pub dir: bool,
    /// Size in bytes (files).
    pub size: u64,
    /// Last change, milliseconds since the epoch (0: unknown).
    pub modified_ms: u64,
}

/// What the applet's machine is, for [`Work::SystemInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SystemInfo {
    /// Operating system name and version.
    pub os: String,
    /// Kernel version.
    pub kernel: String,
    /// Host name.
    pub hostname: String,
    /// Seconds since boot.
    pub uptime_secs: u64,
    /// CPU brand, as the system names it.
    pub cpu: String,
    /// Logical CPUs.
    pub cpus: u32,
    /// Memory in bytes: total and available.
    pub memory_total: u64,
    /// Available memory in bytes.
    pub memory_available: u64,
    /// Mounted disks.
    pub disks: Vec<Disk>,
    /// Network interfaces and their addresses.
    pub interfaces: Vec<Interface>,
    /// The user the applet runs as.
    pub user: String,
    /// The busiest processes by CPU, then memory.
    pub processes: Vec<Process>,
}

/// A mounted disk.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Disk {
    /// Where it is mounted.
    pub mount: String,
    /// File system.
    pub fs: String,
    /// Total bytes.
    pub total: u64,
    /// Free bytes.
    pub available: u64,
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its addresses, as text (`192.0.2.7/24`).
    pub addresses: Vec<String>,
}

/// A process.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Process {
    /// Process id.
    pub pid: u32,
    /// Its name.
    pub name: String,
    /// CPU use in percent of one core, rounded.
    pub cpu_percent: u32,
    /// Resident memory in bytes.
    pub memory: u64,
}

/// One remote-work message. `id` numbers a request (chosen by the side
/// that makes it, unique per session per side); answers carry it back.
/// `channel` names a channel the sender opened for the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Work {
    // ---- console → applet ----
    /// Ask the end user for `caps` now: with `whole_session`, the single
    /// prompt (only where the group allows it) granting them until the
    /// session ends; without, a prompt per capability that grants it as a
    /// first use would.
    Ask {
        /// Request id.
        id: u64,
        /// The capabilities (bits of [`Permissions`]).
        caps: u32,
        /// One prompt for the whole session.
        whole_session: bool,
    },
    /// Open a shell on the end user's machine on `channel` (a
    /// [`crate::e2e::ChannelKind::Shell`] the console opened).
    Shell {
        /// Request id.
        id: u64,
        /// The channel for keystrokes and screen.
        channel: u32,
        /// Terminal columns.
        cols: u16,
        /// Terminal rows.
        rows: u16,
    },
    /// The technician's terminal changed size.
    Resize {
        /// The shell's channel.
        channel: u32,
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// Run one command (no terminal); its output comes back on `channel`
    /// (a [`crate::e2e::ChannelKind::Run`] the console opened).
    Run {
        /// Request id.
        id: u64,
        /// The channel for its output.
        channel: u32,
        /// The command line, run by the user's shell.
        command: String,
    },
    /// List a folder on the end user's machine.
    List {
        /// Request id.
        id: u64,
        /// The folder.
        path: String,
    },
    /// Send the file or folder at `path` to the console (as
    /// [`Work::Offer`]s, one per file).
    Fetch {
        /// Request id.
        id: u64,
        /// The file or folder.
        path: String,
    },
    /// Describe the machine.
    SystemInfo {
        /// Request id.
        id: u64,
    },
    /// Open `url` in the end user's browser (after showing it to them).
    OpenUrl {
        /// Request id.
        id: u64,
        /// An http or https URL.
        url: String,
    },
    /// Stop what request `id` started (a shell, a command, a transfer).
    Stop {
        /// Request id.
        id: u64,
    },

    // ---- file transfer, from the sender to the receiver (either way) ----
    /// A file is coming on `channel` (a [`crate::e2e::ChannelKind::File`]
    /// the sender opened): `path` is its place below the transfer's top
    /// (one component for a single file; a folder's files name their
    /// folders), `size` its length. The receiver answers
    /// [`Work::Accept`] (from where to send) or [`Work::Refused`].
    Offer {
        /// Transfer id (the sender's).
        id: u64,
        /// The fetch or send request this belongs to (0: none).
        request: u64,
        /// The channel for its bytes.
        channel: u32,
        /// Path components below the transfer's top.
        path: Vec<String>,
        /// Bytes.
        size: u64,
    },
    /// The sender sent every byte; the whole file's SHA-256.
    Sent {
        /// Transfer id.
        id: u64,
        /// SHA-256 of the whole file, hex.
        sha256: String,
    },
    /// The end of a fetch or send of several files: how many were offered.
    Finished {
        /// The request.
        request: u64,
        /// Files offered.
        files: u64,
    },

    // ---- applet → console (and receiver → sender) ----
    /// A consent decision (every one is reported, for both screens and
    /// the audit trail).
    Decision {
        /// The request that caused it (0: the end user acted on their own,
        /// e.g. withdrew).
        id: u64,
        /// The capabilities it is about (bits of [`Permissions`]).
        caps: u32,
        /// What was decided.
        decision: Decision,
        /// For the whole session (the single prompt).
        whole_session: bool,
    },
    /// Request `id` is refused (or failed): which rule or what went wrong,
    /// in words for the technician.
    Refused {
        /// The request.
        id: u64,
        /// Why.
        reason: String,
    },
    /// Request `id` (a shell or command) is running.
    Started {
        /// The request.
        id: u64,
    },
    /// Request `id` (a shell or command) ended.
    Exited {
        /// The request.
        id: u64,
        /// Its exit status, if it exited (not killed by a signal).
        code: Option<i32>,
        /// Why it stopped, if not by itself ("the end user stopped it").
        detail: String,
    },
    /// A folder's contents.
    Listing {
        /// The request.
        id: u64,
        /// The folder, as the applet resolved it.
        path: String,
        /// Its entries (at most [`MAX_LISTING`]).
        entries: Vec<Entry>,
        /// More entries were left out.
        truncated: bool,
    },
    /// The machine, for [`Work::SystemInfo`].
    SystemReport {
        /// The request.
        id: u64,
        /// What it is (boxed: it is large, and every frame would pay for
        /// its size).
        info: Box<SystemInfo>,
    },
    /// The URL was opened.
    Opened {
        /// The request.
        id: u64,
    },
    /// The receiver's answer to [`Work::Offer`]: send from `offset` on. A
    /// receiver holding a partial copy from an interrupted transfer gives
    /// its length and SHA-256; the sender checks it against its own
    /// file's first `offset` bytes and starts over from 0 if they differ.
    Accept {
        /// Transfer id.
        id: u64,
        /// Bytes the receiver already has.
        offset: u64,
        /// SHA-256 (hex) of those bytes ("" when `offset` is 0).
        partial_sha256: String,
    },
    /// The sender's answer to `Accept`: the bytes on the channel start
    /// here (the receiver's `offset`, or 0 if its partial copy did not
    /// match).
    From {
        /// Transfer id.
        id: u64,
        /// The first byte's offset.
        offset: u64,
    },
    /// The receiver's verdict on a whole file.
    Saved {
        /// Transfer id.
        id: u64,
        /// Its SHA-256 matched and it is in place.
        ok: bool,
        /// Where it was saved (the receiver's words).
        saved_as: String,
        /// What went wrong, or "".
        detail: String,
    },
    /// What the end user has granted now, and what runs under it: sent
    /// after every change and when a console meets the applet.
    Grants {
        /// Granted capabilities (bits of [`Permissions`]).
        granted: u32,
        /// The group's policy (bits of [`Permissions`]).
        allowed: u32,
        /// What runs, in plain words.
        running: Vec<String>,
    },
}

impl Work {
    /// The JSON payload.
    pub fn encode(&self) -> Vec<u8> {
        // A message over the limit is a bug of the sender (every field
        // with no bound of its own is clamped by its maker); it is sent
        // and the peer refuses it.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a payload.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        if payload.len() > MAX_WORK {
            return Err(DecodeError::invalid("work", "too long"));
        }
        serde_json::from_slice(payload)
            .map_err(|_| DecodeError::invalid("work", "not a work message"))
    }

    /// The capabilities named in a message's `caps`, as a set.
    pub fn caps(bits: u32) -> Permissions {
        Permissions::from_bits(bits)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let m = Work::Offer {
            id: 7,
            request: 3,
            channel: 0x8000_0001,
            path: vec!["a".into(), "b.txt".into()],
            size: 12,
        };
        assert_eq!(Work::decode(&m.encode()).unwrap(), m);
        assert!(Work::decode(b"{\"t\":\"fly\"}").is_err());
        assert!(Work::decode(&vec![b' '; MAX_WORK + 1]).is_err());
    }
}
