//! The server's implementation of the UI's service traits: reads snapshots from the store and
//! runs commands through the domain's rules inside a store transaction. The REST API and the
//! server functions both call this, so they cannot disagree.

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::store::{RollupFilter, Store, StoreError, StoredRollout};
use app::domain::access::{Permission, Principal};
use app::domain::readiness;
use app::domain::rollout::{Actor, Command, Context, Rollout, apply, served_flag};
use app::domain::units::{StageIndex, Timestamp, Version};
use app::error::AppError;
use app::model::{AuditEntry, BaselinePreview, BaselineWindow, ChartPoint, ChartSeries, ChecklistItem, ControlRoom, Tick};
use app::services::RolloutService;

mod audit;
mod judging;
mod submitted;

use audit::audit_record;
pub use judging::StageJudgement;
pub(crate) use judging::vouch;
pub use submitted::{ComplaintReport, TestReport};

/// How far before now a baseline window captured from the control room ends.
const BASELINE_LAG_MS: i64 = 2 * 60_000;

/// How many audit entries the control room shows.
const AUDIT_SHOWN: i64 = 50;

#[derive(Clone)]
pub struct Rollouts {
    store: Store,
    metrics: Metrics,
    clock: Clock,
}

impl Rollouts {
    /// Writes a checklist item's finding and owner on behalf of `actor` (blank clears either).
    pub async fn note_checklist_item(
        &self,
        rollout_id: i64,
        item_id: i64,
        note: &str,
        owner: &str,
        actor: &str,
    ) -> Result<ChecklistItem, AppError> {
        AppError::check_text("note", note, 2_000)?;
        AppError::check_text("owner", owner, 100)?;
        Ok(self.store.note_checklist_item(rollout_id, item_id, note, owner, actor, (self.clock)()).await?)
    }

    pub fn new(store: Store, metrics: Metrics, clock: Clock) -> Rollouts {
        Rollouts { store, metrics, clock }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The service's clock now.
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }
}

/// The CI runs the control room lists (their trend per suite), and how many of the newest it
/// shows with their failed cases.
const TEST_RUNS_SHOWN: i64 = 20;
const TEST_RUNS_WITH_FAILURES: usize = 5;

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => AppError::not_found(what),
            StoreError::Refused(refusal) => refusal.into(),
            // Postgres's "data exception" class: a value a request carried that it cannot store
            // (a NUL in text, a number past its column). The caller's input, not a failure here;
            // the checks at the edges should have caught it first.
            StoreError::Db(sqlx::Error::Database(e)) if e.code().is_some_and(|c| c.starts_with("22")) => {
                tracing::warn!(error = %e, "a request carried a value Postgres cannot store");
                AppError::invalid("body", format!("a value cannot be stored: {}", e.message()))
            }
            error if error.is_unavailable() => {
                tracing::warn!(%error, "the database is unavailable");
                // Cut off at its commit, a change may or may not have been applied: events (by
                // id) and commands (by version) are safe to send again either way.
                match error.sqlstate().as_deref() {
                    // Out of disk: nothing comes back by itself, so say what it takes.
                    Some("53100") => AppError::Unavailable {
                        message: "the database is out of disk space: nothing was stored; send it again once an operator frees space".into(),
                        retry_after_secs: 30,
                    },
                    Some("25006") => AppError::Unavailable {
                        message: "the database takes no writes now (read-only, as a standby is); try again shortly".into(),
                        retry_after_secs: 5,
                    },
                    _ => AppError::Unavailable { message: "the database is unavailable; try again shortly".into(), retry_after_secs: 5 },
                }
            }
            StoreError::Corrupt(_) | StoreError::Db(_) => {
                tracing::error!(%error, "store failure");
                AppError::Internal
            }
        }
    }
}

#[async_trait::async_trait]
impl RolloutService for Rollouts {
    async fn control_room(&self, rollout_id: Option<i64>) -> Result<ControlRoom, AppError> {
        let id = match rollout_id {
            Some(id) => id,
            None => self.store.newest_rollout().await?.ok_or_else(|| AppError::not_found("rollout"))?,
        };
        let rollout = self.store.rollout(id).await?;
        let now = (self.clock)();
        let (baseline, baseline_window) = match self.store.latest_baseline(id).await? {
            Some(b) => {
                let window = BaselineWindow { captured_at: b.captured_at, captured_by: b.captured_by, from: b.from, to: b.to };
                (Some(b.summary), Some(window))
            }
            None => (None, None),
        };
        let mut evidence = self.store.evidence(id, rollout.state.stage).await?;
        let judgement = self.gates(&rollout, baseline.as_ref(), now).await?;
        evidence.gates = judgement.gates;
        let blockers = readiness::blockers(&rollout.plan, &rollout.state, &evidence, now);
        let StoredRollout { id, mut plan, state } = rollout;
        // Where the server reads the evidence is none of the page's business (nor a viewer's).
        plan.metrics_source = None;
        plan.stages.iter_mut().for_each(|s| s.metrics_source = None);
        // Routines of the periods holding now, and the period before's still open; earlier
        // ones stay in the reports.
        let shown = app::domain::routines::Shown::at(&plan, now);
        let (mut routines, checklist): (Vec<_>, Vec<_>) = self.store.checklist(id).await?.into_iter().partition(|i| i.period.is_some());
        routines.retain(|i| i.period.as_deref().is_some_and(|p| shown.keeps(p, i.checked_at.is_some())));
        Ok(ControlRoom {
            rollout_id: id,
            served: served_flag(&plan, &state),
            checklist,
            routines,
            audit: self.store.audit(id, AUDIT_SHOWN).await?,
            alerts: self.store.alerts(id).await?,
            test_runs: self.store.test_results(id, TEST_RUNS_SHOWN, TEST_RUNS_WITH_FAILURES).await?,
            matrix: judgement.matrix,
            impact: judgement.impact,
            baseline,
            baseline_window,
            baseline_look: None,
            gates: evidence.gates,
            blockers,
            plan,
            state,
            now,
        })
    }

