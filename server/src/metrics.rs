//! Metrics: reading batches of upload events (NDJSON, JSON arrays, files), storing the good
//! lines while reporting each bad one by number and field, windows over the rollups, and
//! baseline capture. The HTTP ingest endpoint and `rampart import` share this code.

use crate::service::Clock;
use crate::store::{Baseline, LiveRollout, NewEvent, RollupFilter, StageSpan, Store};
use app::domain::event::{self, UploadEvent, Variant};
use app::domain::stats::{Stats, Summary, size_class_mb};
use app::domain::units::{Span, Timestamp, Version};
use app::error::AppError;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// At most this many line errors are listed in one report; the counts stay exact.
const ERRORS_LISTED: usize = 1000;
/// Events further in the future than this are refused: a clock is wrong somewhere.
const FUTURE_TOLERANCE: Span = Span::from_secs(3600);
/// Size classes when a plan has no matrix.
const DEFAULT_SIZES_MB: [u32; 4] = [1, 10, 50, 100];
/// The shortest time between two folds of rollup deltas while batches keep coming: each fold
/// adds up every batch since the last one.
const FOLD_GAP: Duration = Duration::from_millis(250);
/// How often deltas are folded when no batch wakes the fold (other processes write them too).
const FOLD_INTERVAL: Duration = Duration::from_secs(1);

/// One rejected line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LineError {
    pub line: u64,
    pub field: String,
    pub message: String,
}

/// What happened to a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub errors: Vec<LineError>,
    pub errors_truncated: bool,
}

impl IngestReport {
    /// Records a rejected line.
    pub fn reject(&mut self, line: u64, field: &str, message: String) {
        self.rejected += 1;
        if self.errors.len() < ERRORS_LISTED {
            self.errors.push(LineError { line, field: field.to_string(), message });
        } else {
            self.errors_truncated = true;
        }
    }

    /// Adds a later batch's report (the import command reports a file batch by batch).
    pub fn absorb(&mut self, other: IngestReport) {
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
        for e in other.errors {
            if self.errors.len() < ERRORS_LISTED {
                self.errors.push(e);
            } else {
                self.errors_truncated = true;
            }
        }
        self.errors_truncated |= other.errors_truncated;
    }
}

/// A window's numbers: each arm in total and per time step, and the baseline beside them.
#[derive(Clone, Debug, Serialize)]
pub struct WindowView {
    pub from: Timestamp,
    pub to: Timestamp,
    pub step_minutes: i64,
    pub control: Summary,
    pub treatment: Summary,
    pub series: Vec<SeriesPoint>,
    pub baseline: Option<Baseline>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SeriesPoint {
    pub at: Timestamp,
    pub control: Summary,
    pub treatment: Summary,
}

/// Where an event goes: its rollout, the size classes of its plan, and its stage history as of
/// `version` of its state (every transition, the only writer of the history, bumps the version).
struct Destination {
    rollout_id: i64,
    version: Version,
    sizes_mb: Vec<u32>,
    spans: Vec<StageSpan>,
}

/// Parses numbered NDJSON lines (blank ones skipped): the events, and a report of the lines
/// that are not events.
pub fn parse_lines<'a>(lines: impl Iterator<Item = (u64, &'a str)>) -> (Vec<(u64, UploadEvent)>, IngestReport) {
    let mut report = IngestReport::default();
    let mut parsed = Vec::new();
    for (number, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        match event::parse_line(line) {
            Ok(e) => parsed.push((number, e)),
            Err(e) => report.reject(number, &e.field, e.message),
        }
    }
    (parsed, report)
}

/// Parses the elements of a JSON array (element `n` is reported as line `n`, from 1), like
/// [`parse_lines`].
fn parse_values(values: &[serde_json::Value]) -> (Vec<(u64, UploadEvent)>, IngestReport) {
    let mut report = IngestReport::default();
    let mut parsed = Vec::new();
    for (i, value) in values.iter().enumerate() {
        match event::parse_value(value) {
            Ok(e) => parsed.push((i as u64 + 1, e)),
            Err(e) => report.reject(i as u64 + 1, &e.field, e.message),
        }
    }
    (parsed, report)
}

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
}

impl Metrics {
    pub fn new(store: Store, clock: Clock, retention: Span) -> Metrics {
        Metrics { store, clock, retention, stored: None, fold: Arc::default(), destinations: Arc::default() }
    }

