//! Rampart's own metrics, in the Prometheus text format (`GET /metrics`): counters and
//! histograms the request layer, the ingest path, the guard loop and the fold add to as they
//! work, and gauges read when the page is scraped ([`Gauges`]: outbox depth, pool use, stream
//! clients, each rollout's stage).
//!
//! A leaf: everything here is plain numbers; whoever owns a figure records it. Labels are
//! bounded by construction: routes are templates (`/api/v1/rollouts/{id}`), never URLs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Upper bounds of the request-latency buckets, in seconds.
const REQUEST_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Upper bounds of the guard tick's duration buckets, in seconds.
const TICK_BUCKETS: [f64; 8] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Counts per bucket (cumulative when rendered), their sum and total.
#[derive(Clone, Debug, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len()];
        }
        if let Some(i) = bounds.iter().position(|&bound| seconds <= bound) {
            self.counts[i] += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let mut cumulative = 0;
        for (i, bound) in bounds.iter().enumerate() {
            cumulative += self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{}le=\"{bound}\"}} {cumulative}", comma(labels));
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{}le=\"+Inf\"}} {}", comma(labels), self.count);
        let braced = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braced} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braced} {}", self.count);
    }
}

fn comma(labels: &str) -> &'static str {
    if labels.is_empty() { "" } else { "," }
}

/// How a guard tick ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TickOutcome {
    /// This process held the lock and judged every live rollout.
    Judged,
    /// Another process held the lock (it is the one judging).
    Skipped,
    /// The tick failed (the database, most often); the loop retries.
    Failed,
}

/// The figures recorded as Rampart works. One per process, shared by `Arc`.
#[derive(Debug)]
pub struct Telemetry {
    started: std::time::Instant,
    /// (route, method, status) → requests.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// route → latency.
    latency: Mutex<BTreeMap<String, Histogram>>,
    ingest_batches: AtomicU64,
    events_accepted: AtomicU64,
    events_duplicate: AtomicU64,
    events_rejected: AtomicU64,
    ticks: [AtomicU64; 3],
    tick_duration: Mutex<Histogram>,
    /// When the last tick ended that judged or found another process judging, in ms since 1970.
    last_tick_ms: AtomicI64,
    rollbacks: AtomicU64,
    alerts: AtomicU64,
    fold_failures: AtomicU64,
    /// Retention runs that succeeded and failed; what they removed.
    retention_runs: [AtomicU64; 2],
    /// Event partitions, sessions, idempotency keys, device cookies and webhook deliveries removed.
    removed: [AtomicU64; 5],
    last_retention_ms: AtomicI64,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            started: std::time::Instant::now(),
            requests: Mutex::default(),
            latency: Mutex::default(),
            ingest_batches: AtomicU64::default(),
            events_accepted: AtomicU64::default(),
            events_duplicate: AtomicU64::default(),
            events_rejected: AtomicU64::default(),
            ticks: Default::default(),
            tick_duration: Mutex::default(),
            last_tick_ms: AtomicI64::default(),
            rollbacks: AtomicU64::default(),
            alerts: AtomicU64::default(),
            fold_failures: AtomicU64::default(),
            retention_runs: Default::default(),
            removed: Default::default(),
            last_retention_ms: AtomicI64::default(),
        }
    }
}

