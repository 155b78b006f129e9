//! The treatment against control: the difference of two bad-event rates in points, and the
//! gates that judge it against the plan's margin.

use super::{ALPHA_DIFFERENCE, Criterion, GATE_N_STAR, Gate, Judged, Verdict, unjudged};
use crate::domain::receipt::{Method, RULE_VERSION, Receipt};
use crate::domain::sequential::{Difference, rate_difference};
use crate::domain::units::thousands;

/// The difference of two bad-event rates in percentage points, with the sign flipped for a
/// criterion stated as a good rate (success).
pub(super) fn points(t: (u64, u64), c: (u64, u64), good: bool) -> Option<Difference> {
    let d = rate_difference(t.0, t.1, c.0, c.1, ALPHA_DIFFERENCE, GATE_N_STAR)?;
    let scale = if good { -100.0 } else { 100.0 };
    let (a, b) = (d.lo * scale, d.hi * scale);
    Some(Difference { estimate: d.estimate * scale, lo: a.min(b), hi: a.max(b) })
}

/// The treatment's share of bad uploads (`what`: failures, slow uploads) at most `max_points`
/// percentage points above control's: passes when the always-valid interval of the difference
/// lies under the margin, fails when it lies above it (each side at 2.5%, as the other gates).
/// `counts`: (bad, uploads) of the treatment and of control.
pub(super) fn versus_control_gate(
    criterion: Criterion,
    what: &str,
    max_points: f64,
    counts: ((u64, u64), (u64, u64)),
    min: u64,
    judged: Judged,
) -> Gate {
    let (treatment, control) = counts;
    let Some(d) = points(treatment, control, false) else {
        let why =
            if treatment.1 == 0 { "no treatment uploads yet" } else { "no control uploads in this stage yet: nothing to compare with" };
        return unjudged(criterion, max_points, treatment.1, min, why.into());
    };
    let verdict = if d.hi <= max_points {
        Verdict::Pass
    } else if d.lo > max_points {
        Verdict::Fail
    } else {
        Verdict::Inconclusive
    };
    let pts = |v: f64| format!("{v:+.2}").replace('-', "−");
    let judgement = match verdict {
        Verdict::Pass => "all under".to_string(),
        Verdict::Fail => "entirely above".to_string(),
        Verdict::Inconclusive => "still includes".to_string(),
    };
    let explanation = format!(
        "treatment {what} {} points against control's ({} of {} vs {} of {}), 95% anytime interval {} to {}, {judgement} +{max_points:.2}",
        pts(d.estimate),
        thousands(treatment.0),
        thousands(treatment.1),
        thousands(control.0),
        thousands(control.1),
        pts(d.lo),
        pts(d.hi),
    );
    Gate {
        criterion,
        verdict,
        observed: Some(d.estimate),
        interval: Some((d.lo, d.hi)),
        threshold: max_points,
        sample: treatment.1,
        min_sample: min,
        explanation,
        versus_control: Some(d),
        more_uploads: None,
        receipt: Some(Receipt {
            method: Method::Difference,
            rule_version: RULE_VERSION,
            bad: treatment.0,
            events: treatment.1,
            threshold_rate: max_points / 100.0,
            alpha: ALPHA_DIFFERENCE,
            statistic: d.estimate / 100.0,
            boundary: (d.hi - d.lo) / 200.0,
            interval: Some((d.lo / 100.0, d.hi / 100.0)),
            alternative: None,
            control: Some(control),
            from: judged.from,
            to: judged.to,
        }),
    }
}
