//! The power planner: for every stage whose flag is on, how many treatment uploads its gates
//! need before they can pass if the change is as good as what it replaces, and how long that
//! takes at the service's traffic — so a plan whose soak cannot reach a verdict is seen before
//! the rollout starts, not at its end.
//!
//! The rate gates are planned exactly: the uploads at which their confidence sequence
//! ([`gates::sequence`]) first proves today's failure (or error) rate below the stage's limit,
//! found by [`gates::uploads_to_decide`]. That is the typical figure: a stage's failures come
//! by chance, and about half of stages pass later. So each gate also gets the uploads by which
//! [`POWER`] (9 in 10) of stages at that rate pass, from the exact binomial chance that the
//! failures at `n` uploads are few enough ([`uploads_for_power`]); a soak fits when it holds
//! those. The stage's minimum uploads counts too. Latency and memory depend on how the
//! treatment's distribution compares with the baseline's, which a plan does not state; they are
//! not planned.

use super::gates::{self, Criterion};
use super::plan::{Plan, Traffic};
use super::sequential::{RateSequence, ln_gamma};
use super::units::{Span, thousands};
use serde::{Deserialize, Serialize};

/// What one gate needs: `None` when it never passes at the stated rate (the rate is at or past
/// the stage's limit, or needs more than ten million uploads).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Need {
    pub criterion: Criterion,
    /// Uploads at which the gate passes at exactly the stated rate (the typical stage).
    pub uploads: Option<u64>,
    /// Uploads by which [`POWER`] of stages at the stated rate have passed.
    #[serde(default)]
    pub likely: Option<u64>,
    /// The rate assumed for the treatment and the limit it must be proven under, in percent
    /// (rate gates only).
    pub rate: Option<(f64, f64)>,
}

/// A stage's plan: what it needs and how long that takes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StagePower {
    pub stage: usize,
    pub name: String,
    pub treatment_per_hour: f64,
    pub needs: Vec<Need>,
    pub soak: Span,
}

impl StagePower {
    /// The gate that needs the most uploads (a gate that never passes first).
    pub fn limiting(&self) -> Option<&Need> {
        // Of gates needing as many, the first listed (`max_by_key` keeps the last).
        self.needs.iter().rev().max_by_key(|n| n.uploads.map_or(u64::MAX, |u| u))
    }

    /// Treatment uploads before every planned gate can pass in a typical stage; `None` if one
    /// never does.
    pub fn uploads(&self) -> Option<u64> {
        self.limiting().and_then(|n| n.uploads)
    }

    /// Treatment uploads by which [`POWER`] of stages have passed every planned gate (each
    /// gate's own figure; the largest).
    pub fn likely_uploads(&self) -> Option<u64> {
        self.needs.iter().map(|n| n.likely).try_fold(0, |most, likely| likely.map(|l| most.max(l)))
    }

    /// Hours the typical stage's uploads take at the stage's share of the traffic.
    pub fn hours(&self) -> Option<f64> {
        self.uploads().map(|u| u as f64 / self.treatment_per_hour)
    }

    /// Hours by which [`POWER`] of stages have passed.
    pub fn likely_hours(&self) -> Option<f64> {
        self.likely_uploads().map(|u| u as f64 / self.treatment_per_hour)
    }

    /// Whether the soak is long enough for [`POWER`] of stages to reach their verdict.
    pub fn fits(&self) -> bool {
        self.likely_hours().is_some_and(|h| h * 3_600.0 <= self.soak.secs() as f64)
    }

