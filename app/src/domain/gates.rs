//! Gate evaluation: each success criterion of a stage, judged on the treatment arm's events
//! since the stage began, is **pass**, **fail** or **inconclusive** — never a pass that the
//! evidence does not support, at whatever moment someone looks. Rates carry an anytime-valid
//! interval (a confidence sequence, [`super::sequential::RateSequence`]) with α = 2.5% per
//! gate; p95 latency is judged as the share of uploads slower than the limit, which must be at
//! most 5%, with the same kind of sequence. A criterion passes only when its whole interval is
//! on the right side of the threshold, and fails only when its whole interval is on the wrong
//! side; a sequence never needs a minimum sample to be honest, so rates are judged from the
//! first upload (the stage's minimum count is a gate of its own).

use super::plan::{Criteria, Guardrails, StageFlag};
use super::receipt::{Method, RULE_VERSION, Receipt};
use super::sequential::{Difference, MeanSequence, RateSequence, Side, rate_difference, srm_ln_bayes_factor, srm_p_value};
use super::stats::{StageRows, Stats, Summary};
use super::units::{Span, Timestamp, thousands};
use serde::{Deserialize, Serialize};
use std::fmt;

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_964;
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

/// A sample-ratio mismatch is declared below this anytime-valid p-value.
pub const ALPHA_SAMPLE_RATIO: f64 = 0.001;

/// The stage's units per arm against the share the flag serves the treatment: when units are
/// bucketed as planned, each lands in the treatment with that chance, so a split far from it
/// means the assignment or the reporting is broken (a client that ignores the flag, an arm
/// whose events are dropped) and no comparison of the arms can be trusted. Judged with the
/// sequential test of Lindon & Malek ([`srm_p_value`]), valid at every look.
///
/// What is counted: distinct units where the events of both arms name them (`unit`), since the
/// flag splits units; otherwise uploads, which follow the same split when every unit sends alike. Counting
/// uploads of units that send unevenly overstates the evidence (a busy unit's uploads all go
/// one way), so a plan whose services can name the unit should.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleRatio {
    /// Uploads per arm.
    pub treatment: u64,
    pub control: u64,
    /// Distinct units per arm (treatment, control) among the uploads that name one: what is
    /// judged when there are any.
    #[serde(default)]
    pub units: Option<(u64, u64)>,
    /// The flag's percentage for the stage.
    pub planned_pct: f64,
    pub p_value: f64,
    /// Uploads of the stage's first `settle` are not counted (see [`sample_ratio`]).
    #[serde(default)]
    pub settle: Span,
    /// The start of the first minute counted.
    #[serde(default)]
    pub from: Timestamp,
}

impl SampleRatio {
    /// The check of the uploads of a stage serving `planned_pct`% of units the treatment;
    /// `None` at 0% and 100%, where there is no split to check.
    pub fn check(treatment: u64, control: u64, planned_pct: f64) -> Option<SampleRatio> {
        if !(planned_pct > 0.0 && planned_pct < 100.0) {
            return None;
        }
        let split = SampleRatio { treatment, control, units: None, planned_pct, p_value: 1.0, settle: Span::ZERO, from: Timestamp(0) };
        Some(SampleRatio { p_value: srm_p_value(&split.judged_counts(), &split.planned()), ..split })
    }

    /// The same check on the distinct units per arm `(treatment, control)`, when every arm that
    /// has uploads names units in them. When an arm's uploads name none (the new code path
    /// sends `unit`, the old one does not), the unit counts say nothing of the split, and the
    /// uploads are judged; an arm with no uploads yet has no units either, and that is no
    /// reason to stop counting units.
    pub fn with_units(self, units: Option<(u64, u64)>) -> SampleRatio {
        let names = |units: u64, uploads: u64| units > 0 || uploads == 0;
        let units = units.filter(|&(t, c)| t + c > 0 && names(t, self.treatment) && names(c, self.control));
        let split = SampleRatio { units, ..self };
        SampleRatio { p_value: srm_p_value(&split.judged_counts(), &split.planned()), ..split }
    }

    /// The counts judged, treatment first: units when counted, else uploads.
    fn judged_counts(&self) -> [u64; 2] {
        let (t, c) = self.units.unwrap_or((self.treatment, self.control));
        [t, c]
    }

    fn planned(&self) -> [f64; 2] {
        [self.planned_pct / 100.0, 1.0 - self.planned_pct / 100.0]
    }

