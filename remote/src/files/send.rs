//! The sending side of one file.
//!
//! The size announced in the `Offer` is what is sent: a file that grows
//! while it is being sent is sent up to that size (the receiver checks
//! the length, and the hash covers exactly those bytes); one that shrinks
//! cannot be, and says so. The SHA-256 runs over every byte as it is
//! read, so the `Sent` hash costs no second pass — and when the receiver
//! resumes, its partial copy is checked against our own first bytes, not
//! trusted.

use super::error::{FileError, shown};
use super::{hash_prefix, hex_of, same_digest};
use bytes::Bytes;
use ring::digest;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The largest chunk [`Sender::read_chunk`] reads at once, whatever it is
/// asked for: a chunk is held in memory.
pub const MAX_CHUNK: usize = 4 * 1024 * 1024;

/// One file being sent.
pub struct Sender {
    path: PathBuf,
    file: File,
    size: u64,
    position: u64,
    hash: digest::Context,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// Opens the regular file at `path` (a symbolic link named directly is
    /// followed — it is what was asked for). Folders, devices, pipes and
    /// sockets are refused, before opening: opening a pipe would wait for
    /// a writer, and a device never ends.
    pub fn open(path: &Path) -> Result<Sender, FileError> {
        let meta = std::fs::metadata(path).map_err(FileError::at("open", path))?;
        if !meta.is_file() {
            return Err(FileError::NotAFile { path: shown(path) });
        }
        let file = File::open(path).map_err(FileError::at("open", path))?;
        // What was opened is what was looked at (not swapped meanwhile).
        let meta = file.metadata().map_err(FileError::at("open", path))?;
        if !meta.is_file() {
            return Err(FileError::NotAFile { path: shown(path) });
        }
        Ok(Sender {
            path: path.to_path_buf(),
            file,
            size: meta.len(),
            position: 0,
            hash: digest::Context::new(&digest::SHA256),
        })
    }

    /// The file's size when it was opened: what is announced and sent.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The receiver holds `offset` bytes whose SHA-256 is `partial_sha256`
    /// (`""` when 0). If our own first `offset` bytes have that hash (and
    /// `offset` is within the file), sending continues from there — the
    /// running hash already covering them — and `offset` is returned;
    /// otherwise sending starts over and 0 is returned.
    pub fn resume_from(&mut self, offset: u64, partial_sha256: &str) -> Result<u64, FileError> {
        if offset > 0 && offset <= self.size {
            let ours =
                hash_prefix(&mut self.file, offset).map_err(FileError::at("read", &self.path))?;
            if let Some(ctx) = ours
                && same_digest(&hex_of(ctx.clone()), partial_sha256)
            {
                self.hash = ctx;
                self.position = offset;
                return Ok(offset);
            }
        }
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(FileError::at("read", &self.path))?;
        self.hash = digest::Context::new(&digest::SHA256);
        self.position = 0;
        Ok(0)
    }

