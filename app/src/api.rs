//! Server functions the views call. They own no logic: each one finds the caller and hands the
//! request to a service (see [`crate::services`]).

use crate::domain::access::Principal;
#[cfg(feature = "ssr")]
use crate::domain::access::{Permission, Role, Scope};
use crate::domain::rollout::Rollout;
use crate::error::AppError;
use crate::model::{
    AdminLists, ChartSeries, ChecklistItem, ControlRoom, Issued, ShareLinkView, StatusView, TokenView, UserView, WebhookLog, WebhookView,
};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
fn services() -> Result<crate::services::Services, AppError> {
    use_context::<crate::services::Services>().ok_or(AppError::Internal)
}

/// Who is calling, as the server's access middleware found them.
#[cfg(feature = "ssr")]
fn caller() -> Principal {
    use_context::<http::request::Parts>().and_then(|parts| parts.extensions.get::<Principal>().cloned()).unwrap_or(Principal::Anonymous)
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
///
/// With `baseline_hours` (1 to 336), for a caller who may capture the baseline, it carries the
/// control numbers of the last that many whole hours: what the baseline card offers to freeze.
#[server(endpoint = "get_control_room")]
pub async fn get_control_room(rollout_id: Option<i64>, baseline_hours: Option<u32>) -> Result<ControlRoom, AppError> {
    let principal = require(Permission::ReadRollout)?;
    let rollouts = services()?.rollouts;
    let mut room = rollouts.control_room(rollout_id).await?;
    if let Some(hours) = baseline_hours.filter(|_| principal.may(Permission::CaptureBaseline)) {
        let preview = match (1..=336).contains(&hours) {
            true => rollouts.preview_baseline(room.rollout_id, hours).await,
            false => Err(AppError::invalid("hours", "must be between 1 and 336 (two weeks)")),
        };
        room.baseline_look = Some(crate::model::BaselineLook::new(hours, preview));
    }
    Ok(room)
}

/// Every rollout as the overview shows it, newest first.
#[server(endpoint = "list_rollouts")]
pub async fn list_rollouts() -> Result<Vec<StatusView>, AppError> {
    require(Permission::ReadRollout)?;
    let rollouts = services()?.rollouts;
    let mut views = Vec::new();
    for id in rollouts.rollout_ids().await? {
        views.push(StatusView::from_room(&rollouts.control_room(Some(id)).await?, rollouts.incidents(id).await?));
    }
    Ok(views)
}

/// Validates a plan file without saving it: the plan's table in words, or every problem at its
/// line or field (one per line of the error's message).
#[server(endpoint = "check_plan")]
pub async fn check_plan(source: String) -> Result<crate::model::PlanSummary, AppError> {
    require(Permission::ReadRollout)?;
    crate::domain::plan::Plan::from_toml(&source).map(|plan| crate::model::PlanSummary::of(&plan)).map_err(|errors| {
        let lines: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
        AppError::invalid("plan", lines.join("\n"))
    })
}

/// The rollout's charts over the last `hours` (1 to 336), or since it started (0).
#[server(endpoint = "get_chart_series")]
pub async fn get_chart_series(rollout_id: i64, hours: u32) -> Result<ChartSeries, AppError> {
    require(Permission::ReadRollout)?;
    if hours > 336 {
        return Err(AppError::invalid("hours", "must be between 1 and 336 (two weeks), or 0 for the whole rollout"));
    }
    services()?.rollouts.chart_series(rollout_id, hours).await
}

/// Ticks or unticks a checklist item.
#[server(endpoint = "set_checklist_item")]
pub async fn set_checklist_item(rollout_id: i64, item_id: i64, checked: bool) -> Result<ChecklistItem, AppError> {
    let principal = require(Permission::TickChecklist)?;
    let tick = crate::model::Tick { checked, note: None, owner: None };
    services()?.rollouts.set_checklist_item(rollout_id, item_id, tick, &principal.actor()).await
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
    let command = crate::domain::rollout::Command::from_parts(&action, target.as_deref(), reason.as_deref()).map_err(|message| {
        let (field, message) = message.split_once(": ").unwrap_or(("action", &message));
        AppError::invalid(field, message)
    })?;
    let principal = require(command.permission())?;
    services()?.rollouts.command(rollout_id, version, command, &principal).await
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
    let caller = caller();
    let rollout_id = match (&caller, rollout_id) {
        (Principal::ShareLink { rollout_id, .. }, None) => Some(*rollout_id),
        (_, id) => id,
    };
    require(match rollout_id {
        Some(rollout_id) => Permission::ReadStatus { rollout_id },
        None => Permission::ReadRollout,
    })?;
    let rollouts = services()?.rollouts;
    let room = rollouts.control_room(rollout_id).await?;
    let view = StatusView::from_room(&room, rollouts.incidents(room.rollout_id).await?);
    // People signed in see who acted; anyone else (a share link) sees roles.
    Ok(if matches!(caller, Principal::User { .. }) { view } else { view.without_names() })
}

/// Users, tokens and share links, for the admin page. Each list is shown only to those who may
/// manage it.
#[server(endpoint = "admin_overview")]
pub async fn admin_overview() -> Result<AdminLists, AppError> {
    require(Permission::ManageUsers)?;
    let accounts = services()?.accounts;
    Ok(AdminLists { users: accounts.users().await?, tokens: accounts.tokens().await?, share_links: accounts.share_links().await? })
}

/// Adds a user; an empty password has one generated and shown once.
#[server(endpoint = "create_user")]
pub async fn create_user(name: String, role: String, password: Option<String>) -> Result<Issued<UserView>, AppError> {
    let principal = require(Permission::ManageUsers)?;
    let role = Role::parse(&role).ok_or_else(|| AppError::invalid("role", "one of viewer, operator, approver, admin"))?;
    let password = password.filter(|p| !p.is_empty());
    services()?.accounts.create_user(&name, role, password.as_deref(), &principal.actor()).await
}

/// Changes a user's role, or disables or re-enables them.
#[server(endpoint = "update_user")]
pub async fn update_user(id: i64, role: Option<String>, disabled: Option<bool>) -> Result<UserView, AppError> {
    let principal = require(Permission::ManageUsers)?;
    let role = role
        .filter(|r| !r.is_empty())
        .map(|r| Role::parse(&r).ok_or_else(|| AppError::invalid("role", "one of viewer, operator, approver, admin")))
        .transpose()?;
    services()?.accounts.update_user(id, role, disabled, &principal).await
}

/// Clears a user's failed sign-ins (an account throttled by someone else's guesses).
#[server(endpoint = "unlock_user")]
pub async fn unlock_user(id: i64) -> Result<(), AppError> {
    let principal = require(Permission::ManageUsers)?;
    services()?.accounts.unlock_user(id, &principal.actor()).await
}

/// Creates an API token with the ticked scopes (form checkboxes `scope_ingest`, …); the token
/// is shown once.
#[server(endpoint = "create_token")]
pub async fn create_token(
    name: String,
    scope_ingest: Option<String>,
    scope_evaluate: Option<String>,
    scope_read: Option<String>,
    scope_drive: Option<String>,
) -> Result<Issued<TokenView>, AppError> {
    let principal = require(Permission::ManageTokens)?;
    let ticked = [scope_ingest, scope_evaluate, scope_read, scope_drive];
    let scopes: Vec<Scope> = Scope::ALL.into_iter().zip(ticked).filter(|(_, on)| on.is_some()).map(|(s, _)| s).collect();
    services()?.accounts.create_token(&name, &scopes, &principal.actor()).await
}

#[server(endpoint = "revoke_token")]
pub async fn revoke_token(id: i64) -> Result<(), AppError> {
    let principal = require(Permission::ManageTokens)?;
    services()?.accounts.revoke_token(id, &principal.actor()).await
}

/// Creates a read-only link to one rollout's status page; the link is shown once.
#[server(endpoint = "create_share_link")]
pub async fn create_share_link(rollout_id: i64, label: String, valid_for_hours: i64) -> Result<Issued<ShareLinkView>, AppError> {
    let principal = require(Permission::ManageShareLinks)?;
    services()?.accounts.create_share_link(rollout_id, &label, valid_for_hours, &principal.actor()).await
}

#[server(endpoint = "revoke_share_link")]
pub async fn revoke_share_link(id: i64) -> Result<(), AppError> {
    let principal = require(Permission::ManageShareLinks)?;
    services()?.accounts.revoke_share_link(id, &principal.actor()).await
}

/// Webhooks with their ten newest deliveries, for the admin page.
#[server(endpoint = "webhook_overview")]
pub async fn webhook_overview() -> Result<Vec<WebhookLog>, AppError> {
    require(Permission::ManageWebhooks)?;
    services()?.webhooks.webhooks(10).await
}

/// Adds a webhook for the ticked events (form checkboxes `event_approval_needed`, …; none
/// ticked means every event); its signing secret is shown once.
#[server(endpoint = "create_webhook")]
#[allow(clippy::too_many_arguments)]
pub async fn create_webhook(
    url: String,
    description: Option<String>,
    event_approval_needed: Option<String>,
    event_stage_changed: Option<String>,
    event_rolled_back: Option<String>,
    event_alert: Option<String>,
    event_completed: Option<String>,
) -> Result<Issued<WebhookView>, AppError> {
    use crate::domain::webhook::Event;
    let principal = require(Permission::ManageWebhooks)?;
    let ticked = [event_approval_needed, event_stage_changed, event_rolled_back, event_alert, event_completed];
    let events: Vec<Event> = Event::ALL.into_iter().zip(ticked).filter(|(_, on)| on.is_some()).map(|(e, _)| e).collect();
    services()?.webhooks.create_webhook(&url, &events, description.as_deref().unwrap_or(""), &principal.actor()).await
}

#[server(endpoint = "remove_webhook")]
pub async fn remove_webhook(id: i64) -> Result<(), AppError> {
    let principal = require(Permission::ManageWebhooks)?;
    services()?.webhooks.remove_webhook(id, &principal.actor()).await
}