impl Telemetry {
    /// How long this process has been recording.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Counts a request. Any word is a valid HTTP method, so methods outside the standard ones
    /// count as `other`: a caller cannot grow the page by inventing them.
    pub fn record_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        const KNOWN: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
        let method = KNOWN.into_iter().find(|known| *known == method).unwrap_or("other");
        let key = (route.to_string(), method.to_string(), status);
        *self.requests.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default() += 1;
        self.latency.lock().unwrap_or_else(|p| p.into_inner()).entry(route.to_string()).or_default().observe(&REQUEST_BUCKETS, seconds);
    }

    pub fn record_ingest(&self, accepted: u64, duplicates: u64, rejected: u64) {
        self.ingest_batches.fetch_add(1, Relaxed);
        self.events_accepted.fetch_add(accepted, Relaxed);
        self.events_duplicate.fetch_add(duplicates, Relaxed);
        self.events_rejected.fetch_add(rejected, Relaxed);
    }

    /// A guard tick that ended at `now_ms` after `seconds`, having rolled back and alerted so often.
    pub fn record_tick(&self, outcome: TickOutcome, now_ms: i64, seconds: f64, rollbacks: u64, alerts: u64) {
        self.ticks[outcome as usize].fetch_add(1, Relaxed);
        if outcome != TickOutcome::Failed {
            self.last_tick_ms.fetch_max(now_ms, Relaxed);
        }
        if outcome == TickOutcome::Judged {
            self.tick_duration.lock().unwrap_or_else(|p| p.into_inner()).observe(&TICK_BUCKETS, seconds);
        }
        self.rollbacks.fetch_add(rollbacks, Relaxed);
        self.alerts.fetch_add(alerts, Relaxed);
    }

    /// An hourly retention run: the event partitions it dropped, and the expired sessions,
    /// idempotency keys and device cookies it purged (`None`: that part failed).
    pub fn record_retention(&self, partitions: Option<u64>, purged: Option<[u64; 3]>, deliveries: Option<u64>) {
        let ok = partitions.is_some() && purged.is_some() && deliveries.is_some();
        self.retention_runs[usize::from(!ok)].fetch_add(1, Relaxed);
        if ok {
            self.last_retention_ms.store(chrono::Utc::now().timestamp_millis(), Relaxed);
        }
        self.removed[0].fetch_add(partitions.unwrap_or(0), Relaxed);
        for (i, n) in purged.unwrap_or_default().into_iter().enumerate() {
            self.removed[i + 1].fetch_add(n, Relaxed);
        }
        self.removed[4].fetch_add(deliveries.unwrap_or(0), Relaxed);
    }

    pub fn record_fold_failure(&self) {
        self.fold_failures.fetch_add(1, Relaxed);
    }

    /// When the guard loop last completed a tick (judged, or found another process judging).
    pub fn last_tick_ms(&self) -> Option<i64> {
        Some(self.last_tick_ms.load(Relaxed)).filter(|&ms| ms > 0)
    }

    /// The whole page, recorded figures first, then `gauges` as read at `now_ms`.
    pub fn render(&self, gauges: &Gauges, now_ms: i64) -> String {
        let mut out = String::with_capacity(8 * 1024);
        header(&mut out, "rampart_build_info", "gauge", "The running version.");
        let _ = writeln!(out, "rampart_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));

        header(&mut out, "rampart_http_requests_total", "counter", "HTTP requests answered, by route template, method and status.");
        for ((route, method, status), n) in self.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "rampart_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}", escape(route));
        }
        header(&mut out, "rampart_http_request_duration_seconds", "histogram", "Time to answer an HTTP request, by route template.");
        for (route, histogram) in self.latency.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            histogram.render(&mut out, "rampart_http_request_duration_seconds", &format!("route=\"{}\"", escape(route)), &REQUEST_BUCKETS);
        }

        counter(
            &mut out,
            "rampart_ingest_batches_total",
            "Event batches received (ingest requests and import batches).",
            &self.ingest_batches,
        );
        header(&mut out, "rampart_ingest_events_total", "counter", "Events received, by outcome.");
        for (outcome, n) in
            [("accepted", &self.events_accepted), ("duplicate", &self.events_duplicate), ("rejected", &self.events_rejected)]
        {
            let _ = writeln!(out, "rampart_ingest_events_total{{outcome=\"{outcome}\"}} {}", n.load(Relaxed));
        }
        counter(&mut out, "rampart_rollup_fold_failures_total", "Failed folds of rollup deltas (retried).", &self.fold_failures);
        header(&mut out, "rampart_retention_runs_total", "counter", "Hourly retention runs, by outcome.");
        for (outcome, n) in ["ok", "failed"].iter().zip(&self.retention_runs) {
            let _ = writeln!(out, "rampart_retention_runs_total{{outcome=\"{outcome}\"}} {}", n.load(Relaxed));
        }
        header(&mut out, "rampart_retention_removed_total", "counter", "What retention removed, by kind.");
        for (kind, n) in
            ["event_partitions", "sessions", "idempotency_keys", "device_cookies", "webhook_deliveries"].iter().zip(&self.removed)
        {
            let _ = writeln!(out, "rampart_retention_removed_total{{kind=\"{kind}\"}} {}", n.load(Relaxed));
        }
        header(&mut out, "rampart_retention_last_success_timestamp_seconds", "gauge", "When retention last ran in full (0: not yet).");
        let _ = writeln!(out, "rampart_retention_last_success_timestamp_seconds {}", self.last_retention_ms.load(Relaxed) / 1000);

        header(&mut out, "rampart_guard_ticks_total", "counter", "Guard loop ticks, by outcome (skipped: another process held the lock).");
        for (outcome, n) in ["judged", "skipped", "failed"].iter().zip(&self.ticks) {
            let _ = writeln!(out, "rampart_guard_ticks_total{{outcome=\"{outcome}\"}} {}", n.load(Relaxed));
        }
        header(&mut out, "rampart_guard_tick_duration_seconds", "histogram", "Time a judging guard tick took.");
        self.tick_duration.lock().unwrap_or_else(|p| p.into_inner()).render(
            &mut out,
            "rampart_guard_tick_duration_seconds",
            "",
            &TICK_BUCKETS,
        );
        header(&mut out, "rampart_guard_last_tick_age_seconds", "gauge", "Seconds since the guard loop last completed a tick (-1: never).");
        let age = self.last_tick_ms().map_or(-1.0, |ms| (now_ms - ms).max(0) as f64 / 1000.0);
        let _ = writeln!(out, "rampart_guard_last_tick_age_seconds {age}");
        counter(&mut out, "rampart_guard_rollbacks_total", "Automatic rollbacks made by this process.", &self.rollbacks);
        counter(&mut out, "rampart_guard_alerts_total", "Review alerts raised by this process.", &self.alerts);

        gauges.render(&mut out);
        out
    }
}

