//! Receipts: everything an automatic decision or a gate's verdict was made from — the counts,
//! the threshold, the method with its α and boundary, the data's time range and the rules'
//! version — stored with it, so that `rampart explain` can recompute it from the stored data.

use super::sequential::{MeanInterval, MeanSequence, RateSequence};
use super::units::Timestamp;
use serde::{Deserialize, Serialize};

/// The version of the decision rules (the guard's and the gates'), stored with every receipt:
/// a receipt is recomputed with the rules it was made by. 3: the change detector sums its
/// windows (Shiryaev–Roberts) where it took the best one (CUSUM), and its bound is `ln(K / α)`.
/// 4: its alternatives are weighted 0.8 (2× the line) and 0.2 (6×); rollback α is 0.1%
/// (sequence) + 0.35% (detector) per rate, and memory is judged on a confidence sequence of
/// its mean (0.1%).
pub const RULE_VERSION: u32 = 4;

/// How a decision was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The confidence sequence over the stage's evidence lies past the threshold.
    Sequence,
    /// The change detector found a window, ending now, whose evidence crossed its bound.
    ChangeDetector,
    /// A count that acts at once (critical errors).
    Count,
    /// A point estimate over at least the plan's minimum sample (memory, until rule version 4).
    Estimate,
    /// The confidence sequence of a mean lies past the line (memory). The receipt's
    /// `threshold_rate` is then the line in the metric's unit (MB), `statistic` the mean,
    /// `boundary` the interval's half-width and `interval` its ends, in MB.
    MeanSequence,
    /// The sequential sample-ratio test (Lindon & Malek): `bad` is the treatment's uploads of
    /// `events` in both arms, `threshold_rate` the share planned, `statistic` the log Bayes
    /// factor against the planned split and `boundary` ln(1/α).
    SampleRatio,
    /// The same test on distinct units: `bad` is the treatment's units of `events` units in
    /// both arms.
    UnitRatio,
    /// The asymptotic confidence sequence of treatment − control: `bad` of `events` in the
    /// treatment, `control` the control's, `threshold_rate` the margin (a fraction),
    /// `statistic` the difference, `boundary` the interval's half-width.
    Difference,
}

/// Everything a decision was made from, so that it can be recomputed: the counts, the
/// threshold, the method with its α and boundary, and the data's time range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub method: Method,
    pub rule_version: u32,
    /// Bad events (errors, failures, slow uploads) and events judged.
    pub bad: u64,
    pub events: u64,
    /// The rate judged against, as a fraction (for a mean: the line, in its unit).
    pub threshold_rate: f64,
    pub alpha: f64,
    /// The log evidence and the boundary it reached.
    pub statistic: f64,
    pub boundary: f64,
    /// The anytime-valid interval of the rate, as fractions (sequence decisions).
    pub interval: Option<(f64, f64)>,
    /// The raised rate the change detector compared with the threshold (its decisions).
    #[serde(default)]
    pub alternative: Option<f64>,
    /// The control arm's bad events and events (decisions on the difference of the arms).
    #[serde(default)]
    pub control: Option<(u64, u64)>,
    /// The events' time range: from the start of their first minute to the decision.
    pub from: Timestamp,
    pub to: Timestamp,
}

impl Receipt {
    /// The receipt of a decision a confidence sequence made: `bad` of `events` against the
    /// rate `p0`, over the events of `from` to `to`.
    pub fn of_sequence(sequence: &RateSequence, bad: u64, events: u64, p0: f64, from: Timestamp, to: Timestamp) -> Receipt {
        Receipt {
            method: Method::Sequence,
            rule_version: RULE_VERSION,
            bad,
            events,
            threshold_rate: p0,
            alpha: sequence.alpha,
            statistic: sequence.ln_evidence(bad, events, p0),
            boundary: sequence.boundary(),
            interval: Some(sequence.interval(bad, events)),
            alternative: None,
            control: None,
            from,
            to,
        }
    }

    /// The receipt of a decision on a mean: `interval` over `events` readings by `sequence`,
    /// against `line`, over the events of `from` to `to`.
    pub fn of_mean(sequence: &MeanSequence, interval: MeanInterval, events: u64, line: f64, from: Timestamp, to: Timestamp) -> Receipt {
        Receipt {
            method: Method::MeanSequence,
            rule_version: RULE_VERSION,
            bad: 0,
            events,
            threshold_rate: line,
            alpha: sequence.alpha,
            statistic: interval.mean,
            boundary: (interval.hi - interval.lo) / 2.0,
            interval: Some((interval.lo, interval.hi)),
            alternative: None,
            control: None,
            from,
            to,
        }
    }
}
