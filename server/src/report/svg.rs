//! Line charts as inline SVG for the printed report: no script, no fonts to load, readable in
//! grey (control is dashed). A step without events leaves a gap rather than a line across it.

use super::esc;
use app::components::charts::geometry::{self, Scale};
use app::domain::units::Timestamp;
use std::fmt::Write;

/// One line: a label for the legend, a colour, whether dashed, a value per step.
pub struct Line<'a> {
    pub label: &'a str,
    pub colour: &'a str,
    pub dashed: bool,
    pub values: Vec<Option<f64>>,
}

const W: f64 = 640.0;
const H: f64 = 180.0;
/// Room for the axis labels (left, bottom) and the legend (top).
const LEFT: f64 = 60.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 26.0;

/// A line chart over `[from, to]` of `lines`, whose values belong to the steps (of `step_ms`)
/// starting at `times`, in `unit`. A step standing alone is drawn as a dot.
pub fn line_chart(
    title: &str,
    unit: &str,
    (from, to): (Timestamp, Timestamp),
    step_ms: i64,
    times: &[Timestamp],
    lines: &[Line],
) -> String {
    let values = lines.iter().flat_map(|l| l.values.iter().flatten().copied()).chain([0.0]);
    let ticks = geometry::value_ticks(values, 5).expect("zero is a finite value");
    let x = Scale::new((from.millis() as f64, to.millis() as f64), (LEFT, W - RIGHT));
    let y = Scale::new((ticks.lo, ticks.hi), (H - BOTTOM, TOP));
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" xmlns="http://www.w3.org/2000/svg"><title>{}</title>"#,
        esc(title)
    );
    let _ = write!(svg, r##"<g font-family="sans-serif" font-size="10" fill="#444">"##);
    for v in &ticks.values {
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}{unit}</text>"##,
            W - RIGHT,
            LEFT - 4.0,
            y.at(*v) + 3.0,
            ticks.label(*v),
            y = y.at(*v),
        );
    }
    for (t, label) in geometry::time_ticks(from, to, 6) {
        let _ = write!(svg, r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#, x.at(t.millis() as f64), H - 8.0, esc(&label));
    }
    let mut legend_x = LEFT;
    for line in lines {
        let dash = if line.dashed { r#" stroke-dasharray="5 3""# } else { "" };
        let _ = write!(
            svg,
            r#"<line x1="{legend_x}" x2="{:.1}" y1="10" y2="10" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="13">{}</text>"#,
            legend_x + 18.0,
            line.colour,
            legend_x + 22.0,
            esc(line.label)
        );
        legend_x += 30.0 + 6.0 * line.label.chars().count() as f64;
    }
    svg.push_str("</g>");
    for line in lines {
        let dash = if line.dashed { r#" stroke-dasharray="5 3""# } else { "" };
        let samples: Vec<(i64, Option<f64>)> = times.iter().map(|t| t.millis()).zip(line.values.iter().copied()).collect();
        let runs = geometry::runs(&samples, step_ms);
        let d = geometry::path(&runs, x, y);
        if !d.is_empty() {
            let _ = write!(svg, r#"<path fill="none" stroke="{}" stroke-width="1.6"{dash} d="{d}"/>"#, line.colour);
        }
        // A step standing alone: a dot, as a path cannot show it.
        for (t, v) in runs.iter().filter(|r| r.len() == 1).map(|r| r[0]) {
            let _ = write!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{}"/>"#, x.at(t as f64), y.at(v), line.colour);
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_names_itself_escapes_its_labels_and_dots_a_lone_step() {
        let times = [Timestamp(0), Timestamp(60_000), Timestamp(120_000), Timestamp(180_000)];
        let line = Line { label: "a<b", colour: "#000", dashed: true, values: vec![Some(1.0), None, Some(2.0), Some(2.5)] };
        let svg = line_chart("Failures & more", "%", (times[0], times[3]), 60_000, &times, &[line]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("<title>Failures &amp; more</title>") && svg.contains("a&lt;b"));
        assert_eq!(svg.matches("<circle").count(), 1, "the first step stands alone");
        assert_eq!(svg.matches("<path").count(), 1, "the last two are a line");
    }
}
