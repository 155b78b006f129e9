//! Guardrails: what the guard loop decides from the treatment arm's trailing window. Decisions
//! are values — roll back (with the evidence), raise a review, or hold — and the server applies
//! them. "Sustained" conditions are timers the caller keeps (in Postgres, so they survive
//! restarts) and passes back in.

use super::gates::Reference;
use super::plan::Guardrails;
use super::stats::Stats;
use super::units::{Span, Timestamp};
use serde::{Deserialize, Serialize};

/// A condition that needs review only once it has held for a while.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Success rate inside the review band (seeds: 95–97%).
    SuccessBand,
    /// p95 latency above the review limit (seeds: 120% of baseline).
    LatencyHigh,
}

impl Condition {
    const ALL: [Condition; 2] = [Condition::SuccessBand, Condition::LatencyHigh];

    pub fn as_str(self) -> &'static str {
        match self {
            Condition::SuccessBand => "success_band",
            Condition::LatencyHigh => "latency_high",
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
        }
    }
}

/// Since when the episode behind a review `rule` has lasted: the start of the condition it
/// waited on, or for the complaint trend the hour it judges. An alert acknowledged within the
/// episode covers it; the same alert is raised again only once the episode ends and another
/// begins (otherwise an acknowledged alert would come back on the next tick).
pub fn episode_start(rule: &str, sustained: &[Sustained], now: Timestamp) -> Timestamp {
    Condition::ALL
        .into_iter()
        .find(|c| c.review_rule() == rule)
        .and_then(|c| sustained.iter().find(|s| s.condition == c))
        .map_or(Timestamp(now.millis() - COMPLAINT_PERIOD.millis()), |s| s.since)
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
    /// Why nothing was decided, when the window is too thin to judge.
    pub note: Option<String>,
}

/// Judges the trailing window of treatment events.
pub fn assess(rails: &Guardrails, treatment: &Stats, reference: &Reference, sustained: &[Sustained], now: Timestamp) -> Assessment {
    let n = treatment.count();
    let window = rails.window;
    let breach = |rule: &str, observed: f64, threshold: f64, message: String| Breach {
        rule: rule.into(),
        observed,
        threshold,
        sample: n,
        window,
        message,
    };
    let mut out = Assessment::default();

    // A critical error rolls back however few events there are.
    if rails.auto_rollback.on_critical_error && treatment.critical > 0 {
        let m = format!("{} critical error(s) among {n} treatment uploads in the last {window}", treatment.critical);
        out.decisions.push(Decision::RollBack(breach("critical_error", treatment.critical as f64, 0.0, m)));
    }
    let min = u64::from(rails.min_sample);
    if n < min {
        out.note = Some(format!("{n} of {min} treatment uploads in the last {window}: too few to judge rates"));
        return out;
    }
    let auto = &rails.auto_rollback;
    let success = treatment.success_rate().unwrap_or(100.0);
    let error = treatment.error_rate().unwrap_or(0.0);
    if success < auto.success_rate_below.get() {
        let m = format!("success rate {success:.2}% < {}% over {n} uploads in the last {window}", auto.success_rate_below.get());
        out.decisions.push(Decision::RollBack(breach("success_rate_below", success, auto.success_rate_below.get(), m)));
    }
    if error > auto.error_rate_above.get() {
        let m = format!("error rate {error:.2}% > {}% over {n} uploads in the last {window}", auto.error_rate_above.get());
        out.decisions.push(Decision::RollBack(breach("error_rate_above", error, auto.error_rate_above.get(), m)));
    }
    if let (Some(base), Some(mean)) = (reference.memory_mean_mb, treatment.memory_mean_mb())
        && base > 0.0
    {
        let ratio = mean / base * 100.0;
        if ratio > auto.memory_above_baseline.get() {
            let m = format!(
                "memory {mean:.0} MB is {ratio:.0}% of the {} ({base:.0} MB) > {}%",
                reference.source,
                auto.memory_above_baseline.get()
            );
            out.decisions.push(Decision::RollBack(breach("memory_above_baseline", ratio, auto.memory_above_baseline.get(), m)));
        }
    }

    let review = &rails.manual_review;
    let sustained_for = |c: Condition| sustained.iter().find(|s| s.condition == c).map(|s| now.since(s.since));
    let [low, high] = review.success_band;
    if success >= low.get() && success < high.get() {
        out.holding.push(Condition::SuccessBand);
        if sustained_for(Condition::SuccessBand).is_some_and(|d| d >= review.success_band_for) {
            let m = format!(
                "success rate {success:.2}% has stayed in the {}–{}% review band for {}",
                low.get(),
                high.get(),
                review.success_band_for
            );
            out.decisions.push(Decision::Review(breach(Condition::SuccessBand.review_rule(), success, high.get(), m)));
        }
    }
    if let (Some(base), Some(p95)) = (reference.latency_p95_ms, treatment.latency.quantile(0.95))
        && base > 0.0
    {
        let ratio = p95 / base * 100.0;
        if ratio > review.latency_above_baseline.get() {
            out.holding.push(Condition::LatencyHigh);
            if sustained_for(Condition::LatencyHigh).is_some_and(|d| d >= review.latency_for) {
                let m = format!(
                    "p95 latency {p95:.0} ms has stayed above {}% of the {} ({base:.0} ms) for {}",
                    review.latency_above_baseline.get(),
                    reference.source,
                    review.latency_for
                );
                out.decisions.push(Decision::Review(breach(
                    Condition::LatencyHigh.review_rule(),
                    ratio,
                    review.latency_above_baseline.get(),
                    m,
                )));
            }
        }
    }
    out
}

