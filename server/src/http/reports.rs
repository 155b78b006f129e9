//! Reports: the pages stakeholders open from the status page (share links included), their
//! Markdown downloads, the same through the API, and the final report's lessons and
//! recommendations.
//!
//! Pages: `/status/{id}/report` (the final report, or the report so far), `…/report/daily`,
//! `…/report/stage/{stage}`, `…/report/compare` (every stage side by side, and per provider and
//! file type); `?format=md` downloads any of them as Markdown. API:
//! `GET /api/v1/rollouts/{id}/report?kind=final|stage|daily&stage=N&format=md|html`, and
//! `GET`/`PUT /api/v1/rollouts/{id}/report/notes` (versioned: a save from an old version is
//! refused with 409 and what is stored now).

use super::{ApiError, ApiState};
use crate::report::render::{self, Names, Page};
use crate::report::{Kind, Report};
use crate::store::{NotesSaved, ReportNotes};
use app::domain::access::{Permission, Principal, check};
use app::domain::units::StageIndex;
use app::error::AppError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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
        .route("/status/{id}/report/compare", get(compare_page))
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
    written(
        format,
        report.rollout_id,
        path,
        || render::markdown(report, names(principal)),
        || {
            // Every stage covered that has begun, the one in force too (not only those left).
            let begun = report.stages.iter().filter(|l| !l.spans.is_empty()).map(|l| l.index);
            let page = Page {
                path,
                links: links(report.rollout_id, begun),
                may_write: report.notes.is_some() && principal.may(Permission::WriteReport) && matches!(principal, Principal::User { .. }),
            };
            render::html(report, names(principal), &page)
        },
    )
}

/// A page of `path` as the format asked for: `html` (the default), or `md` as a download named
/// after the rollout and the page.
fn written(
    format: Option<&str>,
    id: i64,
    path: &str,
    markdown: impl FnOnce() -> String,
    html: impl FnOnce() -> String,
) -> Result<Response, ApiError> {
    let file = format!("rampart-rollout-{id}-{}", path.rsplit('/').find(|p| !p.is_empty()).unwrap_or("report"));
    match format.unwrap_or("html") {
        "md" | "markdown" => Ok((
            [
                (header::CONTENT_TYPE, "text/markdown; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}.md\"")),
            ],
            markdown(),
        )
            .into_response()),
        "html" => Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html()).into_response()),
        other => Err(AppError::invalid("format", format!("`{other}`: expected html or md")).into()),
    }
}

/// The links at the top of every report page: the status page, the reports, each begun
/// stage's report and the comparison.
fn links(id: i64, begun: impl Iterator<Item = StageIndex>) -> Vec<(String, String)> {
    let mut links = vec![
        ("Status".to_string(), format!("/status/{id}")),
        ("Report".to_string(), format!("/status/{id}/report")),
        ("Last 24 hours".to_string(), format!("/status/{id}/report/daily")),
    ];
    links.extend(begun.map(|index| (format!("Stage {}", index.0), format!("/status/{id}/report/stage/{}", index.0))));
    links.push(("Stages compared".to_string(), format!("/status/{id}/report/compare")));
    links
}

/// Every stage that served the new path side by side, and per provider and file type
/// (`?format=md` downloads it).
async fn compare_page(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    Query(q): Query<Format>,
) -> Result<Response, ApiError> {
    check(&principal, Permission::ReadStatus { rollout_id: id }).map_err(AppError::from)?;
    let compare = state.rollouts.compare(id).await?;
    let (title, blocks) = (crate::report::compare::title(&compare), crate::report::compare::blocks(&compare));
    let path = format!("/status/{id}/report/compare");
    written(
        q.format.as_deref(),
        id,
        &path,
        || render::markdown_page(&title, &blocks),
        || {
            let page = Page { path: &path, links: links(id, compare.stages.iter().map(|s| s.index)), may_write: false };
            render::html_page(&title, &blocks, &page, "")
        },
    )
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

/// A save of the notes: an absent text is empty (`{}` clears them). `version` is the version
/// the save was made from; without it (and without `If-Match`) the save overwrites whatever is
/// stored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotesBody {
    #[serde(default)]
    lessons: String,
    #[serde(default)]
    recommendations: String,
    #[serde(default, deserialize_with = "version_field")]
    version: Option<u64>,
}

