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
