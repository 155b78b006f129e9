//! Reports: the pages stakeholders open from the status page (share links included), their
//! Markdown downloads, the same through the API, and the final report's lessons and
//! recommendations.
//!
//! Pages: `/status/{id}/report` (the final report, or the report so far), `…/report/daily`,
//! `…/report/stage/{stage}`; `?format=md` downloads any of them as Markdown. API:
//! `GET /api/v1/rollouts/{id}/report?kind=final|stage|daily&stage=N&format=md|html`, and
//! `GET`/`PUT /api/v1/rollouts/{id}/report/notes`.

use super::{ApiError, ApiState};
use crate::report::render::{self, Names, Page};
use crate::report::{Kind, Report};
use crate::store::ReportNotes;
use app::domain::access::{Permission, Principal, check};
use app::domain::units::StageIndex;
use app::error::AppError;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Json, Router};
use serde::Deserialize;

/// The API's routes (nested under `/api/v1`).
pub fn router() -> Router<ApiState> {
    Router::new().route("/rollouts/{id}/report", get(api_report)).route("/rollouts/{id}/report/notes", get(notes).put(write_notes))
}

/// The pages, beside the status page they are linked from.
pub fn pages() -> Router<ApiState> {
    Router::new()
        .route("/status/{id}/report", get(final_page))
        .route("/status/{id}/report/daily", get(daily_page))
        .route("/status/{id}/report/stage/{stage}", get(stage_page))
        .route("/status/{id}/report/notes", post(notes_form))
}

/// The most characters of lessons or recommendations.
const MAX_NOTES: usize = 20_000;

#[derive(Debug, Deserialize)]
struct Format {
    format: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ApiParams {
    kind: Option<String>,
    stage: Option<u32>,
    format: Option<String>,
}

/// Who reads a report: a share link's holder sees roles where others see names.
fn names(principal: &Principal) -> Names {
    if matches!(principal, Principal::ShareLink { .. }) { Names::Hidden } else { Names::Shown }
}

/// The report as the format asked for (`html`, the default, or `md`).
fn respond(report: &Report, principal: &Principal, format: Option<&str>, path: &str) -> Result<Response, ApiError> {
    let file = format!("rampart-rollout-{}-{}", report.rollout_id, path.rsplit('/').find(|p| !p.is_empty()).unwrap_or("report"));
    match format.unwrap_or("html") {
        "md" | "markdown" => Ok((
            [
                (header::CONTENT_TYPE, "text/markdown; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}.md\"")),
            ],
            render::markdown(report, names(principal)),
        )
            .into_response()),
        "html" => {
            let id = report.rollout_id;
            let mut links = vec![("Status".to_string(), format!("/status/{id}")), ("Report".to_string(), format!("/status/{id}/report"))];
            links.push(("Last 24 hours".to_string(), format!("/status/{id}/report/daily")));
            for advance in &report.advances {
                links.push((format!("Stage {}", advance.from.0), format!("/status/{id}/report/stage/{}", advance.from.0)));
            }
            let page = Page {
                path,
                links,
                may_write: report.notes.is_some() && principal.may(Permission::WriteReport) && matches!(principal, Principal::User { .. }),
            };
            Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], render::html(report, names(principal), &page)).into_response())
        }
        other => Err(AppError::invalid("format", format!("`{other}`: expected html or md")).into()),
    }
}

async fn page(
    state: &ApiState,
    principal: &Principal,
    id: i64,
    kind: Kind,
    format: Option<&str>,
    path: &str,
) -> Result<Response, ApiError> {
    check(principal, Permission::ReadStatus { rollout_id: id }).map_err(AppError::from)?;
    let report = state.rollouts.report(id, kind).await?;
    respond(&report, principal, format, path)
}

async fn final_page(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    Query(q): Query<Format>,
) -> Result<Response, ApiError> {
    page(&state, &principal, id, Kind::Final, q.format.as_deref(), &format!("/status/{id}/report")).await
}

async fn daily_page(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    Query(q): Query<Format>,
) -> Result<Response, ApiError> {
    page(&state, &principal, id, Kind::Daily, q.format.as_deref(), &format!("/status/{id}/report/daily")).await
}

async fn stage_page(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path((id, stage)): Path<(i64, u32)>,
    Query(q): Query<Format>,
) -> Result<Response, ApiError> {
    let path = format!("/status/{id}/report/stage/{stage}");
    page(&state, &principal, id, Kind::Stage(StageIndex(stage)), q.format.as_deref(), &path).await
}

async fn api_report(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    Query(q): Query<ApiParams>,
) -> Result<Response, ApiError> {
    let kind = match (q.kind.as_deref().unwrap_or("final"), q.stage) {
        ("final", None) => Kind::Final,
        ("daily", None) => Kind::Daily,
        ("stage", Some(stage)) => Kind::Stage(StageIndex(stage)),
        ("stage", None) => return Err(AppError::invalid("stage", "a stage report names its stage: ?kind=stage&stage=N").into()),
        ("final" | "daily", Some(_)) => return Err(AppError::invalid("stage", "only a stage report takes a stage").into()),
        (other, _) => return Err(AppError::invalid("kind", format!("`{other}`: expected final, stage or daily")).into()),
    };
    let path = match kind {
        Kind::Final => format!("/status/{id}/report"),
        Kind::Daily => format!("/status/{id}/report/daily"),
        Kind::Stage(s) => format!("/status/{id}/report/stage/{}", s.0),
    };
    let report = state.rollouts.report(id, kind).await?;
    respond(&report, &principal, Some(q.format.as_deref().unwrap_or("md")), &path)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotesBody {
    lessons: String,
    recommendations: String,
}

impl NotesBody {
    fn check(&self) -> Result<(), AppError> {
        AppError::check_text("lessons", &self.lessons, MAX_NOTES)?;
        AppError::check_text("recommendations", &self.recommendations, MAX_NOTES)
    }
}

async fn notes(State(state): State<ApiState>, Path(id): Path<i64>) -> Result<Json<ReportNotes>, ApiError> {
    state.store.rollout(id).await.map_err(AppError::from)?;
    Ok(Json(state.store.report_notes(id).await.map_err(AppError::from)?))
}

async fn save(state: &ApiState, principal: &Principal, id: i64, body: &NotesBody) -> Result<ReportNotes, AppError> {
    check(principal, Permission::WriteReport)?;
    body.check()?;
    state.store.rollout(id).await?;
    let now = state.rollouts.now();
    Ok(state.store.write_report_notes(id, body.lessons.trim(), body.recommendations.trim(), &principal.actor(), now).await?)
}

async fn write_notes(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    body: Result<Json<NotesBody>, JsonRejection>,
) -> Result<Json<ReportNotes>, ApiError> {
    let Json(body) = body?;
    Ok(Json(save(&state, &principal, id, &body).await?))
}

/// The report page's form: saves, then shows the report again.
async fn notes_form(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    body: Result<Form<NotesBody>, FormRejection>,
) -> Result<Redirect, ApiError> {
    let Form(body) = body.map_err(|e| AppError::invalid("body", e.body_text()))?;
    save(&state, &principal, id, &body).await?;
    Ok(Redirect::to(&format!("/status/{id}/report#lessons")))
}
