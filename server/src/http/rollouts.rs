//! Rollout endpoints: read the control-room snapshot, tick checklist items, give commands.

use super::{ApiError, ApiState};
use crate::service::{ComplaintReport, TestReport};
use crate::store::{AuditQuery, AuditRow, Claim, TestResult};
use app::domain::access::{Principal, check};
use app::domain::bucketing::murmur3_x86_32;
use app::domain::rollout::Command;
use app::error::AppError;
use app::model::{ChecklistItem, ControlRoom};
use app::services::RolloutService;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;

/// The control room's checklist forms, beside the page they come from.
pub fn pages() -> Router<ApiState> {
    Router::new().route("/rollouts/{id}/checklist/{item}/note", get(note_page).post(note_form))
}

/// `GET /rollouts/{id}/checklist/{item}/note`: a small page of its own (no app, no script —
/// a rare edit that would otherwise weigh on every load of the control room's WASM) with the
/// item, its tick, and a form for its finding and owner.
async fn note_page(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path((id, item)): Path<(i64, i64)>,
) -> Result<Response, ApiError> {
    use crate::report::esc;
    check(&principal, app::domain::access::Permission::TickChecklist).map_err(AppError::from)?;
    let items = state.rollouts.store().checklist(id).await.map_err(AppError::from)?;
    let item = items.into_iter().find(|i| i.id == item).ok_or_else(|| AppError::not_found("checklist item"))?;
    let tick = match (&item.checked_by, item.checked_at) {
        (Some(by), Some(at)) => format!("Ticked by {} at {}.", esc(by), app::format::utc_minute(at)),
        _ => "Not ticked yet.".to_string(),
    };
    let back = format!("/rollouts/{id}#item-{}", item.id);
    let page = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Rampart: finding and owner</title><link rel=\"stylesheet\" href=\"/pkg/rampart.css\"></head><body><main class=\"login\">\
         <h1>Finding and owner</h1><p><strong>{text}</strong></p><p class=\"muted\">Stage {stage} · {section} · {tick}</p>\
         <form method=\"post\" class=\"action-form\">\
         <label>What was found <textarea name=\"note\" rows=\"4\" maxlength=\"2000\">{note}</textarea></label>\
         <label>Owner <input name=\"owner\" maxlength=\"100\" value=\"{owner}\"></label>\
         <p class=\"muted\">Blank clears. Who ticked the item, and when, stay as they are.</p>\
         <button type=\"submit\" class=\"primary\">Save</button> <a href=\"{back}\">Back to the control room</a></form></main></body></html>",
        text = esc(&item.text),
        stage = item.stage.0,
        section = esc(&item.section),
        note = esc(item.note.as_deref().unwrap_or("")),
        owner = esc(item.owner.as_deref().unwrap_or("")),
    );
    Ok(([(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response())
}

/// What an item's note form sends.
#[derive(Debug, Deserialize)]
struct NoteForm {
    #[serde(default)]
    note: String,
    #[serde(default)]
    owner: String,
}

/// `POST /rollouts/{id}/checklist/{item}/note` (a plain form, no script): writes the item's
/// finding and owner and goes back to it in the control room. The right to tick is checked
/// before the body is read.
async fn note_form(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path((id, item)): Path<(i64, i64)>,
    request: axum::extract::Request,
) -> Result<axum::response::Redirect, ApiError> {
    use axum::extract::FromRequest;
    check(&principal, app::domain::access::Permission::TickChecklist).map_err(AppError::from)?;
    let axum::Form(form) =
        axum::Form::<NoteForm>::from_request(request, &state).await.map_err(|e| AppError::invalid("body", e.body_text()))?;
    state.rollouts.note_checklist_item(id, item, &form.note, &form.owner, &principal.actor()).await?;
    Ok(axum::response::Redirect::to(&format!("/rollouts/{id}#item-{item}")))
}

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/rollouts/{id}", get(show))
        .route("/rollouts/{id}/live", get(live))
        .route("/rollouts/{id}/commands", post(command))
        .route("/rollouts/{id}/checklist/{item}", post(tick))
        .route("/rollouts/{id}/alerts/{alert}/acknowledge", post(acknowledge))
        .route("/rollouts/{id}/test-results", get(test_results).post(report_tests))
        // The same runs; JUnit XML (or the JSON form) in, up to 64 MB.
        .route(
            "/rollouts/{id}/test-runs",
            get(test_results).post(report_test_run).layer(axum::extract::DefaultBodyLimit::max(MAX_TEST_REPORT_BYTES)),
        )
        .route("/rollouts/{id}/complaints", post(report_complaints))
        .route("/rollouts/{id}/audit", get(audit))
}

/// `?actor=&action=&stage=&from=&to=&before=&limit=&format=json|csv`.
#[derive(Debug, Deserialize)]
struct AuditParams {
    actor: Option<String>,
    action: Option<String>,
    stage: Option<i32>,
    from: Option<String>,
    to: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
    format: Option<String>,
}

/// Entries one page holds at most, and by default.
const AUDIT_PAGE_MAX: i64 = 1_000;
const AUDIT_PAGE_DEFAULT: i64 = 100;

/// The full audit trail, newest first, a page at a time with filters; each entry with the stage
/// it was made in, the version it produced and its evidence. `format=csv` answers a download
/// (evidence left out) of the whole filtered trail, or of one page when `limit` is given.
async fn audit(State(state): State<ApiState>, Path(id): Path<i64>, Query(q): Query<AuditParams>) -> Result<Response, ApiError> {
    for (field, text) in [("actor", &q.actor), ("action", &q.action)] {
        if let Some(text) = text {
            AppError::check_text(field, text, 200)?;
        }
    }
    let limit = q.limit.unwrap_or(AUDIT_PAGE_DEFAULT);
    if !(1..=AUDIT_PAGE_MAX).contains(&limit) {
        return Err(ApiError(AppError::invalid("limit", format!("must be between 1 and {AUDIT_PAGE_MAX}"))));
    }
    if q.stage.is_some_and(|s| s < 0) {
        return Err(ApiError(AppError::invalid("stage", "must not be negative")));
    }
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError(AppError::invalid("format", "is json or csv"))),
    };
    // A CSV without a `limit` is the whole trail (read a page at a time); every other answer
    // is one page.
    let whole = csv && q.limit.is_none();
    let mut query = AuditQuery {
        actor: q.actor,
        action: q.action,
        stage: q.stage,
        from: q.from.as_deref().map(|t| super::events::parse_time("from", t)).transpose()?,
        to: q.to.as_deref().map(|t| super::events::parse_time("to", t)).transpose()?,
        before: q.before,
        // One more than the page, to know whether another follows.
        limit: if whole { AUDIT_PAGE_MAX } else { limit + 1 },
    };
    state.store.rollout(id).await.map_err(AppError::from)?;
    let mut rows = state.store.audit_page(id, &query).await.map_err(AppError::from)?;
    let mut next_before = None;
    if whole {
        let mut last = rows.len();
        while last as i64 == AUDIT_PAGE_MAX {
            query.before = rows.last().map(|r| r.entry.id);
            let more = state.store.audit_page(id, &query).await.map_err(AppError::from)?;
            last = more.len();
            rows.extend(more);
        }
    } else if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        next_before = rows.last().map(|r| r.entry.id);
    }
    if csv {
        let disposition = format!("attachment; filename=\"rollout-{id}-audit.csv\"");
        let headers = [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ];
        return Ok((headers, audit_csv(&rows)).into_response());
    }
    Ok(Json(serde_json::json!({ "entries": rows, "next_before": next_before })).into_response())
}

