//! The receiving side's disk work, off the session's runtime.
//!
//! Writing, hashing and above all the final `fsync` of a file take
//! milliseconds to seconds; done on the task that also carries keystrokes,
//! they stall a shell's echo for as long (measured: up to 0.45 s at the
//! end of each 256 MiB file). So every [`Receiver`] of one end lives on one
//! blocking thread that takes [`Job`]s in order and answers with
//! [`Done`]s. In order matters: a transfer that is abandoned and offered
//! again is prepared only after the old one let go of its partial copy.
//!
//! Flow control follows the disk: the bytes of a write are reported
//! consumed (the sender's window opens) only once they are written, so a
//! slow disk slows the sender instead of filling memory.

use super::Receiver;
use crate::flow::Outbound;
use bytes::Bytes;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;

/// Work for the disk thread, per transfer id.
#[derive(Debug)]
pub enum Job {
    /// Find the file's place below `root` and what a partial copy there
    /// holds ([`Receiver::prepare`], [`Receiver::partial`]).
    Prepare {
        /// The transfer.
        id: u64,
        /// The receiving folder.
        root: PathBuf,
        /// The path below it, as offered.
        path: Vec<String>,
        /// The announced size.
        size: u64,
    },
    /// The sender starts at `from` ([`Receiver::begin`]).
    Begin {
        /// The transfer.
        id: u64,
        /// Its first byte.
        from: u64,
    },
    /// Bytes that arrived on `channel` ([`Receiver::write`]).
    Write {
        /// The transfer.
        id: u64,
        /// Its channel, whose window opens by `data.len()` once written.
        channel: u32,
        /// The bytes.
        data: Bytes,
    },
    /// Everything arrived; check and save ([`Receiver::finish`]).
    Finish {
        /// The transfer.
        id: u64,
        /// The sender's SHA-256 of the whole file.
        sha256: String,
    },
    /// Stop, keeping the partial copy for a resume.
    Abandon {
        /// The transfer.
        id: u64,
    },
}

/// What the disk thread answers.
#[derive(Debug)]
pub enum Done {
    /// The answer to [`Job::Prepare`]: the bytes a partial copy holds and
    /// their SHA-256 (hex), or why the file cannot be received.
    Prepared {
        /// The transfer.
        id: u64,
        /// Offset and hash, or the reason.
        result: Result<(u64, String), String>,
    },
    /// A [`Job::Begin`] or [`Job::Write`] failed; the transfer is gone
    /// from the disk thread (its partial copy kept).
    Failed {
        /// The transfer.
        id: u64,
        /// What went wrong, in plain words.
        why: String,
    },
    /// The answer to [`Job::Finish`]: where it was saved, or why not.
    Finished {
        /// The transfer.
        id: u64,
        /// The saved path, or the reason.
        result: Result<PathBuf, String>,
    },
}

/// The disk thread of one end: dropping it ends the thread, which
/// abandons what it still holds (partial copies kept).
#[derive(Debug)]
pub struct Disk {
    jobs: mpsc::Sender<Job>,
}

impl Disk {
    /// Starts the thread (on the runtime's blocking pool) for `out`'s
    /// channels; its answers go to `done`.
    pub fn start(out: Arc<Outbound>, done: impl Fn(Done) + Send + 'static) -> Disk {
        let (jobs, rx) = mpsc::channel();
        tokio::task::spawn_blocking(move || work(&rx, &out, &done));
        Disk { jobs }
    }

    /// Queues `job`.
    pub fn submit(&self, job: Job) {
        // The thread ends only when `self` is dropped.
        let _ = self.jobs.send(job);
    }
}