    /// "≈ 10,470 treatment uploads (success rate), ≈ 22 days at 20 an hour; 9 in 10 stages
    /// within ≈ 13,900 (≈ 29 days): longer than its 48h soak", or why the gates never pass.
    pub fn sentence(&self) -> String {
        let Some(limiting) = self.limiting() else { return "no gates to plan".into() };
        let per_hour = thousands(self.treatment_per_hour.round() as u64);
        match (limiting.uploads, self.likely_uploads(), limiting.rate) {
            (Some(uploads), Some(likely), _) => {
                let hours = uploads as f64 / self.treatment_per_hour;
                let likely_hours = likely as f64 / self.treatment_per_hour;
                let fit =
                    if self.fits() { format!("within its {} soak", self.soak) } else { format!("longer than its {} soak", self.soak) };
                format!(
                    "≈ {} treatment uploads ({}), ≈ {} at {per_hour} an hour; 9 in 10 stages within ≈ {} (≈ {}): {fit}",
                    thousands(uploads),
                    limiting.criterion.label().to_lowercase(),
                    gates::hours_words(hours),
                    thousands(likely),
                    gates::hours_words(likely_hours)
                )
            }
            (Some(uploads), None, _) => format!(
                "≈ {} treatment uploads ({}) in a typical stage, but 9 in 10 stages would need over ten million",
                thousands(uploads),
                limiting.criterion.label().to_lowercase()
            ),
            (None, _, Some((rate, limit))) => format!(
                "{} never passes: today's {rate}% is not below the stage's limit of {limit}% (or needs over ten million uploads)",
                limiting.criterion.label().to_lowercase()
            ),
            (None, _, None) => format!("{} never passes", limiting.criterion.label().to_lowercase()),
        }
    }
}

/// The share of stages the planner's "likely" figure covers.
pub const POWER: f64 = 0.9;

/// ln of the binomial chance of at most `k` bad in `n` at rate `p`: the terms summed from `k`
/// down, each from the one above it, until they no longer count.
fn ln_binomial_cdf(k: u64, n: u64, p: f64) -> f64 {
    if k >= n {
        return 0.0;
    }
    let (ln_p, ln_q) = (p.ln(), (-p).ln_1p());
    let ln_term = |j: u64| {
        ln_gamma(n as f64 + 1.0) - ln_gamma(j as f64 + 1.0) - ln_gamma((n - j) as f64 + 1.0) + j as f64 * ln_p + (n - j) as f64 * ln_q
    };
    let top = ln_term(k);
    // Σ_j≤k term(j) / term(k), the ratio of neighbours being j/(n−j+1) · q/p.
    let (mut sum, mut ratio) = (1.0f64, 1.0f64);
    let mut j = k;
    while j > 0 {
        ratio *= j as f64 / (n - j + 1) as f64 * (1.0 - p) / p;
        sum += ratio;
        if ratio < 1e-17 * sum {
            break;
        }
        j -= 1;
    }
    (top + sum.ln()).min(0.0)
}

/// The most bad uploads among `n` with which `sequence` still proves the rate below `p0`
/// (fewer always do: the evidence grows as the count falls); `None` if not even none does.
fn most_bad_passing(sequence: &RateSequence, n: u64, p0: f64) -> Option<u64> {
    if !sequence.proves_below(0, n, p0) {
        return None;
    }
    let (mut passes, mut fails) = (0u64, (p0 * n as f64).ceil() as u64 + 1);
    while fails - passes > 1 {
        let mid = (passes + fails) / 2;
        if sequence.proves_below(mid, n, p0) { passes = mid } else { fails = mid }
    }
    Some(passes)
}

/// The chance that a gate judged by `sequence` shows "pass" at `n` uploads when the true bad
/// rate is `rate`.
pub fn pass_chance(sequence: &RateSequence, n: u64, rate: f64, p0: f64) -> f64 {
    most_bad_passing(sequence, n, p0).map_or(0.0, |k| ln_binomial_cdf(k, n, rate).exp())
}

/// The fewest uploads at which a gate passes with chance `power` when the true bad rate is
/// `rate` (below `p0`): found from the typical figure by doubling, then halving. (Whole counts
/// make the chance ragged by a few percent from one `n` to the next.)
pub fn uploads_for_power(sequence: &RateSequence, rate: f64, p0: f64, power: f64) -> Option<u64> {
    let start = gates::uploads_to_decide(sequence, rate, p0)?;
    let (mut lo, mut hi) = (start / 2, start);
    while pass_chance(sequence, hi, rate, p0) < power {
        lo = hi;
        hi *= 2;
        if hi > 10_000_000 {
            return None;
        }
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if pass_chance(sequence, mid, rate, p0) >= power { hi = mid } else { lo = mid }
    }
    Some(hi)
}

