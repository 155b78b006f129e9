//! Server functions the views call. They own no logic: each one finds the caller and hands the
//! request to a service (see [`crate::services`]).

use crate::domain::rollout::Rollout;
use crate::error::AppError;
use crate::model::{ChecklistItem, ControlRoom, StatusView};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
fn services() -> Result<crate::services::Services, AppError> {
    use_context::<crate::services::Services>().ok_or(AppError::Internal)
}

/// Who is acting. Until accounts land every caller is the same anonymous operator; the audit
/// trail records this name.
#[cfg(feature = "ssr")]
fn actor() -> String {
    "anonymous".to_string()
}

/// The control room of one rollout (`None`: the newest).
#[server]
pub async fn get_control_room(rollout_id: Option<i64>) -> Result<ControlRoom, AppError> {
    services()?.rollouts.control_room(rollout_id).await
}

/// Ticks or unticks a checklist item.
#[server]
pub async fn set_checklist_item(rollout_id: i64, item_id: i64, checked: bool) -> Result<ChecklistItem, AppError> {
    services()?.rollouts.set_checklist_item(rollout_id, item_id, checked, &actor()).await
}

/// Runs a rollout command named by form fields, acting on `version`.
#[server]
pub async fn run_command(
    rollout_id: i64,
    version: u64,
    action: String,
    target: Option<String>,
    reason: Option<String>,
) -> Result<Rollout, AppError> {
    let command = crate::domain::rollout::Command::from_parts(&action, target.as_deref(), reason.as_deref())
        .map_err(|message| {
            let (field, message) = message.split_once(": ").unwrap_or(("action", &message));
            AppError::invalid(field, message)
        })?;
    services()?.rollouts.command(rollout_id, version, command, &actor()).await
}

/// Acknowledges an open alert with a written note.
#[server]
pub async fn acknowledge_alert(rollout_id: i64, alert_id: i64, note: String) -> Result<(), AppError> {
    services()?.rollouts.acknowledge_alert(rollout_id, alert_id, &note, &actor()).await
}

/// The stakeholder status of one rollout (`None`: the newest). Read-only.
#[server]
pub async fn get_status(rollout_id: Option<i64>) -> Result<StatusView, AppError> {
    let room = services()?.rollouts.control_room(rollout_id).await?;
    Ok(StatusView::from_room(&room))
}
