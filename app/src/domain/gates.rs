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
mod tests;
