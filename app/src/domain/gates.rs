//! Gate evaluation: each success criterion of a stage, judged on the treatment arm's events
//! since the stage began, is **pass**, **fail** or **inconclusive** — never a pass that the
//! evidence does not support, at whatever moment someone looks. Rates carry an anytime-valid
//! interval (a confidence sequence, [`super::sequential::RateSequence`]) with α = 2.5% per
//! gate; p95 latency is judged as the share of uploads slower than the limit, which must be at
//! most 5%, with the same kind of sequence. A criterion passes only when its whole interval is
//! on the right side of the threshold, and fails only when its whole interval is on the wrong
//! side; a sequence never needs a minimum sample to be honest, so rates are judged from the
//! first upload (the stage's minimum count is a gate of its own).

use super::plan::Criteria;
use super::receipt::Receipt;
use super::sequential::Difference;
use super::stats::{Stats, Summary};
use super::units::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

mod latency;
mod memory;
mod rates;
mod sample_ratio;
mod versus_control;

use latency::latency_gate;
use memory::memory_gate;
pub use rates::{hours_words, pace, sequence, uploads_to_decide, wilson};
use rates::{judge_rate, still_needed};
pub use sample_ratio::{ALPHA_SAMPLE_RATIO, SampleRatio, sample_ratio, sample_ratio_from};
use versus_control::{points, versus_control_gate};

/// The chance that a gate's sequence ever shows a verdict its true rate does not deserve.
pub const ALPHA_GATE: f64 = 0.025;
/// Gate sequences are tightest after about a stage's worth of uploads.
pub const GATE_N_STAR: f64 = 10_000.0;
/// The share of uploads allowed above the latency limit (p95: 5%).
const LATENCY_TAIL: f64 = 0.05;
/// The treatment − control difference is shown with a 95% always-valid interval.
pub const ALPHA_DIFFERENCE: f64 = 0.05;

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
    /// The split of uploads between the arms against the flag's percentage.
    SampleRatio,
    /// Treatment failures minus control failures, in percentage points.
    FailuresVsControl,
    /// The treatment's share of uploads slower than the stage's latency limit minus control's,
    /// in percentage points.
    LatencyVsControl,
    /// Cells of the end-to-end matrix that pass, of all ([`super::matrix`]).
    Matrix,
    /// Expected improvements met, of those measured ([`super::impact`]).
    Performance,
}

impl Criterion {
    pub fn label(self) -> &'static str {
        match self {
            Criterion::SuccessRate => "Success rate",
            Criterion::ErrorRate => "Error rate",
            Criterion::LatencyP95 => "p95 latency vs baseline",
            Criterion::Memory => "Memory vs baseline",
            Criterion::MinEvents => "Uploads",
            Criterion::SampleRatio => "Sample ratio",
            Criterion::FailuresVsControl => "Failures vs control",
            Criterion::LatencyVsControl => "Slow uploads vs control",
            Criterion::Matrix => "End-to-end matrix",
            Criterion::Performance => "Performance validated",
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
    /// Treatment − control in the criterion's terms (percentage points), with a 95% always-valid
    /// interval: whether a change is the treatment's or hits both arms (a provider's outage).
    #[serde(default)]
    pub versus_control: Option<Difference>,
    /// While inconclusive: about how many more treatment uploads a verdict needs if the rate
    /// stays as observed.
    #[serde(default)]
    pub more_uploads: Option<u64>,
    /// What a rate verdict was computed from (counts, threshold, α, boundary, the time range
    /// judged, the rules' version): stored with an advance, recomputed by `rampart explain`.
    #[serde(default)]
    pub receipt: Option<Receipt>,
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

fn pct(v: f64) -> String {
    if !(1.0..99.0).contains(&v) { format!("{v:.2}%") } else { format!("{v:.1}%") }
}

/// How the explanation of a gate its source could not vouch for begins.
pub const NOT_JUDGED: &str = "Not judged: ";

/// Makes every gate judged on figures the metric source cannot vouch for inconclusive, saying
/// why first (the figures stay shown: they are what the source said).
pub fn unvouched<'a>(gates: impl IntoIterator<Item = &'a mut Gate>, problem: &str) {
    for gate in gates {
        gate.verdict = Verdict::Inconclusive;
        gate.more_uploads = None;
        gate.explanation = format!("{NOT_JUDGED}{problem}. ({})", gate.explanation);
    }
}

/// The time range a stage's gates judged: from the stage's start to the moment of judging.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Judged {
    pub from: Timestamp,
    pub to: Timestamp,
}