    /// "units" or "uploads": what the check counts.
    pub fn counted(&self) -> &'static str {
        if self.units.is_some() { "units" } else { "uploads" }
    }

    /// What the check was made from, judged at `to`: the counts, the planned share, the log
    /// Bayes factor and its boundary.
    pub fn receipt(&self, to: Timestamp) -> Receipt {
        let [treatment, control] = self.judged_counts();
        Receipt {
            method: if self.units.is_some() { Method::UnitRatio } else { Method::SampleRatio },
            rule_version: RULE_VERSION,
            bad: treatment,
            events: treatment + control,
            threshold_rate: self.planned_pct / 100.0,
            alpha: ALPHA_SAMPLE_RATIO,
            statistic: srm_ln_bayes_factor(&self.judged_counts(), &self.planned()),
            boundary: (1.0 / ALPHA_SAMPLE_RATIO).ln(),
            interval: None,
            alternative: None,
            control: None,
            from: self.from,
            to,
        }
    }

    /// "p = 0.42", "p = 3.1e-7", "p < 1e-12".
    pub fn p_text(&self) -> String {
        match self.p_value {
            p if p >= 0.01 => format!("p = {p:.2}"),
            p if p >= 1e-12 => format!("p = {p:.1e}"),
            _ => "p < 1e-12".into(),
        }
    }

    pub fn mismatch(&self) -> bool {
        self.p_value < ALPHA_SAMPLE_RATIO
    }

    /// The treatment's share of what is counted, in percent.
    pub fn observed_pct(&self) -> Option<f64> {
        let [treatment, control] = self.judged_counts();
        let n = treatment + control;
        (n > 0).then(|| treatment as f64 * 100.0 / n as f64)
    }

    /// "12 treatment and 1,188 control uploads: 1.00% treatment where the flag serves 1%" (or
    /// "… units (of 40 and 3,900 uploads): …"), and from when they count when the stage's first
    /// minutes are left out.
    pub fn counts(&self) -> String {
        let split = self.observed_pct().map_or_else(|| format!("no {} yet", self.counted()), |o| format!("{} treatment", pct(o)));
        let settled =
            if self.settle > Span::ZERO { format!(" (counted from {} after the stage began)", self.settle) } else { String::new() };
        let [treatment, control] = self.judged_counts();
        let uploads = match self.units {
            Some(_) => format!(" (of {} and {} uploads)", thousands(self.treatment), thousands(self.control)),
            None => String::new(),
        };
        format!(
            "{} treatment and {} control {}{uploads}{settled}: {split} where the flag serves {}%",
            thousands(treatment),
            thousands(control),
            self.counted(),
            self.planned_pct
        )
    }

    /// The row shown among the gates, judged at `to`: it fails on a mismatch and passes
    /// otherwise (a check that finds nothing wrong has nothing left to prove).
    pub fn gate(&self, to: Timestamp) -> Gate {
        let (verdict, judgement) = if self.mismatch() {
            (Verdict::Fail, format!("mismatch ({}, below {ALPHA_SAMPLE_RATIO}): compare the arms only once it is explained", self.p_text()))
        } else {
            (Verdict::Pass, format!("no mismatch ({})", self.p_text()))
        };
        let [treatment, control] = self.judged_counts();
        Gate {
            criterion: Criterion::SampleRatio,
            verdict,
            observed: self.observed_pct(),
            interval: None,
            threshold: self.planned_pct,
            sample: treatment + control,
            min_sample: 0,
            explanation: format!("{}; {judgement}", self.counts()),
            versus_control: None,
            more_uploads: None,
            receipt: Some(self.receipt(to)),
        }
    }
}

/// The first minute the sample-ratio check of a stage that began at `entered` counts: the first
/// whole minute from the plan's `sample_ratio_settle` after it began. Until then, clients that
/// cache the flag still send at the stage before's split, and that lag would read as a mismatch
/// that the anytime p-value keeps in the stage's counts long after the caches refreshed.
pub fn sample_ratio_from(rails: &Guardrails, entered: Timestamp) -> Timestamp {
    let settle = rails.manual_review.sample_ratio_settle;
    Timestamp((entered.millis() + settle.millis() + 59_999).div_euclid(60_000) * 60_000)
}

/// The sample-ratio check of a stage that began at `entered` and serves its flag as `served`,
/// when the plan asks for it and the flag splits traffic: the uploads of `rows` from
/// [`sample_ratio_from`] (its `from`). The caller adds the distinct units seen since then with
/// [`SampleRatio::with_units`], read only when the check applies.
pub fn sample_ratio(rails: &Guardrails, served: StageFlag, rows: &StageRows, entered: Timestamp) -> Option<SampleRatio> {
    if !rails.manual_review.on_sample_ratio_mismatch || !served.enabled {
        return None;
    }
    let from = sample_ratio_from(rails, entered);
    let (treatment, control) = rows.uploads_from(from);
    let check = SampleRatio::check(treatment, control, f64::from(served.percentage.get()))?;
    Some(SampleRatio { settle: rails.manual_review.sample_ratio_settle, from, ..check })
}

/// 95% Wilson score interval for `k` of `n`, in percent: the fixed-sample interval, kept to
/// show in tests and the calibration what watching it continuously costs.
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

fn pct(v: f64) -> String {
    if !(1.0..99.0).contains(&v) { format!("{v:.2}%") } else { format!("{v:.1}%") }
}

/// How many uploads in all a sequence needs before it decides, if the rate stays at `rate`:
/// `None` when it would never decide (the rate sits on the threshold) or needs over 10 million.
pub fn uploads_to_decide(sequence: &RateSequence, rate: f64, p0: f64) -> Option<u64> {
    if (rate - p0).abs() < 1e-12 {
        return None;
    }
    // Whole bad counts, rounded against the verdict the rate heads for.
    let decided = |n: u64| {
        let k = if rate > p0 { (rate * n as f64).floor() } else { (rate * n as f64).ceil() };
        sequence.side(k as u64, n, p0) != Side::Unknown
    };
    let mut hi = 16;
    while !decided(hi) {
        hi *= 2;
        if hi > 10_000_000 {
            return None;
        }
    }
    let mut lo = hi / 2;
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if decided(mid) { hi = mid } else { lo = mid }
    }
    Some(hi)
}

/// The sequence a gate judges a bad rate with, against the allowed fraction `p0`.
pub fn sequence(p0: f64) -> RateSequence {
    RateSequence::tuned(p0, ALPHA_GATE, GATE_N_STAR)
}

/// A rate criterion judged by its sequence: `bad` of `n` against the fraction `p0` of bad
/// uploads allowed. Returns the verdict and the interval of the bad rate (fractions).
fn judge_rate(bad: u64, n: u64, p0: f64) -> (Verdict, RateSequence) {
    let sequence = sequence(p0);
    let verdict = match sequence.side(bad, n, p0) {
        Side::Below => Verdict::Pass,
        Side::Above => Verdict::Fail,
        Side::Unknown => Verdict::Inconclusive,
    };
    (verdict, sequence)
}

