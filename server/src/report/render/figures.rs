//! A report's figures as blocks: the baseline beside the new path in one table, and a stage's
//! two charts (each with the table the Markdown shows in its place).

use super::{Block, cells, mb, ms, pct, table, when};
use crate::report::Chart;
use crate::report::inline::Inline;
use crate::report::svg::{Line, line_chart};
use app::domain::stats::Summary;
use app::domain::units::{Timestamp, thousands};

pub(super) fn comparison_table(baseline: &Summary, treatment: &Summary) -> Block {
    let row = |what: &str, f: fn(&Summary) -> String| cells![what, f(baseline), f(treatment)];
    table(
        &["Measure", "Baseline", "New path"],
        vec![
            row("Uploads", |s| thousands(s.count)),
            row("Success rate", |s| pct(s.success_rate)),
            row("Error rate", |s| pct(s.error_rate)),
            row("Timeout rate", |s| pct(s.timeout_rate)),
            row("Latency p50", |s| ms(s.latency_p50_ms)),
            row("Latency p95", |s| ms(s.latency_p95_ms)),
            row("Memory per upload", |s| mb(s.memory_mean_mb)),
            row("Throughput", |s| s.throughput_per_min.map_or_else(|| "—".into(), |t| format!("{t:.1} / min"))),
        ],
    )
}

/// Two charts of a stage (failures, p95 latency), each arm a line.
pub(super) fn chart_blocks(chart: &Chart) -> Vec<Block> {
    let times: Vec<Timestamp> = chart.points.iter().map(|(t, _, _)| *t).collect();
    let failures = |s: &Summary| s.success_rate.map(|r| 100.0 - r);
    let series = |f: &dyn Fn(&Summary) -> Option<f64>| -> (Vec<Option<f64>>, Vec<Option<f64>>) {
        (chart.points.iter().map(|(_, t, _)| f(t)).collect(), chart.points.iter().map(|(_, _, c)| f(c)).collect())
    };
    let mut out = Vec::new();
    if chart.points.is_empty() {
        out.push(Block::Paragraph("No uploads in this time.".into()));
        return out;
    }
    let step = if chart.step_minutes == 1 { "minute".to_string() } else { format!("{} minutes", chart.step_minutes) };
    for (what, unit, values) in
        [("Failed uploads", "%", series(&failures)), ("Latency p95", " ms", series(&|s: &Summary| s.latency_p95_ms))]
    {
        let lines = [
            Line { label: "treatment", colour: "#c2410c", dashed: false, values: values.0.clone() },
            Line { label: "control", colour: "#1d4ed8", dashed: true, values: values.1.clone() },
        ];
        let caption = format!("{what} per {step}, treatment (solid) and control (dashed), {} to {}", when(chart.from), when(chart.to));
        // The Markdown's table: a few evenly spaced steps with both arms.
        let picks: Vec<usize> =
            if times.len() <= 8 { (0..times.len()).collect() } else { (0..8).map(|k| k * (times.len() - 1) / 7).collect() };
        let show = |v: Option<f64>| v.map_or_else(|| "—".into(), |v| if unit == "%" { format!("{v:.2}%") } else { format!("{v:.0} ms") });
        let rows = picks.iter().map(|&i| cells![when(times[i]), show(values.0[i]), show(values.1[i])]).collect();
        out.push(Block::Chart {
            svg: line_chart(&format!("{what}: {caption}"), unit, (chart.from, chart.to), chart.step_minutes * 60_000, &times, &lines),
            caption,
            table: Box::new(table(&["Step", "Treatment", "Control"], rows)),
        });
    }
    out
}
