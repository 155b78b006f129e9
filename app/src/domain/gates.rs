//! Gate evaluation: each success criterion of a stage, judged on the treatment arm's events
//! since the stage began, is **pass**, **fail** or **inconclusive** — never a pass that the
//! evidence does not support. Rates carry a 95% Wilson score interval; the latency ratio
//! carries a distribution-free interval for the p95 (order statistics) widened by the sketch's
//! 1% error. A criterion passes only when its whole interval is on the right side of the
//! threshold, and fails only when its whole interval is on the wrong side.

use super::plan::Criteria;
use super::sketch::{RELATIVE_ACCURACY, Sketch};
use super::stats::{Stats, Summary};
use serde::{Deserialize, Serialize};
use std::fmt;

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_964;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    Inconclusive,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// Which criterion a gate judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    SuccessRate,
    ErrorRate,
    LatencyP95,
    Memory,
    MinEvents,
}

impl Criterion {
    pub fn label(self) -> &'static str {
        match self {
            Criterion::SuccessRate => "Success rate",
            Criterion::ErrorRate => "Error rate",
            Criterion::LatencyP95 => "p95 latency vs baseline",
            Criterion::Memory => "Memory vs baseline",
            Criterion::MinEvents => "Uploads",
        }
    }
}

/// One criterion's evidence and verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    pub criterion: Criterion,
    pub verdict: Verdict,
    /// The observed value: a rate in percent, a ratio in percent of baseline, or a count.
    pub observed: Option<f64>,
    /// 95% interval of the observed value, when it has one.
    pub interval: Option<(f64, f64)>,
    /// The limit, in the same unit as `observed`.
    pub threshold: f64,
    /// Treatment events judged, and the stage's minimum.
    pub sample: u64,
    pub min_sample: u64,
    /// One sentence a person can act on.
    pub explanation: String,
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} — {}", self.criterion.label(), self.verdict.label(), self.explanation)
    }
}

/// The baseline a ratio is taken against: the frozen one, else the live control arm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    pub latency_p95_ms: Option<f64>,
    pub memory_mean_mb: Option<f64>,
    /// "frozen baseline" or "control arm".
    pub source: String,
}

impl Reference {
    /// The frozen baseline if there is one, else the control arm of the same window.
    pub fn choose(frozen: Option<&Summary>, control: &Stats) -> Reference {
        match frozen {
            Some(b) if b.latency_p95_ms.is_some() => {
                Reference { latency_p95_ms: b.latency_p95_ms, memory_mean_mb: b.memory_mean_mb, source: "frozen baseline".into() }
            }
            _ => Reference {
                latency_p95_ms: control.latency.quantile(0.95),
                memory_mean_mb: control.memory_mean_mb(),
                source: "control arm".into(),
            },
        }
    }
}

/// 95% Wilson score interval for `k` of `n`, in percent.
pub fn wilson(k: u64, n: u64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let (n, p) = (n as f64, k as f64 / n as f64);
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 * ((p * (1.0 - p) + z2 / (4.0 * n)) / n).sqrt() / (1.0 + z2 / n);
    Some((((centre - half) * 100.0).max(0.0), ((centre + half) * 100.0).min(100.0)))
}

/// A 95% interval for the `q` quantile from the sketch: the values at the order statistics
/// `n·q ∓ z·√(n·q·(1−q))`, each widened by the sketch's relative accuracy.
pub fn quantile_interval(sketch: &Sketch, q: f64) -> Option<(f64, f64)> {
    let n = sketch.count();
    if n == 0 {
        return None;
    }
    let n_f = n as f64;
    let spread = Z95 * (n_f * q * (1.0 - q)).sqrt();
    let rank = |r: f64| (r.clamp(0.0, n_f - 1.0)) / (n_f - 1.0).max(1.0);
    let lo = sketch.quantile(rank(n_f * q - spread - 1.0))?;
    let hi = sketch.quantile(rank(n_f * q + spread))?;
    Some((lo * (1.0 - RELATIVE_ACCURACY), hi * (1.0 + RELATIVE_ACCURACY)))
}

