//! What the window shows, as data: the [`Line`]s the session shows, folded
//! into the state of one screen (who, how the session goes, the code, the
//! open question, what runs, file transfers, the messages). Drawing it is
//! [`super::draw`]'s; keeping it apart lets the tests check what a window
//! would show without one.

use crate::words::{End, Label, Lang, Line, Path, Screen};
use lifeline_remote::to_user::{Overview, ToUser};

/// Text as the window shows it: neutralized
/// ([`lifeline_protocol::text::neutralize`]), as on the terminal.
fn shown(s: &str) -> String {
    lifeline_protocol::text::neutralize(s).into_owned()
}

/// Messages kept in the window (older ones scroll away for good).
pub const MAX_HISTORY: usize = 500;
/// File transfers kept in the window.
pub const MAX_TRANSFERS: usize = 20;

/// How the session goes.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Before the support service answered.
    Looking,
    /// The service could not be reached yet (the sentence says why, and
    /// when it tries again).
    Trouble(String),
    /// Waiting for the technician (the sentence).
    Waiting(String),
    /// With the technician, by this path.
    Connected(Path),
    /// The connection broke; the technician is reconnecting (the sentence).
    Reconnecting(String),
    /// Over: how it ended and what to do (sentences).
    Over(Vec<String>),
}

/// Who wrote a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// The technician (their name).
    Technician(String),
    /// The end user.
    You,
    /// The program: what happened.
    Notice,
}

/// One message in the window's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Who.
    pub who: Who,
    /// What.
    pub text: String,
}

/// A file on its way, to or from this computer.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    /// The transfer's number.
    pub id: u64,
    /// The file's name.
    pub name: String,
    /// Bytes so far.
    pub bytes: u64,
    /// Its size.
    pub size: u64,
    /// The progress sentence (rate, time left).
    pub words: String,
    /// How it ended: the sentence, and whether it worked.
    pub outcome: Option<(String, bool)>,
}

impl Transfer {
    /// How far, from 0 to 1.
    pub fn fraction(&self) -> f32 {
        if self.outcome.as_ref().is_some_and(|(_, ok)| *ok) || self.size == 0 {
            return 1.0;
        }
        (self.bytes as f64 / self.size as f64).clamp(0.0, 1.0) as f32
    }
}

/// Everything the window shows.
#[derive(Debug, Clone)]
pub struct Model {
    /// The language.
    pub lang: Lang,
    /// Who asks to help, and with what (the greeting's sentences).
    pub greeting: Vec<String>,
    /// The warning that the publisher is not verified, if it is not.
    pub unverified: Option<String>,
    /// The company (for the title).
    pub operator: String,
    /// The technician's name.
    pub technician: String,
    /// How the session goes.
    pub state: State,
    /// The verification code, once connected.
    pub code: Option<String>,
    /// The technician's question waiting for an answer (its sentences).
    pub question: Option<Vec<String>>,
    /// What is allowed, granted and running.
    pub overview: Overview,
    /// Files on their way (newest last).
    pub transfers: Vec<Transfer>,
    /// Messages and what happened (oldest first).
    pub history: Vec<Entry>,
    /// The session's program is done: nothing more will come.
    pub finished: bool,
}

impl Model {
    /// An empty window in `lang`.
    pub fn new(lang: Lang) -> Model {
        Model {
            lang,
            greeting: Vec::new(),
            unverified: None,
            operator: String::new(),
            technician: String::new(),
            state: State::Looking,
            code: None,
            question: None,
            overview: Overview::default(),
            transfers: Vec::new(),
            history: Vec::new(),
            finished: false,
        }
    }

    /// The words of `line` in this window, neutralized as the terminal's
    /// are: names, file names, addresses and chat came from someone else,
    /// and a bidi override or an invisible character must not disguise
    /// them here either.
    fn words(&self, line: &Line) -> Vec<String> {
        self.lang
            .lines_on(Screen::Window, line)
            .iter()
            .map(|l| shown(l))
            .collect()
    }