    /// The next chunk: at most `max` bytes (and at most [`MAX_CHUNK`]);
    /// empty once [`size`](Self::size) bytes were read (or when `max` is
    /// 0). An error if the file ended early.
    pub fn read_chunk(&mut self, max: usize) -> Result<Bytes, FileError> {
        let left = self.size - self.position;
        let want = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(max)
            .min(MAX_CHUNK);
        if want == 0 {
            return Ok(Bytes::new());
        }
        let mut buf = vec![0u8; want];
        let mut got = 0;
        while got < want {
            match self.file.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FileError::io("read", &self.path, e)),
            }
        }
        if got == 0 {
            return Err(FileError::Shrank {
                path: shown(&self.path),
            });
        }
        buf.truncate(got);
        self.hash.update(&buf);
        self.position += got as u64;
        Ok(Bytes::from(buf))
    }

    /// Bytes sent so far, the resumed start included.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// After the last chunk: the SHA-256 (hex) of everything — the resumed
    /// start and every chunk — for `Sent`.
    pub fn finish(self) -> String {
        hex_of(self.hash)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::files::sha256_hex;
    use crate::files::testdir::TestDir;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn read_all(s: &mut Sender, max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let c = s.read_chunk(max).unwrap();
            if c.is_empty() {
                return out;
            }
            assert!(c.len() <= max);
            out.extend_from_slice(&c);
        }
    }

    #[test]
    fn reads_the_whole_file_and_hashes_it() {
        let dir = TestDir::new("send-whole");
        let bytes = data(100_003);
        let p = dir.write("a.bin", &bytes);
        let mut s = Sender::open(&p).unwrap();
        assert_eq!(s.size(), 100_003);
        assert_eq!(s.resume_from(0, "").unwrap(), 0);
        assert_eq!(read_all(&mut s, 4096), bytes);
        assert_eq!(s.position(), 100_003);
        assert_eq!(s.finish(), sha256_hex(&bytes));
    }

    #[test]
    fn resumes_only_from_a_matching_start() {
        let dir = TestDir::new("send-resume");
        let bytes = data(10_000);
        let p = dir.write("a.bin", &bytes);

        let mut s = Sender::open(&p).unwrap();
        assert_eq!(
            s.resume_from(4000, &sha256_hex(&bytes[..4000])).unwrap(),
            4000
        );
        assert_eq!(s.position(), 4000);
        assert_eq!(read_all(&mut s, 1000), &bytes[4000..]);
        assert_eq!(s.finish(), sha256_hex(&bytes));

        // Upper-case hex is the same digest.
        let mut s = Sender::open(&p).unwrap();
        let upper = sha256_hex(&bytes[..10]).to_uppercase();
        assert_eq!(s.resume_from(10, &upper).unwrap(), 10);

        let mut s = Sender::open(&p).unwrap();
        let mut wrong = bytes[..4000].to_vec();
        wrong[17] ^= 1;
        assert_eq!(s.resume_from(4000, &sha256_hex(&wrong)).unwrap(), 0);
        assert_eq!(s.position(), 0);
        assert_eq!(read_all(&mut s, 3000), bytes);
        assert_eq!(s.finish(), sha256_hex(&bytes));

        // Beyond the file, or no hash: from the start.
        let mut s = Sender::open(&p).unwrap();
        assert_eq!(s.resume_from(10_001, &sha256_hex(&bytes)).unwrap(), 0);
        assert_eq!(s.resume_from(100, "").unwrap(), 0);
        // The whole file: nothing left to send.
        assert_eq!(s.resume_from(10_000, &sha256_hex(&bytes)).unwrap(), 10_000);
        assert!(s.read_chunk(100).unwrap().is_empty());
        assert_eq!(s.finish(), sha256_hex(&bytes));
    }

    #[test]
    fn sends_exactly_the_announced_size() {
        let dir = TestDir::new("send-changing");
        let bytes = data(5000);
        let p = dir.write("grows.bin", &bytes);
        let mut s = Sender::open(&p).unwrap();
        std::fs::write(&p, data(9000)).unwrap(); // same first 5000 bytes
        assert_eq!(read_all(&mut s, 1 << 20), bytes);
        assert_eq!(s.finish(), sha256_hex(&bytes));

        let p = dir.write("shrinks.bin", &bytes);
        let mut s = Sender::open(&p).unwrap();
        assert_eq!(s.read_chunk(3000).unwrap().len(), 3000);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(3000)
            .unwrap();
        let e = s.read_chunk(3000).unwrap_err();
        assert!(matches!(e, FileError::Shrank { .. }), "{e:?}");
        assert!(e.to_string().contains("became shorter"), "{e}");
    }

    #[test]
    fn refuses_what_is_not_a_regular_file() {
        let dir = TestDir::new("send-refuse");
        let e = Sender::open(dir.path()).unwrap_err();
        assert!(matches!(e, FileError::NotAFile { .. }), "{e:?}");
        let e = Sender::open(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().ends_with(": it does not exist."), "{e}");
    }

    #[test]
    fn an_empty_file_is_one_empty_read() {
        let dir = TestDir::new("send-empty");
        let p = dir.write("empty", b"");
        let mut s = Sender::open(&p).unwrap();
        assert!(s.read_chunk(10).unwrap().is_empty());
        assert_eq!(s.finish(), sha256_hex(b""));
    }
}
