//! Guardrails: what the guard loop decides from the treatment arm's evidence in the current
//! stage. Decisions are values — roll back (with the evidence as a receipt that can be
//! recomputed), raise a review, or hold — and the server applies them. "Sustained" conditions
//! are timers the caller keeps (in Postgres, so they survive restarts) and passes back in.
//!
//! Every rate is judged with anytime-valid statistics ([`super::sequential`]), because the
//! loop looks every few seconds for days: a point estimate over a trailing window rolled a
//! healthy treatment back in most stages, and was blind below its minimum sample. Two tests
//! guard each rollback rate, each with its own share of α (see [`ALPHA_ROLLBACK_SEQUENCE`]):
//! a confidence sequence over everything since the stage began, and a change detector that
//! finds a regression starting late in a long stage.

use super::gates::Reference;
use super::plan::Guardrails;
use super::receipt::{Method, RULE_VERSION, Receipt};
use super::sequential::{ChangeDetector, MeanSequence, RateSequence};
use super::stats::Stats;
use super::units::{Span, Timestamp};
use serde::{Deserialize, Serialize};

mod review;

pub use review::{
    COMPLAINT_MIN, COMPLAINT_PERIOD, COMPLAINT_RISE, ComplaintTrend, SAMPLE_RATIO_FOR, complaints_rising, sample_ratio_mismatch, unvouched,
};

/// α of the confidence sequence of each rollback rate (error rate, non-success rate).
pub const ALPHA_ROLLBACK_SEQUENCE: f64 = 0.001;
/// α of the change detector of each rollback rate. With the sequence: 0.45% per rate; with
/// memory's share ([`ALPHA_ROLLBACK_MEMORY`]), 1% per stage soak for every rollback rule.
pub const ALPHA_ROLLBACK_CHANGE: f64 = 0.0035;
/// α of the memory rule's confidence sequence of the mean.
pub const ALPHA_ROLLBACK_MEMORY: f64 = 0.001;
/// α of each review condition (success band, latency): a review asks a person to look.
pub const ALPHA_REVIEW: f64 = 0.025;
/// The rollback sequences are tightest after about this many events: a bad change should be
/// caught within its first thousand.
pub const ROLLBACK_N_STAR: f64 = 1_000.0;
/// The review sequences are tuned for a stage's worth of evidence.
pub const REVIEW_N_STAR: f64 = 10_000.0;
/// The share of uploads allowed above a latency limit: "p95 ≤ limit" is "at most 5% above it".
pub const LATENCY_TAIL: f64 = 0.05;

/// A condition that needs review only once it has held for a while.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Success rate proven inside the review band (seeds: below 97%).
    SuccessBand,
    /// p95 latency proven above the review limit (seeds: 120% of baseline).
    LatencyHigh,
    /// The arms' uploads split far from the flag's percentage.
    SampleRatio,
    /// The plan's metric source cannot vouch for its figures (Prometheus down, stale, a gap).
    SourceUnusable,
}

impl Condition {
    const ALL: [Condition; 4] = [Condition::SuccessBand, Condition::LatencyHigh, Condition::SampleRatio, Condition::SourceUnusable];

    pub fn as_str(self) -> &'static str {
        match self {
            Condition::SuccessBand => "success_band",
            Condition::LatencyHigh => "latency_high",
            Condition::SampleRatio => "sample_ratio",
            Condition::SourceUnusable => "source_unusable",
        }
    }

    pub fn parse(text: &str) -> Option<Condition> {
        Condition::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// The review rule that waits on this condition (its alerts' kind).
    pub fn review_rule(self) -> &'static str {
        match self {
            Condition::SuccessBand => "success_band",
            Condition::LatencyHigh => "latency_above_baseline",
            Condition::SampleRatio => "sample_ratio_mismatch",
            Condition::SourceUnusable => "metrics_source_unavailable",
        }
    }
}

/// Since when the episode behind a review has lasted: the start of the condition it waited
/// on, else the span the breach judged (the complaint trend's hour). An alert acknowledged within the episode covers it; the same alert is raised again
/// only once the episode ends and another begins (otherwise an acknowledged alert would come
/// back on the next tick).
pub fn episode_start(breach: &Breach, sustained: &[Sustained], now: Timestamp) -> Timestamp {
    Condition::ALL
        .into_iter()
        .find(|c| c.review_rule() == breach.rule)
        .and_then(|c| sustained.iter().find(|s| s.condition == c))
        .map_or(Timestamp(now.millis() - breach.window.millis()), |s| s.since)
}

/// Since when a condition has held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sustained {
    pub condition: Condition,
    pub since: Timestamp,
}

