//! Line mode: `tech-console connect` on a plain terminal. Messages scroll
//! above a prompt; the line being typed stays below them, untouched by
//! what arrives (the terminal is raw, and every message is printed above
//! the prompt, which is drawn again after it). Up and Down recall earlier
//! lines; commands are exact ([`crate::typed`]). `/shell` hands the
//! keyboard to the end user's command prompt until Ctrl-] or its end.

use crate::connect::{PathStatus, describe};
use crate::drive::{Controls, Update};
use crate::editor::{Edited, Editor};
use crate::profile::Profile;
use crate::terminal::{LEAVE_KEY, Screen};
use crate::typed::{HELP, Typed};
use crossterm::event::Event as TermEvent;
use lifeline_protocol::SessionGuid;
use lifeline_remote::console::Request;
use lifeline_session::live::Command;
use std::io::Write;
use tokio::sync::mpsc;

const PROMPT: &str = "> ";

/// The screen of line mode: what is printed goes above the prompt.
struct Lines {
    editor: Editor,
    /// Keys go to the remote shell.
    shell: bool,
}

impl Lines {
    /// Prints `text` above the prompt (neutralized: it may come from the
    /// other end).
    fn say(&self, text: &str) {
        let text = lifeline_protocol::text::neutralize(text);
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r\x1b[2K");
        for l in text.lines() {
            let _ = write!(out, "{l}\r\n");
        }
        if !self.shell {
            self.prompt_into(&mut out);
        }
        let _ = out.flush();
    }

    fn prompt(&self) {
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r\x1b[2K");
        self.prompt_into(&mut out);
        let _ = out.flush();
    }

    fn prompt_into(&self, out: &mut impl Write) {
        let width = crate::terminal::size().map_or(80, |(c, _)| c as usize);
        let (shown, at) = self.editor.visible(width.saturating_sub(PROMPT.len() + 1));
        let back = shown.chars().count() - at;
        let _ = write!(out, "{PROMPT}{shown}");
        if back > 0 {
            let _ = write!(out, "\x1b[{back}D");
        }
    }

    /// A remote shell's output, as it is.
    fn raw(&self, bytes: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }
}

/// Runs line mode until the session ends. Returns the exit code.
pub async fn run(
    profile: &Profile,
    controls: Controls,
    mut updates: mpsc::UnboundedReceiver<Update>,
) -> anyhow::Result<i32> {
    let screen = Screen::enter(false)?;
    let mut keys = crate::terminal::events();
    let mut lines = Lines {
        editor: Editor::new(),
        shell: false,
    };
    let mut status = PathStatus::default();
    let mut guid: Option<SessionGuid> = None;
    let mut ready = false;
    let terminated = crate::terminal::terminated();
    tokio::pin!(terminated);
    lines.prompt();
    let code = loop {
        tokio::select! {
            u = updates.recv() => {
                let Some(u) = u else { break 1 };
                if let Update::Found { guid: g, .. } = &u {
                    guid = Some(*g);
                }
                if let Update::Secured { .. } = &u {
                    ready = true;
                }
                if let Update::Work(n) = &u {
                    let shell = n.json["what"] == "shell";
                    if let Some(raw) = &n.raw {
                        lines.raw(raw);
                        continue;
                    }
                    if shell && (n.json["event"] == "exited" || n.json["event"] == "refused") && lines.shell {
                        lines.shell = false;
                        lines.say(&format!("\r\n{}\n(back to the chat)", n.human));
                        continue;
                    }
                }
                if let Some(said) = describe(&u, &mut status, controls.traffic.get())
                    && let Some(human) = said.human
                {
                    lines.say(&human);
                }
                match u {
                    Update::Ended { clean, .. } => break if clean { 0 } else { 1 },
                    Update::Failed(_) => break 1,
                    Update::Secured { .. } => lines.say(
                        "type to chat; /help lists the commands; /end ends the session",
                    ),
                    _ => {}
                }
            }
            ev = keys.recv() => {
                let Some(ev) = ev else { continue };
                if lines.shell {
                    shell_key(&mut lines, &controls, ev);
                    continue;
                }
                let key = match ev {
                    TermEvent::Key(k) => k,
                    TermEvent::Paste(text) => {
                        lines.editor.paste(&text);
                        lines.prompt();
                        continue;
                    }
                    _ => {
                        lines.prompt();
                        continue;
                    }
                };
                match lines.editor.key(key) {
                    Edited::Submit(line) => {
                        lines.say(&format!("{PROMPT}{line}"));
                        typed(&mut lines, &controls, profile, guid, ready, &status, &line);
                    }
                    Edited::EndOfInput => lines.say(
                        "(Ctrl-D does not end the session here: /end does)",
                    ),
                    Edited::Interrupt(false) => lines.say(
                        "(Ctrl-C does not end the session here: /end does)",
                    ),
                    _ => lines.prompt(),
                }
            }
            () = &mut terminated => {
                controls.command(Command::End("the technician's console was closed".into()));
                lines.say("closing: ending the session…");
                // Wait (briefly) for the end to reach the other side.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                    while let Some(u) = updates.recv().await {
                        if matches!(u, Update::Ended { .. } | Update::Failed(_)) {
                            break;
                        }
                    }
                }).await;
                break 1;
            }
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "\r\x1b[2K");
    let _ = out.flush();
    drop(out);
    drop(screen);
    Ok(code)
}

