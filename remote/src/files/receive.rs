//! The receiving side of one file.
//!
//! What arrives is written below the receiving folder and nowhere else:
//! every path component from the sender goes through [`safe_component`],
//! the folders on the way are created as real folders (an existing one
//! that is a symbolic link is refused, so a link planted in the receiving
//! folder cannot carry a write elsewhere), and the resolved place is
//! checked to be inside the receiving folder once more.
//!
//! The bytes go to a partial copy next to the final place — same folder,
//! same disk, so it becomes the file by a rename — and it becomes the file
//! only when the length and the SHA-256 match what the sender says. The
//! partial copy is locked while a `Receiver` has it (a second transfer of
//! the same name into the same folder is refused rather than interleaved),
//! and left behind by an interrupted transfer, so the next one can resume
//! from it after the sender has checked it against its own first bytes.
//!
//! The finished file never replaces anything: it takes the first free
//! name ([`unused_name`](super::unused_name)), and it is put there by a
//! hard link, which fails rather than overwrite if another file took the
//! name in the meantime (a plain rename, after looking, on file systems
//! without hard links).

use super::error::{FileError, shown};
use super::names::{first_free, partial_name, safe_component};
use super::walk::MAX_DEPTH;
use super::{hash_prefix, hex_of, same_digest};
use ring::digest;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// How many times saving looks for a free name again when another file
/// took the one it chose.
const PLACE_TRIES: usize = 100;

