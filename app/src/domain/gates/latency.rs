//! The p95 latency gate: the share of uploads slower than the limit, judged by its sequence.

use super::rates::{judge_rate, still_needed};
use super::versus_control::points;
use super::{ALPHA_GATE, Criterion, Gate, Judged, LATENCY_TAIL, Reference, Verdict, pct, unjudged};
use crate::domain::receipt::Receipt;
use crate::domain::stats::Stats;

/// p95 latency ≤ `limit`% of the reference ⇔ at most 5% of uploads slower than that: the
/// share of slow uploads judged by its sequence. The sketch's bins blur the limit by 1%: a
/// pass counts every upload that may be slower, a fail only those certainly slower.
pub(super) fn latency_gate(limit: f64, treatment: &Stats, control: &Stats, reference: &Reference, min: u64, judged: Judged) -> Gate {
    let n = treatment.count();
    let (Some(base), Some(p95)) = (reference.latency_p95_ms, treatment.latency.quantile(0.95)) else {
        let why = match reference.latency_p95_ms {
            None => "no baseline yet: record one, or let control traffic flow".into(),
            Some(_) => format!("no treatment uploads yet (needs p95 ≤ {limit:.0}% of baseline)"),
        };
        return unjudged(Criterion::LatencyP95, limit, n, min, why);
    };
    if base <= 0.0 {
        return unjudged(Criterion::LatencyP95, limit, n, min, "the baseline's p95 is 0 ms: record a baseline with traffic".into());
    }
    let limit_ms = base * limit / 100.0;
    let (certainly, possibly) = treatment.latency.count_above(limit_ms);
    let (pass, sequence) = judge_rate(possibly, n, LATENCY_TAIL);
    let (fail, _) = judge_rate(certainly, n, LATENCY_TAIL);
    let verdict = if pass == Verdict::Pass {
        Verdict::Pass
    } else if fail == Verdict::Fail {
        Verdict::Fail
    } else {
        Verdict::Inconclusive
    };
    let (lo, hi) = (sequence.interval(certainly, n).0, sequence.interval(possibly, n).1);
    let ratio = p95 / base * 100.0;
    let mut explanation = format!(
        "p95 {p95:.0} ms is {ratio:.0}% of the {} ({base:.0} ms); {} of uploads slower than {limit_ms:.0} ms ({:.1}% anytime interval {}–{}) vs ≤ 5%",
        reference.source,
        pct(possibly as f64 * 100.0 / n as f64),
        (1.0 - ALPHA_GATE) * 100.0,
        pct(lo * 100.0),
        pct(hi * 100.0),
    );
    let mut more_uploads = None;
    if verdict == Verdict::Inconclusive {
        let (needed, more) = still_needed(&sequence, possibly, n, LATENCY_TAIL);
        explanation.push_str(&format!(": {needed}"));
        more_uploads = more;
    }
    let versus_control = points((possibly, n), (control.latency.count_above(limit_ms).1, control.count()), false);
    // A fail rests on the uploads certainly slower; anything else on those possibly slower.
    let slow = if verdict == Verdict::Fail { certainly } else { possibly };
    Gate {
        criterion: Criterion::LatencyP95,
        verdict,
        observed: Some(ratio),
        interval: None,
        threshold: limit,
        sample: n,
        min_sample: min,
        explanation,
        versus_control,
        more_uploads,
        receipt: Some(Receipt::of_sequence(&sequence, slow, n, LATENCY_TAIL, judged.from, judged.to)),
    }
}
