//! What a file or folder tree sends, and folder listings.
//!
//! A folder is sent as its regular files, each with its place below the
//! folder (`[folder, sub, file]`), which the receiver recreates; empty
//! folders are not carried. Symbolic links inside the tree are skipped,
//! not followed: a link can point anywhere (the whole disk, or back up
//! the tree forever), and sending what it points to is not what "send
//! this folder" means. Only the path asked for itself is followed if it
//! is a link (it is what the person chose). The tree is bounded in files
//! and depth so a request cannot make the sender list a whole disk.

use super::error::{FileError, shown};
use lifeline_protocol::work::{Entry, MAX_LISTING};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// The most files one transfer of a folder sends.
pub const MAX_FILES: usize = 100_000;

/// The deepest folder nesting one transfer sends (and a receiver creates).
pub const MAX_DEPTH: usize = 64;

/// The files to send for `path`: a single file gives one entry whose
/// components are `[its file name]`; a folder gives every regular file
/// below it, components starting with the folder's own name (`[folder,
/// sub, file]`) — a folder's own files in name order, then its folders'
/// — each with its path on disk and its size.
/// Symbolic links inside a folder are skipped. More than [`MAX_FILES`]
/// files or folders nested more than [`MAX_DEPTH`] levels is an error (as
/// is a folder in the tree that cannot be read).
pub fn files(path: &Path) -> Result<Vec<(Vec<String>, PathBuf, u64)>, FileError> {
    files_within(path, MAX_FILES, MAX_DEPTH)
}

/// [`files`] with its limits given.
fn files_within(
    path: &Path,
    max_files: usize,
    max_depth: usize,
) -> Result<Vec<(Vec<String>, PathBuf, u64)>, FileError> {
    let meta = fs::metadata(path).map_err(FileError::at("open", path))?;
    let top = top_name(path);
    if meta.is_file() {
        return Ok(vec![(vec![top], path.to_path_buf(), meta.len())]);
    }
    if !meta.is_dir() {
        return Err(FileError::NotAFile { path: shown(path) });
    }
    let mut out = Vec::new();
    // Folders still to read: their components and their path on disk.
    let mut pending = vec![(vec![top], path.to_path_buf())];
    while let Some((components, dir)) = pending.pop() {
        if components.len() > max_depth {
            return Err(FileError::TooDeep {
                path: shown(path),
                limit: max_depth,
            });
        }
        let mut folders = Vec::new();
        for (name, entry) in read_sorted(&dir)? {
            // The entry's own type: a symbolic link is a link, not what it
            // points to.
            let kind = entry
                .file_type()
                .map_err(FileError::at("read", &entry.path()))?;
            let mut place = components.clone();
            place.push(name);
            if kind.is_dir() {
                folders.push((place, entry.path()));
            } else if kind.is_file() {
                if out.len() == max_files {
                    return Err(FileError::TooManyFiles {
                        path: shown(path),
                        limit: max_files,
                    });
                }
                let size = entry
                    .metadata()
                    .map_err(FileError::at("read", &entry.path()))?
                    .len();
                out.push((place, entry.path(), size));
            }
            // Links, pipes, sockets, devices: not sent.
        }
        // A folder's files, then its folders depth first in name order
        // (the stack takes them reversed).
        pending.extend(folders.into_iter().rev());
    }
    Ok(out)
}

/// A folder's entries, folders first, then by name (ignoring case), at
/// most [`MAX_LISTING`]; `true` when more were left out. A symbolic link
/// is listed as what it points to (a dangling one as an empty file).
pub fn list(folder: &Path) -> Result<(Vec<Entry>, bool), FileError> {
    list_within(folder, MAX_LISTING)
}

/// [`list`] with its limit given.
fn list_within(folder: &Path, max: usize) -> Result<(Vec<Entry>, bool), FileError> {
    let meta = fs::metadata(folder).map_err(FileError::at("open the folder", folder))?;
    if !meta.is_dir() {
        return Err(FileError::NotAFolder {
            path: shown(folder),
        });
    }
    let mut entries: Vec<(bool, String, Option<fs::Metadata>)> = Vec::new();
    for (name, entry) in read_sorted(folder)? {
        // Following links; whatever cannot be looked at is listed bare.
        let meta = fs::metadata(entry.path()).ok();
        let dir = meta.as_ref().is_some_and(|m| m.is_dir());
        entries.push((dir, name, meta));
    }
    entries.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| a.1.to_lowercase().cmp(&b.1.to_lowercase()))
            .then_with(|| a.1.cmp(&b.1))
    });
    let truncated = entries.len() > max;
    entries.truncate(max);
    let listed = entries
        .into_iter()
        .map(|(dir, name, meta)| Entry {
            name,
            dir,
            size: if dir {
                0
            } else {
                meta.as_ref().map_or(0, |m| m.len())
            },
            modified_ms: meta.as_ref().map_or(0, modified_ms),
        })
        .collect();
    Ok((listed, truncated))
}

