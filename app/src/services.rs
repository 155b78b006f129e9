//! The seam between the UI and the server: server functions call these traits, the server
//! implements them over Postgres and hands them in through Leptos context. `app` therefore never
//! links sqlx, and the REST API calls the very same services.

use crate::domain::rollout::{Command, Rollout};
use crate::error::AppError;
use crate::model::{ChecklistItem, ControlRoom};
use std::sync::Arc;

/// Reading and driving rollouts.
#[async_trait::async_trait]
pub trait RolloutService: Send + Sync + 'static {
    /// The control room of `rollout_id`, or of the newest rollout when `None`.
    async fn control_room(&self, rollout_id: Option<i64>) -> Result<ControlRoom, AppError>;

    /// Ticks or unticks one checklist item on behalf of `actor`.
    async fn set_checklist_item(&self, rollout_id: i64, item_id: i64, checked: bool, actor: &str)
    -> Result<ChecklistItem, AppError>;

    /// Acknowledges an open alert with a written note, unblocking advancing.
    async fn acknowledge_alert(&self, rollout_id: i64, alert_id: i64, note: &str, actor: &str) -> Result<(), AppError>;

    /// Applies `command` to the rollout as it was at `expected_version`.
    async fn command(&self, rollout_id: i64, expected_version: u64, command: Command, actor: &str)
    -> Result<Rollout, AppError>;
}

/// The services as the server provides them in context.
#[derive(Clone)]
pub struct Services {
    pub rollouts: Arc<dyn RolloutService>,
}
