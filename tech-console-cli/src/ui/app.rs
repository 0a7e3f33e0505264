//! The full-screen console's state and keys: the waiting queue, the
//! session tabs, which one is in front, and what each key does. It owns
//! no terminal and no network: keys come in, and what must happen outside
//! (connect to a session, tell the end user's side the shell's size, quit)
//! goes out as [`Action`]s — so all of it is tested without either.

use super::tab::{Stage, Tab, Who};
use crate::editor::Edited;
use crate::typed::{HELP, Typed};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use lifeline_protocol::SessionGuid;
use lifeline_protocol::portal::SessionInfo;
use lifeline_remote::console::Request;
use lifeline_session::live::Command;
use std::collections::HashSet;

/// Most sessions open at once.
pub const MAX_TABS: usize = 32;

/// Which view is in front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// The waiting queue.
    Queue,
    /// Session tab `n` (0-based).
    Tab(usize),
}

/// What the keyboard is for right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The input line (or the queue's selection).
    Normal,
    /// Keys go to the remote shell of the tab in front.
    Shell,
    /// The help screen.
    Help,
    /// "End the open sessions and quit?"
    ConfirmQuit,
}

/// What must happen outside the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a tab for this session (GUID or label) and connect.
    Connect(String),
    /// Keep a note on a session.
    Note(SessionGuid, String),
    /// End every open session, then quit.
    Quit,
}

/// The whole console.
#[derive(Debug)]
pub struct App {
    /// Who is logged in, and where (for the title bar).
    pub whoami: String,
    /// Who waits (the gateway's answer, newest poll).
    pub queue: Vec<SessionInfo>,
    /// Why the queue could not be read, if it could not.
    pub queue_error: Option<String>,
    /// The queue's selected row.
    pub queue_selected: usize,
    /// Sessions already seen waiting (a new one needs attention).
    seen_waiting: HashSet<SessionGuid>,
    /// The queue has someone new the technician has not looked at.
    pub queue_attention: bool,
    /// The queue's own input line (for `/connect`, `/next`, `/quit`, `/help`).
    pub queue_editor: crate::editor::Editor,
    /// A message under the queue (a refusal, a hint).
    pub queue_message: Option<String>,
    /// The session tabs, in the order opened.
    pub tabs: Vec<Tab>,
    /// Which view is in front.
    pub focus: Focus,
    /// What the keyboard is for.
    pub mode: Mode,
    /// The shell pane takes the whole screen.
    pub shell_full: bool,
    /// Colours allowed (not `NO_COLOR`).
    pub color: bool,
    /// Quitting: waiting for sessions to end.
    pub quitting: bool,
    /// The screen's size (columns, rows).
    pub screen: (u16, u16),
}

impl App {
    /// A console for `whoami`.
    pub fn new(whoami: String, color: bool) -> Self {
        Self {
            whoami,
            queue: Vec::new(),
            queue_error: None,
            queue_selected: 0,
            seen_waiting: HashSet::new(),
            queue_attention: false,
            queue_editor: crate::editor::Editor::new(),
            queue_message: None,
            tabs: Vec::new(),
            focus: Focus::Queue,
            mode: Mode::Normal,
            shell_full: false,
            color,
            quitting: false,
            screen: (80, 24),
        }
    }

    /// The tab in front, if a tab is.
    pub fn current(&self) -> Option<&Tab> {
        match self.focus {
            Focus::Tab(i) => self.tabs.get(i),
            Focus::Queue => None,
        }
    }

    fn current_mut(&mut self) -> Option<&mut Tab> {
        match self.focus {
            Focus::Tab(i) => self.tabs.get_mut(i),
            Focus::Queue => None,
        }
    }

    /// The waiting queue as the gateway last gave it. Sessions already
    /// open in a tab are left out; someone new marks the queue.
    pub fn set_queue(&mut self, result: Result<Vec<SessionInfo>, String>) {
        match result {
            Ok(mut list) => {
                let open: HashSet<SessionGuid> = self
                    .tabs
                    .iter()
                    .filter(|t| t.stage.is_open())
                    .filter_map(|t| t.guid)
                    .collect();
                list.retain(|s| !open.contains(&s.guid));
                list.sort_by_key(|s| s.waiting_since_ms.unwrap_or(i64::MAX));
                let new = list.iter().any(|s| !self.seen_waiting.contains(&s.guid));
                if new && self.focus != Focus::Queue {
                    self.queue_attention = true;
                }
                self.seen_waiting.extend(list.iter().map(|s| s.guid));
                self.queue = list;
                self.queue_error = None;
                self.queue_selected = self.queue_selected.min(self.queue.len().saturating_sub(1));
            }
            Err(e) => self.queue_error = Some(e),
        }
    }

