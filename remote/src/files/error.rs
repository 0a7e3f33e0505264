//! What can go wrong with files, in words for people.
//!
//! A [`FileError`]'s text ends up in front of a technician (in a
//! `Refused` or `Saved` message) or the end user (on the applet's
//! screen), so it is a sentence: what we were doing, to which path, and
//! why it failed ("permission denied", "the disk is full") — never an
//! `os error 13`. Paths come from the other side or from the disk, so
//! they are shown with control and bidi characters made visible.

use lifeline_protocol::text::neutralize;
use std::io;
use std::path::Path;

/// Why a file could not be read, written, sent or saved.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The operating system refused or failed (`action` is a verb phrase:
    /// "open", "create the folder", …).
    #[error("Could not {action} {path}: {reason}.")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// On what, shown safely.
        path: String,
        /// Why, in plain words.
        reason: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Only regular files are sent (not folders, devices, pipes or sockets).
    #[error("{path} is not a regular file, so it cannot be sent.")]
    NotAFile {
        /// The path, shown safely.
        path: String,
    },
    /// A folder was expected.
    #[error("{path} is not a folder.")]
    NotAFolder {
        /// The path, shown safely.
        path: String,
    },
    /// Saving there would leave the receiving folder or go through
    /// something we will not write through.
    #[error("Refused to save {path}: {reason}.")]
    Unsafe {
        /// The place, shown safely.
        path: String,
        /// Why, in plain words.
        reason: &'static str,
    },
    /// The partial copy is open in another transfer right now.
    #[error("{path} is already being received by another transfer.")]
    Busy {
        /// The file, shown safely.
        path: String,
    },
    /// The sender sent more than it announced.
    #[error("The sender sent more than the {size} bytes it announced; the file was not saved.")]
    TooLong {
        /// The announced size.
        size: u64,
    },
    /// The sender asked to continue from a place we do not have.
    #[error("The sender wanted to continue from byte {from}, but only {held} bytes are here.")]
    BadOffset {
        /// Where the sender wanted to start.
        from: u64,
        /// What the receiver holds.
        held: u64,
    },
    /// Fewer bytes arrived than announced (the partial copy is deleted).
    #[error("Only {received} of {size} bytes arrived; the file was not saved.")]
    Incomplete {
        /// Bytes that arrived.
        received: u64,
        /// The announced size.
        size: u64,
    },
    /// The bytes that arrived are not the file that was sent (the partial
    /// copy is deleted, so another attempt starts from the beginning).
    #[error(
        "The file arrived damaged (its SHA-256 checksum does not match); it was not saved, and sending it again starts from the beginning."
    )]
    Corrupt,
    /// The file got shorter while it was being sent.
    #[error("{path} became shorter while it was being sent; send it again.")]
    Shrank {
        /// The file, shown safely.
        path: String,
    },
    /// A folder tree with more files than a transfer takes.
    #[error("{path} holds more than {limit} files; send a smaller folder.")]
    TooManyFiles {
        /// The folder, shown safely.
        path: String,
        /// The limit.
        limit: usize,
    },
    /// A folder tree deeper than a transfer takes (or than a receiver
    /// creates).
    #[error("{path} has folders nested more than {limit} levels deep.")]
    TooDeep {
        /// The folder, shown safely.
        path: String,
        /// The limit.
        limit: usize,
    },
}

impl FileError {
    /// An operating-system error while doing `action` on `path`.
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        FileError::Io {
            action,
            path: shown(path),
            reason: reason(&source),
            source,
        }
    }

    /// A closure for `map_err`.
    pub(crate) fn at<'a>(
        action: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(io::Error) -> Self + 'a {
        move |e| FileError::io(action, path, e)
    }
}

/// A path as it can be shown to a person: lossy for names that are not
/// Unicode, with control and bidi characters escaped.
pub(crate) fn shown(path: &Path) -> String {
    neutralize(&path.display().to_string()).into_owned()
}

/// The operating system's reason in plain words: the common ones named,
/// the rest as the system words them, without the error number.
fn reason(e: &io::Error) -> String {
    use io::ErrorKind as K;
    let known = match e.kind() {
        K::NotFound => "it does not exist",
        K::PermissionDenied => "permission denied",
        K::AlreadyExists => "it already exists",
        K::StorageFull => "the disk is full",
        K::QuotaExceeded => "the disk quota is used up",
        K::ReadOnlyFilesystem => "the disk is read-only",
        K::IsADirectory => "it is a folder",
        K::NotADirectory => "a part of the path is not a folder",
        K::DirectoryNotEmpty => "the folder is not empty",
        K::FileTooLarge => "the file is too large for this disk",
        K::InvalidFilename => "the name is not valid here",
        K::UnexpectedEof => "it ended early",
        K::Interrupted => "it was interrupted",
        K::WouldBlock => "it is in use",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    let text = e.to_string();
    // "No such device (os error 19)" -> "no such device".
    let text = match text.find(" (os error ") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.trim().chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "an input/output error".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_sentences_without_error_numbers() {
        let denied = FileError::io(
            "open",
            Path::new("/srv/a.txt"),
            io::Error::from_raw_os_error(13),
        );
        let text = denied.to_string();
        assert_eq!(text, "Could not open /srv/a.txt: permission denied.");

        // An error with no name of its own keeps the system's words, not
        // its number (ENXIO on Linux, "No such device or address").
        let other = FileError::io("read", Path::new("/dev/x"), io::Error::from_raw_os_error(6));
        let text = other.to_string();
        assert!(!text.contains("os error"), "{text}");
        assert!(text.starts_with("Could not read /dev/x: "), "{text}");
        assert!(text.ends_with('.'), "{text}");
    }

    #[test]
    fn paths_are_shown_safely() {
        let e = FileError::NotAFile {
            path: shown(Path::new("/tmp/a\u{1b}[2Jb")),
        };
        let text = e.to_string();
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("a\\e[2Jb"), "{text}");
    }
}
