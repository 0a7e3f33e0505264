//! Technician credentials: scrypt password hashes, bearer tokens, lockout.
//!
//! * Passwords: scrypt (log₂N = 15, r = 8, p = 1; 32 MiB, tens of ms) with a
//!   fresh 16-byte salt per password, stored as
//!   `scrypt$LOGN$R$P$SALT_HEX$HASH_HEX` so parameters can be raised later
//!   without invalidating old hashes.
//! * Tokens: 32 random bytes, given to the technician as hex; the store
//!   keeps only their SHA-256, so a database leak yields no usable token and
//!   lookup by hash needs no constant-time comparison.
//! * scrypt runs on the blocking pool, at most a few at a time, behind a
//!   bounded queue ([`PasswordHasher`]): a flood of logins can neither
//!   starve the relay of CPU or memory nor make a real technician wait
//!   behind thousands of queued hashes — when the queue is full, a login
//!   is answered "busy, retry in a second" at once.

use lifeline_protocol::hex;
use ring::rand::{SecureRandom, SystemRandom};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Semaphore;

const LOG_N: u8 = 15;
const R: u32 = 8;
const P: u32 = 1;

/// Errors hashing or checking passwords.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The stored hash is not in a known format.
    #[error("stored password hash is malformed")]
    MalformedHash,
    /// Random or KDF failure.
    #[error("password hashing failed")]
    Crypto,
    /// The blocking task failed.
    #[error("password hashing task failed")]
    Join,
    /// Too many password checks are queued; try again shortly.
    #[error("too many logins at once; try again in a second")]
    Busy,
}

fn fill_random(buf: &mut [u8]) -> Result<(), AuthError> {
    SystemRandom::new().fill(buf).map_err(|_| AuthError::Crypto)
}

fn derive(password: &[u8], salt: &[u8], log_n: u8, r: u32, p: u32) -> Result<[u8; 32], AuthError> {
    let params = scrypt::Params::new(log_n, r, p, 32).map_err(|_| AuthError::MalformedHash)?;
    let mut out = [0u8; 32];
    scrypt::scrypt(password, salt, &params, &mut out).map_err(|_| AuthError::Crypto)?;
    Ok(out)
}

/// Hashes a password with a fresh salt (blocking: call off the async runtime).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    fill_random(&mut salt)?;
    let h = derive(password.as_bytes(), &salt, LOG_N, R, P)?;
    Ok(format!(
        "scrypt${LOG_N}${R}${P}${}${}",
        hex::encode(&salt),
        hex::encode(&h)
    ))
}

/// Checks a password against a stored hash in constant time (blocking).
pub fn verify_password(password: &str, stored: &str) -> Result<bool, AuthError> {
    let parts: Vec<&str> = stored.split('$').collect();
    let [alg, log_n, r, p, salt, hash] = parts.as_slice() else {
        return Err(AuthError::MalformedHash);
    };
    if *alg != "scrypt" {
        return Err(AuthError::MalformedHash);
    }
    let log_n: u8 = log_n.parse().map_err(|_| AuthError::MalformedHash)?;
    let r: u32 = r.parse().map_err(|_| AuthError::MalformedHash)?;
    let p: u32 = p.parse().map_err(|_| AuthError::MalformedHash)?;
    // Refuse parameters that would let a tampered row exhaust memory.
    if log_n > 20 || r > 16 || p > 4 {
        return Err(AuthError::MalformedHash);
    }
    let salt = hex::decode(salt).ok_or(AuthError::MalformedHash)?;
    let expected = hex::decode(hash).ok_or(AuthError::MalformedHash)?;
    let got = derive(password.as_bytes(), &salt, log_n, r, p)?;
    Ok(lifeline_protocol::proof::ct_eq(&got, &expected))
}

/// A hash of a random password, used to spend the same time on unknown
/// e-mail addresses as on known ones (no user enumeration by timing).
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let mut pw = [0u8; 16];
        let _ = fill_random(&mut pw);
        hash_password(&hex::encode(&pw)).unwrap_or_default()
    })
}

/// Runs password work on the blocking pool, at most `concurrency` at a
/// time, with at most `queue` more waiting; beyond that, [`AuthError::Busy`].
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
    /// Checks that ran (the operator's view of login pressure).
    checked: Arc<AtomicU64>,
}

impl PasswordHasher {
    /// Allows `concurrency` scrypt computations at once and `queue` waiting.
    pub fn new(concurrency: usize, queue: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            running: Arc::new(Semaphore::new(concurrency)),
            admitted: Arc::new(Semaphore::new(concurrency + queue)),
            checked: Arc::default(),
        }
    }

    /// Password checks that ran since the node started (decoys included).
    pub fn checks(&self) -> u64 {
        self.checked.load(Ordering::Relaxed)
    }

    /// [`verify_password`] off the async runtime, or [`AuthError::Busy`]
    /// at once if the queue is full.
    pub async fn verify(&self, password: String, stored: String) -> Result<bool, AuthError> {
        // Counted when it runs: a check refused as busy hashed nothing.
        let checked = self.checked.clone();
        self.run(move || {
            checked.fetch_add(1, Ordering::Relaxed);
            verify_password(&password, &stored)
        })
        .await
    }

    /// Password work of another kind (hashing a new password, judging its
    /// strength) under the same bounds as the checks.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let _admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| AuthError::Busy)?;
        let _running = self.running.acquire().await.map_err(|_| AuthError::Join)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| AuthError::Join)?
    }
}

/// A new bearer token (hex) and the SHA-256 the store keeps.
pub fn new_token() -> Result<(String, [u8; 32]), AuthError> {
    let mut raw = [0u8; 32];
    fill_random(&mut raw)?;
    let token = hex::encode(&raw);
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// SHA-256 of a token's text, the store's lookup key.
pub fn token_hash(token: &str) -> [u8; 32] {
    lifeline_tls::sha256(token.trim().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let h = PasswordHasher::new(1, 2);
        let stored = hash_password("pw").unwrap();
        // On this single-threaded runtime the ten tasks are each polled
        // once, in order, before the first hash can finish.
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let (h, stored) = (h.clone(), stored.clone());
            set.spawn(async move { h.verify("pw".into(), stored).await });
        }
        let results = set.join_all().await;
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err(AuthError::Busy)))
            .count();
        assert_eq!(busy, 7, "1 running + 2 queued were admitted: {results:?}");
        assert_eq!(results.iter().filter(|r| matches!(r, Ok(true))).count(), 3);
    }

    #[test]
    fn hash_verify_and_salting() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert_ne!(a, b, "salts must differ");
        assert!(verify_password("correct horse", &a).unwrap());
        assert!(!verify_password("Correct horse", &a).unwrap());
        assert!(verify_password("x", "plain").is_err());
        assert!(verify_password("x", "scrypt$30$8$1$00$00").is_err());
    }
}