    /// Something happened in tab `i`.
    pub fn mark(&mut self, i: usize) {
        if self.focus != Focus::Tab(i)
            && let Some(t) = self.tabs.get_mut(i)
        {
            t.attention = true;
        }
    }

    /// How many views need attention (for the terminal's title).
    pub fn attention_count(&self) -> usize {
        self.tabs.iter().filter(|t| t.attention).count() + usize::from(self.queue_attention)
    }

    /// The terminal's title.
    pub fn title(&self) -> String {
        let n = self.attention_count();
        let open = self.tabs.iter().filter(|t| t.stage.is_open()).count();
        let mut t = format!(
            "Lifeline — {} waiting, {open} session{}",
            self.queue.len(),
            if open == 1 { "" } else { "s" }
        );
        if n > 0 {
            t = format!("({n}) {t}");
        }
        t
    }

    /// Brings view `f` to the front; what needed attention there is seen.
    pub fn show(&mut self, f: Focus) {
        self.focus = match f {
            Focus::Tab(i) if i < self.tabs.len() => f,
            _ => Focus::Queue,
        };
        if self.mode == Mode::Shell {
            self.mode = Mode::Normal;
        }
        match self.focus {
            Focus::Queue => self.queue_attention = false,
            Focus::Tab(i) => self.tabs[i].attention = false,
        }
    }

    fn cycle(&mut self, forward: bool) {
        let n = self.tabs.len() + 1;
        let at = match self.focus {
            Focus::Queue => 0,
            Focus::Tab(i) => i + 1,
        };
        let next = if forward {
            (at + 1) % n
        } else {
            (at + n - 1) % n
        };
        self.show(if next == 0 {
            Focus::Queue
        } else {
            Focus::Tab(next - 1)
        });
    }

    /// Opens a tab for a session being connected, in front.
    pub fn open_tab(&mut self, tab: Tab) -> usize {
        self.tabs.push(tab);
        let i = self.tabs.len() - 1;
        self.show(Focus::Tab(i));
        i
    }

    /// Whether a tab is open (and not ended) for `target` (a GUID or a
    /// label).
    pub fn tab_for(&self, target: &str) -> Option<usize> {
        self.tabs.iter().position(|t| {
            t.stage.is_open()
                && (t.target == target
                    || t.label == target
                    || t.guid.is_some_and(|g| g.to_string() == target))
        })
    }

    /// Sessions still open.
    pub fn open_sessions(&self) -> usize {
        self.tabs.iter().filter(|t| t.stage.is_open()).count()
    }

    /// Handles a key; returns what must happen outside.
    pub fn key(&mut self, k: KeyEvent) -> Vec<Action> {
        if k.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        let alt = k.modifiers.contains(KeyModifiers::ALT);
        match self.mode {
            Mode::Help => {
                self.mode = Mode::Normal;
                return Vec::new();
            }
            Mode::ConfirmQuit => {
                self.mode = Mode::Normal;
                if matches!(k.code, KeyCode::Char('y' | 'Y' | 'j' | 'J')) {
                    return vec![Action::Quit];
                }
                return Vec::new();
            }
            _ => {}
        }
        // Keys that work everywhere (the shell included: Alt-digits and
        // F-keys are not a shell's).
        match k.code {
            KeyCode::Char(d @ '0'..='9') if alt => {
                let n = d as usize - '0' as usize;
                self.show(if n == 0 {
                    Focus::Queue
                } else {
                    Focus::Tab(n - 1)
                });
                return Vec::new();
            }
            KeyCode::F(1) => {
                self.mode = Mode::Help;
                return Vec::new();
            }
            KeyCode::F(2) => {
                self.toggle_shell_focus();
                return Vec::new();
            }
            KeyCode::F(3) => {
                self.shell_full = !self.shell_full;
                return Vec::new();
            }
            KeyCode::F(4) => {
                if let Some(t) = self.current_mut() {
                    if t.editor.is_empty() {
                        t.editor.set("/note ");
                    }
                    self.mode = Mode::Normal;
                }
                return Vec::new();
            }
            _ => {}
        }
        if self.mode == Mode::Shell {
            return self.shell_key(k);
        }
        match k.code {
            KeyCode::Char('q') if ctrl => return self.ask_quit(),
            KeyCode::Char('n') if ctrl => {
                self.cycle(true);
                return Vec::new();
            }
            KeyCode::Char('p') if ctrl => {
                self.cycle(false);
                return Vec::new();
            }
            _ => {}
        }
        match self.focus {
            Focus::Queue => self.queue_key(k),
            Focus::Tab(_) => self.tab_key(k),
        }
    }

