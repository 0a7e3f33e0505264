//! English.

use super::{CannotStart, End, Label, Line, Path, Refusal, Trouble, percent, transport};
use lifeline_protocol::Permissions;
use lifeline_remote::to_user::{Activity, Overview, Question, ToUser};

fn size(n: u64) -> String {
    super::size(n, false)
}

fn cap(p: Permissions) -> &'static str {
    match p {
        Permissions::RUN_COMMAND => "using a command prompt",
        Permissions::FILE_TO_USER => "sending you files",
        Permissions::FILE_FROM_USER => "copying files from this computer",
        Permissions::SYSTEM_INFO => "reading system information",
        Permissions::OPEN_URL => "opening web pages",
        _ => "something else",
    }
}

fn caps(p: Permissions) -> String {
    let v: Vec<&str> = p.each().map(cap).collect();
    if v.is_empty() {
        "nothing".to_owned()
    } else {
        v.join(", ")
    }
}

fn path(p: Path) -> &'static str {
    match p {
        Path::Relay => "through the support service",
        Path::DirectTcp => "directly (TCP)",
        Path::DirectUdp => "directly (UDP)",
    }
}

fn refusal(r: Refusal) -> &'static str {
    match r {
        Refusal::Expired => {
            "This support session has expired. Please ask your technician for a new one."
        }
        Refusal::Ended => {
            "This support session has already ended. Please ask your technician for a new one."
        }
        Refusal::Unknown => {
            "The support service does not know this session. Please ask your technician for a new one."
        }
        Refusal::AlreadyRunning => {
            "This support program is already running for this session (maybe in another window)."
        }
        Refusal::NotAuthorized => {
            "The support service could not confirm that this program belongs to your session. Please ask your technician for a new one."
        }
        Refusal::Other => {
            "The support service cannot take this session right now. Please try again in a few minutes, or call your technician."
        }
    }
}

