//! One chart as plain SVG: a value axis at round numbers, a UTC time axis, each measured line
//! broken where a step had no events, thresholds and baselines as level lines, stage changes
//! and rollbacks as labelled vertical lines, and an HTML legend that wraps on a narrow screen.
//! The server renders it; the values at each step are in a band's tooltip, no script needed.

use super::geometry::{self, Scale, Ticks};
use crate::domain::units::Timestamp;
use crate::format;
use leptos::prelude::*;

/// The drawing in SVG units; it scales to the card's width.
const WIDTH: f64 = 400.0;
const HEIGHT: f64 = 210.0;
const LEFT: f64 = 46.0;
const RIGHT: f64 = WIDTH - 16.0;
const BOTTOM: f64 = HEIGHT - 20.0;
/// The plot's top: lower when two rows of mark labels sit above it.
const TOP: f64 = 10.0;
const TOP_WITH_MARKS: f64 = 30.0;
/// A mark label's width per character at its font size (an estimate: no text metrics here).
const CHAR_WIDTH: f64 = 5.2;

/// The colours of the stage-change and rollback marks.
pub const STAGE_CHANGE: &str = "#6a3d9a";
pub const ROLLBACK: &str = "#8b0000";

/// One line's values per step: (time in ms, value), `None` where the step had no events.
type Samples = Vec<(i64, Option<f64>)>;

/// What a line draws.
pub enum Data {
    /// A value per step (time in ms); `None` where the step had no events in this arm.
    Steps(Samples),
    /// A running total per step, flat across steps without events.
    Total(Vec<(i64, f64)>),
    /// A constant: a gate's threshold or the baseline.
    Level(f64),
}

/// One line of a chart and its legend entry.
pub struct Line {
    pub name: String,
    pub colour: &'static str,
    pub data: Data,
}

impl Line {
    /// The line's samples to draw and read out; none for a level.
    fn samples(&self, step_ms: i64) -> Samples {
        match &self.data {
            Data::Steps(samples) => samples.clone(),
            Data::Total(samples) => geometry::carried(samples, step_ms),
            Data::Level(_) => Vec::new(),
        }
    }
}

/// A stage change or rollback inside the chart's window.
pub struct Mark {
    pub at: Timestamp,
    pub text: String,
    pub rollback: bool,
}