fn work(jobs: &mpsc::Receiver<Job>, out: &Outbound, done: &dyn Fn(Done)) {
    let mut held: HashMap<u64, Receiver> = HashMap::new();
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Prepare {
                id,
                root,
                path,
                size,
            } => {
                let result = Receiver::prepare(&root, &path, size).and_then(|mut rx| {
                    let partial = rx.partial()?;
                    held.insert(id, rx);
                    Ok(partial)
                });
                done(Done::Prepared {
                    id,
                    result: result.map_err(|e| e.to_string()),
                });
            }
            Job::Begin { id, from } => {
                if let Some(rx) = held.get_mut(&id)
                    && let Err(e) = rx.begin(from)
                {
                    held.remove(&id);
                    done(Done::Failed {
                        id,
                        why: e.to_string(),
                    });
                }
            }
            Job::Write { id, channel, data } => {
                if let Some(rx) = held.get_mut(&id)
                    && let Err(e) = rx.write(&data)
                {
                    held.remove(&id);
                    done(Done::Failed {
                        id,
                        why: e.to_string(),
                    });
                }
                out.consumed(channel, data.len());
            }
            Job::Finish { id, sha256 } => {
                // Gone: it failed (and said so) or was abandoned.
                if let Some(rx) = held.remove(&id) {
                    done(Done::Finished {
                        id,
                        result: rx.finish(&sha256).map_err(|e| e.to_string()),
                    });
                }
            }
            Job::Abandon { id } => {
                if let Some(rx) = held.remove(&id) {
                    rx.abandon();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::files::testdir::TestDir;
    use lifeline_session::live::Command;
    use tokio::sync::mpsc as tmpsc;

    /// The next answer of the disk thread.
    async fn next(rx: &mut tmpsc::UnboundedReceiver<Done>) -> Done {
        tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn jobs_run_in_order_and_bytes_count_as_consumed_once_written() {
        let dir = TestDir::new("disk");
        let (cmd, mut cmds) = tmpsc::unbounded_channel();
        let (done_tx, mut done) = tmpsc::unbounded_channel();
        let disk = Disk::start(Outbound::new(cmd), move |d| {
            let _ = done_tx.send(d);
        });
        let path = vec!["a.bin".to_owned()];
        let prepare = |id| Job::Prepare {
            id,
            root: dir.path().to_path_buf(),
            path: path.clone(),
            size: 6,
        };
        disk.submit(prepare(1));
        assert!(matches!(
            next(&mut done).await,
            Done::Prepared {
                id: 1,
                result: Ok((0, _))
            }
        ));
        disk.submit(Job::Begin { id: 1, from: 0 });
        disk.submit(Job::Write {
            id: 1,
            channel: 7,
            data: Bytes::from_static(b"abc"),
        });
        // Abandoned, then offered again: the second waits for the first
        // to let go of the partial copy (one thread, in order), and finds
        // its three bytes.
        disk.submit(Job::Abandon { id: 1 });
        disk.submit(prepare(2));
        let Done::Prepared {
            id: 2,
            result: Ok((3, partial)),
        } = next(&mut done).await
        else {
            panic!("the partial copy was not found");
        };
        assert_eq!(partial, crate::files::sha256_hex(b"abc"));
        match cmds.recv().await.unwrap() {
            Command::Consumed { channel, bytes } => assert_eq!((channel, bytes), (7, 3)),
            other => panic!("{other:?}"),
        }
        disk.submit(Job::Begin { id: 2, from: 3 });
        disk.submit(Job::Write {
            id: 2,
            channel: 8,
            data: Bytes::from_static(b"def"),
        });
        disk.submit(Job::Finish {
            id: 2,
            sha256: crate::files::sha256_hex(b"abcdef"),
        });
        let Done::Finished {
            id: 2,
            result: Ok(saved),
        } = next(&mut done).await
        else {
            panic!("not saved");
        };
        assert_eq!(std::fs::read(saved).unwrap(), b"abcdef");
        // A write beyond the size fails, and says so.
        disk.submit(prepare(3));
        assert!(matches!(
            next(&mut done).await,
            Done::Prepared { id: 3, .. }
        ));
        disk.submit(Job::Begin { id: 3, from: 0 });
        disk.submit(Job::Write {
            id: 3,
            channel: 9,
            data: Bytes::from_static(b"0123456"),
        });
        assert!(matches!(next(&mut done).await, Done::Failed { id: 3, .. }));
    }
}
