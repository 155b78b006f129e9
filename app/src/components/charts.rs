//! The rollout's charts: success and error rate, p95 latency and memory of the treatment arm
//! beside control, against the stage's thresholds and the frozen baseline, and treatment
//! uploads against the stage's minimum. A range selector picks the window; stage changes and
//! rollbacks inside it are drawn as vertical lines in every chart and listed under them. Each
//! chart is plain SVG drawn by [`line_chart::LineChart`], server-rendered like the rest.

pub mod geometry;
pub mod line_chart;

use crate::api::get_chart_series;
use crate::components::local_time::LocalTime;
use crate::domain::plan::Criteria;
use crate::domain::stats::Summary;
use crate::model::{ChartPoint, ChartSeries};
use leptos::prelude::*;
use line_chart::{Data, Line, LineChart, Mark};

/// The ranges a person can pick, in hours; 0 is the whole rollout, from its start.
pub const RANGES: [(u32, &str); 6] = [(1, "1 h"), (6, "6 h"), (24, "24 h"), (48, "48 h"), (168, "7 d"), (0, "Whole rollout")];

const TREATMENT: &str = "#1f5fa8";
const CONTROL: &str = "#8a94a3";
const LIMIT: &str = "#c0392b";
const BASELINE: &str = "#2e8b57";

#[component]
pub fn Charts(
    rollout_id: i64,
    criteria: Option<Criteria>,
    baseline: Option<Summary>,
    /// The range on show (`?hours=N` of the page).
    hours: u32,
    /// The baseline card's look (`?baseline_hours=N`), kept when the range changes.
    baseline_hours: Option<u32>,
) -> impl IntoView {
    let keep = baseline_hours.map_or_else(String::new, |h| format!("&baseline_hours={h}"));
    let series = Resource::new_blocking(|| (), move |_| get_chart_series(rollout_id, hours));
    // Links, so the range is in the address and survives a reload; the page's `Live` island
    // swaps the charts in place (`data-swap`).
    let picker = RANGES
        .map(|(h, label)| {
            view! {
                <a
                    class="button"
                    class:selected=hours == h
                    aria-pressed=(hours == h).to_string()
                    role="button"
                    data-swap=""
                    href=format!("?hours={h}{keep}")
                >
                    {label}
                </a>
            }
        })
        .collect_view();
    view! {
        <section class="card charts" aria-labelledby="charts-title" data-testid="charts">
            <div class="charts-head">
                <h2 id="charts-title">"Treatment vs control"</h2>
                <div class="range" role="group" aria-label="Time range">{picker}</div>
            </div>
            <Suspense fallback=|| view! { <p class="muted">"Loading the charts…"</p> }>
                {move || Suspend::new({
                    let (criteria, baseline) = (criteria.clone(), baseline.clone());
                    async move {
                        match series.await {
                            Ok(series) => view! { <ChartGrid series criteria baseline/> }.into_any(),
                            Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        }
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn ChartGrid(series: ChartSeries, criteria: Option<Criteria>, baseline: Option<Summary>) -> impl IntoView {
    if series.points.iter().all(|p| p.treatment.count == 0 && p.control.count == 0) {
        return view! { <p class="muted" data-testid="charts-empty">"No uploads in this range yet."</p> }.into_any();
    }
    let steps = |read: fn(&ChartPoint) -> Option<f64>| Data::Steps(series.points.iter().map(|p| (p.at.millis(), read(p))).collect());
    let line = |name: &str, colour: &'static str, data: Data| Line { name: name.to_string(), colour, data };
    let arms = |treatment: &str, control: &str, read_t: fn(&ChartPoint) -> Option<f64>, read_c: fn(&ChartPoint) -> Option<f64>| {
        vec![line(treatment, TREATMENT, steps(read_t)), line(control, CONTROL, steps(read_c))]
    };
    let mut success = arms("treatment", "control", |p| p.treatment.success_rate, |p| p.control.success_rate);
    let mut errors = arms("treatment", "control", |p| p.treatment.error_rate, |p| p.control.error_rate);
    let mut latency = arms("treatment p95", "control p95", |p| p.treatment.latency_p95_ms, |p| p.control.latency_p95_ms);
    let mut memory = arms("treatment", "control", |p| p.treatment.memory_mean_mb, |p| p.control.memory_mean_mb);
    let totals = series.points.iter().map(|p| (p.at.millis(), p.treatment_total as f64)).collect();
    let mut uploads = vec![line("treatment uploads", TREATMENT, Data::Total(totals))];
    if let Some(c) = &criteria {
        success.push(line(&format!("gate ≥ {}%", c.success_rate_min.get()), LIMIT, Data::Level(c.success_rate_min.get())));
        errors.push(line(&format!("gate ≤ {}%", c.error_rate_max.get()), LIMIT, Data::Level(c.error_rate_max.get())));
        if let Some(p95) = baseline.as_ref().and_then(|b| b.latency_p95_ms) {
            let limit = p95 * c.latency_max.get() / 100.0;
            latency.push(line(&format!("gate ≤ {}% of baseline", c.latency_max.get()), LIMIT, Data::Level(limit)));
        }
        uploads.push(line(&format!("stage minimum {}", c.min_events), LIMIT, Data::Level(f64::from(c.min_events))));
    }
    if let Some(b) = &baseline {
        success.extend(b.success_rate.map(|v| line("baseline", BASELINE, Data::Level(v))));
        latency.extend(b.latency_p95_ms.map(|v| line("baseline p95", BASELINE, Data::Level(v))));
        memory.extend(b.memory_mean_mb.map(|v| line("baseline", BASELINE, Data::Level(v))));
    }
    let charts = [
        ("Success rate (%)", "chart-success", success),
        ("Error rate (%)", "chart-errors", errors),
        ("Latency p95 (ms)", "chart-latency", latency),
        ("Memory per upload (MB)", "chart-memory", memory),
        ("Treatment uploads (cumulative)", "chart-uploads", uploads),
    ]
    .into_iter()
    .map(|(title, test_id, lines)| {
        let marks =
            series.marks.iter().map(|(at, text)| Mark { at: *at, text: text.clone(), rollback: text.starts_with("Rolled back") }).collect();
        view! { <LineChart title test_id from=series.from to=series.to step_minutes=series.step_minutes lines marks/> }
    })
    .collect_view();
    let marks = (!series.marks.is_empty()).then(|| {
        let items = series.marks.iter().map(|(at, what)| view! { <li><LocalTime at=*at/>{format!(" — {what}")}</li> }).collect_view();
        view! { <div class="marks"><h3>"In this range"</h3><ul data-testid="chart-marks">{items}</ul></div> }
    });
    let step = format!("One point per {} min; times on the charts in UTC.", series.step_minutes);
    view! {
        <div class="chart-grid">{charts}</div>
        <p class="muted">{step}</p>
        {marks}
    }
    .into_any()
}
