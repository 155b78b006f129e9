//! Tests of `calibration.rs`: the calibration simulator.

use super::*;
use crate::domain::event::Outcome;
use crate::domain::gates::{Criterion, Judged, Reference, Verdict, evaluate};
use crate::domain::guard::{Condition, Decision, StageEvidence, Sustained, assess};
use crate::domain::plan::{DEFAULT_PLAN_TOML, Plan};
use crate::domain::stats::{Stats, treatment_upload};
use crate::domain::units::Timestamp;

fn plan() -> Plan {
    Plan::from_toml(DEFAULT_PLAN_TOML).unwrap()
}

#[test]
fn the_poisson_sampler_has_the_right_mean_and_variance() {
    let mut rng = Rng::new(1);
    for mu in [0.3, 5.0, 29.0, 31.0, 170.0, 2_000.0] {
        let draws: Vec<f64> = (0..40_000).map(|_| rng.poisson(mu) as f64).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        // Five standard errors of the mean; variance within 5%.
        assert!((mean - mu).abs() < 5.0 * (mu / 40_000.0).sqrt(), "μ {mu}: mean {mean}");
        assert!((var / mu - 1.0).abs() < 0.05, "μ {mu}: variance {var}");
    }
}

/// The simulator's incremental rules decide exactly as the domain's `assess` and
/// `evaluate` do on the same minutes, at every minute of a stream that drifts from healthy
/// to failing.
#[test]
fn the_simulated_rules_are_the_domains_rules() {
    let plan = plan();
    let (rails, stage) = (&plan.guardrails, &plan.stages[1]);
    let criteria = stage.criteria.as_ref().unwrap();
    let reference = Reference { latency_p95_ms: Some(1e9), memory_mean_mb: None, source: "frozen baseline".into() };
    let mut rng = Rng::new(5);
    let mut sim = NewGuard::new(rails, stage.soak.secs() as u64);
    let mut minutes: Vec<(Timestamp, Stats)> = Vec::new();
    let mut agreed_rollbacks = 0;
    for minute in 0..400i64 {
        let rate = if minute < 300 { 0.004 } else { 0.04 + 0.003 * (minute - 300) as f64 };
        let errors = rng.poisson(3.0 * rate);
        let timeouts = rng.poisson(1.0 * rate);
        let events = errors + timeouts + rng.poisson(4.0 * (1.0 - rate));
        sim.minute();
        sim.add(errors, timeouts, events);
        let mut stats = Stats::default();
        for (outcome, count) in [(Outcome::Error, errors), (Outcome::Timeout, timeouts), (Outcome::Success, events - errors - timeouts)] {
            (0..count).for_each(|_| stats.add(&treatment_upload(outcome, 10.0, 1.0, false)));
        }
        if events > 0 {
            minutes.push((Timestamp(minute * 60_000), stats));
        }
        let now = Timestamp(minute * 60_000 + 59_000);
        let a = assess(rails, StageEvidence { minutes: &minutes, soak: stage.soak }, &reference, &[], now);
        let domain = a.decisions.iter().any(|d| matches!(d, Decision::RollBack(_)));
        assert_eq!(sim.rolls_back(), domain, "minute {minute}");
        agreed_rollbacks += u64::from(domain);
        let mut total = Stats::default();
        minutes.iter().for_each(|(_, s)| total.merge(s));
        let gate = evaluate(criteria, &total, &Stats::default(), &reference, 120.0, Judged { from: Timestamp(0), to: Timestamp(0) });
        let error_gate = gate.iter().find(|g| g.criterion == Criterion::ErrorRate).unwrap();
        assert_eq!(gate_passes(sim.errors, sim.events, criteria.error_rate_max.get()), error_gate.verdict == Verdict::Pass);
    }
    assert!(agreed_rollbacks > 0, "the stream must reach a rollback for the comparison to mean anything");
}

