//! The charts' geometry, free of leptos: linear scales, ticks at round numbers and round times,
//! and a line's samples turned into SVG path data that lifts the pen where a step has no data.

use crate::domain::units::Timestamp;
use crate::format;

/// A linear map from a data interval onto a drawing interval (either may run backwards, as
/// the y axis does: larger values are drawn higher, at smaller y).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    from: (f64, f64),
    to: (f64, f64),
}

impl Scale {
    /// Maps `from.0` onto `to.0` and `from.1` onto `to.1`.
    pub fn new(from: (f64, f64), to: (f64, f64)) -> Scale {
        Scale { from, to }
    }

    /// Where `v` is drawn; the middle of the drawing interval if the data interval is empty.
    pub fn at(&self, v: f64) -> f64 {
        let ((d0, d1), (r0, r1)) = (self.from, self.to);
        if d1 == d0 { (r0 + r1) / 2.0 } else { r0 + (v - d0) / (d1 - d0) * (r1 - r0) }
    }

    /// The data value drawn at `r`.
    pub fn invert(&self, r: f64) -> f64 {
        Scale::new(self.to, self.from).at(r)
    }
}

/// A value axis: its bounds (the data's, rounded outward to a tick) and its ticks.
#[derive(Clone, Debug, PartialEq)]
pub struct Ticks {
    pub lo: f64,
    pub hi: f64,
    pub step: f64,
    pub values: Vec<f64>,
}

impl Ticks {
    /// A tick's label, with as many decimals as the step needs (`99.5`, `12k`).
    pub fn label(&self, v: f64) -> String {
        number(v, self.step, self.lo.abs().max(self.hi.abs()))
    }

    /// A data value's label, one decimal finer than the ticks'.
    pub fn value_label(&self, v: f64) -> String {
        number(v, self.step / 10.0, self.lo.abs().max(self.hi.abs()))
    }
}

/// At most `max` (at least 2) ticks at round numbers (1, 2 or 5 × 10ⁿ apart) whose span covers
/// every finite value; `None` when there is none. A single value gets an axis around it.
pub fn value_ticks(values: impl IntoIterator<Item = f64>, max: usize) -> Option<Ticks> {
    let (mut lo, mut hi) =
        values.into_iter().filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return None;
    }
    if lo == hi {
        // A flat line sits in the middle of a small span around it (zero: from zero up).
        let pad = if lo == 0.0 { 0.5 } else { lo.abs() * 0.005 };
        (lo, hi) = if lo == 0.0 { (0.0, 1.0) } else { (lo - pad, hi + pad) };
    }
    let max = max.max(2);
    let raw = (hi - lo) / (max - 1) as f64;
    let mut magnitude = 10f64.powf(raw.log10().floor());
    loop {
        for m in [1.0, 2.0, 5.0] {
            let step = m * magnitude;
            let first = (lo / step).floor();
            let last = (hi / step).ceil();
            let count = (last - first) as usize + 1;
            if step >= raw * (1.0 - 1e-9) && count <= max {
                let values = (0..count).map(|i| round_to((first + i as f64) * step, step)).collect();
                return Some(Ticks { lo: round_to(first * step, step), hi: round_to(last * step, step), step, values });
            }
        }
        magnitude *= 10.0;
    }
}

/// `v` without the float noise of `first + i × step` (so 0.30000000000000004 is 0.3).
fn round_to(v: f64, step: f64) -> f64 {
    let scale = 10f64.powi((-step.log10().floor()).max(0.0) as i32 + 2);
    (v * scale).round() / scale
}

