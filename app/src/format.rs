//! Numbers and times formatted for people. Pure functions, so the server render and the
//! hydrated page print the same text.

use crate::domain::units::{Span, Timestamp};

/// `2026-11-22 14:03 UTC`.
pub fn utc_minute(t: Timestamp) -> String {
    let (y, m, d, secs) = utc_parts(t);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", secs / 3600, secs % 3600 / 60)
}

/// (year, month, day, seconds into the day) of a moment, in UTC.
fn utc_parts(t: Timestamp) -> (i64, u32, u32, i64) {
    let secs = t.millis().div_euclid(1000);
    let (y, m, d) = crate::domain::units::civil_from_days(secs.div_euclid(86_400));
    (y, m, d, secs.rem_euclid(86_400))
}

/// `14:03`: the time of day in UTC, for a chart's time axis.
pub fn utc_clock(t: Timestamp) -> String {
    let (.., secs) = utc_parts(t);
    format!("{:02}:{:02}", secs / 3600, secs % 3600 / 60)
}

/// `22 Nov`: the day in UTC, for a chart's time axis.
pub fn utc_day(t: Timestamp) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (_, m, d, _) = utc_parts(t);
    format!("{d} {}", MONTHS[m as usize - 1])
}

/// A baseline's numbers in a sentence: `300 uploads, success 99.67%, p95 812 ms, memory 38 MB
/// on average.`
pub fn baseline_numbers(b: &crate::domain::stats::Summary) -> String {
    format!(
        "{} uploads, success {}, p95 {}, memory {} on average.",
        b.count,
        b.success_rate.map_or("—".into(), |v| format!("{v:.2}%")),
        b.latency_p95_ms.map_or("—".into(), |v| format!("{v:.0} ms")),
        b.memory_mean_mb.map_or("—".into(), |v| format!("{v:.0} MB"))
    )
}

