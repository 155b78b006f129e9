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

#[component]
pub fn TestRuns(plan: Plan, stage: StageIndex, runs: Vec<TestRun>) -> impl IntoView {
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
