//! The technician's terminal while a remote shell has it: raw mode (every
//! key goes to the shell as typed, Ctrl-C included), the window's size,
//! and the way back — the terminal's settings are restored when the
//! [`RawMode`] guard goes, on every path out (a panic unwinds through it).

/// The key that gives the terminal back and closes the remote shell:
/// Ctrl-] (as telnet's), which no shell needs.
pub const LEAVE_KEY: u8 = 0x1d;

/// The terminal in raw mode until dropped.
#[derive(Debug)]
pub struct RawMode {
    #[cfg(unix)]
    saved: rustix::termios::Termios,
}

impl RawMode {
    /// Puts standard input's terminal in raw mode; `None` if it is not a
    /// terminal (or not on this platform).
    pub fn enter() -> Option<Self> {
        #[cfg(unix)]
        {
            use rustix::termios::{OptionalActions, tcgetattr, tcsetattr};
            let stdin = std::io::stdin();
            let saved = tcgetattr(&stdin).ok()?;
            let mut raw = saved.clone();
            raw.make_raw();
            tcsetattr(&stdin, OptionalActions::Now, &raw).ok()?;
            Some(Self { saved })
        }
        #[cfg(not(unix))]
        None
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                &self.saved,
            );
        }
    }
}

/// The terminal's size as (columns, rows), if standard output is one.
pub fn size() -> Option<(u16, u16)> {
    #[cfg(unix)]
    {
        let ws = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
        (ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
    }
    #[cfg(not(unix))]
    None
}
