//! Every sentence the end user can see, in English, German and Dutch.
//!
//! What the applet shows is a [`Line`] — data, not words — and
//! [`Lang::lines`] turns it into sentences in one of three languages.
//! Each language is one file (`en.rs`, `de.rs`, `nl.rs`) with one
//! exhaustive `match` over [`Line`] and over
//! [`ToUser`](lifeline_remote::to_user::ToUser): a message that one
//! language lacks does not compile, so the three stay complete; the tests
//! below walk every message in every language and check what a person
//! must never see (a developer address, a library's error text, a build
//! kind, a link that does not exist).
//!
//! The language is the system's (see [`crate::locale`]); anything but
//! German or Dutch is English.

mod de;
mod en;
mod nl;
#[cfg(test)]
mod tests;

use lifeline_protocol::Permissions;
use lifeline_protocol::relay::RefuseCode;
use lifeline_remote::to_user::ToUser;

/// A language the applet speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English (the default).
    En,
    /// German.
    De,
    /// Dutch.
    Nl,
}

impl Lang {
    /// Every language, for tests and choosers.
    pub const ALL: [Lang; 3] = [Lang::En, Lang::De, Lang::Nl];

    /// The language of a locale name such as `de_DE.UTF-8`, `nl-BE` or
    /// `en_US` (English for anything else).
    pub fn of_locale(name: &str) -> Lang {
        let lang = name
            .split(['_', '-', '.', '@'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match lang.as_str() {
            "de" => Lang::De,
            "nl" => Lang::Nl,
            _ => Lang::En,
        }
    }

    /// The sentences of `line` in a terminal (several for a greeting or a
    /// question; none for what only a window shows).
    pub fn lines(self, line: &Line) -> Vec<String> {
        self.lines_on(Screen::Terminal, line)
    }

    /// The sentences of `line` on `screen`: a window's words point at its
    /// buttons where a terminal's name what to type.
    pub fn lines_on(self, screen: Screen, line: &Line) -> Vec<String> {
        let window = screen == Screen::Window;
        match self {
            Lang::En => en::lines(line, window),
            Lang::De => de::lines(line, window),
            Lang::Nl => nl::lines(line, window),
        }
    }

    /// The window's own words: its title, headings and buttons.
    pub fn label(self, label: &Label) -> String {
        match self {
            Lang::En => en::label(label),
            Lang::De => de::label(label),
            Lang::Nl => nl::label(label),
        }
    }

    /// The words of `line` as one text.
    pub fn text(self, line: &Line) -> String {
        self.lines(line).join("\n")
    }

    /// The words a person types to answer yes / no, lower case.
    pub fn yes_no(self) -> (&'static [&'static str], &'static [&'static str]) {
        // English always works too: a technician on the phone may say
        // "type yes".
        match self {
            Lang::En => (&["yes", "y"], &["no", "n"]),
            Lang::De => (&["ja", "j", "yes", "y"], &["nein", "n", "no"]),
            Lang::Nl => (&["ja", "j", "yes", "y"], &["nee", "n", "no"]),
        }
    }
}

/// Where the words are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// A terminal: the end user types `/end`, `/stop`, yes or no.
    Terminal,
    /// A window: the end user presses buttons.
    Window,
}

/// The window's own words (everything else it shows is a [`Line`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Label {
    /// The window's title.
    Title,
    /// Before the support service answered.
    Looking,
    /// Connected to the technician, and how.
    ConnectedVia {
        /// Their name.
        technician: String,
        /// How.
        path: Path,
    },
    /// The heading over the verification code.
    CodeTitle,
    /// What to do with the code.
    CodeHint,
    /// The heading over a question.
    QuestionTitle,
    /// Answer yes.
    Allow,
    /// Answer no.
    Deny,
    /// The heading over the messages.
    Messages,
    /// The name the end user's own messages carry.
    You,
    /// The label of the message box.
    YourMessage,
    /// The send button.
    Send,
    /// Before the technician is there, nothing can be sent.
    NothingToSendYet,
    /// What the end user allowed.
    Granted(Permissions),
    /// The button that takes every permission back.
    TakeBack,
    /// What runs on this computer now.
    Running(Vec<lifeline_remote::to_user::Activity>),
    /// The button that stops it.
    StopRunning,
    /// The heading over file transfers.
    Files,
    /// The big button.
    EndSession,
    /// Closing the window or the big button asks this first.
    AskEnd,
    /// Yes, end it.
    AskEndYes,
    /// No, go on.
    AskEndNo,
    /// The session is being ended.
    Ending,
    /// The session is over: the window can be closed.
    Close,
}