#[component]
pub fn LineChart(
    title: &'static str,
    test_id: &'static str,
    from: Timestamp,
    to: Timestamp,
    step_minutes: i64,
    lines: Vec<Line>,
    marks: Vec<Mark>,
) -> impl IntoView {
    let step_ms = step_minutes.max(1) * 60_000;
    let samples: Vec<Samples> = lines.iter().map(|l| l.samples(step_ms)).collect();
    let levels = lines.iter().filter_map(|l| if let Data::Level(v) = l.data { Some(v) } else { None });
    let measured = samples.iter().flatten().filter_map(|(_, v)| *v);
    let has_data = samples.iter().flatten().any(|(_, v)| v.is_some_and(f64::is_finite));
    let ticks =
        geometry::value_ticks(measured.chain(levels), 5).or_else(|| geometry::value_ticks([0.0], 5)).expect("zero is a finite value");
    let top = if marks.is_empty() { TOP } else { TOP_WITH_MARKS };
    let x = Scale::new((from.millis() as f64, to.millis() as f64), (LEFT, RIGHT));
    let y = Scale::new((ticks.lo, ticks.hi), (BOTTOM, top));

    let grid = ticks
        .values
        .iter()
        .map(|v| {
            let at = n(y.at(*v));
            view! {
                <line class="grid" x1=n(LEFT) x2=n(RIGHT) y1=at.clone() y2=at/>
                <text class="tick" x=n(LEFT - 4.0) y=n(y.at(*v) + 3.5) text-anchor="end">{ticks.label(*v)}</text>
            }
        })
        .collect_view();
    let time_axis = geometry::time_ticks(from, to, 6)
        .into_iter()
        .map(|(t, label)| {
            let at = n(x.at(t.millis() as f64));
            view! {
                <line class="axis" x1=at.clone() x2=at.clone() y1=n(BOTTOM) y2=n(BOTTOM + 4.0)/>
                <text class="tick" x=at y=n(HEIGHT - 5.0) text-anchor="middle">{label}</text>
            }
        })
        .collect_view();
    let drawn = lines
        .iter()
        .zip(&samples)
        .map(|(line, samples)| {
            let colour = line.colour;
            if let Data::Level(v) = line.data {
                let at = n(y.at(v));
                return view! { <line class="level" x1=n(LEFT) x2=n(RIGHT) y1=at.clone() y2=at stroke=colour/> }.into_any();
            }
            // A running total never breaks: a step without events added nothing.
            let gap = if matches!(line.data, Data::Total(_)) { i64::MAX } else { step_ms };
            let runs = geometry::runs(samples, gap);
            let lone = runs
                .iter()
                .filter(|r| r.len() == 1)
                .map(|r| view! { <circle cx=n(x.at(r[0].0 as f64)) cy=n(y.at(r[0].1)) r="2.5" fill=colour/> })
                .collect_view();
            view! { <path class="series" d=geometry::path(&runs, x, y) stroke=colour/> {lone} }.into_any()
        })
        .collect_view();
    let mark_x: Vec<f64> = marks.iter().map(|m| x.at(m.at.millis() as f64).clamp(LEFT, RIGHT)).collect();
    let labels: Vec<String> = marks.iter().map(|m| short(&m.text)).collect();
    // Each label's left edge and width; near the right edge a label hangs left of its line.
    let spans: Vec<(f64, f64)> = mark_x
        .iter()
        .zip(&labels)
        .map(|(at, label)| {
            let width = label.chars().count() as f64 * CHAR_WIDTH;
            (if at + 2.0 + width > WIDTH { at - 2.0 - width } else { at + 2.0 }, width)
        })
        .collect();
    let rows = geometry::label_rows(&spans, 2);
    let mark_lines = marks
        .iter()
        .zip(labels)
        .zip(mark_x.iter().zip(spans).zip(rows))
        .map(|((mark, label), ((at, (left, _)), row))| {
            let colour = if mark.rollback { ROLLBACK } else { STAGE_CHANGE };
            // Marks crowded together keep their lines; only the labels that fit are written.
            let baseline = 10.0 + row.unwrap_or(0) as f64 * 11.0;
            let text = row.map(|_| view! { <text x=n(left) y=n(baseline) fill=colour>{label}</text> });
            let tooltip = format!("{} — {}", mark.text, format::utc_minute(mark.at));
            view! {
                <g class="mark">
                    <title>{tooltip}</title>
                    <line x1=n(*at) x2=n(*at) y1=n(baseline - 8.0) y2=n(BOTTOM) stroke=colour/>
                    {text}
                </g>
            }
        })
        .collect_view();
    let empty = (!has_data).then(|| {
        view! { <text class="tick" x=n((LEFT + RIGHT) / 2.0) y=n((top + BOTTOM) / 2.0) text-anchor="middle">"No data in this range"</text> }
    });

    // The readout: a band per step, its values in its tooltip (a browser's own, no script);
    // the band under the pointer is shaded as a guide.
    let readings = Readings::new(&lines, samples, ticks);
    let at = |t: i64| x.at(t as f64);
    let bands = (0..readings.times.len())
        .map(|i| {
            let t = readings.times[i];
            let left = i.checked_sub(1).map_or(LEFT, |p| (at(readings.times[p]) + at(t)) / 2.0).max(LEFT);
            let right = readings.times.get(i + 1).map_or(RIGHT, |&next| (at(t) + at(next)) / 2.0).min(RIGHT);
            view! {
                <rect class="hover" x=n(left) y=n(top) width=n((right - left).max(0.5)) height=n(BOTTOM - top)>
                    <title>{readings.text(i)}</title>
                </rect>
            }
        })
        .collect_view();

    let legend = lines
        .iter()
        .map(|l| (l.name.clone(), l.colour, matches!(l.data, Data::Level(_))))
        .chain(marks.iter().any(|m| !m.rollback).then(|| ("stage change".to_string(), STAGE_CHANGE, true)))
        .chain(marks.iter().any(|m| m.rollback).then(|| ("rollback".to_string(), ROLLBACK, true)))
        .map(|(name, colour, dashed)| {
            view! { <li><span class="swatch" class:dashed=dashed style=format!("--swatch:{colour}")></span>{name}</li> }
        })
        .collect_view();
    let description = summary(title, from, to, &lines, &marks);
    view! {
        <figure class="chart" data-testid=test_id>
            <figcaption>{title}</figcaption>
            <svg
                class="line-chart"
                viewBox=format!("0 0 {WIDTH} {HEIGHT}")
                role="img"
                aria-label=description
            >
                <g>{grid}</g>
                <line class="axis" x1=n(LEFT) x2=n(LEFT) y1=n(top) y2=n(BOTTOM)/>
                <line class="axis" x1=n(LEFT) x2=n(RIGHT) y1=n(BOTTOM) y2=n(BOTTOM)/>
                <g>{time_axis}</g>
                <g>{drawn}</g>
                <g>{mark_lines}</g>
                {empty}
                <g class="hovers">{bands}</g>
            </svg>
            <ul class="legend">{legend}</ul>
        </figure>
    }
}

