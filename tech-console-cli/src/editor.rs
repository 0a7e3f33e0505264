//! The input line of line mode and of the full-screen console: what the
//! technician is typing, where the cursor is, and the lines typed before
//! (Up and Down walk them, as in a shell). It only edits; whoever owns the
//! screen draws [`Editor::visible`] where it likes, so a message that
//! arrives meanwhile never lands inside the line being typed.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// Lines kept for Up/Down.
const HISTORY: usize = 200;
/// Longest line (characters); more typed or pasted is dropped.
pub const MAX_LINE: usize = 4000;

/// What a key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edited {
    /// The line changed, or the cursor moved (or nothing happened).
    Changed,
    /// Enter: this line was submitted (and went into the history).
    Submit(String),
    /// Ctrl-D on an empty line.
    EndOfInput,
    /// Ctrl-C: the line was cleared (`true` if it held something).
    Interrupt(bool),
    /// Not an editing key; the caller may use it.
    Ignored,
}

/// A one-line editor with history.
#[derive(Debug, Default, Clone)]
pub struct Editor {
    line: Vec<char>,
    cursor: usize,
    history: Vec<String>,
    /// Where Up/Down stand in the history (`None`: the line being typed).
    browsing: Option<usize>,
    /// The line being typed, kept while the history is browsed.
    draft: Vec<char>,
}

impl Editor {
    /// An empty editor.
    pub fn new() -> Self {
        Self::default()
    }

    /// The line.
    pub fn text(&self) -> String {
        self.line.iter().collect()
    }

    /// Whether the line is empty.
    pub fn is_empty(&self) -> bool {
        self.line.is_empty()
    }

    /// Replaces the line (the cursor goes to its end).
    pub fn set(&mut self, text: &str) {
        self.line = text.chars().take(MAX_LINE).collect();
        self.cursor = self.line.len();
        self.browsing = None;
    }

    /// Inserts pasted text (line breaks become spaces: a paste is one
    /// line, never several sent at once).
    pub fn paste(&mut self, text: &str) {
        for c in text.chars() {
            self.insert(if c == '\n' || c == '\r' || c == '\t' {
                ' '
            } else {
                c
            });
        }
    }

    fn insert(&mut self, c: char) {
        if self.line.len() < MAX_LINE && !c.is_control() {
            self.line.insert(self.cursor, c);
            self.cursor += 1;
        }
    }