/// Decides a criterion from its interval: `higher_is_better` says which side passes.
fn decide(interval: (f64, f64), threshold: f64, higher_is_better: bool) -> Verdict {
    let (lo, hi) = interval;
    match higher_is_better {
        true if lo >= threshold => Verdict::Pass,
        true if hi < threshold => Verdict::Fail,
        false if hi <= threshold => Verdict::Pass,
        false if lo > threshold => Verdict::Fail,
        _ => Verdict::Inconclusive,
    }
}

fn pct(v: f64) -> String {
    if !(1.0..99.0).contains(&v) { format!("{v:.2}%") } else { format!("{v:.1}%") }
}

/// Judges every criterion of a stage on the treatment arm's `treatment` stats.
/// `memory_limit_pct` is the plan's memory guardrail (e.g. 120% of baseline).
pub fn evaluate(criteria: &Criteria, treatment: &Stats, reference: &Reference, memory_limit_pct: f64) -> Vec<Gate> {
    let n = treatment.count();
    let min = u64::from(criteria.min_events);
    let enough = n >= min;
    let short = |what: &str| format!("inconclusive — {n} of {min} uploads so far; {what} cannot be judged yet");
    let mut gates = Vec::new();

    let rate_gate = |criterion: Criterion, k: u64, threshold: f64, higher_is_better: bool| {
        let observed = (n > 0).then(|| k as f64 * 100.0 / n as f64);
        let interval = wilson(k, n);
        let verdict = match (enough, interval) {
            (true, Some(i)) => decide(i, threshold, higher_is_better),
            _ => Verdict::Inconclusive,
        };
        let sign = if higher_is_better { "≥" } else { "≤" };
        let explanation = match (verdict, observed, interval) {
            (_, None, _) | (_, _, None) => format!("no treatment uploads yet (needs {sign} {} over at least {min})", pct(threshold)),
            (_, Some(_), Some(_)) if !enough => short(&criterion.label().to_lowercase()),
            (Verdict::Pass, Some(o), Some((lo, hi))) => {
                format!("{} observed, 95% interval {}–{}, all {sign} {}", pct(o), pct(lo), pct(hi), pct(threshold))
            }
            (Verdict::Fail, Some(o), Some((lo, hi))) => {
                format!("{} observed, 95% interval {}–{}, entirely past {}", pct(o), pct(lo), pct(hi), pct(threshold))
            }
            (_, Some(o), Some((lo, hi))) => format!(
                "{} observed but the 95% interval {}–{} straddles {}: more uploads needed",
                pct(o),
                pct(lo),
                pct(hi),
                pct(threshold)
            ),
        };
        Gate { criterion, verdict, observed, interval, threshold, sample: n, min_sample: min, explanation }
    };
    gates.push(rate_gate(Criterion::SuccessRate, treatment.success, criteria.success_rate_min.get(), true));
    gates.push(rate_gate(Criterion::ErrorRate, treatment.error, criteria.error_rate_max.get(), false));

    let limit = criteria.latency_max.get();
    let latency = match (reference.latency_p95_ms, treatment.latency.quantile(0.95), quantile_interval(&treatment.latency, 0.95)) {
        (Some(base), Some(p95), Some((lo, hi))) if base > 0.0 => {
            let (ratio, interval) = (p95 / base * 100.0, (lo / base * 100.0, hi / base * 100.0));
            let verdict = if enough { decide(interval, limit, false) } else { Verdict::Inconclusive };
            let explanation = if !enough {
                short("p95 latency")
            } else {
                format!(
                    "p95 {:.0} ms is {ratio:.0}% of the {} ({base:.0} ms), 95% interval {:.0}–{:.0}% vs ≤ {limit:.0}%",
                    p95, reference.source, interval.0, interval.1
                )
            };
            Gate {
                criterion: Criterion::LatencyP95,
                verdict,
                observed: Some(ratio),
                interval: Some(interval),
                threshold: limit,
                sample: n,
                min_sample: min,
                explanation,
            }
        }
        (None, _, _) => unjudged(Criterion::LatencyP95, limit, n, min, "no baseline yet: record one, or let control traffic flow".into()),
        _ => unjudged(Criterion::LatencyP95, limit, n, min, format!("no treatment uploads yet (needs p95 ≤ {limit:.0}% of baseline)")),
    };
    gates.push(latency);

    let memory = match (reference.memory_mean_mb, treatment.memory_mean_mb()) {
        (Some(base), Some(mean)) if base > 0.0 => {
            let ratio = mean / base * 100.0;
            let verdict = match (enough, ratio <= memory_limit_pct) {
                (false, _) => Verdict::Inconclusive,
                (true, true) => Verdict::Pass,
                (true, false) => Verdict::Fail,
            };
            let explanation = if enough {
                format!("mean {mean:.0} MB is {ratio:.0}% of the {} ({base:.0} MB) vs ≤ {memory_limit_pct:.0}%", reference.source)
            } else {
                short("memory")
            };
            Gate {
                criterion: Criterion::Memory,
                verdict,
                observed: Some(ratio),
                interval: None,
                threshold: memory_limit_pct,
                sample: n,
                min_sample: min,
                explanation,
            }
        }
        _ => unjudged(Criterion::Memory, memory_limit_pct, n, min, "no baseline or no treatment uploads yet".into()),
    };
    gates.push(memory);

    gates.push(Gate {
        criterion: Criterion::MinEvents,
        verdict: if enough { Verdict::Pass } else { Verdict::Inconclusive },
        observed: Some(n as f64),
        interval: None,
        threshold: min as f64,
        sample: n,
        min_sample: min,
        explanation: if enough { format!("{n} uploads, at least {min} needed") } else { format!("{n} of {min} uploads so far") },
    });
    gates
}

