//! `cargo xtask calibrate`: the guard's and the gates' error rates and detection times under
//! seeded simulated traffic, the old rule beside the new (see `app::domain::calibration`).
//! Prints the Markdown tables of `docs/benchmarks.md` § Calibration and, last, one summary
//! line a script can check. `--runs N` sets the replications per cell (default 1,000);
//! `--quick` runs 40 per cell on shortened soaks, to check that it runs.

use app::domain::calibration::{
    Detection, MemorySteady, Rates, Regression, Steady, SteadyOutcome, memory_run, rate_interval, regression_run, replicate, steady_run,
};
use app::domain::plan::{DEFAULT_PLAN_TOML, Plan};
use std::time::Instant;

const TRAFFIC: [f64; 5] = [10.0, 50.0, 200.0, 1_000.0, 10_000.0];
const HOUR: u64 = 3_600;

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn with_ci(k: u64, n: u64) -> String {
    let (lo, hi) = rate_interval(k, n);
    format!("{} ({}–{})", pct(k as f64 / n as f64), pct(lo), pct(hi))
}

fn quantile(sorted: &[u64], q: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let runs: u64 = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(if quick { 40 } else { 1_000 });
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = Instant::now();
    let plan = Plan::from_toml(DEFAULT_PLAN_TOML).expect("the default plan parses");
    let rails = &plan.guardrails;
    // Quick mode: every soak cut to 2 hours.
    let soak_of = |secs: u64| if quick { secs.min(2 * HOUR) } else { secs };

    println!("Calibration: {runs} replications per cell, seeded, {threads} threads; the guard looks every 5 s.\n");

    // 1. Every stage at exactly the error rate its gate allows, all soak long.
    println!("### Healthy treatment at its stage's allowed error rate (the old rule's false rollbacks)\n");
    println!(
        "| stage | error rate | soak | uploads / 5 min | false rollback, new (95% CI) | old | false pass of the error gate, new (95% CI) | old |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let (mut max_rollback, mut max_pass) = ((0u64, 1u64), (0u64, 1u64));
    let worse = |max: &mut (u64, u64), k: u64, n: u64| {
        if k as f64 / n as f64 > max.0 as f64 / max.1 as f64 {
            *max = (k, n);
        }
    };
    for (index, stage) in plan.stages.iter().enumerate().skip(1) {
        let criteria = stage.criteria.as_ref().expect("stages 1–4 have criteria");
        for (t, per_5min) in TRAFFIC.iter().enumerate() {
            let cell = Steady {
                per_5min: *per_5min,
                soak_secs: soak_of(stage.soak.secs() as u64),
                rates: Rates::errors(criteria.error_rate_max.get() / 100.0),
                gate_max_pct: criteria.error_rate_max.get(),
                min_events: u64::from(criteria.min_events),
            };
            let seed = 1_000 + 10 * index as u64 + t as u64;
            let mut o = SteadyOutcome::default();
            replicate(runs, seed, threads, |rng| steady_run(rails, &cell, rng)).into_iter().for_each(|r| o.add(r));
            worse(&mut max_rollback, o.new_rollbacks, o.runs);
            worse(&mut max_pass, o.new_passes, o.runs);
            println!(
                "| {index} | {}% | {} | {per_5min} | {} | {} | {} | {} |",
                criteria.error_rate_max.get(),
                stage.soak,
                with_ci(o.new_rollbacks, o.runs),
                pct(o.old_rollbacks as f64 / o.runs as f64),
                with_ci(o.new_passes, o.runs),
                pct(o.old_passes as f64 / o.runs as f64),
            );
        }
    }

    eprintln!("calibrate: healthy stages done after {:.0} s", started.elapsed().as_secs_f64());

    // 2. Exactly at the rollback line: the hardest case for a rule that must not roll back.
    println!("\n### Treatment exactly at the rollback line (5% errors) all soak long\n");
    println!("| soak | uploads / 5 min | false rollback, new (95% CI) | old |");
    println!("|---|---|---|---|");
    for soak in [48 * HOUR, 72 * HOUR, 168 * HOUR] {
        for (t, per_5min) in TRAFFIC.iter().enumerate() {
            let cell = Steady {
                per_5min: *per_5min,
                soak_secs: soak_of(soak),
                rates: Rates::errors(rails.auto_rollback.error_rate_above.get() / 100.0),
                gate_max_pct: 5.0,
                min_events: 0,
            };
            let mut o = SteadyOutcome::default();
            replicate(runs, 2_000 + soak + t as u64, threads, |rng| steady_run(rails, &cell, rng)).into_iter().for_each(|r| o.add(r));
            worse(&mut max_rollback, o.new_rollbacks, o.runs);
            println!(
                "| {}h | {per_5min} | {} | {} |",
                soak_of(soak) / HOUR,
                with_ci(o.new_rollbacks, o.runs),
                pct(o.old_rollbacks as f64 / o.runs as f64)
            );
        }
    }

    eprintln!("calibrate: the rollback line done after {:.0} s", started.elapsed().as_secs_f64());

    // 3. Regressions from a healthy 0.5%, at the stage's start and a day into a week-long stage;
    // errors (both rollback rates see them), then timeouts (only the non-success rate does).
    println!("\n### Time to roll back a regression (1-week stage, healthy at 0.5% errors before it)\n");
    let header = "| {what} after the change | starts at | uploads / 5 min | caught, new | uploads to rollback, new: median / p90 | minutes: median / p90 | caught, old | uploads, old: median / p90 |";
    println!("{}", header.replace("{what}", "errors"));
    println!("|---|---|---|---|---|---|---|---|");
    let mut worst_median = [0u64; 2];
    let mut regressions = |bad: Rates, label: f64, counted: bool, changes: &[u64], seed: u64| {
        let rate = bad.error + bad.timeout;
        for &change in changes {
            for (t, per_5min) in TRAFFIC.iter().enumerate() {
                // Watch 24 hours after the change (3 at the line itself, where no rollback is due).
                let watch = if rate <= 0.05 { 3 * HOUR } else { 24 * HOUR };
                let change_secs = if quick { change.min(HOUR) } else { change };
                let cell = Regression {
                    per_5min: *per_5min,
                    stage_soak_secs: soak_of(168 * HOUR),
                    until_secs: change_secs + watch,
                    healthy: Rates::errors(0.005),
                    change_secs,
                    bad,
                };
                let start_note = if change == 0 { "stage start".to_string() } else { format!("{}h in", change_secs / HOUR) };
                let results: Vec<Detection> = replicate(runs, seed + change + t as u64, threads, |rng| regression_run(rails, &cell, rng));
                let summarise = |pick: fn(&Detection) -> Option<(u64, u64)>| {
                    let mut events: Vec<u64> = results.iter().filter_map(|d| pick(d).map(|(e, _)| e)).collect();
                    let mut millis: Vec<u64> = results.iter().filter_map(|d| pick(d).map(|(_, ms)| ms)).collect();
                    events.sort_unstable();
                    millis.sort_unstable();
                    (events, millis)
                };
                let (events, millis) = summarise(|d| d.new);
                let (old_events, _) = summarise(|d| d.old);
                let caught = |n: usize| pct(n as f64 / results.len() as f64);
                let spread = |v: &[u64]| if v.is_empty() { "—".into() } else { format!("{} / {}", quantile(v, 0.5), quantile(v, 0.9)) };
                let minutes = |v: &[u64]| {
                    if v.is_empty() {
                        "—".into()
                    } else {
                        format!("{:.1} / {:.1}", quantile(v, 0.5) as f64 / 60_000.0, quantile(v, 0.9) as f64 / 60_000.0)
                    }
                };
                if counted && rate > 0.05 && !events.is_empty() {
                    let slot = if rate >= 0.3 { 0 } else { 1 };
                    worst_median[slot] = worst_median[slot].max(quantile(&events, 0.5));
                    if events.len() < results.len() {
                        // A regression some runs never caught within the watch: no finite bound.
                        worst_median[slot] = u64::MAX;
                    }
                }
                println!(
                    "| {}% | {start_note} | {per_5min} | {} | {} | {} | {} | {} |",
                    label * 100.0,
                    caught(events.len()),
                    spread(&events),
                    minutes(&millis),
                    caught(old_events.len()),
                    spread(&old_events),
                );
            }
        }
    };
    for (m, bad_rate) in [0.05, 0.10, 0.30].into_iter().enumerate() {
        regressions(Rates::errors(bad_rate), bad_rate, true, &[0, 24 * HOUR], 3_000 + 100 * m as u64);
    }
    // Timeouts, with errors staying at 0.5%: the non-success rate (line 5%) sees 0.5% + the
    // timeouts.
    println!("\n{}", header.replace("{what}", "failures (0.5% errors, the rest timeouts)"));
    println!("|---|---|---|---|---|---|---|---|");
    for (m, timeouts) in [0.095, 0.295].into_iter().enumerate() {
        regressions(Rates { error: 0.005, timeout: timeouts }, 0.005 + timeouts, false, &[24 * HOUR], 3_500 + 100 * m as u64);
    }

    eprintln!("calibrate: regressions done after {:.0} s", started.elapsed().as_secs_f64());

    // 4. Timeouts in a healthy stage: the non-success rate and the success band's review.
    let band_top = 100.0 - rails.manual_review.success_band[1].get();
    println!("\n### Healthy treatment whose failures are mostly timeouts (the review band and the non-success rate)\n");
    println!(
        "The review asks a person to look when failures are proven above {band_top}% for {} (α {}%); the non-success rollback line is {}%.\n",
        rails.manual_review.success_band_for,
        app::domain::guard::ALPHA_REVIEW * 100.0,
        100.0 - rails.auto_rollback.success_rate_below.get()
    );
    println!("| errors | timeouts | soak | uploads / 5 min | false rollback, new (95% CI) | old | false review, new (95% CI) |");
    println!("|---|---|---|---|---|---|---|");
    let cells = [(Rates { error: 0.005, timeout: 0.025 }, 48 * HOUR, true), (Rates { error: 0.0, timeout: 0.05 }, 168 * HOUR, false)];
    for (c, (rates, soak, review_is_false)) in cells.into_iter().enumerate() {
        for (t, per_5min) in TRAFFIC.iter().enumerate() {
            let cell = Steady { per_5min: *per_5min, soak_secs: soak_of(soak), rates, gate_max_pct: 5.0, min_events: 0 };
            let mut o = SteadyOutcome::default();
            replicate(runs, 4_000 + 10 * c as u64 + t as u64, threads, |rng| steady_run(rails, &cell, rng))
                .into_iter()
                .for_each(|r| o.add(r));
            worse(&mut max_rollback, o.new_rollbacks, o.runs);
            // Past the band, a review is due: not a false one.
            let review = if review_is_false {
                with_ci(o.new_reviews, o.runs)
            } else {
                format!("due ({})", pct(o.new_reviews as f64 / o.runs as f64))
            };
            println!(
                "| {} | {} | {}h | {per_5min} | {} | {} | {review} |",
                pct(rates.error),
                pct(rates.timeout),
                soak_of(soak) / HOUR,
                with_ci(o.new_rollbacks, o.runs),
                pct(o.old_rollbacks as f64 / o.runs as f64),
            );
        }
    }

    eprintln!("calibrate: timeouts done after {:.0} s", started.elapsed().as_secs_f64());

    // 5. Memory exactly at its rollback line: the mean sequence is asymptotic, so its α is
    // checked where it is least sure, on skewed readings and from the first judged upload.
    let memory_soak = soak_of(48 * HOUR);
    println!(
        "\n### Memory exactly at its rollback line ({}% of the reference) all soak long\n",
        rails.auto_rollback.memory_above_baseline.get()
    );
    println!(
        "The rule: the confidence sequence of the stage's mean memory per upload (α {}%) above the line, from the {}th upload; the readings log-normal with their mean at the line.\n",
        app::domain::guard::ALPHA_ROLLBACK_MEMORY * 100.0,
        rails.min_sample
    );
    println!("| readings | soak | uploads / 5 min | false rollback (95% CI) |");
    println!("|---|---|---|---|");
    for (shape, sigma) in [("near-constant (σ 0.25)", 0.25), ("skewed (σ 1)", 1.0)] {
        for (t, per_5min) in TRAFFIC[..4].iter().enumerate() {
            let cell = MemorySteady { per_5min: *per_5min, soak_secs: memory_soak, sigma };
            let results = replicate(runs, 5_000 + (sigma * 100.0) as u64 + t as u64, threads, |rng| memory_run(rails, &cell, rng));
            let back = results.iter().filter(|(back, _)| *back).count() as u64;
            worse(&mut max_rollback, back, runs);
            println!("| {shape} | {}h | {per_5min} | {} |", memory_soak / HOUR, with_ci(back, runs));
        }
    }

    let bound = |v: u64| if v == u64::MAX { "never in some runs".to_string() } else { format!("{v} events") };
    let (lo, hi) = rate_interval(max_rollback.0, max_rollback.1);
    println!("\nRan in {:.0} s.\n", started.elapsed().as_secs_f64());
    println!(
        "calibration: max false rollback {} (95% CI {}–{}), max false pass {}, 30% regression within {}, 10% within {}",
        pct(max_rollback.0 as f64 / max_rollback.1 as f64),
        pct(lo),
        pct(hi),
        pct(max_pass.0 as f64 / max_pass.1 as f64),
        bound(worst_median[0]),
        bound(worst_median[1]),
    );
}
