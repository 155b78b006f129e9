//! Metrics: reading batches of upload events (NDJSON, JSON arrays, files), storing the good
//! lines while reporting each bad one by number and field, windows over the rollups, and
//! baseline capture. The HTTP ingest endpoint and `rampart import` share this code.

use crate::clock::Clock;
use crate::prometheus::{Origins, Prometheus};
use crate::store::{Baseline, RollupFilter, Store};
use crate::telemetry::Telemetry;
use app::domain::stats::Summary;
use app::domain::units::{Span, Timestamp};
use app::error::AppError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

mod ingest;
mod windows;

use ingest::Destination;
pub use ingest::{IngestReport, LineError, Reading, parse_lines, read_json_array};
pub use windows::{Group, MAX_WINDOW, SeriesPoint, Unvouched, WindowView};

/// The shortest time between two folds of rollup deltas while batches keep coming: each fold
/// adds up every batch since the last one.
const FOLD_GAP: Duration = Duration::from_millis(250);
/// How often deltas are folded when no batch wakes the fold (other processes write them too).
const FOLD_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Metrics {
    store: Store,
    clock: Clock,
    retention: Span,
    /// Told after every stored batch, so the guard loop judges new events at once.
    stored: Option<Arc<Notify>>,
    /// Told after every stored batch, so its rollup deltas are folded soon.
    fold: Arc<Notify>,
    /// Destinations by rollout: a batch reads the rollout's version, and reads the rest again
    /// only if it changed.
    destinations: Arc<Mutex<HashMap<i64, Arc<Destination>>>>,
    telemetry: Arc<Telemetry>,
    /// The puller for plans whose evidence lives in Prometheus, shared by every reader.
    prometheus: Arc<Prometheus>,
}

impl Metrics {
    pub fn new(store: Store, clock: Clock, retention: Span) -> Metrics {
        Metrics {
            store,
            clock,
            retention,
            stored: None,
            fold: Arc::default(),
            destinations: Arc::default(),
            telemetry: Arc::default(),
            prometheus: Arc::default(),
        }
    }

    /// Reads plans' Prometheus sources only from the `allowed` servers.
    pub fn reading_prometheus(self, allowed: Origins) -> Metrics {
        Metrics { prometheus: Arc::new(Prometheus::allowing(allowed)), ..self }
    }

    /// Counts batches, events and failed folds in `telemetry` (the process's `/metrics`).
    pub fn reporting(self, telemetry: Arc<Telemetry>) -> Metrics {
        Metrics { telemetry, ..self }
    }

    /// Folds the rollup deltas of stored batches into the rollups, in the background until the
    /// pool closes: within [`FOLD_GAP`] of a batch, and every [`FOLD_INTERVAL`] for the deltas
    /// other processes store. Reads never wait for it (they add the pending deltas themselves);
    /// it keeps the pending deltas few.
    pub fn spawn_folding(&self) {
        let (store, telemetry) = (self.store.clone(), self.telemetry.clone());
        crate::background::spawn_loop(store.pool().clone(), FOLD_INTERVAL, FOLD_GAP, self.fold.clone(), move || {
            let (store, telemetry) = (store.clone(), telemetry.clone());
            async move {
                if let Err(error) = store.fold_rollups().await
                    && !store.pool().is_closed()
                {
                    telemetry.record_fold_failure();
                    tracing::warn!(%error, "folding rollup deltas failed; retrying");
                }
            }
        });
    }

    /// Folds every pending rollup delta now (see [`Metrics::spawn_folding`]).
    pub async fn fold(&self) -> Result<u64, AppError> {
        Ok(self.store.fold_rollups().await?)
    }

    /// Wakes `waker` whenever events are stored.
    pub fn notifying(mut self, waker: Arc<Notify>) -> Metrics {
        self.stored = Some(waker);
        self
    }

    /// The time as the service sees it.
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// The rollout's current baseline.
    pub async fn baseline(&self, rollout_id: i64) -> Result<Option<Baseline>, AppError> {
        Ok(self.store.latest_baseline(rollout_id).await?)
    }

    /// Freezes the control events of `[from, to)` as the rollout's baseline.
    pub async fn capture_baseline(
        &self,
        rollout_id: i64,
        from: Timestamp,
        to: Timestamp,
        expected_count: Option<u64>,
        actor: &str,
    ) -> Result<Baseline, AppError> {
        let control = self.baseline_preview(rollout_id, from, to).await?;
        if let Some(expected) = expected_count.filter(|&expected| expected != control.count) {
            // A conflict, as a stale command is: what was looked at has moved since. Its
            // `current_version` is the count the window holds now.
            return Err(AppError::Conflict {
                message: format!(
                    "the window now holds {} control uploads where {expected} were shown (uploads arrived late): look at the numbers again",
                    control.count
                ),
                current_version: control.count,
            });
        }
        Ok(self.store.save_baseline(rollout_id, from, to, &control, actor, self.now()).await?)
    }

    /// The control arm's numbers over `[from, to)`: what a baseline captured there freezes.
    /// Refused when the window has no control uploads.
    pub async fn baseline_preview(&self, rollout_id: i64, from: Timestamp, to: Timestamp) -> Result<Summary, AppError> {
        let window = self.window(rollout_id, from, to, &RollupFilter::default()).await?;
        if window.control.count == 0 {
            return Err(AppError::Refused {
                message: "no control events in that window: a baseline needs traffic with the flag off".into(),
                blockers: Vec::new(),
            });
        }
        Ok(window.control)
    }
}

#[cfg(test)]
mod tests;
