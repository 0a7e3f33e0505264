//! Per-source limits: concurrent connections per source, and one-minute
//! budgets of bad attempts per source, one budget per kind of attempt.
//!
//! A *source* is an IPv4 address or an IPv6 /64 ([`source_key`]): one
//! IPv6 host usually holds a whole /64, so counting single IPv6 addresses
//! would let it step around every limit.
//!
//! The kinds are separate ([`Budgets`]) so that a neighbour behind the same
//! NAT who guesses session GUIDs cannot lock the end user out of logging
//! in, or the other way round. And a budget only ever stands in the way of
//! a *failing* attempt: an applet with a valid GUID and proof, or a
//! console with a valid token, is let through however many misses its
//! address has made. Logins are the exception, because their check is the
//! expensive part: a login takes its place in the budget
//! ([`Budget::reserve`]) *before* its password is hashed, so parallel
//! requests cannot all get hashed before the first failure is counted; a
//! successful login gives its place back ([`Budget::refund`]).
//!
//! The maps only hold sources that currently have connections or recent
//! attempts, so they stay small under normal load and are pruned as they
//! go.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The key per-source limits count by: an IPv4 address (also when it
/// arrives IPv4-mapped on a dual-stack socket), or the /64 of an IPv6
/// address.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Counts open connections per source.
#[derive(Debug)]
pub struct ConnLimiter {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// Holds one connection slot; releases it on drop.
#[derive(Debug)]
pub struct ConnSlot {
    limiter: Arc<ConnLimiter>,
    key: IpAddr,
}

impl ConnLimiter {
    /// Allows `max` concurrent connections per source.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a slot for `ip`'s source, or `None` if it has `max` already.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ConnSlot> {
        let key = source_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ConnSlot {
            limiter: self.clone(),
            key,
        })
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut open = self.limiter.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Sources tracked by one budget before idle ones are pruned.
const PRUNE_ABOVE: usize = 10_000;

/// A fixed one-minute window of attempts per source.
#[derive(Debug)]
pub struct Budget {
    per_minute: u32,
    window: Duration,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Budget {
    /// Allows `per_minute` attempts per source per minute.
    pub fn new(per_minute: u32) -> Self {
        Self::with_window(per_minute, Duration::from_secs(60))
    }

    /// Allows `per` attempts per source per `window`.
    pub fn with_window(per: u32, window: Duration) -> Self {
        Self {
            per_minute: per,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (Instant, u32)>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one attempt from `ip`'s budget, or refuses with the seconds
    /// until its window resets. Atomic: of many parallel callers from one
    /// source, at most the budget get `Ok`.
    pub fn reserve(&self, ip: IpAddr) -> Result<(), u64> {
        let key = source_key(ip);
        let now = Instant::now();
        let mut seen = self.lock();
        if seen.len() > PRUNE_ABOVE {
            let window = self.window;
            seen.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let e = seen.entry(key).or_insert((now, 0));
        if now.duration_since(e.0) >= self.window {
            *e = (now, 0);
        }
        if e.1 >= self.per_minute {
            return Err(self
                .window
                .saturating_sub(now.duration_since(e.0))
                .as_secs()
                + 1);
        }
        e.1 += 1;
        Ok(())
    }

    /// Gives back an attempt [`reserve`](Self::reserve) took, when it
    /// turned out not to be a bad one (a successful login), or was never
    /// made (the hasher was busy).
    pub fn refund(&self, ip: IpAddr) {
        let mut seen = self.lock();
        if let Some(e) = seen.get_mut(&source_key(ip)) {
            e.1 = e.1.saturating_sub(1);
        }
    }

    /// Whether `ip`'s source has used up its budget.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        self.lock()
            .get(&source_key(ip))
            .is_some_and(|(start, n)| start.elapsed() < self.window && *n >= self.per_minute)
    }
}

/// One budget per kind of bad attempt (see the module doc).
#[derive(Debug)]
pub struct Budgets {
    /// Relay hellos for a GUID that does not exist, or without a valid
    /// applet proof.
    pub unknown_session: Budget,
    /// Portal logins (taken before the password is hashed).
    pub login: Budget,
    /// Relay hellos from a console whose token is not valid.
    pub console_token: Budget,
    /// Wrong PINs on the end user's web page, per source.
    pub pin: Budget,
    /// Wrong PINs on the web page from everywhere together (one key): what
    /// bounds a guesser with many addresses.
    pub pin_global: Budget,
    /// Visits to channels' pages that download a program (each creates a
    /// session), per source: counted whether they succeed or not.
    pub channel_visits: Budget,
}

/// Sessions one source may create through channels per ten minutes.
pub const CHANNEL_VISITS: u32 = 5;

/// Wrong PINs one source may type per minute.
pub const PIN_PER_SOURCE: u32 = 5;
/// Wrong PINs a node accepts per minute from all sources together. With
/// N live PINs (of a million), a guesser who spends all of it for a PIN's
/// whole 20 minutes hits one with a chance of about 20 × this × N / 10⁶.
pub const PIN_GLOBAL: u32 = 20;

impl Budgets {
    /// Each kind allows `per_minute` attempts per source per minute.
    pub fn new(per_minute: u32) -> Self {
        Self {
            unknown_session: Budget::new(per_minute),
            login: Budget::new(per_minute),
            console_token: Budget::new(per_minute),
            pin: Budget::new(PIN_PER_SOURCE),
            pin_global: Budget::new(PIN_GLOBAL),
            channel_visits: Budget::with_window(CHANNEL_VISITS, Duration::from_secs(600)),
        }
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
    fn sources_are_ipv4_addresses_or_ipv6_64s() {
        let k = |s: &str| source_key(s.parse().unwrap());
        assert_eq!(k("10.0.0.1"), k("::ffff:10.0.0.1"));
        assert_ne!(k("10.0.0.1"), k("10.0.0.2"));
        assert_eq!(k("2001:db8:1:2:3:4:5:6"), k("2001:db8:1:2:ffff::1"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        let l = ConnLimiter::new(1);
        let _held = l.acquire("2001:db8::1".parse().unwrap()).unwrap();
        assert!(l.acquire("2001:db8::2".parse().unwrap()).is_none());
    }

    #[test]
    fn reservations_are_atomic_and_refundable() {
        let b = Budget::new(3);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(b.reserve(ip), Ok(()));
        assert_eq!(b.reserve(ip), Ok(()));
        assert!(!b.is_blocked(ip));
        assert_eq!(b.reserve(ip), Ok(()));
        assert!(b.is_blocked(ip));
        let retry = b.reserve(ip).unwrap_err();
        assert!((1..=61).contains(&retry), "{retry}");
        b.refund(ip);
        assert_eq!(b.reserve(ip), Ok(()));
        assert!(!b.is_blocked("10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn parallel_reservations_never_exceed_the_budget() {
        let b = Arc::new(Budget::new(30));
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let granted: usize = (0..8)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..50).filter(|_| b.reserve(ip).is_ok()).count())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(granted, 30);
    }

    #[test]
    fn the_window_resets() {
        let b = Budget::with_window(1, Duration::from_millis(50));
        let ip: IpAddr = "10.0.0.3".parse().unwrap();
        assert!(b.reserve(ip).is_ok());
        assert!(b.reserve(ip).is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.reserve(ip).is_ok());
    }
}