    fn toggle_shell_focus(&mut self) {
        let has_shell = self
            .current()
            .and_then(|t| t.shell.as_ref())
            .is_some_and(|s| s.open);
        self.mode = match self.mode {
            Mode::Shell => Mode::Normal,
            _ if has_shell => Mode::Shell,
            m => m,
        };
    }

    fn shell_key(&mut self, k: KeyEvent) -> Vec<Action> {
        let Some(t) = self.current_mut() else {
            self.mode = Mode::Normal;
            return Vec::new();
        };
        let bytes = crate::keys::encode(&k);
        if bytes == [crate::terminal::LEAVE_KEY] {
            t.controls.request(Request::Stop(0));
            self.mode = Mode::Normal;
        } else if !bytes.is_empty() {
            t.controls.request(Request::Keys(bytes.into()));
        }
        Vec::new()
    }

    /// Pasted text: to the shell if it has the keyboard, else the input.
    pub fn paste(&mut self, text: &str) {
        if self.mode == Mode::Shell {
            if let Some(t) = self.current() {
                t.controls
                    .request(Request::Keys(text.as_bytes().to_vec().into()));
            }
            return;
        }
        match self.current_mut() {
            Some(t) => t.editor.paste(text),
            None => self.queue_editor.paste(text),
        }
    }

    fn ask_quit(&mut self) -> Vec<Action> {
        if self.open_sessions() == 0 {
            return vec![Action::Quit];
        }
        self.mode = Mode::ConfirmQuit;
        Vec::new()
    }