    /// Handles one key.
    pub fn key(&mut self, k: KeyEvent) -> Edited {
        if k.kind == KeyEventKind::Release {
            return Edited::Ignored;
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        let alt = k.modifiers.contains(KeyModifiers::ALT);
        match k.code {
            KeyCode::Enter => return self.submit(),
            KeyCode::Char('m' | 'j') if ctrl => return self.submit(),
            KeyCode::Char('d') if ctrl && self.line.is_empty() => return Edited::EndOfInput,
            KeyCode::Char('c') if ctrl => {
                let had = !self.line.is_empty();
                self.set("");
                return Edited::Interrupt(had);
            }
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::Char('e') if ctrl => self.cursor = self.line.len(),
            KeyCode::Char('b') if ctrl => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Char('f') if ctrl => self.cursor = (self.cursor + 1).min(self.line.len()),
            KeyCode::Char('d') if ctrl => self.delete(),
            KeyCode::Char('u') if ctrl => {
                self.line.drain(..self.cursor);
                self.cursor = 0;
            }
            KeyCode::Char('k') if ctrl => self.line.truncate(self.cursor),
            KeyCode::Char('w') if ctrl => self.delete_word(),
            KeyCode::Backspace if alt => self.delete_word(),
            KeyCode::Char('p') if ctrl => self.older(),
            KeyCode::Char('n') if ctrl => self.newer(),
            KeyCode::Char(_) if ctrl || alt => return Edited::Ignored,
            KeyCode::Char(c) => self.insert(c),
            KeyCode::Backspace => {
                if self.cursor > 0 {
                    self.cursor -= 1;
                    self.line.remove(self.cursor);
                }
            }
            KeyCode::Delete => self.delete(),
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(self.line.len()),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = self.line.len(),
            KeyCode::Up => self.older(),
            KeyCode::Down => self.newer(),
            _ => return Edited::Ignored,
        }
        Edited::Changed
    }

    fn delete(&mut self) {
        if self.cursor < self.line.len() {
            self.line.remove(self.cursor);
        }
    }

    fn delete_word(&mut self) {
        let mut start = self.cursor;
        while start > 0 && self.line[start - 1] == ' ' {
            start -= 1;
        }
        while start > 0 && self.line[start - 1] != ' ' {
            start -= 1;
        }
        self.line.drain(start..self.cursor);
        self.cursor = start;
    }

    fn submit(&mut self) -> Edited {
        let text = self.text();
        if !text.trim().is_empty() && self.history.last() != Some(&text) {
            if self.history.len() == HISTORY {
                self.history.remove(0);
            }
            self.history.push(text.clone());
        }
        self.line.clear();
        self.cursor = 0;
        self.browsing = None;
        Edited::Submit(text)
    }

    fn older(&mut self) {
        let at = match self.browsing {
            None if self.history.is_empty() => return,
            None => {
                self.draft = std::mem::take(&mut self.line);
                self.history.len() - 1
            }
            Some(0) => 0,
            Some(i) => i - 1,
        };
        self.browsing = Some(at);
        self.line = self.history[at].chars().collect();
        self.cursor = self.line.len();
    }

    fn newer(&mut self) {
        let Some(i) = self.browsing else { return };
        if i + 1 < self.history.len() {
            self.browsing = Some(i + 1);
            self.line = self.history[i + 1].chars().collect();
        } else {
            self.browsing = None;
            self.line = std::mem::take(&mut self.draft);
        }
        self.cursor = self.line.len();
    }

    /// The part of the line that fits in `width` columns, keeping the
    /// cursor in view, and the cursor's column in it. (One column per
    /// character: wide characters may shift the cursor a little.)
    pub fn visible(&self, width: usize) -> (String, usize) {
        let width = width.max(2);
        let start = if self.cursor >= width {
            self.cursor + 1 - width
        } else {
            0
        };
        let end = (start + width).min(self.line.len());
        (self.line[start..end].iter().collect(), self.cursor - start)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn press(e: &mut Editor, code: KeyCode) -> Edited {
        e.key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn typed(e: &mut Editor, s: &str) {
        for c in s.chars() {
            press(e, KeyCode::Char(c));
        }
    }

    #[test]
    fn edits_and_submits() {
        let mut e = Editor::new();
        typed(&mut e, "helo");
        press(&mut e, KeyCode::Left);
        typed(&mut e, "l");
        assert_eq!(e.text(), "hello");
        press(&mut e, KeyCode::Home);
        press(&mut e, KeyCode::Delete);
        typed(&mut e, "H");
        assert_eq!(
            press(&mut e, KeyCode::Enter),
            Edited::Submit("Hello".into())
        );
        assert!(e.is_empty());
        typed(&mut e, "one two");
        e.key(KeyEvent::new(KeyCode::Char('w'), KeyModifiers::CONTROL));
        assert_eq!(e.text(), "one ");
        assert_eq!(
            e.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Edited::Interrupt(true)
        );
        assert_eq!(
            e.key(KeyEvent::new(KeyCode::Char('d'), KeyModifiers::CONTROL)),
            Edited::EndOfInput
        );
    }

    #[test]
    fn history_walks_back_and_keeps_the_draft() {
        let mut e = Editor::new();
        for l in ["first", "second"] {
            typed(&mut e, l);
            press(&mut e, KeyCode::Enter);
        }
        typed(&mut e, "dra");
        press(&mut e, KeyCode::Up);
        assert_eq!(e.text(), "second");
        press(&mut e, KeyCode::Up);
        press(&mut e, KeyCode::Up);
        assert_eq!(e.text(), "first");
        press(&mut e, KeyCode::Down);
        assert_eq!(e.text(), "second");
        press(&mut e, KeyCode::Down);
        assert_eq!(e.text(), "dra");
    }

    #[test]
    fn long_lines_scroll_and_pastes_stay_one_line() {
        let mut e = Editor::new();
        e.paste("a\nb");
        assert_eq!(e.text(), "a b");
        e.set(&"x".repeat(30));
        let (shown, at) = e.visible(10);
        assert_eq!((shown.len(), at), (9, 9));
        e.paste(&"y".repeat(MAX_LINE));
        assert_eq!(e.text().chars().count(), MAX_LINE);
    }
}
