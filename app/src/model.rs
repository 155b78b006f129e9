//! What the server sends the views: plain serialisable snapshots, built by the services.

use crate::domain::plan::{Plan, StageFlag};
use crate::domain::readiness::Blocker;
use crate::domain::rollout::Rollout;
use crate::domain::units::{StageIndex, Timestamp};
use serde::{Deserialize, Serialize};

/// Everything the control room shows for one rollout, as of `now`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlRoom {
    pub rollout_id: i64,
    pub plan: Plan,
    pub state: Rollout,
    /// The flag as clients are served it right now.
    pub served: StageFlag,
    /// Every stage's checklist items, in plan order.
    pub checklist: Vec<ChecklistItem>,
    /// What blocks leaving the current stage.
    pub blockers: Vec<Blocker>,
    /// The current stage's gates, judged on its treatment events so far.
    pub gates: Vec<crate::domain::gates::Gate>,
    /// Alerts, open ones first.
    pub alerts: Vec<Alert>,
    /// The frozen baseline, if recorded.
    pub baseline: Option<crate::domain::stats::Summary>,
    /// Newest first.
    pub audit: Vec<AuditEntry>,
    pub now: Timestamp,
}

/// An alert raised by the guard loop; while open it blocks advancing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub id: i64,
    pub kind: String,
    pub message: String,
    pub raised_at: Timestamp,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<Timestamp>,
    pub acknowledgement: Option<String>,
}

/// One tickable checklist item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistItem {
    pub id: i64,
    pub stage: StageIndex,
    pub section: String,
    pub text: String,
    pub checked_by: Option<String>,
    pub checked_at: Option<Timestamp>,
}

/// One line of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub summary: String,
    pub reason: Option<String>,
}

/// A flag as every client is served it right now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagConfig {
    pub key: String,
    pub enabled: bool,
    pub percentage: u8,
    /// The bucketing group (Unleash's `groupId`): the flag key unless the plan sets one.
    pub group: String,
    /// Prefix of the environment-style export (`ASYNC_UPLOAD` → `ASYNC_UPLOAD_ENABLED`).
    pub env_prefix: String,
    /// Changes whenever the rollout behind the flag changes: `<rollout id>.<rollout version>`.
    pub config_version: String,
    pub updated_at: Timestamp,
}

impl FlagConfig {
    pub fn served(&self) -> StageFlag {
        let percentage = crate::domain::units::Percentage::new(i64::from(self.percentage)).unwrap_or(crate::domain::units::Percentage::ZERO);
        StageFlag { enabled: self.enabled, percentage }
    }

    /// The strong HTTP validator for this config.
    pub fn etag(&self) -> String {
        format!("\"{}-{}\"", self.key, self.config_version)
    }
}
