//! Names as the receiving side writes them.
//!
//! A file's name comes from the other side of the session and is written
//! on this machine: whatever it says, it must stay one plain name inside
//! the receiving folder. Separators, `..`, control and bidi characters
//! (an escape sequence in a file name reaches every terminal that lists
//! the folder; U+202E makes `exe.txt` read as `txt.exe`), names Windows
//! treats as devices or silently changes (trailing dots and spaces), the
//! characters Windows refuses (`:` would even name a drive or an
//! alternate data stream) and names longer than file systems take are all
//! made harmless here, the same on every platform, so a name saved on
//! Linux is one Windows can take too.
//!
//! A received file never overwrites one that is there: [`unused_name`]
//! picks `report (1).pdf` the way browsers do.

use lifeline_protocol::text::is_unsafe;
use ring::digest;
use std::path::Path;

/// The longest name (in bytes) most file systems take.
pub(crate) const MAX_NAME: usize = 255;

/// What a partial copy's name ends with.
pub(crate) const PART_SUFFIX: &str = ".lifeline-part";

/// The longest extension kept whole when a long name is cut (dot
/// included); a longer "extension" is just part of the name.
const MAX_EXTENSION: usize = 16;

/// Windows' device names: a file named so (with any extension) opens the
/// device instead.
const DEVICES: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "COM1", "COM2", "COM3", "COM4", "COM5",
    "COM6", "COM7", "COM8", "COM9", "COM¹", "COM²", "COM³", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5",
    "LPT6", "LPT7", "LPT8", "LPT9", "LPT¹", "LPT²", "LPT³",
];

