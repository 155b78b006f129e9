//! Metrics over HTTP: ingest a batch of upload events, read a window, capture the baseline.

use super::{ApiError, ApiState};
use crate::metrics::{IngestReport, WindowView};
use crate::store::{Baseline, RollupFilter};
use app::domain::access::{Permission, Principal, check};
use app::domain::event::parse_rfc3339;
use app::domain::units::Timestamp;
use app::error::AppError;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::{Extension, Form, Json, Router};
use serde::Deserialize;
use tower_http::decompression::RequestDecompressionLayer;

/// Largest accepted batch, after decompression.
pub const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/events", post(ingest))
        // Layers apply to the routes above them only: the limit counts decompressed bytes.
        .layer(DefaultBodyLimit::max(MAX_BATCH_BYTES))
        .layer(RequestDecompressionLayer::new())
        .route("/rollouts/{id}/metrics", get(window))
        .route("/rollouts/{id}/baseline", get(baseline).post(capture_baseline))
}

/// The control room's baseline form, beside the page it comes from.
pub fn pages() -> Router<ApiState> {
    Router::new().route("/rollouts/{id}/baseline", post(baseline_form))
}

/// What the control room's baseline card sends: the window it showed (the `hours` before `to`)
/// and the control uploads it counted there.
#[derive(Debug, Deserialize)]
struct BaselineForm {
    hours: u32,
    to: i64,
    count: u64,
}

/// `POST /rollouts/{id}/baseline` (a plain form, no script): freezes the numbers the page
/// showed and goes back to the control room. If uploads arrived in the window since, nothing is
/// frozen and the page shows the window's numbers as they are now, saying why. The right to
/// capture is checked before the body is read.
async fn baseline_form(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    request: Request,
) -> Result<Redirect, ApiError> {
    check(&principal, Permission::CaptureBaseline).map_err(AppError::from)?;
    let Form(form) = Form::<BaselineForm>::from_request(request, &state).await.map_err(|e| AppError::invalid("body", e.body_text()))?;
    if !(1..=336).contains(&form.hours) {
        return Err(AppError::invalid("hours", "must be between 1 and 336 (two weeks)").into());
    }
    // The window the page showed: it ended on a whole minute that has passed.
    if form.to.rem_euclid(60_000) != 0 || form.to > state.metrics.now().millis() {
        return Err(AppError::invalid("to", "must be a whole minute that has passed (epoch milliseconds)").into());
    }
    let from = form.to.checked_sub(i64::from(form.hours) * 3_600_000).ok_or_else(|| AppError::invalid("to", "out of range"))?;
    let (from, to) = (Timestamp(from), Timestamp(form.to));
    match state.metrics.capture_baseline(id, from, to, Some(form.count), &principal.actor()).await {
        Ok(_) => Ok(Redirect::to(&format!("/rollouts/{id}#baseline"))),
        Err(AppError::Conflict { .. }) => {
            Ok(Redirect::to(&format!("/rollouts/{id}?baseline_hours={}&baseline_moved=1#baseline", form.hours)))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /api/v1/events`: NDJSON (one event per line), or a JSON array with
/// `Content-Type: application/json`; gzip with `Content-Encoding: gzip`. Replies after the good
/// events are committed; 422 only if no line was usable.
async fn ingest(State(state): State<ApiState>, headers: HeaderMap, body: Bytes) -> Result<(StatusCode, Json<IngestReport>), ApiError> {
    let text = std::str::from_utf8(&body).map_err(|e| AppError::invalid("body", format!("not UTF-8 text: {e}")))?;
    let is_json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    let report = if is_json && text.trim_start().starts_with('[') {
        state.metrics.ingest_json_array(text).await?
    } else {
        state.metrics.ingest_lines((1..).zip(text.lines())).await?
    };
    let status =
        if report.accepted + report.duplicates == 0 && report.rejected > 0 { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok((status, Json(report)))
}

/// A time as RFC 3339 text or epoch milliseconds.
pub(super) fn parse_time(field: &str, text: &str) -> Result<Timestamp, ApiError> {
    text.parse::<i64>()
        .ok()
        .map(Timestamp)
        .or_else(|| parse_rfc3339(text))
        .ok_or_else(|| ApiError(AppError::invalid(field, format!("`{text}` is not RFC 3339 or epoch milliseconds"))))
}

#[derive(Debug, Deserialize)]
struct WindowQuery {
    from: Option<String>,
    to: Option<String>,
    stage: Option<i32>,
    provider: Option<String>,
    file_type: Option<String>,
    size_mb: Option<i32>,
}

/// `GET /api/v1/rollouts/{id}/metrics?from=&to=&stage=&provider=&file_type=&size_mb=`;
/// the window defaults to the last hour.
async fn window(State(state): State<ApiState>, Path(id): Path<i64>, Query(q): Query<WindowQuery>) -> Result<Json<WindowView>, ApiError> {
    let to = q.to.as_deref().map(|t| parse_time("to", t)).transpose()?.unwrap_or_else(|| state.metrics.now());
    let from = q.from.as_deref().map(|t| parse_time("from", t)).transpose()?.unwrap_or(Timestamp(to.millis() - 3_600_000));
    for (field, label) in [("provider", &q.provider), ("file_type", &q.file_type)] {
        if let Some(label) = label {
            AppError::check_text(field, label, app::domain::event::MAX_LABEL)?;
        }
    }
    for (field, number) in [("stage", q.stage), ("size_mb", q.size_mb)] {
        if number.is_some_and(|n| n < 0) {
            return Err(ApiError(AppError::invalid(field, "must not be negative")));
        }
    }
    let filter = RollupFilter { stage: q.stage, provider: q.provider, file_type: q.file_type, size_class_mb: q.size_mb };
    Ok(Json(state.metrics.window(id, from, to, &filter).await?))
}

#[derive(Debug, Deserialize)]
struct BaselineRequest {
    from: serde_json::Value,
    to: serde_json::Value,
    /// The control uploads the caller was shown for the window: refused if it now holds more.
    #[serde(default)]
    expected_count: Option<u64>,
}

fn time_value(field: &str, value: &serde_json::Value) -> Result<Timestamp, ApiError> {
    match value {
        serde_json::Value::Number(n) => {
            n.as_i64().map(Timestamp).ok_or_else(|| ApiError(AppError::invalid(field, "not epoch milliseconds")))
        }
        serde_json::Value::String(s) => parse_time(field, s),
        _ => Err(ApiError(AppError::invalid(field, "expected RFC 3339 text or epoch milliseconds"))),
    }
}

/// `POST /api/v1/rollouts/{id}/baseline` `{"from": …, "to": …, "expected_count"?: …}`: freezes
/// that window's control events as the baseline every later comparison uses.
async fn capture_baseline(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    body: Result<Json<BaselineRequest>, JsonRejection>,
) -> Result<Json<Baseline>, ApiError> {
    let Json(request) = body?;
    let (from, to) = (time_value("from", &request.from)?, time_value("to", &request.to)?);
    Ok(Json(state.metrics.capture_baseline(id, from, to, request.expected_count, &principal.actor()).await?))
}

async fn baseline(State(state): State<ApiState>, Path(id): Path<i64>) -> Result<Json<Baseline>, ApiError> {
    state.metrics.baseline(id).await?.map(Json).ok_or_else(|| ApiError(AppError::not_found("baseline")))
}
