//! The change's impact against the plan's expected improvements (the seeds: memory −80–90%,
//! latency −30–50%, timeouts −95%, throughput ×5–10): the treatment's figures over the stage
//! against the reference's — the frozen baseline, or the live control arm without one — each
//! change with an anytime-valid interval, and met / not met / not yet known. A stage with
//! `requires_performance_validated` is held until every measured expectation is met.
//!
//! The intervals come from the treatment's sequences, the reference taken as given (a baseline
//! is frozen; a live control arm's own spread is left out): memory from the mean's sequence,
//! latency quantiles from the rate sequence of the share of uploads at or below a value (a
//! quantile is proven above `x` when the share at or below `x` is proven below the quantile's
//! level), timeouts from the rate sequence. An expectation is met when its whole interval
//! clears the range's near end ("at least 80% less memory"); doing better than the range's far
//! end still counts as met.

use super::gates::{ALPHA_GATE, Criterion, GATE_N_STAR, Gate, Verdict};
use super::plan::ExpectedImprovements;
use super::sequential::{MeanSequence, RateSequence};
use super::sketch::{RELATIVE_ACCURACY, Sketch};
use super::stats::{Stats, Summary};
use serde::{Deserialize, Serialize};

/// Whether an expectation holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Met,
    NotMet,
    NotYetKnown,
    /// Nothing to measure it by: the events carry no figure for it, or the reference has none
    /// above zero to reduce.
    NotMeasured,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Met => "met",
            Outcome::NotMet => "not met",
            Outcome::NotYetKnown => "not yet known",
            Outcome::NotMeasured => "not measured",
        }
    }
}

/// One expected improvement, measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measure {
    /// "Memory per upload", "Latency p50", "Latency p95", "Timeout rate", "Throughput".
    pub what: String,
    /// The reference's and the treatment's figures, in `unit`.
    pub reference: Option<f64>,
    pub treatment: Option<f64>,
    pub unit: String,
    /// The observed reduction in percent, and its anytime-valid interval (least, most; an end
    /// is `None` while still open).
    pub reduction_pct: Option<f64>,
    pub interval: (Option<f64>, Option<f64>),
    /// The expected reduction range in percent (a single figure twice).
    pub expected: (f64, f64),
    pub outcome: Outcome,
}

impl Measure {
    /// A measure of a reduction, judged against the near end of its `expected` range.
    fn of_reduction(what: &str, figures: (Option<f64>, Option<f64>, &str), change: Change, expected: (f64, f64)) -> Measure {
        let (reduction_pct, interval) = change;
        // Without a reference figure above zero there is nothing to reduce, and no waiting makes one.
        let measurable = figures.0.is_some_and(|r| r > 0.0);
        Measure {
            what: what.into(),
            reference: figures.0,
            treatment: figures.1,
            unit: figures.2.into(),
            reduction_pct,
            interval,
            expected,
            outcome: if measurable { outcome(interval, expected.0) } else { Outcome::NotMeasured },
        }
    }
}

/// An observed reduction and its interval (least, most).
type Change = (Option<f64>, (Option<f64>, Option<f64>));

/// Every expectation of the plan, measured on one stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Impact {
    pub measures: Vec<Measure>,
    /// "frozen baseline" or "control arm".
    pub reference: String,
    pub treatment_uploads: u64,
}

/// Judges a reduction's interval (least, most; `None` where it is still open) against `near`,
/// the expected range's near end in percent.
fn outcome((least, most): (Option<f64>, Option<f64>), near: f64) -> Outcome {
    match (least, most) {
        (Some(least), _) if least >= near => Outcome::Met,
        (_, Some(most)) if most < near => Outcome::NotMet,
        _ => Outcome::NotYetKnown,
    }
}

/// `1 − x / base` in percent.
fn reduction(x: f64, base: f64) -> f64 {
    (1.0 - x / base) * 100.0
}

/// The largest `k` in `0..=n` for which `holds` (which holds for all smaller `k` when it holds),
/// or `None`.
fn last_true(n: u64, holds: impl Fn(u64) -> bool) -> Option<u64> {
    if !holds(0) {
        return None;
    }
    let (mut yes, mut no) = (0u64, n + 1);
    while no - yes > 1 {
        let mid = yes + (no - yes) / 2;
        if holds(mid) { yes = mid } else { no = mid }
    }
    Some(yes)
}

