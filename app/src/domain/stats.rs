//! Aggregates of upload events over a window: counts per outcome, a latency sketch, memory.
//! They merge, so per-minute rollups add up to any window, and a window of raw events gives the
//! same numbers as the rollups made from them.

use super::event::{Outcome, UploadEvent};
use super::sequential::{MeanInterval, MeanSequence};
use super::sketch::Sketch;
use super::units::Timestamp;
use serde::{Deserialize, Serialize};

/// A stage's rollups as the guard and the gates read them: every minute of each arm, oldest
/// first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageRows {
    pub control: Vec<(Timestamp, Stats)>,
    pub treatment: Vec<(Timestamp, Stats)>,
}

impl StageRows {
    /// The control arm over every minute read.
    pub fn control(&self) -> Stats {
        total(&self.control)
    }

    /// The treatment over every minute read.
    pub fn treatment(&self) -> Stats {
        total(&self.treatment)
    }

    /// Uploads per arm, treatment then control, in the minutes that begin at or after `from`.
    pub fn uploads_from(&self, from: Timestamp) -> (u64, u64) {
        let count = |rows: &[(Timestamp, Stats)]| rows.iter().filter(|(minute, _)| *minute >= from).map(|(_, s)| s.count()).sum();
        (count(&self.treatment), count(&self.control))
    }
}

fn total(rows: &[(Timestamp, Stats)]) -> Stats {
    let mut all = Stats::default();
    rows.iter().for_each(|(_, stats)| all.merge(stats));
    all
}

/// Everything a gate or chart needs about a set of events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub success: u64,
    pub error: u64,
    pub timeout: u64,
    pub critical: u64,
    pub latency_sum_ms: f64,
    pub latency: Sketch,
    pub memory_sum_mb: f64,
    pub memory_max_mb: f64,
    /// The sum of the squared memory readings: their spread, for the memory rules' interval.
    #[serde(default)]
    pub memory_sq_sum_mb2: f64,
}

impl Stats {
    pub fn add(&mut self, event: &UploadEvent) {
        match event.outcome {
            Outcome::Success => self.success += 1,
            Outcome::Error => self.error += 1,
            Outcome::Timeout => self.timeout += 1,
        }
        self.critical += u64::from(event.critical);
        self.latency_sum_ms += event.latency_ms;
        self.latency.add(event.latency_ms);
        self.memory_sum_mb += event.memory_mb;
        self.memory_max_mb = self.memory_max_mb.max(event.memory_mb);
        self.memory_sq_sum_mb2 += event.memory_mb * event.memory_mb;
    }

    pub fn merge(&mut self, other: &Stats) {
        self.success += other.success;
        self.error += other.error;
        self.timeout += other.timeout;
        self.critical += other.critical;
        self.latency_sum_ms += other.latency_sum_ms;
        self.latency.merge(&other.latency);
        self.memory_sum_mb += other.memory_sum_mb;
        self.memory_max_mb = self.memory_max_mb.max(other.memory_max_mb);
        self.memory_sq_sum_mb2 += other.memory_sq_sum_mb2;
    }

    pub fn count(&self) -> u64 {
        self.success + self.error + self.timeout
    }

    fn rate(&self, n: u64) -> Option<f64> {
        let count = self.count();
        (count > 0).then(|| n as f64 * 100.0 / count as f64)
    }

    /// Percent of operations that succeeded.
    pub fn success_rate(&self) -> Option<f64> {
        self.rate(self.success)
    }

    pub fn error_rate(&self) -> Option<f64> {
        self.rate(self.error)
    }

    pub fn timeout_rate(&self) -> Option<f64> {
        self.rate(self.timeout)
    }

    pub fn latency_mean_ms(&self) -> Option<f64> {
        let count = self.count();
        (count > 0).then(|| self.latency_sum_ms / count as f64)
    }

    pub fn memory_mean_mb(&self) -> Option<f64> {
        let count = self.count();
        (count > 0).then(|| self.memory_sum_mb / count as f64)
    }

    /// The mean memory per upload with its anytime-valid interval by `sequence`.
    pub fn memory_interval(&self, sequence: &MeanSequence) -> Option<MeanInterval> {
        sequence.interval(self.count(), self.memory_sum_mb, self.memory_sq_sum_mb2)
    }