/// Figures read when the page is scraped.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    pub outbox_pending: i64,
    pub outbox_failed: i64,
    pub outbox_oldest_pending_seconds: f64,
    pub pool_size: u32,
    pub pool_idle: u32,
    pub pool_max: u32,
    pub flag_stream_clients: usize,
    pub dashboard_stream_clients: usize,
    pub rollouts: Vec<RolloutGauge>,
}

/// One live rollout as the metrics show it.
#[derive(Clone, Debug)]
pub struct RolloutGauge {
    pub id: i64,
    pub flag: String,
    pub status: String,
    pub stage: u32,
    pub percentage: f64,
    pub open_alerts: i64,
    /// The current stage's figures, as the control room judges them now (none before a stage
    /// with criteria, or when they could not be read).
    pub figures: Option<StageFigures>,
}

/// A live rollout's current stage as its gates judge it, for a team's own dashboards and alerts.
#[derive(Clone, Debug, Default)]
pub struct StageFigures {
    /// `events` or `prometheus`.
    pub source: &'static str,
    /// False while the source cannot vouch for its figures (every verdict is inconclusive then).
    pub source_ok: bool,
    /// Per arm (`treatment`, `control`): uploads and failed uploads (errors and timeouts) in the
    /// stage so far.
    pub arms: Vec<(&'static str, u64, u64)>,
    pub gates: Vec<GateFigure>,
}

/// One gate: its verdict (`pass`, `fail`, `inconclusive`), what was observed with its interval,
/// and the plan's limit, in the gate's own unit (a percentage, a count).
#[derive(Clone, Debug)]
pub struct GateFigure {
    pub criterion: String,
    pub verdict: &'static str,
    pub observed: Option<f64>,
    pub interval: Option<(f64, f64)>,
    pub threshold: f64,
}

impl Gauges {
    fn render(&self, out: &mut String) {
        header(out, "rampart_webhook_outbox_pending", "gauge", "Webhook deliveries waiting to be sent or retried.");
        let _ = writeln!(out, "rampart_webhook_outbox_pending {}", self.outbox_pending);
        header(out, "rampart_webhook_outbox_failed", "gauge", "Webhook deliveries given up after the last retry.");
        let _ = writeln!(out, "rampart_webhook_outbox_failed {}", self.outbox_failed);
        header(out, "rampart_webhook_outbox_oldest_pending_seconds", "gauge", "Age of the oldest pending webhook delivery (0: none).");
        let _ = writeln!(out, "rampart_webhook_outbox_oldest_pending_seconds {}", self.outbox_oldest_pending_seconds);
        header(out, "rampart_db_pool_connections", "gauge", "Database connections of this process, by state.");
        let _ = writeln!(out, "rampart_db_pool_connections{{state=\"idle\"}} {}", self.pool_idle);
        let _ = writeln!(out, "rampart_db_pool_connections{{state=\"busy\"}} {}", self.pool_size.saturating_sub(self.pool_idle));
        header(out, "rampart_db_pool_max_connections", "gauge", "The pool's limit.");
        let _ = writeln!(out, "rampart_db_pool_max_connections {}", self.pool_max);
        header(out, "rampart_stream_clients", "gauge", "Open server-sent-event streams, by kind.");
        let _ = writeln!(out, "rampart_stream_clients{{kind=\"flags\"}} {}", self.flag_stream_clients);
        let _ = writeln!(out, "rampart_stream_clients{{kind=\"dashboard\"}} {}", self.dashboard_stream_clients);

        header(out, "rampart_rollout_stage", "gauge", "Each live rollout's current stage (0 is the first), with its status.");
        for r in &self.rollouts {
            let _ = writeln!(
                out,
                "rampart_rollout_stage{{rollout=\"{}\",flag=\"{}\",status=\"{}\"}} {}",
                r.id,
                escape(&r.flag),
                r.status,
                r.stage
            );
        }
        header(out, "rampart_rollout_percentage", "gauge", "Share of units each live rollout serves the flag to, in percent.");
        for r in &self.rollouts {
            let _ = writeln!(out, "rampart_rollout_percentage{{rollout=\"{}\",flag=\"{}\"}} {}", r.id, escape(&r.flag), r.percentage);
        }
        header(out, "rampart_rollout_open_alerts", "gauge", "Unacknowledged alerts of each live rollout.");
        for r in &self.rollouts {
            let _ = writeln!(out, "rampart_rollout_open_alerts{{rollout=\"{}\",flag=\"{}\"}} {}", r.id, escape(&r.flag), r.open_alerts);
        }
        self.render_figures(out);
    }

