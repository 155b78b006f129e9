//! Pulled series → per-minute rows: each counter's increases (restarts counted from zero),
//! histograms spread within their buckets, a `Tally` grown pull by pull, each query's receipt
//! and the first problem found.

use super::problem::Problem;
use super::query::{Arm, Query, Reads};
use super::{MatrixLabels, PrometheusSource};
use crate::domain::stats::{StageRows, Stats};
use crate::domain::units::{Span, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One series a query returned: its labels and its raw samples, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<(Timestamp, f64)>,
}

/// The counts a pull came to for one query: what a decision's receipt shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pulled {
    pub query: String,
    /// The time the query was evaluated at (the span's end).
    pub at: Timestamp,
    pub series: usize,
    /// The total increase over the span, summed over its series (per bucket for a histogram).
    pub increase: f64,
    /// Counter restarts seen and counted from zero.
    pub resets: u32,
}

/// What a pull came to: the per-minute rows the statistics read, each query's receipt, the
/// span's uploads by matrix cell (when the source names `matrix_labels`), and the first problem
/// found (if any, every verdict on these rows is inconclusive).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evidence {
    pub rows: StageRows,
    pub pulled: Vec<Pulled>,
    pub cells: Vec<PulledCell>,
    pub problem: Option<Problem>,
}

/// One matrix cell's uploads over the span, each arm (treatment, control), as the series'
/// labels name the cell (a label a series lacks is empty).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PulledCell {
    pub file_type: String,
    pub size: String,
    pub provider: String,
    pub arms: [Stats; 2],
}

/// A cell's (file type, size, provider) label values.
type CellKey = (String, String, String);

impl PulledCell {
    /// The size label as the plan's size class: a number of megabytes (`10`, `10MB`, `10 mb`)
    /// classed by `sizes_mb` as an event's size is; `None` when it is not such a number.
    pub fn size_class_mb(&self, sizes_mb: &[u32]) -> Option<u32> {
        let text = self.size.trim();
        let number = text.strip_suffix("MB").or_else(|| text.strip_suffix("mb")).unwrap_or(text).trim();
        let mb: f64 = number.parse().ok().filter(|mb: &f64| mb.is_finite() && *mb >= 0.0)?;
        Some(crate::domain::stats::size_class_mb((mb * 1_048_576.0).round() as u64, sizes_mb))
    }
}

/// One series' steps over a span: each increase at its minute, the restarts seen, and the
/// first gap (the samples on either side).
pub(super) struct Steps {
    pub(super) steps: Vec<(Timestamp, f64)>,
    pub(super) resets: u32,
    pub(super) gap: Option<(Timestamp, Timestamp)>,
}

/// The increase between consecutive samples of one counter series over `(from, to]`, each at the
/// minute of its later sample; a drop is a restart, counted from zero. The first sample only
/// starts the count (as `increase()` does: a counter first seen mid-span counts from its first
/// scrape, so services should create their series at zero). Also reports restarts and the first
/// gap longer than `max_gap` whose later sample lies in the span.
pub(super) fn increases(samples: &[(Timestamp, f64)], from: Timestamp, to: Timestamp, max_gap: Span) -> Steps {
    let (mut out, mut resets, mut gap) = (Vec::new(), 0, None);
    for pair in samples.windows(2) {
        let ((t0, v0), (t1, v1)) = (pair[0], pair[1]);
        if t1 <= from || t1 > to {
            continue;
        }
        if gap.is_none() && t1.millis() - t0.millis() > max_gap.millis() {
            gap = Some((t0, t1));
        }
        let amount = if v1 < v0 {
            resets += 1;
            v1
        } else {
            v1 - v0
        };
        out.push((Timestamp(t1.millis().div_euclid(60_000) * 60_000), amount));
    }
    Steps { steps: out, resets, gap }
}

/// Turns the series each query returned into per-minute rows over `(from, to]`, judged at
/// `now` for staleness. `answers` holds, per query of [`PrometheusSource::queries`] that was
/// answered, its series; `carry` says which arms (treatment, control) the stage serves traffic
/// to: an arm with none may have no series or stale ones.
pub fn evidence(
    source: &PrometheusSource,
    answers: &[(Query, Vec<Series>)],
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
    carry: [bool; 2],
) -> Evidence {
    let mut tally = Tally::new(source, from, carry);
    tally.add(source, answers, to);
    tally.evidence(source, to, now)
}

