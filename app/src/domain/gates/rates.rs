//! A rate judged by its confidence sequence, and the uploads still needed before it decides
//! (with how long they take at the last hour's pace); the fixed-sample Wilson interval beside it.

use super::{ALPHA_GATE, GATE_N_STAR, Gate, Verdict};
use crate::domain::sequential::{RateSequence, Side};
use crate::domain::units::thousands;

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_964;

/// 95% Wilson score interval for `k` of `n`, in percent: the fixed-sample interval, kept to
/// show in tests and the calibration what watching it continuously costs.
pub fn wilson(k: u64, n: u64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let (n, p) = (n as f64, k as f64 / n as f64);
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 * ((p * (1.0 - p) + z2 / (4.0 * n)) / n).sqrt() / (1.0 + z2 / n);
    Some((((centre - half) * 100.0).max(0.0), ((centre + half) * 100.0).min(100.0)))
}

/// How many uploads in all a sequence needs before it decides, if the rate stays at `rate`:
/// `None` when it would never decide (the rate sits on the threshold) or needs over 10 million.
pub fn uploads_to_decide(sequence: &RateSequence, rate: f64, p0: f64) -> Option<u64> {
    if (rate - p0).abs() < 1e-12 {
        return None;
    }
    // Whole bad counts, rounded against the verdict the rate heads for.
    let decided = |n: u64| {
        let k = if rate > p0 { (rate * n as f64).floor() } else { (rate * n as f64).ceil() };
        sequence.side(k as u64, n, p0) != Side::Unknown
    };
    let mut hi = 16;
    while !decided(hi) {
        hi *= 2;
        if hi > 10_000_000 {
            return None;
        }
    }
    let mut lo = hi / 2;
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if decided(mid) { hi = mid } else { lo = mid }
    }
    Some(hi)
}

/// The sequence a gate judges a bad rate with, against the allowed fraction `p0`.
pub fn sequence(p0: f64) -> RateSequence {
    RateSequence::tuned(p0, ALPHA_GATE, GATE_N_STAR)
}

/// A rate criterion judged by its sequence: `bad` of `n` against the fraction `p0` of bad
/// uploads allowed. Returns the verdict and the interval of the bad rate (fractions).
pub(super) fn judge_rate(bad: u64, n: u64, p0: f64) -> (Verdict, RateSequence) {
    let sequence = sequence(p0);
    let verdict = match sequence.side(bad, n, p0) {
        Side::Below => Verdict::Pass,
        Side::Above => Verdict::Fail,
        Side::Unknown => Verdict::Inconclusive,
    };
    (verdict, sequence)
}

/// "≈ 2,300 more uploads at the observed rate", or why none will do.
/// Also the number, when there is one, for [`pace`].
pub(super) fn still_needed(sequence: &RateSequence, bad: u64, n: u64, p0: f64) -> (String, Option<u64>) {
    let rate = bad as f64 / n as f64;
    match uploads_to_decide(sequence, rate, p0) {
        Some(total) if total > n => (format!("≈ {} more uploads at the observed rate", thousands(total - n)), Some(total - n)),
        Some(_) => ("a few more uploads at the observed rate".into(), Some(1)),
        None => ("no verdict in sight at the observed rate: it sits on the threshold".into(), None),
    }
}

/// Adds to each inconclusive gate how long its remaining uploads take at `per_hour` treatment
/// uploads an hour (the last hour's pace): "… ≈ 2,300 more uploads at the observed rate, ≈ 19 h
/// at the last hour's pace".
pub fn pace(gates: &mut [Gate], per_hour: f64) {
    for gate in gates.iter_mut() {
        let Some(more) = gate.more_uploads else { continue };
        if per_hour <= 0.0 {
            gate.explanation.push_str(", and no treatment uploads in the last hour");
            continue;
        }
        let when = hours_words(more as f64 / per_hour);
        gate.explanation.push_str(&format!(", ≈ {when} at the last hour's pace ({} an hour)", thousands(per_hour.round() as u64)));
    }
}

/// "40 min", "19 h", "22 days": a wait in the unit a person plans with.
pub fn hours_words(hours: f64) -> String {
    if hours < 1.0 {
        format!("{:.0} min", (hours * 60.0).ceil().max(1.0))
    } else if hours < 48.0 {
        format!("{hours:.0} h")
    } else {
        format!("{:.0} days", hours / 24.0)
    }
}
