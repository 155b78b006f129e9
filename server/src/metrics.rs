//! Metrics: reading batches of upload events (NDJSON, JSON arrays, files), storing the good
//! lines while reporting each bad one by number and field, windows over the rollups, and
//! baseline capture. The HTTP ingest endpoint and `rampart import` share this code.

use crate::clock::Clock;
use crate::prometheus::{Origins, Prometheus};
use crate::store::{Baseline, Ingested, LiveRollout, NewEvent, RollupFilter, StageSpan, Store, StoreError};
use crate::telemetry::Telemetry;
use app::domain::event::{self, FieldError, UploadEvent, Variant};
use app::domain::matrix::CellRow;
use app::domain::plan::Plan;
use app::domain::source::Evidence;
use app::domain::stats::{StageRows, Stats, Summary, size_class_mb};
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

    /// Counts what the store took of a batch.
    fn stored(&mut self, counts: Ingested) {
        self.accepted += counts.accepted;
        self.duplicates += counts.duplicates;
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

/// The longest window a read may ask for: every rollup of it is read (a window of a rollout's
/// whole history was a way to make the server read all of them).
pub const MAX_WINDOW: Span = Span::from_secs(31 * 86_400);

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

/// Routed events by the rollout they go to.
type Batches = HashMap<i64, Vec<NewEvent>>;

/// A numbered line (or array element) read: the event, or what is wrong with it.
pub type Reading = (u64, Result<UploadEvent, FieldError>);

/// Lines read at the start of a batch while the live rollouts are looked up: the rollout of the
/// first of them is the one the batch streams into.
const HEAD_LINES: usize = 32;

/// Numbered NDJSON lines read as events, blank ones skipped. (Named functions rather than
/// closures: with a closure over borrowed lines the HTTP handler's future fails the compiler's
/// `Send` check, "implementation of `FnOnce` is not general enough".)
fn readings<'a>(lines: impl Iterator<Item = (u64, &'a str)>) -> impl Iterator<Item = Reading> {
    fn read_line((number, line): (u64, &str)) -> Option<Reading> {
        (!line.trim().is_empty()).then(|| (number, event::parse_line(line)))
    }
    lines.filter_map(read_line)
}

/// Element `i` of a JSON array, read as the event of line `i + 1`.
fn read_value((i, value): (usize, &serde_json::Value)) -> Reading {
    (i as u64 + 1, event::parse_value(value))
}

/// The elements of a JSON array read as events one by one (element `i` as line `i + 1`).
pub fn read_json_array(text: &str) -> Result<Vec<Reading>, serde_json::Error> {
    struct Elements;
    impl<'de> serde::de::Visitor<'de> for Elements {
        type Value = Vec<Reading>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array of events")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Reading>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(value) = seq.next_element::<serde_json::Value>()? {
                out.push(read_value((out.len(), &value)));
            }
            Ok(out)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let readings = serde::Deserializer::deserialize_seq(&mut deserializer, Elements)?;
    deserializer.end()?;
    Ok(readings)
}

/// Parses numbered NDJSON lines (blank ones skipped): the events, and a report of the lines
/// that are not events.
pub fn parse_lines<'a>(lines: impl Iterator<Item = (u64, &'a str)>) -> (Vec<(u64, UploadEvent)>, IngestReport) {
    let mut report = IngestReport::default();
    let parsed = readings(lines)
        .filter_map(|(number, reading)| reading.map_err(|e| report.reject(number, &e.field, e.message)).ok().map(|e| (number, e)))
        .collect();
    (parsed, report)
}

/// Where a read event goes.
enum Route {
    To(i64, NewEvent),
    /// Refused, and reported.
    Rejected,
    /// Its flag's rollout is not looked up yet.
    Unknown(UploadEvent),
}

/// Sends events to their rollouts: checks their times, finds their stage and size class.
struct Routes {
    oldest: Timestamp,
    newest: Timestamp,
    retention_days: i64,
    /// By the flag an event names (or none), of the live rollouts looked up.
    destinations: HashMap<Option<String>, Result<Arc<Destination>, String>>,
}

impl Routes {
    /// Looks up the rollout of events naming `flag` (or none), unless it is known.
    async fn resolve(&mut self, metrics: &Metrics, live: &[LiveRollout], flag: &Option<String>) -> Result<(), AppError> {
        if !self.destinations.contains_key(flag) {
            let found = metrics.destination(live, flag.as_deref()).await?;
            self.destinations.insert(flag.clone(), found);
        }
        Ok(())
    }

