//! Technician credentials: scrypt password hashes, bearer tokens, lockout.
//!
//! * Passwords: scrypt (log₂N = 15, r = 8, p = 1; 32 MiB, tens of ms) with a
//!   fresh 16-byte salt per password, stored as
//!   `scrypt$LOGN$R$P$SALT_HEX$HASH_HEX` so parameters can be raised later
//!   without invalidating old hashes.
//! * Tokens: 32 random bytes, given to the technician as hex; the store
//!   keeps only their SHA-256, so a database leak yields no usable token and
//!   lookup by hash needs no constant-time comparison.
//! * scrypt runs on the blocking pool behind a semaphore, so a flood of
//!   logins cannot starve the relay of CPU or memory.

use lifeline_protocol::hex;
use ring::rand::{SecureRandom, SystemRandom};
use std::sync::Arc;
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

/// Runs password work on the blocking pool, at most `limit` at a time.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
}

impl PasswordHasher {
    /// Allows `limit` concurrent scrypt computations.
    pub fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit.max(1))),
        }
    }

    /// [`verify_password`] off the async runtime.
    pub async fn verify(&self, password: String, stored: String) -> Result<bool, AuthError> {
        let _permit = self.permits.acquire().await.map_err(|_| AuthError::Join)?;
        tokio::task::spawn_blocking(move || verify_password(&password, &stored))
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
    lifeline_session::tls::sha256(token.trim().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

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
