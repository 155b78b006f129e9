//! The server's implementation of the UI's service traits: reads snapshots from the store and
//! runs commands through the domain's rules inside a store transaction. The REST API and the
//! server functions both call this, so they cannot disagree.

use crate::store::{AuditRecord, Store, StoreError, StoredRollout};
use app::domain::readiness;
use app::domain::rollout::{Command, Context, Rollout, Transition, apply, served_flag};
use app::domain::units::{Timestamp, Version};
use app::error::AppError;
use app::model::{ChecklistItem, ControlRoom};
use app::services::RolloutService;
use std::sync::Arc;

/// Where the service reads the time; tests pass a fixed or movable clock.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| Timestamp(chrono::Utc::now().timestamp_millis()))
}

/// How many audit entries the control room shows.
const AUDIT_SHOWN: i64 = 50;

#[derive(Clone)]
pub struct Rollouts {
    store: Store,
    clock: Clock,
}

impl Rollouts {
    pub fn new(store: Store, clock: Clock) -> Rollouts {
        Rollouts { store, clock }
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => AppError::not_found(what),
            StoreError::Refused(refusal) => refusal.into(),
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
        let StoredRollout { id, plan, state } = self.store.rollout(id).await?;
        let now = (self.clock)();
        let evidence = self.store.evidence(id, state.stage).await?;
        let blockers = readiness::blockers(&plan, &state, &evidence, now);
        Ok(ControlRoom {
            rollout_id: id,
            served: served_flag(&plan, &state),
            checklist: self.store.checklist(id).await?,
            audit: self.store.audit(id, AUDIT_SHOWN).await?,
            blockers,
            plan,
            state,
            now,
        })
    }

    async fn set_checklist_item(&self, rollout_id: i64, item_id: i64, checked: bool, actor: &str)
    -> Result<ChecklistItem, AppError> {
        Ok(self.store.set_checklist_item(rollout_id, item_id, checked, actor, (self.clock)()).await?)
    }

    async fn command(&self, rollout_id: i64, expected_version: u64, command: Command, actor: &str)
    -> Result<Rollout, AppError> {
        let now = (self.clock)();
        let (_, transition) = self
            .store
            .transition(rollout_id, now, actor, |current, evidence| {
                let blockers = readiness::blockers(&current.plan, &current.state, evidence, now);
                let cx = Context { plan: &current.plan, now, blockers: &blockers };
                let transition = apply(&current.state, Version(expected_version), &command, &cx)?;
                let record = audit_record(current, &command, &transition);
                Ok((transition, record))
            })
            .await?;
        tracing::info!(rollout_id, actor, command = command.name(), version = transition.state.version.0, "rollout command applied");
        Ok(transition.state)
    }
}

/// The audit entry for an accepted command: a sentence for people and the evidence for the record.
fn audit_record(current: &StoredRollout, command: &Command, t: &Transition) -> AuditRecord {
    let plan = &current.plan;
    let (from, to) = (&current.state, &t.state);
    let stage_name = |s: &Rollout| plan.stage(s.stage).map_or_else(String::new, |st| st.name.clone());
    let mut summary = match command {
        Command::Start => format!("Started the rollout: stage 0 “{}”", stage_name(to)),
        Command::Advance { .. } => {
            format!("Advanced to stage {} “{}”: flag {}", to.stage.0, stage_name(to), served_flag(plan, to))
        }
        Command::Complete { .. } => format!("Completed the rollout at stage {} “{}”", to.stage.0, stage_name(to)),
        Command::Pause { .. } => format!("Paused at stage {} “{}”", to.stage.0, stage_name(to)),
        Command::Resume => format!("Resumed stage {} “{}”", to.stage.0, stage_name(to)),
        Command::RollBack { .. } => format!(
            "Rolled back from stage {} “{}” to stage {} “{}”: flag {}",
            from.stage.0,
            stage_name(from),
            to.stage.0,
            stage_name(to),
            served_flag(plan, to)
        ),
    };
    if !t.overridden.is_empty() {
        let list: Vec<String> = t.overridden.iter().map(ToString::to_string).collect();
        summary.push_str(&format!(" — overriding: {}", list.join("; ")));
    }
    AuditRecord {
        action: command.name().to_string(),
        summary,
        reason: command.reason().map(str::to_string),
        evidence: serde_json::json!({
            "from": from,
            "to": to,
            "flag": { "from": served_flag(plan, from), "to": served_flag(plan, to) },
            "overridden": t.overridden,
        }),
    }
}