/// "≈ 2,300 more uploads at the observed rate", or why none will do.
/// Also the number, when there is one, for [`pace`].
fn still_needed(sequence: &RateSequence, bad: u64, n: u64, p0: f64) -> (String, Option<u64>) {
    let rate = bad as f64 / n as f64;
    match uploads_to_decide(sequence, rate, p0) {
        Some(total) if total > n => (format!("≈ {} more uploads at the observed rate", thousands(total - n)), Some(total - n)),
        Some(_) => ("a few more uploads at the observed rate".into(), Some(1)),
        None => ("no verdict in sight at the observed rate: it sits on the threshold".into(), None),
    }
}

/// Adds to each inconclusive gate how long its remaining uploads take at `per_hour` treatment
/// uploads an hour (the last hour's pace): "… ≈ 2,300 more uploads at the observed rate, ≈ 19 h
/// at the last hour's pace".
pub fn pace(gates: &mut [Gate], per_hour: f64) {
    for gate in gates.iter_mut() {
        let Some(more) = gate.more_uploads else { continue };
        if per_hour <= 0.0 {
            gate.explanation.push_str(", and no treatment uploads in the last hour");
            continue;
        }
        let when = hours_words(more as f64 / per_hour);
        gate.explanation.push_str(&format!(", ≈ {when} at the last hour's pace ({} an hour)", thousands(per_hour.round() as u64)));
    }
}

/// "40 min", "19 h", "22 days": a wait in the unit a person plans with.
pub fn hours_words(hours: f64) -> String {
    if hours < 1.0 {
        format!("{:.0} min", (hours * 60.0).ceil().max(1.0))
    } else if hours < 48.0 {
        format!("{hours:.0} h")
    } else {
        format!("{:.0} days", hours / 24.0)
    }
}

/// The difference of two bad-event rates in percentage points, with the sign flipped for a
/// criterion stated as a good rate (success).
fn points(t: (u64, u64), c: (u64, u64), good: bool) -> Option<Difference> {
    let d = rate_difference(t.0, t.1, c.0, c.1, ALPHA_DIFFERENCE, GATE_N_STAR)?;
    let scale = if good { -100.0 } else { 100.0 };
    let (a, b) = (d.lo * scale, d.hi * scale);
    Some(Difference { estimate: d.estimate * scale, lo: a.min(b), hi: a.max(b) })
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

    // Memory: the confidence sequence of the stage's mean, once the stage's minimum sample is
    // in (the sequence is asymptotic).
    let short = |what: &str| format!("inconclusive — {n} of {min} uploads so far; {what} cannot be judged yet");
    let memory_sequence = MeanSequence::tuned(ALPHA_GATE, GATE_N_STAR);
    let memory = match (reference.memory_mean_mb, treatment.memory_interval(&memory_sequence)) {
        (Some(base), Some(interval)) if base > 0.0 => {
            let line = base * memory_limit_pct / 100.0;
            let of_base = |mb: f64| mb / base * 100.0;
            let verdict = match (enough, interval.hi <= line, interval.lo > line) {
                (false, _, _) => Verdict::Inconclusive,
                (true, true, _) => Verdict::Pass,
                (true, _, true) => Verdict::Fail,
                _ => Verdict::Inconclusive,
            };
            let interval_words = format!(
                "{:.0}% anytime interval {:.0}–{:.0}%",
                (1.0 - 2.0 * ALPHA_GATE) * 100.0,
                of_base(interval.lo),
                of_base(interval.hi)
            );
            let mean = format!("mean {:.0} MB is {:.0}% of the {} ({base:.0} MB)", interval.mean, of_base(interval.mean), reference.source);
            let explanation = match verdict {
                _ if !enough => short("memory"),
                Verdict::Pass => format!("{mean}, {interval_words}, all ≤ {memory_limit_pct:.0}%"),
                Verdict::Fail => format!("{mean}, {interval_words}, entirely past {memory_limit_pct:.0}%"),
                Verdict::Inconclusive => format!("{mean} but the {interval_words} still includes {memory_limit_pct:.0}%"),
            };
            Gate {
                criterion: Criterion::Memory,
                verdict,
                observed: Some(of_base(interval.mean)),
                interval: Some((of_base(interval.lo), of_base(interval.hi))),
                threshold: memory_limit_pct,
                sample: n,
                min_sample: min,
                explanation,
                versus_control: None,
                more_uploads: None,
                receipt: Some(Receipt::of_mean(&memory_sequence, interval, n, line, judged.from, judged.to)),
            }
        }
        _ => unjudged(Criterion::Memory, memory_limit_pct, n, min, "no baseline or fewer than two treatment uploads yet".into()),
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
        versus_control: None,
        more_uploads: None,
        receipt: None,
    });
    gates
}

