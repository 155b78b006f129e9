//! Tests of `gates.rs`: gate evaluation.

use super::*;
use crate::domain::event::Outcome;
use crate::domain::plan::{DEFAULT_PLAN_TOML, Plan};
use crate::domain::receipt::{Method, RULE_VERSION};
use crate::domain::sequential::{RateSequence, Side, rate_difference, srm_p_value};
use crate::domain::stats::treatment_upload;
use crate::domain::units::thousands;

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
    let memory = |n| evaluate_t(&c, &spread(n), &reference(200.0), 120.0).into_iter().find(|g| g.criterion == Criterion::Memory).unwrap();
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
        gate.explanation.starts_with("100 treatment and 9,900 control uploads: 1.0% treatment where the flag serves 1%; no mismatch (p = "),
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
