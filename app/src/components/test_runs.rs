//! CI test runs of the plan's suites: for each suite the current stage requires, its newest
//! result and its trend across runs; then the newest runs, each with its failed cases and what
//! the test tool said about them.

use crate::components::local_time::LocalTime;
use crate::domain::plan::Plan;
use crate::domain::units::StageIndex;
use crate::model::TestRun;
use leptos::prelude::*;

/// Runs of one suite shown in its trend, oldest first.
const TREND_RUNS: usize = 10;
/// Runs listed with their failures (the server sends the failures of as many).
const NEWEST_RUNS: usize = 5;

/// The suites the plan's last stage asks for (the sign-off: the seeds' "all 57 tests passing")
/// and how many of their tests pass in each suite's newest run, whichever stage it was reported
/// for (at most the plan's count per suite): (passing, asked for).
pub fn sign_off_total(plan: &Plan, runs: &[TestRun]) -> (u32, u32) {
    let suites = plan.stages.last().map(|s| s.test_suites.as_slice()).unwrap_or_default();
    let passing = suites.iter().map(|suite| runs.iter().find(|r| r.suite == suite.name).map_or(0, |r| r.passed.min(suite.tests))).sum();
    (passing, suites.iter().map(|s| s.tests).sum())
}

#[component]
pub fn TestRuns(plan: Plan, stage: StageIndex, runs: Vec<TestRun>) -> impl IntoView {
    let (passing, total) = sign_off_total(&plan, &runs);
    let overall = (total > 0).then(|| {
        let named: Vec<String> =
            plan.stages.last().map(|s| s.test_suites.iter().map(|t| format!("{} {}", t.name, t.tests)).collect()).unwrap_or_default();
        view! {
            <p data-testid="tests-total">
                {format!("Sign-off asks for {total} tests: {passing} pass in the newest runs")}
                <span class="muted">{format!(" ({})", named.join(", "))}</span>
            </p>
        }
    });
    let required = plan.stage(stage).map(|s| s.test_suites.clone()).unwrap_or_default();
    let suites = required
        .into_iter()
        .map(|suite| {
            let of_suite: Vec<&TestRun> = runs.iter().filter(|r| r.suite == suite.name && r.stage == stage.0).collect();
            let newest = of_suite.first().map_or_else(
                || "no run reported for this stage".to_string(),
                |r| {
                    format!(
                        "newest: {} of {} passed{}",
                        r.passed,
                        suite.tests,
                        if r.failed > 0 { format!(", {} failed", r.failed) } else { String::new() }
                    )
                },
            );
            let trend = of_suite
                .iter()
                .take(TREND_RUNS)
                .rev()
                .map(|r| {
                    let ok = r.failed == 0 && r.passed >= suite.tests;
                    let title = format!("{} passed, {} failed, {} skipped", r.passed, r.failed, r.skipped);
                    view! { <li class:ok=ok class:bad=!ok title=title>{format!("{}/{}", r.passed, r.passed + r.failed)}</li> }
                })
                .collect_view();
            view! {
                <li data-testid="suite-trend">
                    <strong>{suite.name.clone()}</strong> <span class="muted">{format!(" ({} tests) · {newest}", suite.tests)}</span>
                    <ol class="trend" aria-label=format!("{} runs, oldest first", suite.name)>{trend}</ol>
                </li>
            }
        })
        .collect_view();
    let newest = runs.iter().take(NEWEST_RUNS).cloned().map(|run| view! { <Run run/> }).collect_view();
    let empty = runs.is_empty().then(|| {
        view! { <p class="muted">"No CI runs reported yet: a CI step sends them with " <code>"rampart test-results"</code> "."</p> }
    });
    view! {
        <section class="card test-runs" aria-labelledby="test-runs-title">
            <h2 id="test-runs-title">"Test runs"</h2>
            {overall}
            <ul class="suites">{suites}</ul>
            {empty}
            <ul class="runs">{newest}</ul>
        </section>
    }
}

#[component]
fn Run(run: TestRun) -> impl IntoView {
    let seconds = run.duration_ms.map(|ms| format!(" · {:.1} s", ms as f64 / 1000.0));
    let skipped = (run.skipped > 0).then(|| format!(", {} skipped", run.skipped));
    let flaky = (run.flaky > 0).then(|| format!(" ({} on a retry)", run.flaky));
    let link = run.url.clone().map(|url| view! { " · " <a href=url rel="noopener noreferrer">"CI run"</a> });
    let failures = (!run.failures.is_empty()).then(|| {
        let count = run.failed as usize;
        let kept = run.failures.len();
        let more = (count > kept).then(|| view! { <li class="muted">{format!("… and {} more", count - kept)}</li> });
        let cases = run
            .failures
            .into_iter()
            .map(|case| {
                let name = if case.classname.is_empty() { case.name } else { format!("{} › {}", case.classname, case.name) };
                view! {
                    <li data-testid="failed-case">
                        <code>{name}</code> <span class="muted">{format!(" {}", case.kind)}</span>
                        <pre>{case.message}</pre>
                    </li>
                }
            })
            .collect_view();
        view! {
            <details>
                <summary>{format!("{count} failed case{}", if count == 1 { "" } else { "s" })}</summary>
                <ul class="failed-cases">{cases} {more}</ul>
            </details>
        }
    });
    let failed = run.failed > 0;
    view! {
        <li class:bad=failed data-testid="test-run">
            <strong>{run.suite}</strong>
            {format!(" · stage {} · {} passed{}, {} failed{}", run.stage, run.passed, flaky.unwrap_or_default(), run.failed, skipped.unwrap_or_default())}
            <span class="muted">{seconds} " · " {run.reported_by} " · " <LocalTime at=run.reported_at/> {link}</span>
            {failures}
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan::{DEFAULT_PLAN_TOML, Plan};

    fn run(suite: &str, stage: u32, passed: u32, failed: u32) -> TestRun {
        TestRun {
            id: 0,
            stage,
            suite: suite.into(),
            passed,
            failed,
            skipped: 0,
            flaky: 0,
            duration_ms: None,
            format: "junit".into(),
            failures: Vec::new(),
            url: None,
            reported_by: "ci".into(),
            reported_at: crate::domain::units::Timestamp(0),
        }
    }

    /// The seeds' "all 57 tests passing": the last stage asks for Phase 1 16, Phase 2 12 and
    /// Phase 3 29, each counted from its newest run.
    #[test]
    fn the_sign_off_total_is_the_seeds_57_counted_from_each_suites_newest_run() {
        let plan = Plan::from_toml(DEFAULT_PLAN_TOML).unwrap();
        assert_eq!(sign_off_total(&plan, &[]), (0, 57));
        // Newest first: Phase 1's newest run has 15 passing (an older full run does not count).
        let runs = [run("Phase 1", 0, 15, 1), run("Phase 1", 0, 16, 0), run("Phase 2", 3, 12, 0)];
        assert_eq!(sign_off_total(&plan, &runs), (27, 57));
        // No suite counts more than the plan asks of it.
        let all = [run("Phase 1", 4, 16, 0), run("Phase 2", 4, 12, 0), run("Phase 3", 4, 40, 0)];
        assert_eq!(sign_off_total(&plan, &all), (57, 57));
    }
}