/// A folder's entries with their names (lossy for names that are not
/// Unicode), sorted by name.
fn read_sorted(dir: &Path) -> Result<Vec<(String, fs::DirEntry)>, FileError> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(FileError::at("read the folder", dir))? {
        let entry = entry.map_err(FileError::at("read the folder", dir))?;
        entries.push((entry.file_name().to_string_lossy().into_owned(), entry));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

/// The name the top of a transfer goes by: its last component, resolved
/// for `.`, `..` and the root (the receiver makes it safe either way).
fn top_name(path: &Path) -> String {
    let name = match path.file_name() {
        Some(name) => Some(name.to_os_string()),
        None => fs::canonicalize(path)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_os_string())),
    };
    name.map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unnamed".to_string())
}

/// Last change in milliseconds since the epoch (0: unknown).
fn modified_ms(meta: &fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::files::testdir::TestDir;

    fn strs(c: &[String]) -> Vec<&str> {
        c.iter().map(String::as_str).collect()
    }

    #[test]
    fn a_single_file_is_one_entry() {
        let dir = TestDir::new("walk-single");
        let p = dir.write("notes.txt", b"12345");
        let got = files(&p).unwrap();
        assert_eq!(got, vec![(vec!["notes.txt".to_string()], p, 5)]);
    }

    #[test]
    fn a_folder_tree_gives_its_regular_files() {
        let dir = TestDir::new("walk-tree");
        let top = dir.path().join("project");
        dir.write("project/readme.md", b"r");
        dir.write("project/src/main.rs", b"main");
        dir.write("project/src/deep/er/x.bin", b"xxxxxxx");
        dir.write("project/b.txt", b"bb");
        fs::create_dir_all(top.join("empty")).unwrap();
        dir.write("outside/secret", b"s");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("outside"), top.join("link-dir")).unwrap();
            std::os::unix::fs::symlink(dir.path().join("outside/secret"), top.join("link-file"))
                .unwrap();
        }

        let got = files(&top).unwrap();
        let names: Vec<Vec<&str>> = got.iter().map(|(c, _, _)| strs(c)).collect();
        assert_eq!(
            names,
            vec![
                vec!["project", "b.txt"],
                vec!["project", "readme.md"],
                vec!["project", "src", "main.rs"],
                vec!["project", "src", "deep", "er", "x.bin"],
            ]
        );
        for (c, p, size) in &got {
            assert_eq!(*p, c[1..].iter().fold(top.clone(), |p, c| p.join(c)));
            assert_eq!(*size, fs::metadata(p).unwrap().len());
        }

        // The folder named through a trailing "." still has its name.
        let got = files(&top.join("src").join(".")).unwrap();
        assert_eq!(strs(&got[0].0)[0], "src");
    }

    #[test]
    fn limits_on_files_and_depth() {
        let dir = TestDir::new("walk-limits");
        let top = dir.path().join("t");
        for i in 0..5 {
            dir.write(&format!("t/f{i}"), b"x");
        }
        assert_eq!(files_within(&top, 5, 8).unwrap().len(), 5);
        let e = files_within(&top, 4, 8).unwrap_err();
        assert!(
            matches!(e, FileError::TooManyFiles { limit: 4, .. }),
            "{e:?}"
        );

        dir.write("t/a/b/c/deep.txt", b"x");
        // [t, a, b, c] are four folder levels.
        assert_eq!(files_within(&top, 10, 4).unwrap().len(), 6);
        let e = files_within(&top, 10, 3).unwrap_err();
        assert!(matches!(e, FileError::TooDeep { limit: 3, .. }), "{e:?}");
        assert!(e.to_string().contains("nested more than 3 levels"), "{e}");
        assert_eq!(files(&top).unwrap().len(), 6);
    }

    #[test]
    fn a_listing_is_folders_first_then_by_name() {
        let dir = TestDir::new("walk-list");
        dir.write("b.txt", b"bbb");
        dir.write("A.txt", b"a");
        dir.write("zeta/x", b"x");
        dir.write("Alpha/x", b"x");
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.path().join("zeta"), dir.path().join("m-link")).unwrap();

        let (entries, truncated) = list(dir.path()).unwrap();
        assert!(!truncated);
        let names: Vec<(&str, bool, u64)> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.dir, e.size))
            .collect();
        let mut want = vec![
            ("Alpha", true, 0),
            ("zeta", true, 0),
            ("A.txt", false, 1),
            ("b.txt", false, 3),
        ];
        if cfg!(unix) {
            want.insert(1, ("m-link", true, 0));
        }
        assert_eq!(names, want);
        assert!(entries.iter().all(|e| e.modified_ms > 1_600_000_000_000));

        let (entries, truncated) = list_within(dir.path(), 2).unwrap();
        assert!(truncated);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, "Alpha");

        let e = list(&dir.path().join("b.txt")).unwrap_err();
        assert!(matches!(e, FileError::NotAFolder { .. }), "{e:?}");
        let e = list(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