    fn queue_key(&mut self, k: KeyEvent) -> Vec<Action> {
        match k.code {
            KeyCode::Up if self.queue_editor.is_empty() => {
                self.queue_selected = self.queue_selected.saturating_sub(1);
                return Vec::new();
            }
            KeyCode::Down if self.queue_editor.is_empty() => {
                self.queue_selected =
                    (self.queue_selected + 1).min(self.queue.len().saturating_sub(1));
                return Vec::new();
            }
            KeyCode::Enter if self.queue_editor.is_empty() => {
                return match self.queue.get(self.queue_selected) {
                    Some(s) => self.connect(s.guid.to_string()),
                    None => {
                        self.queue_message = Some("nobody is waiting".into());
                        Vec::new()
                    }
                };
            }
            _ => {}
        }
        match self.queue_editor.key(k) {
            Edited::Submit(line) => self.queue_line(&line),
            Edited::EndOfInput | Edited::Interrupt(false) => {
                self.queue_message = Some("Ctrl-Q quits".into());
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// A line typed in the queue's input.
    fn queue_line(&mut self, line: &str) -> Vec<Action> {
        let line = line.trim();
        if line == "/next" {
            // The group queue's longest waiting end user (the gateway
            // decides, atomically, whether this console gets them).
            let oldest = self
                .queue
                .iter()
                .filter(|s| s.channel.is_some())
                .min_by_key(|s| s.waiting_since_ms.unwrap_or(i64::MAX));
            let Some(s) = oldest else {
                self.queue_message = Some("nobody is waiting in your group's queue".into());
                return Vec::new();
            };
            return self.connect(s.guid.to_string());
        }
        if let Some(target) = line.strip_prefix("/connect") {
            let target = target.trim();
            if target.is_empty() {
                self.queue_message = Some("/connect needs a label or GUID".into());
                return Vec::new();
            }
            return self.connect(target.to_owned());
        }
        match crate::typed::parse(line) {
            Ok(Typed::Nothing) => Vec::new(),
            Ok(Typed::Quit) => self.ask_quit(),
            Ok(Typed::Help) => {
                self.mode = Mode::Help;
                Vec::new()
            }
            Ok(_) => {
                self.queue_message = Some(
                    "pick a session first (Enter on the queue, or /connect LABEL); /help lists the keys"
                        .into(),
                );
                Vec::new()
            }
            Err(e) => {
                self.queue_message = Some(e);
                Vec::new()
            }
        }
    }

    fn connect(&mut self, target: String) -> Vec<Action> {
        if let Some(i) = self.tab_for(&target) {
            self.show(Focus::Tab(i));
            return Vec::new();
        }
        if self.open_sessions() >= MAX_TABS {
            self.queue_message = Some(format!(
                "{MAX_TABS} sessions are open: end one before taking another"
            ));
            return Vec::new();
        }
        self.queue_message = None;
        vec![Action::Connect(target)]
    }

    fn tab_key(&mut self, k: KeyEvent) -> Vec<Action> {
        let Focus::Tab(i) = self.focus else {
            return Vec::new();
        };
        let t = &mut self.tabs[i];
        match k.code {
            KeyCode::PageUp => {
                t.scroll = (t.scroll + 10).min(t.chat.len().saturating_sub(1));
                return Vec::new();
            }
            KeyCode::PageDown => {
                t.scroll = t.scroll.saturating_sub(10);
                return Vec::new();
            }
            _ => {}
        }
        match t.editor.key(k) {
            Edited::Submit(line) => self.tab_line(i, &line),
            Edited::EndOfInput | Edited::Interrupt(false) => {
                t.say(
                    Who::Console,
                    "(this does not end anything: /end ends the session, Ctrl-Q quits)",
                );
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// A line typed in tab `i`.
    fn tab_line(&mut self, i: usize, line: &str) -> Vec<Action> {
        let shell_size = self.shell_size();
        let t = &mut self.tabs[i];
        t.scroll = 0;
        let parsed = match crate::typed::parse(line) {
            Ok(p) => p,
            Err(e) => {
                t.say(Who::Console, &e);
                return Vec::new();
            }
        };
        let live = t.stage == Stage::Live || t.stage == Stage::Reconnecting;
        let needs_live = !matches!(
            parsed,
            Typed::Nothing
                | Typed::Help
                | Typed::Note(_)
                | Typed::Close
                | Typed::Quit
                | Typed::End(_)
                | Typed::Status
        );
        if needs_live && !live {
            t.say(
                Who::Console,
                if t.stage.is_open() {
                    "not connected yet: wait for the end user (/end gives up)"
                } else {
                    "this session has ended (/close closes the tab)"
                },
            );
            return Vec::new();
        }
        match parsed {
            Typed::Nothing => {}
            Typed::Chat(text) => {
                t.say(Who::Me, &text);
                t.controls.command(Command::Say(text));
            }
            Typed::End(reason) => {
                if t.stage.is_open() {
                    t.controls.command(Command::End(reason));
                    t.say(Who::Console, "ending the session…");
                }
            }
            Typed::Quit => return self.ask_quit(),
            Typed::Status => {
                let line = format!(
                    "{}: {}",
                    t.stage.words(),
                    t.path.with_payload(t.controls.traffic.get())
                );
                t.say(Who::Console, &line);
            }
            Typed::Probe => {
                t.controls.command(Command::Probe);
            }
            Typed::Help => {
                self.mode = Mode::Help;
            }
            Typed::Session(cmds) => {
                for c in cmds {
                    t.controls.command(c);
                }
            }
            Typed::Shell => {
                if t.shell.as_ref().is_some_and(|s| s.open) {
                    self.mode = Mode::Shell;
                } else {
                    let (cols, rows) = shell_size;
                    t.open_shell(cols, rows);
                    t.controls.request(Request::Shell { cols, rows });
                    t.say(
                        Who::Console,
                        "remote shell: asking the end user; F2 moves the keyboard between the shell and this line, F3 gives it the whole screen, Ctrl-] closes it",
                    );
                    self.mode = Mode::Shell;
                }
            }
            Typed::Work(r) => {
                t.controls.request(r);
            }
            Typed::Transfer(to) => {
                t.controls.hand_to(to);
            }
            Typed::Note(text) => {
                let line = crate::line::note_line(&text);
                t.notes.push_str(&line);
                t.notes.push('\n');
                if let Some(g) = t.guid {
                    return vec![Action::Note(g, line)];
                }
            }
            Typed::Close => {
                if t.stage.is_open() {
                    t.say(Who::Console, "end the session first (/end), then /close");
                } else {
                    self.tabs.remove(i);
                    self.show(if self.tabs.is_empty() {
                        Focus::Queue
                    } else {
                        Focus::Tab(i.min(self.tabs.len() - 1))
                    });
                }
            }
        }
        Vec::new()
    }

    /// The shell pane's size (columns, rows) for the screen's last size.
    fn shell_size(&self) -> (u16, u16) {
        let (w, h) = self.screen;
        let area = ratatui::layout::Rect::new(0, 0, w, h);
        let r = super::view::areas(area, self, true).shell;
        (r.width.max(20), r.height.max(5))
    }

    /// The help text (keys, then commands).
    pub fn help() -> String {
        format!("{KEYS}\n\n{HELP}")
    }
}

/// The keys, for the help screen.
pub const KEYS: &str = "\
keys:
  Alt-0 queue (↑↓ choose, Enter take; /next: longest waiting of the group)
  Alt-1…9 tabs · Ctrl-N/P next, back
  F2 keyboard to the shell and back (Ctrl-] closes it) · F3 shell full size
  F4 note · PgUp/PgDn scroll · ↑↓ earlier lines · F1 help · Ctrl-Q quit";