/// What the readout needs: every step's time, and each line's name and values.
struct Readings {
    times: Vec<i64>,
    lines: Vec<(String, Samples)>,
    ticks: Ticks,
}

impl Readings {
    fn new(lines: &[Line], samples: Vec<Samples>, ticks: Ticks) -> Readings {
        let mut times: Vec<i64> = samples.iter().flatten().filter(|(_, v)| v.is_some()).map(|(t, _)| *t).collect();
        times.sort_unstable();
        times.dedup();
        let lines = lines.iter().map(|l| l.name.clone()).zip(samples).filter(|(_, s)| !s.is_empty()).collect();
        Readings { times, lines, ticks }
    }

    /// `14:05 UTC — treatment 99.73 · control 99.81` at the `i`th step.
    fn text(&self, i: usize) -> String {
        let Some(&t) = self.times.get(i) else { return String::new() };
        let values: Vec<String> = self
            .lines
            .iter()
            .map(|(name, samples)| {
                let value = samples.iter().find(|(at, _)| *at == t).and_then(|(_, v)| *v);
                format!("{name} {}", value.map_or_else(|| "–".to_string(), |v| self.ticks.value_label(v)))
            })
            .collect();
        format!("{} UTC — {}", format::utc_clock(Timestamp(t)), values.join(" · "))
    }
}

/// The chart in words for a screen reader: the window, each line's latest value or level, and
/// the marks.
fn summary(title: &str, from: Timestamp, to: Timestamp, lines: &[Line], marks: &[Mark]) -> String {
    let parts: Vec<String> = lines
        .iter()
        .map(|l| {
            let latest = match &l.data {
                Data::Steps(s) => s.iter().rev().find_map(|(_, v)| *v),
                Data::Total(s) => s.last().map(|(_, v)| *v),
                Data::Level(v) => return format!("{} at {}", l.name, trimmed(*v)),
            };
            latest.map_or_else(|| format!("{}: no data", l.name), |v| format!("{} latest {}", l.name, trimmed(v)))
        })
        .chain(marks.iter().map(|m| format!("{} at {}", m.text, format::utc_minute(m.at))))
        .collect();
    format!("{title}, {} to {}: {}", format::utc_minute(from), format::utc_minute(to), parts.join("; "))
}

/// A value with at most two decimals and no trailing zeros.
fn trimmed(v: f64) -> String {
    let text = format!("{v:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A mark's label on the chart: its text, cut to fit (the whole text is in its tooltip and
/// the list under the charts).
fn short(text: &str) -> String {
    const MAX: usize = 18;
    if text.chars().count() <= MAX { text.to_string() } else { format!("{}…", text.chars().take(MAX - 1).collect::<String>()) }
}

/// A coordinate with one decimal: enough at this size, and short in the HTML.
fn n(v: f64) -> String {
    format!("{v:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_each_lines_latest_value_and_the_marks() {
        let lines = vec![
            Line { name: "treatment".into(), colour: "", data: Data::Steps(vec![(0, Some(99.5)), (60_000, Some(99.25)), (120_000, None)]) },
            Line { name: "control".into(), colour: "", data: Data::Steps(vec![(0, None)]) },
            Line { name: "gate ≥ 99%".into(), colour: "", data: Data::Level(99.0) },
        ];
        let marks = [Mark { at: Timestamp(60_000), text: "Rolled back".into(), rollback: true }];
        assert_eq!(
            summary("Success rate (%)", Timestamp(0), Timestamp(180_000), &lines, &marks),
            "Success rate (%), 1970-01-01 00:00 UTC to 1970-01-01 00:03 UTC: treatment latest 99.25; control: no data; \
             gate ≥ 99% at 99; Rolled back at 1970-01-01 00:01 UTC"
        );
    }

    #[test]
    fn the_readout_lists_every_line_at_the_step() {
        let lines = vec![
            Line { name: "treatment".into(), colour: "", data: Data::Steps(vec![(0, Some(99.5)), (60_000, Some(99.25))]) },
            Line { name: "control".into(), colour: "", data: Data::Steps(vec![(60_000, None)]) },
            Line { name: "gate".into(), colour: "", data: Data::Level(99.0) },
        ];
        let samples = lines.iter().map(|l| l.samples(60_000)).collect();
        let readings = Readings::new(&lines, samples, geometry::value_ticks([99.0, 99.5], 5).unwrap());
        assert_eq!(readings.times, [0, 60_000]);
        assert_eq!(readings.text(1), "00:01 UTC — treatment 99.25 · control –");
    }

    #[test]
    fn long_mark_labels_are_cut() {
        assert_eq!(short("Stage 2: 10%"), "Stage 2: 10%");
        assert_eq!(short("Stage 4: everyone in the company"), "Stage 4: everyone…");
    }
}
