//! Racing connection attempts to the nodes of a gateway cluster.
//!
//! An applet is given a directory of nodes; it starts an attempt to each
//! at once and takes the first that works, so a dead or distant node costs
//! nothing but its lost race. [`Race`] runs the attempts as tasks and
//! hands out the successes in the order they finish (a caller whose next
//! step fails on the winner can take the runner-up); dropping it aborts
//! the rest. [`shuffled`] puts the candidates in a random order first, so
//! that when several nodes are equally near, the applets of a cluster
//! spread over all of them instead of piling onto the first listed.

use std::future::Future;
use tokio::task::JoinSet;

/// Attempts to several candidates, all started at once.
#[derive(Debug)]
pub struct Race<C, T, E> {
    running: JoinSet<(C, Result<T, E>)>,
    last_error: Option<E>,
}

impl<C, T, E> Race<C, T, E>
where
    C: Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    /// Starts `attempt(c)` for every candidate `c`.
    pub fn start<I, F, Fut>(candidates: I, attempt: F) -> Self
    where
        I: IntoIterator<Item = C>,
        C: Clone,
        F: Fn(C) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let mut running = JoinSet::new();
        for c in candidates {
            let work = attempt(c.clone());
            running.spawn(async move { (c, work.await) });
        }
        Self {
            running,
            last_error: None,
        }
    }

    /// The next attempt to succeed, with its candidate; `None` once every
    /// attempt has finished without another success.
    pub async fn next_success(&mut self) -> Option<(C, T)> {
        while let Some(joined) = self.running.join_next().await {
            match joined {
                Ok((c, Ok(t))) => return Some((c, t)),
                Ok((_, Err(e))) => self.last_error = Some(e),
                // A panicking attempt is one that failed.
                Err(_) => {}
            }
        }
        None
    }

    /// The error of the last attempt that failed, if one did.
    pub fn take_last_error(&mut self) -> Option<E> {
        self.last_error.take()
    }
}

/// Races `dial` to every candidate at once, then runs `handshake` on the
/// first connection to answer, and on the next if that fails: the
/// applet's way to a gateway node (cheap connects raced, one handshake
/// paid). The error is the last handshake's, else the last dial's.
pub async fn first_to_answer<C, S, T, E, D, DF, H, HF>(
    candidates: impl IntoIterator<Item = C>,
    dial: D,
    handshake: H,
) -> Result<(C, T), Option<E>>
where
    C: Clone + Send + 'static,
    S: Send + 'static,
    E: Send + 'static,
    D: Fn(C) -> DF,
    DF: Future<Output = Result<S, E>> + Send + 'static,
    H: Fn(C, S) -> HF,
    HF: Future<Output = Result<T, E>>,
{
    let mut race = Race::start(candidates, dial);
    let mut last = None;
    while let Some((c, s)) = race.next_success().await {
        match handshake(c.clone(), s).await {
            Ok(t) => return Ok((c, t)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.or_else(|| race.take_last_error()))
}

/// `items` in a uniformly random order (Fisher–Yates).
pub fn shuffled<T>(mut items: Vec<T>) -> Vec<T> {
    for i in (1..items.len()).rev() {
        let j = (crate::live::random_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn successes_come_in_the_order_they_finish() {
        // Candidate = (name, delay ms, succeeds).
        let mut race = Race::start(
            [("slow", 60, true), ("broken", 0, false), ("fast", 20, true)],
            |(name, ms, ok)| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                if ok { Ok(name) } else { Err(name) }
            },
        );
        assert_eq!(race.next_success().await.map(|(_, t)| t), Some("fast"));
        assert_eq!(race.next_success().await.map(|(_, t)| t), Some("slow"));
        assert_eq!(race.next_success().await, None);
        assert_eq!(race.take_last_error(), Some("broken"));
    }

    #[tokio::test]
    async fn dropping_the_race_stops_the_others() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let mut race = Race::start([0u64, 5_000], move |ms| {
            let tx = tx.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                let _ = tx.send(()).await;
                Ok::<_, ()>(ms)
            }
        });
        assert_eq!(race.next_success().await.map(|(_, t)| t), Some(0));
        assert!(rx.recv().await.is_some());
        drop(race);
        // The slow attempt was aborted: its sender is gone, no send came.
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_failed_handshake_moves_on_to_the_next_to_answer() {
        // Candidate = (name, dial delay ms); "first" answers first but
        // its handshake fails, "dead" never answers.
        let won = first_to_answer(
            [("first", 0), ("second", 30), ("dead", 0)],
            |(name, ms)| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                if name == "dead" {
                    Err("refused")
                } else {
                    Ok(name)
                }
            },
            |_, conn| async move {
                if conn == "first" {
                    Err("bad handshake")
                } else {
                    Ok(conn)
                }
            },
        )
        .await;
        assert_eq!(won.map(|(_, t)| t), Ok("second"));
        let none = first_to_answer(
            [("dead", 0)],
            |_| async { Err::<&str, _>("refused") },
            |_, conn| async move { Ok::<_, &str>(conn) },
        )
        .await;
        assert_eq!(none, Err(Some("refused")));
    }

    #[test]
    fn a_shuffle_keeps_every_item_and_puts_each_first_sometimes() {
        let mut first = [0usize; 3];
        for _ in 0..600 {
            let s = shuffled(vec![0, 1, 2]);
            let mut sorted = s.clone();
            sorted.sort();
            assert_eq!(sorted, [0, 1, 2]);
            first[s[0]] += 1;
        }
        // Each would lead 200 times on average; 100 is far below chance.
        assert!(first.iter().all(|&n| n > 100), "{first:?}");
    }
}
