//! Ingest: batches of upload events (NDJSON, JSON arrays, files) read line by line, each event
//! routed to its rollout as it is parsed and stored, each bad line reported by number and field.

use super::Metrics;
use crate::store::{Ingested, LiveRollout, NewEvent, StageSpan};
use app::domain::event::{self, FieldError, UploadEvent};
use app::domain::stats::size_class_mb;
use app::domain::units::{Span, Timestamp, Version};
use app::error::AppError;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// At most this many line errors are listed in one report; the counts stay exact.
const ERRORS_LISTED: usize = 1000;
/// Events further in the future than this are refused: a clock is wrong somewhere.
const FUTURE_TOLERANCE: Span = Span::from_secs(3600);
/// Size classes when a plan has no matrix.
const DEFAULT_SIZES_MB: [u32; 4] = [1, 10, 50, 100];

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

/// Where an event goes: its rollout, the size classes of its plan, and its stage history as of
/// `version` of its state (every transition, the only writer of the history, bumps the version).
pub(super) struct Destination {
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
pub(super) fn readings<'a>(lines: impl Iterator<Item = (u64, &'a str)>) -> impl Iterator<Item = Reading> {
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

impl Metrics {
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
}