/// Treatment uploads for a bad rate of `rate_pct`% to be proven below the allowed `limit_pct`%.
fn rate_need(criterion: Criterion, rate_pct: f64, limit_pct: f64) -> Need {
    let (rate, p0) = (rate_pct / 100.0, limit_pct / 100.0);
    let sequence = gates::sequence(p0);
    let (uploads, likely) = if rate < p0 {
        (gates::uploads_to_decide(&sequence, rate, p0), uploads_for_power(&sequence, rate, p0, POWER))
    } else {
        (None, None)
    };
    Need { criterion, uploads, likely, rate: Some((rate_pct, limit_pct)) }
}

/// 100 − 99.5 as 0.5, not 0.5000000000000057.
fn round_pct(v: f64) -> f64 {
    (v * 1e9).round() / 1e9
}

/// Every stage that serves the flag to some units and has gates, planned at `traffic`.
pub fn plan(plan: &Plan, traffic: &Traffic) -> Vec<StagePower> {
    let failure = traffic.failure_rate.get();
    let error = traffic.error_rate.map_or(failure, |e| e.get());
    plan.stages
        .iter()
        .enumerate()
        .filter(|(_, s)| s.flag.enabled && s.flag.percentage.get() > 0)
        .filter_map(|(i, s)| {
            let criteria = s.criteria.as_ref()?;
            let needs = vec![
                Need {
                    criterion: Criterion::MinEvents,
                    uploads: Some(u64::from(criteria.min_events)),
                    likely: Some(u64::from(criteria.min_events)),
                    rate: None,
                },
                rate_need(Criterion::SuccessRate, failure, round_pct(100.0 - criteria.success_rate_min.get())),
                rate_need(Criterion::ErrorRate, error, criteria.error_rate_max.get()),
            ];
            Some(StagePower {
                stage: i,
                name: s.name.clone(),
                treatment_per_hour: traffic.uploads_per_hour * f64::from(s.flag.percentage.get()) / 100.0,
                needs,
                soak: s.soak,
            })
        })
        .collect()
}

