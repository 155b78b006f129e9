//! Judging the current stage: its gates with their receipts, the sample-ratio row, the
//! end-to-end matrix and the impact, each on figures its metric source vouches for.

use super::Rollouts;
use crate::store::{StoreError, StoredRollout};
use crate::telemetry::{GateFigure, StageFigures};
use app::domain::gates::{self, Gate, Judged, Reference};
use app::domain::impact::{self, Impact};
use app::domain::matrix::MatrixView;
use app::domain::plan::{Plan, StageFlag};
use app::domain::rollout::{Status, served_flag};
use app::domain::source::Evidence;
use app::domain::stats::Summary;
use app::domain::units::{StageIndex, Timestamp};
use app::error::AppError;

impl Rollouts {
    /// The current stage's gates, judged on the treatment events since the stage began,
    /// against the frozen baseline (or the live control arm without one), that reference, the
    /// end-to-end matrix when the stage requires it and the impact (their gates among the gates
    /// when the stage requires them).
    pub async fn gates(&self, rollout: &StoredRollout, baseline: Option<&Summary>, now: Timestamp) -> Result<StageJudgement, AppError> {
        let state = &rollout.state;
        let Some(entered) = state.stage_entered_at else { return Ok(StageJudgement::default()) };
        if matches!(state.status, Status::Draft | Status::Complete) {
            return Ok(StageJudgement::default());
        }
        self.judge(rollout, state.stage, served_flag(&rollout.plan, state), baseline, Judged { from: entered, to: now }).await
    }

    /// The current stage's arms and gates as judged now, for `/metrics` (so that a team's own
    /// dashboards and alerts can show the rollout); none before a stage with criteria.
    pub async fn stage_figures(&self, rollout_id: i64) -> Result<Option<StageFigures>, AppError> {
        let now = (self.clock)();
        let rollout = self.store.rollout(rollout_id).await?;
        let baseline = self.store.latest_baseline(rollout_id).await?.map(|b| b.summary);
        let judgement = self.gates(&rollout, baseline.as_ref(), now).await?;
        if judgement.gates.is_empty() {
            return Ok(None);
        }
        let arm = |name, s: &app::domain::stats::Stats| (name, s.count(), s.error + s.timeout);
        let [treatment, control] = &judgement.arms;
        let gates = judgement.gates.iter().map(|g| GateFigure {
            criterion: serde_json::to_value(g.criterion).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            verdict: match g.verdict {
                gates::Verdict::Pass => "pass",
                gates::Verdict::Fail => "fail",
                gates::Verdict::Inconclusive => "inconclusive",
            },
            observed: g.observed,
            interval: g.interval,
            threshold: g.threshold,
        });
        Ok(Some(StageFigures {
            source: if rollout.plan.source_for(rollout.state.stage).is_some() { "prometheus" } else { "events" },
            source_ok: judgement.source_ok,
            arms: vec![arm("treatment", treatment), arm("control", control)],
            gates: gates.collect(),
        }))
    }