/// The form sends the version as text (an empty field: none).
fn version_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(u64),
        Text(String),
    }
    match Option::<Either>::deserialize(d)? {
        None => Ok(None),
        Some(Either::Number(n)) => Ok(Some(n)),
        Some(Either::Text(t)) if t.trim().is_empty() => Ok(None),
        Some(Either::Text(t)) => {
            t.trim().parse().map(Some).map_err(|_| serde::de::Error::custom(format!("version: `{t}` is not a version")))
        }
    }
}

impl NotesBody {
    fn check(&self) -> Result<(), AppError> {
        AppError::check_text("lessons", &self.lessons, MAX_NOTES)?;
        AppError::check_text("recommendations", &self.recommendations, MAX_NOTES)
    }
}

/// The notes' entity tag: their version, quoted.
fn etag(notes: &ReportNotes) -> String {
    format!("\"{}\"", notes.version)
}

/// The notes with their `ETag`.
fn tagged(status: StatusCode, notes: ReportNotes) -> Response {
    let tag = etag(&notes);
    let mut response = (status, Json(notes)).into_response();
    if let Ok(value) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

async fn notes(State(state): State<ApiState>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    state.store.rollout(id).await.map_err(AppError::from)?;
    Ok(tagged(StatusCode::OK, state.store.report_notes(id).await.map_err(AppError::from)?))
}

/// The version a save was made from: the body's `version`, else `If-Match`'s (`*` or no header:
/// none). A tag that is not a version this server gave matches no stored version.
fn made_from(headers: &HeaderMap, body: &NotesBody) -> Result<Option<u64>, AppError> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(body.version) };
    let value = value.to_str().map_err(|_| AppError::invalid("If-Match", "not a list of entity tags"))?.trim();
    if value == "*" {
        return Ok(body.version);
    }
    // Strong comparison: a weak tag never matches. An unknown tag stands for a version that is
    // never stored (u64::MAX), so the save is refused as stale.
    let tags: Vec<u64> = value
        .split(',')
        .map(|t| t.trim().strip_prefix('"').and_then(|t| t.strip_suffix('"')).and_then(|v| v.parse().ok()).unwrap_or(u64::MAX))
        .collect();
    let tag = tags.into_iter().min().unwrap_or(u64::MAX);
    match body.version {
        Some(v) if v != tag => Err(AppError::invalid("version", format!("{v} is not the version If-Match names ({value})"))),
        _ => Ok(Some(tag)),
    }
}

/// Saves the notes as `principal`, from version `from` (or over whatever is stored).
async fn save(state: &ApiState, principal: &Principal, id: i64, body: &NotesBody, from: Option<u64>) -> Result<NotesSaved, AppError> {
    check(principal, Permission::WriteReport)?;
    body.check()?;
    state.store.rollout(id).await?;
    let now = state.rollouts.now();
    Ok(state.store.write_report_notes(id, body.lessons.trim(), body.recommendations.trim(), from, &principal.actor(), now).await?)
}

/// 409 with what is stored now: the caller merges and saves again from its version.
fn stale(current: ReportNotes) -> Response {
    let error = ApiError(AppError::Conflict {
        message: format!("the notes were saved by someone else since (now version {}); merge and save again", current.version),
        current_version: current.version,
    });
    let mut body = error.body();
    let tag = etag(&current);
    body["notes"] = serde_json::to_value(current).unwrap_or_default();
    let mut response = (StatusCode::CONFLICT, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

async fn write_notes(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: Result<Json<NotesBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let from = made_from(&headers, &body)?;
    Ok(match save(&state, &principal, id, &body, from).await? {
        NotesSaved::Saved(notes) => tagged(StatusCode::OK, notes),
        NotesSaved::Stale(current) => stale(current),
    })
}

/// The report page's form: saves, then shows the report again. The caller's right to write is
/// checked before the body is read; the form carries the version the page showed.
async fn notes_form(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    request: Request,
) -> Result<Response, ApiError> {
    check(&principal, Permission::WriteReport).map_err(AppError::from)?;
    let Form(body) = Form::<NotesBody>::from_request(request, &state).await.map_err(|e| AppError::invalid("body", e.body_text()))?;
    let from = body.version;
    Ok(match save(&state, &principal, id, &body, from).await? {
        NotesSaved::Saved(_) => Redirect::to(&format!("/status/{id}/report#lessons")).into_response(),
        NotesSaved::Stale(current) => {
            let page = render::stale_notes_page(&format!("/status/{id}/report"), current.version, &body.lessons, &body.recommendations);
            (StatusCode::CONFLICT, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
        }
    })
}