impl Label {
    /// One of every label (for tests and translators).
    pub fn every() -> Vec<Label> {
        use lifeline_remote::to_user::Activity;
        let mut v = vec![
            Label::Title,
            Label::Looking,
            Label::CodeTitle,
            Label::CodeHint,
            Label::QuestionTitle,
            Label::Allow,
            Label::Deny,
            Label::Messages,
            Label::You,
            Label::YourMessage,
            Label::Send,
            Label::NothingToSendYet,
            Label::Granted(Permissions::default()),
            Label::Granted(Permissions::RUN_COMMAND.union(Permissions::FILE_TO_USER)),
            Label::TakeBack,
            Label::Running(Vec::new()),
            Label::Running(vec![
                Activity::Shell,
                Activity::Command,
                Activity::Copying("a.txt".into()),
                Activity::Receiving("b.txt".into()),
                Activity::Waiting(3),
            ]),
            Label::StopRunning,
            Label::Files,
            Label::EndSession,
            Label::AskEnd,
            Label::AskEndYes,
            Label::AskEndNo,
            Label::Ending,
            Label::Close,
        ];
        for path in [Path::Relay, Path::DirectTcp, Path::DirectUdp] {
            v.push(Label::ConnectedVia {
                technician: "Ada".into(),
                path,
            });
        }
        v
    }
}

/// How the session goes (for a status line or the window's state).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Path {
    /// Through the support service.
    Relay,
    /// Directly, over TCP.
    DirectTcp,
    /// Directly, over UDP.
    DirectUdp,
}

/// Why the applet is trying to reach the support service again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// It could not be reached.
    Unreachable,
    /// The connection to it broke.
    Interrupted,
    /// The secure connection to the technician could not be set up.
    SecureSetup,
}

/// Why the applet cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CannotStart {
    /// It cannot find or read its own file.
    CannotReadItself,
    /// It was never prepared for a session, or the download was cut short.
    Incomplete,
    /// It was changed after it was issued.
    Tampered,
    /// The session it was made for expired (when, in the user's words:
    /// a date and time).
    Expired(String),
    /// The program was built wrongly.
    Misconfigured,
    /// A start option the user gave is wrong (its name).
    BadOption(String),
    /// The computer could not start it (out of resources).
    NoResources,
}

/// How the session ended, or why it could not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The end user ended it.
    ByYou,
    /// The technician ended it.
    ByTechnician {
        /// Their name.
        technician: String,
    },
    /// The connection could not be restored after it broke.
    NotRestored {
        /// The technician's name.
        technician: String,
    },
    /// The connection was lost for good.
    Lost,
    /// The end user stopped before the technician connected.
    BeforeConnecting,
    /// The support service refused the session.
    Refused(Refusal),
    /// The other side is not the technician's console.
    NotTheTechnician,
    /// The technician's console refused this program.
    ConsoleRefused,
    /// Something in this program went wrong.
    Internal,
}

/// Why the support service refused the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It expired.
    Expired,
    /// It already ended.
    Ended,
    /// The service does not know it.
    Unknown,
    /// This program already runs for it.
    AlreadyRunning,
    /// This program could not prove it belongs to it.
    NotAuthorized,
    /// Anything else (the service is busy, shutting down, too old…).
    Other,
}

impl Refusal {
    /// The refusal of a gateway's refusal code.
    pub fn of(code: RefuseCode) -> Refusal {
        match code {
            RefuseCode::Expired => Refusal::Expired,
            RefuseCode::Ended => Refusal::Ended,
            RefuseCode::UnknownSession => Refusal::Unknown,
            RefuseCode::AlreadyConnected => Refusal::AlreadyRunning,
            RefuseCode::NotAuthorized => Refusal::NotAuthorized,
            _ => Refusal::Other,
        }
    }
}