/// A span's figures grown sample by sample: what [`evidence`] computes in one go, kept so that
/// a later pull adds only the samples since the last (each series continues from its last
/// sample, so a step across two pulls counts once, and a restart or gap across them is seen).
#[derive(Clone, Debug)]
pub struct Tally {
    from: Timestamp,
    carry: [bool; 2],
    rows: [BTreeMap<Timestamp, Stats>; 2],
    /// Per arm, each minute's latency and memory sums from the histograms' `_sum` series.
    sums: [[BTreeMap<Timestamp, f64>; 2]; 2],
    /// Per query of [`PrometheusSource::queries`], in order.
    queries: Vec<QueryTally>,
    /// Problems that stay once seen in the span (a gap, an unknown outcome).
    seen: Option<Problem>,
    /// The span's totals by matrix cell (only when the source names `matrix_labels`): each
    /// arm's stats, and its latency and memory sums from the `_sum` series once seen.
    cells: BTreeMap<CellKey, CellTally>,
}

#[derive(Clone, Debug, Default)]
struct CellTally {
    arms: [Stats; 2],
    sums: [[Option<f64>; 2]; 2],
}

#[derive(Clone, Debug)]
struct QueryTally {
    query: Query,
    /// Each series' last counted sample, by a hash of its labels (a week's tally of a query
    /// with many series keeps one word per series, not its labels).
    last: BTreeMap<u64, (Timestamp, f64)>,
    increase: f64,
    resets: u32,
    /// For a histogram: the observations counted (its `+Inf` bucket's increase).
    observed: f64,
    /// Up to when this query has been answered.
    read_until: Option<Timestamp>,
    /// A gap the last read could not confirm: a series whose last counted sample lay before
    /// where that read began, and whose next sample came more than `max_gap` later. Samples
    /// written late may fill it, so the series waits at its last sample and the next read
    /// starts there; until then the span is not vouched for.
    unconfirmed: Option<(Timestamp, Timestamp)>,
}

/// A series' key in a [`QueryTally`]: a hash of its labels.
fn series_key(labels: &BTreeMap<String, String>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    labels.hash(&mut hasher);
    hasher.finish()
}

impl Tally {
    pub fn new(source: &PrometheusSource, from: Timestamp, carry: [bool; 2]) -> Tally {
        let queries = source
            .queries()
            .into_iter()
            .map(|query| QueryTally {
                query,
                last: BTreeMap::new(),
                increase: 0.0,
                resets: 0,
                observed: 0.0,
                read_until: None,
                unconfirmed: None,
            })
            .collect();
        Tally { from, carry, rows: Default::default(), sums: Default::default(), queries, seen: None, cells: BTreeMap::new() }
    }

    /// Where each query's next read starts: from the span's lookback the first time, else
    /// `max_gap` before where it was last answered (samples already counted are skipped, so
    /// the overlap only catches samples written late), or from the start of a gap the last
    /// read could not confirm.
    pub fn reads_from(&self, source: &PrometheusSource) -> Vec<Timestamp> {
        self.queries.iter().map(|q| self.read_start(q, source)).collect()
    }

    fn read_start(&self, q: &QueryTally, source: &PrometheusSource) -> Timestamp {
        let first = self.from.millis() - source.lookback().millis();
        let Some(until) = q.read_until else { return Timestamp(first) };
        let overlap = until.millis() - source.max_gap.millis();
        let unconfirmed = q.unconfirmed.map_or(overlap, |(t0, _)| t0.millis());
        Timestamp(overlap.min(unconfirmed).max(first))
    }

