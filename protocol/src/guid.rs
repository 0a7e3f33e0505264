//! The 128-bit session GUID.
//!
//! It is the only thing an applet carries that names its session, so it is
//! generated from a CSPRNG (never a counter or a time-based UUID). Its text
//! form is the familiar 8-4-4-4-12 hex layout; parsing also accepts 32 bare
//! hex digits.

use crate::codec::{DecodeError, Reader, Writer};
use std::fmt;
use std::str::FromStr;

/// A session's 128-bit identifier.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionGuid([u8; 16]);

impl SessionGuid {
    /// Wire length in bytes.
    pub const LEN: usize = 16;

    /// Wraps 16 bytes.
    pub const fn from_bytes(b: [u8; 16]) -> Self {
        Self(b)
    }

    /// A fresh GUID from the operating system's CSPRNG.
    pub fn random(rng: &dyn ring::rand::SecureRandom) -> Result<Self, ring::error::Unspecified> {
        let mut b = [0u8; 16];
        rng.fill(&mut b)?;
        Ok(Self(b))
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Reads 16 raw bytes.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self(r.array()?))
    }

    /// Writes 16 raw bytes.
    pub fn write(&self, w: &mut Writer) {
        w.put(&self.0);
    }
}

impl fmt::Display for SessionGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = crate::hex::encode(&self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

impl fmt::Debug for SessionGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionGuid({self})")
    }
}

/// Error for text that is not a GUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a session GUID (expected 32 hex digits, e.g. 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0)")]
pub struct ParseGuidError;

impl FromStr for SessionGuid {
    type Err = ParseGuidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let canonical = s.len() == 36
            && s.char_indices()
                .all(|(i, c)| matches!(i, 8 | 13 | 18 | 23) == (c == '-'));
        if !(canonical || s.len() == 32) {
            return Err(ParseGuidError);
        }
        let bytes = crate::hex::decode(s).ok_or(ParseGuidError)?;
        Ok(Self(bytes.try_into().map_err(|_| ParseGuidError)?))
    }
}

impl serde::Serialize for SessionGuid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SessionGuid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        let g = SessionGuid::from_bytes([0xab; 16]);
        let s = g.to_string();
        assert_eq!(s, "abababab-abab-abab-abab-abababababab");
        assert_eq!(s.parse::<SessionGuid>(), Ok(g));
        assert_eq!(s.replace('-', "").parse::<SessionGuid>(), Ok(g));
        assert!(
            "abababab-abab-abab-abab-ababababab"
                .parse::<SessionGuid>()
                .is_err()
        );
        assert!(
            "abababababab-abab-abab-abababababab"
                .parse::<SessionGuid>()
                .is_err()
        );
        assert!(
            "zzzzzzzz-abab-abab-abab-abababababab"
                .parse::<SessionGuid>()
                .is_err()
        );
    }
}
