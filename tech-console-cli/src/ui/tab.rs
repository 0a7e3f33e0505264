//! One session's tab: everything the full-screen console shows about it,
//! kept up to date from the session's [`Update`]s — the conversation,
//! where it stands, the path, what the end user granted, the remote shell's
//! screen, file transfers, system information and the technician's notes.

use crate::connect::{PathStatus, describe};
use crate::drive::{Controls, Update};
use crate::editor::Editor;
use lifeline_protocol::SessionGuid;
use std::collections::VecDeque;
use tui_term::vt100;

/// Conversation lines kept per tab (the oldest go first).
pub const CHAT_LINES: usize = 2000;
/// Transfers listed per tab (finished ones go first).
pub const TRANSFERS: usize = 20;
/// Lines of a remote shell kept above its screen.
const SCROLLBACK: usize = 2000;

/// Where the session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Looking the session up, connecting to the gateway.
    Connecting,
    /// The end user's applet is not connected yet.
    Waiting,
    /// Paired; the end-to-end handshake runs.
    Securing,
    /// The session runs.
    Live,
    /// The path died; the session is being restored.
    Reconnecting,
    /// Over (by whom, why).
    Ended(String),
}

impl Stage {
    /// In a word or two.
    pub fn words(&self) -> &str {
        match self {
            Stage::Connecting => "connecting",
            Stage::Waiting => "waiting for the end user",
            Stage::Securing => "securing",
            Stage::Live => "live",
            Stage::Reconnecting => "reconnecting",
            Stage::Ended(_) => "ended",
        }
    }

    /// Whether the session is still on.
    pub fn is_open(&self) -> bool {
        !matches!(self, Stage::Ended(_))
    }
}

/// Who said a line of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The technician (chat sent).
    Me,
    /// The end user (chat received).
    User,
    /// The session or remote work (events).
    Session,
    /// This console (refusals, help).
    Console,
}

/// A line of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Said {
    /// When (Unix ms).
    pub at_ms: i64,
    /// Who.
    pub who: Who,
    /// What (neutralized).
    pub text: String,
}

/// A file on its way.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    /// The transfer's number.
    pub id: u64,
    /// To the end user (else from).
    pub outgoing: bool,
    /// The file's name (neutralized).
    pub name: String,
    /// Bytes so far.
    pub bytes: u64,
    /// Bytes in all.
    pub size: u64,
    /// Bytes per second.
    pub rate: f64,
    /// Seconds left, if known.
    pub eta_secs: Option<f64>,
    /// `started`, `progress`, or how it ended (`saved`, `failed`,
    /// `refused`, `stopped`).
    pub state: String,
}

impl Transfer {
    /// Done, 0.0–1.0.
    pub fn ratio(&self) -> f64 {
        if self.size == 0 {
            if self.state == "saved" { 1.0 } else { 0.0 }
        } else {
            (self.bytes as f64 / self.size as f64).clamp(0.0, 1.0)
        }
    }

    /// Whether it still moves.
    pub fn is_running(&self) -> bool {
        self.state == "started" || self.state == "progress"
    }
}

/// The remote shell's screen.
pub struct Shell {
    /// The terminal emulator its output goes through.
    pub parser: vt100::Parser,
    /// Whether it still runs.
    pub open: bool,
    /// The size last told to the end user's side (columns, rows).
    pub told: (u16, u16),
}

impl std::fmt::Debug for Shell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shell")
            .field("open", &self.open)
            .field("told", &self.told)
            .finish_non_exhaustive()
    }
}

/// One session's tab.
#[derive(Debug)]
pub struct Tab {
    /// Its number in this console's life (updates are addressed by it).
    pub id: u64,
    /// What the technician picked (label or GUID).
    pub target: String,
    /// The session, once found.
    pub guid: Option<SessionGuid>,
    /// Its label ("" if none).
    pub label: String,
    /// Where it stands.
    pub stage: Stage,
    /// The verification code both ends show.
    pub sas: Option<String>,
    /// The conversation and what happened.
    pub chat: VecDeque<Said>,
    /// Lines scrolled back from the newest (0: the newest are shown).
    pub scroll: usize,
    /// The path in use.
    pub path: PathStatus,
    /// What the end user granted, by name.
    pub granted: Vec<String>,
    /// What runs on the end user's machine, as the applet says.
    pub running: Vec<String>,
    /// The remote shell, once asked for.
    pub shell: Option<Shell>,
    /// File transfers, oldest first.
    pub transfers: Vec<Transfer>,
    /// The last system information (a table, neutralized).
    pub sysinfo: Option<String>,
    /// The technician's notes on the session.
    pub notes: String,
    /// Something happened the technician has not seen.
    pub attention: bool,
    /// What is being typed here.
    pub editor: Editor,
    /// The technician's hands on the session.
    pub controls: Controls,
}

impl Tab {
    /// A new tab for `target`.
    pub fn new(id: u64, target: String, controls: Controls) -> Self {
        Self {
            id,
            label: target.clone(),
            target,
            guid: None,
            stage: Stage::Connecting,
            sas: None,
            chat: VecDeque::new(),
            scroll: 0,
            path: PathStatus::default(),
            granted: Vec::new(),
            running: Vec::new(),
            shell: None,
            transfers: Vec::new(),
            sysinfo: None,
            notes: String::new(),
            attention: false,
            editor: Editor::new(),
            controls,
        }
    }

