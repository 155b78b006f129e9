//! Live updates for open dashboards: Postgres announces that a rollout changed (an audit entry
//! was written, or new events were added to its rollups, by a fold or a sparse batch) on the
//! `rampart_rollouts` channel; the process's
//! listener (the flags service's, which owns the one LISTEN connection) relays it here, and
//! every server-sent-event stream of that rollout tells its page to refetch, whichever replica
//! made the change.

use tokio::sync::broadcast;

/// The channel rollout changes are announced on.
pub const CHANNEL: &str = "rampart_rollouts";

/// Which rollout changed; `None` means "maybe any" (after the listener reconnected).
pub type Change = Option<i64>;

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
