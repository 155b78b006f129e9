//! Tests of `guard.rs`: the guardrails.

use super::*;
use crate::domain::event::Outcome;
use crate::domain::gates::SampleRatio;
use crate::domain::plan::{DEFAULT_PLAN_TOML, Plan};
use crate::domain::stats::{StageRows, treatment_upload};
use crate::domain::units::Span;

impl Decision {
    fn breach(&self) -> &Breach {
        match self {
            Decision::RollBack(b) | Decision::Review(b) => b,
        }
    }
}

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

#[test]
fn a_sample_ratio_mismatch_asks_for_review_unless_the_plan_says_otherwise() {
    use crate::domain::gates::sample_ratio;
    use crate::domain::plan::StageFlag;
    use crate::domain::units::Percentage;
    let fair = SampleRatio::check(98, 9_902, 1.0);
    assert_eq!(sample_ratio_mismatch(fair.as_ref(), &[], NOW), (None, None));
    assert_eq!(sample_ratio_mismatch(None, &[], NOW), (None, None));
    let skewed = SampleRatio::check(300, 9_700, 1.0);
    // A mismatch starts its timer; it asks for review once it has held ten minutes.
    assert_eq!(sample_ratio_mismatch(skewed.as_ref(), &[], NOW), (Some(Condition::SampleRatio), None));
    let since = |minutes: i64| [Sustained { condition: Condition::SampleRatio, since: Timestamp(NOW.millis() - minutes * 60_000) }];
    assert_eq!(sample_ratio_mismatch(skewed.as_ref(), &since(9), NOW).1, None);
    let breach = sample_ratio_mismatch(skewed.as_ref(), &since(10), NOW).1.unwrap();
    assert_eq!((breach.rule.as_str(), breach.sample, breach.threshold), ("sample_ratio_mismatch", 10_000, 1.0));
    assert_eq!(
        breach.message,
        "sample ratio mismatch for 10m: 300 treatment and 9,700 control uploads: 3.0% treatment where the flag serves 1% (p < 1e-12); the arms cannot be compared until the cause is found"
    );
    assert_eq!(episode_start(&breach, &since(10), NOW), since(10)[0].since, "acknowledged once, it covers the episode");
    // Checked only while the flag splits traffic and the plan asks for it.
    let served = |percentage| StageFlag { enabled: true, percentage: Percentage::new(percentage).unwrap() };
    let entered = Timestamp((NOW.millis() - 30 * 60_000).div_euclid(60_000) * 60_000);
    // Minutes of the stage as (minute, treatment uploads, control uploads).
    let rows = |minutes: &[(i64, u64, u64)]| {
        let arm = |m: i64, n: u64| (Timestamp(entered.millis() + m * 60_000), Stats { success: n, ..Stats::default() });
        StageRows {
            treatment: minutes.iter().map(|&(m, t, _)| arm(m, t)).collect(),
            control: minutes.iter().map(|&(m, _, c)| arm(m, c)).collect(),
        }
    };
    let skewed_rows = rows(&[(10, 300, 9_700)]);
    assert_eq!(sample_ratio(&rails(), served(1), &skewed_rows, entered).map(|s| (s.treatment, s.control)), Some((300, 9_700)));
    assert!(sample_ratio(&rails(), served(1), &skewed_rows, entered).unwrap().mismatch());
    assert_eq!(sample_ratio(&rails(), served(100), &skewed_rows, entered), None);
    assert_eq!(sample_ratio(&rails(), StageFlag { enabled: false, ..served(1) }, &skewed_rows, entered), None);
    let mut off = rails();
    off.manual_review.on_sample_ratio_mismatch = false;
    assert_eq!(sample_ratio(&off, served(1), &skewed_rows, entered), None);

    // An advance from 10% to 50%: clients still caching the flag send at the old split for
    // the stage's first minutes. Those are left out, so the lag is no mismatch...
    let lag: Vec<_> = (0..3).map(|m| (m, 100, 900)).chain((3..30).map(|m| (m, 500, 500))).collect();
    let settled = sample_ratio(&rails(), served(50), &rows(&lag), entered).unwrap();
    assert_eq!((settled.treatment, settled.control, settled.mismatch()), (12_500, 12_500, false));
    assert!(settled.gate(NOW).explanation.contains("(counted from 5m after the stage began)"), "{}", settled.gate(NOW).explanation);
    // ...where counting them would have kept a mismatch in the stage's counts all along.
    let mut eager = rails();
    eager.manual_review.sample_ratio_settle = Span::ZERO;
    assert!(sample_ratio(&eager, served(50), &rows(&lag), entered).unwrap().mismatch());
    // A split that stays wrong after the caches refreshed is still found.
    let broken: Vec<_> = (0..30).map(|m| (m, 400, 600)).collect();
    assert!(sample_ratio(&rails(), served(50), &rows(&broken), entered).unwrap().mismatch());
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
const SOAK: Span = Span::from_secs(48 * 3600);

/// All of `stats` in the minute before now.
fn judge(stats: Stats, sustained: &[Sustained]) -> Assessment {
    let minutes = [(Timestamp(NOW.millis() - 60_000), stats)];
    assess(&rails(), StageEvidence { minutes: &minutes, soak: SOAK }, &reference(), sustained, NOW)
}

#[test]
fn unvouched_figures_decide_only_a_critical_error_keep_the_timers_and_alert_once_they_last() {
    let breach = |rule: &str| Breach {
        rule: rule.into(),
        observed: 1.0,
        threshold: 0.0,
        sample: 10,
        window: Span::ZERO,
        message: String::new(),
        receipt: None,
    };
    let decided = Assessment {
        decisions: vec![
            Decision::RollBack(breach("error_rate_above")),
            Decision::RollBack(breach("critical_error")),
            Decision::Review(breach("success_band")),
        ],
        holding: vec![Condition::SuccessBand],
        note: None,
    };
    let now = Timestamp(10_000_000);
    let after = Span::from_secs(900);
    let latency = Sustained { condition: Condition::LatencyHigh, since: Timestamp(1_000) };
    let a = unvouched(decided, "down", after, &[latency], now);
    assert_eq!(rules(&a), vec![("rollback", "critical_error".to_string())]);
    // The latency timer runs on (neither started nor ended by figures no one vouches for).
    assert_eq!(a.holding, vec![Condition::LatencyHigh, Condition::SourceUnusable]);
    assert_eq!(a.note.as_deref(), Some("not judged: down"));
    // Unusable for less than `after`: no alert; for `after`: one review.
    let since = |ago: i64| [Sustained { condition: Condition::SourceUnusable, since: Timestamp(now.millis() - ago) }];
    assert!(rules(&unvouched(Assessment::default(), "down", after, &since(899_000), now)).is_empty());
    let a = unvouched(Assessment::default(), "down", after, &since(900_000), now);
    assert_eq!(rules(&a), vec![("review", "metrics_source_unavailable".to_string())]);
    assert_eq!(episode_start(a.decisions[0].breach(), &since(900_000), now), Timestamp(now.millis() - 900_000));
}

fn rules(a: &Assessment) -> Vec<(&'static str, String)> {
    a.decisions
        .iter()
        .map(|d| match d {
            Decision::RollBack(b) => ("rollback", b.rule.clone()),
            Decision::Review(b) => ("review", b.rule.clone()),
        })
        .collect()
}

fn rollbacks(a: &Assessment) -> Vec<String> {
    rules(a).into_iter().filter(|(kind, _)| *kind == "rollback").map(|(_, rule)| rule).collect()
}

#[test]
fn one_failure_in_two_events_does_not_roll_back() {
    assert!(judge(window(1, 1, 0, 100.0, 50.0), &[]).decisions.is_empty());
    let empty = assess(&rails(), StageEvidence { minutes: &[], soak: SOAK }, &reference(), &[], NOW);
    assert_eq!(empty.note.as_deref(), Some("no treatment uploads in this stage yet"));
}

#[test]
fn any_critical_error_rolls_back_even_in_a_thin_window() {
    let a = judge(window(3, 0, 1, 100.0, 50.0), &[]);
    assert_eq!(rules(&a), vec![("rollback", "critical_error".to_string())]);
    assert_eq!(a.decisions[0].breach().receipt.as_ref().unwrap().method, Method::Count);
}

#[test]
fn a_critical_error_rolls_back_before_any_upload_is_counted_and_through_an_unvouched_source() {
    // A metric source may count a critical error while its uploads counter says nothing yet
    // (a series missing, stale): the plan's "any critical error" still holds.
    let only_critical = Stats { critical: 1, ..Stats::default() };
    let a = judge(only_critical, &[]);
    assert_eq!(rules(&a), vec![("rollback", "critical_error".to_string())]);
    assert!(a.decisions[0].breach().message.contains("before any treatment upload was counted"));
    let a = unvouched(a, "`uploads_total{…}` matched no series", Span::from_secs(900), &[], Timestamp(0));
    assert_eq!(rules(&a), vec![("rollback", "critical_error".to_string())]);
}

#[test]
fn a_rate_rolls_back_only_once_it_is_proven_past_the_line() {
    let check = |success: u64, error: u64, expected: &[&str]| {
        assert_eq!(rollbacks(&judge(window(success, error, 0, 100.0, 50.0), &[])), expected, "{success}/{error}");
    };
    // 6% of 100 is what the old rule rolled back on: not evidence of more than 5%.
    check(94, 6, &[]);
    // Exactly at the line with a great deal of evidence: still no.
    check(95_000, 5_000, &[]);
    // 30% of 60: proven, by both rates (errors are failures too).
    check(42, 18, &["success_rate_below", "error_rate_above"]);
    // 7% of 20,000: proven.
    check(18_600, 1_400, &["success_rate_below", "error_rate_above"]);
    // A timeout is a failure but not an error.
    let mut timeouts = window(42, 0, 0, 100.0, 50.0);
    (0..18).for_each(|_| timeouts.add(&treatment_upload(Outcome::Timeout, 100.0, 50.0, false)));
    assert_eq!(rollbacks(&judge(timeouts, &[])), vec!["success_rate_below"]);
}

#[test]
fn a_rollback_carries_a_receipt_that_recomputes() {
    let a = judge(window(42, 18, 0, 100.0, 50.0), &[]);
    let breach = a.decisions[1].breach();
    let r = breach.receipt.clone().unwrap();
    assert_eq!((r.method, r.bad, r.events, r.rule_version, r.alpha), (Method::Sequence, 18, 60, RULE_VERSION, ALPHA_ROLLBACK_SEQUENCE));
    let sequence = RateSequence::tuned(r.threshold_rate, r.alpha, ROLLBACK_N_STAR);
    assert!((sequence.ln_evidence(r.bad, r.events, r.threshold_rate) - r.statistic).abs() < 1e-12);
    assert!(r.statistic >= r.boundary);
    let (lo, hi) = r.interval.unwrap();
    assert!(lo > 0.05 && hi > 0.3, "{lo}–{hi}");
    assert!(breach.message.contains("anytime-valid"), "{}", breach.message);
}

#[test]
fn the_change_detector_rolls_back_a_regression_late_in_a_long_stage() {
    // 47 hours at 20 uploads a minute and 0.5% errors, then four minutes at 30%.
    let minute = |i: i64, bad: u64| {
        let at = Timestamp(NOW.millis() - (47 * 60 + 4 - i) * 60_000);
        (at, window(20 - bad, bad, 0, 100.0, 50.0))
    };
    let mut minutes: Vec<_> = (0..47 * 60).map(|i| minute(i, u64::from(i % 10 == 0))).collect();
    let healthy = assess(&rails(), StageEvidence { minutes: &minutes, soak: SOAK }, &reference(), &[], NOW);
    assert!(healthy.decisions.is_empty(), "{:?}", rules(&healthy));
    minutes.extend((0..4).map(|i| minute(47 * 60 + i, 6)));
    let a = assess(&rails(), StageEvidence { minutes: &minutes, soak: SOAK }, &reference(), &[], NOW);
    assert_eq!(rollbacks(&a), vec!["success_rate_below", "error_rate_above"]);
    let breach = a.decisions[0].breach();
    let r = breach.receipt.as_ref().unwrap();
    // The window is the regression's four minutes, not the stage.
    assert_eq!((r.method, r.bad, r.events), (Method::ChangeDetector, 24, 80), "{breach:?}");
    assert_eq!(r.from, minutes[47 * 60].0);
    assert_eq!(
        breach.message,
        "24 of the 80 treatment uploads in the last 4m failed (30.00%): a success rate below 95% that the change detector (α 0.35%) cannot put down to chance"
    );
    // The whole stage's rate (1.3%) is far below the line: the sequence alone would wait.
    assert!(!RateSequence::tuned(0.05, ALPHA_ROLLBACK_SEQUENCE, ROLLBACK_N_STAR).proves_above(306, 56_480, 0.05));
}

/// `n` successful uploads whose memory alternates between `low` and `high` MB.
fn memory_window(n: u64, low: f64, high: f64) -> Stats {
    let mut s = Stats::default();
    (0..n).for_each(|i| s.add(&treatment_upload(Outcome::Success, 50.0, if i % 2 == 0 { low } else { high }, false)));
    s
}

#[test]
fn memory_rolls_back_when_its_mean_is_proven_above_the_limit() {
    // A mean of 130% of the baseline over 100 spread-out readings (100 and 160 MB) is not yet
    // proof of being above 120%: the old rule's point estimate rolled back here.
    assert_eq!(rollbacks(&judge(memory_window(100, 100.0, 160.0), &[])), Vec::<String>::new());
    // Over 1,000 it is.
    let a = judge(memory_window(1_000, 100.0, 160.0), &[]);
    assert_eq!(rollbacks(&a), vec!["memory_above_baseline"]);
    let breach = a.decisions[0].breach();
    let r = breach.receipt.as_ref().unwrap();
    assert_eq!((r.method, r.events, r.alpha, r.threshold_rate), (Method::MeanSequence, 1_000, ALPHA_ROLLBACK_MEMORY, 120.0));
    // The receipt is recomputed from the counts alone: n, Σx, Σx².
    let again =
        MeanSequence::tuned(r.alpha, ROLLBACK_N_STAR).interval(1_000, 130_000.0, 500.0 * (100.0f64.powi(2) + 160.0f64.powi(2))).unwrap();
    let (lo, hi) = r.interval.unwrap();
    assert!((again.lo - lo).abs() < 1e-9 && (again.hi - hi).abs() < 1e-9 && lo > 120.0 && (r.statistic - 130.0).abs() < 1e-9, "{r:?}");
    assert!(breach.message.starts_with("memory 130 MB per upload over 1000 uploads (anytime-valid, α 0.10%: "), "{}", breach.message);
    // Exactly at the limit, however many readings: never proven above it.
    assert_eq!(rollbacks(&judge(memory_window(5_000, 110.0, 130.0), &[])), Vec::<String>::new());
    // Below the plan's minimum sample, memory waits.
    assert_eq!(rollbacks(&judge(window(10, 0, 0, 100.0, 200.0), &[])), Vec::<String>::new());
}

#[test]
fn an_episode_starts_with_its_condition_or_the_span_it_judged() {
    let since = Timestamp(NOW.millis() - 45 * 60_000);
    let held = [Sustained { condition: Condition::LatencyHigh, since }];
    let breach = |rule: &str, window| Breach {
        rule: rule.into(),
        observed: 0.0,
        threshold: 0.0,
        sample: 0,
        window: Span::from_secs(window),
        message: String::new(),
        receipt: None,
    };
    assert_eq!(episode_start(&breach("latency_above_baseline", 60), &held, NOW), since);
    assert_eq!(episode_start(&breach("success_band", 3_600), &held, NOW), Timestamp(NOW.millis() - 3_600_000), "no timer: its span");
    assert_eq!(episode_start(&breach("complaint_rate_rising", 3_600), &held, NOW), Timestamp(NOW.millis() - 3_600_000));
}

#[test]
fn the_review_band_needs_proof_and_thirty_sustained_minutes() {
    // 4% failures in 100: not proof of being below 97%.
    assert!(judge(window(96, 4, 0, 100.0, 50.0), &[]).holding.is_empty());
    let w = window(9_600, 400, 0, 100.0, 50.0);
    let fresh = judge(w.clone(), &[]);
    assert_eq!(fresh.holding, vec![Condition::SuccessBand]);
    assert!(fresh.decisions.is_empty());
    let since = |minutes: i64| [Sustained { condition: Condition::SuccessBand, since: Timestamp(NOW.millis() - minutes * 60_000) }];
    assert!(judge(w.clone(), &since(29)).decisions.is_empty());
    assert_eq!(rules(&judge(w, &since(30))), vec![("review", "success_band".to_string())]);
}

#[test]
fn sustained_high_latency_asks_for_review() {
    let held = [Sustained { condition: Condition::LatencyHigh, since: Timestamp(NOW.millis() - 31 * 60_000) }];
    let a = judge(window(100, 0, 0, 130.0, 50.0), &held);
    assert_eq!(a.holding, vec![Condition::LatencyHigh]);
    assert_eq!(rules(&a), vec![("review", "latency_above_baseline".to_string())]);
    assert!(judge(window(100, 0, 0, 119.0, 50.0), &[]).holding.is_empty());
    // Latency just above the limit in a handful of uploads proves nothing.
    assert!(judge(window(3, 0, 0, 130.0, 50.0), &[]).holding.is_empty());
}