/// While the remote shell has the keyboard.
fn shell_key(lines: &mut Lines, controls: &Controls, ev: TermEvent) {
    match ev {
        TermEvent::Key(k) => {
            let bytes = crate::keys::encode(&k);
            if bytes == [LEAVE_KEY] {
                controls.request(Request::Stop(0));
                lines.shell = false;
                lines.say("\r\n(back to the chat)");
            } else if !bytes.is_empty() {
                controls.request(Request::Keys(bytes.into()));
            }
        }
        TermEvent::Paste(text) => {
            controls.request(Request::Keys(text.into_bytes().into()));
        }
        TermEvent::Resize(cols, rows) => {
            controls.request(Request::Resize { cols, rows });
        }
        _ => {}
    }
}

/// A submitted line.
fn typed(
    lines: &mut Lines,
    controls: &Controls,
    profile: &Profile,
    guid: Option<SessionGuid>,
    ready: bool,
    status: &PathStatus,
    line: &str,
) {
    let parsed = match crate::typed::parse(line) {
        Ok(p) => p,
        Err(e) => return lines.say(&format!("error: {e}")),
    };
    let needs_session = !matches!(
        parsed,
        Typed::Nothing | Typed::Help | Typed::Note(_) | Typed::Close | Typed::End(_) | Typed::Quit
    );
    if needs_session && !ready {
        return lines.say("not connected yet: wait for the end user (/end gives up)");
    }
    match parsed {
        Typed::Nothing => {}
        Typed::Chat(text) => {
            controls.command(Command::Say(text));
        }
        Typed::End(reason) => {
            controls.command(Command::End(reason));
        }
        Typed::Quit => {
            controls.command(Command::End("the technician ended the session".into()));
        }
        Typed::Status => {
            lines.say(&format!(
                "path: {}",
                status.with_payload(controls.traffic.get())
            ));
        }
        Typed::Probe => {
            controls.command(Command::Probe);
        }
        Typed::Help => lines.say(HELP),
        Typed::Session(cmds) => {
            for c in cmds {
                controls.command(c);
            }
        }
        Typed::Shell => {
            let (cols, rows) = crate::terminal::size().unwrap_or((80, 24));
            controls.request(Request::Shell { cols, rows });
            lines
                .say("remote shell: asking the end user; Ctrl-] closes it and returns to the chat");
            lines.shell = true;
        }
        Typed::Work(r) => {
            controls.request(r);
        }
        Typed::Transfer(to) => {
            controls.hand_to(to);
        }
        Typed::Note(text) => match guid {
            Some(g) => match profile.add_note(&g, &note_line(&text)) {
                Ok(()) => lines.say("(noted)"),
                Err(e) => lines.say(&format!("error: the note was not saved: {e:#}")),
            },
            None => lines.say("not connected yet: the note has no session to go with"),
        },
        Typed::Close => lines.say("/close closes a tab in tech-console ui; /end ends this session"),
    }
}

/// A note as kept: its time, then the text.
pub fn note_line(text: &str) -> String {
    format!(
        "{}  {}",
        lifeline_protocol::time::rfc3339(lifeline_session::now_ms()),
        text
    )
}