    async fn set_checklist_item(&self, rollout_id: i64, item_id: i64, tick: Tick, actor: &str) -> Result<ChecklistItem, AppError> {
        let text =
            |field: &str, value: &Option<String>, max: usize| value.as_deref().map_or(Ok(()), |v| AppError::check_text(field, v, max));
        text("note", &tick.note, 2_000)?;
        text("owner", &tick.owner, 100)?;
        Ok(self.store.set_checklist_item(rollout_id, item_id, &tick, actor, (self.clock)()).await?)
    }

    async fn rollout_ids(&self) -> Result<Vec<i64>, AppError> {
        Ok(self.store.rollout_ids().await?)
    }

    async fn incidents(&self, rollout_id: i64) -> Result<Vec<AuditEntry>, AppError> {
        Ok(self.store.incidents(rollout_id).await?)
    }

    async fn chart_series(&self, rollout_id: i64, hours: u32) -> Result<ChartSeries, AppError> {
        let rollout = self.store.rollout(rollout_id).await?;
        let to = (self.clock)();
        let spans = self.store.stage_spans(rollout_id).await?;
        let from = match hours {
            // The whole rollout: from its first start (a draft's last day), as far back as a
            // window reaches.
            0 => spans.first().map_or(Timestamp(to.millis() - 24 * 3_600_000), |first| first.from.min(Timestamp(to.millis() - 3_600_000))),
            hours => Timestamp(to.millis() - i64::from(hours) * 3_600_000),
        };
        let from = from.max(Timestamp(to.millis() - crate::metrics::MAX_WINDOW.millis()));
        // A rollout that reads Prometheus in any stage is charted stage by stage from its sources.
        let window = if rollout.plan.sources().is_empty() {
            self.metrics.window(rollout_id, from, to, &RollupFilter::default()).await?
        } else {
            self.metrics.window_by_stage(&rollout.plan, rollout_id, &spans, from, to).await?.0
        };
        let mut total = 0;
        let points = window
            .series
            .into_iter()
            .map(|p| {
                total += p.treatment.count;
                ChartPoint { at: p.at, treatment: p.treatment, control: p.control, treatment_total: total }
            })
            .collect();
        // Stage entries and rollbacks, both read off the stage history: a rollback is an entry
        // into a lower stage than the one before it.
        let stage_name = |stage: i32| rollout.plan.stage(StageIndex(stage as u32)).map_or_else(String::new, |s| s.name.clone());
        let mut marks = Vec::new();
        let mut previous: Option<i32> = None;
        for span in spans {
            if span.from >= from {
                if previous.is_some_and(|p| span.stage < p) {
                    marks.push((span.from, "Rolled back".to_string()));
                }
                marks.push((span.from, format!("Stage {}: {}", span.stage, stage_name(span.stage))));
            }
            previous = Some(span.stage);
        }
        Ok(ChartSeries { from, to, step_minutes: window.step_minutes, points, marks })
    }

    async fn preview_baseline(&self, rollout_id: i64, hours: u32) -> Result<BaselinePreview, AppError> {
        // Whole minutes, as the rollups keep them, ending two minutes back: the minute under
        // way is not over, and batches of the last ones are still arriving (under live traffic
        // they would move the count between the look and the freeze).
        let to = Timestamp((self.clock)().millis().div_euclid(60_000) * 60_000 - BASELINE_LAG_MS);
        let from = Timestamp(to.millis() - i64::from(hours) * 3_600_000);
        let control = self.metrics.baseline_preview(rollout_id, from, to).await?;
        Ok(BaselinePreview { from, to, control })
    }

    async fn acknowledge_alert(&self, rollout_id: i64, alert_id: i64, note: &str, actor: &str) -> Result<(), AppError> {
        if note.trim().is_empty() {
            return Err(AppError::invalid("note", "say what was checked before acknowledging"));
        }
        AppError::check_text("note", note, 2_000)?;
        Ok(self.store.acknowledge_alert(rollout_id, alert_id, actor, note.trim(), (self.clock)()).await?)
    }

    async fn command(&self, rollout_id: i64, expected_version: u64, command: Command, by: &Principal) -> Result<Rollout, AppError> {
        let now = (self.clock)();
        let name = by.actor();
        let actor = Actor { name: &name, may_approve: by.may(Permission::Approve) };
        // Gates read the metrics outside the transaction; they describe the stage as the
        // caller saw it, and the transaction rejects the command if the stage moved since.
        let baseline = self.store.latest_baseline(rollout_id).await?.map(|b| b.summary);
        let StageJudgement { gates, reference, pulled, .. } =
            self.gates(&self.store.rollout(rollout_id).await?, baseline.as_ref(), now).await?;
        let (_, transition) = self
            .store
            .transition(rollout_id, now, &name, |current, evidence| {
                let evidence = readiness::StageEvidence { gates: gates.clone(), ..evidence.clone() };
                let blockers = readiness::blockers(&current.plan, &current.state, &evidence, now);
                let cx = Context { plan: &current.plan, now, blockers: &blockers, actor };
                let transition = apply(&current.state, Version(expected_version), &command, &cx)?;
                let record = audit_record(current, &command, &transition, &evidence.gates, reference.as_ref(), &pulled);
                Ok((transition, record))
            })
            .await?;
        tracing::info!(rollout_id, actor = name, command = command.name(), version = transition.state.version.0, "rollout command applied");
        Ok(transition.state)
    }
}
