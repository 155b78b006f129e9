//! Server functions the views call. They own no logic: each one finds the caller and hands the
//! request to a service (see [`crate::services`]).

use crate::domain::access::{Permission, Principal};
use crate::domain::rollout::Rollout;
use crate::error::AppError;
use crate::model::{ChecklistItem, ControlRoom, StatusView};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
fn services() -> Result<crate::services::Services, AppError> {
    use_context::<crate::services::Services>().ok_or(AppError::Internal)
}

/// Who is calling, as the server's access middleware found them.
#[cfg(feature = "ssr")]
fn caller() -> Principal {
    use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Principal>().cloned())
        .unwrap_or(Principal::Anonymous)
}

/// The caller, if [`crate::domain::access::check`] allows them `permission`; the audit trail
/// records their name. A refusal answers 401 or 403, as the REST API does.
#[cfg(feature = "ssr")]
fn require(permission: Permission) -> Result<Principal, AppError> {
    let principal = caller();
    if let Err(denied) = crate::domain::access::check(&principal, permission) {
        let status = match denied {
            crate::domain::access::Denied::Unauthenticated => http::StatusCode::UNAUTHORIZED,
            crate::domain::access::Denied::Forbidden(_) => http::StatusCode::FORBIDDEN,
        };
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(status);
        }
        return Err(denied.into());
    }
    Ok(principal)
}

/// Who is signed in (for the header and for which controls to enable).
#[server(endpoint = "who_am_i")]
pub async fn who_am_i() -> Result<Principal, AppError> {
    Ok(caller())
}

/// The control room of one rollout (`None`: the newest).
#[server(endpoint = "get_control_room")]
pub async fn get_control_room(rollout_id: Option<i64>) -> Result<ControlRoom, AppError> {
    require(Permission::ReadRollout)?;
    services()?.rollouts.control_room(rollout_id).await
}

/// Ticks or unticks a checklist item.
#[server(endpoint = "set_checklist_item")]
pub async fn set_checklist_item(rollout_id: i64, item_id: i64, checked: bool) -> Result<ChecklistItem, AppError> {
    let principal = require(Permission::TickChecklist)?;
    services()?.rollouts.set_checklist_item(rollout_id, item_id, checked, &principal.actor()).await
}

/// Runs a rollout command named by form fields, acting on `version`.
#[server(endpoint = "run_command")]
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
    let principal = require(command.permission())?;
    services()?.rollouts.command(rollout_id, version, command, &principal.actor()).await
}

/// Acknowledges an open alert with a written note.
#[server(endpoint = "acknowledge_alert")]
pub async fn acknowledge_alert(rollout_id: i64, alert_id: i64, note: String) -> Result<(), AppError> {
    let principal = require(Permission::AcknowledgeAlert)?;
    services()?.rollouts.acknowledge_alert(rollout_id, alert_id, &note, &principal.actor()).await
}

/// The stakeholder status of one rollout (`None`: the newest). Read-only.
#[server(endpoint = "get_status")]
pub async fn get_status(rollout_id: Option<i64>) -> Result<StatusView, AppError> {
    // A share link names its rollout; people see the newest one when none is named.
    let rollout_id = match (&caller(), rollout_id) {
        (Principal::ShareLink { rollout_id, .. }, None) => Some(*rollout_id),
        (_, id) => id,
    };
    require(match rollout_id {
        Some(rollout_id) => Permission::ReadStatus { rollout_id },
        None => Permission::ReadRollout,
    })?;
    let room = services()?.rollouts.control_room(rollout_id).await?;
    Ok(StatusView::from_room(&room))
}
