//! Time-based one-time passwords (RFC 6238: HOTP, RFC 4226, over 30-second
//! steps, HMAC-SHA-1, six digits — what every authenticator app speaks),
//! built on ring's HMAC rather than a crate of its own: the algorithm is a
//! dozen lines, and the RFC's own test vectors check it below.
//!
//! A code is accepted for the step it belongs to and one step either side
//! (clock drift), and only for a step later than the last one accepted for
//! the same technician — so a code seen once cannot be replayed, not even
//! within its own window. Recovery codes are random, shown once, stored
//! only as their SHA-256 (they carry 50 bits of entropy each, so a slow
//! hash would add nothing).

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Steps accepted either side of now.
pub const DRIFT_STEPS: i64 = 1;
/// Recovery codes given at enrollment.
pub const RECOVERY_CODES: usize = 10;

/// A technician's TOTP secret (20 random bytes, as RFC 4226 recommends).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub [u8; 20]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// A new random secret.
    pub fn generate() -> Result<Self, ring::error::Unspecified> {
        let mut b = [0u8; 20];
        SystemRandom::new().fill(&mut b)?;
        Ok(Self(b))
    }

    /// A secret from its base32 form (as an app is given it: any case,
    /// spaces and padding ignored); `None` unless it is 20 bytes.
    pub fn from_base32(text: &str) -> Option<Self> {
        let (mut buf, mut bits, mut out) = (0u32, 0u32, Vec::new());
        for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
            let v = match c.to_ascii_uppercase() {
                c @ 'A'..='Z' => c as u32 - 'A' as u32,
                c @ '2'..='7' => c as u32 - '2' as u32 + 26,
                _ => return None,
            };
            buf = (buf << 5) | v;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                out.push((buf >> bits) as u8);
            }
        }
        out.try_into().ok().map(Self)
    }

    /// The secret in base32 (RFC 4648, no padding), as apps take it.
    pub fn base32(&self) -> String {
        base32(&self.0)
    }

    /// The `otpauth://` URI an authenticator app reads (from a QR code).
    pub fn uri(&self, issuer: &str, account: &str) -> String {
        let label = format!("{}:{}", uri_escape(issuer), uri_escape(account));
        format!(
            "otpauth://totp/{label}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            self.base32(),
            uri_escape(issuer)
        )
    }

    /// The code for `step` (RFC 4226's dynamic truncation).
    pub fn code_at(&self, step: i64) -> u32 {
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &self.0);
        let tag = hmac::sign(&key, &step.to_be_bytes());
        let h = tag.as_ref();
        let at = usize::from(h[h.len() - 1] & 0x0f);
        let bin = (u32::from(h[at] & 0x7f) << 24)
            | (u32::from(h[at + 1]) << 16)
            | (u32::from(h[at + 2]) << 8)
            | u32::from(h[at + 3]);
        bin % 10u32.pow(DIGITS)
    }

    /// The step a `code` typed at `now_ms` belongs to, if it is right for
    /// a step near now and later than `last_step` (the last accepted).
    /// Every candidate is compared, in constant time, so the answer's
    /// timing says nothing about which step matched.
    pub fn verify(&self, code: &str, now_ms: i64, last_step: Option<i64>) -> Option<i64> {
        let code = code.trim();
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = now_ms.div_euclid(1000 * STEP_SECS);
        let mut found = None;
        for step in now - DRIFT_STEPS..=now + DRIFT_STEPS {
            let want = format!("{:0width$}", self.code_at(step), width = DIGITS as usize);
            let same = ring_eq(want.as_bytes(), code.as_bytes());
            if same && last_step.is_none_or(|l| step > l) && found.is_none() {
                found = Some(step);
            }
        }
        found
    }
}

fn ring_eq(a: &[u8], b: &[u8]) -> bool {
    // Lengths are equal (checked above); the comparison does not stop early.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 4648 base32, upper case, no padding.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

fn uri_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Ten new recovery codes (`xxxxx-xxxxx`, 50 bits each, no look-alike
/// letters), to show once; store [`recovery_hash`] of each.
pub fn recovery_codes() -> Result<Vec<String>, ring::error::Unspecified> {
    const ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz023456789";
    let rng = SystemRandom::new();
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut b = [0u8; 10];
            rng.fill(&mut b)?;
            let s: String = b
                .iter()
                .map(|x| char::from(ALPHABET[usize::from(x & 31)]))
                .collect();
            Ok(format!("{}-{}", &s[..5], &s[5..]))
        })
        .collect()
}

/// What is stored of a recovery code: the SHA-256 (hex) of its normalized
/// form (lower case, no dashes or spaces), so `ABCDE-FGHJK` as typed
/// matches.
pub fn recovery_hash(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    lifeline_protocol::hex::encode(&lifeline_tls::sha256(normal.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: the SHA-1 rows (8 digits there; the last 6 of
    /// each are what a 6-digit code is, since both take the value mod
    /// 10^digits).
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = Secret(*b"12345678901234567890");
        for (t, eight) in [
            (59i64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(secret.code_at(t / STEP_SECS), eight % 1_000_000, "t = {t}");
        }
    }

    #[test]
    fn base32_is_rfc_4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(
            Secret(*b"12345678901234567890").base32(),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let s = Secret::generate().unwrap();
        assert_eq!(Secret::from_base32(&s.base32()), Some(s.clone()));
        assert_eq!(
            Secret::from_base32(&s.base32().to_lowercase().replace("", " ")),
            Some(s)
        );
        assert_eq!(Secret::from_base32("MZXW6YTBOI"), None, "not 20 bytes");
        assert_eq!(
            Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1"),
            None
        );
    }

    #[test]
    fn a_code_is_taken_near_its_time_and_only_once() {
        let s = Secret::generate().unwrap();
        let now = 1_800_000_000_000i64;
        let step = now / 1000 / STEP_SECS;
        let code = format!("{:06}", s.code_at(step));
        assert_eq!(s.verify(&code, now, None), Some(step));
        // Replayed: its step is not later than the last accepted.
        assert_eq!(s.verify(&code, now, Some(step)), None);
        // A step later (clock drift) still counts; three steps is too far.
        assert_eq!(s.verify(&code, now + 30_000, None), Some(step));
        assert_eq!(s.verify(&code, now + 90_000, None), None);
        assert_eq!(s.verify("12345", now, None), None);
        assert_eq!(s.verify("abcdef", now, None), None);
    }

    #[test]
    fn recovery_codes_are_distinct_and_match_as_typed() {
        let codes = recovery_codes().unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let set: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(set.len(), RECOVERY_CODES);
        let c = &codes[0];
        assert_eq!(
            recovery_hash(c),
            recovery_hash(&c.to_uppercase().replace('-', " "))
        );
        assert_ne!(recovery_hash(c), recovery_hash(&codes[1]));
    }

    #[test]
    fn the_uri_is_what_apps_read() {
        let s = Secret(*b"12345678901234567890");
        assert_eq!(
            s.uri("Example Support", "ada@example.com"),
            "otpauth://totp/Example%20Support:ada@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example%20Support&algorithm=SHA1&digits=6&period=30"
        );
    }
}
