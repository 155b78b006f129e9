//! The memory gate: the confidence sequence of the stage's mean memory against the plan's
//! limit, as a share of the baseline's.

use super::{ALPHA_GATE, Criterion, GATE_N_STAR, Gate, Judged, Reference, Verdict, unjudged};
use crate::domain::receipt::Receipt;
use crate::domain::sequential::MeanSequence;
use crate::domain::stats::Stats;

/// The memory gate: the confidence sequence of the stage's mean, judged once the stage's minimum
/// sample is in (the sequence is asymptotic).
pub(super) fn memory_gate(treatment: &Stats, reference: &Reference, memory_limit_pct: f64, min: u64, judged: Judged) -> Gate {
    let n = treatment.count();
    let enough = n >= min;
    let short = |what: &str| format!("inconclusive — {n} of {min} uploads so far; {what} cannot be judged yet");
    let memory_sequence = MeanSequence::tuned(ALPHA_GATE, GATE_N_STAR);
    match (reference.memory_mean_mb, treatment.memory_interval(&memory_sequence)) {
        (Some(base), Some(interval)) if base > 0.0 => {
            let line = base * memory_limit_pct / 100.0;
            let of_base = |mb: f64| mb / base * 100.0;
            let verdict = match (enough, interval.hi <= line, interval.lo > line) {
                (false, _, _) => Verdict::Inconclusive,
                (true, true, _) => Verdict::Pass,
                (true, _, true) => Verdict::Fail,
                _ => Verdict::Inconclusive,
            };
            let interval_words = format!(
                "{:.0}% anytime interval {:.0}–{:.0}%",
                (1.0 - 2.0 * ALPHA_GATE) * 100.0,
                of_base(interval.lo),
                of_base(interval.hi)
            );
            let mean = format!("mean {:.0} MB is {:.0}% of the {} ({base:.0} MB)", interval.mean, of_base(interval.mean), reference.source);
            let explanation = match verdict {
                _ if !enough => short("memory"),
                Verdict::Pass => format!("{mean}, {interval_words}, all ≤ {memory_limit_pct:.0}%"),
                Verdict::Fail => format!("{mean}, {interval_words}, entirely past {memory_limit_pct:.0}%"),
                Verdict::Inconclusive => format!("{mean} but the {interval_words} still includes {memory_limit_pct:.0}%"),
            };
            Gate {
                criterion: Criterion::Memory,
                verdict,
                observed: Some(of_base(interval.mean)),
                interval: Some((of_base(interval.lo), of_base(interval.hi))),
                threshold: memory_limit_pct,
                sample: n,
                min_sample: min,
                explanation,
                versus_control: None,
                more_uploads: None,
                receipt: Some(Receipt::of_mean(&memory_sequence, interval, n, line, judged.from, judged.to)),
            }
        }
        _ => unjudged(Criterion::Memory, memory_limit_pct, n, min, "no baseline or fewer than two treatment uploads yet".into()),
    }
}