/// p95 latency ≤ `limit`% of the reference ⇔ at most 5% of uploads slower than that: the
/// share of slow uploads judged by its sequence. The sketch's bins blur the limit by 1%: a
/// pass counts every upload that may be slower, a fail only those certainly slower.
fn latency_gate(limit: f64, treatment: &Stats, control: &Stats, reference: &Reference, min: u64, judged: Judged) -> Gate {
    let n = treatment.count();
    let (Some(base), Some(p95)) = (reference.latency_p95_ms, treatment.latency.quantile(0.95)) else {
        let why = match reference.latency_p95_ms {
            None => "no baseline yet: record one, or let control traffic flow".into(),
            Some(_) => format!("no treatment uploads yet (needs p95 ≤ {limit:.0}% of baseline)"),
        };
        return unjudged(Criterion::LatencyP95, limit, n, min, why);
    };
    if base <= 0.0 {
        return unjudged(Criterion::LatencyP95, limit, n, min, "the baseline's p95 is 0 ms: record a baseline with traffic".into());
    }
    let limit_ms = base * limit / 100.0;
    let (certainly, possibly) = treatment.latency.count_above(limit_ms);
    let (pass, sequence) = judge_rate(possibly, n, LATENCY_TAIL);
    let (fail, _) = judge_rate(certainly, n, LATENCY_TAIL);
    let verdict = if pass == Verdict::Pass {
        Verdict::Pass
    } else if fail == Verdict::Fail {
        Verdict::Fail
    } else {
        Verdict::Inconclusive
    };
    let (lo, hi) = (sequence.interval(certainly, n).0, sequence.interval(possibly, n).1);
    let ratio = p95 / base * 100.0;
    let mut explanation = format!(
        "p95 {p95:.0} ms is {ratio:.0}% of the {} ({base:.0} ms); {} of uploads slower than {limit_ms:.0} ms ({:.1}% anytime interval {}–{}) vs ≤ 5%",
        reference.source,
        pct(possibly as f64 * 100.0 / n as f64),
        (1.0 - ALPHA_GATE) * 100.0,
        pct(lo * 100.0),
        pct(hi * 100.0),
    );
    let mut more_uploads = None;
    if verdict == Verdict::Inconclusive {
        let (needed, more) = still_needed(&sequence, possibly, n, LATENCY_TAIL);
        explanation.push_str(&format!(": {needed}"));
        more_uploads = more;
    }
    let versus_control = points((possibly, n), (control.latency.count_above(limit_ms).1, control.count()), false);
    // A fail rests on the uploads certainly slower; anything else on those possibly slower.
    let slow = if verdict == Verdict::Fail { certainly } else { possibly };
    Gate {
        criterion: Criterion::LatencyP95,
        verdict,
        observed: Some(ratio),
        interval: None,
        threshold: limit,
        sample: n,
        min_sample: min,
        explanation,
        versus_control,
        more_uploads,
        receipt: Some(Receipt::of_sequence(&sequence, slow, n, LATENCY_TAIL, judged.from, judged.to)),
    }
}