/// The simulator's memory rule decides as the domain's does, minute by minute, on a stream
/// whose mean memory climbs from the reference to twice it in 100 minutes.
#[test]
fn the_simulated_memory_rule_is_the_domains() {
    let plan = plan();
    let (rails, stage) = (&plan.guardrails, &plan.stages[1]);
    let reference = Reference { latency_p95_ms: Some(1e9), memory_mean_mb: Some(80.0), source: "frozen baseline".into() };
    let mut rng = Rng::new(8);
    let mut sim = MemoryGuard::new(rails, 80.0);
    let mut minutes: Vec<(Timestamp, Stats)> = Vec::new();
    let (mut agreed_rollbacks, mut judged) = (0, 0);
    for minute in 0..300i64 {
        let mean = 80.0 * (1.0 + (minute as f64 / 100.0).min(1.0));
        let mut stats = Stats::default();
        for _ in 0..rng.poisson(3.0) {
            let memory = mean * (0.5 * rng.normal() - 0.125).exp();
            sim.add(memory);
            stats.add(&treatment_upload(Outcome::Success, 10.0, memory, false));
        }
        if stats.count() > 0 {
            minutes.push((Timestamp(minute * 60_000), stats));
        }
        let now = Timestamp(minute * 60_000 + 59_000);
        let a = assess(rails, StageEvidence { minutes: &minutes, soak: stage.soak }, &reference, &[], now);
        let domain = a.decisions.iter().any(|d| matches!(d, Decision::RollBack(b) if b.rule == "memory_above_baseline"));
        assert_eq!(sim.rolls_back(), domain, "minute {minute}");
        agreed_rollbacks += u64::from(domain);
        judged += u64::from(sim.n >= sim.min_sample);
    }
    assert!(agreed_rollbacks > 0 && judged > agreed_rollbacks, "the stream must cross the line for the comparison to mean anything");
}

/// Memory exactly at its line, skewed, looked at after every tick's uploads: the rule rolls
/// back in at most its α of runs (0.1%; with the simulation's noise, 3 of 1,000). The
/// benchmark runs the full table.
#[test]
fn memory_at_its_line_is_rarely_rolled_back() {
    let rails = plan().guardrails;
    let cell = MemorySteady { per_5min: 200.0, soak_secs: 6 * 3_600, sigma: 1.0 };
    let runs = replicate(1_000, 21, 2, |rng| memory_run(&rails, &cell, rng));
    let rolled_back = runs.iter().filter(|(back, _)| *back).count();
    assert!(rolled_back <= 3, "{rolled_back} of 1,000");
    // The stream is long enough to matter: 14,400 uploads per run on average.
    let mean = runs.iter().map(|(_, n)| *n as f64).sum::<f64>() / runs.len() as f64;
    assert!((mean - 14_400.0).abs() < 200.0, "{mean}");
    // A stream 30% above the line is rolled back in every run.
    let above = |rng: &mut Rng| {
        let mut guard = MemoryGuard::new(&rails, 100.0);
        let high = 1.3 * guard.line();
        (0..2_000).any(|_| {
            guard.add(high * (rng.normal() - 0.5).exp());
            guard.rolls_back()
        })
    };
    assert!(replicate(100, 22, 2, above).into_iter().all(|back| back));
}

