//! Flag delivery for services: evaluate one unit, fetch the config to bucket locally (with
//! ETag / 304), an environment-style export, and a server-sent-events stream of changes.

use super::{ApiError, ApiState};
use app::domain::bucketing;
use app::error::AppError;
use app::model::FlagConfig;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/flags", get(list))
        .route("/flags/events", get(events))
        .route("/flags/{key}", get(config))
        .route("/flags/{key}/evaluate", get(evaluate))
        .route("/flags/{key}/env", get(env_export))
}

/// Looks a flag up in this process's cache.
pub fn find(state: &ApiState, key: &str) -> Result<Arc<FlagConfig>, ApiError> {
    state.flags.get(key).ok_or_else(|| ApiError(AppError::not_found(format!("flag `{key}`"))))
}

async fn list(State(state): State<ApiState>) -> Json<Vec<Arc<FlagConfig>>> {
    Json(state.flags.all())
}

/// True when the request's `If-None-Match` already names `etag` (or `*`).
pub fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// A 200 with `body` and its ETag, or a bodiless 304 when the client has it already.
pub fn with_etag(headers: &HeaderMap, etag: &str, body: impl IntoResponse) -> Response {
    let etag_value = HeaderValue::from_str(etag).unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    if not_modified(headers, etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response();
    }
    ([(header::ETAG, etag_value), (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))], body).into_response()
}

async fn config(State(state): State<ApiState>, Path(key): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let config = find(&state, &key)?;
    Ok(with_etag(&headers, &config.etag(), Json(config.clone())))
}

#[derive(Debug, Deserialize)]
struct EvaluateQuery {
    unit: Option<String>,
}

/// The answer for one unit.
#[derive(Debug, Serialize)]
struct UnitEvaluation<'a> {
    flag: &'a str,
    unit: &'a str,
    enabled: bool,
    variant: &'static str,
    reason: &'static str,
    bucket: u32,
    config_version: &'a str,
}

async fn evaluate(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    Query(query): Query<EvaluateQuery>,
) -> Result<Response, ApiError> {
    let config = find(&state, &key)?;
    let unit = query
        .unit
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError(AppError::invalid("unit", "the unit to evaluate is required: ?unit=<user or request id>")))?;
    let result = bucketing::evaluate(config.served(), &config.group, &unit);
    Ok(Json(UnitEvaluation {
        flag: &config.key,
        unit: &unit,
        enabled: result.enabled,
        variant: result.variant(),
        reason: result.reason.as_str(),
        bucket: result.bucket,
        config_version: &config.config_version,
    })
    .into_response())
}

/// `ASYNC_UPLOAD_ENABLED=true` / `ASYNC_UPLOAD_ROLLOUT=10`, for services configured by environment.
pub fn env_lines(config: &FlagConfig) -> String {
    let served = config.served();
    let rollout = if served.enabled { served.percentage.get() } else { 0 };
    format!("{p}_ENABLED={}\n{p}_ROLLOUT={rollout}\n", served.enabled, p = config.env_prefix)
}

async fn env_export(State(state): State<ApiState>, Path(key): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let config = find(&state, &key)?;
    let body = ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], env_lines(&config));
    Ok(with_etag(&headers, &config.etag(), body))
}

/// The OFREP `refetchEvaluation` notification for a changed flag.
pub fn refetch_event(config: &FlagConfig) -> Event {
    let data = serde_json::json!({
        "type": "refetchEvaluation",
        "etag": config.etag(),
        "lastModified": config.updated_at.millis() / 1000,
        "flags": [config.key],
    });
    Event::default().id(format!("{}-{}", config.key, config.config_version)).data(data.to_string())
}

/// Server-sent events: one `refetchEvaluation` message per flag change, and a keep-alive
/// comment every 15 s. A subscriber that falls behind is told to refetch every flag.
async fn events(State(state): State<ApiState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = state.flags.subscribe();
    let flags = state.flags.clone();
    let stream = stream::unfold((receiver, flags), |(mut receiver, flags)| async move {
        match receiver.recv().await {
            Ok(config) => Some((Ok(refetch_event(&config)), (receiver, flags))),
            Err(RecvError::Lagged(_)) => {
                let data = serde_json::json!({ "type": "refetchEvaluation", "flags": flags.all().iter().map(|c| c.key.clone()).collect::<Vec<_>>() });
                Some((Ok(Event::default().data(data.to_string())), (receiver, flags)))
            }
            Err(RecvError::Closed) => None,
        }
    });
    let stream = stream.take_until(state.stopping.clone().stopped()).chain(super::rollouts::goodbye());
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