pub(super) fn lines(line: &Line, window: bool) -> Vec<String> {
    let one = |s: String| vec![s];
    match line {
        // A window has buttons for these.
        Line::TerminalHelp { .. } | Line::WithdrawHelp if window => Vec::new(),
        Line::CodeHint if window => one(label(&Label::CodeHint)),
        Line::Greeting {
            operator,
            technician,
            label,
            offered,
        } => {
            let about = if label.is_empty() {
                String::new()
            } else {
                format!(" with \"{label}\"")
            };
            let mut v = vec![
                format!("Remote support from {operator}"),
                if technician.is_empty() {
                    format!("The next free technician will help you{about}.")
                } else {
                    format!("Technician {technician} would like to help you{about}.")
                },
            ];
            v.push(if offered.is_empty() {
                "They can only chat with you.".to_owned()
            } else {
                format!(
                    "They can chat with you. They may also ask for: {} — each only if you say yes.",
                    caps(*offered)
                )
            });
            v
        }
        Line::Unverified => one(
            "Warning: the publisher of this program cannot be verified. Only continue if you expected it from your technician."
                .into(),
        ),
        Line::TerminalHelp { work } => {
            let mut v = Vec::new();
            if *work {
                v.push("Type /grants to see what you allowed, /withdraw to take it back, /stop to stop what runs.".to_owned());
            }
            v.push("Type a message and press Enter to chat; type /end or press Ctrl-C to end at any time.".to_owned());
            v
        }
        Line::Waiting { technician } if technician.is_empty() => {
            one("Waiting for the next free technician…".into())
        }
        Line::Waiting { technician } => one(format!("Waiting for {technician} to connect…")),
        Line::WaitingAgain => one("Reconnected; still waiting for your technician…".into()),
        Line::Retrying { trouble, secs } => one(format!(
            "{}; trying again in {secs} s…",
            match trouble {
                Trouble::Unreachable =>
                    "Cannot reach the support service yet (is this computer connected to the internet?)",
                Trouble::Interrupted => "The connection to the support service was interrupted",
                Trouble::SecureSetup => "The secure connection to your technician could not be set up",
            }
        )),
        Line::Connected { technician, code } => {
            one(format!("Connected to {technician}. Verification code: {code}"))
        }
        Line::CodeHint => one("If your technician reads you a different code, type /end now.".into()),
        Line::Chat { technician, text } => one(format!("{technician}: {text}")),
        Line::NotSentYet => {
            one("(Your technician is not connected yet; your message was not sent.)".into())
        }
        Line::NothingYet => {
            one("Your technician is not connected yet; nothing is allowed or running.".into())
        }
        Line::Status(None) => one("Connection: waiting for your technician.".into()),
        Line::Status(Some(p)) => one(format!("Connection: {}.", path(*p))),
        Line::Direct {
            technician,
            path: p,
        } => one(format!("Now connected directly to {technician} ({}).", transport(*p))),
        Line::Reconnecting { technician } => one(typed(
            window,
            &format!("The connection was interrupted; {technician} is reconnecting…"),
            " (type /end to stop the session)",
        )),
        Line::HandedOver { from, to } => one(format!(
            "{from} has handed your session over to {to}. What you allowed {from} has \
             ended; {to} will ask you if they need anything. Waiting for {to}…"
        )),
        Line::TakenOver { technician } => {
            one(format!("{technician} is now connected and helping you."))
        }
        Line::Back {
            technician,
            restarted: true,
        } => one(format!("{technician} is back.")),
        Line::Back { technician, .. } => one(format!("Reconnected to {technician}.")),
        Line::TestStarted { technician, mib } => {
            one(format!("{technician} is testing the connection ({mib} MiB)…"))
        }
        Line::TestDone {
            technician,
            to_user,
            ok,
            mib,
            secs,
        } => {
            let way = if *to_user { "from" } else { "to" };
            one(if *ok {
                format!("Connection test {way} {technician}: {mib} MiB in {secs:.1} s.")
            } else {
                format!("Connection test {way} {technician} did not complete.")
            })
        }
        Line::WithdrawHelp => one(
            "Type /withdraw to take back every permission you gave, or /withdraw followed by one of: command-prompt, files, system-info."
                .into(),
        ),
        Line::Work(w) => work(w, window),
        Line::Ended(End::BeforeConnecting) => {
            one("You stopped before your technician connected.".into())
        }
        Line::Ended(End::Refused(r)) => one(refusal(*r).into()),
        Line::Ended(End::NotTheTechnician) => one(
            "The connection was stopped: the other side is not your technician (someone may be intercepting it). Please call your technician."
                .into(),
        ),
        Line::Ended(End::ConsoleRefused) => one(
            "Your technician's program refused this session. Please ask your technician for a new support program."
                .into(),
        ),
        Line::Ended(end) => one(format!(
            "Session ended: {}.",
            match end {
                End::ByYou => "you ended the session".to_owned(),
                End::ByTechnician { technician } => format!("{technician} ended the session"),
                End::NotRestored { technician } =>
                    format!("the connection to {technician} could not be restored"),
                End::Lost => "the connection to your technician was lost".to_owned(),
                _ => "something went wrong in this program".to_owned(),
            }
        )),
        Line::CannotStart(c) => one(match c {
            CannotStart::CannotReadItself => "This support program cannot read its own file. Please ask your technician for a new one.".to_owned(),
            CannotStart::Incomplete => "This support program is incomplete: it was not prepared for a support session, or the download was cut short. Please ask your technician to send it again.".to_owned(),
            CannotStart::Tampered => "This support program has been changed since it was issued, so it is not safe to run. Please ask your technician for a new one.".to_owned(),
            CannotStart::Expired(at) => format!("This support session expired on {at}. Please ask your technician for a new one."),
            CannotStart::Misconfigured => "This support program was not built correctly and cannot run. Please tell your technician.".to_owned(),
            CannotStart::BadOption(o) => format!("The start option {o} is not valid; start the program without it."),
            CannotStart::NoResources => "This computer could not start the support program (it may be short of memory). Please close other programs and try again.".to_owned(),
        }),
        Line::Removed(true) => one("This support program has removed itself.".into()),
        Line::Removed(false) => {
            one("This support program could not remove itself; you may delete it.".into())
        }
        Line::Verify {
            operator,
            technician,
            session,
            label,
            expires,
            offered,
            gateways,
            verified,
        } => {
            let mut v = vec![
                format!("company:     {operator}"),
                format!("technician:  {technician}"),
                format!("session:     {session}"),
            ];
            if !label.is_empty() {
                v.push(format!("label:       {label}"));
            }
            v.push(format!("expires:     {expires}"));
            v.push(format!("may ask for: {}", caps(*offered)));
            v.push(format!("service:     {}", gateways.join(", ")));
            v.push(if *verified {
                "publisher:   verified".to_owned()
            } else {
                "publisher:   NOT VERIFIED".to_owned()
            });
            v
        }
    }
}

