//! Line charts as inline SVG for the printed report: no script, no fonts to load, readable in
//! grey (control is dashed). A step without events leaves a gap rather than a line across it.

use super::esc;
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

/// A round step for about `count` ticks from 0 to `max`: 1, 2 or 5 times a power of ten.
pub fn tick_step(max: f64, count: f64) -> f64 {
    if max.is_nan() || max <= 0.0 || max.is_infinite() {
        return 1.0;
    }
    let raw = max / count;
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|s| *s >= raw).unwrap_or(10.0 * power)
}

/// Each run of consecutive values as one polyline's points, `x,y` pairs: a run ends at a step
/// without a value, or where the next value's step is more than `step` after the last one's.
pub fn runs(times: &[Timestamp], values: &[Option<f64>], step: i64, x: impl Fn(Timestamp) -> f64, y: impl Fn(f64) -> f64) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut last: Option<Timestamp> = None;
    for (t, v) in times.iter().zip(values) {
        let gap = last.is_some_and(|l| t.millis() - l.millis() > step);
        if (gap || !v.is_some_and(f64::is_finite)) && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        match v {
            Some(v) if v.is_finite() => {
                if !current.is_empty() {
                    current.push(' ');
                }
                let _ = write!(current, "{:.1},{:.1}", x(*t), y(*v));
                last = Some(*t);
            }
            _ => last = None,
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// "11-22 14:00": a tick's time, short.
fn short_time(t: Timestamp) -> String {
    let full = app::format::utc_minute(t);
    full.get(5..16).unwrap_or(&full).to_string()
}

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
    let max = lines.iter().flat_map(|l| l.values.iter().flatten()).copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
    let step = tick_step(max, 4.0);
    let top = (max / step).ceil().max(1.0) * step;
    let (plot_w, plot_h) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let span = (to.millis() - from.millis()).max(1) as f64;
    let x = |t: Timestamp| LEFT + plot_w * ((t.millis() - from.millis()) as f64 / span).clamp(0.0, 1.0);
    let y = |v: f64| TOP + plot_h * (1.0 - v / top);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" xmlns="http://www.w3.org/2000/svg"><title>{}</title>"#,
        esc(title)
    );
    let _ = write!(svg, r##"<g font-family="sans-serif" font-size="10" fill="#444">"##);
    let mut v = 0.0;
    while v <= top + step / 2.0 {
        let decimals = if step < 1.0 { (-step.log10().floor()) as usize } else { 0 };
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v:.decimals$}{unit}</text>"##,
            W - RIGHT,
            LEFT - 4.0,
            y(v) + 3.0,
            y = y(v),
        );
        v += step;
    }
    let middle = Timestamp(from.millis() + (to.millis() - from.millis()) / 2);
    for (t, anchor) in [(from, "start"), (middle, "middle"), (to, "end")] {
        let _ = write!(svg, r#"<text x="{:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"#, x(t), H - 8.0, short_time(t));
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
        for points in runs(times, &line.values, step_ms, x, y) {
            match points.split_once(',') {
                Some((cx, cy)) if !points.contains(' ') => {
                    let _ = write!(svg, r#"<circle cx="{cx}" cy="{cy}" r="2" fill="{}"/>"#, line.colour);
                }
                _ => {
                    let _ = write!(svg, r#"<polyline fill="none" stroke="{}" stroke-width="1.6"{dash} points="{points}"/>"#, line.colour);
                }
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_largest_value() {
        assert_eq!(tick_step(100.0, 4.0), 50.0);
        assert_eq!(tick_step(0.9, 4.0), 0.5);
        assert_eq!(tick_step(7.3, 4.0), 2.0);
        assert_eq!(tick_step(0.0, 4.0), 1.0);
        assert_eq!(tick_step(f64::NAN, 4.0), 1.0);
        for max in [0.013, 0.5, 3.0, 42.0, 999.0, 12_345.0] {
            let step = tick_step(max, 4.0);
            assert!(step * 4.0 >= max && step * 4.0 <= max * 10.0, "{max}: {step}");
        }
    }

    #[test]
    fn a_step_without_events_leaves_a_gap() {
        let times: Vec<Timestamp> = [0, 1, 2, 3, 5, 6].iter().map(|m| Timestamp(m * 60_000)).collect();
        let values = [Some(1.0), Some(2.0), None, Some(3.0), Some(4.0), Some(5.0)];
        let x = |t: Timestamp| t.millis() as f64 / 60_000.0 * 10.0;
        let lines = runs(&times, &values, 60_000, x, |v| 100.0 - v);
        assert_eq!(lines, ["0.0,99.0 10.0,98.0", "30.0,97.0", "50.0,96.0 60.0,95.0"], "minute 4 had no step at all");
        assert!(runs(&times[..2], &[None, None], 60_000, x, |v| v).is_empty());
    }

    #[test]
    fn the_chart_names_itself_and_escapes_its_labels() {
        let times = [Timestamp(0), Timestamp(60_000), Timestamp(120_000)];
        let line = Line { label: "a<b", colour: "#000", dashed: true, values: vec![Some(1.0), None, Some(2.0)] };
        let svg = line_chart("Failures & more", "%", (times[0], times[2]), 60_000, &times, &[line]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("<title>Failures &amp; more</title>") && svg.contains("a&lt;b"));
        assert_eq!(svg.matches("<circle").count(), 2, "two lone steps around the gap, drawn as dots");
    }
}