/// `v` with the decimals a precision of `step` needs; `k` or `M` when the axis reaches
/// `magnitude` ≥ 10,000 or ≥ 10,000,000, so labels stay narrow.
pub fn number(v: f64, step: f64, magnitude: f64) -> String {
    let (v, step, suffix) = if magnitude >= 1e7 {
        (v / 1e6, step / 1e6, "M")
    } else if magnitude >= 1e4 {
        (v / 1e3, step / 1e3, "k")
    } else {
        (v, step, "")
    };
    let decimals = if step > 0.0 { (-(step * 1.000_001).log10().floor()).max(0.0) as usize } else { 0 };
    let text = format!("{v:.decimals$}");
    // `-0` reads as a mistake.
    let text =
        if text.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') { text.trim_start_matches('-').to_string() } else { text };
    format!("{text}{suffix}")
}

/// Time steps a time axis may use, in minutes: each a divisor of the next larger unit.
const TIME_STEPS: [i64; 13] = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880];

/// At most `max` ticks at round UTC times within `[from, to]`, with their labels: `14:00`, or
/// the day (`22 Nov`) at midnight and when the step is a day or more.
pub fn time_ticks(from: Timestamp, to: Timestamp, max: usize) -> Vec<(Timestamp, String)> {
    let span_min = (to.millis() - from.millis()).max(1) as f64 / 60_000.0;
    let step = TIME_STEPS.into_iter().find(|s| span_min / *s as f64 + 1.0 <= max as f64).unwrap_or(TIME_STEPS[12]) * 60_000;
    let first = from.millis().div_euclid(step) * step + if from.millis().rem_euclid(step) == 0 { 0 } else { step };
    (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t <= to.millis())
        .map(|t| {
            let at = Timestamp(t);
            let label = if t.rem_euclid(86_400_000) == 0 { format::utc_day(at) } else { format::utc_clock(at) };
            (at, label)
        })
        .collect()
}

/// Splits one line's samples (time in ms, value) into runs to draw unbroken: a run ends at a
/// sample without a value and wherever a step is missing (the step had no events), so the
/// line never bridges time without data.
pub fn runs(samples: &[(i64, Option<f64>)], step_ms: i64) -> Vec<Vec<(i64, f64)>> {
    let mut runs: Vec<Vec<(i64, f64)>> = Vec::new();
    let mut previous: Option<i64> = None;
    for &(at, value) in samples {
        let Some(v) = value.filter(|v| v.is_finite()) else {
            previous = None;
            continue;
        };
        match (previous, runs.last_mut()) {
            (Some(p), Some(run)) if at - p <= step_ms => run.push((at, v)),
            _ => runs.push(vec![(at, v)]),
        }
        previous = Some(at);
    }
    runs
}

/// A running total's samples, flat over missing steps: a step without events added nothing, so
/// the total holds until the step before the next sample (draw it with no gap rule).
pub fn carried(samples: &[(i64, f64)], step_ms: i64) -> Vec<(i64, Option<f64>)> {
    let mut out = Vec::with_capacity(samples.len());
    for (i, &(at, v)) in samples.iter().enumerate() {
        if let Some(&(p, pv)) = i.checked_sub(1).map(|j| &samples[j])
            && at - p > step_ms
        {
            out.push((at - step_ms, Some(pv)));
        }
        out.push((at, Some(v)));
    }
    out
}

/// SVG path data through each run of two or more points (`M x,y L x,y …`, one decimal); a
/// run of one point is left to the caller to mark, as a path cannot show it.
pub fn path(runs: &[Vec<(i64, f64)>], x: Scale, y: Scale) -> String {
    let mut d = String::new();
    for run in runs.iter().filter(|r| r.len() > 1) {
        for (i, (t, v)) in run.iter().enumerate() {
            if !d.is_empty() {
                d.push(' ');
            }
            d.push_str(&format!("{}{:.1},{:.1}", if i == 0 { 'M' } else { 'L' }, x.at(*t as f64), y.at(*v)));
        }
    }
    d
}

/// For labels placed left to right at `(x, width)`, the row each goes in: the first row where
/// it does not overlap the label before it; `None` (not drawn) when every row is taken there.
pub fn label_rows(labels: &[(f64, f64)], rows: usize) -> Vec<Option<usize>> {
    let mut ends = vec![f64::NEG_INFINITY; rows];
    labels
        .iter()
        .map(|&(x, width)| {
            let row = ends.iter().position(|end| x >= end + 4.0)?;
            ends[row] = x + width;
            Some(row)
        })
        .collect()
}

