//! The power planner: for every stage whose flag is on, how many treatment uploads its gates
//! need before they can pass if the change is as good as what it replaces, and how long that
//! takes at the service's traffic — so a plan whose soak cannot reach a verdict is seen before
//! the rollout starts, not at its end.
//!
//! The rate gates are planned exactly: the uploads at which their confidence sequence
//! ([`gates::sequence`]) first proves today's failure (or error) rate below the stage's limit,
//! found by [`gates::uploads_to_decide`]. The stage's minimum uploads counts too. Latency and
//! memory depend on how the treatment's distribution compares with the baseline's, which a plan
//! does not state; they are not planned.

use super::gates::{self, Criterion};
use super::plan::{Plan, Traffic};
use super::units::{Span, thousands};
use serde::{Deserialize, Serialize};

/// What one gate needs: `None` when it never passes at the stated rate (the rate is at or past
/// the stage's limit, or needs more than ten million uploads).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Need {
    pub criterion: Criterion,
    pub uploads: Option<u64>,
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

    /// Treatment uploads before every planned gate can pass; `None` if one never does.
    pub fn uploads(&self) -> Option<u64> {
        self.limiting().and_then(|n| n.uploads)
    }

    /// Hours those uploads take at the stage's share of the traffic.
    pub fn hours(&self) -> Option<f64> {
        self.uploads().map(|u| u as f64 / self.treatment_per_hour)
    }

    /// Whether the soak is long enough for the gates to reach their verdict.
    pub fn fits(&self) -> bool {
        self.hours().is_some_and(|h| h * 3_600.0 <= self.soak.secs() as f64)
    }

    /// "≈ 10,470 treatment uploads (success rate), ≈ 22 days at 20 an hour: longer than its 48h
    /// soak", or why the gates never pass.
    pub fn sentence(&self) -> String {
        let Some(limiting) = self.limiting() else { return "no gates to plan".into() };
        let per_hour = thousands(self.treatment_per_hour.round() as u64);
        match (limiting.uploads, limiting.rate) {
            (Some(uploads), _) => {
                let hours = uploads as f64 / self.treatment_per_hour;
                let fit =
                    if self.fits() { format!("within its {} soak", self.soak) } else { format!("longer than its {} soak", self.soak) };
                format!(
                    "≈ {} treatment uploads ({}), ≈ {} at {per_hour} an hour: {fit}",
                    thousands(uploads),
                    limiting.criterion.label().to_lowercase(),
                    gates::hours_words(hours)
                )
            }
            (None, Some((rate, limit))) => format!(
                "{} never passes: today's {rate}% is not below the stage's limit of {limit}% (or needs over ten million uploads)",
                limiting.criterion.label().to_lowercase()
            ),
            (None, None) => format!("{} never passes", limiting.criterion.label().to_lowercase()),
        }
    }
}

/// Treatment uploads for a bad rate of `rate_pct`% to be proven below the allowed `limit_pct`%.
fn rate_need(criterion: Criterion, rate_pct: f64, limit_pct: f64) -> Need {
    let (rate, p0) = (rate_pct / 100.0, limit_pct / 100.0);
    let uploads = if rate < p0 { gates::uploads_to_decide(&gates::sequence(p0), rate, p0) } else { None };
    Need { criterion, uploads, rate: Some((rate_pct, limit_pct)) }
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
                Need { criterion: Criterion::MinEvents, uploads: Some(u64::from(criteria.min_events)), rate: None },
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
        assert_eq!(one.fits(), n as f64 / 100.0 <= 48.0);
        // Half the traffic, twice the time.
        let half = plan(&p, &traffic(5_000.0, 0.2));
        assert_eq!(half[0].uploads(), one.uploads());
        assert_eq!(half[0].hours().unwrap(), 2.0 * one.hours().unwrap());
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
            lines[0].contains("treatment uploads (success rate), ≈ ") && lines[0].ends_with("at 10 an hour: longer than its 2d soak"),
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