/// One file being received.
pub struct Receiver {
    /// The folder it goes to (resolved).
    dir: PathBuf,
    /// Its safe name, as offered.
    name: String,
    /// The name it will most likely be saved as.
    display: String,
    /// The partial copy.
    part: PathBuf,
    /// The partial copy, open and locked; `None` once finished.
    file: Option<File>,
    /// The announced size.
    size: u64,
    /// Bytes of an earlier partial copy that may be resumed from.
    held: u64,
    /// The SHA-256 of `held` bytes as [`partial`](Self::partial) found it.
    prefix: Option<(u64, digest::Context)>,
    /// The running SHA-256 from [`begin`](Self::begin) on.
    hash: Option<digest::Context>,
    /// Bytes held now.
    received: u64,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("part", &self.part)
            .field("display", &self.display)
            .field("size", &self.size)
            .field("held", &self.held)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// Prepares to receive a file of `size` bytes whose place below `root`
    /// is `components` (each made safe by [`safe_component`]; the folders
    /// are created inside `root`). Refused when a component on the way
    /// exists as a symbolic link or as something other than a folder, when
    /// the resolved place is not inside `root`, when there are no
    /// components or more than [`MAX_DEPTH`] folders, and when another
    /// transfer is receiving the same file. A partial copy left by an
    /// interrupted transfer is kept for resuming if it is not longer than
    /// `size`.
    pub fn prepare(root: &Path, components: &[String], size: u64) -> Result<Receiver, FileError> {
        let root = fs::canonicalize(root).map_err(FileError::at("open the folder", root))?;
        if !root.is_dir() {
            return Err(FileError::NotAFolder { path: shown(&root) });
        }
        let safe: Vec<String> = components.iter().map(|c| safe_component(c)).collect();
        let Some((name, folders)) = safe.split_last() else {
            return Err(FileError::Unsafe {
                path: shown(&root),
                reason: "the sender named no file",
            });
        };
        if folders.len() > MAX_DEPTH {
            return Err(FileError::TooDeep {
                path: shown(&root.join(&safe[0])),
                limit: MAX_DEPTH,
            });
        }
        let mut dir = root.clone();
        for folder in folders {
            dir.push(folder);
            enter(&dir)?;
        }
        let dir = fs::canonicalize(&dir).map_err(FileError::at("open the folder", &dir))?;
        if !dir.starts_with(&root) {
            return Err(FileError::Unsafe {
                path: shown(&dir.join(name)),
                reason: "it would be outside the receiving folder",
            });
        }

        let part = dir.join(partial_name(name));
        match fs::symlink_metadata(&part) {
            Ok(m) if !m.file_type().is_file() => {
                return Err(FileError::Unsafe {
                    path: shown(&dir.join(name)),
                    reason: "something that is not a file has the name of its partial copy",
                });
            }
            _ => {}
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&part)
            .map_err(FileError::at("create", &part))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(FileError::Busy {
                    path: shown(&dir.join(name)),
                });
            }
            // A file system without locks: go on unlocked.
            Err(fs::TryLockError::Error(_)) => {}
        }
        let len = file.metadata().map_err(FileError::at("read", &part))?.len();
        let held = if len <= size { len } else { 0 };
        Ok(Receiver {
            display: first_free(&dir, name, true),
            name: name.clone(),
            dir,
            part,
            file: Some(file),
            size,
            held,
            prefix: None,
            hash: None,
            received: held,
        })
    }

    /// What we already have, for `Accept`: the offset and the SHA-256
    /// (hex) of those bytes (`""` when 0). Reads the partial copy to hash
    /// it.
    pub fn partial(&mut self) -> Result<(u64, String), FileError> {
        if self.held == 0 {
            return Ok((0, String::new()));
        }
        let held = self.held;
        let ctx = hash_prefix(self.file_mut()?, held).map_err(FileError::at("read", &self.part))?;
        match ctx {
            Some(ctx) => {
                self.prefix = Some((held, ctx.clone()));
                Ok((held, hex_of(ctx)))
            }
            // It got shorter under us: nothing to resume from.
            None => {
                self.held = 0;
                Ok((0, String::new()))
            }
        }
    }

    /// The sender sends from `from` on (our offset, or 0 when our partial
    /// copy did not match its file): the partial copy is cut to `from`
    /// bytes and the running SHA-256 covers them. An error if `from` is
    /// more than we hold.
    pub fn begin(&mut self, from: u64) -> Result<(), FileError> {
        if from > self.held {
            return Err(FileError::BadOffset {
                from,
                held: self.held,
            });
        }
        let cached = match self.prefix.take() {
            Some((n, ctx)) if n == from => Some(ctx),
            _ => None,
        };
        let part = self.part.clone();
        let file = self.file_mut()?;
        let ctx = match cached {
            _ if from == 0 => digest::Context::new(&digest::SHA256),
            Some(ctx) => ctx,
            None => hash_prefix(file, from)
                .map_err(FileError::at("read", &part))?
                .ok_or(FileError::BadOffset { from, held: 0 })?,
        };
        file.set_len(from)
            .map_err(FileError::at("write to", &part))?;
        file.seek(SeekFrom::Start(from))
            .map_err(FileError::at("write to", &part))?;
        self.hash = Some(ctx);
        self.received = from;
        Ok(())
    }

    /// Appends `data` (after [`begin`](Self::begin); without it, the bytes
    /// are taken to start at 0). Refused, writing nothing, if it would go
    /// beyond the announced size.
    pub fn write(&mut self, data: &[u8]) -> Result<(), FileError> {
        if self.hash.is_none() {
            self.begin(0)?;
        }
        let len = data.len() as u64;
        if self.received.saturating_add(len) > self.size {
            return Err(FileError::TooLong { size: self.size });
        }
        let part = self.part.clone();
        self.file_mut()?
            .write_all(data)
            .map_err(FileError::at("write to", &part))?;
        if let Some(hash) = self.hash.as_mut() {
            hash.update(data);
        }
        self.received += len;
        Ok(())
    }

    /// Bytes held so far: the kept start and what was written since.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The announced size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The sender sent everything and the whole file's SHA-256 is
    /// `sha256_hex`. If the length and the hash match, the file is flushed
    /// to the disk and put in place under the first free name, and its
    /// path is returned. If not, the partial copy is deleted (so the next
    /// attempt starts from the beginning) and the error says what did not
    /// match ([`FileError::Incomplete`] or [`FileError::Corrupt`]).
    pub fn finish(mut self, sha256_hex: &str) -> Result<PathBuf, FileError> {
        if self.hash.is_none() {
            self.begin(0)?;
        }
        if self.received != self.size {
            self.discard();
            return Err(FileError::Incomplete {
                received: self.received,
                size: self.size,
            });
        }
        let ours = self.hash.take().map(hex_of).unwrap_or_default();
        if !same_digest(&ours, sha256_hex) {
            self.discard();
            return Err(FileError::Corrupt);
        }
        let file = self.file.take();
        if let Some(file) = &file {
            file.sync_all().map_err(FileError::at("save", &self.part))?;
        }
        // Closed (and unlocked) before it is linked or renamed: Windows
        // does not rename an open file.
        drop(file);
        self.place()
    }

    /// Stops, keeping the partial copy for a later resume (an empty one is
    /// removed: there is nothing in it to resume). Dropping a `Receiver`
    /// does the same.
    pub fn abandon(self) {}

    /// The file name this will most likely be saved as (another file may
    /// take it first), for showing to people.
    pub fn display_name(&self) -> &str {
        &self.display
    }

    /// The open partial copy.
    fn file_mut(&mut self) -> Result<&mut File, FileError> {
        let part = &self.part;
        self.file.as_mut().ok_or_else(|| {
            FileError::io(
                "write to",
                part,
                io::Error::other("the transfer has already ended"),
            )
        })
    }

    /// Deletes the partial copy (while still holding it, so no other
    /// transfer picks it up in between).
    fn discard(&mut self) {
        if let Err(e) = fs::remove_file(&self.part) {
            tracing::warn!(part = %self.part.display(), error = %e, "could not delete a damaged partial copy");
        }
        self.file = None;
    }

    /// Puts the finished partial copy in place under a free name.
    fn place(&mut self) -> Result<PathBuf, FileError> {
        for _ in 0..PLACE_TRIES {
            let target = self.dir.join(first_free(&self.dir, &self.name, true));
            match fs::hard_link(&self.part, &target) {
                Ok(()) => {
                    if let Err(e) = fs::remove_file(&self.part) {
                        tracing::warn!(part = %self.part.display(), error = %e, "could not delete a saved file's partial copy");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(_) => {
                    // No hard links here (FAT, some network shares): look,
                    // then rename.
                    if fs::symlink_metadata(&target).is_ok() {
                        continue;
                    }
                    fs::rename(&self.part, &target).map_err(FileError::at("save", &target))?;
                }
            }
            sync_folder(&self.dir);
            return Ok(target);
        }
        Err(FileError::io(
            "save",
            &self.dir.join(&self.name),
            io::Error::from(io::ErrorKind::AlreadyExists),
        ))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(file) = &self.file
            && file.metadata().is_ok_and(|m| m.len() == 0)
        {
            let _ = fs::remove_file(&self.part);
        }
    }
}

/// Makes sure `dir` is a real folder (not a symbolic link), creating it if
/// it is not there.
fn enter(dir: &Path) -> Result<(), FileError> {
    let check = |meta: fs::Metadata| {
        if meta.file_type().is_symlink() {
            Err(FileError::Unsafe {
                path: shown(dir),
                reason: "a folder on the way is a symbolic link",
            })
        } else if meta.is_dir() {
            Ok(())
        } else {
            Err(FileError::Unsafe {
                path: shown(dir),
                reason: "a file is where a folder should be",
            })
        }
    };
    match fs::symlink_metadata(dir) {
        Ok(meta) => check(meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(dir) {
            Ok(()) => Ok(()),
            // Made by someone else just now: look again.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                check(fs::symlink_metadata(dir).map_err(FileError::at("open the folder", dir))?)
            }
            Err(e) => Err(FileError::io("create the folder", dir, e)),
        },
        Err(e) => Err(FileError::io("open the folder", dir, e)),
    }
}

/// Flushes a folder's entries (the new name) to the disk, where the system
/// allows opening a folder for that; the file's bytes are flushed already.
fn sync_folder(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::files::sha256_hex;
    use crate::files::testdir::TestDir;

    fn comps(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    fn receive(root: &Path, c: &[&str], data: &[u8]) -> Result<PathBuf, FileError> {
        let mut r = Receiver::prepare(root, &comps(c), data.len() as u64)?;
        r.begin(0)?;
        r.write(data)?;
        r.finish(&sha256_hex(data))
    }

    #[test]
    fn escaping_components_stay_inside_the_root() {
        let top = TestDir::new("recv-escape");
        let root = top.path().join("root");
        fs::create_dir(&root).unwrap();
        let root_canon = fs::canonicalize(&root).unwrap();

        let saved = receive(&root, &["..", " x"], b"one").unwrap();
        assert_eq!(saved, root_canon.join("unnamed").join("x"));
        let saved = receive(&root, &["../../..", "/etc", "passwd"], b"two").unwrap();
        assert_eq!(saved, root_canon.join("unnamed").join("etc").join("passwd"));
        let saved = receive(&root, &["..\\..\\evil.exe"], b"three").unwrap();
        assert_eq!(saved, root_canon.join("evil.exe"));
        assert_eq!(fs::read(&saved).unwrap(), b"three");

        // Nothing appeared next to the root.
        let beside: Vec<_> = fs::read_dir(top.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(beside, vec![std::ffi::OsString::from("root")]);

        let e = Receiver::prepare(&root, &[], 1).unwrap_err();
        assert!(matches!(e, FileError::Unsafe { .. }), "{e:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_folder_on_the_way_is_refused() {
        let top = TestDir::new("recv-symlink");
        let root = top.path().join("root");
        let outside = top.path().join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("docs")).unwrap();

        let e = receive(&root, &["docs", "a.txt"], b"x").unwrap_err();
        assert!(matches!(e, FileError::Unsafe { .. }), "{e:?}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);

        // A file where a folder should be.
        fs::write(root.join("plain"), b"x").unwrap();
        let e = receive(&root, &["plain", "a.txt"], b"x").unwrap_err();
        assert!(
            e.to_string().contains("a file is where a folder should be"),
            "{e}"
        );
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = TestDir::new("recv-exists");
        let old = dir.write("report.pdf", b"old");
        let r = Receiver::prepare(dir.path(), &comps(&["report.pdf"]), 3).unwrap();
        assert_eq!(r.display_name(), "report (1).pdf");
        drop(r);

        let saved = receive(dir.path(), &["report.pdf"], b"new").unwrap();
        assert_eq!(saved.file_name().unwrap(), "report (1).pdf");
        assert_eq!(fs::read(&old).unwrap(), b"old");
        assert_eq!(fs::read(&saved).unwrap(), b"new");
        let saved = receive(dir.path(), &["report.pdf"], b"newer").unwrap();
        assert_eq!(saved.file_name().unwrap(), "report (2).pdf");

        // Taken between prepare and finish: still not overwritten.
        let mut r = Receiver::prepare(dir.path(), &comps(&["late.txt"]), 4).unwrap();
        assert_eq!(r.display_name(), "late.txt");
        r.begin(0).unwrap();
        r.write(b"mine").unwrap();
        dir.write("late.txt", b"theirs");
        let saved = r.finish(&sha256_hex(b"mine")).unwrap();
        assert_eq!(saved.file_name().unwrap(), "late (1).txt");
        assert_eq!(fs::read(dir.path().join("late.txt")).unwrap(), b"theirs");
        assert!(!dir.path().join(partial_name("late.txt")).exists());
    }

    #[test]
    fn a_wrong_hash_or_length_deletes_the_partial_copy() {
        let dir = TestDir::new("recv-corrupt");
        let part = dir.path().join(partial_name("a.bin"));

        let mut r = Receiver::prepare(dir.path(), &comps(&["a.bin"]), 6).unwrap();
        r.begin(0).unwrap();
        r.write(b"abcdef").unwrap();
        assert!(part.exists());
        let e = r.finish(&sha256_hex(b"abcdeF")).unwrap_err();
        assert!(matches!(e, FileError::Corrupt), "{e:?}");
        assert!(!part.exists());
        assert!(!dir.path().join("a.bin").exists());

        let mut r = Receiver::prepare(dir.path(), &comps(&["a.bin"]), 6).unwrap();
        r.begin(0).unwrap();
        r.write(b"abc").unwrap();
        let e = r.finish(&sha256_hex(b"abc")).unwrap_err();
        assert!(
            matches!(
                e,
                FileError::Incomplete {
                    received: 3,
                    size: 6
                }
            ),
            "{e:?}"
        );
        assert!(!part.exists());
        assert!(!dir.path().join("a.bin").exists());
    }

    #[test]
    fn more_than_announced_is_refused() {
        let dir = TestDir::new("recv-long");
        let mut r = Receiver::prepare(dir.path(), &comps(&["a"]), 4).unwrap();
        r.begin(0).unwrap();
        r.write(b"abc").unwrap();
        let e = r.write(b"de").unwrap_err();
        assert!(matches!(e, FileError::TooLong { size: 4 }), "{e:?}");
        assert_eq!(r.received(), 3);
        r.write(b"d").unwrap();
        assert_eq!(
            r.finish(&sha256_hex(b"abcd")).unwrap().file_name().unwrap(),
            "a"
        );
    }

    #[test]
    fn an_abandoned_partial_copy_is_resumed() {
        let dir = TestDir::new("recv-abandon");
        let part = dir.path().join(partial_name("a"));
        let mut r = Receiver::prepare(dir.path(), &comps(&["a"]), 10).unwrap();
        assert_eq!(r.partial().unwrap(), (0, String::new()));
        r.begin(0).unwrap();
        r.write(b"hello").unwrap();
        r.abandon();
        assert_eq!(fs::read(&part).unwrap(), b"hello");

        let mut r = Receiver::prepare(dir.path(), &comps(&["a"]), 10).unwrap();
        assert_eq!(r.received(), 5);
        assert_eq!(r.partial().unwrap(), (5, sha256_hex(b"hello")));
        let e = r.begin(6).unwrap_err();
        assert!(
            matches!(e, FileError::BadOffset { from: 6, held: 5 }),
            "{e:?}"
        );
        r.begin(5).unwrap();
        r.write(b"world").unwrap();
        let saved = r.finish(&sha256_hex(b"helloworld")).unwrap();
        assert_eq!(fs::read(saved).unwrap(), b"helloworld");
        assert!(!part.exists());

        // An empty partial copy is not left behind.
        let r = Receiver::prepare(dir.path(), &comps(&["b"]), 10).unwrap();
        assert!(dir.path().join(partial_name("b")).exists());
        r.abandon();
        assert!(!dir.path().join(partial_name("b")).exists());
    }

    #[test]
    fn a_partial_copy_longer_than_the_file_is_not_resumed() {
        let dir = TestDir::new("recv-longer");
        dir.write(&partial_name("a"), b"0123456789");
        let mut r = Receiver::prepare(dir.path(), &comps(&["a"]), 4).unwrap();
        assert_eq!(r.partial().unwrap(), (0, String::new()));
        r.begin(0).unwrap();
        r.write(b"abcd").unwrap();
        assert_eq!(
            fs::read(r.finish(&sha256_hex(b"abcd")).unwrap()).unwrap(),
            b"abcd"
        );
    }

    #[test]
    fn a_partial_copy_is_received_by_one_transfer_at_a_time() {
        let dir = TestDir::new("recv-busy");
        let first = Receiver::prepare(dir.path(), &comps(&["a"]), 4).unwrap();
        let e = Receiver::prepare(dir.path(), &comps(&["a"]), 4).unwrap_err();
        assert!(matches!(e, FileError::Busy { .. }), "{e:?}");
        drop(first);
        Receiver::prepare(dir.path(), &comps(&["a"]), 4).unwrap();
    }

    #[test]
    fn an_empty_file_is_saved() {
        let dir = TestDir::new("recv-empty");
        let r = Receiver::prepare(dir.path(), &comps(&["empty"]), 0).unwrap();
        let saved = r.finish(&sha256_hex(b"")).unwrap();
        assert_eq!(fs::read(saved).unwrap(), b"");
        assert!(!dir.path().join(partial_name("empty")).exists());
    }
}
