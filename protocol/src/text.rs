//! Text that came from somebody else, made safe to show on a terminal.
//!
//! Chat lines, end reasons, names from the signed trailer, a gateway's
//! refusal message: all of it is typed by a person on the other side of
//! the session, and a terminal obeys what it prints. An escape sequence in
//! a chat line can move the cursor, overwrite the verification code, set
//! the window title or the clipboard (OSC 52), or fake the end of the
//! session followed by a shell prompt; a bidi override (U+202E) or a line
//! separator (U+2028) makes text read differently from what it is.
//!
//! [`neutralize`] is the one place both ends use before printing such
//! text. It never removes anything: every C0/C1 control (Unicode Cc), every
//! format character (Cf: bidi embeddings, overrides and isolates,
//! zero-width characters, the BOM, tags) and the line and paragraph
//! separators (Zl, Zp) are shown escaped — `\e` for ESC, `\n`, `\r`, `\t`,
//! `\x07` for the other C0 controls and DEL, `\u{202e}` for the rest — so
//! what a person reads is what was sent, made visible.
//!
//! [`check_name`] refuses the same characters in names and labels an
//! operator or technician sets (technician and group names, session
//! labels, the operator's name), so they never need escaping at all.

use std::borrow::Cow;
use std::fmt;

/// Format characters (General Category Cf), Unicode 16.0, as inclusive
/// ranges. The list changes rarely; a character added to Cf later and not
/// yet here is at worst shown as itself.
const FORMAT: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` changes how a terminal shows text rather than being text:
/// a control character (Cc: C0, DEL, C1), a format character (Cf) or a
/// line or paragraph separator (Zl, Zp).
pub fn is_unsafe(c: char) -> bool {
    if c.is_control() {
        // Rust's is_control is exactly Cc.
        return true;
    }
    let u = u32::from(c);
    if u == 0x2028 || u == 0x2029 {
        return true;
    }
    FORMAT
        .binary_search_by(|&(lo, hi)| {
            if hi < u {
                std::cmp::Ordering::Less
            } else if lo > u {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// `s` with every [`is_unsafe`] character shown escaped (see the module
/// doc). Borrows when there is nothing to escape.
pub fn neutralize(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_shown(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_shown(out: &mut String, c: char) {
    use std::fmt::Write;
    if !is_unsafe(c) {
        out.push(c);
        return;
    }
    match c {
        '\x1b' => out.push_str("\\e"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if u32::from(c) < 0x20 || c == '\x7f' => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
}

/// JSON text with every [`is_unsafe`] character from DEL up written as a
/// `\uXXXX` escape (a surrogate pair above U+FFFF): the same JSON value,
/// safe to print on a terminal. A JSON encoder must escape the C0
/// controls inside strings, but `serde_json` writes DEL, the C1 controls
/// (U+009B is a CSI), format characters (bidi overrides) and the line and
/// paragraph separators as they are. Outside strings valid JSON is ASCII,
/// so every character this escapes is inside a string, where the escape
/// stands for the same character.
pub fn safe_json(json: &str) -> Cow<'_, str> {
    let escaped = |c: char| u32::from(c) >= 0x7f && is_unsafe(c);
    if !json.chars().any(escaped) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if escaped(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                use std::fmt::Write;
                let _ = write!(out, "\\u{u:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Displays its text [`neutralize`]d: `format!("{}: {}", Shown(name), Shown(text))`.
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&neutralize(self.0))
    }
}

/// Why a name or label was refused by [`check_name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing but white space.
    #[error("{what} must not be empty")]
    Empty {
        /// Which field.
        what: &'static str,
    },
    /// Longer than allowed.
    #[error("{what} must be at most {max} bytes (got {len})")]
    TooLong {
        /// Which field.
        what: &'static str,
        /// The limit.
        max: usize,
        /// The length given.
        len: usize,
    },
    /// Holds a control or format character.
    #[error(
        "{what} must be plain printable text: it contains the invisible or control character U+{code:04X}"
    )]
    Unsafe {
        /// Which field.
        what: &'static str,
        /// The first offending character.
        code: u32,
    },
}

