//! Logging relay refusals (and other repeating events: [`Throttle`])
//! without letting a flood fill the disk.
//!
//! A refused connection is worth a log line — once. One address sending
//! thousands of bad tokens a minute would otherwise write hundreds of
//! megabytes a day. So per refusal reason, the first refusal in a window
//! ([`WINDOW`], a minute) is logged in full; the others are only counted,
//! and a summary line per reason says how many there were once the window
//! has passed ([`RefusalLog::flush`], called by the node once a minute,
//! and by the next refusal of that reason).

use lifeline_protocol::relay::RefuseCode;
use lifeline_protocol::text::Shown;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one log line per reason stands for.
pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Entry {
    since: Instant,
    /// Refusals not logged in full since `since`.
    suppressed: u64,
    /// Where the last of those came from.
    last_peer: Option<SocketAddr>,
}

/// Per-reason throttle of refusal log lines.
#[derive(Debug)]
pub struct RefusalLog {
    window: Duration,
    entries: Mutex<HashMap<RefuseCode, Entry>>,
}

/// What [`RefusalLog`] decided about one refusal (for tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged {
    /// Logged in full.
    Full,
    /// Counted for the summary.
    Counted,
}

impl Default for RefusalLog {
    fn default() -> Self {
        Self::new(WINDOW)
    }
}

impl RefusalLog {
    /// One full line per reason per `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Notes a refusal: logs it, or counts it if this reason was logged
    /// within the window.
    pub fn refused(&self, code: RefuseCode, peer: SocketAddr, reason: &str) -> Logged {
        self.refused_at(code, peer, reason, Instant::now())
    }

    fn refused_at(&self, code: RefuseCode, peer: SocketAddr, reason: &str, now: Instant) -> Logged {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = entries.get_mut(&code) {
            if now.duration_since(e.since) < self.window {
                e.suppressed += 1;
                e.last_peer = Some(peer);
                return Logged::Counted;
            }
            summarize(code, e, now);
        }
        entries.insert(
            code,
            Entry {
                since: now,
                suppressed: 0,
                last_peer: None,
            },
        );
        tracing::info!(%peer, code = ?code, reason = %Shown(reason), "relay connection refused");
        Logged::Full
    }

    /// Writes the summary of every reason whose window has passed, and
    /// forgets reasons that were quiet. Returns how many summaries it wrote.
    pub fn flush(&self) -> usize {
        self.flush_at(Instant::now())
    }

    /// Writes every pending summary now (at shutdown).
    pub fn flush_all(&self) -> usize {
        self.flush_at(Instant::now() + self.window)
    }

    fn flush_at(&self, now: Instant) -> usize {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut written = 0;
        entries.retain(|code, e| {
            if now.duration_since(e.since) < self.window {
                return true;
            }
            if e.suppressed > 0 {
                summarize(*code, e, now);
                written += 1;
            }
            false
        });
        written
    }
}

/// At most one log line per interval for a repeating event: [`Throttle::due`]
/// says when to write one, and how many occurrences it stands for.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    count: u64,
}

impl Throttle {
    /// One line per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            count: 0,
        }
    }

    /// Counts one occurrence; `Some(n)` when a line is due, `n` being the
    /// occurrences since the last line (this one included).
    pub fn due(&mut self) -> Option<u64> {
        self.count += 1;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

fn summarize(code: RefuseCode, e: &Entry, now: Instant) {
    if e.suppressed == 0 {
        return;
    }
    tracing::info!(
        code = ?code,
        count = e.suppressed,
        secs = now.duration_since(e.since).as_secs(),
        last_peer = ?e.last_peer,
        "more relay connections refused for the same reason (not logged one by one)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_reason_per_window_then_a_summary() {
        let log = RefusalLog::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let peer: SocketAddr = "192.0.2.1:5".parse().unwrap();
        let na = RefuseCode::NotAuthorized;
        assert_eq!(log.refused_at(na, peer, "bad token", t0), Logged::Full);
        for i in 1..1000 {
            let at = t0 + Duration::from_millis(i);
            assert_eq!(log.refused_at(na, peer, "bad token", at), Logged::Counted);
        }
        // Another reason has its own line.
        let rl = RefuseCode::RateLimited;
        assert_eq!(log.refused_at(rl, peer, "slow down", t0), Logged::Full);
        assert_eq!(log.flush_at(t0 + Duration::from_secs(30)), 0, "window open");
        // After the window: one summary (NotAuthorized had 999 more); the
        // quiet reason is forgotten.
        assert_eq!(log.flush_at(t0 + Duration::from_secs(61)), 1);
        assert_eq!(log.flush_at(t0 + Duration::from_secs(122)), 0);
        let later = t0 + Duration::from_secs(200);
        assert_eq!(log.refused_at(na, peer, "bad token", later), Logged::Full);
    }

    #[test]
    fn a_throttle_writes_one_line_per_interval() {
        let mut t = Throttle::new(Duration::from_secs(3600));
        assert_eq!(t.due(), Some(1));
        for _ in 0..99 {
            assert_eq!(t.due(), None);
        }
        let mut t = Throttle::new(Duration::ZERO);
        assert_eq!((t.due(), t.due()), (Some(1), Some(1)));
    }
}
