//! A login shell in a pseudo-terminal, for the technician.
//!
//! The shell runs as the applet's own user — the end user who started it —
//! and never higher: no sudo, no su, no setuid. It is the user's own login
//! shell, so the technician sees what the user would see in a terminal.
//!
//! The shell leads a session of its own (the PTY is its controlling
//! terminal), so [`Shell::kill`] can end everything it started: its
//! process group, and every process left in its session (background jobs
//! sit in process groups of their own and would survive a group kill).
//! Dropping a [`Shell`] kills it the same way: nothing the technician
//! started outlives the shell.
//!
//! Only on Unix; elsewhere [`Shell::spawn`] says so.

/// Most bytes [`ShellOutput::read`] returns at once.
#[cfg(unix)]
const CHUNK: usize = 64 * 1024;

/// Why a shell could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// No pseudo-terminal on this system (yet).
    #[error("a terminal is not available on this system")]
    Unsupported,
    /// The pseudo-terminal could not be opened or set up.
    #[error("could not open a terminal: {0}")]
    Terminal(#[source] std::io::Error),
    /// The shell program did not start.
    #[error("could not start the shell {shell}: {source}")]
    Start {
        /// The program.
        shell: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Keystrokes could not be passed on (the shell is gone).
    #[error("could not send keystrokes to the shell: {0}")]
    Write(#[source] std::io::Error),
    /// The terminal's size could not be changed.
    #[error("could not change the terminal's size: {0}")]
    Resize(#[source] std::io::Error),
}

#[cfg(unix)]
pub(crate) use unix::user_shell;
#[cfg(unix)]
pub use unix::{Shell, ShellOutput};

#[cfg(unix)]
mod unix {
    use super::{CHUNK, ShellError};
    use bytes::{Bytes, BytesMut};
    use pty_process::{OwnedReadPty, OwnedWritePty, Size};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::process::Child;

    /// A running login shell: the child and the PTY master's write half.
    #[derive(Debug)]
    pub struct Shell {
        child: Child,
        /// The shell's process id: also its process group and session id.
        pid: Option<u32>,
        pty: OwnedWritePty,
    }

    /// What the shell's terminal prints: the PTY master's read half.
    #[derive(Debug)]
    pub struct ShellOutput {
        pty: OwnedReadPty,
    }

    impl Shell {
        /// The user's login shell (`$SHELL`, else `/bin/sh`), started as a
        /// login shell (`argv[0]` is `-bash` style, which every Unix shell
        /// understands, unlike `-l`), in the user's home folder, with
        /// `TERM=xterm-256color` and a `cols` x `rows` window. Returns the
        /// shell and its output reader.
        pub async fn spawn(cols: u16, rows: u16) -> Result<(Shell, ShellOutput), ShellError> {
            let shell = user_shell();
            let name = shell.rsplit('/').next().unwrap_or("sh");
            let terminal = |e| ShellError::Terminal(io(e));
            let (pty, pts) = pty_process::open().map_err(terminal)?;
            pty.resize(size(cols, rows)).map_err(terminal)?;
            let mut command = pty_process::Command::new(&shell)
                .arg0(format!("-{name}"))
                .env("TERM", "xterm-256color");
            if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
                command = command.current_dir(home);
            }
            // Spawning makes the child a session leader with the PTY as its
            // controlling terminal, and closes our copy of the child's side
            // (so reads end with the shell's last process).
            let child = command.spawn(pts).map_err(|e| ShellError::Start {
                shell: shell.clone(),
                source: io(e),
            })?;
            let pid = child.id();
            let (read, write) = pty.into_split();
            Ok((
                Shell {
                    child,
                    pid,
                    pty: write,
                },
                ShellOutput { pty: read },
            ))
        }

        /// Keystrokes from the technician.
        pub async fn write(&mut self, data: &[u8]) -> Result<(), ShellError> {
            self.pty.write_all(data).await.map_err(ShellError::Write)
        }

        /// The technician's window changed size (the shell gets SIGWINCH).
        pub fn resize(&mut self, cols: u16, rows: u16) -> Result<(), ShellError> {
            self.pty
                .resize(size(cols, rows))
                .map_err(|e| ShellError::Resize(io(e)))
        }

        /// Ends it at once: SIGKILL to the shell's process group, then to
        /// every process still in its session (background jobs).
        pub fn kill(&mut self) {
            let Some(pid) = self.pid else { return };
            crate::command::kill_group(pid);
            kill_session(pid);
        }

        /// Waits for the shell to exit: `Some(code)` if it exited, `None`
        /// if a signal killed it.
        pub async fn wait(&mut self) -> Option<i32> {
            self.child.wait().await.ok().and_then(|s| s.code())
        }
    }

    impl Drop for Shell {
        fn drop(&mut self) {
            self.kill();
        }
    }

    impl ShellOutput {
        /// The next bytes the terminal printed (at most 64 KiB), or `None`
        /// at the end. On Linux, reading the master once every process has
        /// closed the terminal fails with EIO: that is the end too.
        pub async fn read(&mut self) -> Option<Bytes> {
            let mut buf = BytesMut::with_capacity(CHUNK);
            match self.pty.read_buf(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(_) => Some(buf.freeze()),
            }
        }
    }

    /// `$SHELL` when it names a program by absolute path, else `/bin/sh`.
    pub(crate) fn user_shell() -> String {
        std::env::var("SHELL")
            .ok()
            .filter(|s| s.starts_with('/'))
            .unwrap_or_else(|| "/bin/sh".to_owned())
    }

    fn size(cols: u16, rows: u16) -> Size {
        Size::new(rows.max(1), cols.max(1))
    }

    /// pty-process's error as the I/O error it mostly is.
    fn io(e: pty_process::Error) -> std::io::Error {
        match e {
            pty_process::Error::Io(e) => e,
            pty_process::Error::Rustix(e) => e.into(),
            e => std::io::Error::other(e),
        }
    }

    /// SIGKILL to every process whose session is `sid`. The number cannot
    /// be another session's while any process of ours still carries it.
    fn kill_session(sid: u32) {
        use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, Signal, System};
        let mut sys = System::new();
        sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing().without_tasks(),
        );
        for p in sys.processes().values() {
            if p.session_id().map(|s| s.as_u32()) == Some(sid) {
                p.kill_with(Signal::Kill);
            }
        }
    }
}