/// The simulator's success-band review decides as the domain's does, with the condition's
/// timer kept as the server keeps it (started when the condition first holds, cleared when
/// it stops), on a stream of 4% timeouts: inside the review band, short of the rollback line.
#[test]
fn the_simulated_review_band_is_the_domains() {
    let plan = plan();
    let (rails, stage) = (&plan.guardrails, &plan.stages[1]);
    let reference = Reference { latency_p95_ms: Some(1e9), memory_mean_mb: None, source: "frozen baseline".into() };
    let mut rng = Rng::new(8);
    let mut sim = NewGuard::new(rails, stage.soak.secs() as u64);
    let mut minutes: Vec<(Timestamp, Stats)> = Vec::new();
    let mut sustained: Vec<Sustained> = Vec::new();
    let (mut held, mut reviewed) = (0, 0);
    for minute in 0..600i64 {
        let (errors, timeouts, events) = Rates { error: 0.0, timeout: 0.04 }.draw(&mut rng, 40.0);
        sim.minute();
        sim.add(errors, timeouts, events);
        let mut stats = Stats::default();
        for (outcome, count) in [(Outcome::Timeout, timeouts), (Outcome::Success, events - timeouts)] {
            (0..count).for_each(|_| stats.add(&treatment_upload(outcome, 10.0, 1.0, false)));
        }
        minutes.push((Timestamp(minute * 60_000), stats));
        let now = Timestamp(minute * 60_000 + 59_000);
        let a = assess(rails, StageEvidence { minutes: &minutes, soak: stage.soak }, &reference, &sustained, now);
        assert!(!a.decisions.iter().any(|d| matches!(d, Decision::RollBack(_))), "minute {minute}: 4% is short of the line");
        let review = a.decisions.iter().any(|d| matches!(d, Decision::Review(b) if b.rule == "success_band"));
        let holds = a.holding.contains(&Condition::SuccessBand);
        assert_eq!(sim.band_holds(), holds, "minute {minute}");
        assert_eq!(sim.reviews_at(now.millis() as u64 / 1000), review, "minute {minute}");
        // The server's timers: new conditions start one, the rest are cleared.
        sustained.retain(|s| a.holding.contains(&s.condition));
        for c in &a.holding {
            if !sustained.iter().any(|s| s.condition == *c) {
                sustained.push(Sustained { condition: *c, since: now });
            }
        }
        held += u64::from(holds);
        reviewed += u64::from(review);
    }
    assert!(held > 30 && reviewed > 0, "the stream must reach the review for the comparison to mean anything ({held}, {reviewed})");
}

/// A small A/A run at the rollback line and at the gate's line: the new rules keep their
/// error rates; the old rule rolls back most healthy stages. (The full table comes from
/// `cargo xtask calibrate`.)
#[test]
fn at_the_line_the_new_rules_rarely_act_and_the_old_rule_often_did() {
    let plan = plan();
    let rails = &plan.guardrails;
    let at_rollback_line = Steady { per_5min: 100.0, soak_secs: 6 * 3600, rates: Rates::errors(0.05), gate_max_pct: 5.0, min_events: 100 };
    let runs = 120;
    let mut outcome = SteadyOutcome::default();
    for o in replicate(runs, 42, 2, |rng| steady_run(rails, &at_rollback_line, rng)) {
        outcome.add(o);
    }
    assert!(outcome.new_rollbacks <= 3, "{outcome:?}");
    assert!(outcome.old_rollbacks >= runs * 9 / 10, "{outcome:?}");
    // The error gate at exactly 5%: the sequence never shows pass; Wilson watched does.
    assert!(outcome.new_passes <= 3, "{outcome:?}");
    assert!(outcome.old_passes >= 10, "{outcome:?}");
}

#[test]
fn a_thirty_percent_regression_is_caught_at_ten_uploads_per_five_minutes() {
    let plan = plan();
    let cell = Regression {
        per_5min: 10.0,
        stage_soak_secs: 48 * 3600,
        until_secs: 48 * 3600,
        healthy: Rates::errors(0.005),
        change_secs: 6 * 3600,
        bad: Rates::errors(0.3),
    };
    let runs = replicate(40, 9, 2, |rng| regression_run(&plan.guardrails, &cell, rng));
    let caught: Vec<u64> = runs.iter().filter_map(|d| d.new.map(|(events, _)| events)).collect();
    assert_eq!(caught.len(), runs.len(), "every run caught: {runs:?}");
    let mut sorted = caught.clone();
    sorted.sort();
    assert!(sorted[sorted.len() / 2] <= 80, "median {} uploads: {sorted:?}", sorted[sorted.len() / 2]);
    // The old rule never judged a window this thin.
    assert!(runs.iter().all(|d| d.old.is_none()), "{runs:?}");
}