    /// The summary people read: rates, latency percentiles, memory.
    pub fn summary(&self, minutes: f64) -> Summary {
        Summary {
            count: self.count(),
            success_rate: self.success_rate(),
            error_rate: self.error_rate(),
            timeout_rate: self.timeout_rate(),
            critical: self.critical,
            latency_p50_ms: self.latency.quantile(0.50),
            latency_p95_ms: self.latency.quantile(0.95),
            latency_p99_ms: self.latency.quantile(0.99),
            latency_mean_ms: self.latency_mean_ms(),
            memory_mean_mb: self.memory_mean_mb(),
            memory_max_mb: (self.count() > 0).then_some(self.memory_max_mb),
            throughput_per_min: (minutes > 0.0).then(|| self.count() as f64 / minutes),
        }
    }
}

/// A window's numbers, ready to show or to freeze as a baseline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub success_rate: Option<f64>,
    pub error_rate: Option<f64>,
    pub timeout_rate: Option<f64>,
    pub critical: u64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_mean_ms: Option<f64>,
    pub memory_mean_mb: Option<f64>,
    pub memory_max_mb: Option<f64>,
    pub throughput_per_min: Option<f64>,
}

/// The size class of an upload for rollups and the end-to-end matrix: the smallest of `sizes_mb`
/// (ascending) that holds it, or the largest class for anything bigger.
pub fn size_class_mb(size_bytes: u64, sizes_mb: &[u32]) -> u32 {
    let mb = size_bytes as f64 / 1_048_576.0;
    sizes_mb.iter().copied().find(|s| mb <= f64::from(*s)).or_else(|| sizes_mb.last().copied()).unwrap_or(0)
}

/// A treatment-arm upload for tests that need stats with given shapes.
#[cfg(test)]
pub(crate) fn treatment_upload(outcome: Outcome, latency_ms: f64, memory_mb: f64, critical: bool) -> UploadEvent {
    UploadEvent {
        event_id: String::new(),
        at: Timestamp(0),
        flag: None,
        unit: None,
        variant: super::event::Variant::Treatment,
        outcome,
        latency_ms,
        memory_mb,
        provider: String::new(),
        file_type: String::new(),
        size_bytes: 0,
        error_kind: None,
        critical,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{Variant, parse_line};

    fn event(outcome: &str, latency: f64, memory: f64) -> UploadEvent {
        let line = format!(
            r#"{{"timestamp":1762336800000,"event_id":"x","variant":"async","outcome":"{outcome}","latency_ms":{latency},"memory_mb":{memory},"provider":"glm","file_type":"text","size_bytes":1}}"#
        );
        parse_line(&line).unwrap()
    }

    #[test]
    fn rates_and_merges() {
        let mut a = Stats::default();
        a.add(&event("success", 100.0, 40.0));
        a.add(&event("error", 300.0, 60.0));
        let mut b = Stats::default();
        b.add(&event("timeout", 30_000.0, 50.0));
        b.add(&event("success", 200.0, 45.0));
        a.merge(&b);
        assert_eq!(a.count(), 4);
        assert_eq!((a.success_rate(), a.error_rate(), a.timeout_rate()), (Some(50.0), Some(25.0), Some(25.0)));
        assert_eq!(a.memory_max_mb, 60.0);
        assert_eq!(a.summary(2.0).throughput_per_min, Some(2.0));
        assert_eq!(Stats::default().success_rate(), None);
        assert_eq!(event("success", 1.0, 1.0).variant, Variant::Treatment);
    }

    #[test]
    fn size_classes_follow_the_matrix() {
        let sizes = [1, 10, 50, 100];
        assert_eq!(size_class_mb(1, &sizes), 1);
        assert_eq!(size_class_mb(1_048_576, &sizes), 1);
        assert_eq!(size_class_mb(1_048_577, &sizes), 10);
        assert_eq!(size_class_mb(60 * 1_048_576, &sizes), 100);
        assert_eq!(size_class_mb(500 * 1_048_576, &sizes), 100);
    }
}