/// The anytime-valid interval of the `q`-quantile of the values a sketch holds: the quantile is
/// proven above a value when the share of values at or below it is proven below `q`, and at or
/// below a value when that share is proven above `q`. `None` ends are still open.
pub fn quantile_interval(sketch: &Sketch, q: f64, alpha: f64) -> (Option<f64>, Option<f64>) {
    let n = sketch.count();
    if n == 0 {
        return (None, None);
    }
    let sequence = RateSequence::tuned(q, alpha, GATE_N_STAR);
    // The most values at or below x with which the share is still proven below q: the quantile
    // lies above the value of that rank (the k-th smallest, index k − 1; none below rank 1).
    let below = last_true(n, |k| sequence.proves_below(k, n, q));
    // The fewest with which it is proven above q: the quantile is at most that rank's value.
    // (No count is below 0, so the search always finds one; past `n` nothing is proven.)
    let above = last_true(n, |k| !sequence.proves_above(k, n, q)).and_then(|k| (k < n).then_some(k + 1));
    // The sketch reads a value within its relative accuracy: each end is widened by it.
    let lo = below.filter(|k| *k > 0).and_then(|k| sketch.value_at(k - 1)).map(|v| v / (1.0 + RELATIVE_ACCURACY));
    let hi = above.and_then(|k| sketch.value_at(k - 1)).map(|v| v / (1.0 - RELATIVE_ACCURACY));
    (lo, hi)
}

/// Measures `expected` on the stage's `treatment` against `reference` (named `source`); memory
/// once `min_readings` are in (its sequence is asymptotic: the guardrails' `min_sample`).
pub fn measure(expected: &ExpectedImprovements, treatment: &Stats, reference: &Summary, source: &str, min_readings: u64) -> Impact {
    let n = treatment.count();
    let mut measures = Vec::new();

    // Memory: the mean's sequence.
    let [mem_near, mem_far] = expected.memory_reduction_pct;
    let memory = treatment.memory_interval(&MeanSequence::tuned(ALPHA_GATE, GATE_N_STAR)).filter(|_| n >= min_readings);
    let (reduction_pct, interval) = match (reference.memory_mean_mb, memory) {
        (Some(base), Some(m)) if base > 0.0 => (Some(reduction(m.mean, base)), (Some(reduction(m.hi, base)), Some(reduction(m.lo, base)))),
        _ => (None, (None, None)),
    };
    let figures = (reference.memory_mean_mb, treatment.memory_mean_mb(), "MB");
    measures.push(Measure::of_reduction("Memory per upload", figures, (reduction_pct, interval), (mem_near, mem_far)));

    // Latency p50 and p95: the quantiles' intervals.
    let [lat_near, lat_far] = expected.latency_reduction_pct;
    for (what, q, base) in [("Latency p50", 0.5, reference.latency_p50_ms), ("Latency p95", 0.95, reference.latency_p95_ms)] {
        let observed = treatment.latency.quantile(q);
        let (lo, hi) = quantile_interval(&treatment.latency, q, ALPHA_GATE);
        let (reduction_pct, interval) = match (base, observed) {
            (Some(base), Some(value)) if base > 0.0 => {
                (Some(reduction(value, base)), (hi.map(|hi| reduction(hi, base)), lo.map(|lo| reduction(lo, base))))
            }
            _ => (None, (None, None)),
        };
        measures.push(Measure::of_reduction(what, (base, observed, "ms"), (reduction_pct, interval), (lat_near, lat_far)));
    }

    // Timeouts: the rate's sequence, tuned at the rate the expectation allows.
    let near = expected.timeout_reduction_pct;
    let (reduction_pct, interval) = match reference.timeout_rate {
        Some(base) if base > 0.0 && n > 0 => {
            let base = base / 100.0;
            let (lo, hi) = RateSequence::tuned(base * (1.0 - near / 100.0), ALPHA_GATE, GATE_N_STAR).interval(treatment.timeout, n);
            (Some(reduction(treatment.timeout as f64 / n as f64, base)), (Some(reduction(hi, base)), Some(reduction(lo, base))))
        }
        _ => (None, (None, None)),
    };
    let figures = (reference.timeout_rate, treatment.timeout_rate(), "%");
    measures.push(Measure::of_reduction("Timeout rate", figures, (reduction_pct, interval), (near, near)));

    // Throughput: the events carry each upload's size and time, not the service's capacity.
    let [t_near, t_far] = expected.throughput_factor;
    measures.push(Measure {
        what: "Throughput".into(),
        reference: None,
        treatment: None,
        unit: "×".into(),
        reduction_pct: None,
        interval: (None, None),
        expected: (t_near, t_far),
        outcome: Outcome::NotMeasured,
    });

    Impact { measures, reference: source.to_string(), treatment_uploads: n }
}

impl Impact {
    /// The gate of a stage that requires validation but serves nobody the change: nothing to
    /// measure.
    pub fn unmeasured_gate() -> Gate {
        Gate {
            criterion: Criterion::Performance,
            verdict: Verdict::Inconclusive,
            observed: None,
            interval: None,
            threshold: 0.0,
            sample: 0,
            min_sample: 0,
            explanation: "no treatment uploads to measure the expected improvements on".into(),
            versus_control: None,
            more_uploads: None,
            receipt: None,
        }
    }