/// The measured value behind a decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Breach {
    /// Which rule: `success_rate_below`, `error_rate_above`, `critical_error`, `memory_above_baseline`,
    /// `success_band`, `latency_above_baseline`.
    pub rule: String,
    pub observed: f64,
    pub threshold: f64,
    pub sample: u64,
    pub window: Span,
    pub message: String,
    /// The inputs of the decision (absent from alerts made before receipts existed).
    #[serde(default)]
    pub receipt: Option<Receipt>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Decision {
    /// Roll the flag back now.
    RollBack(Breach),
    /// Raise an alert that blocks advancing until an approver acknowledges it.
    Review(Breach),
}

/// The decisions for this tick, and which sustained conditions hold now (the caller starts
/// timers for new ones and clears the rest).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub decisions: Vec<Decision>,
    pub holding: Vec<Condition>,
    /// Why nothing was decided, when there is nothing to judge.
    pub note: Option<String>,
}

/// The treatment arm's evidence in the current stage: its events per minute, oldest first
/// (each minute's `Timestamp` is the minute's start), and the stage's soak, which sets how
/// many minutes the change detector must allow for.
#[derive(Clone, Copy, Debug)]
pub struct StageEvidence<'a> {
    pub minutes: &'a [(Timestamp, Stats)],
    pub soak: Span,
}

/// Which of a minute's uploads count as bad for a rate.
type BadCount = fn(&Stats) -> u64;

/// A rate the guard rolls back on: which events are bad, and the plan's line.
struct RollbackRate {
    rule: &'static str,
    /// The line as a fraction of events.
    p0: f64,
    bad: BadCount,
    /// How a breach reads: the interval of the bad rate in the plan's terms.
    describe: fn(f64, f64) -> String,
    /// What a bad upload did (`failed`, `erred`), and the plan's line in words (`a success rate
    /// below 95%`).
    bad_word: &'static str,
    line: String,
    /// The plan's value (percent), and the observed value in the same terms.
    threshold: f64,
    observed: fn(f64) -> f64,
}

fn failures(s: &Stats) -> u64 {
    s.error + s.timeout
}

fn errors(s: &Stats) -> u64 {
    s.error
}

/// Percent with two decimals.
fn pct(fraction: f64) -> String {
    format!("{:.2}%", fraction * 100.0)
}

/// Judges the treatment arm's evidence in the current stage.
pub fn assess(
    rails: &Guardrails,
    evidence: StageEvidence<'_>,
    reference: &Reference,
    sustained: &[Sustained],
    now: Timestamp,
) -> Assessment {
    let mut judge = StageJudge::new(rails, evidence.soak);
    evidence.minutes.iter().for_each(|(at, stats)| judge.add_minute(*at, stats));
    judge.judge(rails, reference, sustained, now)
}

/// The guard's evidence for one stage, fed minute by minute (oldest first): the running total
/// and each rollback rate's change detector, so that judging again after another minute costs
/// one minute's work. The server judges a stage's minutes at once ([`assess`]);
/// `rampart backtest` judges after every minute.
#[derive(Clone, Debug)]
pub struct StageJudge {
    total: Stats,
    /// One per rollback rate, in [`rollback_rates`]' order, with what counts as bad for it.
    detectors: [(ChangeDetector, BadCount); 2],
    /// The start of each minute fed and the uploads before it, to name a window's start.
    starts: Vec<(Timestamp, u64)>,
}

impl StageJudge {
    /// For a stage of `soak`: the change detectors allow for a change starting at any of its
    /// minutes (at least an hour's).
    pub fn new(rails: &Guardrails, soak: Span) -> StageJudge {
        let starts = (soak.secs().max(0) as u64 / 60).max(60);
        let detectors = rollback_rates(rails).map(|rate| (ChangeDetector::new(rate.p0, ALPHA_ROLLBACK_CHANGE, starts), rate.bad));
        StageJudge { total: Stats::default(), detectors, starts: Vec::new() }
    }

    /// One more minute of the stage's treatment uploads (`at`: the minute's start).
    pub fn add_minute(&mut self, at: Timestamp, stats: &Stats) {
        self.starts.push((at, self.total.count()));
        for (detector, bad) in &mut self.detectors {
            detector.start_here();
            detector.add(bad(stats), stats.count());
        }
        self.total.merge(stats);
    }

    /// The window rate `i`'s detector alarmed on, with the start of its first minute.
    fn change(&self, i: usize) -> Option<(super::sequential::Window, Timestamp)> {
        let detector = &self.detectors[i].0;
        if !detector.alarmed() {
            return None;
        }
        let window = detector.strongest()?;
        let start = self.starts.iter().find(|(_, before)| *before == window.events_before).map_or(self.starts[0].0, |(at, _)| *at);
        Some((window, start))
    }