/// `2026-11-22T14:03:00Z`, for `<time datetime>`.
pub fn iso(t: Timestamp) -> String {
    let (y, m, d, secs) = utc_parts(t);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// A duration the way a person says it, two largest units: `2 d 4 h`, `3 h 10 m`, `45 s`.
pub fn duration(span: Span) -> String {
    let s = span.secs();
    let parts = [(s / 86_400, "d"), (s % 86_400 / 3600, "h"), (s % 3600 / 60, "m"), (s % 60, "s")];
    let shown: Vec<String> =
        parts.iter().skip_while(|(n, _)| *n == 0).take(2).filter(|(n, _)| *n > 0).map(|(n, unit)| format!("{n} {unit}")).collect();
    if shown.is_empty() { "0 s".to_string() } else { shown.join(" ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_minutes_match_known_dates() {
        assert_eq!(utc_minute(Timestamp(0)), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(Timestamp(1_761_696_000_000)), "2025-10-29 00:00 UTC");
        assert_eq!(utc_minute(Timestamp(951_782_400_000 + 3_723_000)), "2000-02-29 01:02 UTC");
        assert_eq!(utc_clock(Timestamp(951_782_400_000 + 3_723_000)), "01:02");
        assert_eq!(utc_day(Timestamp(951_782_400_000 + 3_723_000)), "29 Feb");
        assert_eq!(utc_day(Timestamp(1_761_696_000_000 - 1)), "28 Oct");
    }

    #[test]
    fn an_impact_change_shows_whole_percents_and_no_negative_zero() {
        use crate::domain::impact::{Measure, Outcome};
        let change = |reduction: f64, interval: (Option<f64>, Option<f64>)| {
            let m = Measure {
                what: "Memory per upload".into(),
                reference: Some(10.0),
                treatment: Some(1.0),
                unit: "MB".into(),
                reduction_pct: Some(reduction),
                interval,
                expected: (80.0, 90.0),
                outcome: Outcome::Met,
            };
            impact_change(&m)
        };
        assert_eq!(change(88.2, (Some(86.6), Some(89.7))), "−88% (−87 to −90)");
        assert_eq!(change(0.2, (Some(-0.4), Some(0.3))), "+0% (0 to 0)");
        assert_eq!(change(-0.3, (None, Some(-0.2))), "+0% (… to 0)");
        assert_eq!(change(-12.6, (Some(-20.0), None)), "+13% (20 to …)");
    }

    #[test]
    fn durations_show_the_two_largest_units() {
        let check = |secs: i64, text: &str| assert_eq!(duration(Span::from_secs(secs)), text, "{secs}");
        check(0, "0 s");
        check(45, "45 s");
        check(3 * 3600 + 600, "3 h 10 m");
        check(2 * 86_400 + 4 * 3600 + 59, "2 d 4 h");
        check(86_400 + 30, "1 d");
        check(7 * 86_400, "7 d");
    }
}

/// The text with its first letter in upper case: "advance to 10%" → "Advance to 10%".
pub fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

#[cfg(test)]
mod count_tests {
    #[test]
    fn capitalized_raises_the_first_letter_only() {
        assert_eq!(super::capitalized("advance to 10% rollout"), "Advance to 10% rollout");
        assert_eq!(super::capitalized(""), "");
    }
}

/// A gate's value in its criterion's unit: `99.42%`, `87% of baseline`, `+0.12 pts`.
pub fn gate_value(criterion: crate::domain::gates::Criterion, v: f64) -> String {
    use crate::domain::gates::Criterion;
    match criterion {
        Criterion::MinEvents => format!("{v:.0}"),
        Criterion::SuccessRate | Criterion::ErrorRate | Criterion::SampleRatio => format!("{v:.2}%"),
        Criterion::LatencyP95 | Criterion::Memory => format!("{v:.0}% of baseline"),
        Criterion::FailuresVsControl | Criterion::LatencyVsControl => format!("{v:+.2} pts").replace('-', "−"),
        Criterion::Matrix => format!("{v:.0} cells"),
        Criterion::Performance => format!("{v:.0} met"),
    }
}

/// What a gate asks for: `≥ 99.50%`, `≤ 120% of baseline`, `10% treatment`.
pub fn gate_threshold(gate: &crate::domain::gates::Gate) -> String {
    use crate::domain::gates::Criterion;
    let v = gate_value(gate.criterion, gate.threshold);
    match gate.criterion {
        Criterion::SuccessRate | Criterion::MinEvents => format!("≥ {v}"),
        Criterion::SampleRatio => format!("{}% treatment", gate.threshold),
        Criterion::Matrix | Criterion::Performance => format!("all {v}"),
        _ => format!("≤ {v}"),
    }
}

/// A gate's observed value, or a dash.
pub fn gate_point(gate: &crate::domain::gates::Gate) -> String {
    gate.observed.map_or_else(|| "—".to_string(), |o| gate_value(gate.criterion, o))
}

/// A gate's anytime interval, `99.10% – 99.70%`, when it has one.
pub fn gate_interval(gate: &crate::domain::gates::Gate) -> Option<String> {
    gate.interval.map(|(lo, hi)| format!("{} – {}", gate_value(gate.criterion, lo), gate_value(gate.criterion, hi)))
}

/// "+0.12 pts (−0.20 to +0.44)", or a dash where there is no control arm to compare with.
pub fn versus_control(gate: &crate::domain::gates::Gate) -> String {
    gate.versus_control
        .map_or_else(|| "—".to_string(), |d| format!("{:+.2} pts ({:+.2} to {:+.2})", d.estimate, d.lo, d.hi).replace('-', "−"))
}

/// An impact figure in its unit: `12.40%`, `350 ms`, or a dash.
pub fn impact_figure(value: Option<f64>, unit: &str) -> String {
    match (value, unit) {
        (None, _) => "—".into(),
        (Some(v), "%") => format!("{v:.2}%"),
        (Some(v), unit) => format!("{v:.0} {unit}"),
    }
}

/// "−85% (−83 to −87)": a reduction shown as the change it is; an open end as "…".
pub fn impact_change(m: &crate::domain::impact::Measure) -> String {
    let Some(observed) = m.reduction_pct else { return "—".into() };
    // Whole percents, and a change that rounds to none is 0 whichever side it fell on (not "−0").
    let whole = |v: f64| -v.round() + 0.0;
    let end = |v: Option<f64>| v.map_or_else(|| "…".to_string(), |v| format!("{:.0}", whole(v)));
    format!("{:+.0}% ({} to {})", whole(observed), end(m.interval.0), end(m.interval.1)).replace('-', "−")
}

/// What the plan expects of a measure: `−80–90%`, `−95%`, `×5–10`.
pub fn impact_expected(m: &crate::domain::impact::Measure) -> String {
    let (near, far) = m.expected;
    if m.unit == "×" {
        format!("×{near:.0}–{far:.0}")
    } else if (near - far).abs() < 1e-9 {
        format!("−{near:.0}%")
    } else {
        format!("−{near:.0}–{far:.0}%")
    }
}

/// A matrix cell's evidence: `99.2% (98.1–99.7) · p95 812 ms`, or "no uploads yet".
pub fn matrix_cell_detail(cell: &crate::domain::matrix::Cell) -> String {
    match (cell.success_pct(), cell.success_interval) {
        (Some(success), Some((lo, hi))) => {
            let p95 = cell.p95_ms.map_or_else(String::new, |p| format!(" · p95 {p:.0} ms"));
            format!("{success:.1}% ({lo:.1}–{hi:.1}){p95}")
        }
        _ => "no uploads yet".to_string(),
    }
}