/// The index of the time in `times` (ascending) nearest to `t`.
pub fn nearest(times: &[i64], t: i64) -> Option<usize> {
    let i = times.partition_point(|x| *x < t);
    [i.checked_sub(1), (i < times.len()).then_some(i)].into_iter().flatten().min_by_key(|j| (times[*j] - t).abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers_that_cover_the_data() {
        let check = |values: &[f64], max: usize, expected: &[f64]| {
            let ticks = value_ticks(values.iter().copied(), max).expect("some data");
            assert_eq!(ticks.values, expected, "{values:?} in at most {max}");
            assert_eq!((ticks.lo, ticks.hi), (expected[0], expected[expected.len() - 1]));
        };
        check(&[0.0, 87.0], 5, &[0.0, 50.0, 100.0]);
        check(&[1.0, 9.0], 5, &[0.0, 5.0, 10.0]);
        check(&[1.0, 9.0], 6, &[0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        check(&[99.1, 99.9, 99.5], 5, &[99.0, 99.5, 100.0]);
        check(&[0.12, 0.31], 5, &[0.1, 0.2, 0.3, 0.4]);
        check(&[-3.0, 4.0], 5, &[-4.0, -2.0, 0.0, 2.0, 4.0]);
        check(&[1_200.0, 48_000.0], 6, &[0.0, 10_000.0, 20_000.0, 30_000.0, 40_000.0, 50_000.0]);
        // One value, or a flat line: a small span around it, zero from zero up.
        check(&[0.0], 5, &[0.0, 0.5, 1.0]);
        check(&[100.0, 100.0], 5, &[99.5, 100.0, 100.5]);
        // Gaps (NaN) are not data.
        check(&[f64::NAN, 2.0, 3.0], 5, &[2.0, 2.5, 3.0]);
        assert_eq!(value_ticks([f64::NAN], 5), None);
        assert_eq!(value_ticks([], 5), None);
    }

    #[test]
    fn labels_have_the_decimals_the_step_needs() {
        let label = |values: &[f64], v: f64| value_ticks(values.iter().copied(), 5).unwrap().label(v);
        assert_eq!(label(&[99.1, 99.9], 99.5), "99.5");
        assert_eq!(label(&[99.1, 99.9], 100.0), "100.0");
        assert_eq!(label(&[0.0, 87.0], 50.0), "50");
        assert_eq!(label(&[0.12, 0.31], 0.3), "0.3");
        assert_eq!(label(&[0.0, 48_000.0], 20_000.0), "20k");
        assert_eq!(label(&[10_000.0, 11_800.0], 10_500.0), "10.5k", "a step of 500: .5k where needed");
        assert_eq!(label(&[0.0, 2.0e7], 1.0e7), "10M");
        assert_eq!(number(-0.01, 0.1, 1.0), "0.0");
        let ticks = value_ticks([99.1, 99.9], 5).unwrap();
        assert_eq!(ticks.value_label(99.734), "99.73");
    }

    #[test]
    fn scales_map_and_invert_linearly() {
        let y = Scale::new((0.0, 100.0), (180.0, 20.0));
        assert_eq!((y.at(0.0), y.at(100.0), y.at(50.0)), (180.0, 20.0, 100.0));
        assert_eq!(y.invert(60.0), 75.0);
        assert_eq!(Scale::new((5.0, 5.0), (0.0, 10.0)).at(5.0), 5.0, "an empty domain draws in the middle");
    }

    #[test]
    fn time_ticks_fall_on_round_utc_times() {
        let at = |h: i64, m: i64| Timestamp((h * 60 + m) * 60_000 + 1_700_006_400_000); // 2023-11-15 00:00 UTC
        let labels = |ticks: Vec<(Timestamp, String)>| ticks.into_iter().map(|(_, l)| l).collect::<Vec<_>>();
        assert_eq!(labels(time_ticks(at(13, 7), at(14, 7), 6)), ["13:15", "13:30", "13:45", "14:00"]);
        assert_eq!(labels(time_ticks(at(0, 0), at(6, 0), 6)), ["15 Nov", "02:00", "04:00", "06:00"]);
        assert_eq!(labels(time_ticks(at(-10, 0), at(14, 0), 6)), ["18:00", "15 Nov", "06:00", "12:00"]);
        assert_eq!(labels(time_ticks(at(-5 * 24, 30), at(48, 30), 6)), ["11 Nov", "13 Nov", "15 Nov", "17 Nov"]);
        let ticks = time_ticks(at(13, 7), at(14, 7), 6);
        assert!(ticks.iter().all(|(t, _)| *t >= at(13, 7) && *t <= at(14, 7)), "inside the window");
    }

    #[test]
    fn a_line_breaks_where_a_step_has_no_events() {
        let minute = 60_000;
        // Steps 0, 1, 2 present; 3 missing; 4 present; 5 present without a value; 6, 7 present.
        let samples = [
            (0, Some(1.0)),
            (minute, Some(2.0)),
            (2 * minute, Some(3.0)),
            (4 * minute, Some(4.0)),
            (5 * minute, None),
            (6 * minute, Some(5.0)),
            (7 * minute, Some(f64::NAN)),
        ];
        assert_eq!(
            runs(&samples, minute),
            vec![vec![(0, 1.0), (minute, 2.0), (2 * minute, 3.0)], vec![(4 * minute, 4.0)], vec![(6 * minute, 5.0)]]
        );
        // Coarser steps: the same gap rule at the window's step.
        assert_eq!(runs(&[(0, Some(1.0)), (5 * minute, Some(2.0))], 5 * minute).len(), 1);
        assert!(runs(&[], minute).is_empty());
    }

    #[test]
    fn paths_lift_the_pen_between_runs_and_leave_lone_points_out() {
        let x = Scale::new((0.0, 10.0), (0.0, 100.0));
        let y = Scale::new((0.0, 1.0), (50.0, 0.0));
        let runs = vec![vec![(0, 0.0), (1, 1.0)], vec![(5, 0.5)], vec![(8, 0.2), (9, 0.4), (10, 0.0)]];
        assert_eq!(path(&runs, x, y), "M0.0,50.0 L10.0,0.0 M80.0,40.0 L90.0,30.0 L100.0,50.0");
        assert_eq!(path(&[vec![(5, 0.5)]], x, y), "");
    }

    #[test]
    fn a_running_total_stays_flat_over_steps_without_events() {
        let minute = 60_000;
        let total = [(0, 3.0), (minute, 5.0), (4 * minute, 9.0)];
        assert_eq!(carried(&total, minute), vec![(0, Some(3.0)), (minute, Some(5.0)), (3 * minute, Some(5.0)), (4 * minute, Some(9.0))]);
        assert_eq!(runs(&carried(&total, minute), i64::MAX).len(), 1, "drawn as one unbroken line");
    }

    #[test]
    fn labels_that_would_overlap_go_to_the_next_row() {
        assert_eq!(label_rows(&[(0.0, 30.0), (20.0, 30.0), (40.0, 30.0), (100.0, 30.0)], 2), [Some(0), Some(1), Some(0), Some(0)]);
        assert_eq!(label_rows(&[(0.0, 30.0), (1.0, 30.0), (2.0, 30.0)], 2), [Some(0), Some(1), None], "every row taken: no label");
    }

    #[test]
    fn the_nearest_time_is_found_on_either_side() {
        let times = [0, 10, 20, 30];
        assert_eq!([-5, 4, 6, 15, 29, 99].map(|t| nearest(&times, t)), [Some(0), Some(0), Some(1), Some(1), Some(3), Some(3)]);
        assert_eq!(nearest(&[], 3), None);
    }
}