    /// Adds what `answers` (by query, answered up to `to`) hold beyond what was counted.
    pub fn add(&mut self, source: &PrometheusSource, answers: &[(Query, Vec<Series>)], to: Timestamp) {
        let range = to.since(Timestamp(self.from.millis() - source.lookback().millis()));
        for (query, series) in answers {
            let Some(index) = self.queries.iter().position(|q| &q.query == query) else { continue };
            let start = self.read_start(&self.queries[index], source);
            let mut unconfirmed: Option<(Timestamp, Timestamp)> = None;
            let text = query.text(range);
            let arm = usize::from(query.arm == Arm::Control);
            // Histogram buckets: per minute, each bound's increase; and per matrix cell.
            let mut buckets: BTreeMap<Timestamp, Vec<(f64, f64)>> = BTreeMap::new();
            let mut cell_buckets: BTreeMap<CellKey, Vec<(f64, f64)>> = BTreeMap::new();
            for s in series {
                let tally = &mut self.queries[index];
                let key = series_key(&s.labels);
                let last = tally.last.get(&key).copied();
                let next = last.and_then(|(t0, _)| s.samples.iter().find(|(t, _)| *t > t0).map(|(t1, _)| (t0, *t1)));
                if let Some((t0, t1)) = next.filter(|(t0, t1)| *t0 < start && t1.millis() - t0.millis() > source.max_gap.millis()) {
                    unconfirmed = Some(unconfirmed.map_or((t0, t1), |(a, b)| (a.min(t0), b.max(t1))));
                    continue;
                }
                let mut samples: Vec<(Timestamp, f64)> = last.into_iter().collect();
                samples.extend(s.samples.iter().copied().filter(|(t, _)| last.is_none_or(|(l, _)| *t > l)));
                let Some(newest) = samples.last().copied() else { continue };
                tally.last.insert(key, newest);
                let Steps { steps, resets, gap } = increases(&samples, self.from, to, source.max_gap);
                tally.resets += resets;
                if let Some((a, b)) = gap {
                    self.seen.get_or_insert(Problem::Gap { query: text.clone(), from: a, to: b });
                }
                let label = |name: &str| s.labels.get(name).map(String::as_str);
                let o = &source.outcomes;
                let outcome = label(&source.outcome_label);
                if query.reads == Reads::Uploads && ![&o.success, &o.error, &o.timeout].into_iter().any(|v| Some(v.as_str()) == outcome) {
                    self.seen.get_or_insert(Problem::UnknownOutcome { query: text.clone(), value: outcome.unwrap_or("").to_string() });
                }
                let le = label("le").and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::INFINITY);
                // The series' increase over these steps, whole uploads per step as the rows count them.
                let (mut total, mut uploads) = (0.0, 0);
                for (minute, amount) in steps {
                    tally.increase += amount;
                    total += amount;
                    let n = amount.round().max(0.0) as u64;
                    uploads += n;
                    match query.reads {
                        Reads::Uploads | Reads::Critical => count(self.rows[arm].entry(minute).or_default(), query.reads, outcome, o, n),
                        Reads::LatencyBuckets | Reads::MemoryBuckets => buckets.entry(minute).or_default().push((le, amount)),
                        Reads::LatencySum => *self.sums[arm][0].entry(minute).or_default() += amount,
                        Reads::MemorySum => *self.sums[arm][1].entry(minute).or_default() += amount,
                    }
                }
                // The same increase to the series' matrix cell, once per series (a bucket's bound
                // counts even without observations: it bounds the next bucket).
                let buckets_read = matches!(query.reads, Reads::LatencyBuckets | Reads::MemoryBuckets);
                let Some(labels) = source.matrix_labels.as_ref().filter(|_| total > 0.0 || buckets_read) else { continue };
                let key = cell_key(labels, &s.labels);
                match query.reads {
                    Reads::Uploads | Reads::Critical => {
                        count(&mut self.cells.entry(key).or_default().arms[arm], query.reads, outcome, o, uploads)
                    }
                    Reads::LatencyBuckets | Reads::MemoryBuckets => cell_buckets.entry(key).or_default().push((le, total)),
                    Reads::LatencySum => *self.cells.entry(key).or_default().sums[arm][0].get_or_insert(0.0) += total,
                    Reads::MemorySum => *self.cells.entry(key).or_default().sums[arm][1].get_or_insert(0.0) += total,
                }
            }
            let tally = &mut self.queries[index];
            for (minute, steps) in buckets {
                tally.observed += add_buckets(self.rows[arm].entry(minute).or_default(), query.reads, steps, source);
            }
            for (key, steps) in cell_buckets {
                add_buckets(&mut self.cells.entry(key).or_default().arms[arm], query.reads, steps, source);
            }
            tally.read_until = Some(tally.read_until.map_or(to, |t| t.max(to)));
            tally.unconfirmed = unconfirmed;
        }
    }

    /// The evidence counted so far, as of `to` (the span's end) and `now`.
    pub fn evidence(&self, source: &PrometheusSource, to: Timestamp, now: Timestamp) -> Evidence {
        let range = to.since(Timestamp(self.from.millis() - source.lookback().millis()));
        let mut problem = None;
        let mut pulled = Vec::new();
        for tally in self.queries.iter().filter(|q| q.read_until.is_some()) {
            let text = tally.query.text(range);
            let arm = usize::from(tally.query.arm == Arm::Control);
            if self.carry[arm] && tally.last.is_empty() {
                problem.get_or_insert(Problem::NoSeries { query: text.clone() });
            }
            // A series held at its last sample for an unconfirmed gap looks stale; the gap is
            // what the span is waiting on.
            if let Some((from, to)) = tally.unconfirmed {
                problem.get_or_insert(Problem::Gap { query: text.clone(), from, to });
            }
            let newest = tally.last.values().map(|(t, _)| *t).max();
            if let Some(newest) = newest.filter(|n| self.carry[arm] && now.min(to).millis() - n.millis() > source.max_staleness.millis()) {
                problem.get_or_insert(Problem::Stale { query: text.clone(), newest });
            }
            pulled.push(Pulled { query: text, at: to, series: tally.last.len(), increase: tally.increase, resets: tally.resets });
        }
        if let Some(seen) = &self.seen {
            problem.get_or_insert(seen.clone());
        }
        let mut rows = self.rows.clone();
        for (arm, minutes) in rows.iter_mut().enumerate() {
            // The sums as the histograms counted them, not as the buckets' shape suggests.
            for (minute, sum) in &self.sums[arm][0] {
                minutes.entry(*minute).or_default().latency_sum_ms = sum * source.latency_unit.to_ms();
            }
            for (minute, sum) in &self.sums[arm][1] {
                minutes.entry(*minute).or_default().memory_sum_mb = sum * source.memory_unit.to_mb();
            }
            let uploads: u64 = minutes.values().map(Stats::count).sum();
            let histograms = self.queries.iter().filter(|q| {
                q.query.arm == [Arm::Treatment, Arm::Control][arm] && matches!(q.query.reads, Reads::LatencyBuckets | Reads::MemoryBuckets)
            });
            for tally in histograms.filter(|q| q.read_until.is_some()) {
                let count = tally.observed.round().max(0.0) as u64;
                if self.carry[arm] && count.abs_diff(uploads) > (uploads / 100).max(2) {
                    problem.get_or_insert(Problem::Mismatch { query: tally.query.text(range), observed: count, uploads });
                }
            }
        }
        // Cells without uploads (a critical-error counter without the cell labels) are none.
        let cells = self
            .cells
            .iter()
            .filter(|(_, tally)| tally.arms.iter().any(|stats| stats.count() > 0))
            .map(|((file_type, size, provider), tally)| {
                let mut arms = tally.arms.clone();
                for (stats, [latency, memory]) in arms.iter_mut().zip(tally.sums) {
                    if let Some(sum) = latency {
                        stats.latency_sum_ms = sum * source.latency_unit.to_ms();
                    }
                    if let Some(sum) = memory {
                        stats.memory_sum_mb = sum * source.memory_unit.to_mb();
                    }
                }
                PulledCell { file_type: file_type.clone(), size: size.clone(), provider: provider.clone(), arms }
            })
            .collect();
        let [treatment, control] = rows;
        let rows = StageRows { treatment: treatment.into_iter().collect(), control: control.into_iter().collect() };
        Evidence { rows, pulled, cells, problem }
    }
}