/// Checks a name or label that people will read on other screens: not
/// empty after trimming, at most `max` bytes, and no [`is_unsafe`]
/// character. Returns the trimmed text.
pub fn check_name<'a>(what: &'static str, s: &'a str, max: usize) -> Result<&'a str, NameError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(NameError::Empty { what });
    }
    if s.len() > max {
        return Err(NameError::TooLong {
            what,
            max,
            len: s.len(),
        });
    }
    match s.chars().find(|&c| is_unsafe(c)) {
        Some(c) => Err(NameError::Unsafe {
            what,
            code: u32::from(c),
        }),
        None => Ok(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in [
            "",
            "hello",
            "Grüße, Ada — 你好 👋",
            "C:\\Users\\ada",
            "a\\eb",
        ] {
            assert!(matches!(neutralize(s), Cow::Borrowed(b) if b == s), "{s}");
        }
    }

    #[test]
    fn escapes_and_controls_are_shown_not_obeyed() {
        let cases = [
            ("\x1b[2J\x1b[H", "\\e[2J\\e[H"),
            ("\x1b]52;c;Y3VybA==\x07", "\\e]52;c;Y3VybA==\\x07"),
            ("line\nfake prompt $ ", "line\\nfake prompt $ "),
            ("a\rb\tc\0d\x7f", "a\\rb\\tc\\x00d\\x7f"),
            ("\u{9b}31m", "\\u{9b}31m"),
            ("abc\u{202e}fdp.exe", "abc\\u{202e}fdp.exe"),
            ("zero\u{200b}width\u{feff}", "zero\\u{200b}width\\u{feff}"),
            ("line\u{2028}sep\u{2029}", "line\\u{2028}sep\\u{2029}"),
            ("tag\u{e0041}", "tag\\u{e0041}"),
            ("soft\u{ad}hyphen", "soft\\u{ad}hyphen"),
        ];
        for (raw, shown) in cases {
            assert_eq!(neutralize(raw), shown, "{raw:?}");
            assert_eq!(Shown(raw).to_string(), shown);
            assert!(!neutralize(raw).chars().any(is_unsafe));
        }
    }

    #[test]
    fn every_unsafe_character_is_escaped() {
        for u in 0..=0x10FFFFu32 {
            let Some(c) = char::from_u32(u) else { continue };
            let shown = neutralize(c.encode_utf8(&mut [0; 4])).into_owned();
            assert!(!shown.chars().any(is_unsafe), "U+{u:04X}");
            assert_eq!(shown.len() > c.len_utf8(), is_unsafe(c), "U+{u:04X}");
        }
        assert!(is_unsafe('\u{202e}') && is_unsafe('\u{2066}') && is_unsafe('\u{13438}'));
        assert!(!is_unsafe('\u{2065}') && !is_unsafe('é') && !is_unsafe(' '));
    }

    #[test]
    fn json_is_made_safe_and_keeps_its_value() {
        let raw = "a\x1b[2J\x7f\u{9b}31m\u{202e}txt\u{2028}\u{e0041}\\e é";
        let json = serde_json::json!({ "detail": raw }).to_string();
        // serde_json leaves these for a terminal to obey.
        assert!(
            json.contains('\u{9b}') && json.contains('\u{202e}'),
            "{json}"
        );
        let safe = safe_json(&json);
        assert!(!safe.chars().any(is_unsafe), "{safe}");
        assert!(
            safe.contains(r"\u007f\u009b31m\u202etxt\u2028\udb40\udc41"),
            "{safe}"
        );
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap_or_default();
        assert_eq!(back["detail"], raw);
        let plain = r#"{"detail":"C:\\Users é 👋"}"#;
        assert!(matches!(safe_json(plain), Cow::Borrowed(b) if b == plain));
    }

    #[test]
    fn the_format_table_is_sorted_and_disjoint() {
        for w in FORMAT.windows(2) {
            assert!(w[0].0 <= w[0].1 && w[0].1 < w[1].0, "{w:x?}");
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(
            check_name("name", "  Ada Lovelace ", 128),
            Ok("Ada Lovelace")
        );
        assert_eq!(
            check_name("name", " \t ", 128),
            Err(NameError::Empty { what: "name" })
        );
        assert!(matches!(
            check_name("name", &"x".repeat(129), 128),
            Err(NameError::TooLong { max: 128, .. })
        ));
        for bad in [
            "Eve\u{202e}",
            "a\u{200b}b",
            "a\u{2028}b",
            "a\x1b[31mb",
            "a\u{85}b",
        ] {
            let e = check_name("label", bad, 128).unwrap_err();
            assert!(matches!(e, NameError::Unsafe { .. }), "{bad:?}");
            assert!(e.to_string().contains("U+"), "{e}");
        }
    }
}
