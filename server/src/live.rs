//! Live updates for open dashboards: Postgres announces that a rollout changed (an audit entry
//! was written, or new events were added to its rollups, by a fold or a sparse batch) on the
//! `rampart_rollouts` channel; the process's
//! listener (the flags service's, which owns the one LISTEN connection) relays it here, and
//! every server-sent-event stream of that rollout tells its page to refetch, whichever replica
//! made the change.

use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// The channel rollout changes are announced on.
pub const CHANNEL: &str = "rampart_rollouts";

/// Which rollout changed; `None` means "maybe any" (after the listener reconnected).
pub type Change = Option<i64>;

/// How soon clients should reconnect to another replica (or this one, restarted) when the
/// server closes their event streams on shutdown.
pub const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// The server is stopping: event streams end (with a reconnect hint) so that a graceful
/// shutdown does not wait on them forever. One per process; cloned into every stream.
#[derive(Clone)]
pub struct Stopping(watch::Receiver<bool>);

impl Stopping {
    /// A sender that stops every stream, and the receiver they watch.
    pub fn new() -> (watch::Sender<bool>, Stopping) {
        let (stop, stopping) = watch::channel(false);
        (stop, Stopping(stopping))
    }

    /// Resolves once the server is stopping (at once if it already is, or if the sender is gone).
    pub async fn stopped(mut self) {
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }
}

/// The least time between two messages of one stream: bursts (an ingest and the guard's
/// rollback) become one refetch, and an open page refetches at most four times a second.
pub const COALESCE: Duration = Duration::from_millis(250);

/// Rollout `id`'s changes from `receiver`, as one `()` per message a page should get: the first
/// change after a quiet [`COALESCE`] at once (a rollback is on screen in the time a refetch
/// takes, not a window later), and the changes that come within the window after a message
/// together at its end. Ends when the channel closes.
pub fn throttled(receiver: broadcast::Receiver<Change>, id: i64) -> impl futures_util::Stream<Item = ()> {
    futures_util::stream::unfold((receiver, None::<tokio::time::Instant>), move |(mut receiver, last)| async move {
        loop {
            match receiver.recv().await {
                Ok(Some(changed)) if changed != id => continue,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Some(last) = last {
                        tokio::time::sleep_until(last + COALESCE).await;
                    }
                    // What came meanwhile is in the refetch this message causes.
                    while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = receiver.try_recv() {}
                    return Some(((), (receiver, Some(tokio::time::Instant::now()))));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

pub struct Live {
    changes: broadcast::Sender<Change>,
}

impl Default for Live {
    fn default() -> Self {
        Live { changes: broadcast::channel(1024).0 }
    }
}

impl Live {
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// How many dashboard streams are subscribed now.
    pub fn watchers(&self) -> usize {
        self.changes.receiver_count()
    }

    /// Relays a change; nobody watching is fine.
    pub fn announce(&self, change: Change) {
        let _ = self.changes.send(change);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    /// On a paused clock: a change after a quiet spell is passed on at once; the burst right
    /// after it waits for the window's end and comes as one; other rollouts' changes are not
    /// this stream's.
    #[tokio::test(start_paused = true)]
    async fn the_first_change_goes_at_once_and_a_burst_after_it_as_one_at_the_windows_end() {
        let live = Live::default();
        let mut changes = Box::pin(throttled(live.subscribe(), 1));
        let started = tokio::time::Instant::now();
        live.announce(Some(1));
        changes.next().await.unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO, "the first change waited");

        for _ in 0..5 {
            live.announce(Some(1));
        }
        live.announce(Some(2));
        changes.next().await.unwrap();
        assert_eq!(started.elapsed(), COALESCE, "the burst came before the window's end");
        let next = tokio::time::timeout(Duration::from_secs(10), changes.next()).await;
        assert!(next.is_err(), "the burst came as more than one message");

        // Quiet since: the next change goes at once again; `None` (maybe any) is this one's too.
        let quiet = tokio::time::Instant::now();
        live.announce(None);
        changes.next().await.unwrap();
        assert_eq!(quiet.elapsed(), Duration::ZERO);
    }
}