/// Judges every criterion of a stage on the treatment arm's `treatment` stats, with the
/// control arm's of the same span beside them, both over `judged`. `memory_limit_pct` is the
/// plan's memory guardrail (e.g. 120% of baseline).
pub fn evaluate(
    criteria: &Criteria,
    treatment: &Stats,
    control: &Stats,
    reference: &Reference,
    memory_limit_pct: f64,
    judged: Judged,
) -> Vec<Gate> {
    let n = treatment.count();
    let min = u64::from(criteria.min_events);
    let enough = n >= min;
    let mut gates = Vec::new();

    // `higher_is_better`: the plan states a success rate (≥), or an error rate (≤); both are
    // judged as the share of bad uploads.
    let rate_gate = |criterion: Criterion, bad: u64, control_bad: u64, threshold: f64, higher_is_better: bool| {
        let p0 = if higher_is_better { 1.0 - threshold / 100.0 } else { threshold / 100.0 };
        let in_plan_terms = |bad_rate: f64| if higher_is_better { 100.0 - bad_rate * 100.0 } else { bad_rate * 100.0 };
        let sign = if higher_is_better { "≥" } else { "≤" };
        if n == 0 {
            let explanation = format!("no treatment uploads yet (needs {sign} {})", pct(threshold));
            return unjudged(criterion, threshold, n, min, explanation);
        }
        let (verdict, sequence) = judge_rate(bad, n, p0);
        let (lo, hi) = sequence.interval(bad, n);
        let (lo, hi) = if higher_is_better { (in_plan_terms(hi), in_plan_terms(lo)) } else { (in_plan_terms(lo), in_plan_terms(hi)) };
        let observed = in_plan_terms(bad as f64 / n as f64);
        let interval = format!("{:.1}% anytime interval {}–{}", (1.0 - ALPHA_GATE) * 100.0, pct(lo), pct(hi));
        let (needed, more_uploads) = match verdict {
            Verdict::Inconclusive => still_needed(&sequence, bad, n, p0),
            _ => (String::new(), None),
        };
        let explanation = match verdict {
            Verdict::Pass => format!("{} observed, {interval}, all {sign} {}", pct(observed), pct(threshold)),
            Verdict::Fail => format!("{} observed, {interval}, entirely past {}", pct(observed), pct(threshold)),
            Verdict::Inconclusive => format!("{} observed but the {interval} still includes {}: {needed}", pct(observed), pct(threshold)),
        };
        let versus_control = points((bad, n), (control_bad, control.count()), higher_is_better);
        Gate {
            criterion,
            verdict,
            observed: Some(observed),
            interval: Some((lo, hi)),
            threshold,
            sample: n,
            min_sample: min,
            explanation,
            versus_control,
            more_uploads,
            receipt: Some(Receipt::of_sequence(&sequence, bad, n, p0, judged.from, judged.to)),
        }
    };
    let failures = |s: &Stats| s.error + s.timeout;
    gates.push(rate_gate(Criterion::SuccessRate, failures(treatment), failures(control), criteria.success_rate_min.get(), true));
    gates.push(rate_gate(Criterion::ErrorRate, treatment.error, control.error, criteria.error_rate_max.get(), false));
    gates.push(latency_gate(criteria.latency_max.get(), treatment, control, reference, min, judged));
    if let Some(points) = criteria.failures_vs_control_max {
        let counts = ((failures(treatment), n), (failures(control), control.count()));
        gates.push(versus_control_gate(Criterion::FailuresVsControl, "failures", points, counts, min, judged));
    }
    if let Some(points) = criteria.latency_vs_control_max {
        // The same limit as the latency gate's, counted alike in both arms (every upload that
        // may be slower than it, by the sketch's 1% bins).
        gates.push(match reference.latency_p95_ms.filter(|base| *base > 0.0) {
            Some(base) => {
                let limit_ms = base * criteria.latency_max.get() / 100.0;
                let slow = |s: &Stats| (s.latency.count_above(limit_ms).1, s.count());
                let what = format!("uploads slower than {limit_ms:.0} ms");
                versus_control_gate(Criterion::LatencyVsControl, &what, points, (slow(treatment), slow(control)), min, judged)
            }
            None => unjudged(Criterion::LatencyVsControl, points, n, min, "no baseline yet: nothing sets the latency limit".into()),
        });
    }

    gates.push(memory_gate(treatment, reference, memory_limit_pct, min, judged));

    gates.push(Gate {
        criterion: Criterion::MinEvents,
        verdict: if enough { Verdict::Pass } else { Verdict::Inconclusive },
        observed: Some(n as f64),
        interval: None,
        threshold: min as f64,
        sample: n,
        min_sample: min,
        explanation: if enough { format!("{n} uploads, at least {min} needed") } else { format!("{n} of {min} uploads so far") },
        versus_control: None,
        more_uploads: None,
        receipt: None,
    });
    gates
}

/// A gate that has nothing to judge yet.
fn unjudged(criterion: Criterion, threshold: f64, sample: u64, min_sample: u64, explanation: String) -> Gate {
    Gate {
        criterion,
        verdict: Verdict::Inconclusive,
        observed: None,
        interval: None,
        threshold,
        sample,
        min_sample,
        explanation,
        versus_control: None,
        more_uploads: None,
        receipt: None,
    }
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
mod tests;