    /// The current stages' arms and gates, one family per figure.
    fn render_figures(&self, out: &mut String) {
        let judged: Vec<(String, &StageFigures)> = self
            .rollouts
            .iter()
            .filter_map(|r| r.figures.as_ref().map(|f| (format!("rollout=\"{}\",flag=\"{}\"", r.id, escape(&r.flag)), f)))
            .collect();
        header(
            out,
            "rampart_rollout_source_ok",
            "gauge",
            "1 when the rollout's metric source vouches for its figures, 0 while every verdict is inconclusive for want of them.",
        );
        for (labels, f) in &judged {
            let _ = writeln!(out, "rampart_rollout_source_ok{{{labels},source=\"{}\"}} {}", f.source, u8::from(f.source_ok));
        }
        header(out, "rampart_rollout_uploads", "gauge", "Uploads in the current stage so far, by arm.");
        for (labels, f) in &judged {
            for (arm, uploads, _) in &f.arms {
                let _ = writeln!(out, "rampart_rollout_uploads{{{labels},arm=\"{arm}\"}} {uploads}");
            }
        }
        header(out, "rampart_rollout_failures", "gauge", "Failed uploads (errors and timeouts) in the current stage so far, by arm.");
        for (labels, f) in &judged {
            for (arm, _, failures) in &f.arms {
                let _ = writeln!(out, "rampart_rollout_failures{{{labels},arm=\"{arm}\"}} {failures}");
            }
        }
        header(out, "rampart_rollout_gate_verdict", "gauge", "Each gate of the current stage: 1 for its verdict, 0 for the others.");
        for (labels, f) in &judged {
            for g in &f.gates {
                for verdict in ["pass", "fail", "inconclusive"] {
                    let on = u8::from(g.verdict == verdict);
                    let _ =
                        writeln!(out, "rampart_rollout_gate_verdict{{{labels},criterion=\"{}\",verdict=\"{verdict}\"}} {on}", g.criterion);
                }
            }
        }
        header(out, "rampart_rollout_gate_observed", "gauge", "What each gate observed, in its own unit (a percentage, a count).");
        for (labels, f) in &judged {
            for g in f.gates.iter().filter(|g| g.observed.is_some()) {
                let _ = writeln!(
                    out,
                    "rampart_rollout_gate_observed{{{labels},criterion=\"{}\"}} {}",
                    g.criterion,
                    g.observed.unwrap_or_default()
                );
            }
        }
        header(out, "rampart_rollout_gate_interval", "gauge", "Each gate's anytime-valid interval around what it observed, by bound.");
        for (labels, f) in &judged {
            for g in &f.gates {
                if let Some((low, high)) = g.interval {
                    let criterion = &g.criterion;
                    let _ = writeln!(out, "rampart_rollout_gate_interval{{{labels},criterion=\"{criterion}\",bound=\"low\"}} {low}");
                    let _ = writeln!(out, "rampart_rollout_gate_interval{{{labels},criterion=\"{criterion}\",bound=\"high\"}} {high}");
                }
            }
        }
        header(out, "rampart_rollout_gate_threshold", "gauge", "Each gate's limit in the plan, in the gate's unit.");
        for (labels, f) in &judged {
            for g in &f.gates {
                let _ = writeln!(out, "rampart_rollout_gate_threshold{{{labels},criterion=\"{}\"}} {}", g.criterion, g.threshold);
            }
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, value: &AtomicU64) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {}", value.load(Relaxed));
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests;
