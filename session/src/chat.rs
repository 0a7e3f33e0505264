//! The live session loop both ends run once the channel is established:
//! chat both ways, keepalive pings with round-trip times, and a clean end.

use crate::channel::ChannelError;
use crate::secure::Established;
use lifeline_protocol::e2e::{EndedBy, Frame};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// How often each end pings.
pub const PING_INTERVAL: Duration = Duration::from_secs(10);
/// Silence after which the peer counts as gone.
pub const DEAD_AFTER: Duration = Duration::from_secs(35);

/// What the local user asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send a chat line.
    Say(String),
    /// End the session with a reason.
    End(String),
}

/// What happened on the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer sent a chat line.
    Chat(String),
    /// A round trip was measured.
    Rtt(Duration),
}

/// How the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Who ended it.
    pub by: EndedBy,
    /// Why.
    pub reason: String,
    /// Whether we ended it (rather than the peer).
    pub local: bool,
}

/// Runs the session until either end ends it or the connection is lost.
/// `me` says who we are, for the End frame we send.
pub async fn run<S>(
    est: Established<S>,
    me: EndedBy,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
) -> Result<Outcome, ChannelError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Established {
        mut reader,
        mut writer,
        ..
    } = est;
    let start = Instant::now();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let mut commands_open = true;
    loop {
        tokio::select! {
            frame = reader.read_frame() => {
                last_heard = Instant::now();
                match frame? {
                    Some(Frame::Chat { text }) => { let _ = events.send(Event::Chat(text)).await; }
                    Some(Frame::Ping(v)) => writer.write_frame(&Frame::Pong(v)).await?,
                    Some(Frame::Pong(v)) => {
                        let sent = Duration::from_micros(v);
                        if let Some(rtt) = start.elapsed().checked_sub(sent) {
                            let _ = events.send(Event::Rtt(rtt)).await;
                        }
                    }
                    Some(Frame::End { by, reason }) => {
                        let _ = writer.shutdown().await;
                        return Ok(Outcome { by, reason, local: false });
                    }
                    Some(Frame::Proof { .. } | Frame::Accepted) => {
                        return Err(ChannelError::Protocol(lifeline_protocol::DecodeError::invalid(
                            "session frame", "handshake frame after setup")));
                    }
                    None => return Err(ChannelError::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof, "the other side disconnected without ending the session"))),
                }
            }
            cmd = commands.recv(), if commands_open => match cmd {
                Some(Command::Say(text)) => writer.write_frame(&Frame::Chat { text }).await?,
                Some(Command::End(reason)) => {
                    writer.write_frame(&Frame::End { by: me, reason: reason.clone() }).await?;
                    let _ = writer.shutdown().await;
                    return Ok(Outcome { by: me, reason, local: true });
                }
                // The local input closed (e.g. stdin EOF in batch mode):
                // keep the session until the peer ends it.
                None => commands_open = false,
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > DEAD_AFTER {
                    return Err(ChannelError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut, "the other side stopped answering")));
                }
                let v = start.elapsed().as_micros() as u64;
                writer.write_frame(&Frame::Ping(v)).await?;
            }
        }
    }
}