/// The page as CSV (RFC 4180): a header, then one line per entry. A cell a spreadsheet would
/// run as a formula (starting `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`:
/// reasons and names are typed by people.
fn audit_csv(rows: &[AuditRow]) -> String {
    fn cell(text: &str) -> String {
        let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_string() };
        if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
    }
    let mut out = String::from("id,at,actor,action,stage,version,summary,reason\r\n");
    for r in rows {
        let at = chrono::DateTime::from_timestamp_millis(r.entry.at.millis()).map_or_else(String::new, |t| t.to_rfc3339());
        let number = |n: Option<i64>| n.map_or_else(String::new, |n| n.to_string());
        let line = [
            r.entry.id.to_string(),
            at,
            cell(&r.entry.actor),
            cell(&r.entry.action),
            number(r.stage.map(i64::from)),
            number(r.version),
            cell(&r.entry.summary),
            r.entry.reason.as_deref().map_or_else(String::new, cell),
        ];
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

async fn show(State(state): State<ApiState>, Path(id): Path<i64>) -> Result<Json<ControlRoom>, ApiError> {
    Ok(Json(state.rollouts.control_room(Some(id)).await?))
}

/// Server-sent events: `changed` whenever the rollout changes (a command, a tick, an alert, the
/// guard loop, new metrics), at once after a quiet spell and at most four a second
/// ([`crate::live::throttled`]); `retry: 1000` so browsers reconnect within a second of a
/// server restart. Pages refetch their snapshot on each message and on reconnect.
async fn live(State(state): State<ApiState>, Path(id): Path<i64>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let first = Event::default().retry(Duration::from_secs(1)).event("hello").data(id.to_string());
    let changes =
        crate::live::throttled(state.live.subscribe(), id).map(move |()| Ok(Event::default().event("changed").data(id.to_string())));
    let stream = stream::once(async move { Ok(first) }).chain(changes).take_until(state.stopping.clone().stopped()).chain(goodbye());
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// The last message of an event stream the server ends because it is stopping: reconnect
/// within [`crate::live::RECONNECT_AFTER`] (to another replica, or this one restarted).
pub(super) fn goodbye() -> impl Stream<Item = Result<Event, Infallible>> {
    stream::once(async { Ok(Event::default().retry(crate::live::RECONNECT_AFTER).comment("server stopping; reconnect")) })
}

/// `{"version": 3, "command": "advance", "override_reason": "…"}`.
#[derive(Debug, Deserialize)]
pub struct CommandRequest {
    pub version: u64,
    #[serde(flatten)]
    pub command: Command,
}

/// Gives a command. With an `Idempotency-Key` header, a retry of the same request gets the
/// first answer (marked `Idempotent-Replayed: true`) instead of acting again. A key is the
/// caller's own (another caller's same key is another key), is claimed only once the caller is
/// known to be allowed the command, and is forgotten after a day.
async fn command(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match allowed_command(&principal, &body) {
        Ok(request) => request,
        Err(e) => return e.into_response(),
    };
    let run = |request: CommandRequest| {
        let (state, principal) = (state.clone(), principal.clone());
        async move { state.rollouts.command(id, request.version, request.command, &principal).await.map_err(ApiError::from) }
    };
    let Some(key) = headers.get("idempotency-key") else {
        return match run(request).await {
            Ok(rollout) => Json(rollout).into_response(),
            Err(e) => e.into_response(),
        };
    };
    let key = match key.to_str() {
        // The identity ends in `#<id>` before the separator, so no two callers' keys can meet.
        Ok(k) if !k.is_empty() && k.len() <= 200 => format!("rollout-{id}:{}:{k}", principal.identity()),
        _ => return ApiError(AppError::invalid("Idempotency-Key", "must be 1 to 200 visible characters")).into_response(),
    };
    let hash = format!("{:08x}{:08x}", murmur3_x86_32(&body, 1), murmur3_x86_32(&body, 2));
    let claim = match state.store.claim_idempotent(&key, &hash).await {
        Ok(claim) => claim,
        Err(e) => return ApiError(e.into()).into_response(),
    };
    match claim {
        Claim::New => {
            let (status, response) = match run(request).await {
                Ok(rollout) => (StatusCode::OK, serde_json::to_value(rollout).unwrap_or_default()),
                Err(e) => (e.status(), e.body()),
            };
            if let Err(e) = state.store.complete_idempotent(&key, status.as_u16(), &response).await {
                tracing::warn!(error = %e, "could not store an idempotent response");
            }
            (status, Json(response)).into_response()
        }
        Claim::Done { status, response } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            (status, [("idempotent-replayed", "true")], Json(response)).into_response()
        }
        Claim::InProgress => ApiError(AppError::Refused {
            message: "a request with this Idempotency-Key is still being answered; retry in a moment".into(),
            blockers: Vec::new(),
        })
        .into_response(),
        Claim::Mismatch => ApiError(AppError::invalid("Idempotency-Key", "was already used for a different request")).into_response(),
    }
}

/// The command in `body`, if it is one and the caller may give it.
fn allowed_command(principal: &Principal, body: &[u8]) -> Result<CommandRequest, ApiError> {
    let request: CommandRequest =
        serde_json::from_slice(body).map_err(|e| ApiError(AppError::invalid("body", format!("not a command: {e}"))))?;
    check(principal, request.command.permission()).map_err(AppError::from)?;
    Ok(request)
}

async fn tick(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path((id, item)): Path<(i64, i64)>,
    body: Result<Json<app::model::Tick>, JsonRejection>,
) -> Result<Json<ChecklistItem>, ApiError> {
    let Json(tick) = body?;
    Ok(Json(state.rollouts.set_checklist_item(id, item, tick, &principal.actor()).await?))
}

#[derive(Debug, Deserialize)]
pub struct AcknowledgeRequest {
    pub note: String,
}

async fn acknowledge(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path((id, alert)): Path<(i64, i64)>,
    body: Result<Json<AcknowledgeRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(request) = body?;
    state.rollouts.acknowledge_alert(id, alert, &request.note, &principal.actor()).await?;
    Ok(Json(serde_json::json!({ "acknowledged": alert })))
}

/// The rollout's newest CI reports (at most 100), newest first; the newest 20 with their failed
/// cases.
async fn test_results(State(state): State<ApiState>, Path(id): Path<i64>) -> Result<Json<Vec<TestResult>>, ApiError> {
    state.store.rollout(id).await.map_err(AppError::from)?;
    Ok(Json(state.store.test_results(id, 100, 20).await.map_err(AppError::from)?))
}

async fn report_tests(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    body: Result<Json<TestReport>, JsonRejection>,
) -> Result<(StatusCode, Json<TestResult>), ApiError> {
    let Json(report) = body?;
    Ok((StatusCode::CREATED, Json(state.rollouts.report_tests(id, report, &principal.actor()).await?)))
}

/// The largest test report taken (a 50 MB JUnit file of a big suite fits).
const MAX_TEST_REPORT_BYTES: usize = 64 * 1024 * 1024;

/// Where a JUnit report goes: the plan's suite it is, and optionally the stage and a link.
#[derive(Debug, Deserialize)]
struct TestRunQuery {
    suite: Option<String>,
    stage: Option<u32>,
    url: Option<String>,
}

/// A CI run as a JUnit XML report (`Content-Type: application/xml`; `?suite=` names the plan's
/// suite, else the report's own name is used), or in the JSON form of `test-results`. The body
/// is read once and parsed in place: the report is held once, not also as a tree.
async fn report_test_run(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    axum::extract::Query(query): axum::extract::Query<TestRunQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<TestResult>), ApiError> {
    let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let report = if content_type.starts_with("application/json") {
        let mut report: TestReport = serde_json::from_slice(&body).map_err(|e| AppError::invalid("body", e.to_string()))?;
        report.stage = report.stage.or(query.stage);
        report.url = report.url.or(query.url);
        report
    } else {
        // Reading tens of megabytes takes a while: off the async workers.
        let run = tokio::task::spawn_blocking(move || crate::junit::parse_bytes(&body))
            .await
            .map_err(|_| AppError::Internal)?
            .map_err(|e| AppError::Malformed { field: "body".into(), line: e.line, column: e.column, message: e.message })?;
        let suite = query.suite.clone().or_else(|| run.name.clone()).ok_or_else(|| {
            AppError::invalid("suite", "name the plan's suite this report is (`?suite=Phase 1`): the report has no name of its own")
        })?;
        TestReport::from_junit(run, suite, query.stage, query.url)
    };
    Ok((StatusCode::CREATED, Json(state.rollouts.report_tests(id, report, &principal.actor()).await?)))
}

async fn report_complaints(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    body: Result<Json<ComplaintReport>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(report) = body?;
    let recorded = state.rollouts.report_complaints(id, report, &principal.actor()).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": recorded }))))
}