/// A series' matrix cell, by the labels the source names (a label it lacks reads empty).
fn cell_key(labels: &MatrixLabels, of: &BTreeMap<String, String>) -> CellKey {
    let value = |name: &String| of.get(name).cloned().unwrap_or_default();
    (value(&labels.file_type), value(&labels.size_mb), value(&labels.provider))
}

/// Adds `n` uploads of `outcome` (or `n` critical errors) to `stats`; an outcome that is none
/// of the plan's counts nowhere (it is a problem of its own).
fn count(stats: &mut Stats, reads: Reads, outcome: Option<&str>, o: &super::Outcomes, n: u64) {
    match reads {
        Reads::Critical => stats.critical += n,
        _ if outcome == Some(o.success.as_str()) => stats.success += n,
        _ if outcome == Some(o.error.as_str()) => stats.error += n,
        _ if outcome == Some(o.timeout.as_str()) => stats.timeout += n,
        _ => {}
    }
}

/// Adds one minute of a histogram's bucket increases (`steps`: each `le` bound with one
/// series' increase; bounds repeat across series) to `stats`, each bucket's count spread evenly
/// over `(previous bound, bound]` as `histogram_quantile` reads it, and those above the last
/// finite bound at that bound. Returns the minute's observations.
fn add_buckets(stats: &mut Stats, reads: Reads, mut steps: Vec<(f64, f64)>, source: &PrometheusSource) -> f64 {
    steps.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut bounds: Vec<(f64, f64)> = Vec::new();
    for (le, amount) in steps {
        match bounds.last_mut() {
            Some(last) if last.0 == le => last.1 += amount,
            _ => bounds.push((le, amount)),
        }
    }
    let top = bounds.iter().rev().map(|b| b.0).find(|b| b.is_finite()).unwrap_or(0.0);
    let (mut lower, mut below) = (0.0, 0.0);
    for (le, cumulative) in bounds {
        let upper = if le.is_finite() { le } else { top };
        let count = (cumulative - below).round().max(0.0) as u64;
        below = cumulative.max(below);
        if count > 0 {
            if reads == Reads::LatencyBuckets {
                let unit = source.latency_unit.to_ms();
                stats.latency.add_uniform(lower * unit, upper * unit, count);
                stats.latency_sum_ms += (lower + upper) / 2.0 * unit * count as f64;
            } else {
                let (a, b) = (lower * source.memory_unit.to_mb(), upper * source.memory_unit.to_mb());
                stats.memory_sum_mb += (a + b) / 2.0 * count as f64;
                stats.memory_sq_sum_mb2 += (a * a + a * b + b * b) / 3.0 * count as f64;
                stats.memory_max_mb = stats.memory_max_mb.max(b);
            }
        }
        lower = upper;
    }
    below
}
