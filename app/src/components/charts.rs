//! The rollout's charts (leptos-chartistry): success and error rate, p95 latency and memory of
//! the treatment arm beside control, against the stage's thresholds and the frozen baseline,
//! and treatment uploads against the stage's minimum. A range selector picks the window; stage
//! changes and rollbacks inside it are drawn as vertical lines in every chart and listed under
//! them.

use crate::api::get_chart_series;
use crate::components::local_time::LocalTime;
use crate::domain::plan::Criteria;
use crate::domain::stats::Summary;
use crate::model::ChartSeries;
use chrono::{DateTime, Utc};
use leptos::prelude::*;
use leptos_chartistry::*;

/// The ranges a person can pick, in hours.
pub const RANGES: [(u32, &str); 5] = [(1, "1 h"), (6, "6 h"), (24, "24 h"), (48, "48 h"), (168, "7 d")];

const TREATMENT: Colour = Colour::from_rgb(0x1f, 0x5f, 0xa8);
const CONTROL: Colour = Colour::from_rgb(0x8a, 0x94, 0xa3);
const LIMIT: Colour = Colour::from_rgb(0xc0, 0x39, 0x2b);
const BASELINE: Colour = Colour::from_rgb(0x2e, 0x8b, 0x57);
const STAGE_CHANGE: Colour = Colour::from_rgb(0x6a, 0x3d, 0x9a);
const ROLLBACK: Colour = Colour::from_rgb(0x8b, 0x00, 0x00);

/// Data lines a chart draws at most; the two slots after them are the stage-change and
/// rollback marks.
const LINES: usize = 4;

/// One x position with up to [`LINES`] values and the two marks (`NaN`: nothing to draw there).
#[derive(Clone, Debug, PartialEq)]
struct Row {
    at: DateTime<Utc>,
    values: [f64; LINES + 2],
}

/// How a line reads its value from a chart point (`None`: nothing to draw there).
type Reader = Box<dyn Fn(&crate::model::ChartPoint) -> Option<f64>>;

/// What a chart draws: its title, and for each line a name, a colour and how to read it.
struct Spec {
    title: &'static str,
    test_id: &'static str,
    lines: Vec<(String, Colour, Reader)>,
}

