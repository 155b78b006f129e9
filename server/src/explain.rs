//! `rampart explain ROLLOUT ENTRY`: recomputes a decision from the data Rampart stored, and
//! shows it beside the receipt written when it was made: an automatic rollback (the guard's
//! audit entry names the stage, the time range it judged and the reference it compared with;
//! the recomputation runs `app::domain::guard::assess` at the decision's moment), or the gates
//! a command was judged with (an advance, an approval: each rate gate's receipt holds its time
//! range, and the entry the reference; `app::domain::gates::evaluate` runs again).

use crate::metrics::Metrics;
use crate::store::Store;
use app::domain::gates::{self, Criterion, Gate, Judged, Reference, SampleRatio};
use app::domain::guard::{self, Breach, Decision};
use app::domain::matrix::MatrixView;
use app::domain::receipt::{Method, RULE_VERSION, Receipt};
use app::domain::rollout::Rollout;
use app::domain::source::Problem;
use app::domain::units::{Span, StageIndex, Timestamp};
use serde::Deserialize;

/// What the guard stored with an automatic rollback.
#[derive(Deserialize)]
struct Stored {
    breaches: Vec<Breach>,
    reference: Reference,
    stage: u32,
    window: Range,
}

#[derive(Deserialize)]
struct Range {
    from: Timestamp,
    to: Timestamp,
}

/// The report: one paragraph per decision, and whether every one came out the same.
pub struct Explanation {
    pub text: String,
    pub same: bool,
}

fn describe(r: &Receipt) -> String {
    let method = match r.method {
        Method::Sequence => "confidence sequence over the stage",
        Method::ChangeDetector => "change detector",
        Method::Count => "count",
        Method::Estimate => "point estimate",
        Method::MeanSequence => "confidence sequence of the mean over the stage",
        Method::SampleRatio | Method::UnitRatio => "sequential sample-ratio test",
        Method::Difference => "confidence sequence of treatment − control",
    };
    match r.method {
        Method::SampleRatio | Method::UnitRatio => {
            let counted = if r.method == Method::UnitRatio { "distinct units" } else { "uploads" };
            return format!(
                "{method}: {} treatment of {} {counted} against a planned {:.2}%, log Bayes factor {:.3} vs boundary {:.3} (α {}%)",
                r.bad,
                r.events,
                r.threshold_rate * 100.0,
                r.statistic,
                r.boundary,
                r.alpha * 100.0
            );
        }
        Method::Difference => {
            let (control_bad, control_events) = r.control.unwrap_or((0, 0));
            let (lo, hi) = r.interval.unwrap_or((f64::NAN, f64::NAN));
            return format!(
                "{method}: {} bad of {} treatment uploads vs {control_bad} of {control_events} control, {:+.3} points (interval {:+.3} to {:+.3}, α {:.2}% two-sided) against a margin of {:.2} points",
                r.bad,
                r.events,
                r.statistic * 100.0,
                lo * 100.0,
                hi * 100.0,
                r.alpha * 100.0,
                r.threshold_rate * 100.0
            );
        }
        Method::MeanSequence => {
            let (lo, hi) = r.interval.unwrap_or((f64::NAN, f64::NAN));
            return format!(
                "{method}: {:.2} MB over {} uploads, interval {lo:.2}–{hi:.2} MB (half-width {:.3}, α {:.2}%) against {:.2} MB",
                r.statistic,
                r.events,
                r.boundary,
                r.alpha * 100.0,
                r.threshold_rate
            );
        }
        _ => {}
    }
    let mut text = format!(
        "{method}: {} bad of {} uploads against {:.2}%, log evidence {:.3} vs boundary {:.3} (α {:.2}%)",
        r.bad,
        r.events,
        r.threshold_rate * 100.0,
        r.statistic,
        r.boundary,
        r.alpha * 100.0
    );
    if let Some((lo, hi)) = r.interval {
        text.push_str(&format!(", interval {:.2}–{:.2}%", lo * 100.0, hi * 100.0));
    }
    if let Some(q) = r.alternative {
        text.push_str(&format!(", against a raised rate of {:.1}%", q * 100.0));
    }
    text
}

