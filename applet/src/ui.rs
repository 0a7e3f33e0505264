//! What the end user reads: plain lines on stdout, so it works in any
//! terminal and can be read by a screen reader (and by tests), and the same
//! [`Line`]s in the window when there is one ([`crate::window`]).
//!
//! What is shown is a [`Line`], put into words in the end user's language
//! ([`crate::words`]) and printed by [`say`], which shows control and
//! format characters escaped ([`lifeline_protocol::text::neutralize`]):
//! much of what is printed — chat, the technician's and operator's names,
//! file names — was written by someone else, and the terminal must never
//! obey it.

use crate::words::{Lang, Line};
use lifeline_protocol::Permissions;
use lifeline_protocol::trailer::TrailerBody;
use lifeline_remote::to_user::ToUser;
use std::collections::HashMap;
use std::io::Write;
use std::sync::OnceLock;

/// The language of this run (chosen once, from the system).
pub fn lang() -> Lang {
    static LANG: OnceLock<Lang> = OnceLock::new();
    *LANG.get_or_init(crate::locale::lang)
}

/// Prints one line, neutralized, and flushes (stdout may be a pipe).
pub fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}",
        lifeline_protocol::text::neutralize(line.as_ref())
    );
    let _ = out.flush();
}

/// A window that shows lines too (see [`also_show_in`]).
type Window = Box<dyn Fn(&Line) + Send + Sync>;

static WINDOW: OnceLock<Window> = OnceLock::new();

/// From now on every line also goes to `window` (once per run).
pub fn also_show_in(window: impl Fn(&Line) + Send + Sync + 'static) {
    let _ = WINDOW.set(Box::new(window));
}

/// Shows `line` in the end user's language: on standard output always
/// (a transcript for a terminal, a log and tests), and in the window if
/// there is one.
pub fn show(line: &Line) {
    print(line);
    to_window(line);
}

/// Shows `line` on standard output only.
fn print(line: &Line) {
    for l in lang().lines(line) {
        say(l);
    }
}

/// Shows `line` in the window only (if there is one).
fn to_window(line: &Line) {
    if let Some(w) = WINDOW.get() {
        w(line);
    }
}

/// What the technician may ask for that this program can do (a
/// permission for something it does not have — seeing the screen,
/// restarting — is never offered).
pub fn offered(body: &TrailerBody) -> Permissions {
    body.permissions
        .capabilities()
        .without(Permissions::SCREEN_VIEW)
        .without(Permissions::REBOOT)
}

/// The greeting: who is asking to connect, and what they may do.
pub fn greet(body: &TrailerBody, development_build: bool) {
    show(&Line::Greeting {
        operator: body.operator_name.clone(),
        technician: body.technician_name.clone(),
        label: body.label.clone(),
        offered: offered(body),
    });
    if development_build {
        show(&Line::Unverified);
    }
    show(&Line::TerminalHelp {
        work: !offered(body).is_empty(),
    });
}

/// What the technician's work tells the end user: all of it to a window;
/// to the terminal a transfer's progress once per quarter (the screen
/// moves without scrolling away) and the live state not at all.
#[derive(Debug, Default)]
pub struct WorkLines {
    quarters: HashMap<u64, u64>,
}

impl WorkLines {
    /// Shows `w` in the window, and on the terminal if it should be.
    pub fn show(&mut self, w: ToUser) {
        let line = Line::Work(w);
        to_window(&line);
        let Line::Work(w) = &line else { return };
        match w {
            ToUser::Progress(p) => {
                let quarter = p.bytes.saturating_mul(4).checked_div(p.size).unwrap_or(4);
                let last = self.quarters.entry(p.id).or_insert(0);
                if quarter <= *last || quarter >= 4 {
                    return;
                }
                *last = quarter;
            }
            ToUser::Saved { id, .. }
            | ToUser::ReceiveFailed { id, .. }
            | ToUser::Copied { id, .. }
            | ToUser::CopyFailed { id, .. } => {
                self.quarters.remove(id);
            }
            _ => {}
        }
        print(&line);
    }
}
