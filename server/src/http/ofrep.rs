//! The OpenFeature Remote Evaluation Protocol (OFREP), so any OpenFeature SDK with its OFREP
//! provider can ask Rampart for a flag unchanged: single and bulk evaluation with the
//! protocol's exact success and error shapes, bulk ETag / 304, and the configuration endpoint.

use super::ApiState;
use super::flags::with_etag;
use app::domain::bucketing;
use app::model::FlagConfig;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/ofrep/v1/evaluate/flags/{key}", post(evaluate_one))
        .route("/ofrep/v1/evaluate/flags", post(evaluate_all))
        .route("/ofrep/v1/configuration", get(configuration))
}

/// A request-level problem, with its OpenFeature error code.
struct Failure {
    code: &'static str,
    details: String,
}

/// Reads `{"context": {"targetingKey": "…", …}}`: `Ok(Some(key))`, `Ok(None)` when the targeting
/// key is missing (a per-flag error), or a request-level failure.
fn targeting_key(body: &Bytes) -> Result<Option<String>, Failure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let request: Value =
        serde_json::from_slice(body).map_err(|e| Failure { code: "PARSE_ERROR", details: format!("the body is not JSON: {e}") })?;
    let Some(request) = request.as_object() else {
        return Err(Failure { code: "PARSE_ERROR", details: "the body must be a JSON object".into() });
    };
    let context = match request.get("context") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(context)) => context,
        Some(_) => return Err(Failure { code: "INVALID_CONTEXT", details: "context must be an object".into() }),
    };
    match context.get("targetingKey") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(key)) if key.is_empty() => Ok(None),
        Some(Value::String(key)) => Ok(Some(key.clone())),
        Some(_) => Err(Failure { code: "INVALID_CONTEXT", details: "context.targetingKey must be a string".into() }),
    }
}

/// One flag's OFREP result: success or a per-flag failure.
fn evaluation(config: &FlagConfig, targeting_key: Option<&str>) -> Result<Value, Value> {
    let Some(unit) = targeting_key else {
        return Err(json!({
            "key": config.key,
            "errorCode": "TARGETING_KEY_MISSING",
            "errorDetails": "context.targetingKey is required: Rampart buckets each unit by it",
        }));
    };
    let result = bucketing::evaluate(config.served(), &config.group, unit);
    Ok(json!({
        "key": config.key,
        "value": result.enabled,
        "reason": result.reason.as_str(),
        "variant": result.variant(),
        "metadata": { "bucket": result.bucket, "configVersion": config.config_version },
    }))
}

async fn evaluate_one(State(state): State<ApiState>, Path(key): Path<String>, body: Bytes) -> Response {
    let failure = |status: StatusCode, code: &str, details: String| {
        (status, Json(json!({ "key": key, "errorCode": code, "errorDetails": details }))).into_response()
    };
    let Some(config) = state.flags.get(&key) else {
        return failure(StatusCode::NOT_FOUND, "FLAG_NOT_FOUND", format!("no flag `{key}` in Rampart"));
    };
    match targeting_key(&body) {
        Err(f) => failure(StatusCode::BAD_REQUEST, f.code, f.details),
        Ok(unit) => match evaluation(&config, unit.as_deref()) {
            Ok(success) => Json(success).into_response(),
            Err(per_flag) => (StatusCode::BAD_REQUEST, Json(per_flag)).into_response(),
        },
    }
}

async fn evaluate_all(State(state): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let unit = match targeting_key(&body) {
        Ok(unit) => unit,
        Err(f) => return (StatusCode::BAD_REQUEST, Json(json!({ "errorCode": f.code, "errorDetails": f.details }))).into_response(),
    };
    let configs = state.flags.all();
    // The answer depends on the unit and every flag's version, and on nothing else.
    let mut fingerprint = unit.clone().unwrap_or_default();
    for config in &configs {
        fingerprint.push('\n');
        fingerprint.push_str(&config.key);
        fingerprint.push('=');
        fingerprint.push_str(&config.config_version);
    }
    let etag = format!("\"{:08x}\"", bucketing::murmur3_x86_32(fingerprint.as_bytes(), 0x5eed));
    let flags: Vec<Value> = configs.iter().map(|c| evaluation(c, unit.as_deref()).unwrap_or_else(|e| e)).collect();
    with_etag(&headers, &etag, Json(json!({ "flags": flags })))
}

async fn configuration() -> Json<Value> {
    Json(json!({
        "name": "Rampart",
        "capabilities": {
            "cacheInvalidation": { "polling": { "enabled": true, "minPollingIntervalMs": 1000 } },
            "flagEvaluation": { "supportedTypes": ["boolean"] },
        },
    }))
}