/// One path component as the receiver will write it: the base name only
/// (whatever follows the last `/` or `\`); control and format characters
/// ([`is_unsafe`]) and the characters Windows refuses in names
/// (`< > : " | ? *`) replaced by `_`; leading and trailing spaces and
/// trailing dots trimmed; `""`, `.` and `..` become `unnamed`; Windows
/// device names (`CON`, `nul.txt`, `COM1.log`, …) get a leading `_`; at
/// most 255 bytes, cut at a character boundary, keeping a short extension.
pub fn safe_component(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let mapped: String = base
        .chars()
        .map(|c| {
            if is_unsafe(c) || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let mut name = trim(&mapped).to_string();
    if name.is_empty() {
        return "unnamed".to_string();
    }
    if is_device(&name) {
        name.insert(0, '_');
    }
    if name.len() > MAX_NAME {
        let (stem, ext) = split_extension(&name);
        let cut = trim(lifeline_protocol::codec::clamp_str(
            stem,
            MAX_NAME - ext.len(),
        ));
        name = if cut.is_empty() {
            // Nothing but the extension is left worth keeping: keep the
            // name's start instead.
            trim(lifeline_protocol::codec::clamp_str(&name, MAX_NAME)).to_string()
        } else {
            format!("{cut}{ext}")
        };
    }
    name
}

/// The first name in `dir` that is free — `name` itself, else
/// `report (1).pdf`, `report (2).pdf`, … — counting a name as taken also
/// when another transfer's partial copy of it is there. A name that
/// cannot be looked at (no permission) counts as free: saving under it
/// then fails with a clear error instead of this searching forever.
pub fn unused_name(dir: &Path, name: &str) -> String {
    first_free(dir, name, false)
}

/// [`unused_name`], except that with `own_partial` the partial copy of
/// `name` itself is the caller's own and does not make `name` taken.
pub(crate) fn first_free(dir: &Path, name: &str, own_partial: bool) -> String {
    if is_free(dir, name, !own_partial) {
        return name.to_string();
    }
    let (stem, ext) = split_extension(name);
    let mut n: u64 = 1;
    loop {
        let counter = format!(" ({n})");
        let stem = lifeline_protocol::codec::clamp_str(
            stem,
            MAX_NAME.saturating_sub(counter.len() + ext.len()),
        );
        let candidate = format!("{stem}{counter}{ext}");
        if is_free(dir, &candidate, true) {
            return candidate;
        }
        n += 1;
    }
}

/// The partial copy's name for a file to be saved as `name`:
/// `.<name>.lifeline-part` — hidden on Unix, next to where the file goes
/// (same folder, same disk, so the final rename is cheap) and found again
/// after an interruption. A name too long for that keeps its start and a
/// digest of the whole, so two long names sharing a start do not share a
/// partial copy.
pub(crate) fn partial_name(name: &str) -> String {
    if 1 + name.len() + PART_SUFFIX.len() <= MAX_NAME {
        return format!(".{name}{PART_SUFFIX}");
    }
    let d = digest::digest(&digest::SHA256, name.as_bytes());
    let tag = lifeline_protocol::hex::encode(&d.as_ref()[..8]);
    let room = MAX_NAME - 1 - PART_SUFFIX.len() - 1 - tag.len();
    format!(
        ".{}~{tag}{PART_SUFFIX}",
        lifeline_protocol::codec::clamp_str(name, room)
    )
}

/// Whether neither `dir/name` nor (with `check_partial`) its partial copy
/// is there. Symbolic links count, even dangling ones.
fn is_free(dir: &Path, name: &str, check_partial: bool) -> bool {
    let absent = |n: &str| std::fs::symlink_metadata(dir.join(n)).is_err();
    absent(name) && (!check_partial || absent(&partial_name(name)))
}

/// Leading spaces, trailing spaces and dots off (Windows drops trailing
/// ones itself, so `a.` and `a` would be the same file there).
fn trim(s: &str) -> &str {
    s.trim_start_matches(' ').trim_end_matches([' ', '.'])
}

/// Whether Windows takes `name` for a device: the part before the first
/// dot (trailing spaces ignored) is a device name, in any case.
fn is_device(name: &str) -> bool {
    let stem = name
        .split('.')
        .next()
        .unwrap_or_default()
        .trim_end_matches(' ');
    DEVICES.iter().any(|d| d.eq_ignore_ascii_case(stem))
}

/// `name` split before its extension (`report`, `.pdf`); no extension for
/// a dot file (`.bashrc`) or an "extension" too long to be one.
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= MAX_EXTENSION => name.split_at(i),
        _ => (name, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::testdir::TestDir;

    #[test]
    fn hostile_names_become_one_plain_name() {
        let cases = [
            ("../x", "x"),
            ("/etc/passwd", "passwd"),
            ("..\\evil.exe", "evil.exe"),
            ("C:\\Windows\\system32\\evil.dll", "evil.dll"),
            ("a\u{1b}[2Jb", "a_[2Jb"),
            ("invoice\u{202e}fdp.exe", "invoice_fdp.exe"),
            ("line\u{2028}break\u{0}", "line_break_"),
            ("C:evil", "C_evil"),
            ("file.txt:stream", "file.txt_stream"),
            ("what?<*>|\"", "what______"),
            ("CON.txt", "_CON.txt"),
            ("con", "_con"),
            ("nul.tar.gz", "_nul.tar.gz"),
            ("Lpt9.log", "_Lpt9.log"),
            ("COM1 .txt", "_COM1 .txt"),
            ("COM10", "COM10"),
            ("CONSOLE.txt", "CONSOLE.txt"),
            ("", "unnamed"),
            (".", "unnamed"),
            ("..", "unnamed"),
            ("dir/", "unnamed"),
            ("  spaced. . ", "spaced"),
            ("...", "unnamed"),
            (".bashrc", ".bashrc"),
            ("report.pdf", "report.pdf"),
            ("été 2024.jpg", "été 2024.jpg"),
        ];
        for (raw, want) in cases {
            assert_eq!(safe_component(raw), want, "for {raw:?}");
        }
    }

    #[test]
    fn long_names_are_cut_at_a_character_boundary_keeping_the_extension() {
        let long = format!("{}.pdf", "a".repeat(296));
        assert_eq!(long.len(), 300);
        let safe = safe_component(&long);
        assert_eq!(safe.len(), MAX_NAME);
        assert!(safe.ends_with(".pdf"), "{safe}");

        // Two-byte characters: 255 - 4 is odd, so a byte cut would split one.
        let accented = format!("{}.txt", "é".repeat(150));
        let safe = safe_component(&accented);
        assert!(safe.len() <= MAX_NAME, "{}", safe.len());
        assert!(safe.len() >= MAX_NAME - 1, "{}", safe.len());
        assert!(safe.ends_with("é.txt"), "{safe}");

        // No extension; the cut does not leave a trailing space.
        let spaced = format!("{} {}", "b".repeat(254), "c".repeat(10));
        assert_eq!(safe_component(&spaced), "b".repeat(254));

        // A long "extension" is not kept whole.
        let odd = format!("x.{}", "y".repeat(400));
        assert_eq!(safe_component(&odd).len(), MAX_NAME);
    }

    #[test]
    fn an_existing_name_gets_a_number() {
        let dir = TestDir::new("names-unused");
        assert_eq!(unused_name(dir.path(), "report.pdf"), "report.pdf");
        dir.write("report.pdf", b"x");
        assert_eq!(unused_name(dir.path(), "report.pdf"), "report (1).pdf");
        dir.write("report (1).pdf", b"x");
        // Another transfer's partial copy of "report (2).pdf" takes that name.
        dir.write(&partial_name("report (2).pdf"), b"x");
        assert_eq!(unused_name(dir.path(), "report.pdf"), "report (3).pdf");

        dir.write(".bashrc", b"x");
        assert_eq!(unused_name(dir.path(), ".bashrc"), ".bashrc (1)");
        dir.write("notes", b"x");
        assert_eq!(unused_name(dir.path(), "notes"), "notes (1)");
        // A folder takes a name as much as a file does.
        std::fs::create_dir(dir.path().join("photos")).unwrap();
        assert_eq!(unused_name(dir.path(), "photos"), "photos (1)");

        // A partial copy of the name itself: taken for others, free for
        // the transfer it belongs to.
        dir.write(&partial_name("draft.txt"), b"x");
        assert_eq!(unused_name(dir.path(), "draft.txt"), "draft (1).txt");
        assert_eq!(first_free(dir.path(), "draft.txt", true), "draft.txt");
    }

    #[cfg(unix)]
    #[test]
    fn a_dangling_symlink_takes_its_name() {
        let dir = TestDir::new("names-dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("a.txt")).unwrap();
        assert_eq!(unused_name(dir.path(), "a.txt"), "a (1).txt");
    }

    #[test]
    fn numbered_and_partial_names_stay_within_the_limit() {
        let dir = TestDir::new("names-long");
        let long = safe_component(&format!("{}.pdf", "a".repeat(300)));
        dir.write(&long, b"x");
        let next = unused_name(dir.path(), &long);
        assert!(next.len() <= MAX_NAME, "{}", next.len());
        assert!(next.ends_with(" (1).pdf"), "{next}");
        dir.write(&next, b"x"); // the file system takes it

        let other = format!("{}b.pdf", "a".repeat(250));
        let p1 = partial_name(&long);
        let p2 = partial_name(&other);
        assert!(p1.len() <= MAX_NAME && p2.len() <= MAX_NAME);
        assert!(p1.starts_with('.') && p1.ends_with(PART_SUFFIX));
        assert_ne!(p1, p2);
        assert_eq!(partial_name("a.txt"), ".a.txt.lifeline-part");
        dir.write(&p1, b"x");
    }
}