/// The treatment's share of bad uploads (`what`: failures, slow uploads) at most `max_points`
/// percentage points above control's: passes when the always-valid interval of the difference
/// lies under the margin, fails when it lies above it (each side at 2.5%, as the other gates).
/// `counts`: (bad, uploads) of the treatment and of control.
fn versus_control_gate(
    criterion: Criterion,
    what: &str,
    max_points: f64,
    counts: ((u64, u64), (u64, u64)),
    min: u64,
    judged: Judged,
) -> Gate {
    let (treatment, control) = counts;
    let Some(d) = points(treatment, control, false) else {
        let why =
            if treatment.1 == 0 { "no treatment uploads yet" } else { "no control uploads in this stage yet: nothing to compare with" };
        return unjudged(criterion, max_points, treatment.1, min, why.into());
    };
    let verdict = if d.hi <= max_points {
        Verdict::Pass
    } else if d.lo > max_points {
        Verdict::Fail
    } else {
        Verdict::Inconclusive
    };
    let pts = |v: f64| format!("{v:+.2}").replace('-', "−");
    let judgement = match verdict {
        Verdict::Pass => "all under".to_string(),
        Verdict::Fail => "entirely above".to_string(),
        Verdict::Inconclusive => "still includes".to_string(),
    };
    let explanation = format!(
        "treatment {what} {} points against control's ({} of {} vs {} of {}), 95% anytime interval {} to {}, {judgement} +{max_points:.2}",
        pts(d.estimate),
        thousands(treatment.0),
        thousands(treatment.1),
        thousands(control.0),
        thousands(control.1),
        pts(d.lo),
        pts(d.hi),
    );
    Gate {
        criterion,
        verdict,
        observed: Some(d.estimate),
        interval: Some((d.lo, d.hi)),
        threshold: max_points,
        sample: treatment.1,
        min_sample: min,
        explanation,
        versus_control: Some(d),
        more_uploads: None,
        receipt: Some(Receipt {
            method: Method::Difference,
            rule_version: RULE_VERSION,
            bad: treatment.0,
            events: treatment.1,
            threshold_rate: max_points / 100.0,
            alpha: ALPHA_DIFFERENCE,
            statistic: d.estimate / 100.0,
            boundary: (d.hi - d.lo) / 200.0,
            interval: Some((d.lo / 100.0, d.hi / 100.0)),
            alternative: None,
            control: Some(control),
            from: judged.from,
            to: judged.to,
        }),
    }
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
mod tests {
    use super::*;
    use crate::domain::event::Outcome;
    use crate::domain::plan::{DEFAULT_PLAN_TOML, Plan};
    use crate::domain::stats::treatment_upload;

    const JUDGED: Judged = Judged { from: Timestamp(0), to: Timestamp(3_600_000) };

    #[test]
    fn a_gate_on_unvouched_figures_is_inconclusive_and_says_why_first() {
        let criteria = Plan::from_toml(DEFAULT_PLAN_TOML).unwrap().stages[1].criteria.clone().unwrap();
        let treatment = stats(20_000, 0, 100.0, 10.0);
        let reference = Reference::choose(None, &treatment);
        let mut gates = evaluate(&criteria, &treatment, &treatment, &reference, 120.0, JUDGED);
        assert!(gates.iter().any(|g| g.verdict == Verdict::Pass));
        unvouched(&mut gates, "Prometheus did not answer");
        for g in &gates {
            assert_eq!(g.verdict, Verdict::Inconclusive, "{g:?}");
            assert!(g.explanation.starts_with("Not judged: Prometheus did not answer. ("), "{}", g.explanation);
        }
        assert_eq!(overall(&gates), Verdict::Inconclusive);
    }

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

    /// Judged with an empty control arm.
    fn evaluate_t(criteria: &Criteria, treatment: &Stats, reference: &Reference, memory: f64) -> Vec<Gate> {
        evaluate(criteria, treatment, &Stats::default(), reference, memory, JUDGED)
    }

    #[test]
    fn the_arm_difference_stands_beside_each_rate_in_the_plans_terms() {
        // Treatment 2% errors, control 1%: +1 point of errors, −1 point of success.
        let gates = evaluate(&stage1(), &stats(9_800, 200, 100.0, 50.0), &stats(9_900, 100, 100.0, 50.0), &reference(200.0), 120.0, JUDGED);
        let success = gates[0].versus_control.unwrap();
        let errors = gates[1].versus_control.unwrap();
        assert!((success.estimate + 1.0).abs() < 1e-9 && success.lo < -1.0 && success.hi > -1.0 && success.hi < 0.0, "{success:?}");
        assert!((errors.estimate - 1.0).abs() < 1e-9 && errors.lo > 0.0, "{errors:?}");
        assert!(gates[2].versus_control.is_some() && gates[3].versus_control.is_none());
        // No control traffic: nothing to compare.
        assert!(evaluate_t(&stage1(), &stats(100, 0, 100.0, 50.0), &reference(200.0), 120.0)[0].versus_control.is_none());
    }

    #[test]
    fn every_rate_verdict_carries_a_receipt_that_recomputes_it() {
        // 10,000 uploads, 10 errors: proven under stage 1's 0.5% on both rates.
        let gates = evaluate_t(&stage1(), &stats(9_990, 10, 100.0, 50.0), &reference(200.0), 120.0);
        for gate in &gates[..3] {
            let r = gate.receipt.as_ref().unwrap_or_else(|| panic!("{gate:?}"));
            assert_eq!((r.events, r.from, r.to, r.alpha, r.rule_version), (10_000, JUDGED.from, JUDGED.to, ALPHA_GATE, RULE_VERSION));
            // From the stored numbers alone: the sequence's evidence against the threshold,
            // the boundary ln(1/α), and the side the verdict says.
            let again = sequence(r.threshold_rate);
            assert_eq!(r.statistic, again.ln_evidence(r.bad, r.events, r.threshold_rate));
            assert!((r.boundary - (1.0 / ALPHA_GATE).ln()).abs() < 1e-12);
            let side = again.side(r.bad, r.events, r.threshold_rate);
            assert_eq!(gate.verdict == Verdict::Pass, side == Side::Below, "{gate:?}");
        }
        let success = gates[0].receipt.as_ref().unwrap();
        assert!(success.bad == 10 && (success.threshold_rate - 0.005).abs() < 1e-12, "{success:?}");
        assert_eq!(gates[3].receipt.as_ref().map(|r| r.method), Some(Method::MeanSequence), "memory: its mean's sequence");
        assert!(gates[4].receipt.is_none(), "the count has no sequence");
    }

    #[test]
    fn a_criterion_relative_to_control_sees_an_outage_of_both_arms_as_such() {
        let relative = Criteria { failures_vs_control_max: Some(0.2), ..stage1() };
        let row = |t: &Stats, c: &Stats| {
            evaluate(&relative, t, c, &reference(200.0), 120.0, JUDGED)
                .into_iter()
                .find(|g| g.criterion == Criterion::FailuresVsControl)
                .unwrap()
        };
        // A provider down for everyone: 3% failures in both arms fails the absolute gates and
        // passes the relative one once there is enough of both.
        let (t, c) = (stats(291_000, 9_000, 100.0, 50.0), stats(291_000, 9_000, 100.0, 50.0));
        let gate = row(&t, &c);
        assert_eq!(gate.verdict, Verdict::Pass, "{gate:?}");
        assert_eq!(verdict(&evaluate(&relative, &t, &c, &reference(200.0), 120.0, JUDGED), Criterion::ErrorRate), Verdict::Fail);
        // The same interval as the difference shown beside the rates, checked against the margin.
        let d = points((9_000, 300_000), (9_000, 300_000), false).unwrap();
        assert_eq!((gate.observed, gate.interval), (Some(d.estimate), Some((d.lo, d.hi))));
        assert!(d.hi <= 0.2 && d.lo < 0.0, "{d:?}");
        // Its receipt holds both arms' counts, from which the interval is recomputed.
        let r = gate.receipt.as_ref().unwrap();
        assert_eq!(
            (r.method, r.bad, r.events, r.control, r.alpha),
            (Method::Difference, 9_000, 300_000, Some((9_000, 300_000)), ALPHA_DIFFERENCE)
        );
        let again = rate_difference(r.bad, r.events, 9_000, 300_000, r.alpha, GATE_N_STAR).unwrap();
        assert!((r.statistic - again.estimate).abs() < 1e-12 && (r.boundary - (again.hi - again.lo) / 2.0).abs() < 1e-12, "{r:?}");
        assert!((r.threshold_rate - 0.002).abs() < 1e-12 && (r.from, r.to) == (JUDGED.from, JUDGED.to));
        // The treatment's own regression: 4% against 3% fails.
        assert_eq!(row(&stats(288_000, 12_000, 100.0, 50.0), &c).verdict, Verdict::Fail);
        // Too little to tell, and no control at all.
        assert_eq!(row(&stats(990, 10, 100.0, 50.0), &stats(990, 10, 100.0, 50.0)).verdict, Verdict::Inconclusive);
        let alone = row(&t, &Stats::default());
        assert!(alone.verdict == Verdict::Inconclusive && alone.explanation.contains("no control uploads"), "{alone:?}");
        // Plans without it have no such row.
        assert!(evaluate(&stage1(), &t, &c, &reference(200.0), 120.0, JUDGED).iter().all(|g| g.criterion != Criterion::FailuresVsControl));
    }

    #[test]
    fn latency_relative_to_control_sees_a_slow_provider_in_both_arms_as_such() {
        let relative = Criteria { latency_vs_control_max: Some(2.0), ..stage1() };
        let row = |t: &Stats, c: &Stats| {
            let gates = evaluate(&relative, t, c, &reference(200.0), 120.0, JUDGED);
            let latency = gates.iter().find(|g| g.criterion == Criterion::LatencyP95).unwrap().verdict;
            (latency, gates.into_iter().find(|g| g.criterion == Criterion::LatencyVsControl).unwrap())
        };
        // `stats` spreads latency over ±10% of its figure. The stage allows p95 ≤ 110% of the
        // baseline's 200 ms, so 220 ms; a provider slowing both arms to around 300 ms.
        let (slow_t, slow_c) = (stats(20_000, 0, 300.0, 50.0), stats(20_000, 0, 300.0, 50.0));
        let (absolute, gate) = row(&slow_t, &slow_c);
        assert_eq!((absolute, gate.verdict), (Verdict::Fail, Verdict::Pass), "{gate:?}");
        assert!(
            gate.explanation
                .starts_with("treatment uploads slower than 220 ms +0.00 points against control's (20,000 of 20,000 vs 20,000 of 20,000)"),
            "{}",
            gate.explanation
        );
        assert_eq!(gate.receipt.as_ref().map(|r| (r.method, r.control)), Some((Method::Difference, Some((20_000, 20_000)))));
        // Only the treatment slow: fails. Both fast: passes, as the absolute gate does.
        let (_, gate) = row(&slow_t, &stats(20_000, 0, 150.0, 50.0));
        assert_eq!(gate.verdict, Verdict::Fail, "{gate:?}");
        let (absolute, gate) = row(&stats(20_000, 0, 150.0, 50.0), &stats(20_000, 0, 150.0, 50.0));
        assert_eq!((absolute, gate.verdict), (Verdict::Pass, Verdict::Pass), "{gate:?}");
        // No reference p95, no limit: not judged.
        let none = Reference { latency_p95_ms: None, memory_mean_mb: None, source: "control arm".into() };
        let gates = evaluate(&relative, &slow_t, &slow_c, &none, 120.0, JUDGED);
        let gate = gates.iter().find(|g| g.criterion == Criterion::LatencyVsControl).unwrap();
        assert_eq!(gate.verdict, Verdict::Inconclusive, "{gate:?}");
    }

    #[test]
    fn a_treatment_exactly_at_the_margin_rarely_passes_however_often_it_is_looked_at() {
        use crate::domain::sequential::tests::TestRng;
        // Treatment 3.2% failures, control 3.0%: exactly 0.2 points worse, the margin. Looked at
        // every 500 uploads per arm up to 40,000, a pass may show in at most 2.5% of runs; 200
        // runs see 2 here (1%), and the bound allows the simulation's noise up to 5%.
        let mut rng = TestRng(31);
        let runs = 200;
        let passed = (0..runs)
            .filter(|_| {
                let (mut kt, mut kc) = (0, 0);
                (1..=40_000u64).any(|n| {
                    kt += u64::from(rng.uniform() < 0.032);
                    kc += u64::from(rng.uniform() < 0.030);
                    n % 500 == 0
                        && versus_control_gate(Criterion::FailuresVsControl, "failures", 0.2, ((kt, n), (kc, n)), 100, JUDGED).verdict
                            == Verdict::Pass
                })
            })
            .count();
        assert!(passed <= runs * 5 / 100, "{passed} of {runs}");
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
        let gates = evaluate_t(&stage1(), &stats(100, 0, 100.0, 50.0), &reference(200.0), 120.0);
        let success = &gates[0];
        assert_eq!(success.verdict, Verdict::Inconclusive);
        assert!(success.explanation.contains("still includes 99.50%: ≈ "), "{}", success.explanation);
        assert!(success.explanation.contains("more uploads at the observed rate"), "{}", success.explanation);
        assert_eq!(verdict(&gates, Criterion::MinEvents), Verdict::Pass);
    }

    #[test]
    fn below_the_minimum_sample_everything_is_inconclusive() {
        let gates = evaluate_t(&stage1(), &stats(37, 0, 100.0, 50.0), &reference(200.0), 120.0);
        assert!(gates.iter().all(|g| g.verdict == Verdict::Inconclusive), "{gates:#?}");
        assert_eq!(gates[4].explanation, "37 of 100 uploads so far");
        assert_eq!(overall(&gates), Verdict::Inconclusive);
    }

    #[test]
    fn inconclusive_turns_into_pass_as_evidence_arrives() {
        let c = stage1();
        assert_eq!(
            verdict(&evaluate_t(&c, &stats(200, 0, 100.0, 50.0), &reference(200.0), 120.0), Criterion::SuccessRate),
            Verdict::Inconclusive
        );
        let gates = evaluate_t(&c, &stats(5_000, 0, 100.0, 50.0), &reference(200.0), 120.0);
        assert_eq!(overall(&gates), Verdict::Pass, "{gates:#?}");
    }

    #[test]
    fn clear_failures_fail() {
        let gates = evaluate_t(&stage1(), &stats(900, 100, 100.0, 50.0), &reference(200.0), 120.0);
        assert_eq!(verdict(&gates, Criterion::SuccessRate), Verdict::Fail);
        assert_eq!(verdict(&gates, Criterion::ErrorRate), Verdict::Fail);
        assert_eq!(overall(&gates), Verdict::Fail);
    }

    #[test]
    fn latency_is_judged_against_the_baseline_with_its_interval() {
        let c = stage1(); // ≤ 110% of baseline
        let fast = evaluate_t(&c, &stats(5_000, 0, 100.0, 50.0), &reference(200.0), 120.0);
        assert_eq!(verdict(&fast, Criterion::LatencyP95), Verdict::Pass, "{:#?}", fast[2]);
        let slow = evaluate_t(&c, &stats(5_000, 0, 300.0, 50.0), &reference(200.0), 120.0);
        assert_eq!(verdict(&slow, Criterion::LatencyP95), Verdict::Fail, "{:#?}", slow[2]);
        let no_base = evaluate_t(
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
        // Readings alike: the interval is the mean.
        assert_eq!(verdict(&evaluate_t(&c, &stats(500, 0, 100.0, 119.0), &reference(200.0), 120.0), Criterion::Memory), Verdict::Pass);
        assert_eq!(verdict(&evaluate_t(&c, &stats(500, 0, 100.0, 121.0), &reference(200.0), 120.0), Criterion::Memory), Verdict::Fail);
        // Readings of 80 and 140 MB against a 100 MB baseline (mean 110%): the stage's minimum of
        // 100 leaves 120% inside the interval, 500 prove the mean below it.
        let spread = |n: u64| {
            let mut s = Stats::default();
            (0..n).for_each(|i| s.add(&treatment_upload(Outcome::Success, 100.0, if i % 2 == 0 { 80.0 } else { 140.0 }, false)));
            s
        };
        let memory =
            |n| evaluate_t(&c, &spread(n), &reference(200.0), 120.0).into_iter().find(|g| g.criterion == Criterion::Memory).unwrap();
        let few = memory(100);
        assert_eq!(few.verdict, Verdict::Inconclusive, "{few:?}");
        assert!(
            few.explanation.starts_with("mean 110 MB is 110% of the frozen baseline (100 MB) but the 95% anytime interval "),
            "{}",
            few.explanation
        );
        let many = memory(500);
        assert_eq!(many.verdict, Verdict::Pass, "{many:?}");
        let (lo, hi) = many.interval.unwrap();
        assert!(lo < 110.0 && hi < 120.0 && (many.observed.unwrap() - 110.0).abs() < 1e-9, "{many:?}");
    }

    #[test]
    fn a_clear_failure_fails_before_the_minimum_sample() {
        // 12 errors in 40: the sequence needs no minimum to prove a rate far past 0.5%.
        let gates = evaluate_t(&stage1(), &stats(28, 12, 100.0, 50.0), &reference(200.0), 120.0);
        assert_eq!(verdict(&gates, Criterion::ErrorRate), Verdict::Fail);
        assert_eq!(verdict(&gates, Criterion::MinEvents), Verdict::Inconclusive);
    }

    #[test]
    fn no_errors_in_ten_thousand_passes_and_the_interval_is_in_the_plans_terms() {
        let gates = evaluate_t(&stage1(), &stats(10_000, 0, 100.0, 50.0), &reference(200.0), 120.0);
        assert_eq!(verdict(&gates, Criterion::ErrorRate), Verdict::Pass);
        let (lo, hi) = gates[0].interval.unwrap();
        assert!(lo > 99.5 && hi == 100.0, "success interval {lo}–{hi}");
        let (lo, hi) = gates[1].interval.unwrap();
        assert!(lo == 0.0 && hi < 0.5, "error interval {lo}–{hi}");
    }

    #[test]
    fn the_pace_turns_uploads_still_needed_into_time() {
        let mut gates = evaluate_t(&stage1(), &stats(500, 0, 100.0, 50.0), &reference(200.0), 120.0);
        let more = gates[0].more_uploads.unwrap();
        assert!(more > 1_000, "{more}");
        pace(&mut gates, more as f64 / 19.0);
        assert!(
            gates[0]
                .explanation
                .ends_with(&format!("≈ 19 h at the last hour's pace ({} an hour)", thousands((more as f64 / 19.0).round() as u64))),
            "{}",
            gates[0].explanation
        );
        assert_eq!(gates[4].more_uploads, None, "the minimum-uploads gate says its own count");
        let mut idle = evaluate_t(&stage1(), &stats(500, 0, 100.0, 50.0), &reference(200.0), 120.0);
        pace(&mut idle, 0.0);
        assert!(idle[0].explanation.ends_with("and no treatment uploads in the last hour"));
    }

    #[test]
    fn the_uploads_still_needed_are_where_the_verdict_comes() {
        let sequence = RateSequence::tuned(0.005, ALPHA_GATE, GATE_N_STAR);
        for rate in [0.0, 0.001, 0.002, 0.02] {
            let n = uploads_to_decide(&sequence, rate, 0.005).unwrap();
            let k = |n: u64| if rate > 0.005 { (rate * n as f64).floor() } else { (rate * n as f64).ceil() } as u64;
            assert_ne!(sequence.side(k(n), n, 0.005), Side::Unknown, "{rate}: {n}");
            assert_eq!(sequence.side(k(n - 1), n - 1, 0.005), Side::Unknown, "{rate}: {n}");
        }
        assert_eq!(uploads_to_decide(&sequence, 0.005, 0.005), None);
        assert_eq!(thousands(2_345_678), "2,345,678");
    }

    #[test]
    fn the_sample_ratio_counts_units_where_the_events_name_them() {
        // 10% served: 100 treatment and 900 control units is the plan, but one busy treatment
        // unit sent 4,000 uploads. The uploads look skewed; the units do not.
        let uploads = SampleRatio::check(4_100, 9_000, 10.0).unwrap();
        assert!(uploads.mismatch(), "{uploads:?}");
        let units = uploads.with_units(Some((100, 900)));
        assert!(!units.mismatch(), "{units:?}");
        assert_eq!(units.p_value, srm_p_value(&[100, 900], &[0.1, 0.9]));
        let gate = units.gate(Timestamp(60_000));
        assert_eq!((gate.verdict, gate.sample, gate.observed), (Verdict::Pass, 1_000, Some(10.0)));
        assert!(
            gate.explanation.starts_with(
                "100 treatment and 900 control units (of 4,100 and 9,000 uploads): 10.0% treatment where the flag serves 10%; no mismatch (p = "
            ),
            "{}",
            gate.explanation
        );
        let r = gate.receipt.unwrap();
        assert_eq!((r.method, r.bad, r.events), (Method::UnitRatio, 100, 1_000));
        assert_eq!(units.p_value, (-r.statistic).exp().min(1.0), "{r:?}");
        // Units off the plan are found however the uploads look.
        assert!(SampleRatio::check(1_000, 9_000, 10.0).unwrap().with_units(Some((160, 840))).mismatch());
        // No upload named its unit, or those of one arm only (the new code sends it, the old
        // does not): the uploads are judged, as before — never (100, 0) units as a mismatch.
        assert_eq!(uploads.with_units(Some((0, 0))), uploads);
        let fair = SampleRatio::check(100, 900, 10.0).unwrap();
        assert_eq!(fair.with_units(Some((100, 0))), fair);
        assert!(!fair.with_units(Some((100, 0))).mismatch());
        assert_eq!(uploads.with_units(None).receipt(Timestamp(0)).method, Method::SampleRatio);
    }

    /// Units arrive one by one, each in the treatment with the planned 10%, and each sends a
    /// heavy-tailed number of uploads (Pareto, shape 1.2: most one or two, a few hundreds), as
    /// users of a service do; the check is looked at after every 20 units. Counted on units it
    /// alarms in at most its α of runs however often it is looked at; counted on the same
    /// runs' uploads it alarms in many, since a busy unit's uploads all fall in one arm.
    #[test]
    fn counting_units_keeps_the_false_alarm_rate_that_counting_uploads_loses() {
        let mut rng = crate::domain::calibration::Rng::new(11);
        let (runs, alpha) = (400, 0.01);
        let (mut by_units, mut by_uploads) = (0, 0);
        for _ in 0..runs {
            let (mut units, mut uploads) = ((0, 0), (0, 0));
            let (mut unit_alarm, mut upload_alarm) = (false, false);
            for i in 1..=2_000 {
                let sent = (1.0 - rng.uniform()).powf(-1.0 / 1.2).floor() as u64;
                if rng.uniform() < 0.1 {
                    (units.0, uploads.0) = (units.0 + 1, uploads.0 + sent);
                } else {
                    (units.1, uploads.1) = (units.1 + 1, uploads.1 + sent);
                }
                if i % 20 == 0 {
                    let check = SampleRatio::check(uploads.0, uploads.1, 10.0).unwrap();
                    upload_alarm |= check.p_value < alpha;
                    unit_alarm |= check.with_units(Some(units)).p_value < alpha;
                }
            }
            by_units += usize::from(unit_alarm);
            by_uploads += usize::from(upload_alarm);
        }
        // 1% of 400 is 4; 8 is past its binomial 95% upper bound.
        assert!(by_units <= 8, "units: {by_units} of {runs} runs alarmed");
        assert!(by_uploads > runs / 2, "uploads: {by_uploads} of {runs} runs alarmed");
    }

    #[test]
    fn the_sample_ratio_row_fails_only_on_a_mismatch() {
        assert_eq!(SampleRatio::check(5, 0, 0.0), None);
        assert_eq!(SampleRatio::check(0, 5, 100.0), None);
        // 1% served: 100 of 10,000 is the plan; 160 of 10,000 is six standard errors off.
        let fair = SampleRatio::check(100, 9_900, 1.0).unwrap();
        assert!(!fair.mismatch() && fair.p_value > 0.1, "{fair:?}");
        let gate = fair.gate(Timestamp(0));
        assert_eq!((gate.verdict, gate.sample, gate.threshold), (Verdict::Pass, 10_000, 1.0));
        assert_eq!(gate.observed, Some(1.0));
        assert!(
            gate.explanation
                .starts_with("100 treatment and 9,900 control uploads: 1.0% treatment where the flag serves 1%; no mismatch (p = "),
            "{}",
            gate.explanation
        );
        let skewed = SampleRatio::check(160, 9_840, 1.0).unwrap();
        assert!(skewed.mismatch(), "{skewed:?}");
        let gate = skewed.gate(Timestamp(60_000));
        assert_eq!(gate.verdict, Verdict::Fail);
        // Its receipt: the counts, the planned share, and the log Bayes factor at its boundary.
        let r = gate.receipt.as_ref().unwrap();
        assert_eq!((r.method, r.bad, r.events, r.to), (Method::SampleRatio, 160, 10_000, Timestamp(60_000)));
        assert!((r.threshold_rate - 0.01).abs() < 1e-12 && (r.boundary - 1_000f64.ln()).abs() < 1e-12);
        assert!((r.statistic + srm_p_value(&[160, 9_840], &[0.01, 0.99]).ln()).abs() < 1e-12 && r.statistic > r.boundary, "{r:?}");
        assert!(gate.explanation.contains("mismatch (p = 3.3e-6, below 0.001)"), "{}", gate.explanation);
        assert_eq!(SampleRatio::check(600, 400, 1.0).unwrap().p_text(), "p < 1e-12");
        // A gross mismatch whose p-value underflows to 0: the receipt's log Bayes factor stays
        // finite (it is stored as JSON, where infinity has no spelling).
        let gross = SampleRatio::check(1_000, 19_000, 1.0).unwrap();
        assert_eq!(gross.p_value, 0.0);
        let r = gross.receipt(Timestamp(0));
        assert!(r.statistic.is_finite() && r.statistic > 745.0, "{r:?}");
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Receipt>(&json).unwrap(), r);
        // The same p-value as the sequential test's own.
        assert_eq!(skewed.p_value, srm_p_value(&[160, 9_840], &[0.01, 0.99]));
        assert_eq!(
            SampleRatio::check(0, 0, 10.0).unwrap().gate(Timestamp(0)).explanation,
            "0 treatment and 0 control uploads: no uploads yet where the flag serves 10%; no mismatch (p = 1.00)"
        );
    }
}
