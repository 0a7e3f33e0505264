//! File transfer, either way: the building blocks both ends use around
//! the wire's `Offer` / `Accept` / `From` / `Sent` / `Saved` exchange
//! (see [`lifeline_protocol::work`]).
//!
//! * [`Sender`] reads a file in chunks, hashing as it goes; it checks a
//!   receiver's partial copy against its own first bytes before resuming
//!   from it.
//! * [`Receiver`] writes below a receiving folder only: every name goes
//!   through [`safe_component`], no folder on the way may be a symbolic
//!   link, and the bytes go to a partial copy (`.<name>.lifeline-part`)
//!   that becomes the file only once its length and SHA-256 match what
//!   the sender says — never overwriting a file that is there
//!   ([`unused_name`]). An interrupted transfer leaves the partial copy,
//!   and the next one resumes from it.
//! * [`walk::files`] lists what a file or folder tree sends;
//!   [`walk::list`] is a folder listing for the technician.
//!
//! * [`disk`] runs every `Receiver` of one end on a blocking thread of its
//!   own, so writing and syncing never stall the session.
//!
//! The code is plain synchronous `std::fs`: a caller on the async side
//! runs it on a blocking thread (or inline for small work). Every error is
//! a [`FileError`] whose text is a sentence a person can read.
//!
//! One transfer, receiver's side:
//! [`Receiver::prepare`] → [`Receiver::partial`] (into `Accept`) →
//! [`Receiver::begin`] (from `From`) → [`Receiver::write`]… →
//! [`Receiver::finish`] (with `Sent`'s hash; into `Saved`). Sender's side:
//! [`Sender::open`] (size into `Offer`) → [`Sender::resume_from`] (from
//! `Accept`; into `From`) → [`Sender::read_chunk`] until empty →
//! [`Sender::finish`] (into `Sent`).

pub mod disk;
mod error;
pub mod names;
pub mod receive;
pub mod send;
pub mod walk;

pub use error::FileError;
pub use names::{safe_component, unused_name};
pub use receive::Receiver;
pub use send::Sender;
pub use walk::{files, list};

use ring::digest;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// The SHA-256 of `data`, lower-case hex (as the wire carries it).
pub fn sha256_hex(data: &[u8]) -> String {
    lifeline_protocol::hex::encode(digest::digest(&digest::SHA256, data).as_ref())
}

/// A running SHA-256's value, lower-case hex.
fn hex_of(ctx: digest::Context) -> String {
    lifeline_protocol::hex::encode(ctx.finish().as_ref())
}

/// Whether two hex digests are the same (either case).
fn same_digest(a: &str, b: &str) -> bool {
    !a.is_empty() && a.eq_ignore_ascii_case(b)
}

/// How much is read at a time when hashing a file's start.
const HASH_BUFFER: usize = 64 * 1024;

/// A running SHA-256 over `file`'s first `n` bytes, the file left
/// positioned at `n`; `None` if the file is shorter.
fn hash_prefix(file: &mut File, n: u64) -> io::Result<Option<digest::Context>> {
    file.seek(SeekFrom::Start(0))?;
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; HASH_BUFFER];
    let mut left = n;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let got = match file.read(&mut buf[..want]) {
            Ok(0) => return Ok(None),
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        ctx.update(&buf[..got]);
        left -= got as u64;
    }
    Ok(Some(ctx))
}

#[cfg(test)]
mod tests;

/// Real folders for tests: unique under the system's temporary folder,
/// removed when dropped.
#[cfg(test)]
pub(crate) mod testdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Debug)]
    pub(crate) struct TestDir(PathBuf);

    impl TestDir {
        pub(crate) fn new(tag: &str) -> Self {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default();
            let p = std::env::temp_dir().join(format!(
                "lifeline-files-{tag}-{}-{}-{nanos}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&p).expect("create a test folder");
            TestDir(p)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }

        /// Writes `rel` (creating its folders) and returns its path.
        pub(crate) fn write(&self, rel: &str, data: &[u8]) -> PathBuf {
            let p = self.0.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).expect("create folders");
            }
            std::fs::write(&p, data).expect("write a test file");
            p
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
