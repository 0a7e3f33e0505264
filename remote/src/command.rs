//! One command line, run by the user's shell without a terminal.
//!
//! `$SHELL -c <line>` (else `/bin/sh -c`; `cmd /C` on Windows), as the
//! applet's own user, stdin null. Its stdout and stderr share one pipe, so
//! the technician reads them interleaved exactly as the command wrote them,
//! like `2>&1` in a terminal.
//!
//! On Unix the command leads a process group of its own, so
//! [`Command::kill`] ends what it started too (a pipeline, a background
//! job), and never the applet. Dropping a [`Command`] kills it the same
//! way.

use bytes::{Bytes, BytesMut};
use lifeline_protocol::work::MAX_COMMAND;
use std::process::Stdio;
use tokio::io::AsyncReadExt;
use tokio::process::Child;

/// Most bytes [`CommandOutput::read`] returns at once.
const CHUNK: usize = 64 * 1024;

/// Why a command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Over [`MAX_COMMAND`].
    #[error("the command is longer than {MAX_COMMAND} bytes")]
    TooLong,
    /// The pipe for its output could not be made.
    #[error("could not collect the command's output: {0}")]
    Pipe(#[source] std::io::Error),
    /// The shell did not start.
    #[error("could not start the shell {shell}: {source}")]
    Start {
        /// The program.
        shell: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A running command.
#[derive(Debug)]
pub struct Command {
    child: Child,
    /// Its process id: also its process group's (Unix).
    #[cfg_attr(not(unix), allow(dead_code))]
    pid: Option<u32>,
}

/// The command's stdout and stderr, merged.
#[derive(Debug)]
pub struct CommandOutput {
    /// `None` once the end was read.
    pipe: Option<Pipe>,
}

impl Command {
    /// Starts `command_line` in the user's shell.
    pub fn spawn(command_line: &str) -> Result<(Command, CommandOutput), CommandError> {
        if command_line.len() > MAX_COMMAND {
            return Err(CommandError::TooLong);
        }
        let (reader, writer) = std::io::pipe().map_err(CommandError::Pipe)?;
        let stderr = writer.try_clone().map_err(CommandError::Pipe)?;
        let (shell, mut command) = shell_command(command_line);
        command.stdin(Stdio::null()).stdout(writer).stderr(stderr);
        #[cfg(unix)]
        command.process_group(0);
        let child = command
            .spawn()
            .map_err(|source| CommandError::Start { shell, source })?;
        // The builder holds our copies of the pipe's write end: while they
        // are open, the reader would never see the end.
        drop(command);
        let pid = child.id();
        let pipe = async_pipe(reader).map_err(CommandError::Pipe)?;
        Ok((Command { child, pid }, CommandOutput { pipe: Some(pipe) }))
    }

    /// Ends it at once: SIGKILL to its whole process group (Unix; on
    /// Windows, the shell alone).
    pub fn kill(&mut self) {
        #[cfg(unix)]
        if let Some(pid) = self.pid {
            kill_group(pid);
        }
        // The shell itself in any case (and the only way on Windows).
        let _ = self.child.start_kill();
    }

    /// Waits for it to exit: `Some(code)` if it exited, `None` if a signal
    /// killed it.
    pub async fn wait(&mut self) -> Option<i32> {
        self.child.wait().await.ok().and_then(|s| s.code())
    }
}

impl Drop for Command {
    fn drop(&mut self) {
        self.kill();
    }
}

impl CommandOutput {
    /// The next bytes of stdout and stderr, in the order written (at most
    /// 64 KiB), or `None` once every writer closed the pipe.
    pub async fn read(&mut self) -> Option<Bytes> {
        let pipe = self.pipe.as_mut()?;
        let mut buf = BytesMut::with_capacity(CHUNK);
        match pipe.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                self.pipe = None;
                None
            }
            Ok(_) => Some(buf.freeze()),
        }
    }
}

/// SIGKILL to process group `pid` (a command's or a shell's). Nothing to
/// do when it is gone already.
#[cfg(unix)]
pub(crate) fn kill_group(pid: u32) {
    use rustix::process::{Pid, Signal, kill_process_group};
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

/// The user's shell running `line`, and its name for errors.
#[cfg(unix)]
fn shell_command(line: &str) -> (String, tokio::process::Command) {
    let shell = crate::shell::user_shell();
    let mut command = tokio::process::Command::new(&shell);
    command.arg("-c").arg(line);
    (shell, command)
}

/// `cmd /C <line>`: the line is passed as it is, because cmd does not
/// undo the quoting other programs expect.
#[cfg(windows)]
fn shell_command(line: &str) -> (String, tokio::process::Command) {
    let mut command = tokio::process::Command::new("cmd");
    command.arg("/C").raw_arg(line);
    ("cmd".to_owned(), command)
}

#[cfg(unix)]
type Pipe = tokio::net::unix::pipe::Receiver;

/// The pipe's read end, read by tokio's reactor (no thread).
#[cfg(unix)]
fn async_pipe(reader: std::io::PipeReader) -> std::io::Result<Pipe> {
    Pipe::from_owned_fd(reader.into())
}

#[cfg(windows)]
type Pipe = tokio::fs::File;

/// The pipe's read end, read on tokio's blocking threads (tokio has no
/// anonymous pipes on Windows).
#[cfg(windows)]
fn async_pipe(reader: std::io::PipeReader) -> std::io::Result<Pipe> {
    let handle = std::os::windows::io::OwnedHandle::from(reader);
    Ok(tokio::fs::File::from_std(std::fs::File::from(handle)))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Everything the command printed, to the end (10 s at most).
    async fn read_all(out: &mut CommandOutput) -> String {
        let mut all = String::new();
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(b) = out.read().await {
                assert!(!b.is_empty() && b.len() <= CHUNK);
                all.push_str(&String::from_utf8_lossy(&b));
            }
        })
        .await;
        assert!(read.is_ok(), "no end of output; saw {all:?}");
        all
    }

    #[tokio::test]
    async fn output_of_both_streams_and_the_status() {
        let (mut command, mut out) = Command::spawn("echo out; echo err >&2; exit 5").unwrap();
        assert_eq!(read_all(&mut out).await, "out\nerr\n");
        assert_eq!(command.wait().await, Some(5));
        assert!(out.read().await.is_none());
    }

    #[tokio::test]
    async fn large_output_comes_in_bounded_chunks() {
        let (mut command, mut out) =
            Command::spawn("head -c 300000 /dev/zero | tr '\\0' x").unwrap();
        let all = read_all(&mut out).await;
        assert_eq!(all.len(), 300_000);
        assert!(all.bytes().all(|b| b == b'x'));
        assert_eq!(command.wait().await, Some(0));
    }

    #[tokio::test]
    async fn kill_ends_the_whole_group() {
        // The shell waits for two sleeps; one is its child, one a
        // background job's.
        let (mut command, mut out) = Command::spawn("sleep 100 & sleep 101; echo never").unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        command.kill();
        let code = tokio::time::timeout(Duration::from_secs(5), command.wait()).await;
        assert_eq!(code, Ok(None));
        // The pipe ends only when the last sleep holding it is gone.
        assert_eq!(read_all(&mut out).await, "");
    }

    #[test]
    fn refuses_an_overlong_line() {
        let line = "x".repeat(MAX_COMMAND + 1);
        assert!(matches!(Command::spawn(&line), Err(CommandError::TooLong)));
    }
}