fn question(q: &Question, window: bool) -> Vec<String> {
    let who = if q.who.company.is_empty() {
        q.who.technician.clone()
    } else {
        format!("{} ({})", q.who.technician, q.who.company)
    };
    let mut v = Vec::new();
    if q.whole_session {
        v.push(format!(
            "{who} asks for these permissions for the rest of this session:"
        ));
        for c in q.caps.each() {
            v.push(format!("  - {}: {}", cap(c), meaning(c, q)));
        }
    } else {
        let what = match q.caps {
            Permissions::RUN_COMMAND => "use a command prompt on this computer".to_owned(),
            Permissions::FILE_TO_USER => "send you files".to_owned(),
            Permissions::FILE_FROM_USER => format!(
                "see and copy the files in the folder {}",
                q.folder.as_deref().unwrap_or("")
            ),
            Permissions::SYSTEM_INFO => "read information about this computer".to_owned(),
            Permissions::OPEN_URL => format!(
                "open this web page in your browser: {}",
                q.url.as_deref().unwrap_or("")
            ),
            _ => "do something on this computer".to_owned(),
        };
        v.push(format!("{who} asks to {what}."));
        v.push(meaning(q.caps, q));
    }
    v.push(if window {
        format!("No answer within {} seconds means no.", q.timeout_secs)
    } else {
        format!(
            "Allow it? Type yes or no and press Enter. No answer within {} seconds means no.",
            q.timeout_secs
        )
    });
    v
}

fn meaning(c: Permissions, q: &Question) -> String {
    match c {
        Permissions::RUN_COMMAND => "The technician will be able to type commands on this computer as you, and see what they print.".to_owned(),
        Permissions::FILE_TO_USER => format!("Files will be saved in {}; nothing there is replaced.", q.downloads),
        Permissions::FILE_FROM_USER if q.folder.is_some() => "The technician will be able to see the files in this folder and its subfolders, and copy them.".to_owned(),
        Permissions::FILE_FROM_USER => "The technician will be able to see and copy any file you can open.".to_owned(),
        Permissions::SYSTEM_INFO => "For example the operating system, memory, disks, network addresses and running programs.".to_owned(),
        Permissions::OPEN_URL => "Only allow it if you trust this address.".to_owned(),
        _ => String::new(),
    }
}

fn activity(a: &Activity) -> String {
    match a {
        Activity::Shell => "a command prompt".to_owned(),
        Activity::Command => "a command".to_owned(),
        Activity::Copying(n) => format!("copying {n} to the technician"),
        Activity::Receiving(n) => format!("receiving {n}"),
        Activity::Waiting(n) => format!("{n} more files waiting"),
    }
}

fn overview(o: &Overview, window: bool) -> Vec<String> {
    let mut v = vec![
        format!(
            "Your technician's company allows them to ask for: {}.",
            caps(o.allowed)
        ),
        format!("You have allowed: {}.", caps(o.granted)),
    ];
    if !o.folders.is_empty() {
        v.push(format!(
            "Folders the technician may copy from: {}.",
            o.folders.join(", ")
        ));
    }
    v.push(if o.running.is_empty() {
        "Nothing is running.".to_owned()
    } else {
        let r: Vec<String> = o.running.iter().map(activity).collect();
        typed(
            window,
            &format!("Running now: {}.", r.join("; ")),
            " Type /stop to stop it.",
        )
    });
    v
}