fn same(a: &Receipt, b: &Receipt) -> bool {
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(1.0);
    a.method == b.method
        && a.bad == b.bad
        && a.events == b.events
        && close(a.threshold_rate, b.threshold_rate)
        && close(a.statistic, b.statistic)
        && close(a.boundary, b.boundary)
        && a.control == b.control
        && a.from == b.from
}

/// How a stored receipt compares with the one recomputed now, in words; false when they differ.
fn compare(stored: &Receipt, again: Option<&Receipt>, text: &mut String) -> bool {
    if stored.rule_version != RULE_VERSION {
        text.push_str(&format!("  made by rule version {}; recomputed with version {RULE_VERSION}\n", stored.rule_version));
    }
    text.push_str(&format!("  stored:     {}\n", describe(stored)));
    let Some(again) = again else {
        text.push_str("  recomputed: nothing from the data stored now: DIFFERENT from the stored receipt\n");
        return false;
    };
    text.push_str(&format!("  recomputed: {}\n", describe(again)));
    if same(stored, again) {
        text.push_str("  the same decision from the stored data\n");
        true
    } else if again.method == stored.method && again.events > stored.events {
        // Uploads of the judged minutes that arrived after the decision: the rule still decides
        // the same on everything stored now.
        text.push_str(&format!(
            "  the same decision; the judged minutes have gained {} uploads since it was made\n",
            again.events - stored.events
        ));
        true
    } else {
        text.push_str("  DIFFERENT from the stored receipt\n");
        false
    }
}

/// Recomputes the decision recorded as audit entry `entry_id` of `rollout_id`: an automatic
/// rollback, or the gates a command was judged with.
pub async fn explain(store: &Store, metrics: &Metrics, rollout_id: i64, entry_id: i64) -> anyhow::Result<Explanation> {
    let (entry, evidence) = store.audit_evidence(rollout_id, entry_id).await?;
    let mut text = format!("audit entry {entry_id}: {} (by {})\n", entry.summary, entry.actor);
    if entry.action == "auto_roll_back" {
        let stored: Stored = serde_json::from_value(evidence)
            .map_err(|e| anyhow::anyhow!("audit entry {entry_id} was written before decisions carried receipts ({e})"))?;
        let same = explain_rollback(store, metrics, rollout_id, stored, &mut text).await?;
        return Ok(Explanation { text, same });
    }
    let judged: Option<Verdicts> = serde_json::from_value(evidence).ok();
    match judged {
        Some(verdicts) if verdicts.gates.iter().any(|g| g.receipt.is_some()) => {
            let same = explain_gates(store, metrics, rollout_id, verdicts, &mut text).await?;
            Ok(Explanation { text, same })
        }
        _ => anyhow::bail!(
            "audit entry {entry_id} is `{}` by {}: it carries no receipts to recompute (automatic rollbacks and the gates a command was judged with do)",
            entry.action,
            entry.actor
        ),
    }
}

async fn explain_rollback(store: &Store, metrics: &Metrics, rollout_id: i64, stored: Stored, text: &mut String) -> anyhow::Result<bool> {
    let rollout = store.rollout(rollout_id).await?;
    let soak = rollout.plan.stage(StageIndex(stored.stage)).map_or(Span::ZERO, |s| s.soak);
    // The guard read every minute up to one past the decision; so does the recomputation.
    let until = Timestamp(stored.window.to.millis() + 60_000);
    let stage = StageIndex(stored.stage);
    let evidence = metrics.stage_evidence(&rollout.plan, rollout_id, stored.stage as i32, stored.window.from, until).await?;
    let rows = &evidence.rows;
    let minutes = guard::StageEvidence { minutes: &rows.treatment, soak };
    let mut assessment = guard::assess(&rollout.plan.guardrails, minutes, &stored.reference, &[], stored.window.to);
    // Decided as the guard decides on figures its source cannot vouch for: only a critical error.
    if let (Some(problem), Some(source)) = (&evidence.problem, rollout.plan.source_for(stage)) {
        say_unvouched(problem, text);
        assessment = guard::unvouched(assessment, &problem.to_string(), source.alert_after, &[], stored.window.to);
    }
    let recomputed: Vec<&Breach> =
        assessment.decisions.iter().filter_map(|d| if let Decision::RollBack(b) = d { Some(b) } else { None }).collect();

    let mut all_same = true;
    for breach in &stored.breaches {
        text.push_str(&format!("\n{}\n", breach.rule));
        let Some(receipt) = &breach.receipt else {
            text.push_str("  no receipt stored with this decision\n");
            all_same = false;
            continue;
        };
        let again = recomputed.iter().find(|b| b.rule == breach.rule).and_then(|b| b.receipt.as_ref());
        all_same &= compare(receipt, again, text);
    }
    Ok(all_same)
}

