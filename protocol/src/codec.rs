//! A byte cursor for decoding and a growable buffer for encoding.
//!
//! Modelled on rustls' `codec`: every wire type reads itself from a
//! [`Reader`] and writes itself to a [`Writer`]. Multi-byte integers are
//! big-endian (network order).

use thiserror::Error;

/// Why a decoder did not produce a value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ends before the value does; retry with more bytes.
    #[error("incomplete input: need more bytes")]
    Incomplete,
    /// The input can never become valid, whatever follows.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// The field or message that failed.
        what: &'static str,
        /// A short human-readable reason.
        why: &'static str,
    },
}

impl DecodeError {
    /// Shorthand for [`DecodeError::Invalid`].
    pub const fn invalid(what: &'static str, why: &'static str) -> Self {
        Self::Invalid { what, why }
    }
}

/// A read cursor over a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Incomplete);
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// Reads a big-endian u16.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads bytes prefixed by a u16 length, refusing more than `max`.
    pub fn bytes16(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let n = usize::from(self.u16()?);
        if n > max {
            return Err(DecodeError::invalid(what, "too long"));
        }
        self.take(n)
    }

    /// Reads bytes prefixed by a u32 length, refusing more than `max`.
    pub fn bytes32(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(DecodeError::invalid(what, "too long"));
        }
        self.take(n)
    }

    /// Reads UTF-8 text prefixed by a u16 length, refusing more than `max` bytes.
    pub fn str16(&mut self, what: &'static str, max: usize) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes16(what, max)?)
            .map_err(|_| DecodeError::invalid(what, "not UTF-8"))
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(DecodeError::invalid(what, "trailing bytes"))
        }
    }
}

/// An append-only encoding buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The encoded bytes.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// The encoded bytes so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Appends raw bytes.
    pub fn put(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a big-endian u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.put(&v.to_be_bytes())
    }

    /// Appends a big-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.put(&v.to_be_bytes())
    }

    /// Appends a big-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.put(&v.to_be_bytes())
    }

    /// Appends bytes with a u16 length prefix. Panics if longer than
    /// `u16::MAX`: encoders validate lengths before they get here.
    pub fn bytes16(&mut self, b: &[u8]) -> &mut Self {
        let n = u16::try_from(b.len()).expect("field longer than u16::MAX");
        self.u16(n).put(b)
    }

    /// Appends bytes with a u32 length prefix.
    pub fn bytes32(&mut self, b: &[u8]) -> &mut Self {
        let n = u32::try_from(b.len()).expect("field longer than u32::MAX");
        self.u32(n).put(b)
    }

    /// Appends UTF-8 text with a u16 length prefix.
    pub fn str16(&mut self, s: &str) -> &mut Self {
        self.bytes16(s.as_bytes())
    }
}

/// Truncates `s` to at most `max` bytes on a character boundary, so that
/// encoders never produce a field their own decoder would refuse.
pub fn clamp_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_input_is_incomplete_not_invalid() {
        let mut r = Reader::new(&[0, 5, b'a']);
        assert_eq!(r.bytes16("x", 10), Err(DecodeError::Incomplete));
    }

    #[test]
    fn over_long_field_is_invalid() {
        let mut r = Reader::new(&[0, 50]);
        assert!(matches!(
            r.bytes16("x", 10),
            Err(DecodeError::Invalid { .. })
        ));
    }

    #[test]
    fn clamp_respects_char_boundaries() {
        assert_eq!(clamp_str("héllo", 2), "h");
        assert_eq!(clamp_str("abc", 5), "abc");
    }
}