#[component]
pub fn Charts(
    rollout_id: i64,
    criteria: Option<Criteria>,
    baseline: Option<Summary>,
    hours: RwSignal<u32>,
    live: ReadSignal<u64>,
) -> impl IntoView {
    let series = Resource::new(move || (hours.get(), live.get()), move |(h, _)| get_chart_series(rollout_id, h));
    let picker = RANGES
        .map(|(h, label)| {
            view! {
                <button
                    type="button"
                    class:selected=move || hours.get() == h
                    aria-pressed=move || (hours.get() == h).to_string()
                    on:click=move |_| hours.set(h)
                >
                    {label}
                </button>
            }
        })
        .collect_view();
    view! {
        <section class="card charts" aria-labelledby="charts-title" data-testid="charts">
            <div class="charts-head">
                <h2 id="charts-title">"Treatment vs control"</h2>
                <div class="range" role="group" aria-label="Time range">{picker}</div>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading the charts…"</p> }>
                {move || Suspend::new({
                    let (criteria, baseline) = (criteria.clone(), baseline.clone());
                    async move {
                        match series.await {
                            Ok(series) => view! { <ChartGrid series criteria baseline/> }.into_any(),
                            Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        }
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn ChartGrid(series: ChartSeries, criteria: Option<Criteria>, baseline: Option<Summary>) -> impl IntoView {
    if series.points.iter().all(|p| p.treatment.count == 0 && p.control.count == 0) {
        return view! { <p class="muted" data-testid="charts-empty">"No uploads in this range yet."</p> }.into_any();
    }
    let constant = |v: Option<f64>| move |_: &crate::model::ChartPoint| v;
    let base = baseline.clone().unwrap_or_default();
    let has_baseline = baseline.is_some();
    let mut specs = vec![
        Spec {
            title: "Success rate (%)",
            test_id: "chart-success",
            lines: vec![
                ("treatment".into(), TREATMENT, Box::new(|p| p.treatment.success_rate)),
                ("control".into(), CONTROL, Box::new(|p| p.control.success_rate)),
            ],
        },
        Spec {
            title: "Error rate (%)",
            test_id: "chart-errors",
            lines: vec![
                ("treatment".into(), TREATMENT, Box::new(|p| p.treatment.error_rate)),
                ("control".into(), CONTROL, Box::new(|p| p.control.error_rate)),
            ],
        },
        Spec {
            title: "Latency p95 (ms)",
            test_id: "chart-latency",
            lines: vec![
                ("treatment p95".into(), TREATMENT, Box::new(|p| p.treatment.latency_p95_ms)),
                ("control p95".into(), CONTROL, Box::new(|p| p.control.latency_p95_ms)),
            ],
        },
        Spec {
            title: "Memory per upload (MB)",
            test_id: "chart-memory",
            lines: vec![
                ("treatment".into(), TREATMENT, Box::new(|p| p.treatment.memory_mean_mb)),
                ("control".into(), CONTROL, Box::new(|p| p.control.memory_mean_mb)),
            ],
        },
        Spec {
            title: "Treatment uploads (cumulative)",
            test_id: "chart-uploads",
            lines: vec![("treatment uploads".into(), TREATMENT, Box::new(|p| Some(p.treatment_total as f64)))],
        },
    ];
    if let Some(c) = &criteria {
        specs[0].lines.push((format!("gate ≥ {}%", c.success_rate_min.get()), LIMIT, Box::new(constant(Some(c.success_rate_min.get())))));
        specs[1].lines.push((format!("gate ≤ {}%", c.error_rate_max.get()), LIMIT, Box::new(constant(Some(c.error_rate_max.get())))));
        if let Some(p95) = base.latency_p95_ms.filter(|_| has_baseline) {
            let limit = p95 * c.latency_max.get() / 100.0;
            specs[2].lines.push((format!("gate ≤ {}% of baseline", c.latency_max.get()), LIMIT, Box::new(constant(Some(limit)))));
        }
        specs[4].lines.push((format!("stage minimum {}", c.min_events), LIMIT, Box::new(constant(Some(f64::from(c.min_events))))));
    }
    if has_baseline {
        specs[0].lines.push(("baseline".into(), BASELINE, Box::new(constant(base.success_rate))));
        specs[2].lines.push(("baseline p95".into(), BASELINE, Box::new(constant(base.latency_p95_ms))));
        specs[3].lines.push(("baseline".into(), BASELINE, Box::new(constant(base.memory_mean_mb))));
    }
    let charts = specs.into_iter().map(|spec| render(&series, spec)).collect_view();
    let marks = (!series.marks.is_empty()).then(|| {
        let items = series.marks.iter().map(|(at, what)| view! { <li><LocalTime at=*at/>{format!(" — {what}")}</li> }).collect_view();
        view! { <div class="marks"><h3>"In this range"</h3><ul data-testid="chart-marks">{items}</ul></div> }
    });
    let step = format!("One point per {} min.", series.step_minutes);
    view! {
        <div class="chart-grid">{charts}</div>
        <p class="muted">{step}</p>
        {marks}
    }
    .into_any()
}

/// Adds each mark as a vertical line: two extra rows at the step the mark falls in, repeating
/// that step's data (so the data lines only gain zero-length segments) and taking the mark's
/// slot from the chart's lowest to its highest value. Returns which kinds of mark were drawn.
fn with_marks(rows: &mut Vec<Row>, marks: &[(crate::domain::units::Timestamp, String)]) -> [bool; 2] {
    let finite = rows.iter().flat_map(|r| r.values[..LINES].iter().copied()).filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let mut drawn = [false; 2];
    if !(lo.is_finite() && hi.is_finite()) {
        return drawn;
    }
    for (at, what) in marks {
        let Some(at) = DateTime::from_timestamp_millis(at.millis()) else { continue };
        // The last step that began at or before the mark.
        let Some(i) = rows.iter().rposition(|r| r.at <= at) else { continue };
        let slot = usize::from(what.starts_with("Rolled back"));
        drawn[slot] = true;
        let (mut bottom, mut top) = (rows[i].clone(), rows[i].clone());
        bottom.values[LINES + slot] = lo;
        top.values[LINES + slot] = hi;
        rows.splice(i + 1..i + 1, [bottom, top]);
    }
    drawn
}

fn render(series: &ChartSeries, spec: Spec) -> AnyView {
    let names: Vec<(String, Colour)> = spec.lines.iter().map(|(n, c, _)| (n.clone(), *c)).collect();
    let mut rows: Vec<Row> = series
        .points
        .iter()
        .map(|p| {
            let mut values = [f64::NAN; LINES + 2];
            for (slot, (_, _, read)) in values.iter_mut().zip(&spec.lines) {
                *slot = read(p).unwrap_or(f64::NAN);
            }
            Row { at: DateTime::from_timestamp_millis(p.at.millis()).unwrap_or_default(), values }
        })
        .collect();
    let drawn = with_marks(&mut rows, &series.marks);
    let marks = [("stage change", STAGE_CHANGE), ("rollback", ROLLBACK)];
    // The legend is HTML under the chart, so it wraps on a narrow screen instead of clipping.
    let legend = names
        .iter()
        .map(|(name, colour)| (name.clone(), *colour))
        .chain(marks.iter().zip(drawn).filter(|(_, d)| *d).map(|((name, colour), _)| (name.to_string(), *colour)))
        .map(|(name, colour)| view! { <li><span class="swatch" style=format!("background:{colour}")></span>{name}</li> })
        .collect_view();
    let mut chart_series = Series::new(|r: &Row| r.at);
    for (i, (name, colour)) in names.into_iter().enumerate() {
        // Straight segments: the default smoothing divides by the step and breaks on the
        // repeated x of a mark, and a minute without uploads is a gap rather than a curve.
        let mut line = Line::new(move |r: &Row| r.values[i])
            .with_name(name)
            .with_colour(colour)
            .with_width(2.0)
            .with_interpolation(Interpolation::Linear);
        // Measured series get dots, so a lone minute of data still shows; limits stay plain lines.
        if colour == TREATMENT || colour == CONTROL {
            line = line.with_marker(Marker::from_shape(MarkerShape::Circle).with_scale(0.8));
        }
        chart_series = chart_series.line(line);
    }
    for (slot, (name, colour)) in marks.into_iter().enumerate() {
        if drawn[slot] {
            let line = Line::new(move |r: &Row| r.values[LINES + slot]).with_name(name).with_colour(colour).with_width(1.5);
            chart_series = chart_series.line(line.with_interpolation(Interpolation::Linear));
        }
    }
    let data = Signal::derive(move || rows.clone());
    view! {
        <figure class="chart" data-testid=spec.test_id>
            <figcaption>{spec.title}</figcaption>
            <Chart
                aspect_ratio=AspectRatio::from_env_width(200.0)
                left=TickLabels::aligned_floats()
                bottom=TickLabels::timestamps()
                inner=[
                    AxisMarker::left_edge().into_inner(),
                    AxisMarker::bottom_edge().into_inner(),
                    YGridLine::default().into_inner(),
                    XGuideLine::over_data().into_inner(),
                ]
                tooltip=Tooltip::left_cursor()
                series=chart_series
                data=data
            />
            <ul class="legend">{legend}</ul>
        </figure>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::units::Timestamp;

    fn row(minute: i64, value: f64) -> Row {
        let mut values = [f64::NAN; LINES + 2];
        values[0] = value;
        Row { at: DateTime::from_timestamp_millis(minute * 60_000).unwrap(), values }
    }

    #[test]
    fn a_mark_is_a_vertical_line_across_the_data_at_its_step() {
        let mut rows = vec![row(0, 99.0), row(1, 97.0), row(2, 98.0)];
        let marks = [(Timestamp(90_000), "Stage 2: 10%".to_string()), (Timestamp(150_000), "Rolled back".to_string())];
        assert_eq!(with_marks(&mut rows, &marks), [true, true]);
        let at: Vec<i64> = rows.iter().map(|r| r.at.timestamp() / 60).collect();
        assert_eq!(at, [0, 1, 1, 1, 2, 2, 2], "two rows at the step each mark falls in");
        // The data line repeats its value there (no visible change) …
        assert!(rows[1..4].iter().all(|r| r.values[0] == 97.0));
        // … and the mark spans the chart's data, lowest to highest.
        assert_eq!((rows[2].values[LINES], rows[3].values[LINES]), (97.0, 99.0));
        assert_eq!((rows[5].values[LINES + 1], rows[6].values[LINES + 1]), (97.0, 99.0));
        assert!(rows[0].values[LINES].is_nan() && rows[4].values[LINES].is_nan(), "nothing drawn between marks");

        let mut empty = vec![row(0, f64::NAN)];
        assert_eq!(with_marks(&mut empty, &marks), [false, false], "no data, no marks");
    }
}