/// How long each of the two periods compared for the complaint trend lasts.
pub const COMPLAINT_PERIOD: Span = Span::from_secs(3600);
/// Fewer complaints than this in the latest period never count as a rising trend.
pub const COMPLAINT_MIN: u64 = 3;
/// The latest period's rate must exceed the one before it by this factor.
pub const COMPLAINT_RISE: f64 = 1.5;

/// User complaints in the latest [`COMPLAINT_PERIOD`] and the one before it, with the uploads
/// (both arms) in each, so a busier hour is not mistaken for a worse one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplaintTrend {
    pub recent: u64,
    pub recent_uploads: u64,
    pub earlier: u64,
    pub earlier_uploads: u64,
}

impl ComplaintTrend {
    /// Complaints per 1,000 uploads (per period when there were no uploads).
    fn rate(complaints: u64, uploads: u64) -> f64 {
        if uploads == 0 { complaints as f64 } else { complaints as f64 * 1000.0 / uploads as f64 }
    }
}

/// "Complaint rate rising" (a manual-review condition): at least [`COMPLAINT_MIN`] complaints in
/// the latest hour, at a rate per 1,000 uploads more than [`COMPLAINT_RISE`] times the hour
/// before's. Returns the review breach, or `None`.
pub fn complaints_rising(rails: &Guardrails, trend: &ComplaintTrend) -> Option<Breach> {
    if !rails.manual_review.on_complaint_rate_rising || trend.recent < COMPLAINT_MIN {
        return None;
    }
    // With no uploads in one of the periods, rates per upload mean nothing: compare counts.
    let per_upload = trend.recent_uploads > 0 && trend.earlier_uploads > 0;
    let (recent, earlier) = if per_upload {
        (ComplaintTrend::rate(trend.recent, trend.recent_uploads), ComplaintTrend::rate(trend.earlier, trend.earlier_uploads))
    } else {
        (trend.recent as f64, trend.earlier as f64)
    };
    if recent <= earlier * COMPLAINT_RISE {
        return None;
    }
    let unit = if per_upload { " per 1,000 uploads" } else { "" };
    let message = format!(
        "complaints rising: {} in the last hour ({recent:.2}{unit}) against {} in the hour before ({earlier:.2}{unit})",
        trend.recent, trend.earlier
    );
    Some(Breach {
        rule: "complaint_rate_rising".into(),
        observed: recent,
        threshold: earlier * COMPLAINT_RISE,
        sample: trend.recent_uploads,
        window: COMPLAINT_PERIOD,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Outcome;
    use crate::domain::plan::{DEFAULT_PLAN_TOML, Plan};
    use crate::domain::stats::treatment_upload;

    fn rails() -> Guardrails {
        Plan::from_toml(DEFAULT_PLAN_TOML).unwrap().guardrails
    }

    #[test]
    fn complaints_rising_faster_than_traffic_ask_for_review() {
        let trend = |recent, recent_uploads, earlier, earlier_uploads| ComplaintTrend { recent, recent_uploads, earlier, earlier_uploads };
        // Two complaints are noise however they compare.
        assert_eq!(complaints_rising(&rails(), &trend(2, 1_000, 0, 1_000)), None);
        // Three where there were none: rising.
        let breach = complaints_rising(&rails(), &trend(3, 1_000, 0, 1_000)).unwrap();
        assert_eq!(breach.rule, "complaint_rate_rising");
        assert!(breach.message.contains("3 in the last hour (3.00 per 1,000 uploads) against 0"), "{}", breach.message);
        // Twice the complaints on twice the traffic is the same rate, not a rise.
        assert_eq!(complaints_rising(&rails(), &trend(8, 2_000, 4, 1_000)), None);
        // Exactly 1.5× is not yet more than 1.5×; just above is.
        assert_eq!(complaints_rising(&rails(), &trend(6, 1_000, 4, 1_000)), None);
        assert!(complaints_rising(&rails(), &trend(7, 1_000, 4, 1_000)).is_some());
        // Without uploads, counts are compared.
        assert!(complaints_rising(&rails(), &trend(5, 0, 1, 0)).unwrap().message.contains("(5.00) against 1 in the hour before (1.00)"));
        // A plan may switch the rule off.
        let mut off = rails();
        off.manual_review.on_complaint_rate_rising = false;
        assert_eq!(complaints_rising(&off, &trend(50, 1_000, 0, 1_000)), None);
    }

    fn window(success: u64, error: u64, critical: u64, latency: f64, memory: f64) -> Stats {
        let mut s = Stats::default();
        let mut add = |outcome: Outcome, critical: bool| s.add(&treatment_upload(outcome, latency, memory, critical));
        (0..success).for_each(|_| add(Outcome::Success, false));
        (0..error).for_each(|_| add(Outcome::Error, false));
        (0..critical).for_each(|_| add(Outcome::Error, true));
        s
    }

    fn reference() -> Reference {
        Reference { latency_p95_ms: Some(100.0), memory_mean_mb: Some(100.0), source: "frozen baseline".into() }
    }

    const NOW: Timestamp = Timestamp(10_000_000_000);

    fn rules(a: &Assessment) -> Vec<(&'static str, String)> {
        a.decisions
            .iter()
            .map(|d| match d {
                Decision::RollBack(b) => ("rollback", b.rule.clone()),
                Decision::Review(b) => ("review", b.rule.clone()),
            })
            .collect()
    }

    #[test]
    fn one_failure_in_two_events_does_not_roll_back() {
        let a = assess(&rails(), &window(1, 1, 0, 100.0, 50.0), &reference(), &[], NOW);
        assert!(a.decisions.is_empty());
        assert!(a.note.unwrap().contains("2 of 50"));
    }

    #[test]
    fn any_critical_error_rolls_back_even_in_a_thin_window() {
        let a = assess(&rails(), &window(3, 0, 1, 100.0, 50.0), &reference(), &[], NOW);
        assert_eq!(rules(&a), vec![("rollback", "critical_error".to_string())]);
    }

    #[test]
    fn the_seeds_auto_rollback_thresholds() {
        let check = |success: u64, error: u64, memory: f64, expected: &[&str]| {
            let a = assess(&rails(), &window(success, error, 0, 100.0, memory), &reference(), &[], NOW);
            let got: Vec<String> = a
                .decisions
                .iter()
                .filter_map(|d| match d {
                    Decision::RollBack(b) => Some(b.rule.clone()),
                    _ => None,
                })
                .collect();
            assert_eq!(got, expected, "{success}/{error} mem {memory}");
        };
        check(95, 5, 50.0, &[]); // exactly 95% success and 5% error: not past either line
        check(94, 6, 50.0, &["success_rate_below", "error_rate_above"]);
        check(100, 0, 120.0, &[]); // exactly 120% of baseline
        check(100, 0, 121.0, &["memory_above_baseline"]);
    }

    #[test]
    fn an_episode_starts_with_its_condition_or_the_complaint_hour() {
        let since = Timestamp(NOW.millis() - 45 * 60_000);
        let held = [Sustained { condition: Condition::LatencyHigh, since }];
        assert_eq!(episode_start("latency_above_baseline", &held, NOW), since);
        assert_eq!(episode_start("success_band", &held, NOW), Timestamp(NOW.millis() - 3_600_000), "no timer: the last hour");
        assert_eq!(episode_start("complaint_rate_rising", &held, NOW), Timestamp(NOW.millis() - 3_600_000));
    }

    #[test]
    fn the_review_band_needs_thirty_sustained_minutes() {
        let w = window(96, 4, 0, 100.0, 50.0);
        let fresh = assess(&rails(), &w, &reference(), &[], NOW);
        assert_eq!(fresh.holding, vec![Condition::SuccessBand]);
        assert!(fresh.decisions.is_empty());
        let since = |minutes: i64| [Sustained { condition: Condition::SuccessBand, since: Timestamp(NOW.millis() - minutes * 60_000) }];
        assert!(assess(&rails(), &w, &reference(), &since(29), NOW).decisions.is_empty());
        assert_eq!(rules(&assess(&rails(), &w, &reference(), &since(30), NOW)), vec![("review", "success_band".to_string())]);
    }

    #[test]
    fn sustained_high_latency_asks_for_review() {
        let w = window(100, 0, 0, 130.0, 50.0);
        let a = assess(
            &rails(),
            &w,
            &reference(),
            &[Sustained { condition: Condition::LatencyHigh, since: Timestamp(NOW.millis() - 31 * 60_000) }],
            NOW,
        );
        assert_eq!(a.holding, vec![Condition::LatencyHigh]);
        assert_eq!(rules(&a), vec![("review", "latency_above_baseline".to_string())]);
        assert!(assess(&rails(), &window(100, 0, 0, 119.0, 50.0), &reference(), &[], NOW).holding.is_empty());
    }
}
