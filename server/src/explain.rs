//! `rampart explain ROLLOUT ENTRY`: recomputes an automatic decision from the data Rampart
//! stored, and shows it beside the receipt the guard wrote when it acted. The guard's audit
//! entry names the stage, the time range it judged and the reference it compared with; the
//! recomputation reads that stage's rollups again and runs the same domain rule
//! (`app::domain::guard::assess`) at the decision's moment.

use crate::metrics::Metrics;
use crate::store::Store;
use app::domain::gates::Reference;
use app::domain::guard::{self, Breach, Decision, Method, RULE_VERSION, Receipt};
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
    };
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
        && a.from == b.from
}

/// Recomputes the automatic rollback recorded as audit entry `entry_id` of `rollout_id`.
pub async fn explain(store: &Store, metrics: &Metrics, rollout_id: i64, entry_id: i64) -> anyhow::Result<Explanation> {
    let (entry, evidence) = store.audit_evidence(rollout_id, entry_id).await?;
    anyhow::ensure!(
        entry.action == "auto_roll_back",
        "audit entry {entry_id} is `{}` by {}: only the guard's automatic rollbacks carry receipts to recompute",
        entry.action,
        entry.actor
    );
    let stored: Stored = serde_json::from_value(evidence)
        .map_err(|e| anyhow::anyhow!("audit entry {entry_id} was written before decisions carried receipts ({e})"))?;
    let rollout = store.rollout(rollout_id).await?;
    let soak = rollout.plan.stage(StageIndex(stored.stage)).map_or(Span::ZERO, |s| s.soak);
    // The guard read every minute up to one past the decision; so does the recomputation.
    let until = Timestamp(stored.window.to.millis() + 60_000);
    let (_, minutes) = metrics.stage_minutes(rollout_id, stored.stage as i32, stored.window.from, until).await?;
    let evidence = guard::StageEvidence { minutes: &minutes, soak };
    let assessment = guard::assess(&rollout.plan.guardrails, evidence, &stored.reference, &[], stored.window.to);
    let recomputed: Vec<&Breach> =
        assessment.decisions.iter().filter_map(|d| if let Decision::RollBack(b) = d { Some(b) } else { None }).collect();

    let mut text = format!("audit entry {entry_id}: {} (by {})\n", entry.summary, entry.actor);
    let mut all_same = true;
    for breach in &stored.breaches {
        text.push_str(&format!("\n{}\n", breach.rule));
        let Some(receipt) = &breach.receipt else {
            text.push_str("  no receipt stored with this decision\n");
            all_same = false;
            continue;
        };
        if receipt.rule_version != RULE_VERSION {
            text.push_str(&format!("  made by rule version {}; recomputed with version {RULE_VERSION}\n", receipt.rule_version));
        }
        text.push_str(&format!("  stored:     {}\n", describe(receipt)));
        match recomputed.iter().find(|b| b.rule == breach.rule).and_then(|b| b.receipt.as_ref()) {
            Some(again) => {
                text.push_str(&format!("  recomputed: {}\n", describe(again)));
                if same(receipt, again) {
                    text.push_str("  the same decision from the stored data\n");
                } else if again.method == receipt.method && again.events > receipt.events {
                    // Uploads of the judged minutes that arrived after the decision: the rule
                    // still decides the same on everything stored now.
                    text.push_str(&format!(
                        "  the same decision; the judged minutes have gained {} uploads since it was made\n",
                        again.events - receipt.events
                    ));
                } else {
                    all_same = false;
                    text.push_str("  DIFFERENT from the stored receipt\n");
                }
            }
            None => {
                all_same = false;
                text.push_str("  recomputed: no rollback on this rule from the data stored now: DIFFERENT from the stored receipt\n");
            }
        }
    }
    Ok(Explanation { text, same: all_same })
}