    /// "Performance validated" as a gate: passes when every measured expectation is met, fails
    /// when one is not met, and is inconclusive while any is not yet known.
    pub fn gate(&self) -> Gate {
        let measured: Vec<&Measure> = self.measures.iter().filter(|m| m.outcome != Outcome::NotMeasured).collect();
        let met = measured.iter().filter(|m| m.outcome == Outcome::Met).count();
        let verdict = if measured.iter().any(|m| m.outcome == Outcome::NotMet) {
            Verdict::Fail
        } else if met == measured.len() && !measured.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Inconclusive
        };
        let words: Vec<String> = self.measures.iter().map(|m| format!("{} {}", m.what.to_lowercase(), m.outcome.label())).collect();
        let explanation = if measured.is_empty() {
            format!("nothing to measure against: the {} has no figures (freeze a baseline while the flag is off)", self.reference)
        } else {
            format!("{met} of {} expected improvements met against the {}: {}", measured.len(), self.reference, words.join(", "))
        };
        Gate {
            criterion: Criterion::Performance,
            verdict,
            observed: Some(met as f64),
            interval: None,
            threshold: measured.len() as f64,
            sample: self.treatment_uploads,
            min_sample: 0,
            explanation,
            versus_control: None,
            more_uploads: None,
            receipt: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Outcome as Upload;
    use crate::domain::sequential::tests::TestRng;
    use crate::domain::stats::treatment_upload;

    fn sketch_of(values: &[f64]) -> Sketch {
        let mut s = Sketch::default();
        values.iter().for_each(|v| s.add(*v));
        s
    }

    #[test]
    fn the_quantile_interval_is_the_ranks_where_the_share_is_proven_and_covers_the_quantile() {
        // 2,000 distinct latencies; the ranks found again by a plain scan over every count and
        // read off the sorted values (no sketch): the sketch's ends agree within its 1%.
        let values: Vec<f64> = (0..2_000u64).map(|i| 10.0 + ((i * 7_919) % 2_000) as f64).collect();
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let sketch = sketch_of(&values);
        for q in [0.5, 0.95] {
            let sequence = RateSequence::tuned(q, ALPHA_GATE, GATE_N_STAR);
            let n = sorted.len() as u64;
            let below = (0..=n).filter(|k| sequence.proves_below(*k, n, q)).max().unwrap();
            let above = (0..=n).find(|k| sequence.proves_above(*k, n, q)).unwrap();
            let (lo, hi) = quantile_interval(&sketch, q, ALPHA_GATE);
            let (lo, hi) = (lo.unwrap(), hi.unwrap());
            let (want_lo, want_hi) = (sorted[below as usize - 1], sorted[above as usize - 1]);
            // Widened by the sketch's accuracy: never inside the exact ends, at most twice it outside.
            let slack = 2.0 * RELATIVE_ACCURACY + 1e-9;
            assert!(lo <= want_lo && lo >= want_lo * (1.0 - slack), "q {q}: {lo} vs {want_lo}");
            assert!(hi >= want_hi && hi <= want_hi * (1.0 + slack) / (1.0 - slack), "q {q}: {hi} vs {want_hi}");
            let truth = sorted[((n - 1) as f64 * q) as usize];
            assert!(lo <= truth * 1.01 && truth <= hi * 1.01, "q {q}: {lo}–{hi} misses {truth}");
        }
        assert_eq!(quantile_interval(&Sketch::default(), 0.5, ALPHA_GATE), (None, None));
        // Three values prove nothing about a p95.
        assert_eq!(quantile_interval(&sketch_of(&[1.0, 2.0, 3.0]), 0.95, ALPHA_GATE).1, None);

        // Coverage: exponential latencies (mean 100 ms, true p95 = 100·ln 20), looked at every 100
        // values up to 4,000; each end may miss at some look in at most α (2.5%) of runs.
        let truth = 100.0 * 20f64.ln();
        let mut rng = TestRng(5);
        let (runs, mut missed) = (200, 0);
        for _ in 0..runs {
            let mut s = Sketch::default();
            let mut miss = false;
            for i in 1..=4_000 {
                s.add(-100.0 * (1.0 - rng.uniform()).ln());
                if i % 100 == 0 {
                    let (lo, hi) = quantile_interval(&s, 0.95, ALPHA_GATE);
                    miss |= lo.is_some_and(|lo| lo > truth * 1.01) || hi.is_some_and(|hi| hi < truth / 1.01);
                }
            }
            missed += u64::from(miss);
        }
        assert!(missed <= runs * 8 / 100, "{missed} of {runs} runs missed the p95");
    }

    fn expected() -> ExpectedImprovements {
        ExpectedImprovements {
            memory_reduction_pct: [80.0, 90.0],
            throughput_factor: [5.0, 10.0],
            latency_reduction_pct: [30.0, 50.0],
            timeout_reduction_pct: 95.0,
        }
    }

    fn reference() -> Summary {
        Summary {
            count: 10_000,
            timeout_rate: Some(1.0),
            latency_p50_ms: Some(1_000.0),
            latency_p95_ms: Some(2_000.0),
            memory_mean_mb: Some(100.0),
            ..Default::default()
        }
    }

    fn treatment(n: u64, timeouts: u64, latency: f64, memory: f64) -> Stats {
        let mut s = Stats::default();
        (0..n - timeouts).for_each(|_| s.add(&treatment_upload(Upload::Success, latency, memory, false)));
        (0..timeouts).for_each(|_| s.add(&treatment_upload(Upload::Timeout, latency, memory, false)));
        s
    }

    #[test]
    fn each_expectation_is_met_not_met_or_not_yet_known_from_its_interval() {
        // Hand-computed: memory 15 MB against 100 (85% less, every reading alike); latency 400 ms
        // against p50 1,000 and p95 2,000 (60% and 80% less); no timeouts in 20,000 against 1%.
        let impact = measure(&expected(), &treatment(20_000, 0, 400.0, 15.0), &reference(), "frozen baseline", 50);
        let by = |what: &str| impact.measures.iter().find(|m| m.what == what).unwrap().clone();
        let memory = by("Memory per upload");
        assert!((memory.reduction_pct.unwrap() - 85.0).abs() < 1e-9 && memory.outcome == Outcome::Met, "{memory:?}");
        let p50 = by("Latency p50");
        assert!((p50.reduction_pct.unwrap() - 60.0).abs() < 1.0 && p50.outcome == Outcome::Met, "{p50:?}");
        assert_eq!(by("Latency p95").outcome, Outcome::Met);
        // 0 of 20,000 against the 0.05% a 95% cut allows: the sequence's upper end, recomputed.
        let timeouts = by("Timeout rate");
        let (_, hi) = RateSequence::tuned(0.0005, ALPHA_GATE, GATE_N_STAR).interval(0, 20_000);
        assert!((timeouts.interval.0.unwrap() - (1.0 - hi / 0.01) * 100.0).abs() < 1e-9, "{timeouts:?}");
        assert_eq!(timeouts.outcome, Outcome::Met, "{timeouts:?}");
        assert_eq!(by("Throughput").outcome, Outcome::NotMeasured);
        let gate = impact.gate();
        assert_eq!((gate.criterion, gate.verdict), (Criterion::Performance, Verdict::Pass));
        assert_eq!(
            gate.explanation,
            "4 of 4 expected improvements met against the frozen baseline: memory per upload met, latency p50 met, latency p95 met, timeout rate met, throughput not measured"
        );

        // Too few uploads to know; memory only 50% less; timeouts up.
        let early = measure(&expected(), &treatment(40, 0, 400.0, 15.0), &reference(), "frozen baseline", 50);
        assert_eq!(early.measures[3].outcome, Outcome::NotYetKnown, "{:?}", early.measures[3]);
        assert_eq!(early.measures[0].outcome, Outcome::NotYetKnown, "memory waits for 50 readings: {:?}", early.measures[0]);
        assert_eq!(early.gate().verdict, Verdict::Inconclusive);
        let worse = measure(&expected(), &treatment(20_000, 400, 400.0, 50.0), &reference(), "control arm", 50);
        assert_eq!((worse.measures[0].outcome, worse.measures[3].outcome), (Outcome::NotMet, Outcome::NotMet));
        assert_eq!(worse.gate().verdict, Verdict::Fail);
        // No reference figures (a 100% stage with no baseline): nothing can be measured, and the
        // gate says what would make it measurable rather than waiting for ever.
        let blind = measure(&expected(), &treatment(20_000, 0, 400.0, 15.0), &Summary::default(), "control arm", 50);
        assert!(blind.measures.iter().all(|m| m.outcome == Outcome::NotMeasured), "{blind:?}");
        let gate = blind.gate();
        assert_eq!(gate.verdict, Verdict::Inconclusive);
        assert!(gate.explanation.starts_with("nothing to measure against: the control arm has no figures"), "{}", gate.explanation);
        // A reference without timeouts has none to cut: measured on the rest.
        let none = Summary { timeout_rate: Some(0.0), ..reference() };
        let calm = measure(&expected(), &treatment(20_000, 0, 400.0, 15.0), &none, "frozen baseline", 50);
        assert_eq!(calm.measures[3].outcome, Outcome::NotMeasured);
        assert_eq!(calm.gate().verdict, Verdict::Pass);
    }
}