/// A gate that has nothing to judge yet.
fn unjudged(criterion: Criterion, threshold: f64, sample: u64, min_sample: u64, explanation: String) -> Gate {
    Gate { criterion, verdict: Verdict::Inconclusive, observed: None, interval: None, threshold, sample, min_sample, explanation }
}

/// The stage's overall verdict: any fail fails, else any inconclusive is inconclusive.
pub fn overall(gates: &[Gate]) -> Verdict {
    if gates.iter().any(|g| g.verdict == Verdict::Fail) {
        Verdict::Fail
    } else if gates.iter().any(|g| g.verdict == Verdict::Inconclusive) {
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Outcome;
    use crate::domain::plan::{DEFAULT_PLAN_TOML, Plan};
    use crate::domain::stats::treatment_upload;

    fn stats(success: u64, error: u64, latency: f64, memory: f64) -> Stats {
        let mut s = Stats::default();
        let mut add = |outcome: Outcome, count: u64| {
            for i in 0..count {
                s.add(&treatment_upload(outcome, latency * (0.9 + 0.2 * (i % 11) as f64 / 10.0), memory, false));
            }
        };
        add(Outcome::Success, success);
        add(Outcome::Error, error);
        s
    }

    fn stage1() -> Criteria {
        Plan::from_toml(DEFAULT_PLAN_TOML).unwrap().stages[1].criteria.clone().unwrap()
    }

    fn reference(p95: f64) -> Reference {
        Reference { latency_p95_ms: Some(p95), memory_mean_mb: Some(100.0), source: "frozen baseline".into() }
    }

    fn verdict(gates: &[Gate], c: Criterion) -> Verdict {
        gates.iter().find(|g| g.criterion == c).unwrap().verdict
    }

    #[test]
    fn wilson_matches_known_values() {
        let (lo, hi) = wilson(100, 100).unwrap();
        assert!((lo - 96.30).abs() < 0.01 && hi == 100.0, "{lo} {hi}");
        let (lo, hi) = wilson(50, 100).unwrap();
        assert!((lo - 40.38).abs() < 0.01 && (hi - 59.62).abs() < 0.01, "{lo} {hi}");
        assert_eq!(wilson(0, 0), None);
    }

    #[test]
    fn a_hundred_of_a_hundred_does_not_prove_99_5_percent() {
        let gates = evaluate(&stage1(), &stats(100, 0, 100.0, 50.0), &reference(200.0), 120.0);
        let success = &gates[0];
        assert_eq!(success.verdict, Verdict::Inconclusive);
        assert!(success.explanation.contains("straddles 99.50%"), "{}", success.explanation);
        assert_eq!(verdict(&gates, Criterion::MinEvents), Verdict::Pass);
    }

    #[test]
    fn below_the_minimum_sample_everything_is_inconclusive() {
        let gates = evaluate(&stage1(), &stats(37, 0, 100.0, 50.0), &reference(200.0), 120.0);
        assert!(gates.iter().all(|g| g.verdict == Verdict::Inconclusive), "{gates:#?}");
        assert!(gates[0].explanation.contains("37 of 100 uploads"), "{}", gates[0].explanation);
        assert_eq!(overall(&gates), Verdict::Inconclusive);
    }

    #[test]
    fn inconclusive_turns_into_pass_as_evidence_arrives() {
        let c = stage1();
        assert_eq!(
            verdict(&evaluate(&c, &stats(200, 0, 100.0, 50.0), &reference(200.0), 120.0), Criterion::SuccessRate),
            Verdict::Inconclusive
        );
        let gates = evaluate(&c, &stats(2_000, 0, 100.0, 50.0), &reference(200.0), 120.0);
        assert_eq!(overall(&gates), Verdict::Pass, "{gates:#?}");
    }

    #[test]
    fn clear_failures_fail() {
        let gates = evaluate(&stage1(), &stats(900, 100, 100.0, 50.0), &reference(200.0), 120.0);
        assert_eq!(verdict(&gates, Criterion::SuccessRate), Verdict::Fail);
        assert_eq!(verdict(&gates, Criterion::ErrorRate), Verdict::Fail);
        assert_eq!(overall(&gates), Verdict::Fail);
    }

    #[test]
    fn latency_is_judged_against_the_baseline_with_its_interval() {
        let c = stage1(); // ≤ 110% of baseline
        let fast = evaluate(&c, &stats(5_000, 0, 100.0, 50.0), &reference(200.0), 120.0);
        assert_eq!(verdict(&fast, Criterion::LatencyP95), Verdict::Pass, "{:#?}", fast[2]);
        let slow = evaluate(&c, &stats(5_000, 0, 300.0, 50.0), &reference(200.0), 120.0);
        assert_eq!(verdict(&slow, Criterion::LatencyP95), Verdict::Fail, "{:#?}", slow[2]);
        let no_base = evaluate(
            &c,
            &stats(5_000, 0, 100.0, 50.0),
            &Reference { latency_p95_ms: None, memory_mean_mb: None, source: "control arm".into() },
            120.0,
        );
        assert_eq!(verdict(&no_base, Criterion::LatencyP95), Verdict::Inconclusive);
        assert!(no_base[2].explanation.contains("no baseline"));
    }

    #[test]
    fn memory_against_the_guardrail_limit() {
        let c = stage1();
        assert_eq!(verdict(&evaluate(&c, &stats(500, 0, 100.0, 119.0), &reference(200.0), 120.0), Criterion::Memory), Verdict::Pass);
        assert_eq!(verdict(&evaluate(&c, &stats(500, 0, 100.0, 121.0), &reference(200.0), 120.0), Criterion::Memory), Verdict::Fail);
    }

    #[test]
    fn exactly_at_the_threshold_with_certainty_passes() {
        // Error rate 0 of 10,000: the interval's top is below 0.5%.
        let gates = evaluate(&stage1(), &stats(10_000, 0, 100.0, 50.0), &reference(200.0), 120.0);
        assert_eq!(verdict(&gates, Criterion::ErrorRate), Verdict::Pass);
        assert!(decide((99.5, 99.9), 99.5, true) == Verdict::Pass);
        assert!(decide((99.0, 99.5), 99.5, false) == Verdict::Pass);
        assert!(decide((99.0, 99.49), 99.5, true) == Verdict::Fail);
    }
}