/// One line per stage whose soak cannot reach a verdict at the plan's stated traffic.
pub fn warnings(plan_: &Plan) -> Vec<String> {
    let Some(traffic) = &plan_.traffic else { return Vec::new() };
    plan(plan_, traffic).iter().filter(|s| !s.fits()).map(|s| format!("stage {} “{}”: {}", s.stage, s.name, s.sentence())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan::DEFAULT_PLAN_TOML;
    use crate::domain::sequential::Side;
    use crate::domain::units::Threshold;

    fn traffic(per_hour: f64, failure: f64) -> Traffic {
        Traffic { uploads_per_hour: per_hour, failure_rate: Threshold::new(failure).unwrap(), error_rate: None }
    }

    #[test]
    fn each_stage_needs_what_its_sequences_need_at_its_share_of_the_traffic() {
        let p = Plan::from_toml(DEFAULT_PLAN_TOML).unwrap();
        let stages = plan(&p, &traffic(10_000.0, 0.2));
        assert_eq!(stages.iter().map(|s| s.stage).collect::<Vec<_>>(), [1, 2, 3, 4], "stage 0 serves nobody");
        let one = &stages[0];
        assert_eq!(one.treatment_per_hour, 100.0);
        // Checked by a scan of the gate's own sequence: 0.2% of n failures (rounded up) is
        // proven below stage 1's 0.5% at the planned n and not one upload before. (Whole
        // failures make the boundary ragged — one more failure can undo a verdict — so the
        // planned n is a crossing within a few percent of the first one.)
        let sequence = gates::sequence(0.005);
        let below = |n: u64| sequence.side((0.002 * n as f64).ceil() as u64, n, 0.005) == Side::Below;
        let first = (1..100_000u64).find(|&n| below(n)).unwrap();
        let n = one.uploads().unwrap();
        assert!(below(n) && !below(n - 1), "{n}");
        assert!(n >= first && (n as f64) < 1.1 * first as f64, "{n} against the first crossing {first}");
        assert_eq!(one.limiting().unwrap().criterion, Criterion::SuccessRate, "success and errors tie: the first listed");
        assert_eq!(one.hours(), Some(n as f64 / 100.0));
        let likely = one.likely_uploads().unwrap();
        assert_eq!(likely, uploads_for_power(&sequence, 0.002, 0.005, POWER).unwrap());
        assert_eq!(one.fits(), likely as f64 / 100.0 <= 48.0);
        // Half the traffic, twice the time.
        let half = plan(&p, &traffic(5_000.0, 0.2));
        assert_eq!(half[0].uploads(), one.uploads());
        assert_eq!(half[0].hours().unwrap(), 2.0 * one.hours().unwrap());
    }

    #[test]
    fn the_binomial_chance_is_the_sum_of_its_terms() {
        // Directly: Σ_j≤k C(n, j) p^j (1 − p)^(n − j), with C built by multiplication.
        let direct = |k: u64, n: u64, p: f64| {
            (0..=k)
                .map(|j| {
                    let c: f64 = (0..j).map(|i| (n - i) as f64 / (i + 1) as f64).product();
                    c * p.powi(j as i32) * (1.0 - p).powi((n - j) as i32)
                })
                .sum::<f64>()
        };
        for (k, n, p) in [(0, 10, 0.1), (3, 50, 0.1), (7, 200, 0.02), (20, 300, 0.05), (149, 150, 0.5)] {
            let (ours, theirs) = (ln_binomial_cdf(k, n, p).exp(), direct(k, n, p));
            assert!((ours - theirs).abs() < 1e-12 * theirs.max(1e-300).max(1.0), "k {k} n {n} p {p}: {ours} vs {theirs}");
        }
        assert_eq!(ln_binomial_cdf(10, 10, 0.3), 0.0);
    }

    #[test]
    fn nine_in_ten_simulated_stages_pass_by_the_likely_figure() {
        // Stage 1's success gate (0.5% failures allowed) with the treatment at 0.2%.
        let sequence = gates::sequence(0.005);
        let likely = uploads_for_power(&sequence, 0.002, 0.005, POWER).unwrap();
        let typical = gates::uploads_to_decide(&sequence, 0.002, 0.005).unwrap();
        assert!(likely > typical, "{likely} vs {typical}");
        assert!(pass_chance(&sequence, likely, 0.002, 0.005) >= POWER);
        // Simulated stages, each failure drawn upload by upload: at the likely figure about 9 in
        // 10 show "pass"; at four fifths of it clearly fewer.
        let mut rng = crate::domain::calibration::Rng::new(7);
        let mut passing = |n: u64| {
            let runs = 600;
            let passed = (0..runs)
                .filter(|_| {
                    let bad = (0..n).filter(|_| rng.uniform() < 0.002).count() as u64;
                    sequence.proves_below(bad, n, 0.005)
                })
                .count();
            passed as f64 / runs as f64
        };
        let at_likely = passing(likely);
        assert!((0.86..=0.95).contains(&at_likely), "{at_likely} at {likely}");
        let earlier = passing(likely * 4 / 5);
        assert!(earlier < 0.85, "{earlier} at {}", likely * 4 / 5);
    }

    #[test]
    fn a_soak_too_short_or_a_limit_never_met_is_a_warning() {
        let mut p = Plan::from_toml(DEFAULT_PLAN_TOML).unwrap();
        assert!(warnings(&p).is_empty(), "no traffic stated, nothing to warn about");
        p.traffic = Some(traffic(1_000_000.0, 0.1));
        assert_eq!(warnings(&p), Vec::<String>::new(), "a million uploads an hour decide every stage in time");
        p.traffic = Some(traffic(1_000.0, 0.2));
        let lines = warnings(&p);
        assert!(lines[0].starts_with("stage 1 “1% rollout”: ≈ "), "{lines:?}");
        assert!(
            lines[0].contains("treatment uploads (success rate), ≈ ")
                && lines[0].contains("at 10 an hour; 9 in 10 stages within ≈ ")
                && lines[0].ends_with("): longer than its 2d soak"),
            "{lines:?}"
        );
        // At 0.6% failures stage 1's 99.5% success can never be proven.
        p.traffic = Some(traffic(1_000_000.0, 0.6));
        let lines = warnings(&p);
        assert_eq!(
            lines[0],
            "stage 1 “1% rollout”: success rate never passes: today's 0.6% is not below the stage's limit of 0.5% (or needs over ten million uploads)"
        );
        assert_eq!(lines.len(), 1, "{lines:?}");
    }
}