    /// The window's own words.
    pub fn label(&self, label: &Label) -> String {
        self.lang.label(label)
    }

    /// A sentence of what happened, in the history.
    fn notice(&mut self, line: &Line) {
        let text = self.words(line).join("\n");
        if !text.is_empty() {
            self.push(Who::Notice, text);
        }
    }

    /// A transfer not seen before (the oldest goes past the bound).
    fn add_transfer(&mut self, t: Transfer) {
        if self.transfers.len() >= MAX_TRANSFERS {
            self.transfers.remove(0);
        }
        self.transfers.push(t);
    }

    fn push(&mut self, who: Who, text: String) {
        if self.history.len() >= MAX_HISTORY {
            self.history.remove(0);
        }
        let text = shown(&text);
        self.history.push(Entry { who, text });
    }

    /// The session can take messages and answers.
    pub fn connected(&self) -> bool {
        matches!(self.state, State::Connected(_))
    }

    /// The session is over (the window only says how).
    pub fn over(&self) -> bool {
        matches!(self.state, State::Over(_))
    }

    /// The end user sent `text`.
    pub fn sent(&mut self, text: &str) {
        self.push(Who::You, text.to_owned());
    }

    /// Takes in what the session shows.
    pub fn apply(&mut self, line: &Line) {
        match line {
            Line::Greeting {
                operator,
                technician,
                ..
            } => {
                self.greeting = self.words(line);
                self.operator = shown(operator);
                self.technician = shown(technician);
            }
            Line::Unverified => self.unverified = Some(self.words(line).join(" ")),
            // Terminal help, the code's hint (the window shows its own),
            // and what a terminal asks for (the window shows it always).
            Line::TerminalHelp { .. }
            | Line::WithdrawHelp
            | Line::CodeHint
            | Line::Status(_)
            | Line::Verify { .. } => {}
            Line::Waiting { .. } | Line::WaitingAgain => {
                self.state = State::Waiting(self.words(line).join(" "));
            }
            Line::Retrying { .. } => self.state = State::Trouble(self.words(line).join(" ")),
            Line::Connected { code, .. } => {
                self.state = State::Connected(Path::Relay);
                self.code = Some(shown(code));
            }
            Line::Chat { technician, text } => {
                self.push(Who::Technician(shown(technician)), text.clone())
            }
            Line::Direct { path, .. } => {
                self.state = State::Connected(*path);
                self.notice(line);
            }
            Line::Reconnecting { .. } => {
                let words = self.words(line).join(" ");
                self.state = State::Reconnecting(words);
                self.notice(line);
            }
            Line::Back { .. } => {
                self.state = State::Connected(Path::Relay);
                self.notice(line);
            }
            // Another technician takes over: the window names them, and
            // their code is not the one shown before.
            Line::HandedOver { to, .. } => {
                self.technician = shown(to);
                self.code = None;
                self.state = State::Waiting(self.words(line).join(" "));
                self.notice(line);
            }
            Line::TakenOver { .. } => {
                self.state = State::Connected(Path::Relay);
                self.notice(line);
            }
            Line::NotSentYet
            | Line::NothingYet
            | Line::TestStarted { .. }
            | Line::TestDone { .. } => self.notice(line),
            Line::Work(w) => self.work(line, w),
            Line::Ended(end) => {
                self.state = State::Over(self.words(line));
                self.question = None;
                if *end != End::ByYou {
                    self.notice(line);
                }
            }
            Line::CannotStart(_) => self.state = State::Over(self.words(line)),
            Line::Removed(_) => {
                let words = self.words(line);
                match &mut self.state {
                    State::Over(v) => v.extend(words),
                    _ => self.state = State::Over(words),
                }
            }
        }
    }

