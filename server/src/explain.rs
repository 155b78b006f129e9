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

/// How a recomputation came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recomputed {
    /// Every decision the same from the stored data.
    Same,
    /// At least one differs from its stored receipt.
    Different,
    /// The metric source cannot give the judged minutes now (a Prometheus pull with a
    /// problem): there is nothing to compare with until it answers.
    Unavailable,
}

/// The report: one paragraph per decision, and how the recomputation came out.
pub struct Explanation {
    pub text: String,
    pub outcome: Recomputed,
}

impl Recomputed {
    fn of(all_same: bool) -> Recomputed {
        if all_same { Recomputed::Same } else { Recomputed::Different }
    }
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
        let outcome = explain_rollback(store, metrics, rollout_id, stored, &mut text).await?;
        return Ok(Explanation { text, outcome });
    }
    let judged: Option<Verdicts> = serde_json::from_value(evidence).ok();
    match judged {
        Some(verdicts) if verdicts.gates.iter().any(|g| g.receipt.is_some()) => {
            let outcome = explain_gates(store, metrics, rollout_id, verdicts, &mut text).await?;
            Ok(Explanation { text, outcome })
        }
        _ => anyhow::bail!(
            "audit entry {entry_id} is `{}` by {}: it carries no receipts to recompute (automatic rollbacks and the gates a command was judged with do)",
            entry.action,
            entry.actor
        ),
    }
}

async fn explain_rollback(
    store: &Store,
    metrics: &Metrics,
    rollout_id: i64,
    stored: Stored,
    text: &mut String,
) -> anyhow::Result<Recomputed> {
    let rollout = store.rollout(rollout_id).await?;
    let soak = rollout.plan.stage(StageIndex(stored.stage)).map_or(Span::ZERO, |s| s.soak);
    // The guard read every minute up to one past the decision; so does the recomputation.
    let until = Timestamp(stored.window.to.millis() + 60_000);
    let evidence = metrics.stage_evidence(&rollout.plan, rollout_id, stored.stage as i32, stored.window.from, until).await?;
    // A rollback was decided on figures its source vouched for (or a critical error it reported):
    // without them now there is nothing to recompute.
    if let Some(problem) = &evidence.problem {
        say_unavailable(problem, text);
        for breach in &stored.breaches {
            text.push_str(&format!("\n{}\n", breach.rule));
            if let Some(receipt) = &breach.receipt {
                text.push_str(&format!("  stored:     {}\n", describe(receipt)));
            }
        }
        return Ok(Recomputed::Unavailable);
    }
    let rows = &evidence.rows;
    let minutes = guard::StageEvidence { minutes: &rows.treatment, soak };
    let assessment = guard::assess(&rollout.plan.guardrails, minutes, &stored.reference, &[], stored.window.to);
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
    Ok(Recomputed::of(all_same))
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

async fn explain_gates(
    store: &Store,
    metrics: &Metrics,
    rollout_id: i64,
    stored: Verdicts,
    text: &mut String,
) -> anyhow::Result<Recomputed> {
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
    // A gate the source vouched for when it was judged cannot be recomputed while it does not
    // now; one it did not vouch for then ("Not judged: …") is not judged now either.
    let with_receipts = || stored.gates.iter().filter(|g| g.receipt.is_some());
    if let Some(problem) = &evidence.problem {
        if with_receipts().any(|g| !not_judged(g)) {
            say_unavailable(problem, text);
            for gate in with_receipts() {
                text.push_str(&format!("\n{}: {}\n", gate.criterion.label(), gate.verdict.label()));
                text.push_str(&format!("  stored:     {}\n", describe(gate.receipt.as_ref().expect("filtered"))));
            }
            return Ok(Recomputed::Unavailable);
        }
        text.push_str(&format!("\nThe metric source cannot give these minutes now either: {problem}.\n"));
    }
    // The end-to-end matrix, from the same stage's cells.
    if let (Some(matrix), true) = (&rollout.plan.matrix, stored.gates.iter().any(|g| g.criterion == Criterion::Matrix)) {
        let cells = metrics.matrix_rows(&rollout.plan, rollout_id, stage.0 as i32, judged.from, until).await?;
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
    for gate in with_receipts() {
        let recomputed = again.iter().find(|g| g.criterion == gate.criterion);
        text.push_str(&format!("\n{}: {}\n", gate.criterion.label(), gate.verdict.label()));
        if not_judged(gate) && evidence.problem.is_none() {
            // Decided on no figures the source vouched for; it gives them now.
            text.push_str(&format!("  not judged when decided: {}\n", gate.explanation));
            let today = recomputed.map_or("nothing".to_string(), |r| format!("{} — {}", r.verdict.label(), r.explanation));
            text.push_str(&format!("  the source's figures now: {today}\n"));
            continue;
        }
        if let Some(r) = recomputed.filter(|r| r.verdict != gate.verdict) {
            text.push_str(&format!("  recomputed verdict: {}\n", r.verdict.label()));
            all_same = false;
        }
        all_same &= compare(gate.receipt.as_ref().expect("filtered"), recomputed.and_then(|r| r.receipt.as_ref()), text);
    }
    Ok(Recomputed::of(all_same))
}

/// Whether a gate was left unjudged because its source could not vouch for its figures.
fn not_judged(gate: &Gate) -> bool {
    gate.explanation.starts_with(gates::NOT_JUDGED)
}

/// Says that the recomputation's pull had a problem: the decision cannot be checked until the
/// source answers; what follows is what it was made with.
fn say_unavailable(problem: &Problem, text: &mut String) {
    text.push_str(&format!(
        "\nThe metric source cannot give the judged minutes now: {problem}. The decision cannot be recomputed until it answers; what it was made with, as stored:\n"
    ));
}
