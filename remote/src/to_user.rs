//! What the applet's work tells the end user, as data: the applet turns
//! each into words in the end user's language (its words table) and puts
//! them on its screen — a window or the terminal. Nothing here is a
//! sentence, so no English reaches a German or Dutch screen by way of
//! this crate; only details that come from elsewhere (a file's name, the
//! reason a file could not be saved) are carried as text.

use lifeline_protocol::Permissions;

/// Who asks (from the signed trailer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asker {
    /// The technician's name.
    pub technician: String,
    /// Their company (the operator), or "".
    pub company: String,
}

/// A question to the end user: may the technician do this?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Who asks.
    pub who: Asker,
    /// What for: one capability, or (with `whole_session`) several.
    pub caps: Permissions,
    /// For the rest of the session (the single prompt).
    pub whole_session: bool,
    /// The folder files would be copied from (reading files).
    pub folder: Option<String>,
    /// The web page to open (opening a page).
    pub url: Option<String>,
    /// Where received files are saved (sending files).
    pub downloads: String,
    /// Seconds until no answer counts as no.
    pub timeout_secs: u64,
}

/// How a transfer is going, for a progress bar or a line.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The technician fetches it (else: sends it to the end user).
    pub outgoing: bool,
    /// The transfer.
    pub id: u64,
    /// The file's name, as sent.
    pub name: String,
    /// Bytes so far.
    pub bytes: u64,
    /// Its size.
    pub size: u64,
    /// Bytes per second.
    pub rate: f64,
    /// Seconds still to go, if known.
    pub eta_secs: Option<f64>,
}

/// One thing to tell the end user.
#[derive(Debug, Clone, PartialEq)]
pub enum ToUser {
    /// The technician asks for something; the answer is yes or no.
    Ask(Question),
    /// The question on screen is void: the technician's program restarted.
    QuestionWithdrawn,
    /// The end user said yes (`briefly`: nothing stays running, so no
    /// word about withdrawing).
    Allowed {
        /// Say it short.
        briefly: bool,
    },
    /// The end user said no.
    Refused,
    /// No answer in time: no.
    TimedOut {
        /// The time allowed.
        secs: u64,
    },
    /// Everything the technician had running was stopped, at the end
    /// user's word.
    StoppedEverything,
    /// The technician looked at a folder's list of files.
    Listed {
        /// The folder.
        folder: String,
    },
    /// Files are being copied to the technician.
    Copying {
        /// The file or folder.
        path: String,
        /// How many files.
        files: u64,
    },
    /// The technician read the system information.
    ReadSystemInfo,
    /// A web page was opened in the browser.
    OpenedPage {
        /// Its address.
        url: String,
    },
    /// The web page could not be opened.
    PageFailed,
    /// A file is arriving from the technician.
    Receiving {
        /// Its name.
        name: String,
        /// Its size in bytes.
        size: u64,
        /// The folder it goes to.
        into: String,
    },
    /// A command prompt was opened.
    ShellOpened,
    /// A command runs.
    CommandRunning {
        /// Its command line.
        line: String,
    },
    /// The command prompt was closed.
    ShellClosed,
    /// A transfer moved on.
    Progress(Progress),
    /// A file from the technician was saved.
    Saved {
        /// The transfer.
        id: u64,
        /// Where.
        path: String,
    },
    /// A file from the technician did not arrive.
    ReceiveFailed {
        /// The transfer.
        id: u64,
        /// Its name.
        name: String,
        /// Why (a sentence from the file layer).
        detail: String,
    },
    /// A file was copied to the technician.
    Copied {
        /// The transfer.
        id: u64,
        /// Its name.
        name: String,
    },
    /// Copying a file to the technician stopped.
    CopyFailed {
        /// The transfer.
        id: u64,
        /// Its name.
        name: String,
        /// Why.
        detail: String,
    },
    /// The end user took permissions back (none: there were none).
    Withdrew {
        /// What was taken back.
        taken: Permissions,
    },
    /// What is allowed, granted and running: the end user asked.
    Overview(Overview),
    /// The same, unasked, whenever it changes (for a window that shows it
    /// all the time; a terminal has no room for it).
    State(Overview),
}

/// What is allowed, granted and running.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Overview {
    /// What the technician's company lets them ask for.
    pub allowed: Permissions,
    /// What the end user granted.
    pub granted: Permissions,
    /// Folders the technician may copy from.
    pub folders: Vec<String>,
    /// What runs now.
    pub running: Vec<Activity>,
}

/// Something running on the end user's computer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    /// A command prompt.
    Shell,
    /// A command.
    Command,
    /// A file being copied to the technician.
    Copying(String),
    /// A file being received.
    Receiving(String),
    /// Files waiting to be copied.
    Waiting(u64),
}

impl Activity {
    /// In the technician's words (the console is English).
    pub fn for_technician(&self) -> String {
        match self {
            Activity::Shell => "a command prompt".to_owned(),
            Activity::Command => "a command".to_owned(),
            Activity::Copying(name) => format!("sending {name}"),
            Activity::Receiving(name) => format!("receiving {name}"),
            Activity::Waiting(n) => format!("{n} more files waiting to be sent"),
        }
    }
}