    fn work(&mut self, line: &Line, w: &ToUser) {
        match w {
            ToUser::Ask(_) => self.question = Some(self.words(line)),
            ToUser::Allowed { .. }
            | ToUser::Refused
            | ToUser::TimedOut { .. }
            | ToUser::QuestionWithdrawn => {
                self.question = None;
                self.notice(line);
            }
            ToUser::State(o) | ToUser::Overview(o) => self.overview = o.clone(),
            ToUser::Progress(p) => {
                let words = self.words(line).join(" ");
                match self.transfers.iter_mut().find(|t| t.id == p.id) {
                    Some(t) => {
                        t.bytes = p.bytes;
                        t.size = p.size;
                        t.words = words;
                    }
                    None => self.add_transfer(Transfer {
                        id: p.id,
                        name: shown(&p.name),
                        bytes: p.bytes,
                        size: p.size,
                        words,
                        outcome: None,
                    }),
                }
            }
            ToUser::Saved { id, .. }
            | ToUser::Copied { id, .. }
            | ToUser::ReceiveFailed { id, .. }
            | ToUser::CopyFailed { id, .. } => {
                let ok = matches!(w, ToUser::Saved { .. } | ToUser::Copied { .. });
                let words = self.words(line).join(" ");
                match self.transfers.iter_mut().find(|t| t.id == *id) {
                    Some(t) => t.outcome = Some((words, ok)),
                    // Too small or too fast for a progress report.
                    None => {
                        let name = shown(&match w {
                            ToUser::Saved { path, .. } => path.clone(),
                            ToUser::Copied { name, .. }
                            | ToUser::ReceiveFailed { name, .. }
                            | ToUser::CopyFailed { name, .. } => name.clone(),
                            _ => String::new(),
                        });
                        self.add_transfer(Transfer {
                            id: *id,
                            name,
                            bytes: 0,
                            size: 0,
                            words: String::new(),
                            outcome: Some((words, ok)),
                        });
                    }
                }
                self.notice(line);
            }
            _ => self.notice(line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeline_protocol::Permissions;
    use lifeline_remote::to_user::{Activity, Asker, Progress, Question};

    fn greeted(lang: Lang) -> Model {
        let mut m = Model::new(lang);
        m.apply(&Line::Greeting {
            operator: "Example IT".into(),
            technician: "Ada".into(),
            label: "printer".into(),
            offered: Permissions::RUN_COMMAND,
        });
        m
    }

    #[test]
    fn a_handover_names_the_new_technician_and_forgets_the_old_code() {
        let mut m = greeted(Lang::En);
        m.apply(&Line::Connected {
            technician: "Ada".into(),
            code: "123 456".into(),
        });
        m.apply(&Line::HandedOver {
            from: "Ada".into(),
            to: "Grace".into(),
        });
        assert_eq!(m.technician, "Grace");
        assert_eq!(m.code, None);
        assert!(
            matches!(&m.state, State::Waiting(w) if w.contains("Waiting for Grace")),
            "{:?}",
            m.state
        );
        m.apply(&Line::TakenOver {
            technician: "Grace".into(),
        });
        assert_eq!(m.state, State::Connected(Path::Relay));
    }

    #[test]
    fn a_session_goes_from_looking_to_over_with_the_code_in_between() {
        let mut m = greeted(Lang::En);
        assert_eq!(m.state, State::Looking);
        assert!(m.greeting[1].contains("Ada"), "{:?}", m.greeting);
        m.apply(&Line::Waiting {
            technician: "Ada".into(),
        });
        assert!(matches!(&m.state, State::Waiting(s) if s.contains("Ada")));
        m.apply(&Line::Connected {
            technician: "Ada".into(),
            code: "123 456".into(),
        });
        assert_eq!(m.state, State::Connected(Path::Relay));
        assert_eq!(m.code.as_deref(), Some("123 456"));
        m.apply(&Line::Direct {
            technician: "Ada".into(),
            path: Path::DirectTcp,
        });
        assert_eq!(m.state, State::Connected(Path::DirectTcp));
        m.apply(&Line::Chat {
            technician: "Ada".into(),
            text: "hello".into(),
        });
        m.sent("hi");
        m.apply(&Line::Ended(End::ByTechnician {
            technician: "Ada".into(),
        }));
        m.apply(&Line::Removed(true));
        let State::Over(words) = &m.state else {
            panic!("{:?}", m.state)
        };
        assert_eq!(words.len(), 2, "{words:?}");
        let who: Vec<&Who> = m.history.iter().map(|e| &e.who).collect();
        assert!(who.contains(&&Who::Technician("Ada".into())) && who.contains(&&Who::You));
    }

    #[test]
    fn a_question_stays_until_answered_and_says_no_word_about_typing() {
        let mut m = greeted(Lang::De);
        let q = Question {
            who: Asker {
                technician: "Ada".into(),
                company: "Example IT".into(),
            },
            caps: Permissions::RUN_COMMAND,
            whole_session: false,
            folder: None,
            url: None,
            downloads: "/d".into(),
            timeout_secs: 60,
        };
        m.apply(&Line::Work(ToUser::Ask(q)));
        let asked = m.question.clone().expect("a question");
        assert!(
            asked.iter().all(|l| !l.contains("ja oder nein")),
            "{asked:?}"
        );
        m.apply(&Line::Work(ToUser::Allowed { briefly: false }));
        assert!(m.question.is_none());
        m.apply(&Line::Work(ToUser::State(Overview {
            allowed: Permissions::ALL,
            granted: Permissions::RUN_COMMAND,
            folders: Vec::new(),
            running: vec![Activity::Shell],
        })));
        assert_eq!(m.overview.running, vec![Activity::Shell]);
    }

    #[test]
    fn a_transfer_moves_its_bar_and_ends_full_or_says_why_not() {
        let mut m = greeted(Lang::Nl);
        let p = |bytes| {
            Line::Work(ToUser::Progress(Progress {
                outgoing: false,
                id: 7,
                name: "a.bin".into(),
                bytes,
                size: 1000,
                rate: 100.0,
                eta_secs: Some(5.0),
            }))
        };
        m.apply(&p(250));
        m.apply(&p(500));
        assert_eq!(m.transfers.len(), 1);
        assert!((m.transfers[0].fraction() - 0.5).abs() < 1e-6);
        m.apply(&Line::Work(ToUser::Saved {
            id: 7,
            path: "/d/a.bin".into(),
        }));
        assert_eq!(m.transfers[0].fraction(), 1.0);
        assert!(m.transfers[0].outcome.as_ref().is_some_and(|(_, ok)| *ok));
        m.apply(&Line::Work(ToUser::CopyFailed {
            id: 8,
            name: "b".into(),
            detail: "x".into(),
        }));
        assert_eq!(m.transfers.len(), 2);
        assert!(m.transfers[1].outcome.as_ref().is_some_and(|(_, ok)| !*ok));
    }

    #[test]
    fn text_from_the_other_end_is_shown_neutralized() {
        let mut m = greeted(Lang::En);
        m.apply(&Line::Chat {
            technician: "Ada".into(),
            text: "open \u{202e}txt.exe".into(),
        });
        let shown = &m.history.last().unwrap().text;
        assert!(!shown.contains('\u{202e}'), "{shown:?}");
        assert!(shown.contains("txt.exe"));
    }

    #[test]
    fn the_history_is_bounded() {
        let mut m = greeted(Lang::En);
        for i in 0..MAX_HISTORY + 10 {
            m.apply(&Line::Chat {
                technician: "Ada".into(),
                text: i.to_string(),
            });
        }
        assert_eq!(m.history.len(), MAX_HISTORY);
        assert_eq!(m.history[0].text, "10");
    }
}