/// Elsewhere: no pseudo-terminal yet.
#[cfg(not(unix))]
mod elsewhere {
    use super::ShellError;
    use bytes::Bytes;

    /// A running login shell (never, here).
    #[derive(Debug)]
    pub struct Shell(());

    /// What the shell's terminal prints (nothing, here).
    #[derive(Debug)]
    pub struct ShellOutput(());

    impl Shell {
        /// Always [`ShellError::Unsupported`].
        pub async fn spawn(_cols: u16, _rows: u16) -> Result<(Shell, ShellOutput), ShellError> {
            Err(ShellError::Unsupported)
        }
        /// Never called.
        pub async fn write(&mut self, _data: &[u8]) -> Result<(), ShellError> {
            Err(ShellError::Unsupported)
        }
        /// Never called.
        pub fn resize(&mut self, _cols: u16, _rows: u16) -> Result<(), ShellError> {
            Err(ShellError::Unsupported)
        }
        /// Never called.
        pub fn kill(&mut self) {}
        /// Never called.
        pub async fn wait(&mut self) -> Option<i32> {
            None
        }
    }

    impl ShellOutput {
        /// Never called.
        pub async fn read(&mut self) -> Option<Bytes> {
            None
        }
    }
}

#[cfg(not(unix))]
pub use elsewhere::{Shell, ShellOutput};

#[cfg(all(test, unix))]
mod tests {
    use super::unix::user_shell;
    use super::*;
    use std::time::Duration;

