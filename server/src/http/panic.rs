//! A panic anywhere in a request's handling becomes a 500 with an incident id: the id is in the
//! answer and in the log line beside the panic's message (which never reaches the caller), and
//! the connection and the process go on serving.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::any::Any;
use tower_http::catch_panic::CatchPanicLayer;

/// The layer, to wrap everything a request passes through.
pub fn layer() -> CatchPanicLayer<fn(Box<dyn Any + Send + 'static>) -> Response> {
    CatchPanicLayer::custom(answer as fn(Box<dyn Any + Send + 'static>) -> Response)
}

fn answer(panic: Box<dyn Any + Send + 'static>) -> Response {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    let incident = hex::encode(bytes);
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    tracing::error!(%incident, panic = %what, "a request's handler panicked");
    let body = serde_json::json!({
        "error": "internal",
        "message": format!("an internal error (incident {incident}); it is in the server's log"),
        "incident": incident,
    });
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}