    /// Why an event of this time is refused, if it is.
    fn refuses(&self, at: Timestamp) -> Option<String> {
        if at < self.oldest {
            Some(format!("is older than the {}-day retention", self.retention_days))
        } else if at > self.newest {
            Some("is more than an hour in the future; check the sender's clock".into())
        } else {
            None
        }
    }

    /// The rollout an event would go to, if it is known and the event acceptable.
    fn rollout_of(&self, e: &UploadEvent) -> Option<i64> {
        if self.refuses(e.at).is_some() {
            return None;
        }
        self.destinations.get(&e.flag)?.as_ref().ok().map(|d| d.rollout_id)
    }

    /// Where event `e` of line `line` goes; a refusal is added to `report`.
    fn route(&self, line: u64, e: UploadEvent, report: &mut IngestReport) -> Route {
        if let Some(message) = self.refuses(e.at) {
            report.reject(line, "timestamp", message);
            return Route::Rejected;
        }
        match self.destinations.get(&e.flag) {
            None => Route::Unknown(e),
            Some(Err(message)) => {
                report.reject(line, "flag", message.clone());
                Route::Rejected
            }
            Some(Ok(d)) => {
                let stage = d.spans.iter().rev().find(|s| s.from <= e.at).map_or(0, |s| s.stage);
                let size_class_mb = size_class_mb(e.size_bytes, &d.sizes_mb) as i32;
                Route::To(d.rollout_id, NewEvent { event: e, stage, size_class_mb })
            }
        }
    }
}

/// Most providers, and most file types, [`Metrics::groups`] shows one by one.
const MAX_GROUPS: usize = 12;

/// One provider's or file type's uploads, each arm's ([`Metrics::groups`]).
pub struct Group {
    /// "provider kimi", "file type csv".
    pub label: String,
    pub treatment: Stats,
    pub control: Stats,
}