    /// Reads until `needle` appears in everything read so far (which is
    /// returned), failing after 10 s or at the end of the output.
    async fn read_until(out: &mut ShellOutput, needle: &str) -> String {
        let mut seen = String::new();
        let found = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(b) = out.read().await {
                assert!(b.len() <= CHUNK);
                seen.push_str(&String::from_utf8_lossy(&b));
                if seen.contains(needle) {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(found, Ok(true), "{needle:?} never came; saw {seen:?}");
        seen
    }

    #[tokio::test]
    async fn runs_commands_and_exits_with_their_status() {
        let (mut shell, mut out) = Shell::spawn(80, 24).await.unwrap();
        // The echoed keystrokes say `$((6*7))`: only the shell says 42.
        shell.write(b"echo hello-$((6*7))\n").await.unwrap();
        read_until(&mut out, "hello-42").await;
        // A login shell (`-bash`), at home, with our terminal type.
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map_or_else(|| std::env::current_dir().unwrap(), Into::into);
        let home = std::fs::canonicalize(home).unwrap();
        let shell_name = user_shell().rsplit('/').next().unwrap().to_owned();
        shell
            .write(b"echo \"at:$(pwd -P):$TERM:$0.\"\n")
            .await
            .unwrap();
        let expected = format!("at:{}:xterm-256color:-{shell_name}.", home.display());
        read_until(&mut out, &expected).await;
        shell.write(b"exit 3\n").await.unwrap();
        let code = tokio::time::timeout(Duration::from_secs(10), shell.wait()).await;
        assert_eq!(code, Ok(Some(3)));
        // The terminal's end is the end of the output.
        let end = tokio::time::timeout(Duration::from_secs(10), async {
            while out.read().await.is_some() {}
        })
        .await;
        assert!(end.is_ok());
    }

    #[tokio::test]
    async fn resize_reaches_the_terminal() {
        let (mut shell, mut out) = Shell::spawn(80, 24).await.unwrap();
        shell
            .write(b"stty size; echo size-$((1+1))\n")
            .await
            .unwrap();
        let seen = read_until(&mut out, "size-2").await;
        assert!(seen.contains("24 80"), "{seen:?}");
        shell.resize(132, 43).unwrap();
        shell
            .write(b"stty size; echo size-$((2+2))\n")
            .await
            .unwrap();
        let seen = read_until(&mut out, "size-4").await;
        assert!(seen.contains("43 132"), "{seen:?}");
    }

    #[tokio::test]
    async fn kill_ends_the_shell_and_what_it_started() {
        let (mut shell, mut out) = Shell::spawn(80, 24).await.unwrap();
        // A background job (its own process group) and a foreground one.
        shell
            .write(b"sleep 1000 & echo bg=$! sid=$$ end-$((1+1))\nsleep 1001\n")
            .await
            .unwrap();
        let seen = read_until(&mut out, "end-2").await;
        let number = |key: &str| -> u32 {
            let at = seen.rfind(key).unwrap() + key.len();
            let digits: String = seen[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().unwrap()
        };
        let (bg, sid) = (number("bg="), number("sid="));
        assert!(alive_in_session(sid).contains(&bg));
        // Let the foreground sleep start too.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(alive_in_session(sid).len() >= 3);

        shell.kill();
        let code = tokio::time::timeout(Duration::from_secs(5), shell.wait()).await;
        assert_eq!(code, Ok(None));
        // SIGKILL is delivered at once, but the reaper (the container's
        // init) may take a moment; zombies do not count.
        let mut left = alive_in_session(sid);
        for _ in 0..50 {
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            left = alive_in_session(sid);
        }
        assert_eq!(left, Vec::<u32>::new());
    }

    /// Live (not zombie) processes of session `sid`.
    fn alive_in_session(sid: u32) -> Vec<u32> {
        use sysinfo::{ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System};
        let mut sys = System::new();
        sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing().without_tasks(),
        );
        sys.processes()
            .values()
            .filter(|p| p.status() != ProcessStatus::Zombie)
            .filter(|p| p.session_id().map(|s| s.as_u32()) == Some(sid))
            .map(|p| p.pid().as_u32())
            .collect()
    }
}