/// One thing the applet shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// Who is asking to connect, and what they may ask for
    /// (`offered`: only what this program can do).
    Greeting {
        /// The operator's (company's) name.
        operator: String,
        /// The technician's name.
        technician: String,
        /// What the session is about, or "".
        label: String,
        /// What they may ask for.
        offered: Permissions,
    },
    /// The publisher of this program cannot be verified.
    Unverified,
    /// How to chat and end, in a terminal.
    TerminalHelp {
        /// Remote work can be asked for (so the commands for it are
        /// shown).
        work: bool,
    },
    /// Waiting for the technician.
    Waiting {
        /// Their name; empty for a channel's session, which waits for the
        /// next free technician of a group.
        technician: String,
    },
    /// Reconnected to the service; still waiting.
    WaitingAgain,
    /// A problem reaching the service; trying again in `secs`.
    Retrying {
        /// What went wrong.
        trouble: Trouble,
        /// Seconds until the next attempt.
        secs: u64,
    },
    /// Connected; the code to compare.
    Connected {
        /// The technician's name.
        technician: String,
        /// The verification code.
        code: String,
    },
    /// What to do with the code, in a terminal.
    CodeHint,
    /// A chat message from the technician.
    Chat {
        /// Their name.
        technician: String,
        /// What they wrote.
        text: String,
    },
    /// A line typed before the technician is there was not sent.
    NotSentYet,
    /// Nothing is allowed or running before the technician is there.
    NothingYet,
    /// The state of the connection, asked for.
    Status(Option<Path>),
    /// The session now goes directly.
    Direct {
        /// The technician's name.
        technician: String,
        /// How.
        path: Path,
    },
    /// The connection broke; the technician is reconnecting.
    Reconnecting {
        /// Their name.
        technician: String,
    },
    /// The technician handed the session to a colleague; what the end
    /// user allowed has ended.
    HandedOver {
        /// Who handed it over.
        from: String,
        /// Who takes it.
        to: String,
    },
    /// The colleague a session was handed to is connected.
    TakenOver {
        /// Their name.
        technician: String,
    },
    /// The technician is back (`restarted`: their program restarted).
    Back {
        /// Their name.
        technician: String,
        /// Their program restarted.
        restarted: bool,
    },
    /// The technician tests the connection.
    TestStarted {
        /// Their name.
        technician: String,
        /// How much (MiB).
        mib: u64,
    },
    /// A connection test ended.
    TestDone {
        /// Their name.
        technician: String,
        /// Towards this computer (else: from it).
        to_user: bool,
        /// Whether it worked.
        ok: bool,
        /// MiB moved.
        mib: u64,
        /// In seconds.
        secs: f64,
    },
    /// How `/withdraw` is used.
    WithdrawHelp,
    /// What the technician's work tells the end user.
    Work(ToUser),
    /// The session ended.
    Ended(End),
    /// The program cannot start.
    CannotStart(CannotStart),
    /// The program removed itself (`false`: it could not).
    Removed(bool),
    /// The program's own facts, for `--verify`.
    Verify {
        /// The operator.
        operator: String,
        /// The technician.
        technician: String,
        /// The session.
        session: String,
        /// What it is about, or "".
        label: String,
        /// When it expires (a date and time).
        expires: String,
        /// What the technician may ask for.
        offered: Permissions,
        /// The support service's addresses.
        gateways: Vec<String>,
        /// The publisher is verified.
        verified: bool,
    },
}

/// The kind of a direct connection, as a technician would name it to the
/// end user on the phone.
fn transport(p: Path) -> &'static str {
    match p {
        Path::Relay => "relay",
        Path::DirectTcp => "TCP",
        Path::DirectUdp => "UDP",
    }
}

/// A size as people read it (`1.5 MB`; `1,5 MB` with a decimal comma).
fn size(n: u64, comma: bool) -> String {
    let s = lifeline_remote::transfer::human_size(n);
    if comma { s.replace('.', ",") } else { s }
}

/// A percentage of `size`.
fn percent(bytes: u64, size: u64) -> u64 {
    bytes.saturating_mul(100).checked_div(size).unwrap_or(100)
}
