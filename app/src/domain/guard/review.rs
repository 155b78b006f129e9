//! The reviews beside the rollback rates: a rising complaint trend, a sample-ratio mismatch that
//! holds, and what a tick decides while the metric source cannot vouch for its figures.

use super::{Assessment, Breach, Condition, Decision, Sustained};
use crate::domain::gates::SampleRatio;
use crate::domain::plan::Guardrails;
use crate::domain::units::{Span, Timestamp};
use serde::{Deserialize, Serialize};

/// How long each of the two periods compared for the complaint trend lasts.
pub const COMPLAINT_PERIOD: Span = Span::from_secs(3600);
/// Fewer complaints than this in the latest period never count as a rising trend.
pub const COMPLAINT_MIN: u64 = 3;
/// The latest period's rate must exceed the one before it by this factor.
pub const COMPLAINT_RISE: f64 = 1.5;

/// User complaints in the latest [`COMPLAINT_PERIOD`] and the one before it, with the uploads
/// (both arms) in each, so a busier hour is not mistaken for a worse one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplaintTrend {
    pub recent: u64,
    pub recent_uploads: u64,
    pub earlier: u64,
    pub earlier_uploads: u64,
}

impl ComplaintTrend {
    /// Complaints per 1,000 uploads (per period when there were no uploads).
    fn rate(complaints: u64, uploads: u64) -> f64 {
        if uploads == 0 { complaints as f64 } else { complaints as f64 * 1000.0 / uploads as f64 }
    }
}

/// "Complaint rate rising" (a manual-review condition): at least [`COMPLAINT_MIN`] complaints in
/// the latest hour, at a rate per 1,000 uploads more than [`COMPLAINT_RISE`] times the hour
/// before's. Returns the review breach, or `None`.
pub fn complaints_rising(rails: &Guardrails, trend: &ComplaintTrend) -> Option<Breach> {
    if !rails.manual_review.on_complaint_rate_rising || trend.recent < COMPLAINT_MIN {
        return None;
    }
    // With no uploads in one of the periods, rates per upload mean nothing: compare counts.
    let per_upload = trend.recent_uploads > 0 && trend.earlier_uploads > 0;
    let (recent, earlier) = if per_upload {
        (ComplaintTrend::rate(trend.recent, trend.recent_uploads), ComplaintTrend::rate(trend.earlier, trend.earlier_uploads))
    } else {
        (trend.recent as f64, trend.earlier as f64)
    };
    if recent <= earlier * COMPLAINT_RISE {
        return None;
    }
    let unit = if per_upload { " per 1,000 uploads" } else { "" };
    let message = format!(
        "complaints rising: {} in the last hour ({recent:.2}{unit}) against {} in the hour before ({earlier:.2}{unit})",
        trend.recent, trend.earlier
    );
    Some(Breach {
        rule: "complaint_rate_rising".into(),
        observed: recent,
        threshold: earlier * COMPLAINT_RISE,
        sample: trend.recent_uploads,
        window: COMPLAINT_PERIOD,
        message,
        receipt: None,
    })
}

/// How long a sample-ratio mismatch must hold before it asks for review. The arms' uploads
/// need not arrive together — one arm's batch, or collector, ahead of the other's — and at a
/// stage's start that alone makes a mismatch that is gone a minute later; a broken assignment
/// or a lost arm stays. (The gate row shows the mismatch at once, and blocks Advance.)
pub const SAMPLE_RATIO_FOR: Span = Span::from_secs(10 * 60);

/// A sample-ratio mismatch (see [`crate::domain::gates::sample_ratio`] for when it is checked): whether
/// it holds now (the condition to time), and the review it asks for once it has held for
/// [`SAMPLE_RATIO_FOR`] — the arms' uploads are not split as the flag serves them, so their
/// comparison cannot be trusted until someone finds out why.
pub fn sample_ratio_mismatch(check: Option<&SampleRatio>, sustained: &[Sustained], now: Timestamp) -> (Option<Condition>, Option<Breach>) {
    let Some(check) = check.filter(|c| c.mismatch()) else { return (None, None) };
    let since = sustained.iter().find(|s| s.condition == Condition::SampleRatio).map(|s| s.since);
    let held = since.map(|since| now.since(since));
    let breach = held.filter(|held| *held >= SAMPLE_RATIO_FOR).map(|held| Breach {
        rule: Condition::SampleRatio.review_rule().into(),
        observed: check.observed_pct().unwrap_or(0.0),
        threshold: check.planned_pct,
        sample: check.treatment + check.control,
        window: held,
        message: format!(
            "sample ratio mismatch for {held}: {} ({}); the arms cannot be compared until the cause is found",
            check.counts(),
            check.p_text()
        ),
        receipt: Some(check.receipt(now)),
    });
    (Some(Condition::SampleRatio), breach)
}

/// What a tick decides while the metric source cannot vouch for its figures (`problem`): no
/// decision on them except a critical error they do report (the plan rolls those back at once),
/// the sustained timers neither started nor ended, and a review once the source has been
/// unusable for `alert_after`.
pub fn unvouched(mut assessment: Assessment, problem: &str, alert_after: Span, sustained: &[Sustained], now: Timestamp) -> Assessment {
    assessment.decisions.retain(|d| matches!(d, Decision::RollBack(b) if b.rule == "critical_error"));
    assessment.holding = sustained.iter().map(|s| s.condition).collect();
    if !assessment.holding.contains(&Condition::SourceUnusable) {
        assessment.holding.push(Condition::SourceUnusable);
    }
    let since = sustained.iter().find(|s| s.condition == Condition::SourceUnusable).map(|s| s.since);
    if let Some(held) = since.map(|since| now.since(since)).filter(|held| *held >= alert_after) {
        assessment.decisions.push(Decision::Review(Breach {
            rule: Condition::SourceUnusable.review_rule().into(),
            observed: held.secs() as f64,
            threshold: alert_after.secs() as f64,
            sample: 0,
            window: held,
            message: format!("the metric source has been unusable for {held}: {problem}; nothing is judged until it answers"),
            receipt: None,
        }));
    }
    assessment.note = Some(format!("not judged: {problem}"));
    assessment
}