fn work(w: &ToUser, window: bool) -> Vec<String> {
    let one = |s: String| vec![s];
    match w {
        ToUser::Ask(q) => question(q, window),
        ToUser::QuestionWithdrawn => {
            one("The technician's question was withdrawn: their program restarted.".into())
        }
        ToUser::Allowed { briefly: true } => one("You allowed it.".into()),
        ToUser::Allowed { briefly: false } => one(if window {
            "You allowed it. You can take it back, or end the session, at any time.".into()
        } else {
            "You allowed it. Type /withdraw to take it back, or /end to end the session, at any time.".into()
        }),
        ToUser::Refused => one("You refused it.".into()),
        ToUser::TimedOut { secs } => one(format!(
            "No answer within {secs} seconds: the request was refused."
        )),
        ToUser::StoppedEverything => {
            one("Everything the technician had running on this computer was stopped.".into())
        }
        ToUser::Listed { folder } => one(format!(
            "The technician looked at the list of files in {folder}."
        )),
        ToUser::Copying { path, files } => one(typed(
            window,
            &format!(
                "Copying {path} ({files} file{}) to the technician.",
                if *files == 1 { "" } else { "s" }
            ),
            " Type /stop to stop it.",
        )),
        ToUser::ReadSystemInfo => {
            one("The technician read this computer's system information.".into())
        }
        ToUser::OpenedPage { url } => one(format!("Opened {url} in your browser.")),
        ToUser::PageFailed => one("The web page could not be opened.".into()),
        ToUser::Receiving {
            name,
            size: n,
            into,
        } => one(format!(
            "Receiving {name} ({}) from the technician into {into}.",
            size(*n)
        )),
        ToUser::ShellOpened => one(typed(
            window,
            "The technician opened a command prompt on this computer.",
            " Type /stop to close it.",
        )),
        ToUser::CommandRunning { line } => one(format!(
            "The technician is running a command on this computer: {line}"
        )),
        ToUser::ShellClosed => one("The technician's command prompt was closed.".into()),
        ToUser::Progress(p) => {
            let eta = p
                .eta_secs
                .map_or_else(String::new, |s| format!(", {s:.0} s left"));
            one(format!(
                "{} {}: {}% ({} of {}, {}/s{eta})",
                if p.outgoing { "Copying" } else { "Receiving" },
                p.name,
                percent(p.bytes, p.size),
                size(p.bytes),
                size(p.size),
                size(p.rate as u64)
            ))
        }
        ToUser::Saved { path, .. } => one(format!("Saved {path}.")),
        ToUser::ReceiveFailed { name, detail, .. } => {
            one(format!("Receiving {name} did not complete: {detail}"))
        }
        ToUser::Copied { name, .. } => one(format!("Copied {name} to the technician.")),
        ToUser::CopyFailed { name, detail, .. } => one(format!(
            "Copying {name} to the technician did not complete: {detail}"
        )),
        ToUser::Withdrew { taken } if taken.is_empty() => {
            one("Nothing was allowed; nothing to take back.".into())
        }
        ToUser::Withdrew { taken } => one(format!("You took back: {}.", caps(*taken))),
        ToUser::Overview(o) => overview(o, window),
        ToUser::State(_) => Vec::new(),
    }
}

/// `s`, and in a terminal the instruction `hint` after it (a window has a
/// button instead).
fn typed(window: bool, s: &str, hint: &str) -> String {
    if window {
        s.to_owned()
    } else {
        format!("{s}{hint}")
    }
}

pub(super) fn label(l: &Label) -> String {
    match l {
        Label::Title => "Remote support".into(),
        Label::Looking => "Looking for the support server…".into(),
        Label::ConnectedVia { technician, path } => match path {
            Path::Relay => format!("Connected to {technician} through the support server."),
            Path::DirectTcp | Path::DirectUdp => format!("Connected directly to {technician}."),
        },
        Label::CodeTitle => "Verification code".into(),
        Label::CodeHint => {
            "Your technician sees the same code. If they read you a different one, press “End the session” now."
                .into()
        }
        Label::QuestionTitle => "Your technician asks for permission".into(),
        Label::Allow => "Allow".into(),
        Label::Deny => "Don't allow".into(),
        Label::Messages => "Messages".into(),
        Label::You => "You".into(),
        Label::YourMessage => "Your message".into(),
        Label::Send => "Send".into(),
        Label::NothingToSendYet => "You can write once your technician is connected.".into(),
        Label::Granted(p) => format!("You have allowed: {}.", caps(*p)),
        Label::TakeBack => "Take back all permissions".into(),
        Label::Running(r) if r.is_empty() => "Nothing is running on this computer.".into(),
        Label::Running(r) => {
            let r: Vec<String> = r.iter().map(activity).collect();
            format!("Running on this computer now: {}.", r.join("; "))
        }
        Label::StopRunning => "Stop it".into(),
        Label::Files => "Files".into(),
        Label::EndSession => "End the session".into(),
        Label::AskEnd => {
            "End the support session? Your technician will be disconnected.".into()
        }
        Label::AskEndYes => "Yes, end it".into(),
        Label::AskEndNo => "No, go on".into(),
        Label::Ending => "Ending the session…".into(),
        Label::Close => "Close".into(),
    }
}
