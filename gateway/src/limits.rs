//! Per-source limits: concurrent connections per IP, and a one-minute
//! budget of bad attempts (unknown GUIDs, failed logins) per IP.
//!
//! Both maps only hold entries for addresses that currently have
//! connections or recent failures, so they stay small under normal load
//! and are pruned as they go.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counts open connections per IP.
#[derive(Debug)]
pub struct ConnLimiter {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// Holds one connection slot; releases it on drop.
#[derive(Debug)]
pub struct ConnSlot {
    limiter: Arc<ConnLimiter>,
    ip: IpAddr,
}

impl ConnLimiter {
    /// Allows `max` concurrent connections per IP.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a slot for `ip`, or `None` if it has `max` already.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ConnSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ConnSlot {
            limiter: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut open = self.limiter.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A fixed one-minute window of bad attempts per IP.
#[derive(Debug)]
pub struct BadAttemptLimiter {
    per_minute: u32,
    window: Duration,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl BadAttemptLimiter {
    /// Allows `per_minute` bad attempts per IP per minute.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            window: Duration::from_secs(60),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` has used up its budget.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&ip)
            .is_some_and(|(start, n)| start.elapsed() < self.window && *n >= self.per_minute)
    }

    /// Records a bad attempt; returns true if `ip` is now over budget.
    pub fn record(&self, ip: IpAddr) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 10_000 {
            let window = self.window;
            seen.retain(|_, (start, _)| start.elapsed() < window);
        }
        let e = seen.entry(ip).or_insert((Instant::now(), 0));
        if e.0.elapsed() >= self.window {
            *e = (Instant::now(), 0);
        }
        e.1 += 1;
        e.1 >= self.per_minute
    }

    /// Seconds until `ip`'s window resets.
    pub fn retry_after(&self, ip: IpAddr) -> u64 {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&ip)
            .map(|(start, _)| self.window.saturating_sub(start.elapsed()).as_secs() + 1)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_slots_are_released() {
        let l = ConnLimiter::new(2);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = l.acquire(ip).unwrap();
        let _b = l.acquire(ip).unwrap();
        assert!(l.acquire(ip).is_none());
        assert!(l.acquire("127.0.0.2".parse().unwrap()).is_some());
        drop(a);
        assert!(l.acquire(ip).is_some());
    }

    #[test]
    fn bad_attempts_block_after_budget() {
        let l = BadAttemptLimiter::new(3);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(!l.record(ip));
        assert!(!l.record(ip));
        assert!(!l.is_blocked(ip));
        assert!(l.record(ip));
        assert!(l.is_blocked(ip));
        assert!(l.retry_after(ip) > 0);
        assert!(!l.is_blocked("10.0.0.2".parse().unwrap()));
    }
}
