//! The technician's terminal while the console owns it: raw mode (every
//! key arrives as typed, Ctrl-C included), for the full-screen console
//! also the alternate screen — and the way back. [`Screen`] restores the
//! terminal when dropped, and [`restore_on_panic`] does it before a panic's
//! message is printed, so no exit path leaves the terminal raw.

use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// The key that gives the terminal back from a remote shell: Ctrl-] (as
/// telnet's), which no shell needs.
pub const LEAVE_KEY: u8 = 0x1d;

/// Whether the alternate screen is in use (for the panic hook).
static FULL: AtomicBool = AtomicBool::new(false);
/// Whether the terminal is ours (raw) right now.
static OWNED: AtomicBool = AtomicBool::new(false);

/// The terminal in raw mode (and, if `full`, on the alternate screen with
/// bracketed paste) until dropped.
#[derive(Debug)]
pub struct Screen(());

impl Screen {
    /// Takes the terminal.
    pub fn enter(full: bool) -> std::io::Result<Self> {
        restore_on_panic();
        enable_raw_mode()?;
        OWNED.store(true, Ordering::SeqCst);
        if full {
            FULL.store(true, Ordering::SeqCst);
            let mut out = std::io::stdout();
            crossterm::execute!(out, EnterAlternateScreen, EnableBracketedPaste)?;
        }
        Ok(Self(()))
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Gives the terminal back: the normal screen, cooked mode, a visible
/// cursor, the title cleared. Harmless when it is not ours.
pub fn restore() {
    if !OWNED.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut out = std::io::stdout();
    if FULL.swap(false, Ordering::SeqCst) {
        let _ = crossterm::execute!(
            out,
            DisableBracketedPaste,
            LeaveAlternateScreen,
            crossterm::cursor::Show,
            crossterm::terminal::SetTitle("")
        );
    }
    let _ = disable_raw_mode();
    let _ = out.flush();
}

/// Installs (once) a panic hook that restores the terminal first, so the
/// panic's message is readable and the shell is usable after it.
pub fn restore_on_panic() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

/// The terminal's size as (columns, rows), if there is one.
pub fn size() -> Option<(u16, u16)> {
    crossterm::terminal::size()
        .ok()
        .filter(|(c, r)| *c > 0 && *r > 0)
}

/// Keys, pastes and resizes from the terminal, read on a thread of their
/// own (reading blocks) and handed over on a channel.
pub fn events() -> tokio::sync::mpsc::UnboundedReceiver<crossterm::event::Event> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("terminal-input".into())
        .spawn(move || {
            while let Ok(ev) = crossterm::event::read() {
                if tx.send(ev).is_err() {
                    break;
                }
            }
        })
        .ok();
    rx
}

/// SIGTERM and SIGHUP (the terminal closed): the console ends its
/// sessions and gives the terminal back. Never, where there are none.
pub async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            tokio::select! {
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
            return;
        }
    }
    std::future::pending::<()>().await
}