/// What a command's audit entry stored about the gates: the state it left, the gates as judged
/// and their reference.
#[derive(Deserialize)]
struct Verdicts {
    from: Rollout,
    gates: Vec<Gate>,
    #[serde(default)]
    reference: Option<Reference>,
}

async fn explain_gates(store: &Store, metrics: &Metrics, rollout_id: i64, stored: Verdicts, text: &mut String) -> anyhow::Result<bool> {
    let rollout = store.rollout(rollout_id).await?;
    let stage = stored.from.stage;
    let criteria = rollout.plan.stage(stage).and_then(|s| s.criteria.as_ref());
    let (Some(criteria), Some(reference)) = (criteria, stored.reference) else {
        anyhow::bail!("stage {} has no criteria in the rollout's plan, or the entry stored no reference", stage.0);
    };
    let Some(judged) = stored.gates.iter().find_map(|g| g.receipt.as_ref()).map(|r| Judged { from: r.from, to: r.to }) else {
        anyhow::bail!("no gate of the entry carries a receipt");
    };
    // The gates read every minute from the stage's start to one past the moment of judging.
    let until = Timestamp(judged.to.millis() + 60_000);
    let evidence = metrics.stage_evidence(&rollout.plan, rollout_id, stage.0 as i32, judged.from, until).await?;
    let rows = &evidence.rows;
    let memory_limit = rollout.plan.guardrails.auto_rollback.memory_above_baseline.get();
    let mut again = gates::evaluate(criteria, &rows.treatment(), &rows.control(), &reference, memory_limit, judged);
    if let Some(problem) = &evidence.problem {
        say_unvouched(problem, text);
    }
    // The end-to-end matrix, from the same stage's detailed rollups.
    if let (Some(matrix), true) = (&rollout.plan.matrix, stored.gates.iter().any(|g| g.criterion == Criterion::Matrix)) {
        let cells = metrics.matrix_rows(rollout_id, stage.0 as i32, judged.from, until).await?;
        again.push(MatrixView::judge(matrix, criteria.success_rate_min.get(), &cells).gate(judged));
    }
    // The sample-ratio row counts from its own first minute, with the split it was planned at,
    // and the distinct units from the raw events when it judged units.
    let split = stored.gates.iter().filter(|g| g.criterion == Criterion::SampleRatio).find_map(|g| g.receipt.as_ref());
    if let Some(r) = split {
        let (treatment, control) = rows.uploads_from(r.from);
        let units = match r.method {
            Method::UnitRatio => Some(store.units_between(rollout_id, stage.0 as i32, r.from, until).await?),
            _ => None,
        };
        let check = SampleRatio::check(treatment, control, r.threshold_rate * 100.0);
        again.extend(check.map(|c| SampleRatio { from: r.from, ..c.with_units(units) }.gate(judged.to)));
    }
    crate::service::vouch(&mut again, &rollout.plan, stage, &evidence);

    let mut all_same = true;
    for gate in stored.gates.iter().filter(|g| g.receipt.is_some()) {
        let recomputed = again.iter().find(|g| g.criterion == gate.criterion);
        text.push_str(&format!("\n{}: {}\n", gate.criterion.label(), gate.verdict.label()));
        if let Some(r) = recomputed.filter(|r| r.verdict != gate.verdict) {
            text.push_str(&format!("  recomputed verdict: {}\n", r.verdict.label()));
            all_same = false;
        }
        all_same &= compare(gate.receipt.as_ref().expect("filtered"), recomputed.and_then(|r| r.receipt.as_ref()), text);
    }
    Ok(all_same)
}

/// Says that the recomputation's pull had a problem: its figures decide nothing, as they did not
/// when the guard or the gates met one.
fn say_unvouched(problem: &Problem, text: &mut String) {
    text.push_str(&format!(
        "\nThe metric source cannot vouch for these minutes now: {problem}. They are judged as the live rules judge such figures (not at all, but for a critical error).\n"
    ));
}
