//! The link test: the sender streams a keyed pseudo-random byte sequence
//! on a bulk channel ([`TestSource`]); the receiver regenerates it and
//! checks every byte ([`Receiver`]), so a lost, duplicated or reordered
//! byte anywhere — across a cutover too — shows up with its offset.
//!
//! The sequence is AES-256-GCM applied to zeros (the AES-CTR keystream)
//! with a key derived from the test's seed, in 64 KiB chunks: ring does it
//! at several GB/s, so neither end's CPU limits what the path shows.

use lifeline_protocol::e2e::MAX_DATA;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use std::time::{Duration, Instant};

/// Largest link test an end accepts (bytes).
pub const MAX_TEST_BYTES: u64 = 4 << 30;

/// Which way a link test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Console → applet.
    ToUser,
    /// Applet → console.
    FromUser,
}

impl Direction {
    /// `to_user` / `from_user`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ToUser => "to_user",
            Direction::FromUser => "from_user",
        }
    }
}

/// The test sequence of one seed.
pub struct TestStream {
    key: LessSafeKey,
    counter: u64,
    chunk: Vec<u8>,
    pos: usize,
}

impl std::fmt::Debug for TestStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStream")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl TestStream {
    /// The sequence for `seed`.
    pub fn new(seed: u64) -> Self {
        let d = ring::digest::digest(
            &ring::digest::SHA256,
            &[b"lifeline link test v1".as_slice(), &seed.to_be_bytes()].concat(),
        );
        // A 32-byte key always makes an AES-256 key.
        let key = UnboundKey::new(&AES_256_GCM, d.as_ref())
            .map(LessSafeKey::new)
            .unwrap_or_else(|_| unreachable!("AES-256 takes 32-byte keys"));
        Self {
            key,
            counter: 0,
            chunk: Vec::new(),
            pos: 0,
        }
    }

    fn refill(&mut self) {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&self.counter.to_be_bytes());
        self.counter += 1;
        self.chunk.clear();
        self.chunk.resize(MAX_DATA, 0);
        // Sealing never fails for a buffer this size; the tag is dropped.
        let _ = self.key.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut self.chunk,
        );
        self.pos = 0;
    }

    /// The next `n` bytes (at most one chunk's worth is fine; any `n`
    /// works).
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if self.pos == self.chunk.len() {
                self.refill();
            }
            let k = (n - out.len()).min(self.chunk.len() - self.pos);
            out.extend_from_slice(&self.chunk[self.pos..self.pos + k]);
            self.pos += k;
        }
        out
    }

    /// Checks that `data` is what comes next; on a mismatch returns the
    /// offset within `data` of the first wrong byte.
    pub fn check(&mut self, data: &[u8]) -> Result<(), usize> {
        let mut done = 0;
        while done < data.len() {
            if self.pos == self.chunk.len() {
                self.refill();
            }
            let k = (data.len() - done).min(self.chunk.len() - self.pos);
            let want = &self.chunk[self.pos..self.pos + k];
            let got = &data[done..done + k];
            if want != got {
                let i = want.iter().zip(got).position(|(a, b)| a != b).unwrap_or(0);
                return Err(done + i);
            }
            self.pos += k;
            done += k;
        }
        Ok(())
    }
}

/// The sending end of one link test: `len` bytes of the sequence of
/// `seed`, as a channel's source (the channel's credit paces it to the
/// receiver and the path).
#[derive(Debug)]
pub struct TestSource {
    stream: TestStream,
    left: u64,
}

impl TestSource {
    /// `len` bytes of the sequence of `seed`.
    pub fn new(seed: u64, len: u64) -> Self {
        Self {
            stream: TestStream::new(seed),
            left: len,
        }
    }
}

impl TestSource {
    /// Up to `max` next bytes.
    pub fn take(&mut self, max: usize) -> Vec<u8> {
        let n = (max as u64).min(self.left) as usize;
        self.left -= n as u64;
        self.stream.take(n)
    }

    /// Whether every byte has been taken.
    pub fn finished(&self) -> bool {
        self.left == 0
    }
}

/// The receiving end of one link test.
#[derive(Debug)]
pub struct Receiver {
    stream: TestStream,
    expected: u64,
    got: u64,
    started: Instant,
}

/// A finished link test, as the receiver saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Every byte arrived, once, in order.
    pub ok: bool,
    /// Bytes received.
    pub bytes: u64,
    /// The first problem, or "".
    pub detail: String,
    /// From the start frame to the last byte.
    pub took: Duration,
}

impl Receiver {
    /// Expects `len` bytes of the sequence of `seed`, from `now` on.
    pub fn new(seed: u64, len: u64, now: Instant) -> Self {
        Self {
            stream: TestStream::new(seed),
            expected: len,
            got: 0,
            started: now,
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.got
    }

    /// Takes the next data at `now`; returns the verdict once the test is
    /// over (all bytes arrived, or one was wrong).
    pub fn on_data(&mut self, data: &[u8], now: Instant) -> Option<Verdict> {
        let verdict = |ok, bytes, detail: String, took| {
            Some(Verdict {
                ok,
                bytes,
                detail,
                took,
            })
        };
        if self.got + data.len() as u64 > self.expected {
            return verdict(
                false,
                self.got + data.len() as u64,
                format!("more than the {} bytes announced", self.expected),
                now.saturating_duration_since(self.started),
            );
        }
        if let Err(i) = self.stream.check(data) {
            let at = self.got + i as u64;
            return verdict(
                false,
                at,
                format!("byte {at} is wrong (lost, duplicated or reordered data)"),
                now.saturating_duration_since(self.started),
            );
        }
        self.got += data.len() as u64;
        if self.got == self.expected {
            return verdict(
                true,
                self.got,
                String::new(),
                now.saturating_duration_since(self.started),
            );
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_checks_in_any_split_and_catches_a_lost_byte() {
        let mut a = TestStream::new(7);
        let data = a.take(200_000);
        let t = Instant::now();
        let mut r = Receiver::new(7, 200_000, t);
        assert_eq!(r.on_data(&data[..1], t), None);
        assert_eq!(r.on_data(&data[1..70_000], t), None);
        let v = r.on_data(&data[70_000..], t).unwrap();
        assert!(v.ok && v.bytes == 200_000, "{v:?}");

        let mut r = Receiver::new(7, 200_000, t);
        assert_eq!(r.on_data(&data[..1000], t), None);
        // Byte 1000 is lost.
        let v = r.on_data(&data[1001..2001], t).unwrap();
        assert!(!v.ok);
        assert!(v.detail.contains("byte 1000"), "{v:?}");
    }

    #[test]
    fn seeds_differ_and_repeat() {
        assert_eq!(TestStream::new(1).take(100), TestStream::new(1).take(100));
        assert_ne!(TestStream::new(1).take(100), TestStream::new(2).take(100));
    }

    #[test]
    fn more_than_announced_is_an_error() {
        let mut s = TestStream::new(3);
        let t = Instant::now();
        let mut r = Receiver::new(3, 10, t);
        assert!(!r.on_data(&s.take(11), t).unwrap().ok);
    }
}