    /// Folds the rollup deltas of stored batches into the rollups, in the background until the
    /// pool closes: within [`FOLD_GAP`] of a batch, and every [`FOLD_INTERVAL`] for the deltas
    /// other processes store. Reads never wait for it (they add the pending deltas themselves);
    /// it keeps the pending deltas few.
    pub fn spawn_folding(&self) {
        let store = self.store.clone();
        crate::background::spawn_loop(store.pool().clone(), FOLD_INTERVAL, FOLD_GAP, self.fold.clone(), move || {
            let store = store.clone();
            async move {
                if let Err(error) = store.fold_rollups().await
                    && !store.pool().is_closed()
                {
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

    /// Parses numbered NDJSON lines and stores the good ones.
    pub async fn ingest_lines<'a>(&self, lines: impl Iterator<Item = (u64, &'a str)>) -> Result<IngestReport, AppError> {
        // The live rollouts are looked up while the lines are parsed.
        let (live, (parsed, report)) = tokio::join!(self.store.live_rollouts(None), async { parse_lines(lines) });
        self.store_among(&live?, parsed, report).await
    }

    /// Stores the elements of a JSON array (element `n` is reported as line `n`, from 1).
    pub async fn ingest_values(&self, values: Vec<serde_json::Value>) -> Result<IngestReport, AppError> {
        let (live, (parsed, report)) = tokio::join!(self.store.live_rollouts(None), async { parse_values(&values) });
        self.store_among(&live?, parsed, report).await
    }

    /// Stores events parsed by [`parse_lines`], adding what it rejects to `report` (the parse's).
    pub async fn store_parsed(&self, parsed: Vec<(u64, UploadEvent)>, report: IngestReport) -> Result<IngestReport, AppError> {
        let live = self.store.live_rollouts(None).await?;
        self.store_among(&live, parsed, report).await
    }

    /// Stores parsed events in the `live` rollouts they belong to.
    async fn store_among(
        &self,
        live: &[LiveRollout],
        parsed: Vec<(u64, UploadEvent)>,
        mut report: IngestReport,
    ) -> Result<IngestReport, AppError> {
        let now = (self.clock)();
        let oldest = Timestamp(now.millis() - self.retention.millis());
        let newest = now.plus(FUTURE_TOLERANCE);
        let mut destinations: HashMap<Option<String>, Result<Arc<Destination>, String>> = HashMap::new();
        let mut batches: HashMap<i64, Vec<NewEvent>> = HashMap::new();
        for (line, e) in parsed {
            if e.at < oldest {
                report.reject(line, "timestamp", format!("is older than the {}-day retention", self.retention.secs() / 86_400));
                continue;
            }
            if e.at > newest {
                report.reject(line, "timestamp", "is more than an hour in the future; check the sender's clock".into());
                continue;
            }
            if !destinations.contains_key(&e.flag) {
                let found = self.destination(live, e.flag.as_deref()).await?;
                destinations.insert(e.flag.clone(), found);
            }
            let destination = match &destinations[&e.flag] {
                Ok(d) => d,
                Err(message) => {
                    report.reject(line, "flag", message.clone());
                    continue;
                }
            };
            let stage = destination.spans.iter().rev().find(|s| s.from <= e.at).map_or(0, |s| s.stage);
            let size_class = size_class_mb(e.size_bytes, &destination.sizes_mb) as i32;
            batches.entry(destination.rollout_id).or_default().push(NewEvent { event: e, stage, size_class_mb: size_class });
        }
        for (rollout_id, batch) in batches {
            let counts = self.store.ingest(rollout_id, &batch).await?;
            report.accepted += counts.accepted;
            report.duplicates += counts.duplicates;
        }
        if report.accepted > 0 {
            self.fold.notify_one();
            if let Some(waker) = &self.stored {
                waker.notify_one();
            }
        }
        Ok(report)
    }

    /// The rollout an event belongs to, of the `live` ones: its flag's, or the only one.
    async fn destination(&self, live: &[LiveRollout], flag: Option<&str>) -> Result<Result<Arc<Destination>, String>, AppError> {
        let live: Vec<&LiveRollout> = live.iter().filter(|r| flag.is_none_or(|f| r.flag_key == f)).collect();
        let (id, version) = match (live.as_slice(), flag) {
            ([one], _) => (one.id, one.version),
            ([], Some(flag)) => return Ok(Err(format!("no live rollout drives the flag `{flag}`"))),
            ([], None) => return Ok(Err("no rollout is live to receive events".into())),
            (several, _) => {
                let flags: Vec<&str> = several.iter().map(|r| r.flag_key.as_str()).collect();
                return Ok(Err(format!("is required while several rollouts are live ({})", flags.join(", "))));
            }
        };
        let cached = self.destinations.lock().expect("not poisoned").get(&id).filter(|d| d.version == version).cloned();
        if let Some(destination) = cached {
            return Ok(Ok(destination));
        }
        // The rollout first: the history read after it is at least as new as its version.
        let rollout = self.store.rollout(id).await?;
        let destination = Arc::new(Destination {
            rollout_id: id,
            version: rollout.state.version,
            sizes_mb: rollout.plan.matrix.as_ref().map_or(DEFAULT_SIZES_MB.to_vec(), |m| m.sizes_mb.clone()),
            spans: self.store.stage_spans(id).await?,
        });
        self.destinations.lock().expect("not poisoned").insert(id, destination.clone());
        Ok(Ok(destination))
    }

    /// Control and treatment over `[from, to)`, with a series of at most ~240 points.
    pub async fn window(&self, rollout_id: i64, from: Timestamp, to: Timestamp, filter: &RollupFilter) -> Result<WindowView, AppError> {
        if from >= to {
            return Err(AppError::invalid("from", "must be before `to`"));
        }
        let rows = self.store.window_rows(rollout_id, from, to, filter).await?;
        let minutes = ((to.millis() - from.millis()) as f64 / 60_000.0).max(1.0);
        let step_minutes = ((minutes / 240.0).ceil() as i64).max(1);
        let step_ms = step_minutes * 60_000;
        let (mut control, mut treatment) = (Stats::default(), Stats::default());
        let mut steps: Vec<(Timestamp, Stats, Stats)> = Vec::new();
        for (key, stats) in rows {
            let at = Timestamp(from.millis() + (key.minute.millis() - from.millis()).div_euclid(step_ms) * step_ms);
            if steps.last().is_none_or(|(t, _, _)| *t != at) {
                steps.push((at, Stats::default(), Stats::default()));
            }
            let (_, c, t) = steps.last_mut().expect("pushed above");
            match key.variant {
                Variant::Control => {
                    control.merge(&stats);
                    c.merge(&stats);
                }
                Variant::Treatment => {
                    treatment.merge(&stats);
                    t.merge(&stats);
                }
            }
        }
        let step = step_minutes as f64;
        Ok(WindowView {
            from,
            to,
            step_minutes,
            control: control.summary(minutes),
            treatment: treatment.summary(minutes),
            series: steps.into_iter().map(|(at, c, t)| SeriesPoint { at, control: c.summary(step), treatment: t.summary(step) }).collect(),
            baseline: self.store.latest_baseline(rollout_id).await?,
        })
    }

    /// Control and treatment stats of one stage over `[from, to)`.
    pub async fn arms(&self, rollout_id: i64, stage: Option<i32>, from: Timestamp, to: Timestamp) -> Result<(Stats, Stats), AppError> {
        let filter = RollupFilter { stage, ..Default::default() };
        let (mut control, mut treatment) = (Stats::default(), Stats::default());
        for (key, stats) in self.store.window_rows(rollout_id, from, to, &filter).await? {
            match key.variant {
                Variant::Control => control.merge(&stats),
                Variant::Treatment => treatment.merge(&stats),
            }
        }
        Ok((control, treatment))
    }

    /// The rollout's current baseline.
    pub async fn baseline(&self, rollout_id: i64) -> Result<Option<Baseline>, AppError> {
        Ok(self.store.latest_baseline(rollout_id).await?)
    }

    /// Freezes the control events of `[from, to)` as the rollout's baseline.
    pub async fn capture_baseline(&self, rollout_id: i64, from: Timestamp, to: Timestamp, actor: &str) -> Result<Baseline, AppError> {
        let window = self.window(rollout_id, from, to, &RollupFilter::default()).await?;
        if window.control.count == 0 {
            return Err(AppError::Refused {
                message: "no control events in that window: a baseline needs traffic with the flag off".into(),
                blockers: Vec::new(),
            });
        }
        Ok(self.store.save_baseline(rollout_id, from, to, &window.control, actor).await?)
    }
}