/// A stage's span whose figures the metric source could not vouch for when read, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Unvouched {
    pub stage: i32,
    pub from: Timestamp,
    pub to: Timestamp,
    pub problem: String,
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

    /// Parses numbered NDJSON lines and stores the good ones.
    pub async fn ingest_lines<'a>(&self, lines: impl Iterator<Item = (u64, &'a str)> + Send) -> Result<IngestReport, AppError> {
        self.ingest_readings(readings(lines)).await
    }

    /// Stores the events of a JSON array's text, reading it one element at a time: each
    /// element's JSON tree is dropped as soon as it is read as an event, so the batch is held
    /// as its text and its events, never as a tree of the whole array (which took ~16× the
    /// body's size).
    pub async fn ingest_json_array(&self, text: &str) -> Result<IngestReport, AppError> {
        let readings = read_json_array(text).map_err(|e| AppError::invalid("body", format!("not a JSON array of events: {e}")))?;
        self.ingest_readings(readings.into_iter()).await
    }

    /// Stores a batch as it is read. The events for the rollout of the first ones (nearly
    /// always all of them) go to the store as they are parsed, so Postgres stores the first
    /// rows while the rest are parsed; events for other rollouts, or naming other flags, are
    /// stored after, a transaction per rollout.
    #[tracing::instrument(name = "ingest_batch", skip_all, fields(accepted, duplicates, rejected))]
    async fn ingest_readings(&self, readings: impl Iterator<Item = Reading> + Send) -> Result<IngestReport, AppError> {
        let mut readings = readings;
        // The live rollouts are looked up while the first lines are parsed.
        let (live, head) = tokio::join!(self.store.live_rollouts(None), async { readings.by_ref().take(HEAD_LINES).collect::<Vec<_>>() });
        let live = live?;
        let mut routes = self.routes();
        for e in head.iter().filter_map(|(_, reading)| reading.as_ref().ok()) {
            routes.resolve(self, &live, &e.flag).await?;
        }
        let first = head.iter().find_map(|(_, reading)| routes.rollout_of(reading.as_ref().ok()?));
        // Events for other rollouts wait, routed; those naming a flag not looked up yet wait too.
        let (mut report, mut others, mut unknown) = (IngestReport::default(), Batches::new(), Vec::new());
        let stream = head.into_iter().chain(readings).filter_map(|(line, reading)| match reading {
            Err(e) => {
                report.reject(line, &e.field, e.message);
                None
            }
            Ok(e) => match routes.route(line, e, &mut report) {
                Route::To(rollout_id, new) if Some(rollout_id) == first => Some(new),
                Route::To(rollout_id, new) => {
                    others.entry(rollout_id).or_default().push(new);
                    None
                }
                Route::Unknown(e) => {
                    unknown.push((line, e));
                    None
                }
                Route::Rejected => None,
            },
        });
        let counts = match first {
            Some(rollout_id) => self.store.ingest_streaming(rollout_id, stream).await?,
            None => {
                stream.for_each(drop);
                Ingested::default()
            }
        };
        report.stored(counts);
        self.route_into(&mut routes, &live, unknown, &mut others, &mut report).await?;
        self.store_batches(others, &mut report).await?;
        report.errors.sort_by_key(|e| e.line);
        self.announce(&report);
        self.telemetry.record_ingest(report.accepted, report.duplicates, report.rejected);
        Ok(report)
    }

    /// Stores events parsed by [`parse_lines`] in the live rollouts they belong to, a
    /// transaction per rollout, adding what it rejects to `report` (the parse's).
    #[tracing::instrument(name = "ingest_batch", skip_all, fields(accepted, duplicates, rejected))]
    pub async fn store_parsed(&self, parsed: Vec<(u64, UploadEvent)>, mut report: IngestReport) -> Result<IngestReport, AppError> {
        let live = self.store.live_rollouts(None).await?;
        let mut batches = Batches::new();
        self.route_into(&mut self.routes(), &live, parsed, &mut batches, &mut report).await?;
        self.store_batches(batches, &mut report).await?;
        self.announce(&report);
        Ok(report)
    }

    /// A fresh router of events, for one batch.
    fn routes(&self) -> Routes {
        let now = (self.clock)();
        Routes {
            oldest: Timestamp(now.millis() - self.retention.millis()),
            newest: now.plus(FUTURE_TOLERANCE),
            retention_days: self.retention.secs() / 86_400,
            destinations: HashMap::new(),
        }
    }

    /// Routes parsed events into `batches` by rollout, looking up the rollouts of their flags
    /// as they come; refusals go into `report`.
    async fn route_into(
        &self,
        routes: &mut Routes,
        live: &[LiveRollout],
        parsed: Vec<(u64, UploadEvent)>,
        batches: &mut Batches,
        report: &mut IngestReport,
    ) -> Result<(), AppError> {
        for (line, e) in parsed {
            routes.resolve(self, live, &e.flag).await?;
            match routes.route(line, e, report) {
                Route::To(rollout_id, new) => batches.entry(rollout_id).or_default().push(new),
                Route::Rejected => {}
                Route::Unknown(_) => unreachable!("the event's flag was resolved just before"),
            }
        }
        Ok(())
    }

    /// Stores each rollout's batch in a transaction of its own, counting them into `report`.
    async fn store_batches(&self, batches: Batches, report: &mut IngestReport) -> Result<(), AppError> {
        for (rollout_id, batch) in batches {
            report.stored(self.store.ingest(rollout_id, batch).await?);
        }
        Ok(())
    }

    /// Tells the fold and the guard loop that events were stored, if any were.
    fn announce(&self, report: &IngestReport) {
        let span = tracing::Span::current();
        span.record("accepted", report.accepted);
        span.record("duplicates", report.duplicates);
        span.record("rejected", report.rejected);
        tracing::debug!(accepted = report.accepted, duplicates = report.duplicates, rejected = report.rejected, "batch stored");
        if report.accepted > 0 {
            self.fold.notify_one();
            if let Some(waker) = &self.stored {
                waker.notify_one();
            }
        }
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

    /// Control and treatment over `[from, to)` (at most [`MAX_WINDOW`]), with a series of at
    /// most ~240 points.
    pub async fn window(&self, rollout_id: i64, from: Timestamp, to: Timestamp, filter: &RollupFilter) -> Result<WindowView, AppError> {
        if from >= to {
            return Err(AppError::invalid("from", "must be before `to`"));
        }
        if to.millis() - from.millis() > MAX_WINDOW.millis() {
            return Err(AppError::invalid("from", format!("a window spans at most {} days", MAX_WINDOW.secs() / 86_400)));
        }
        let rows = self.store.window_rows(rollout_id, from, to, filter).await?;
        let rows = rows.into_iter().map(|(key, stats)| (key.minute, key.variant, stats)).collect();
        self.window_of(rollout_id, from, to, rows).await
    }

    /// Like [`Metrics::window`], over the stage spans in `[from, to)` each read from its own
    /// source (the event store or a Prometheus pull of the whole span, which the guard's pull
    /// of the current stage shares): the charts of a rollout that reads Prometheus.
    pub async fn window_by_stage(
        &self,
        plan: &Plan,
        rollout_id: i64,
        spans: &[StageSpan],
        from: Timestamp,
        to: Timestamp,
    ) -> Result<(WindowView, Vec<Unvouched>), AppError> {
        let (mut rows, mut unvouched) = (Vec::new(), Vec::new());
        // Whole minutes, the one `from` falls in included (as the event store's window reads).
        let first_minute = Timestamp(from.millis().div_euclid(60_000) * 60_000);
        for span in spans.iter().filter(|s| s.from < to && s.to.is_none_or(|end| end > from)) {
            let end = span.to.unwrap_or(to).min(to);
            // A Prometheus span is pulled from its start (its kept tally's key); the event store
            // is read for the window's part only.
            let reads_prometheus = plan.source_for(app::domain::units::StageIndex(span.stage.max(0) as u32)).is_some();
            let start = if reads_prometheus { span.from } else { span.from.max(first_minute) };
            let evidence = self.stage_evidence(plan, rollout_id, span.stage, start, Timestamp(end.millis() + 60_000)).await?;
            if let Some(problem) = evidence.problem {
                unvouched.push(Unvouched { stage: span.stage, from: span.from.max(from), to: end, problem: problem.to_string() });
            }
            let StageRows { control, treatment } = evidence.rows;
            for (variant, minutes) in [(Variant::Control, control), (Variant::Treatment, treatment)] {
                rows.extend(
                    minutes
                        .into_iter()
                        .filter(|(minute, _)| *minute >= first_minute && *minute < to)
                        .map(|(minute, s)| (minute, variant, s)),
                );
            }
        }
        rows.sort_by_key(|(minute, _, _)| *minute);
        Ok((self.window_of(rollout_id, from, to, rows).await?, unvouched))
    }

    /// The window over rows of (minute, arm, stats), oldest first.
    async fn window_of(
        &self,
        rollout_id: i64,
        from: Timestamp,
        to: Timestamp,
        rows: Vec<(Timestamp, Variant, Stats)>,
    ) -> Result<WindowView, AppError> {
        let minutes = ((to.millis() - from.millis()) as f64 / 60_000.0).max(1.0);
        let step_minutes = ((minutes / 240.0).ceil() as i64).max(1);
        let step_ms = step_minutes * 60_000;
        let (mut control, mut treatment) = (Stats::default(), Stats::default());
        let mut steps: Vec<(Timestamp, Stats, Stats)> = Vec::new();
        for (minute, variant, stats) in rows {
            let at = Timestamp(from.millis() + (minute.millis() - from.millis()).div_euclid(step_ms) * step_ms);
            if steps.last().is_none_or(|(t, _, _)| *t != at) {
                steps.push((at, Stats::default(), Stats::default()));
            }
            let (_, c, t) = steps.last_mut().expect("pushed above");
            match variant {
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
    pub async fn arms(&self, rollout_id: i64, stage: Option<i32>, from: Timestamp, to: Timestamp) -> Result<(Stats, Stats), StoreError> {
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

    /// One stage's evidence over `[from, to)` from the source `plan` names: the event store's
    /// rows, or a pull from Prometheus with each query's receipt and what it cannot vouch for.
    /// `to` is a minute past the span's end (the rows are whole minutes), so Prometheus is read
    /// up to `to` − 1 minute, and never past now.
    pub async fn stage_evidence(
        &self,
        plan: &Plan,
        rollout_id: i64,
        stage: i32,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Evidence, StoreError> {
        let index = app::domain::units::StageIndex(stage.max(0) as u32);
        match plan.source_for(index) {
            None => Ok(Evidence { rows: self.stage_minutes(rollout_id, stage, from, to).await?, ..Evidence::default() }),
            Some(source) => {
                let end = Timestamp(to.millis() - 60_000);
                // An arm the stage serves to nobody may have no series, or stale ones.
                let served = plan.stage(index).map(|s| s.flag);
                let share = served.map_or(0, |f| if f.enabled { f.percentage.get() } else { 0 });
                let carry = [share > 0, share < 100];
                Ok(self.prometheus.pull(rollout_id, stage, source, from, end, self.now(), carry).await.as_ref().clone())
            }
        }
    }

    /// One stage over `[from, to)`, each arm minute by minute (oldest first), as the guard loop
    /// and the gates judge it, from the event store. A store error keeps its kind (an outage is not corrupt data).
    pub async fn stage_minutes(&self, rollout_id: i64, stage: i32, from: Timestamp, to: Timestamp) -> Result<StageRows, StoreError> {
        let filter = RollupFilter { stage: Some(stage), ..Default::default() };
        let mut rows = StageRows::default();
        for (key, stats) in self.store.window_rows(rollout_id, from, to, &filter).await? {
            match key.variant {
                Variant::Control => rows.control.push((key.minute, stats)),
                Variant::Treatment => rows.treatment.push((key.minute, stats)),
            }
        }
        rows.control.sort_by_key(|(minute, _)| *minute);
        rows.treatment.sort_by_key(|(minute, _)| *minute);
        Ok(rows)
    }

    /// The stage's uploads of `[from, to)` by provider and by file type, both arms of each
    /// (providers first, each list by name), from the detailed rollups with the pending deltas:
    /// the groups the impact is also shown for.
    pub async fn groups(&self, rollout_id: i64, stage: i32, from: Timestamp, to: Timestamp) -> Result<Vec<Group>, StoreError> {
        let filter = RollupFilter { stage: Some(stage), ..Default::default() };
        let mut groups: std::collections::BTreeMap<(u8, String), [Stats; 2]> = std::collections::BTreeMap::new();
        for (key, stats) in self.store.rollups(rollout_id, from, to, &filter).await? {
            let arm = usize::from(key.variant == Variant::Control);
            for group in [(0, key.provider.clone()), (1, key.file_type.clone())] {
                groups.entry(group).or_default()[arm].merge(&stats);
            }
        }
        // Providers and file types are the senders' free text: the most used of each kind are
        // shown, the rest summed into one group.
        let mut out = Vec::new();
        for (kind, what) in [(0u8, "provider"), (1, "file type")] {
            let mut of_kind: Vec<(String, [Stats; 2])> =
                groups.iter().filter(|((k, _), _)| *k == kind).map(|((_, name), arms)| (name.clone(), arms.clone())).collect();
            of_kind.sort_by_key(|(_, [treatment, control])| std::cmp::Reverse(treatment.count() + control.count()));
            let rest = of_kind.split_off(of_kind.len().min(MAX_GROUPS));
            of_kind.sort_by(|a, b| a.0.cmp(&b.0));
            out.extend(of_kind.into_iter().map(|(name, [treatment, control])| Group {
                label: format!("{what} {name}"),
                treatment,
                control,
            }));
            if !rest.is_empty() {
                let mut other =
                    Group { label: format!("{} other {what}s", rest.len()), treatment: Stats::default(), control: Stats::default() };
                for (_, [treatment, control]) in &rest {
                    other.treatment.merge(treatment);
                    other.control.merge(control);
                }
                out.push(other);
            }
        }
        Ok(out)
    }

    /// The stage's treatment uploads of `[from, to)` by end-to-end matrix cell (file type, size
    /// class, provider), from the detailed rollups with the pending deltas.
    pub async fn matrix_rows(&self, rollout_id: i64, stage: i32, from: Timestamp, to: Timestamp) -> Result<Vec<CellRow>, StoreError> {
        let filter = RollupFilter { stage: Some(stage), ..Default::default() };
        let mut cells: HashMap<(String, u32, String), Stats> = HashMap::new();
        for (key, stats) in self.store.rollups(rollout_id, from, to, &filter).await? {
            if key.variant == Variant::Treatment {
                cells.entry((key.file_type, key.size_class_mb.max(0) as u32, key.provider)).or_default().merge(&stats);
            }
        }
        Ok(cells.into_iter().map(|((file_type, size, provider), stats)| (file_type, size, provider, stats)).collect())
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