    /// The decisions at `now` on everything fed so far.
    pub fn judge(&self, rails: &Guardrails, reference: &Reference, sustained: &[Sustained], now: Timestamp) -> Assessment {
        let total = &self.total;
        let n = total.count();
        let from = self.starts.first().map_or(now, |(at, _)| *at);
        let span = now.since(from);
        let mut out = Assessment::default();
        let receipt = |method, bad, events, threshold_rate, alpha, statistic, boundary, interval, from| Receipt {
            method,
            rule_version: RULE_VERSION,
            bad,
            events,
            threshold_rate,
            alpha,
            statistic,
            boundary,
            interval,
            alternative: None,
            control: None,
            from,
            to: now,
        };

        // A critical error rolls back however few events there are.
        if rails.auto_rollback.on_critical_error && total.critical > 0 {
            let message = match n {
                0 => format!("{} critical error(s) in this stage, before any treatment upload was counted", total.critical),
                n => format!("{} critical error(s) among {n} treatment uploads in this stage", total.critical),
            };
            out.decisions.push(Decision::RollBack(Breach {
                rule: "critical_error".into(),
                observed: total.critical as f64,
                threshold: 0.0,
                sample: n,
                window: span,
                message,
                receipt: Some(receipt(Method::Count, total.critical, n, 0.0, 0.0, total.critical as f64, 1.0, None, from)),
            }));
        }
        // (Before any upload is counted: a metric source may report critical errors while its
        // uploads counter has nothing to say.)
        if n == 0 {
            out.note = Some("no treatment uploads in this stage yet".into());
            return out;
        }

        let auto = &rails.auto_rollback;
        let rates = rollback_rates(rails);
        for (index, rate) in rates.iter().enumerate() {
            let k = (rate.bad)(total);
            let sequence = RateSequence::tuned(rate.p0, ALPHA_ROLLBACK_SEQUENCE, ROLLBACK_N_STAR);
            if sequence.proves_above(k, n, rate.p0) {
                let (lo, hi) = sequence.interval(k, n);
                let message = format!(
                    "{} (anytime-valid, α {}) over all {n} treatment uploads of this stage, of which {k} {}: {}, beyond doubt",
                    (rate.describe)(lo, hi),
                    pct(ALPHA_ROLLBACK_SEQUENCE),
                    rate.bad_word,
                    rate.line
                );
                out.decisions.push(Decision::RollBack(Breach {
                    rule: rate.rule.into(),
                    observed: (rate.observed)(k as f64 / n as f64),
                    threshold: rate.threshold,
                    sample: n,
                    window: span,
                    message,
                    receipt: Some(Receipt::of_sequence(&sequence, k, n, rate.p0, from, now)),
                }));
                continue;
            }
            if let Some((window, start)) = self.change(index) {
                let message = format!(
                    "{} of the {} treatment uploads in the last {} {} ({}): {} that the change detector (α {}) cannot put down to chance",
                    window.bad,
                    window.events,
                    now.since(start),
                    rate.bad_word,
                    pct(window.bad as f64 / window.events as f64),
                    rate.line,
                    pct(ALPHA_ROLLBACK_CHANGE)
                );
                out.decisions.push(Decision::RollBack(Breach {
                    rule: rate.rule.into(),
                    observed: (rate.observed)(window.bad as f64 / window.events as f64),
                    threshold: rate.threshold,
                    sample: window.events,
                    window: now.since(start),
                    message,
                    receipt: Some(Receipt {
                        alternative: Some(window.alternative),
                        ..receipt(
                            Method::ChangeDetector,
                            window.bad,
                            window.events,
                            rate.p0,
                            ALPHA_ROLLBACK_CHANGE,
                            window.statistic,
                            window.threshold,
                            None,
                            start,
                        )
                    }),
                }));
            }
        }

        // Memory: the confidence sequence of the stage's mean, once the plan's minimum sample
        // is in (the sequence is asymptotic: dozens of readings, not a handful).
        if let Some(base) = reference.memory_mean_mb
            && base > 0.0
            && n >= u64::from(rails.min_sample)
        {
            let limit = auto.memory_above_baseline.get();
            let line = base * limit / 100.0;
            let sequence = MeanSequence::tuned(ALPHA_ROLLBACK_MEMORY, ROLLBACK_N_STAR);
            if let Some(interval) = total.memory_interval(&sequence)
                && interval.lo > line
            {
                let ratio = interval.mean / base * 100.0;
                let message = format!(
                    "memory {:.0} MB per upload over {n} uploads (anytime-valid, α {}: {:.0}–{:.0} MB) is {ratio:.0}% of the {} ({base:.0} MB): above {limit}% beyond doubt",
                    interval.mean,
                    pct(ALPHA_ROLLBACK_MEMORY),
                    interval.lo,
                    interval.hi,
                    reference.source,
                );
                out.decisions.push(Decision::RollBack(Breach {
                    rule: "memory_above_baseline".into(),
                    observed: ratio,
                    threshold: limit,
                    sample: n,
                    window: span,
                    message,
                    receipt: Some(Receipt::of_mean(&sequence, interval, n, line, from, now)),
                }));
            }
        }

        let review = &rails.manual_review;
        let sustained_for = |c: Condition| sustained.iter().find(|s| s.condition == c).map(|s| now.since(s.since));
        let [low, high] = review.success_band;
        let band_top = 1.0 - high.get() / 100.0;
        let band = RateSequence::tuned(band_top, ALPHA_REVIEW, REVIEW_N_STAR);
        let k = failures(total);
        if band.proves_above(k, n, band_top) {
            out.holding.push(Condition::SuccessBand);
            if sustained_for(Condition::SuccessBand).is_some_and(|d| d >= review.success_band_for) {
                let (lo, hi) = band.interval(k, n);
                let message = format!(
                    "success rate {}–{} (anytime-valid) has stayed below {}% for {} (review band {}–{}%)",
                    pct(1.0 - hi),
                    pct(1.0 - lo),
                    high.get(),
                    review.success_band_for,
                    low.get(),
                    high.get()
                );
                let r = Receipt::of_sequence(&band, k, n, band_top, from, now);
                out.decisions.push(Decision::Review(Breach {
                    rule: Condition::SuccessBand.review_rule().into(),
                    observed: 100.0 - k as f64 * 100.0 / n as f64,
                    threshold: high.get(),
                    sample: n,
                    window: span,
                    message,
                    receipt: Some(r),
                }));
            }
        }
        if let Some(base) = reference.latency_p95_ms
            && base > 0.0
        {
            let limit_ms = base * review.latency_above_baseline.get() / 100.0;
            // Only the uploads certainly slower than the limit count against it.
            let (slow, _) = total.latency.count_above(limit_ms);
            let tail = RateSequence::tuned(LATENCY_TAIL, ALPHA_REVIEW, REVIEW_N_STAR);
            if tail.proves_above(slow, n, LATENCY_TAIL) {
                out.holding.push(Condition::LatencyHigh);
                if sustained_for(Condition::LatencyHigh).is_some_and(|d| d >= review.latency_for) {
                    let (lo, hi) = tail.interval(slow, n);
                    let message = format!(
                        "{}–{} of uploads (anytime-valid) have been slower than {limit_ms:.0} ms, {}% of the {} p95 ({base:.0} ms), for {}: p95 latency is above the limit",
                        pct(lo),
                        pct(hi),
                        review.latency_above_baseline.get(),
                        reference.source,
                        review.latency_for
                    );
                    let r = Receipt::of_sequence(&tail, slow, n, LATENCY_TAIL, from, now);
                    out.decisions.push(Decision::Review(Breach {
                        rule: Condition::LatencyHigh.review_rule().into(),
                        observed: total.latency.quantile(0.95).map_or(0.0, |p95| p95 / base * 100.0),
                        threshold: review.latency_above_baseline.get(),
                        sample: n,
                        window: span,
                        message,
                        receipt: Some(r),
                    }));
                }
            }
        }
        out
    }
}

/// The two rates the guard rolls back on, in this order: failures against the success line,
/// errors against the error line.
fn rollback_rates(rails: &Guardrails) -> [RollbackRate; 2] {
    let auto = &rails.auto_rollback;
    [
        RollbackRate {
            rule: "success_rate_below",
            p0: 1.0 - auto.success_rate_below.get() / 100.0,
            bad: failures,
            describe: |lo, hi| format!("success rate {}–{}", pct(1.0 - hi), pct(1.0 - lo)),
            bad_word: "failed",
            line: format!("a success rate below {}%", auto.success_rate_below.get()),
            threshold: auto.success_rate_below.get(),
            observed: |rate| 100.0 - rate * 100.0,
        },
        RollbackRate {
            rule: "error_rate_above",
            p0: auto.error_rate_above.get() / 100.0,
            bad: errors,
            describe: |lo, hi| format!("error rate {}–{}", pct(lo), pct(hi)),
            bad_word: "erred",
            line: format!("an error rate above {}%", auto.error_rate_above.get()),
            threshold: auto.error_rate_above.get(),
            observed: |rate| rate * 100.0,
        },
    ]
}

#[cfg(test)]
mod tests;
