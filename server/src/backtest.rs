//! `rampart backtest ROLLOUT [--plan FILE]`: replays a stored rollout's treatment evidence
//! through the current guard rules (or a plan's other guardrails) minute by minute, stage by
//! stage, and lists the decisions they would have made and when — to see what a rule change
//! would have done to a past rollout before adopting it.

use crate::metrics::Metrics;
use crate::store::Store;
use app::domain::gates::Reference;
use app::domain::guard::{Decision, StageJudge, Sustained};
use app::domain::plan::Plan;
use app::domain::units::{StageIndex, Timestamp};
use std::collections::BTreeSet;

/// A decision the rules would have made.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub stage: u32,
    pub at: Timestamp,
    /// `roll back` or `review`.
    pub kind: &'static str,
    pub rule: String,
    pub message: String,
}

/// One stage span that was replayed, and what the rules did in it.
#[derive(Clone, Debug)]
pub struct Replayed {
    pub stage: u32,
    pub name: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub uploads: u64,
    pub findings: Vec<Finding>,
}

/// Replays every span of the rollout whose stage served the flag on. Within a span the
/// sustained timers start and stop as the rules see their conditions; a rollback ends the
/// span's replay (the stage would have ended there), a review is listed once per rule.
pub async fn backtest(
    store: &Store,
    metrics: &Metrics,
    rollout_id: i64,
    plan: Option<Plan>,
    now: Timestamp,
) -> anyhow::Result<Vec<Replayed>> {
    let rollout = store.rollout(rollout_id).await?;
    let plan = plan.unwrap_or(rollout.plan);
    let rails = &plan.guardrails;
    let baseline = store.latest_baseline(rollout_id).await?.map(|b| b.summary);
    let mut replayed = Vec::new();
    for span in store.stage_spans(rollout_id).await? {
        let Some(stage) = plan.stage(StageIndex(span.stage as u32)) else { continue };
        if !stage.flag.enabled {
            continue;
        }
        let to = span.to.unwrap_or(now);
        // Whole minutes up to the one the span ended in (its rows are per minute).
        let rows = metrics.stage_evidence(&plan, rollout_id, span.stage, span.from, Timestamp(to.millis() + 60_000)).await?.rows;
        let reference = Reference::choose(baseline.as_ref(), &rows.control());
        let mut judge = StageJudge::new(rails, stage.soak);
        let mut sustained: Vec<Sustained> = Vec::new();
        let mut reviewed = BTreeSet::new();
        let mut out =
            Replayed { stage: span.stage as u32, name: stage.name.clone(), from: span.from, to, uploads: 0, findings: Vec::new() };
        for (minute, stats) in rows.treatment.iter().filter(|(minute, _)| *minute < to) {
            judge.add_minute(*minute, stats);
            out.uploads += stats.count();
            let at = Timestamp((minute.millis() + 60_000).min(to.millis()));
            let assessment = judge.judge(rails, &reference, &sustained, at);
            sustained.retain(|s| assessment.holding.contains(&s.condition));
            for condition in &assessment.holding {
                if !sustained.iter().any(|s| s.condition == *condition) {
                    sustained.push(Sustained { condition: *condition, since: at });
                }
            }
            let mut rolled_back = false;
            for decision in assessment.decisions {
                let (kind, breach) = match decision {
                    Decision::RollBack(b) => ("roll back", b),
                    Decision::Review(b) => ("review", b),
                };
                if kind == "review" && !reviewed.insert(breach.rule.clone()) {
                    continue;
                }
                rolled_back |= kind == "roll back";
                out.findings.push(Finding { stage: out.stage, at, kind, rule: breach.rule, message: breach.message });
            }
            if rolled_back {
                break;
            }
        }
        replayed.push(out);
    }
    Ok(replayed)
}

/// The report, one paragraph per replayed stage.
pub fn report(replayed: &[Replayed]) -> String {
    let time = |t: Timestamp| {
        chrono::DateTime::from_timestamp_millis(t.millis())
            .map_or_else(|| t.millis().to_string(), |d| d.format("%Y-%m-%d %H:%M UTC").to_string())
    };
    let mut text = String::new();
    if replayed.is_empty() {
        text.push_str("no stage of this rollout served the flag on: nothing to replay\n");
    }
    for stage in replayed {
        text.push_str(&format!(
            "stage {} “{}”, {} → {}, {} treatment uploads:\n",
            stage.stage,
            stage.name,
            time(stage.from),
            time(stage.to),
            stage.uploads
        ));
        if stage.findings.is_empty() {
            text.push_str("  no automatic decision\n");
        }
        for f in &stage.findings {
            text.push_str(&format!("  {} would {} ({}): {}\n", time(f.at), f.kind, f.rule, f.message));
        }
    }
    text
}