    /// Stage `index`'s gates, matrix and impact as judged on its events in `span` (the stage
    /// served `served` then): the current stage's live judgement, or a past stage's for a report.
    pub async fn judge(
        &self,
        rollout: &StoredRollout,
        index: StageIndex,
        served: StageFlag,
        baseline: Option<&Summary>,
        span: Judged,
    ) -> Result<StageJudgement, AppError> {
        let Some(stage) = rollout.plan.stage(index) else { return Ok(StageJudgement::default()) };
        let Some(criteria) = &stage.criteria else { return Ok(StageJudgement::default()) };
        let Judged { from: entered, to: now } = span;
        let until = Timestamp(now.millis() + 60_000);
        let evidence = self.metrics.stage_evidence(&rollout.plan, rollout.id, index.0 as i32, entered, until).await?;
        let rows = &evidence.rows;
        let (treatment, control) = (rows.treatment(), rows.control());
        let reference = Reference::choose(baseline, &control);
        let memory_limit = rollout.plan.guardrails.auto_rollback.memory_above_baseline.get();
        let mut judged = gates::evaluate(criteria, &treatment, &control, &reference, memory_limit, Judged { from: entered, to: now });
        // How long the uploads still needed take at the last hour's pace (of this stage): the
        // minutes of the same read from the one the hour began in.
        let hour_ago = Timestamp(now.millis() - 3_600_000).max(entered);
        let hour_minute = Timestamp(hour_ago.millis().div_euclid(60_000) * 60_000);
        let recent: u64 = rows.treatment.iter().filter(|(minute, _)| *minute >= hour_minute).map(|(_, stats)| stats.count()).sum();
        let hours = ((now.millis() - hour_ago.millis()) as f64 / 3_600_000.0).max(1.0 / 60.0);
        gates::pace(&mut judged, recent as f64 / hours);
        if let Some(check) = gates::sample_ratio(&rollout.plan.guardrails, served, rows, entered) {
            let units = self.units(rollout, index, check.from, until).await?;
            judged.push(check.with_units(Some(units)).gate(now));
        }
        let matrix = match (&rollout.plan.matrix, stage.requires_matrix) {
            (Some(matrix), true) => {
                let cells = self.metrics.matrix_rows(&rollout.plan, rollout.id, index.0 as i32, entered, until).await?;
                let view = MatrixView::judge(matrix, criteria.success_rate_min.get(), &cells);
                judged.push(view.gate(Judged { from: entered, to: now }));
                Some(view)
            }
            _ => None,
        };
        // The change's impact against the plan's expected improvements, on the same minutes.
        let impact =
            rollout.plan.expected_improvements.as_ref().filter(|_| served.enabled && served.percentage.get() > 0).map(|expected| {
                let minutes = (now.millis() - entered.millis()).max(60_000) as f64 / 60_000.0;
                let (against, source) = match baseline {
                    Some(b) => (b.clone(), "frozen baseline"),
                    None => (control.summary(minutes), "control arm"),
                };
                impact::measure(expected, &treatment, &against, source, u64::from(rollout.plan.guardrails.min_sample))
            });
        if stage.requires_performance_validated {
            judged.push(impact.as_ref().map_or_else(Impact::unmeasured_gate, Impact::gate));
        }
        vouch(&mut judged, &rollout.plan, index, &evidence);
        let source_ok = evidence.problem.is_none();
        Ok(StageJudgement {
            gates: judged,
            reference: Some(reference),
            matrix,
            impact,
            pulled: evidence.pulled,
            arms: [treatment, control],
            source_ok,
        })
    }

    /// The distinct units per arm (treatment, control) that stage `index`'s uploads named in
    /// `[from, to)`: the live count while the stage's stay is in force and `to` is now, else
    /// counted from the raw events (a past stay, for a report).
    async fn units(&self, rollout: &StoredRollout, index: StageIndex, from: Timestamp, to: Timestamp) -> Result<(u64, u64), StoreError> {
        let state = &rollout.state;
        let live = state.stage == index && state.stage_entered_at.is_some_and(|entered| entered <= from) && to >= self.now();
        let stage = index.0 as i32;
        if live {
            self.store.units_seen(rollout.id, stage, from).await
        } else {
            self.store.units_between(rollout.id, stage, from, to).await
        }
    }
}

/// What the current stage is judged on: its gates, the reference they compared with, the
/// end-to-end matrix when the stage requires it, and the impact against the plan's expected
/// improvements when it states them.
#[derive(Default)]
pub struct StageJudgement {
    pub gates: Vec<Gate>,
    pub reference: Option<Reference>,
    pub matrix: Option<MatrixView>,
    pub impact: Option<Impact>,
    /// The Prometheus queries the figures came from, with their times and counts (none when
    /// the event store holds them).
    pub pulled: Vec<app::domain::source::Pulled>,
    /// The treatment and control arms over the judged span, as the gates read them.
    pub arms: [app::domain::stats::Stats; 2],
    /// Whether the metric source vouched for those figures (no `Problem`).
    pub source_ok: bool,
}

/// Makes the gates judged on `evidence` inconclusive where the stage's metric source cannot
/// vouch for them, saying why: all of them when its pull had a problem, the memory gate when
/// it reads no memory. (The live judgement and `rampart explain`'s recomputation alike.)
pub(crate) fn vouch(judged: &mut [Gate], plan: &Plan, index: StageIndex, evidence: &Evidence) {
    if let Some(problem) = &evidence.problem {
        gates::unvouched(judged.iter_mut(), &problem.to_string());
    } else if plan.source_for(index).is_some_and(|s| s.memory.is_none()) {
        let memory = judged.iter_mut().filter(|g| g.criterion == gates::Criterion::Memory);
        gates::unvouched(memory, "the rollout's metric source reads no memory (add `memory` to [metrics_source])");
    }
}
