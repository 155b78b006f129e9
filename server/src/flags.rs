//! Flag delivery's state: every server process keeps the served flag configs in memory, so an
//! evaluation never waits for Postgres, and refreshes a flag when Postgres announces a change
//! (LISTEN/NOTIFY, sent at commit by the transition that changed it). Changes are also
//! broadcast to the server-sent-events streams.
//!
//! The same LISTEN connection (one per process) carries rollout changes for live dashboards,
//! relayed to [`Live`].

use crate::live::Live;
use crate::store::{Store, StoreError};
use app::model::FlagConfig;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::broadcast;

/// How many changes an SSE subscriber may lag behind before it is told to refetch everything.
const CHANGE_BUFFER: usize = 256;

pub struct Flags {
    store: Store,
    configs: RwLock<HashMap<String, Arc<FlagConfig>>>,
    changes: broadcast::Sender<Arc<FlagConfig>>,
}

impl Flags {
    /// Starts listening for changes, then loads every flag, so no change falls between the two.
    /// The listener stops when the store's pool is closed.
    pub async fn start(store: Store, live: Arc<Live>) -> Result<Arc<Flags>, StoreError> {
        let listener = store.listen_for_changes().await?;
        let (changes, _) = broadcast::channel(CHANGE_BUFFER);
        let flags = Arc::new(Flags { store, configs: RwLock::new(HashMap::new()), changes });
        flags.refresh(None).await?;
        tokio::spawn(listen(flags.clone(), live, listener));
        Ok(flags)
    }

    /// The served config of one flag.
    pub fn get(&self, key: &str) -> Option<Arc<FlagConfig>> {
        self.configs.read().expect("flag cache lock").get(key).cloned()
    }

    /// Every flag, by key.
    pub fn all(&self) -> Vec<Arc<FlagConfig>> {
        let mut all: Vec<_> = self.configs.read().expect("flag cache lock").values().cloned().collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// Changes as they are applied to this process's cache.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FlagConfig>> {
        self.changes.subscribe()
    }

    /// How many streams are subscribed now.
    pub fn watchers(&self) -> usize {
        self.changes.receiver_count()
    }

    /// Reloads one flag (or all) from Postgres and announces the ones whose config changed.
    pub async fn refresh(&self, key: Option<&str>) -> Result<(), StoreError> {
        let fresh = self.store.flag_configs(key).await?;
        let mut changed = Vec::new();
        {
            let mut configs = self.configs.write().expect("flag cache lock");
            for config in fresh {
                let config = Arc::new(config);
                if configs.get(&config.key) != Some(&config) {
                    configs.insert(config.key.clone(), config.clone());
                    changed.push(config);
                }
            }
        }
        for config in changed {
            tracing::info!(flag = %config.key, enabled = config.enabled, percentage = config.percentage, version = %config.config_version, "serving flag config");
            // No subscribers is fine: nobody is streaming.
            let _ = self.changes.send(config);
        }
        Ok(())
    }
}

async fn listen(flags: Arc<Flags>, live: Arc<Live>, mut listener: sqlx::postgres::PgListener) {
    let pool = flags.store.pool().clone();
    loop {
        if pool.is_closed() {
            return;
        }
        let received = tokio::select! {
            received = listener.try_recv() => received,
            () = pool.close_event() => return,
        };
        let refreshed = match received {
            Ok(Some(notification)) if notification.channel() == crate::live::CHANNEL => {
                if let Ok(id) = notification.payload().parse() {
                    live.announce(Some(id));
                }
                Ok(())
            }
            Ok(Some(notification)) => flags.refresh(Some(notification.payload())).await,
            // The connection was lost and re-established: notifications may have been missed.
            Ok(None) => {
                tracing::warn!("change listener reconnected; reloading every flag");
                live.announce(None);
                flags.refresh(None).await
            }
            Err(_) if pool.is_closed() => return,
            Err(error) => {
                tracing::warn!(%error, "flag listener failed; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                live.announce(None);
                flags.refresh(None).await
            }
        };
        if let Err(error) = refreshed {
            tracing::warn!(%error, "could not refresh flag configs");
        }
    }
}
