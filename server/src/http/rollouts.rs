//! Rollout endpoints: read the control-room snapshot, tick checklist items, give commands.

use super::{ApiError, ApiState};
use app::domain::rollout::{Command, Rollout};
use app::model::{ChecklistItem, ControlRoom};
use app::services::RolloutService;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

/// Who acts through the API. Accounts and tokens replace this with the caller's identity.
const API_ACTOR: &str = "api";

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/rollouts/{id}", get(show))
        .route("/rollouts/{id}/commands", post(command))
        .route("/rollouts/{id}/checklist/{item}", post(tick))
        .route("/rollouts/{id}/alerts/{alert}/acknowledge", post(acknowledge))
}

async fn show(State(state): State<ApiState>, Path(id): Path<i64>) -> Result<Json<ControlRoom>, ApiError> {
    Ok(Json(state.rollouts.control_room(Some(id)).await?))
}

/// `{"version": 3, "command": "advance", "override_reason": "…"}`.
#[derive(Debug, Deserialize)]
pub struct CommandRequest {
    pub version: u64,
    #[serde(flatten)]
    pub command: Command,
}

async fn command(
    State(state): State<ApiState>,
    Path(id): Path<i64>,
    body: Result<Json<CommandRequest>, JsonRejection>,
) -> Result<Json<Rollout>, ApiError> {
    let Json(request) = body?;
    Ok(Json(state.rollouts.command(id, request.version, request.command, API_ACTOR).await?))
}

#[derive(Debug, Deserialize)]
pub struct TickRequest {
    pub checked: bool,
}

async fn tick(
    State(state): State<ApiState>,
    Path((id, item)): Path<(i64, i64)>,
    body: Result<Json<TickRequest>, JsonRejection>,
) -> Result<Json<ChecklistItem>, ApiError> {
    let Json(request) = body?;
    Ok(Json(state.rollouts.set_checklist_item(id, item, request.checked, API_ACTOR).await?))
}

#[derive(Debug, Deserialize)]
pub struct AcknowledgeRequest {
    pub note: String,
}

async fn acknowledge(
    State(state): State<ApiState>,
    Path((id, alert)): Path<(i64, i64)>,
    body: Result<Json<AcknowledgeRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(request) = body?;
    state.rollouts.acknowledge_alert(id, alert, &request.note, API_ACTOR).await?;
    Ok(Json(serde_json::json!({ "acknowledged": alert })))
}