    /// The tab's title: the label, else the GUID's start.
    pub fn title(&self) -> String {
        let t = if self.label.is_empty() {
            self.guid
                .map(|g| g.to_string()[..8].to_owned())
                .unwrap_or_else(|| self.target.clone())
        } else {
            self.label.clone()
        };
        lifeline_protocol::text::neutralize(&t).into_owned()
    }

    /// Adds a line to the conversation.
    pub fn say(&mut self, who: Who, text: &str) {
        let text = lifeline_protocol::text::neutralize(text).into_owned();
        for line in text.lines() {
            if self.chat.len() == CHAT_LINES {
                self.chat.pop_front();
            }
            self.chat.push_back(Said {
                at_ms: lifeline_session::now_ms(),
                who,
                text: line.to_owned(),
            });
            if self.scroll > 0 {
                // Keep what the technician scrolled to in view.
                self.scroll += 1;
            }
        }
    }

    /// Takes in an update. Returns whether it needs the technician's
    /// attention (a chat line, a consent answer, the end).
    pub fn apply(&mut self, u: Update) -> bool {
        let said = describe(&u, &mut self.path, self.controls.traffic.get());
        let mut attention = false;
        match &u {
            Update::Found { guid, label } => {
                self.guid = Some(*guid);
                if !label.is_empty() {
                    self.label = label.clone();
                }
            }
            Update::Waiting { .. } => self.stage = Stage::Waiting,
            Update::Paired { .. } => self.stage = Stage::Securing,
            Update::Secured { sas } => {
                self.stage = Stage::Live;
                self.sas = Some(sas.clone());
                attention = true;
            }
            Update::Event(lifeline_session::live::Event::Chat(text)) => {
                self.say(Who::User, text);
                return true;
            }
            Update::Event(lifeline_session::live::Event::Reconnecting { .. }) => {
                self.stage = Stage::Reconnecting;
            }
            Update::Event(lifeline_session::live::Event::Resumed { .. }) => {
                self.stage = Stage::Live;
            }
            Update::Ended { by, reason, .. } => {
                self.stage = Stage::Ended(format!("by {by}: {reason}"));
                if let Some(s) = self.shell.as_mut() {
                    s.open = false;
                }
                attention = true;
            }
            Update::Failed(m) => {
                self.stage = Stage::Ended(m.clone());
                attention = true;
            }
            Update::Work(n) => return self.work(n, said.and_then(|s| s.human)),
            _ => {}
        }
        if let Some(human) = said.and_then(|s| s.human) {
            self.say(Who::Session, &human);
        }
        attention
    }

    /// Remote work's notice.
    fn work(&mut self, n: &lifeline_remote::console::Notice, human: Option<String>) -> bool {
        let j = &n.json;
        let event = j["event"].as_str().unwrap_or_default();
        let text = |k: &str| {
            lifeline_protocol::text::neutralize(j[k].as_str().unwrap_or_default()).into_owned()
        };
        match event {
            "shell_output" => {
                if let (Some(s), Some(raw)) = (self.shell.as_mut(), &n.raw) {
                    s.parser.process(raw);
                }
                return false;
            }
            "exited" | "refused" if j["what"] == "shell" => {
                if let Some(s) = self.shell.as_mut() {
                    s.open = false;
                }
            }
            "transfer" => {
                let id = j["id"].as_u64().unwrap_or_default();
                let state = text("state");
                let t = Transfer {
                    id,
                    outgoing: j["direction"] == "to_user",
                    name: text("name"),
                    bytes: j["bytes"].as_u64().unwrap_or_default(),
                    size: j["size"].as_u64().unwrap_or_default(),
                    rate: j["rate_bps"].as_f64().unwrap_or_default(),
                    eta_secs: j["eta_s"].as_f64(),
                    state: state.clone(),
                };
                let progress = state == "progress";
                match self.transfers.iter_mut().find(|x| x.id == id) {
                    Some(x) => {
                        x.state = t.state;
                        if progress {
                            x.bytes = t.bytes;
                            x.rate = t.rate;
                            x.eta_secs = t.eta_secs;
                        } else if state != "started" {
                            // Ended: all of it, or as far as it got.
                            if state == "saved" {
                                x.bytes = x.size;
                            }
                            x.eta_secs = None;
                        }
                    }
                    None => {
                        if self.transfers.len() == TRANSFERS
                            && let Some(old) = self.transfers.iter().position(|x| !x.is_running())
                        {
                            self.transfers.remove(old);
                        }
                        if self.transfers.len() < TRANSFERS {
                            self.transfers.push(t);
                        }
                    }
                }
                // Progress shows in its bar, not as lines.
                if progress {
                    return false;
                }
            }
            "grants" => {
                let names = |k: &str| -> Vec<String> {
                    j[k].as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str())
                                .map(|s| lifeline_protocol::text::neutralize(s).into_owned())
                                .collect()
                        })
                        .unwrap_or_default()
                };
                self.granted = names("granted");
                self.running = names("running");
            }
            "system_info" => self.sysinfo = human.clone(),
            _ => {}
        }
        if let Some(h) = human {
            self.say(Who::Session, &h);
        }
        // The end user answered, or something of theirs ended.
        matches!(event, "consent" | "refused" | "exited" | "grants") && j["decision"] != "asked"
    }

    /// Opens the shell pane's emulator at this size (the request goes out
    /// separately).
    pub fn open_shell(&mut self, cols: u16, rows: u16) {
        self.shell = Some(Shell {
            parser: vt100::Parser::new(rows.max(1), cols.max(1), SCROLLBACK),
            open: true,
            told: (cols, rows),
        });
    }
}
